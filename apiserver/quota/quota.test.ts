// ResourceQuota enforcement against a real etcd and the real API server (HTTP), and the quota
// controller on a real client: the concurrent-create race, flavor-based vCPU/memory accounting,
// dryRun, charged updates, releases after deletions and drift repair.
import { jsonRequest, plainHttpClient, startTestResourceStore } from '../../testing/resource-store.js';
import type { JsonReply, TestResourceStore } from '../../testing/resource-store.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultCrdDir, Registry } from '../../api/registry.js';
import { Validator } from '../../api/validation.js';
import { Store } from '../../store/store.js';
import { waitFor } from '../../testing/etcd.js';
import type { TestEtcd } from '../../testing/etcd.js';
import { ResourceStore } from '../resource-store.js';
import { ApiServer } from '../server.js';
import { QuotaCharger } from './charger.js';
import { KovaClient } from '../../client/client.js';
import { startQuotaController } from '../../controllers/quota/quota-controller.js';
import { startDefaultQuotaController } from '../../controllers/namespace/default-quota.js';

let env: TestResourceStore;
let store: Store;
let resources: ResourceStore;
let charger: QuotaCharger;
let server: ApiServer;
let base: string;
let client: KovaClient;

type Reply = JsonReply;
const req = (method: string, path: string, body?: unknown, contentType?: string): Promise<Reply> => jsonRequest(base, method, path, body, contentType);

const nsPath = (ns: string) => `/api/v1/namespaces/${ns}`;
const kova = (ns: string, plural: string) => `/apis/kova.dev/v1alpha1/namespaces/${ns}/${plural}`;

