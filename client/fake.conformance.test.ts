// One table of API behaviours run against FakeClient and against KovaClient on a real API
// server (real etcd, the CRDs, no controllers), so the fake cannot drift from the real thing.
import { plainHttpClient } from '../testing/resource-store.js';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { defaultCrdDir, Registry } from '../api/registry.js';
import { Validator } from '../api/validation.js';
import { ResourceStore } from '../apiserver/resource-store.js';
import { ApiServer } from '../apiserver/server.js';
import { Store } from '../store/store.js';
import { startTestEtcd, waitFor } from '../testing/etcd.js';
import type { TestEtcd } from '../testing/etcd.js';
import { StatusError, FLAVORS, HOSTS, INSTANCES, isAlreadyExists, isConflict, isNotFound, KEYPAIRS, KovaClient, NAMESPACES, updateStatusFrom } from './client.js';
import type { ApiClient, KObject, WatchEventType } from './client.js';
import { FakeClient } from './fake.js';

type Case = (c: ApiClient, ns: string) => Promise<void>;

const rvOf = (o: KObject | undefined) => Number(o?.metadata.resourceVersion);
const statusOf = (o: KObject | undefined) => (o?.status ?? {}) as Record<string, unknown>;
const specOf = (o: KObject | undefined) => (o?.spec ?? {}) as Record<string, unknown>;
const code = (n: number, reason?: string) => (e: unknown) => e instanceof StatusError && e.code === n && (!reason || e.reason === reason);

const inst = (ns: string, name: string, labels?: Record<string, string>, flavor = 'cf.small') => ({ metadata: { name, namespace: ns, labels }, spec: { flavor, image: 'tiny' } });

