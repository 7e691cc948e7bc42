// The clusterrole-aggregation controller against a real API server and etcd: roles labelled for
// an aggregating role flow into it within moments, relabelling or deleting takes them out again,
// the order is stable, duplicates collapse, and chains (admin ← edit ← view) settle.
import { plainHttpClient, startTestResourceStore } from '../../testing/resource-store.js';
import type { TestResourceStore } from '../../testing/resource-store.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultCrdDir, Registry } from '../../api/registry.js';
import { Validator } from '../../api/validation.js';
import { KovaClient } from '../../client/client.js';
import type { KObject } from '../../client/client.js';
import { ResourceStore } from '../../apiserver/resource-store.js';
import { ApiServer } from '../../apiserver/server.js';
import type { PolicyRule } from '../../apiserver/auth/types.js';
import { Store } from '../../store/store.js';
import { waitFor } from '../../testing/etcd.js';
import type { TestEtcd } from '../../testing/etcd.js';
import { aggregatedRules, selectorMatches } from '../../api/rbac-aggregation.js';
import { CLUSTER_ROLES, startClusterRoleAggregationController } from './clusterrole-aggregation.js';

let env: TestResourceStore;
let store: Store;
let server: ApiServer;
let client: KovaClient;
const abort = new AbortController();
let done: Promise<void>;

before(async () => {
  env = await startTestResourceStore();
  store = env.store;
  const registry = env.registry;
  const resources = env.resources;
  server = new ApiServer({ registry, resources, log: () => undefined });
  const { port } = await server.listen('127.0.0.1', 0);
  client = plainHttpClient(`http://127.0.0.1:${port}`, 'aggregation-test');
  const handle = await startClusterRoleAggregationController({ client, signal: abort.signal, log: () => undefined });
  done = handle.done;
});

after(async () => {
  abort.abort();
  await done;
  client?.close();
  await server?.close();
  await env?.stop();
});

const role = (name: string, rules: PolicyRule[], labels: Record<string, string> = {}, selectors?: unknown[]) => ({
  apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name, labels },
  rules, ...(selectors ? { aggregationRule: { clusterRoleSelectors: selectors } } : {}),
});
const rules = async (name: string) => ((await client.get(CLUSTER_ROLES, undefined, name))?.rules as PolicyRule[] | undefined) ?? [];
const r = (verb: string, resource: string): PolicyRule => ({ verbs: [verb], apiGroups: ['example.com'], resources: [resource] });

describe('aggregation rules (pure)', () => {
  test('selectors: matchLabels and every operator; empty matches all', () => {
    const l = { a: '1', b: '2' };
    assert.ok(selectorMatches({}, l));
    assert.ok(selectorMatches({ matchLabels: { a: '1' } }, l));
    assert.ok(!selectorMatches({ matchLabels: { a: '2' } }, l));
    assert.ok(selectorMatches({ matchExpressions: [{ key: 'a', operator: 'In', values: ['0', '1'] }] }, l));
    assert.ok(!selectorMatches({ matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['1'] }] }, l));
    assert.ok(selectorMatches({ matchExpressions: [{ key: 'c', operator: 'DoesNotExist' }] }, l));
    assert.ok(!selectorMatches({ matchExpressions: [{ key: 'c', operator: 'Exists' }] }, l));
    assert.ok(!selectorMatches({ matchExpressions: [{ key: 'a', operator: 'Bogus' }] }, l));
  });

  test('union in name order, deduplicated, never the role itself', () => {
    const agg = role('agg', [r('stale', 'x')], { x: 'true' }, [{ matchLabels: { x: 'true' } }]) as unknown as KObject;
    const all = [
      agg,
      role('b', [r('get', 'b'), r('get', 'a')], { x: 'true' }),
      role('a', [r('get', 'a')], { x: 'true' }),
      role('c', [r('get', 'c')], { x: 'false' }),
    ] as unknown as KObject[];
    assert.deepEqual(aggregatedRules(agg, all), [r('get', 'a'), r('get', 'b')]);
    assert.equal(aggregatedRules(all[1]!, all), undefined);
  });
});

describe('clusterrole-aggregation controller', () => {
  // The aggregating role's name has a colon, as kova's own do: KovaClient percent-encodes it.
  test('a labelled role flows in within moments; relabelled or deleted, it leaves again', async () => {
    await client.create(CLUSTER_ROLES, role('example:reader', [], {}, [{ matchLabels: { 'example.com/aggregate-to-reader': 'true' } }]));
    await client.create(CLUSTER_ROLES, role('widgets', [r('get', 'widgets'), r('list', 'widgets')], { 'example.com/aggregate-to-reader': 'true' }));
    await client.create(CLUSTER_ROLES, role('gadgets', [r('get', 'gadgets'), r('get', 'widgets')], { 'example.com/aggregate-to-reader': 'true' }));
    await client.create(CLUSTER_ROLES, role('unrelated', [r('delete', 'everything')]));
    const want = [r('get', 'gadgets'), r('get', 'widgets'), r('list', 'widgets')];
    await waitFor(async () => JSON.stringify(await rules('example:reader')) === JSON.stringify(want), 'reader aggregates gadgets and widgets', 5000);

    await client.mergePatch(CLUSTER_ROLES, undefined, 'gadgets', { metadata: { labels: { 'example.com/aggregate-to-reader': null } } });
    await waitFor(async () => JSON.stringify(await rules('example:reader')) === JSON.stringify([r('get', 'widgets'), r('list', 'widgets')]), 'gadgets leaves', 5000);
    await client.delete(CLUSTER_ROLES, undefined, 'widgets');
    await waitFor(async () => (await rules('example:reader')).length === 0, 'widgets leaves', 5000);
  });

  test('direct edits of an aggregated role are put back; chains settle', async () => {
    await client.create(CLUSTER_ROLES, role('top', [], {}, [{ matchLabels: { 'example.com/to-top': 'true' } }]));
    await client.create(CLUSTER_ROLES, role('middle', [], { 'example.com/to-top': 'true' }, [{ matchLabels: { 'example.com/to-middle': 'true' } }]));
    await client.create(CLUSTER_ROLES, role('leaf', [r('watch', 'leaves')], { 'example.com/to-middle': 'true' }));
    await waitFor(async () => JSON.stringify(await rules('top')) === JSON.stringify([r('watch', 'leaves')]), 'leaf reaches top through middle', 5000);
    await client.mergePatch(CLUSTER_ROLES, undefined, 'top', { rules: [r('*', '*')] });
    await waitFor(async () => JSON.stringify(await rules('top')) === JSON.stringify([r('watch', 'leaves')]), 'hand edit undone', 5000);
  });
});
