import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { KObject } from '../api/types.js';
import { Store, StoreError, type WatchEvent } from './store.js';
import { startTestEtcd, waitFor, type TestEtcd } from '../testing/etcd.js';

let env: TestEtcd;
let store: Store;

before(async () => {
  env = await startTestEtcd();
  store = Store.connect(env.endpoints);
});

after(async () => {
  await store?.close();
  await env?.cleanup();
});

function inst(name: string, spec: Record<string, unknown> = {}, ns = 'demo'): KObject {
  return { apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', metadata: { name, namespace: ns }, spec };
}

/** Asserts `p` rejects with a StoreError of `code` and returns it. */
async function storeError(p: Promise<unknown>, code: StoreError['code']): Promise<StoreError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof StoreError, `expected StoreError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected StoreError ${code}, but it succeeded`);
}

const rv = (o: KObject) => Number(o.metadata.resourceVersion);

describe('create/get/update/delete', () => {
  const p = '/registry/test/crud/';

  it('create sets resourceVersion to the mod revision and does not store it', async () => {
    const input = inst('a', { cpus: 2 });
    input.metadata.resourceVersion = '12345'; // must be ignored
    const created = await store.create(p + 'a', input);
    assert.equal(input.metadata.resourceVersion, '12345', 'input not mutated');
    assert.equal(created.metadata.resourceVersion, await store.currentRevision());
    assert.deepEqual(created.spec, { cpus: 2 });

    const got = await store.get(p + 'a');
    assert.deepEqual(got, created);
    const raw = JSON.parse((await store.kv.range({ key: Buffer.from(p + 'a') })).kvs[0]!.value.toString());
    assert.equal(raw.metadata.resourceVersion, undefined);
    assert.equal(raw.metadata.name, 'a');
  });

  it('get of a missing key is undefined', async () => {
    assert.equal(await store.get(p + 'nope'), undefined);
  });

  it('create of an existing key is AlreadyExists and changes nothing', async () => {
    const before = await store.get(p + 'a');
    await storeError(store.create(p + 'a', inst('a', { cpus: 99 })), 'AlreadyExists');
    assert.deepEqual(await store.get(p + 'a'), before);
  });

  it('update checks the resourceVersion', async () => {
    const cur = (await store.get(p + 'a'))!;
    const updated = await store.update(p + 'a', { ...cur, spec: { cpus: 4 } }, cur.metadata.resourceVersion!);
    assert.ok(rv(updated) > rv(cur));
    assert.deepEqual((await store.get(p + 'a'))!.spec, { cpus: 4 });

    const err = await storeError(store.update(p + 'a', { ...cur, spec: { cpus: 8 } }, cur.metadata.resourceVersion!), 'Conflict');
    assert.equal(err.current?.metadata.resourceVersion, updated.metadata.resourceVersion);
    assert.deepEqual((await store.get(p + 'a'))!.spec, { cpus: 4 });

    await storeError(store.update(p + 'missing', inst('missing'), '5'), 'NotFound');
  });

  it('delete returns the object with the deletion revision', async () => {
    const cur = (await store.get(p + 'a'))!;
    await storeError(store.delete(p + 'a', String(rv(cur) - 1)), 'Conflict');
    const deleted = await store.delete(p + 'a', cur.metadata.resourceVersion);
    assert.ok(rv(deleted) > rv(cur), 'deletion revision is newer than the last write');
    assert.equal(deleted.metadata.resourceVersion, await store.currentRevision());
    assert.deepEqual(deleted.spec, cur.spec);
    assert.equal(await store.get(p + 'a'), undefined);
    await storeError(store.delete(p + 'a'), 'NotFound');
    await storeError(store.delete(p + 'a', deleted.metadata.resourceVersion), 'NotFound');
  });

  it('delete without a precondition', async () => {
    const c = await store.create(p + 'b', inst('b'));
    const d = await store.delete(p + 'b');
    assert.equal(rv(d), rv(c) + 1);
  });
});