async function namespace(name: string): Promise<void> {
  assert.equal((await req('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } })).code, 201);
  await waitFor(async () => (await resources.namespaces.state(name)) === 'active', `namespace ${name}`);
}

async function quota(ns: string, name: string, hard: Record<string, string>, status?: unknown): Promise<void> {
  const r = await req('POST', `${nsPath(ns)}/resourcequotas`, { apiVersion: 'v1', kind: 'ResourceQuota', metadata: { name }, spec: { hard }, status });
  assert.equal(r.code, 201, JSON.stringify(r.body));
  // The charger's cache is fed by a watch: wait until it knows the quota.
  await waitFor(async () => charger.applies(resources.registry.lookup('kova.dev', 'v1alpha1', 'instances')!, ns) || charger.applies(resources.registry.lookup('kova.dev', 'v1alpha1', 'volumes')!, ns), `quota ${ns}/${name} cached`);
}

const instance = (name: string, spec: Record<string, unknown> = { flavor: 'q.medium' }) => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', metadata: { name }, spec: { image: 'img', ...spec } });
const used = async (ns: string, name: string) => (await req('GET', `${nsPath(ns)}/resourcequotas/${name}`)).body.status?.used as Record<string, string> | undefined;

before(async () => {
  env = await startTestResourceStore();
  store = env.store;
  const registry = env.registry;
  resources = env.resources;
  charger = new QuotaCharger(store, registry);
  await charger.start();
  resources.quota = charger;
  server = new ApiServer({ registry, resources, log: () => undefined });
  const { port } = await server.listen('127.0.0.1', 0);
  base = `http://127.0.0.1:${port}`;
  client = plainHttpClient(base, 'quota-test');
  for (const [name, vcpus, memory] of [['q.medium', 2, '2Gi'], ['q.large', 4, '8Gi']] as const) {
    assert.equal((await req('POST', '/apis/kova.dev/v1alpha1/flavors', { apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: { name }, spec: { vcpus, memory, disk: '1Gi' } })).code, 201);
  }
});

after(async () => {
  client?.close();
  await server?.close();
  await charger?.stop();
  await env?.stop();
});

describe('quota admission (real etcd, real API server)', () => {
  test('32 concurrent creates against count/instances.kova.dev=10 admit exactly 10; the rest get 403 with the exact message', async () => {
    await namespace('race');
    await quota('race', 'q', { 'count/instances.kova.dev': '10' });
    const replies = await Promise.all(Array.from({ length: 32 }, (_, i) => req('POST', kova('race', 'instances'), instance(`vm-${i}`))));
    const ok = replies.filter((r) => r.code === 201);
    const refused = replies.filter((r) => r.code === 403);
    assert.equal(ok.length, 10, `codes: ${replies.map((r) => r.code).join(',')}`);
    assert.equal(refused.length, 22);
    for (const r of refused) {
      const name = /instances.kova.dev "(vm-\d+)"/.exec(r.body.message)?.[1];
      assert.equal(r.body.message, `instances.kova.dev "${name}" is forbidden: exceeded quota: q, requested: count/instances.kova.dev=1, used: count/instances.kova.dev=10, limited: count/instances.kova.dev=10`);
      assert.equal(r.body.reason, 'Forbidden');
      assert.deepEqual(r.body.details, { name, group: 'kova.dev', kind: 'instances' });
    }
    assert.equal((await store.list('/registry/kova.dev/instances/race/')).items.length, 10);
    assert.deepEqual(await used('race', 'q'), { 'count/instances.kova.dev': '10' });
  });

  test('vCPUs and memory are charged from the flavor (or spec.resources); over either is refused naming both', async () => {
    await namespace('sizes');
    await quota('sizes', 'compute', { 'requests.vcpus': '5', 'requests.memory': '6Gi', 'count/instances.kova.dev': '100' });
    assert.equal((await req('POST', kova('sizes', 'instances'), instance('a'))).code, 201);
    assert.equal((await req('POST', kova('sizes', 'instances'), instance('b', { resources: { vcpus: 1, memory: '512Mi', disk: '1Gi' } }))).code, 201);
    assert.deepEqual(await used('sizes', 'compute'), { 'requests.vcpus': '3', 'requests.memory': '2560Mi', 'count/instances.kova.dev': '2' });
    const r = await req('POST', kova('sizes', 'instances'), instance('c', { flavor: 'q.large' }));
    assert.equal(r.code, 403);
    assert.equal(r.body.message, 'instances.kova.dev "c" is forbidden: exceeded quota: compute, requested: requests.memory=8Gi,requests.vcpus=4, used: requests.memory=2560Mi,requests.vcpus=3, limited: requests.memory=6Gi,requests.vcpus=5');
    // Fits exactly: 3 + 2 = 5 vCPUs, 2.5Gi + 2Gi <= 6Gi.
    assert.equal((await req('POST', kova('sizes', 'instances'), instance('d'))).code, 201);
    const missing = await req('POST', kova('sizes', 'instances'), instance('e', { flavor: 'nope' }));
    assert.equal(missing.code, 403);
    assert.match(missing.body.message, /^instances.kova.dev "e" is forbidden: failed quota: compute: flavor "nope" not found/);
    assert.deepEqual(await used('sizes', 'compute'), { 'requests.vcpus': '5', 'requests.memory': '4608Mi', 'count/instances.kova.dev': '3' });
  });

  test('dryRun creates are checked but not charged', async () => {
    await namespace('dry');
    await quota('dry', 'q', { 'count/instances.kova.dev': '1' });
    const d = await req('POST', `${kova('dry', 'instances')}?dryRun=All`, instance('x'));
    assert.equal(d.code, 201);
    assert.equal(await store.get('/registry/kova.dev/instances/dry/x'), undefined);
    assert.equal((await used('dry', 'q'))?.['count/instances.kova.dev'] ?? '0', '0');
    assert.equal((await req('POST', kova('dry', 'instances'), instance('x'))).code, 201);
    const over = await req('POST', `${kova('dry', 'instances')}?dryRun=All`, instance('y'));
    assert.equal(over.code, 403);
    assert.match(over.body.message, /exceeded quota: q, requested: count\/instances.kova.dev=1, used: count\/instances.kova.dev=1, limited: count\/instances.kova.dev=1$/);
    assert.deepEqual(await used('dry', 'q'), { 'count/instances.kova.dev': '1' });
  });

  test('a flavor change is charged, or refused when it would exceed; a volume resize likewise', async () => {
    await namespace('resize');
    await quota('resize', 'q', { 'requests.vcpus': '4', 'requests.storage': '10Gi' });
    assert.equal((await req('POST', kova('resize', 'instances'), instance('a'))).code, 201);
    const big = await req('PATCH', `${kova('resize', 'instances')}/a`, { spec: { flavor: 'q.large' } }, 'application/merge-patch+json');
    assert.equal(big.code, 200, JSON.stringify(big.body));
    assert.equal((await used('resize', 'q'))?.['requests.vcpus'], '4');
    assert.equal((await req('POST', kova('resize', 'instances'), instance('b'))).code, 403);
    assert.equal((await req('PATCH', `${kova('resize', 'instances')}/a`, { spec: { flavor: 'q.medium' } }, 'application/merge-patch+json')).code, 200);
    assert.equal((await used('resize', 'q'))?.['requests.vcpus'], '2');
    const vol = (name: string, size: string) => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'Volume', metadata: { name }, spec: { size } });
    assert.equal((await req('POST', kova('resize', 'volumes'), vol('v1', '6Gi'))).code, 201);
    const r = await req('POST', kova('resize', 'volumes'), vol('v2', '5Gi'));
    assert.equal(r.code, 403);
    assert.equal(r.body.message, 'volumes.kova.dev "v2" is forbidden: exceeded quota: q, requested: requests.storage=5Gi, used: requests.storage=6Gi, limited: requests.storage=10Gi');
    const grow = await req('PATCH', `${kova('resize', 'volumes')}/v1`, { spec: { size: '11Gi' } }, 'application/merge-patch+json');
    assert.equal(grow.code, 403);
    assert.equal((await used('resize', 'q'))?.['requests.storage'], '6Gi');
  });

  test('objects made before the quota are counted at its first charge (a status sent with the quota is dropped)', async () => {
    await namespace('before');
    for (const n of ['a', 'b', 'c']) assert.equal((await req('POST', kova('before', 'instances'), instance(n))).code, 201);
    await quota('before', 'q', { 'count/instances.kova.dev': '4' }, { used: { 'count/instances.kova.dev': '0' } });
    assert.equal((await req('POST', kova('before', 'instances'), instance('d'))).code, 201);
    const r = await req('POST', kova('before', 'instances'), instance('e'));
    assert.equal(r.code, 403);
    assert.match(r.body.message, /used: count\/instances.kova.dev=4, limited: count\/instances.kova.dev=4$/);
  });

  test('a namespace without quotas takes the plain path; kinds a quota does not track are not charged', async () => {
    await namespace('free');
    const info = resources.registry.lookup('kova.dev', 'v1alpha1', 'instances')!;
    assert.equal(charger.applies(info, 'free'), false);
    assert.equal(charger.applies(resources.registry.lookup('kova.dev', 'v1alpha1', 'networks')!, 'race'), false);
    assert.equal(charger.applies(info, 'race'), true);
  });

  test('quota validation: unknown resource names and scopes are refused naming the field', async () => {
    const r = await req('POST', `${nsPath('race')}/resourcequotas`, { apiVersion: 'v1', kind: 'ResourceQuota', metadata: { name: 'bad' }, spec: { hard: { 'requests.cpu': '1' }, scopes: ['BestEffort'] } });
    assert.equal(r.code, 422);
    assert.deepEqual(r.body.details.causes.map((c: { field: string }) => c.field), ['spec.hard[requests.cpu]', 'spec.scopes']);
    const neg = await req('POST', `${nsPath('race')}/resourcequotas`, { apiVersion: 'v1', kind: 'ResourceQuota', metadata: { name: 'bad' }, spec: { hard: { 'count/instances.kova.dev': '-1' } } });
    assert.equal(neg.code, 422);
    assert.match(JSON.stringify(neg.body.details.causes), /spec.hard\[count\/instances.kova.dev\]/);
  });
});

describe('quota controller (real client)', () => {
  const stop = new AbortController();
  before(async () => {
    await startQuotaController({ client, signal: stop.signal, log: () => undefined, resyncMs: 500 });
  });
  after(() => stop.abort());

  test('status.used drops after deletions, and status.hard follows spec.hard', async () => {
    await namespace('release');
    await quota('release', 'q', { 'count/instances.kova.dev': '3', 'requests.vcpus': '10' });
    for (const n of ['a', 'b', 'c']) assert.equal((await req('POST', kova('release', 'instances'), instance(n))).code, 201);
    assert.equal((await req('POST', kova('release', 'instances'), instance('d'))).code, 403);
    for (const n of ['a', 'b']) assert.equal((await req('DELETE', `${kova('release', 'instances')}/${n}`)).code, 200);
    await waitFor(async () => (await used('release', 'q'))?.['count/instances.kova.dev'] === '1', 'used released');
    assert.equal((await used('release', 'q'))?.['requests.vcpus'], '2');
    assert.equal((await req('POST', kova('release', 'instances'), instance('d'))).code, 201);
    const q = (await req('GET', `${nsPath('release')}/resourcequotas/q`)).body;
    assert.deepEqual(q.status.hard, { 'count/instances.kova.dev': '3', 'requests.vcpus': '10' });
  });

  test('drift (status.used edited as after a crash) is repaired', async () => {
    const q = (await req('GET', `${nsPath('race')}/resourcequotas/q`)).body;
    const edited = await req('PUT', `${nsPath('race')}/resourcequotas/q/status`, { ...q, status: { hard: q.status.hard, used: { 'count/instances.kova.dev': '3' } } });
    assert.equal(edited.code, 200);
    assert.equal((await used('race', 'q'))?.['count/instances.kova.dev'], '3');
    await waitFor(async () => (await used('race', 'q'))?.['count/instances.kova.dev'] === '10', 'drift repaired');
  });
});

describe('default quota for new namespaces', () => {
  const stop = new AbortController();
  after(() => stop.abort());

  test('a new namespace gets ResourceQuota default from kova-system/quota-defaults; system namespaces and opted-out ones do not', async () => {
    await namespace('kova-system');
    const data = { 'count/instances.kova.dev': '10', 'requests.vcpus': '20', 'requests.memory': '50Gi' };
    assert.equal((await req('POST', `${nsPath('kova-system')}/configmaps`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'quota-defaults' }, data })).code, 201);
    await startDefaultQuotaController({ client, signal: stop.signal, log: () => undefined });
    await namespace('project-a');
    assert.equal((await req('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'project-b', annotations: { 'kova.dev/default-quota': 'none' } } })).code, 201);
    await waitFor(async () => (await req('GET', `${nsPath('project-a')}/resourcequotas/default`)).code === 200, 'default quota');
    const q = (await req('GET', `${nsPath('project-a')}/resourcequotas/default`)).body;
    assert.deepEqual(q.spec.hard, data);
    await waitFor(async () => (await req('GET', nsPath('project-a'))).body.metadata.annotations?.['kova.dev/default-quota'] === 'applied', 'annotated');
    // Existing namespaces got it too (the defaults appeared after them), but not kova-system or the opted-out one.
    assert.equal((await req('GET', `${nsPath('race')}/resourcequotas/default`)).code, 200);
    assert.equal((await req('GET', `${nsPath('kova-system')}/resourcequotas/default`)).code, 404);
    assert.equal((await req('GET', `${nsPath('project-b')}/resourcequotas/default`)).code, 404);
    // Deleting it sticks (the annotation remembers it was applied).
    assert.equal((await req('DELETE', `${nsPath('project-a')}/resourcequotas/default`)).code, 200);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await req('GET', `${nsPath('project-a')}/resourcequotas/default`)).code, 404);
  });
});