/** Collects a watch's events; `until` resolves once `pred` holds for what was seen. */
async function record(c: ApiClient, kind: typeof INSTANCES, ns: string | undefined, opts: { resourceVersion?: string; fieldSelector?: string; labelSelector?: string }) {
  const events: Array<{ type: WatchEventType; name: string; rv: number; obj: KObject }> = [];
  let wake = () => {};
  const h = await c.watch(kind, ns, opts, (type, obj) => {
    events.push({ type, name: obj.metadata?.name ?? '', rv: Number(obj.metadata?.resourceVersion), obj });
    wake();
  }, () => undefined);
  const until = async (pred: () => boolean, what: string) => {
    const deadline = Date.now() + 10_000;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; saw ${JSON.stringify(events.map((e) => [e.type, e.name]))}`);
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 200);
      });
    }
  };
  return { events, until, stop: () => h.abort() };
}

const CASES: Record<string, Case> = {
  'create fills server fields; get; AlreadyExists; missing namespace is 404': async (c, ns) => {
    const a = await c.create(INSTANCES, inst(ns, 'a'));
    assert.equal(a.apiVersion, 'kova.dev/v1alpha1');
    assert.equal(a.kind, 'Instance');
    assert.ok(a.metadata.uid);
    assert.ok(a.metadata.creationTimestamp);
    assert.equal(a.metadata.generation, 1);
    assert.ok(rvOf(a) > 0);
    assert.deepEqual(a.status, { phase: 'Pending' }, 'a new Instance is Pending');
    const k = await c.create(KEYPAIRS, { metadata: { name: 'k', namespace: ns }, spec: { publicKey: 'ssh-ed25519 AAAA' }, status: { fingerprint: 'x' } });
    assert.equal(k.status, undefined, 'create drops status (status subresource)');
    const b = await c.create(INSTANCES, inst(ns, 'b'));
    assert.ok(rvOf(b) > rvOf(a), 'one growing resourceVersion');

    const got = await c.get(INSTANCES, ns, 'a');
    assert.equal(got?.metadata.uid, a.metadata.uid);
    assert.equal(got?.metadata.resourceVersion, a.metadata.resourceVersion);
    assert.equal(await c.get(INSTANCES, ns, 'nope'), undefined);
    await assert.rejects(c.create(INSTANCES, inst(ns, 'a')), (e: unknown) => {
      assert.ok(isAlreadyExists(e) && isConflict(e));
      assert.match((e as Error).message, /"a" already exists/);
      return true;
    });
    await assert.rejects(c.create(INSTANCES, inst(`${ns}-missing`, 'x')), (e: unknown) => isNotFound(e));
    const g = await c.create(INSTANCES, { metadata: { generateName: 'gen-', namespace: ns }, spec: { flavor: 'cf.small', image: 'tiny' } });
    assert.match(g.metadata.name!, /^gen-[a-z0-9]{5}$/);
  },

  'update: conflict on a stale resourceVersion; generation follows spec only; no-op keeps the version': async (c, ns) => {
    const a = await c.create(INSTANCES, inst(ns, 'a'));
    const u1 = await c.update(INSTANCES, { ...a, spec: { ...specOf(a), image: 'other' } });
    assert.ok(rvOf(u1) > rvOf(a));
    assert.equal(u1.metadata.generation, 2, 'spec change bumps generation');
    await assert.rejects(c.update(INSTANCES, { ...a, spec: { ...specOf(a), image: 'third' } }), (e: unknown) => {
      assert.ok(isConflict(e) && !isAlreadyExists(e));
      assert.equal((e as StatusError).reason, 'Conflict');
      return true;
    });
    const u2 = await c.update(INSTANCES, { ...u1, metadata: { ...u1.metadata, labels: { x: 'y' } }, status: { phase: 'Running' } });
    assert.equal(u2.metadata.generation, 2, 'metadata change does not bump generation');
    assert.deepEqual(u2.status, { phase: 'Pending' }, 'main resource writes ignore status');
    const u3 = await c.update(INSTANCES, u2);
    assert.equal(u3.metadata.resourceVersion, u2.metadata.resourceVersion, 'no-op write keeps the resourceVersion');
    await assert.rejects(c.update(INSTANCES, { ...u2, metadata: { ...u2.metadata, resourceVersion: undefined } }), code(422, 'Invalid'));
    await assert.rejects(c.update(INSTANCES, { ...u2, metadata: { ...u2.metadata, name: 'ghost' } }), code(404, 'NotFound'));
  },

  'status subresource: status writes leave spec and metadata alone; replaceStatus conflicts; updateStatus retries': async (c, ns) => {
    const a = await c.create(INSTANCES, inst(ns, 's', { keep: 'me' }));
    const p = await c.patchStatus(INSTANCES, ns, 's', { status: { phase: 'Scheduling' }, spec: { image: 'ignored' }, metadata: { labels: { keep: null } } });
    assert.equal(statusOf(p).phase, 'Scheduling');
    assert.equal(specOf(p).image, 'tiny', 'status writes ignore spec');
    assert.deepEqual(p.metadata.labels, { keep: 'me' }, 'status writes ignore metadata');
    assert.equal(p.metadata.generation, 1, 'status writes do not bump generation');
    assert.ok(rvOf(p) > rvOf(a));
    await assert.rejects(c.replaceStatus(INSTANCES, { ...a, status: { phase: 'Running' } }), (e: unknown) => isConflict(e));
    const r = await c.replaceStatus(INSTANCES, { ...p, status: { phase: 'Running' } });
    assert.equal(statusOf(r).phase, 'Running');
    // Concurrent read-modify-writes: each retries after a conflict, none is lost.
    await c.patchStatus(INSTANCES, ns, 's', { status: { restartCount: 0 } });
    await Promise.all(Array.from({ length: 8 }, () => c.updateStatus(INSTANCES, ns, 's', (o) => {
      const st = o.status as { restartCount: number };
      st.restartCount += 1;
    })));
    assert.equal(statusOf(await c.get(INSTANCES, ns, 's')).restartCount, 8, 'no lost update');
    const same = await c.updateStatus(INSTANCES, ns, 's', () => false);
    assert.equal(same?.metadata.resourceVersion, (await c.get(INSTANCES, ns, 's'))?.metadata.resourceVersion);
    assert.equal(await c.updateStatus(INSTANCES, ns, 'ghost', () => undefined), undefined);
    await assert.rejects(c.patchStatus(INSTANCES, ns, 'ghost', { status: { phase: 'Running' } }), code(404));
  },

  'updateStatusFrom: a current copy is written without a read; a stale one, or one the mutation refuses or finds done, is decided on a fresh read': async (c, ns) => {
    await c.create(INSTANCES, inst(ns, 'from'));
    const current = (await c.patchStatus(INSTANCES, ns, 'from', { status: { restartCount: 1 } }))!;
    const n = (o: KObject | undefined) => statusOf(o).restartCount as number;
    const bump = (o: KObject) => {
      (o.status as { restartCount: number }).restartCount += 1;
    };
    const a = await updateStatusFrom(c, INSTANCES, ns, 'from', current, bump);
    assert.equal(n(a), 2);
    assert.equal(rvOf(a), rvOf(await c.get(INSTANCES, ns, 'from')));
    assert.equal(n(current), 1, 'the cached copy is not changed');
    // Stale copy (1 where the server has 2): its write conflicts, the fresh read gives 3.
    assert.equal(n(await updateStatusFrom(c, INSTANCES, ns, 'from', current, bump)), 3);
    // Refused or "nothing to do" on the stale copy: asked again on the fresh object.
    const seen: number[] = [];
    const onlyAtThree = (o: KObject) => {
      seen.push(n(o));
      if (n(o) !== 3) throw new Error('not yet');
      (o.status as { phase: string }).phase = 'Running';
    };
    assert.equal(statusOf(await updateStatusFrom(c, INSTANCES, ns, 'from', current, onlyAtThree)).phase, 'Running');
    assert.deepEqual(seen, [1, 3]);
    const noop = await updateStatusFrom(c, INSTANCES, ns, 'from', current, (o) => (n(o) === 1 ? false : bump(o)));
    assert.equal(n(noop), 4, 'done on the stale copy, not on the server');
    // No copy, or gone: as updateStatus.
    assert.equal(n(await updateStatusFrom(c, INSTANCES, ns, 'from', undefined, bump)), 5);
    await c.delete(INSTANCES, ns, 'from');
    assert.equal(await updateStatusFrom(c, INSTANCES, ns, 'from', current, bump), undefined);
  },

  'merge and JSON patch: null deletes, a resourceVersion in the patch is a precondition, a failed test is 422': async (c, ns) => {
    const a = await c.create(INSTANCES, inst(ns, 'p', { a: '1', b: '2' }));
    const p = await c.mergePatch(INSTANCES, ns, 'p', { metadata: { labels: { a: null, c: '3' } } });
    assert.deepEqual(p.metadata.labels, { b: '2', c: '3' });
    assert.equal(p.metadata.generation, 1);
    const q = await c.mergePatch(INSTANCES, ns, 'p', { spec: { image: 'other' } });
    assert.equal(q.metadata.generation, 2);
    await assert.rejects(c.mergePatch(INSTANCES, ns, 'p', { metadata: { resourceVersion: a.metadata.resourceVersion, labels: { d: '4' } } }), (e: unknown) => isConflict(e));
    await assert.rejects(c.mergePatch(INSTANCES, ns, 'ghost', { metadata: { labels: { a: 'b' } } }), code(404, 'NotFound'));
    await assert.rejects(c.jsonPatch(INSTANCES, ns, 'p', [{ op: 'test', path: '/metadata/resourceVersion', value: a.metadata.resourceVersion }]), code(422));
    const j = await c.jsonPatch(INSTANCES, ns, 'p', [{ op: 'replace', path: '/spec/image', value: 'third' }]);
    assert.equal(specOf(j).image, 'third');
    const s = await c.jsonPatch(INSTANCES, ns, 'p', [{ op: 'add', path: '/status/phase', value: 'Running' }], { subresource: 'status' });
    assert.equal(statusOf(s).phase, 'Running');
  },

  'finalizers hold a deletion; the last one removed deletes; preconditions': async (c, ns) => {
    await c.create(INSTANCES, inst(ns, 'f'));
    await c.addFinalizer(INSTANCES, ns, 'f', 'kova.dev/a');
    await c.addFinalizer(INSTANCES, ns, 'f', 'kova.dev/a');
    const two = await c.addFinalizer(INSTANCES, ns, 'f', 'kova.dev/b');
    assert.deepEqual(two?.metadata.finalizers, ['kova.dev/a', 'kova.dev/b']);
    await assert.rejects(c.delete(INSTANCES, ns, 'f', { preconditions: { uid: 'not-the-uid' } }), (e: unknown) => isConflict(e));
    assert.equal(await c.delete(INSTANCES, ns, 'f'), true);
    const t = await c.get(INSTANCES, ns, 'f');
    assert.ok(t?.metadata.deletionTimestamp, 'held by finalizers');
    assert.equal(t?.metadata.generation, 2, 'marking for deletion bumps generation');
    assert.equal(await c.delete(INSTANCES, ns, 'f'), true, 'deleting again is accepted');
    assert.equal((await c.get(INSTANCES, ns, 'f'))?.metadata.resourceVersion, t?.metadata.resourceVersion, 'and changes nothing');
    await assert.rejects(c.mergePatch(INSTANCES, ns, 'f', { metadata: { finalizers: ['kova.dev/a', 'kova.dev/b', 'kova.dev/new'] } }), code(422, 'Invalid'));
    await c.removeFinalizer(INSTANCES, ns, 'f', 'kova.dev/a');
    assert.deepEqual((await c.get(INSTANCES, ns, 'f'))?.metadata.finalizers, ['kova.dev/b']);
    await c.removeFinalizer(INSTANCES, ns, 'f', 'kova.dev/b');
    assert.equal(await c.get(INSTANCES, ns, 'f'), undefined, 'gone with the last finalizer');
    assert.equal(await c.removeFinalizer(INSTANCES, ns, 'f', 'kova.dev/b'), undefined);
    await c.create(INSTANCES, inst(ns, 'plain'));
    assert.equal(await c.delete(INSTANCES, ns, 'plain'), true);
    assert.equal(await c.get(INSTANCES, ns, 'plain'), undefined);
    assert.equal(await c.delete(INSTANCES, ns, 'plain'), false, 'already gone');
  },

  'finalizers from a held copy: a status write meanwhile does not refuse the edit; a copy whose list is behind is decided on a fresh read': async (c, ns) => {
    await c.create(INSTANCES, inst(ns, 'fc'));
    const withA = (await c.addFinalizer(INSTANCES, ns, 'fc', 'kova.dev/a'))!;
    await c.patchStatus(INSTANCES, ns, 'fc', { status: { phase: 'Running' } });
    const withB = await c.addFinalizer(INSTANCES, ns, 'fc', 'kova.dev/b', withA);
    assert.deepEqual(withB?.metadata.finalizers, ['kova.dev/a', 'kova.dev/b']);
    assert.equal(statusOf(withB).phase, 'Running', 'the status written meanwhile is kept');
    // The copy still says [a]: adding b again is refused on it, and the fresh read finds b there.
    assert.deepEqual((await c.addFinalizer(INSTANCES, ns, 'fc', 'kova.dev/b', withA))?.metadata.finalizers, ['kova.dev/a', 'kova.dev/b']);
    // A copy without a, where the server has it again: "nothing to remove" is not believed.
    const withoutA = (await c.removeFinalizer(INSTANCES, ns, 'fc', 'kova.dev/a'))!;
    await c.addFinalizer(INSTANCES, ns, 'fc', 'kova.dev/a');
    assert.deepEqual((await c.removeFinalizer(INSTANCES, ns, 'fc', 'kova.dev/a', withoutA))?.metadata.finalizers, ['kova.dev/b']);
    assert.deepEqual((await c.get(INSTANCES, ns, 'fc'))?.metadata.finalizers, ['kova.dev/b']);
  },

  'watch: events in resourceVersion order from a list, replay from an old version, initial ADDED without one': async (c, ns) => {
    await c.create(INSTANCES, inst(ns, 'pre'));
    const list = await c.list(INSTANCES, ns);
    const w = await record(c, INSTANCES, ns, { resourceVersion: list.resourceVersion });
    const created = await c.create(INSTANCES, inst(ns, 'w'));
    const updated = await c.mergePatch(INSTANCES, ns, 'w', { metadata: { labels: { x: '1' } } });
    const status = await c.patchStatus(INSTANCES, ns, 'w', { status: { phase: 'Running' } });
    await c.addFinalizer(INSTANCES, ns, 'w', 'kova.dev/x');
    await c.delete(INSTANCES, ns, 'w');
    await c.removeFinalizer(INSTANCES, ns, 'w', 'kova.dev/x');
    await w.until(() => w.events.some((e) => e.type === 'DELETED'), 'DELETED');
    w.stop();
    assert.deepEqual(w.events.map((e) => e.type), ['ADDED', 'MODIFIED', 'MODIFIED', 'MODIFIED', 'MODIFIED', 'DELETED']);
    assert.deepEqual(w.events.slice(0, 3).map((e) => e.rv), [rvOf(created), rvOf(updated), rvOf(status)]);
    for (let i = 1; i < w.events.length; i++) assert.ok(w.events[i]!.rv > w.events[i - 1]!.rv, 'increasing resourceVersions');
    assert.ok(w.events[4]!.obj.metadata.deletionTimestamp);

    // From the same old version again: the same history is replayed.
    const replay = await record(c, INSTANCES, ns, { resourceVersion: list.resourceVersion });
    await replay.until(() => replay.events.length >= 6, 'replay');
    replay.stop();
    assert.deepEqual(replay.events.map((e) => [e.type, e.rv]), w.events.map((e) => [e.type, e.rv]));

    // Without a version: the current objects as ADDED first.
    const fresh = await record(c, INSTANCES, ns, {});
    await fresh.until(() => fresh.events.length >= 1, 'initial ADDED');
    await c.create(INSTANCES, inst(ns, 'after'));
    await fresh.until(() => fresh.events.length >= 2, 'live ADDED');
    fresh.stop();
    assert.deepEqual(fresh.events.map((e) => [e.type, e.name]), [['ADDED', 'pre'], ['ADDED', 'after']]);
  },

  'selectors: labels and fields on list; a field selector watch sees objects enter and leave': async (c, ns) => {
    await c.create(INSTANCES, inst(ns, 'a', { tier: 'web', env: 'prod' }));
    await c.create(INSTANCES, inst(ns, 'b', { tier: 'db' }));
    await c.create(INSTANCES, inst(ns, 'c', { tier: 'web' }));
    const names = async (opts: { labelSelector?: string; fieldSelector?: string }, namespace: string | undefined = ns) =>
      (await c.list(INSTANCES, namespace, opts)).items.map((o) => o.metadata.name).sort();
    assert.deepEqual(await names({}), ['a', 'b', 'c']);
    assert.deepEqual(await names({ labelSelector: 'tier=web' }), ['a', 'c']);
    assert.deepEqual(await names({ labelSelector: 'tier==web,env=prod' }), ['a']);
    assert.deepEqual(await names({ labelSelector: 'tier!=web' }), ['b']);
    assert.deepEqual(await names({ labelSelector: 'tier in (db, web)' }), ['a', 'b', 'c']);
    assert.deepEqual(await names({ labelSelector: 'tier notin (web)' }), ['b']);
    assert.deepEqual(await names({ labelSelector: 'env' }), ['a']);
    assert.deepEqual(await names({ labelSelector: '!env' }), ['b', 'c']);
    assert.deepEqual(await names({ fieldSelector: 'metadata.name=b' }, undefined), ['b']);
    assert.deepEqual(await names({ fieldSelector: `metadata.namespace=${ns},metadata.name!=b` }, undefined), ['a', 'c']);
    const items = (await c.list(INSTANCES, ns)).items;
    assert.equal(items[0]!.kind, 'Instance');
    assert.deepEqual(items.map((o) => o.metadata.name), ['a', 'b', 'c'], 'lists are in key order');

    const host = `${ns}-h1`;
    const w = await record(c, INSTANCES, undefined, { fieldSelector: `status.hostName=${host}` });
    await c.patchStatus(INSTANCES, ns, 'b', { status: { hostName: 'elsewhere' } });
    await c.patchStatus(INSTANCES, ns, 'a', { status: { hostName: host } });
    await c.patchStatus(INSTANCES, ns, 'a', { status: { phase: 'Running' } });
    await c.patchStatus(INSTANCES, ns, 'a', { status: { hostName: null } });
    await c.patchStatus(INSTANCES, ns, 'c', { status: { hostName: host } });
    await c.delete(INSTANCES, ns, 'c');
    await w.until(() => w.events.length >= 5, '5 events');
    w.stop();
    assert.deepEqual(w.events.map((e) => [e.type, e.name]), [['ADDED', 'a'], ['MODIFIED', 'a'], ['DELETED', 'a'], ['ADDED', 'c'], ['DELETED', 'c']]);
    assert.deepEqual(await names({ fieldSelector: 'status.hostName=elsewhere' }), ['b']);
    assert.deepEqual(await names({ fieldSelector: 'status.phase=Pending' }), ['b']);
  },

  'bind: room check, allocation, finalizer; conflicts when bound elsewhere or full': async (c, ns) => {
    const host = `${ns}-host`;
    const other = `${ns}-other`;
    for (const h of [host, other]) {
      await c.create(HOSTS, { metadata: { name: h }, spec: {} });
      await c.patchStatus(HOSTS, undefined, h, { status: { capacity: { vcpus: 2, memory: '2Gi', disk: '10Gi' }, allocatable: { vcpus: 2, memory: '2Gi', disk: '10Gi' } } });
    }
    await c.create(INSTANCES, inst(ns, 'one'));
    await c.create(INSTANCES, inst(ns, 'big', undefined, 'cf.big'));
    await assert.rejects(c.bind(ns, 'one', `${ns}-nohost`, { vcpus: 1, memory: '512Mi', disk: '2Gi' }), code(404));
    const b = await c.bind(ns, 'one', host, { vcpus: 1, memory: '512Mi', disk: '2Gi' });
    assert.equal(statusOf(b).hostName, host);
    assert.equal(statusOf(b).phase, 'Provisioning');
    assert.ok(b.metadata.finalizers?.includes('kova.dev/instance-protection'));
    assert.ok((statusOf(b).conditions as Array<{ type: string; status: string }>).some((x) => x.type === 'Scheduled' && x.status === 'True'));
    const h = await c.get(HOSTS, undefined, host);
    assert.deepEqual(statusOf(h).allocations, [{ uid: b.metadata.uid, instance: `${ns}/one`, vcpus: 1, memory: '512Mi', disk: '2Gi' }]);
    assert.deepEqual(statusOf(h).allocated, { vcpus: 1, memory: '512Mi', disk: '2Gi' });
    const again = await c.bind(ns, 'one', host, { vcpus: 1, memory: '512Mi', disk: '2Gi' });
    assert.equal(again.metadata.resourceVersion, (await c.get(INSTANCES, ns, 'one'))?.metadata.resourceVersion, 'binding to the same host again is a no-op');
    await assert.rejects(c.bind(ns, 'one', other, { vcpus: 1, memory: '512Mi', disk: '2Gi' }), (e: unknown) => isConflict(e) && /already bound/.test((e as Error).message));
    await assert.rejects(c.bind(ns, 'big', host, { vcpus: 2, memory: '1Gi', disk: '2Gi' }), (e: unknown) => isConflict(e) && /^insufficient vcpus/.test((e as Error).message));
    assert.equal(statusOf(await c.get(INSTANCES, ns, 'big')).hostName, undefined, 'a refused bind changes nothing');
  },
};

interface Backend {
  client: ApiClient;
  stop(): Promise<void>;
}

async function fakeBackend(): Promise<Backend> {
  const client = new FakeClient();
  return { client, stop: async () => client.close() };
}

async function realBackend(): Promise<Backend> {
  const etcd: TestEtcd = await startTestEtcd();
  const store = Store.connect(etcd.endpoints);
  const registry = await Registry.load(defaultCrdDir());
  const resources = new ResourceStore(store, registry, new Validator(registry));
  await resources.namespaces.start();
  const server = new ApiServer({ registry, resources, log: () => undefined });
  const { port } = await server.listen('127.0.0.1', 0);
  const client = plainHttpClient(`http://127.0.0.1:${port}`, 'conformance');
  return {
    client,
    stop: async () => {
      client.close();
      await server.close();
      await resources.namespaces.stop();
      await store.close();
      await etcd.cleanup();
    },
  };
}

for (const [label, make] of [['FakeClient', fakeBackend], ['KovaClient on a real API server', realBackend]] as const) {
  describe(`API conformance: ${label}`, () => {
    let b: Backend;
    let n = 0;
    before(async () => {
      b = await make();
      await b.client.create(FLAVORS, { metadata: { name: 'cf.small' }, spec: { vcpus: 1, memory: '512Mi', disk: '2Gi' } });
      await b.client.create(FLAVORS, { metadata: { name: 'cf.big' }, spec: { vcpus: 4, memory: '1Gi', disk: '2Gi' } });
    });
    after(async () => b?.stop());
    for (const [name, run] of Object.entries(CASES)) {
      it(name, async () => {
        const ns = `cf-${++n}`;
        await b.client.create(NAMESPACES, { metadata: { name: ns } });
        // The real server admits into a namespace once its namespace cache has seen it.
        await waitFor(async () => {
          try {
            await b.client.create(KEYPAIRS, { metadata: { name: 'probe', namespace: ns }, spec: { publicKey: 'ssh-ed25519 AAAA' } });
            return true;
          } catch (e) {
            if (isNotFound(e)) return false;
            throw e;
          }
        }, `namespace ${ns}`);
        await run(b.client, ns);
      });
    }
  });
}
