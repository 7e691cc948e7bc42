// Migration admission through the real API server (HTTP) on a real etcd: a Migration must name
// an instance that exists, is not being deleted and runs on a host, a target Host that exists
// and is not the current one, and no other unfinished Migration of the instance may exist
// (KubeVirt's in-flight check), by POST and server-side apply; its spec never changes (update,
// merge and JSON patch, apply), with the exact 422 a client gets and nothing stored.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../../testing/etcd.js';
import { jsonRequest, startTestResourceStore } from '../../testing/resource-store.js';
import type { JsonReply, TestResourceStore } from '../../testing/resource-store.js';
import { ApiServer } from '../server.js';
import { MigrationAdmission } from './migration-admission.js';

let env: TestResourceStore;
let server: ApiServer;
let base: string;

const req = (method: string, path: string, body?: unknown, contentType?: string): Promise<JsonReply> => jsonRequest(base, method, path, body, contentType);

const API = '/apis/kova.dev/v1alpha1';
const at = (ns: string, plural: string, name = '') => `${API}/namespaces/${ns}/${plural}${name ? `/${name}` : ''}`;
const demo = (plural: string, name = '') => at('demo', plural, name);
const MERGE = 'application/merge-patch+json';
const JSON_PATCH = 'application/json-patch+json';
const APPLY = 'application/apply-patch+yaml';

const migration = (name: string | { generateName: string }, spec: Record<string, unknown>) => ({
  apiVersion: 'kova.dev/v1alpha1', kind: 'Migration', metadata: typeof name === 'string' ? { name } : name, spec,
});

async function created(path: string, body: unknown): Promise<Record<string, any>> {
  const r = await req('POST', path, body);
  assert.equal(r.code, 201, JSON.stringify(r.body));
  return r.body;
}

/** The 422 a write got: its message and, when given, its causes (field and reason). */
function refused(r: JsonReply, message: string, causes?: Array<{ field: string; reason: string }>): void {
  assert.equal(r.code, 422, JSON.stringify(r.body));
  assert.equal(r.body.reason, 'Invalid');
  assert.equal(r.body.message, message);
  if (causes) assert.deepEqual(r.body.details.causes.map((c: { field: string; reason: string }) => ({ field: c.field, reason: c.reason })), causes);
}

/** Writes status through the status subresource, as the controller would. */
async function setStatus(ns: string, plural: string, name: string, status: Record<string, unknown>): Promise<Record<string, any>> {
  const cur = (await req('GET', at(ns, plural, name))).body;
  const r = await req('PUT', `${at(ns, plural, name)}/status`, { ...cur, status });
  assert.equal(r.code, 200, JSON.stringify(r.body));
  return r.body;
}

