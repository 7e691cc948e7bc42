// FakeClient's test hooks, and an Informer running on it: failure injection, expiry and relist,
// watches ended by the "server", the request log.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StatusError, INSTANCES, isConflict, NAMESPACES } from './client.js';
import type { KObject } from './client.js';
import { FakeClient } from './fake.js';
import { Informer } from './informer.js';

const inst = (name: string, ns = 'default') => ({ metadata: { name, namespace: ns }, spec: { flavor: 'f', image: 'i' } });

/**
 * Resolves when `pred` holds, checked after every informer event. The guard timer also keeps
 * the event loop alive while the informer waits on its (unref'd) restart timer.
 */
function when(inf: Informer, pred: () => boolean, what = 'condition'): Promise<void> {
  return new Promise((resolve, reject) => {
    const guard = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 5_000);
    const check = () => {
      if (!pred()) return;
      clearTimeout(guard);
      for (const ev of ['add', 'update', 'delete'] as const) inf.off(ev, check);
      resolve();
    };
    for (const ev of ['add', 'update', 'delete'] as const) inf.on(ev, check);
    check();
  });
}

describe('FakeClient', () => {
  it('injects failures for the next calls of one verb (and kind)', async () => {
    const c = new FakeClient();
    c.failNext('create', { times: 2 });
    await assert.rejects(c.create(INSTANCES, inst('a')), (e: unknown) => e instanceof StatusError && e.code === 500);
    await assert.rejects(c.create(INSTANCES, inst('a')), (e: unknown) => e instanceof StatusError && e.code === 500);
    await c.create(INSTANCES, inst('a'));
    c.failNext('get', { kind: NAMESPACES });
    assert.ok(await c.get(INSTANCES, 'default', 'a'), 'another kind is not affected');
    await assert.rejects(c.get(NAMESPACES, undefined, 'default'));
    // updateStatus retries an injected conflict with a fresh read, like a real one.
    c.failNext('updateStatus', { error: new StatusError(409, 'Conflict', 'injected') });
    const out = await c.updateStatus(INSTANCES, 'default', 'a', (o) => {
      (o.status as Record<string, unknown>).phase = 'Running';
    });
    assert.equal((out?.status as { phase: string }).phase, 'Running');
    assert.equal(c.stats.conflicts, 1);
    c.failNext('patch', { error: () => new StatusError(409, 'Conflict', 'made fresh') });
    await assert.rejects(c.mergePatch(INSTANCES, 'default', 'a', {}), (e: unknown) => isConflict(e));
    assert.deepEqual(c.calls.filter((x) => x.verb === 'updateStatus').map((x) => x.name), ['a', 'a']);
  });

  it('runs an Informer: sync, events, relist after expiry, re-watch after the server ends watches', async () => {
    const c = new FakeClient();
    await c.create(INSTANCES, inst('a'));
    const inf = new Informer<KObject>(c, INSTANCES, { log: () => undefined, minBackoffMs: 1 });
    const seen: string[] = [];
    inf.on('add', (o) => seen.push(`add ${o.metadata.name}`));
    inf.on('update', (o) => seen.push(`update ${o.metadata.name}`));
    inf.on('delete', (o) => seen.push(`delete ${o.metadata.name}`));
    inf.start();
    await inf.waitForSync();
    assert.deepEqual(inf.list().map((o) => o.metadata.name), ['a']);

    await c.create(INSTANCES, inst('b'));
    await c.patchStatus(INSTANCES, 'default', 'a', { status: { phase: 'Running' } });
    await when(inf, () => (inf.get('default', 'a')?.status as { phase?: string } | undefined)?.phase === 'Running' && !!inf.get('default', 'b'));

    // The server ends every watch: the informer resumes from its last version, no relist.
    const lists = inf.stats.lists;
    c.closeWatches();
    await c.settle();
    await c.delete(INSTANCES, 'default', 'b');
    await when(inf, () => !inf.get('default', 'b'));
    assert.equal(inf.stats.lists, lists, 'resumed without a relist');

    // History compacted while the watch is down: 410 on re-watch, relist, deletions inferred.
    c.closeWatches();
    await c.delete(INSTANCES, 'default', 'a');
    await c.create(INSTANCES, inst('c'));
    c.compact();
    await when(inf, () => !inf.get('default', 'a') && !!inf.get('default', 'c'));
    assert.ok(inf.stats.lists > lists, 'relisted after 410');
    assert.deepEqual(seen, ['add a', 'add b', 'update a', 'delete b', 'delete a', 'add c']);

    // A failing watch request restarts with back-off instead of stopping for good.
    c.failNext('watch', { times: 2 });
    c.failNext('list');
    c.compact();
    c.closeWatches();
    await c.create(INSTANCES, inst('d'));
    await when(inf, () => !!inf.get('default', 'd'));
    assert.ok(inf.stats.restarts >= 1);
    inf.stop();
  });

  it('watch with a label selector; settle() drains the queued events', async () => {
    const c = new FakeClient();
    const got: string[] = [];
    const h = await c.watch(INSTANCES, 'default', { labelSelector: 'app=x' }, (t, o) => got.push(`${t} ${o.metadata.name}`), () => undefined);
    await c.create(INSTANCES, { ...inst('no'), metadata: { name: 'no', namespace: 'default', labels: { app: 'y' } } });
    await c.create(INSTANCES, { ...inst('yes'), metadata: { name: 'yes', namespace: 'default', labels: { app: 'x' } } });
    await c.settle();
    assert.deepEqual(got, ['ADDED yes']);
    h.abort();
    await c.create(INSTANCES, { ...inst('late'), metadata: { name: 'late', namespace: 'default', labels: { app: 'x' } } });
    await c.settle();
    assert.deepEqual(got, ['ADDED yes'], 'nothing after abort');
  });
});