describe('guaranteedUpdate', () => {
  const key = '/registry/test/gu/counter';

  it('retries under concurrent writers', async () => {
    await store.create(key, { ...inst('counter'), spec: { n: 0 } });
    let calls = 0;
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        store.guaranteedUpdate(key, (cur) => {
          calls++;
          return { ...cur, spec: { n: (cur.spec as { n: number }).n + 1 } };
        }),
      ),
    );
    const final = (await store.get(key))!;
    assert.deepEqual(final.spec, { n: 10 });
    assert.ok(calls > 10, `expected conflicts to force retries, fn ran ${calls} times`);
    assert.deepEqual(results.map((r) => (r.spec as { n: number }).n).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('returning the same object writes nothing', async () => {
    const before = (await store.get(key))!;
    const out = await store.guaranteedUpdate(key, (cur) => cur);
    assert.equal(out.metadata.resourceVersion, before.metadata.resourceVersion);
    assert.equal((await store.get(key))!.metadata.resourceVersion, before.metadata.resourceVersion);
  });

  it('missing key is NotFound and fn errors propagate', async () => {
    await storeError(store.guaranteedUpdate('/registry/test/gu/none', (c) => c), 'NotFound');
    await assert.rejects(store.guaranteedUpdate(key, () => { throw new Error('boom'); }), /boom/);
  });
});

describe('list', () => {
  const p = '/registry/test/list/demo/';

  it('returns the global revision, sorted keys, and respects the prefix boundary', async () => {
    const a = await store.create(p + 'b', inst('b'));
    const b = await store.create(p + 'a', inst('a'));
    await store.create('/registry/test/list/demo2/x', inst('x', {}, 'demo2'));
    await store.create('/registry/test/other', inst('other')); // bumps the global revision
    const res = await store.list(p);
    assert.deepEqual(res.items.map((o) => o.metadata.name), ['a', 'b']);
    assert.equal(res.revision, await store.currentRevision());
    assert.ok(Number(res.revision) > Math.max(rv(a), rv(b)), 'list revision is the global one, not the newest item');
    assert.equal(res.continueToken, undefined);
    assert.equal(await store.count(p), 2);
    assert.equal(await store.count('/registry/test/list/'), 3);
  });

  it('paginates over a consistent snapshot', async () => {
    const pp = '/registry/test/page/';
    const names = Array.from({ length: 25 }, (_, i) => `n${String(i).padStart(2, '0')}`);
    const created = new Map<string, string>();
    for (const n of names) created.set(n, (await store.create(pp + n, inst(n))).metadata.resourceVersion!);

    const first = await store.list(pp, { limit: 10 });
    assert.equal(first.items.length, 10);
    assert.equal(first.remainingItemCount, 15);
    assert.ok(first.continueToken);

    // Change the world between pages: add before and after the cursor, modify and delete ahead.
    await store.create(pp + 'a-new', inst('a-new'));
    await store.create(pp + 'n12a', inst('n12a'));
    await store.create(pp + 'z-new', inst('z-new'));
    const n20 = (await store.get(pp + 'n20'))!;
    await store.update(pp + 'n20', { ...n20, spec: { changed: true } }, n20.metadata.resourceVersion!);
    await store.delete(pp + 'n15');

    const second = await store.list(pp, { limit: 10, continueToken: first.continueToken });
    assert.equal(second.revision, first.revision);
    assert.equal(second.remainingItemCount, 5);
    const third = await store.list(pp, { limit: 10, continueToken: second.continueToken });
    assert.equal(third.revision, first.revision);
    assert.equal(third.items.length, 5);
    assert.equal(third.continueToken, undefined);
    assert.equal(third.remainingItemCount, undefined);

    const all = [...first.items, ...second.items, ...third.items];
    assert.deepEqual(all.map((o) => o.metadata.name), names);
    for (const o of all) assert.equal(o.metadata.resourceVersion, created.get(o.metadata.name!));
    assert.deepEqual(all.find((o) => o.metadata.name === 'n20')!.spec, {});

    // A fresh list sees the new state.
    const now = await store.list(pp);
    assert.equal(now.items.length, 27);
    assert.ok(Number(now.revision) > Number(first.revision));
  });

  it('reads at an explicit revision', async () => {
    const pp = '/registry/test/at-rev/';
    await store.create(pp + 'one', inst('one'));
    const rev = await store.currentRevision();
    await store.create(pp + 'two', inst('two'));
    const old = await store.list(pp, { revision: rev });
    assert.equal(old.revision, rev);
    assert.deepEqual(old.items.map((o) => o.metadata.name), ['one']);
    await storeError(store.list(pp, { revision: String(Number(await store.currentRevision()) + 100) }), 'Invalid');
    await storeError(store.list(pp, { continueToken: 'not-a-token' }), 'Invalid');
  });

  it('an expired continue token fails with Expired after compaction', async () => {
    const pp = '/registry/test/expire/';
    for (const n of ['a', 'b', 'c']) await store.create(pp + n, inst(n));
    const page = await store.list(pp, { limit: 1 });
    await store.create(pp + 'd', inst('d'));
    await store.compact(await store.currentRevision());
    await storeError(store.list(pp, { limit: 1, continueToken: page.continueToken }), 'Expired');
    await storeError(store.list(pp, { revision: page.revision }), 'Expired');
    await store.compact(page.revision); // compacting an older revision again is not an error
  });
});

/** Collects watch events; resolves `done` once `n` arrived. */
function collector() {
  const events: WatchEvent[] = [];
  const errors: StoreError[] = [];
  return {
    events,
    errors,
    onEvent: (e: WatchEvent) => events.push(e),
    onError: (e: StoreError) => errors.push(e),
    summary: () => events.map((e) => `${e.type} ${e.object.metadata.name} ${e.revision}`),
  };
}

describe('watch', () => {
  it('from a list revision sees exactly the later changes, in order', async () => {
    const p = '/registry/test/watch/demo/';
    await store.create(p + 'old', inst('old'));
    const list = await store.list(p);
    // These happen before the watch starts: etcd must replay them.
    const x1 = await store.create(p + 'x', inst('x', { v: 1 }));
    const x2 = await store.update(p + 'x', { ...x1, spec: { v: 2 } }, x1.metadata.resourceVersion!);
    const c = collector();
    const w = await store.watch(p, list.revision, c.onEvent, c.onError);
    await store.create('/registry/test/watch/demo2/y', inst('y', {}, 'demo2')); // outside the prefix
    const xd = await store.delete(p + 'x');
    const old = (await store.get(p + 'old'))!;
    const o2 = await store.update(p + 'old', { ...old, spec: { touched: true } }, old.metadata.resourceVersion!);
    // Control: a last write; once its event is in, nothing else the writes above caused may be.
    const end = await store.create(p + 'zz-end', inst('zz-end'));
    await waitFor(() => c.events.some((e) => e.object.metadata.name === 'zz-end'), 'the control event');
    await w.close();

    assert.deepEqual(c.summary(), [
      `ADDED x ${x1.metadata.resourceVersion}`,
      `MODIFIED x ${x2.metadata.resourceVersion}`,
      `DELETED x ${xd.metadata.resourceVersion}`,
      `MODIFIED old ${o2.metadata.resourceVersion}`,
      `ADDED zz-end ${end.metadata.resourceVersion}`,
    ]);
    const [added, modified, deleted, touched] = c.events;
    assert.deepEqual(added.object, x1);
    assert.deepEqual(modified.object, x2);
    assert.deepEqual(modified.prevObject, x1);
    assert.deepEqual(deleted.object.spec, { v: 2 }, 'DELETED carries the last state');
    assert.equal(deleted.object.metadata.resourceVersion, xd.metadata.resourceVersion);
    assert.deepEqual(touched.object, o2);
    assert.deepEqual(c.errors, []);
  });

  it('from "now" (undefined) sees only new changes; close stops delivery', async () => {
    const p = '/registry/test/watch-now/';
    await store.create(p + 'before', inst('before'));
    const c = collector();
    const w = await store.watch(p, undefined, c.onEvent, c.onError);
    const a = await store.create(p + 'after', inst('after'));
    await waitFor(() => c.events.length === 1, '1 event');
    assert.deepEqual(c.summary(), [`ADDED after ${a.metadata.resourceVersion}`]);
    await w.close();
    await w.close(); // idempotent
    // Control: a watch still open on the same prefix must see 'late'; by then the closed one has not.
    const control = collector();
    const w2 = await store.watch(p, a.metadata.resourceVersion, control.onEvent, control.onError);
    await store.create(p + 'late', inst('late'));
    await waitFor(() => control.events.length === 1, 'the control watch sees late');
    await w2.close();
    assert.deepEqual(control.summary().map((x) => x.split(' ').slice(0, 2).join(' ')), ['ADDED late']);
    assert.equal(c.events.length, 1);
  });

  it('from a compacted revision reports Expired', async () => {
    const p = '/registry/test/watch-expired/';
    const old = await store.create(p + 'a', inst('a'));
    await store.create(p + 'b', inst('b'));
    const compactedAt = await store.currentRevision();
    await store.compact(compactedAt);
    const c = collector();
    const w = await store.watch(p, String(rv(old) - 1), c.onEvent, c.onError);
    await waitFor(() => c.errors.length === 1, 'an error');
    assert.equal(c.errors[0].code, 'Expired');
    assert.equal(c.errors[0].message, `too old resource version: ${rv(old) - 1} (${compactedAt})`);
    assert.equal(c.events.length, 0);
    await w.close(); // safe after the error
    // The store keeps working for other watches.
    const c2 = collector();
    const w2 = await store.watch(p, undefined, c2.onEvent, c2.onError);
    await store.create(p + 'c', inst('c'));
    await waitFor(() => c2.events.length === 1, 'event after expiry');
    await w2.close();
  });

  it('delivers every event of a multi-key transaction (they share one revision)', async () => {
    const p = '/registry/test/watch-txn/';
    const a = await store.create(p + 'a', inst('a'));
    const b = await store.create(p + 'b', inst('b'));
    const c = collector();
    const w = await store.watch(p, b.metadata.resourceVersion, c.onEvent, c.onError);
    const [a2, b2] = await store.updateMany([
      { key: p + 'a', obj: { ...a, spec: { v: 2 } }, expectedRevision: a.metadata.resourceVersion! },
      { key: p + 'b', obj: { ...b, spec: { v: 2 } }, expectedRevision: b.metadata.resourceVersion! },
    ]);
    const end = await store.create(p + 'zz-end', inst('zz-end'));
    await waitFor(() => c.events.some((e) => e.object.metadata.name === 'zz-end'), 'the control event');
    await w.close();
    assert.equal(a2!.metadata.resourceVersion, b2!.metadata.resourceVersion);
    assert.deepEqual(c.summary(), [
      `MODIFIED a ${a2!.metadata.resourceVersion}`,
      `MODIFIED b ${b2!.metadata.resourceVersion}`,
      `ADDED zz-end ${end.metadata.resourceVersion}`,
    ]);
  });

  it('delivers many events promptly and in order', async () => {
    const p = '/registry/test/watch-many/';
    const c = collector();
    const sent = new Map<string, number>();
    const lat: number[] = [];
    const w = await store.watch(p, undefined, (e) => {
      c.onEvent(e);
      lat.push(performance.now() - sent.get(e.object.metadata.name!)!);
    }, c.onError);
    const N = 300;
    // Ten writers, so etcd sees concurrent load but each write's start time is meaningful.
    await Promise.all(
      Array.from({ length: 10 }, async (_, w) => {
        for (let i = w; i < N; i += 10) {
          sent.set(`m${i}`, performance.now());
          await store.create(p + `m${i}`, inst(`m${i}`));
        }
      }),
    );
    await waitFor(() => c.events.length === N, `${N} events`);
    await w.close();
    const revs = c.events.map((e) => Number(e.revision));
    assert.deepEqual(revs, [...revs].sort((a, b) => a - b));
    assert.equal(new Set(revs).size, N);
    lat.sort((a, b) => a - b);
    // Informational; the real target is checked by the API benchmark.
    console.log(`watch latency (write start → event, 10 writers) p50 ${lat[N >> 1].toFixed(1)} ms, p99 ${lat[Math.floor(N * 0.99)].toFixed(1)} ms`);
  });
});

describe('compactor', () => {
  it('keeps only the last N revisions', async () => {
    const base = Store.connect(env.endpoints);
    const s = new Store(base.kv, { compactIntervalMs: 50, compactKeepRevisions: 5 });
    try {
      const p = '/registry/test/compactor/';
      const first = await s.create(p + 'k0', inst('k0'));
      for (let i = 1; i < 20; i++) await s.create(p + `k${i}`, inst(`k${i}`));
      s.startCompactor((err) => assert.fail(String(err)));
      await waitFor(async () => {
        try {
          await s.list(p, { revision: first.metadata.resourceVersion });
          return false;
        } catch (err) {
          return err instanceof StoreError && err.code === 'Expired';
        }
      }, 'compaction');
      // The last 5 revisions are still readable.
      const cur = Number(await s.currentRevision());
      const recent = await s.list(p, { revision: String(cur - 4) });
      assert.ok(recent.items.length > 0);
    } finally {
      await s.close();
    }
  });
});