async function instance(ns: string, name: string, hostName?: string): Promise<void> {
  await created(at(ns, 'instances'), { apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', metadata: { name }, spec: { flavor: 'm1.tiny', image: 'tiny' } });
  if (hostName) await setStatus(ns, 'instances', name, { hostName, phase: 'Running' });
}

const migrationNames = async (ns = 'demo') => ((await req('GET', at(ns, 'migrations'))).body.items as Array<{ metadata: { name: string } }>).map((m) => m.metadata.name).sort();

before(async () => {
  env = await startTestResourceStore(['demo', 'other']);
  await waitFor(async () => (await env.resources.namespaces.state('other')) === 'active', 'namespaces');
  server = new ApiServer({ registry: env.registry, resources: env.resources, admission: [new MigrationAdmission(env.resources)], log: () => undefined });
  base = `http://127.0.0.1:${(await server.listen('127.0.0.1', 0)).port}`;
  for (const h of ['host-a', 'host-b']) await created(`${API}/hosts`, { apiVersion: 'kova.dev/v1alpha1', kind: 'Host', metadata: { name: h }, spec: {} });
  await instance('demo', 'web', 'host-a');
  await instance('demo', 'db', 'host-b');
  await instance('demo', 'fresh');
  await instance('demo', 'leaving', 'host-a');
  await instance('other', 'web', 'host-a');
  // "leaving" is being deleted: a finalizer holds it.
  assert.equal((await req('PATCH', demo('instances', 'leaving'), { metadata: { finalizers: ['example.com/hold'] } }, MERGE)).code, 200);
  assert.equal((await req('DELETE', demo('instances', 'leaving'))).code, 202);
});

after(async () => {
  await server?.close();
  await env?.stop();
});

describe('migration admission through the API server (real etcd)', () => {
  test('the instance must exist, not be going away, and run on a host', async () => {
    refused(await req('POST', demo('migrations'), migration('m', { instance: 'nope' })),
      'Migration.kova.dev "m" is invalid: spec.instance: Not found: "nope"', [{ field: 'spec.instance', reason: 'FieldValueNotFound' }]);
    refused(await req('POST', demo('migrations'), migration({ generateName: 'fresh-' }, { instance: 'fresh' })),
      'Migration.kova.dev "fresh-" is invalid: spec.instance: Invalid value: "fresh": instance "fresh" is not running on any host yet');
    refused(await req('POST', demo('migrations'), migration('m', { instance: 'leaving' })),
      'Migration.kova.dev "m" is invalid: spec.instance: Invalid value: "leaving": instance "leaving" is being deleted');
    // An instance of another project is not one of this namespace's.
    await instance('other', 'only-there', 'host-a');
    refused(await req('POST', demo('migrations'), migration('m', { instance: 'only-there' })), 'Migration.kova.dev "m" is invalid: spec.instance: Not found: "only-there"');
    assert.deepEqual(await migrationNames(), [], 'nothing stored');
  });

  test('spec.targetHost must be an existing Host other than the current one', async () => {
    refused(await req('POST', demo('migrations'), migration('m', { instance: 'web', targetHost: 'host-z' })),
      'Migration.kova.dev "m" is invalid: spec.targetHost: Not found: "host-z"', [{ field: 'spec.targetHost', reason: 'FieldValueNotFound' }]);
    refused(await req('POST', demo('migrations'), migration('m', { instance: 'web', targetHost: 'host-a' })),
      'Migration.kova.dev "m" is invalid: spec.targetHost: Invalid value: "host-a": instance "web" already runs on host "host-a"', [{ field: 'spec.targetHost', reason: 'FieldValueInvalid' }]);
    refused(await req('POST', demo('migrations'), migration('m', { instance: 'nope', targetHost: 'host-z' })),
      'Migration.kova.dev "m" is invalid: [spec.instance: Not found: "nope", spec.targetHost: Not found: "host-z"]');
    refused(await req('PATCH', `${demo('migrations', 'm')}?fieldManager=ops`, migration('m', { instance: 'web', targetHost: 'host-a' }), APPLY),
      'Migration.kova.dev "m" is invalid: spec.targetHost: Invalid value: "host-a": instance "web" already runs on host "host-a"');
    assert.deepEqual(await migrationNames(), [], 'nothing stored');
  });

  test('one unfinished migration per instance: a second is refused naming the first, by POST and apply', async () => {
    const first = await created(demo('migrations'), migration({ generateName: 'web-' }, { instance: 'web', targetHost: 'host-b' }));
    assert.match(first.metadata.name, /^web-[a-z0-9]{5}$/);
    const msg = `Migration.kova.dev "again" is invalid: spec.instance: Forbidden: in-flight migration detected: Migration "${first.metadata.name}" of instance "web" is in phase Pending; wait for it to end, or delete it to abort it`;
    refused(await req('POST', demo('migrations'), migration('again', { instance: 'web' })), msg, [{ field: 'spec.instance', reason: 'FieldValueForbidden' }]);
    refused(await req('PATCH', `${demo('migrations', 'again')}?fieldManager=ops`, migration('again', { instance: 'web', mode: 'Cold' }), APPLY), msg);
    for (const phase of ['Scheduling', 'PreparingTarget', 'Running']) {
      await setStatus('demo', 'migrations', first.metadata.name, { phase, sourceHost: 'host-a', targetHost: 'host-b' });
      refused(await req('POST', demo('migrations'), migration('again', { instance: 'web' })), msg.replace('phase Pending', `phase ${phase}`));
    }
    // Other instances, and the same name in another project, are not held up.
    await created(demo('migrations'), migration('db-1', { instance: 'db' }));
    await created(at('other', 'migrations'), migration('web-1', { instance: 'web' }));
    assert.deepEqual(await migrationNames(), [first.metadata.name, 'db-1'].sort());

    // Once it failed, a new one may be created at once (and once that one succeeded, another).
    await setStatus('demo', 'migrations', first.metadata.name, { phase: 'Failed', sourceHost: 'host-a', targetHost: 'host-b' });
    await created(demo('migrations'), migration('again', { instance: 'web' }));
    await setStatus('demo', 'migrations', 'again', { phase: 'Succeeded', sourceHost: 'host-a', targetHost: 'host-b' });
    const applied = await req('PATCH', `${demo('migrations', 'third')}?fieldManager=ops`, migration('third', { instance: 'web' }), APPLY);
    assert.equal(applied.code, 201, JSON.stringify(applied.body));
  });

  test('a migration being deleted still holds the instance until its abort is over', async () => {
    // "third" is unfinished; the controller's abort finalizer keeps it while it aborts.
    assert.equal((await req('PATCH', demo('migrations', 'third'), { metadata: { finalizers: ['kova.dev/migration-abort'] } }, MERGE)).code, 200);
    await setStatus('demo', 'migrations', 'third', { phase: 'Running', sourceHost: 'host-a', targetHost: 'host-b' });
    assert.equal((await req('DELETE', demo('migrations', 'third'))).code, 202);
    refused(await req('POST', demo('migrations'), migration('fourth', { instance: 'web' })),
      'Migration.kova.dev "fourth" is invalid: spec.instance: Forbidden: in-flight migration detected: Migration "third" of instance "web" is being aborted (phase Running); wait for it to end, or delete it to abort it');
    await setStatus('demo', 'migrations', 'third', { phase: 'Failed', sourceHost: 'host-a', targetHost: 'host-b' });
    await created(demo('migrations'), migration('fourth', { instance: 'web', targetHost: 'host-b' }));
  });

  test('spec is immutable: update, merge and JSON patch, and apply are refused; nothing is stored', async () => {
    const cur = (await req('GET', demo('migrations', 'fourth'))).body;
    assert.equal(cur.spec.completionTimeoutPerGiB, 150, 'defaulted');
    const msg = 'Migration.kova.dev "fourth" is invalid: spec: Forbidden: a Migration\'s spec cannot change after it is created: delete it (which aborts it while it runs) and create another';
    refused(await req('PATCH', demo('migrations', 'fourth'), { spec: { targetHost: 'host-c' } }, MERGE), msg, [{ field: 'spec', reason: 'FieldValueForbidden' }]);
    refused(await req('PATCH', demo('migrations', 'fourth'), { spec: { bandwidth: '64Mi' } }, MERGE), msg);
    refused(await req('PATCH', demo('migrations', 'fourth'), [{ op: 'replace', path: '/spec/instance', value: 'db' }], JSON_PATCH), msg);
    refused(await req('PUT', demo('migrations', 'fourth'), { ...cur, spec: { ...cur.spec, allowPostCopy: true } }), msg);
    refused(await req('PATCH', `${demo('migrations', 'fourth')}?fieldManager=ops&force=true`, migration('fourth', { instance: 'web', targetHost: 'host-b', mode: 'Cold' }), APPLY), msg);
    assert.equal((await req('GET', demo('migrations', 'fourth'))).body.metadata.resourceVersion, cur.metadata.resourceVersion, 'nothing stored');
    // The same spec again (kubectl replace of the manifest, without the defaulted timeouts), labels and finalizers pass.
    const replaced = await req('PUT', demo('migrations', 'fourth'), { ...migration('fourth', { instance: 'web', targetHost: 'host-b' }), metadata: { name: 'fourth', resourceVersion: cur.metadata.resourceVersion } });
    assert.equal(replaced.code, 200, JSON.stringify(replaced.body));
    assert.equal((await req('PATCH', demo('migrations', 'fourth'), { metadata: { labels: { why: 'patching' } } }, MERGE)).code, 200);
    const reapplied = await req('PATCH', `${demo('migrations', 'fourth')}?fieldManager=ops`, migration('fourth', { instance: 'web', targetHost: 'host-b' }), APPLY);
    assert.equal(reapplied.code, 200, JSON.stringify(reapplied.body));
  });

  test('status goes through the status subresource, which never changes spec', async () => {
    const cur = (await req('GET', demo('migrations', 'fourth'))).body;
    const r = await req('PUT', `${demo('migrations', 'fourth')}/status`, { ...cur, spec: { instance: 'db' }, status: { phase: 'Running', progress: 40 } });
    assert.equal(r.code, 200, JSON.stringify(r.body));
    assert.equal(r.body.spec.instance, 'web');
    assert.equal(r.body.status.progress, 40);
  });

  test('malformed bodies reach validation (a 422 from the schema), never a 500 or a read of an odd key', async () => {
    const bodies: unknown[] = [
      migration('odd-1', {}),
      migration('odd-2', { instance: 7 }),
      migration('odd-3', { instance: '../../hosts/host-a' }),
      migration('odd-4', { instance: 'db', targetHost: 'Host_A' }),
      { apiVersion: 'kova.dev/v1alpha1', kind: 'Migration', metadata: { name: 'odd-5' }, spec: 'web' },
    ];
    for (const b of bodies) {
      const r = await req('POST', demo('migrations'), b);
      assert.equal(r.code, 422, `${JSON.stringify(b)}: ${JSON.stringify(r.body)}`);
    }
  });
});
