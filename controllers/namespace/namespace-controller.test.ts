// The namespace reconciler on the in-memory fake client: what it deletes, what it waits for,
// and when it lets the namespace go. (kubectl delete namespace against the real API server is
// covered by e2e/kubectl-api.test.ts.)
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EVENTS, INSTANCES, LEASES, NAMESPACES, PORTS } from '../../client/client.js';
import type { KObject } from '../../client/client.js';
import { FakeClient } from '../../client/fake.js';
import { CONTENT_RECHECK_MS, NamespaceReconciler } from './namespace-controller.js';
import type { NamespaceApi } from './namespace-controller.js';

/** The reconciler's API on the fake; finalize records its calls and writes spec.finalizers. */
function onFake(fake: FakeClient): NamespaceApi & { finalized: string[][] } {
  const finalized: string[][] = [];
  return {
    finalized,
    getNamespace: (name) => fake.get(NAMESPACES, undefined, name),
    kinds: async () => [INSTANCES, PORTS, LEASES, EVENTS],
    listMeta: async (kind, ns) => (await fake.list(kind, ns)).items,
    delete: async (kind, ns, name, uid) => {
      await fake.delete(kind, ns, name, { propagationPolicy: 'Background', preconditions: uid ? { uid } : undefined });
    },
    finalize: async (ns, finalizers) => {
      finalized.push(finalizers);
      await fake.updateWithRetry(NAMESPACES, undefined, ns.metadata.name!, (o) => {
        o.spec = { ...(o.spec as object), finalizers };
      });
    },
  };
}

/**
 * A namespace with `content` created in it, then deleted: deletionTimestamp set while its
 * spec.finalizers are held (the fake, which does not model namespace termination, keeps it by a
 * metadata finalizer).
 */
async function terminating(fake: FakeClient, name: string, specFinalizers = ['kubernetes'], content: () => Promise<unknown> = async () => undefined): Promise<void> {
  await fake.create(NAMESPACES, { metadata: { name, finalizers: ['test.kova.dev/hold'] }, spec: { finalizers: specFinalizers } });
  await content();
  await fake.delete(NAMESPACES, undefined, name);
}

const instance = (name: string, namespace: string, finalizers?: string[]) =>
  ({ metadata: { name, namespace, ...(finalizers ? { finalizers } : {}) }, spec: { flavor: 'm1.small', image: 'tiny' } });
const names = (items: readonly KObject[]) => items.map((o) => o.metadata.name).sort();

describe('namespace reconciler', () => {
  it('leaves a namespace that is not being deleted alone', async () => {
    const fake = new FakeClient({ namespaces: ['live'] });
    await fake.create(INSTANCES, instance('a', 'live'));
    const api = onFake(fake);
    assert.equal(await new NamespaceReconciler(api).reconcile({ name: 'live' }), undefined);
    assert.deepEqual(names((await fake.list(INSTANCES, 'live')).items), ['a']);
    assert.deepEqual(api.finalized, []);
    assert.ok(!fake.calls.some((c) => c.verb === 'delete'));
  });

  it('deletes the content of every kind, waits for finalizers, then removes only the kubernetes finalizer', async () => {
    const fake = new FakeClient({ namespaces: ['other'] });
    await terminating(fake, 'doomed', ['kubernetes', 'example.com/keep'], async () => {
      await fake.create(INSTANCES, instance('a', 'doomed'));
      await fake.create(INSTANCES, instance('held', 'doomed', ['kova.dev/hold']));
      await fake.create(PORTS, { metadata: { name: 'p', namespace: 'doomed' }, spec: { network: 'n' } });
      await fake.create(LEASES, { metadata: { name: 'l', namespace: 'doomed' }, spec: {} });
    });
    await fake.create(INSTANCES, instance('a', 'other'));
    const api = onFake(fake);
    const r = new NamespaceReconciler(api);

    assert.deepEqual(await r.reconcile({ name: 'doomed' }), { requeueAfterMs: CONTENT_RECHECK_MS }, 'content remains: look again');
    assert.deepEqual(names((await fake.list(INSTANCES, 'doomed')).items), ['held'], 'deleted, except what a finalizer holds');
    assert.ok((await fake.get(INSTANCES, 'doomed', 'held'))?.metadata.deletionTimestamp, 'the held one is marked');
    assert.deepEqual((await fake.list(PORTS, 'doomed')).items, []);
    assert.deepEqual((await fake.list(LEASES, 'doomed')).items, []);
    assert.deepEqual(names((await fake.list(INSTANCES, 'other')).items), ['a'], 'other namespaces are untouched');
    assert.deepEqual(api.finalized, [], 'the namespace stays while content remains');

    // The marked object is not deleted again on the next pass.
    const deletes = fake.calls.filter((c) => c.verb === 'delete').length;
    assert.deepEqual(await r.reconcile({ name: 'doomed' }), { requeueAfterMs: CONTENT_RECHECK_MS });
    assert.equal(fake.calls.filter((c) => c.verb === 'delete').length, deletes);

    await fake.removeFinalizer(INSTANCES, 'doomed', 'held', 'kova.dev/hold');
    assert.equal(await r.reconcile({ name: 'doomed' }), undefined);
    assert.deepEqual(api.finalized, [['example.com/keep']]);
    assert.deepEqual((await fake.get(NAMESPACES, undefined, 'doomed'))?.spec, { finalizers: ['example.com/keep'] });
  });

  it('does nothing once the kubernetes finalizer is gone', async () => {
    const fake = new FakeClient({ namespaces: [] });
    await terminating(fake, 'done', []);
    const api = onFake(fake);
    assert.equal(await new NamespaceReconciler(api).reconcile({ name: 'done' }), undefined);
    assert.deepEqual(api.finalized, []);
  });

  it('a failed delete fails the pass (retried by the controller) and the namespace is not finalized', async () => {
    const fake = new FakeClient({ namespaces: [] });
    await terminating(fake, 'doomed', ['kubernetes'], () => fake.create(INSTANCES, instance('a', 'doomed')));
    const api = onFake(fake);
    const r = new NamespaceReconciler(api);
    fake.failNext('delete');
    await assert.rejects(r.reconcile({ name: 'doomed' }), /injected failure of delete/);
    assert.deepEqual(api.finalized, []);
    assert.deepEqual(await r.reconcile({ name: 'doomed' }), { requeueAfterMs: CONTENT_RECHECK_MS }, 'the retry deletes it');
    assert.equal(await r.reconcile({ name: 'doomed' }), undefined);
    assert.deepEqual(api.finalized, [[]]);
  });

  it('a namespace that is already gone needs nothing', async () => {
    const fake = new FakeClient({ namespaces: [] });
    const api = onFake(fake);
    assert.equal(await new NamespaceReconciler(api).reconcile({ name: 'nowhere' }), undefined);
    assert.deepEqual(api.finalized, []);
  });
});
