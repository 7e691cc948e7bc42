// Quotas end to end: the real `kova up` (two API worker processes, controllers, seeded defaults)
// and the real kubectl: `kubectl create quota` (a protobuf body), `kubectl get quota`,
// `kubectl describe quota`, a race of concurrent kubectl creates across both API processes,
// releases after deletions and the default quota of new projects.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, startKova } from './harness.js';
import type { Kova } from './harness.js';

const instance = (ns: string, name: string, flavor = 'm1.small') =>
  `apiVersion: kova.dev/v1alpha1\nkind: Instance\nmetadata: {name: ${name}, namespace: ${ns}}\nspec: {flavor: ${flavor}, image: none, runStrategy: Halted}\n`;

describe('quotas (kova up, kubectl)', () => {
  let k: Kova;
  const usedOf = async (ns: string, name: string): Promise<Record<string, string>> => JSON.parse(await k.k(['get', 'quota', name, '-n', ns, '-o', 'json'])).status?.used ?? {};
  before(async () => {
    k = await startKova(['--driver', 'sim', '--sim-hosts', '1', '--no-agents', '--api-workers', '2']);
  });
  after(async () => {
    await k?.stop();
  });

  test('a new project gets the default quota from kova-system/quota-defaults; kova-system gets none', async () => {
    const data = JSON.parse(await k.k(['get', 'configmap', 'quota-defaults', '-n', 'kova-system', '-o', 'jsonpath={.data}']));
    assert.deepEqual(data, {
      'count/instances.kova.dev': '10', 'requests.vcpus': '20', 'requests.memory': '50Gi',
      'count/volumes.kova.dev': '10', 'requests.storage': '1000Gi', 'count/floatingips.kova.dev': '10',
    });
    await k.k(['create', 'namespace', 'proj-a']);
    const hard = await eventually(async () => {
      const r = await k.kubectl(['get', 'quota', 'default', '-n', 'proj-a', '-o', 'jsonpath={.status.hard}']);
      return r.code === 0 && r.stdout ? JSON.parse(r.stdout) : undefined;
    }, 20_000, 'default quota with status');
    assert.deepEqual(hard, data);
    // Applied once: the namespace remembers it, so deleting the quota lifts the limits for good.
    await eventually(async () => (await k.k(['get', 'namespace', 'proj-a', '-o', 'jsonpath={.metadata.annotations.kova\\.dev/default-quota}'])) === 'applied', 20_000, 'namespace annotated');
    const used = JSON.parse(await k.k(['get', 'quota', 'default', '-n', 'proj-a', '-o', 'jsonpath={.status.used}']));
    assert.deepEqual(used, { 'count/instances.kova.dev': '0', 'requests.vcpus': '0', 'requests.memory': '0', 'count/volumes.kova.dev': '0', 'requests.storage': '0', 'count/floatingips.kova.dev': '0' });
    assert.equal((await k.k(['get', 'quota', '-n', 'kova-system', '-o', 'name'])).trim(), '');
    await eventually(async () => (await k.kubectl(['get', 'quota', 'default', '-n', 'default'])).code === 0, 20_000, 'the default namespace is a project too');
  });

  test('kubectl create quota, get quota (AGE, REQUEST, LIMIT) and describe quota; over quota is 403 with kube\'s message', async () => {
    // Opted out of the defaults, so only q applies.
    await k.k(['apply', '-f', '-'], { input: 'apiVersion: v1\nkind: Namespace\nmetadata: {name: proj-b, annotations: {kova.dev/default-quota: none}}\n' });
    const created = await k.k(['create', 'quota', 'q', '-n', 'proj-b', '--hard=count/instances.kova.dev=2,requests.vcpus=20']);
    assert.match(created, /resourcequota\/q created/);
    await k.k(['apply', '-f', '-'], { input: instance('proj-b', 'a') + '---\n' + instance('proj-b', 'b', 'm1.medium') });
    const over = await k.kubectl(['apply', '-f', '-'], { input: instance('proj-b', 'c') });
    assert.notEqual(over.code, 0);
    assert.match(over.stderr, /instances.kova.dev "c" is forbidden: exceeded quota: q, requested: count\/instances.kova.dev=1, used: count\/instances.kova.dev=2, limited: count\/instances.kova.dev=2/);
    const table = await k.k(['get', 'quota', '-n', 'proj-b']);
    const [head, row] = table.trim().split('\n');
    assert.match(head!, /^NAME\s+AGE\s+REQUEST\s+LIMIT$/);
    assert.match(row!, /^q\s+\d+s\s+count\/instances.kova.dev: 2\/2, requests.vcpus: 3\/20\s*$/);
    const described = await k.k(['describe', 'quota', 'q', '-n', 'proj-b']);
    assert.match(described, /Name:\s+q\n/);
    assert.match(described, /Namespace:\s+proj-b\n/);
    assert.match(described, /Resource\s+Used\s+Hard\n/);
    assert.match(described, /count\/instances.kova.dev\s+2\s+2\n/);
    assert.match(described, /requests.vcpus\s+3\s+20\n/);
    // A deletion frees its share (the quota controller recomputes); the next create fits.
    await k.k(['delete', 'instance', 'a', '-n', 'proj-b']);
    await eventually(async () => (await usedOf('proj-b', 'q'))['count/instances.kova.dev'] === '1', 20_000, 'used back to 1');
    await k.k(['apply', '-f', '-'], { input: instance('proj-b', 'c') });
  });

  test('32 concurrent kubectl creates across two API server processes against a quota of 10 admit exactly 10', async () => {
    await k.k(['apply', '-f', '-'], { input: 'apiVersion: v1\nkind: Namespace\nmetadata: {name: race, annotations: {kova.dev/default-quota: none}}\n' });
    await k.k(['create', 'quota', 'q', '-n', 'race', '--hard=count/instances.kova.dev=10']);
    // Both API processes' quota caches are fed by watches; give them a moment to see it.
    await new Promise((r) => setTimeout(r, 1000));
    const results = await Promise.all(Array.from({ length: 32 }, (_, i) => k.kubectl(['create', '-f', '-'], { input: instance('race', `vm-${i}`) })));
    const ok = results.filter((r) => r.code === 0).length;
    assert.equal(ok, 10, results.map((r) => r.stderr).join(''));
    for (const r of results.filter((x) => x.code !== 0)) {
      assert.match(r.stderr, /Error from server \(Forbidden\).*instances.kova.dev "vm-\d+" is forbidden: exceeded quota: q, requested: count\/instances.kova.dev=1, used: count\/instances.kova.dev=10, limited: count\/instances.kova.dev=10/);
    }
    assert.equal((await k.k(['get', 'instances', '-n', 'race', '-o', 'name'])).trim().split('\n').length, 10);
    assert.equal((await usedOf('race', 'q'))['count/instances.kova.dev'], '10');
  });
});
