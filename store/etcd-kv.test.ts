// The lean gRPC client against a real etcd, checked field by field against etcd3 (the reference
// decoder) on the same keys: ranges, paging, count-only, old revisions, compaction, every
// transaction op, compares on each target, failover between endpoints and deadlines.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { CompareResult, CompareTarget, EtcdKV, EtcdRpcError } from './etcd-kv.js';
import { isCompacted, isUnavailable } from './errors.js';
import { startTestEtcd, type TestEtcd } from '../testing/etcd.js';

let env: TestEtcd;
let kv: EtcdKV;
let ref: Etcd3;
const b = (s: string) => Buffer.from(s);

before(async () => {
  env = await startTestEtcd();
  kv = new EtcdKV(env.endpoints);
  ref = new Etcd3({ hosts: env.endpoints });
});
after(async () => {
  kv?.close();
  ref?.close();
  await env?.cleanup();
});

describe('EtcdKV', () => {
  it('reads what etcd3 reads: keys, values, revisions, versions, paging and counts', async () => {
    for (let i = 0; i < 5; i++) await ref.put(`/kv/r/${i}`).value(`v${i}-${'é'.repeat(i * 100)}`);
    await ref.put('/kv/r/2').value('changed');
    const mine = await kv.range({ key: b('/kv/r/'), range_end: b('/kv/r0'), limit: 3 });
    const theirs = await ref.kv.range({ key: b('/kv/r/'), range_end: b('/kv/r0'), limit: 3 });
    assert.equal(mine.header.revision, theirs.header.revision);
    assert.equal(mine.more, true);
    assert.equal(mine.count, '5');
    assert.equal(mine.kvs.length, 3);
    for (let i = 0; i < 3; i++) {
      const [m, t] = [mine.kvs[i]!, theirs.kvs[i]!];
      assert.deepEqual([m.key.toString(), m.value.toString(), m.create_revision, m.mod_revision, m.version, m.lease],
        [t.key.toString(), t.value.toString(), t.create_revision, t.mod_revision, t.version, t.lease]);
    }
    assert.equal(mine.kvs[2]!.version, '2');
    const count = await kv.range({ key: b('/kv/r/'), range_end: b('/kv/r0'), count_only: true });
    assert.deepEqual([count.count, count.kvs.length], ['5', 0]);
    const old = await kv.range({ key: b('/kv/r/2'), revision: Number(mine.kvs[2]!.create_revision) });
    assert.equal(old.kvs[0]!.value.toString(), 'v2-' + 'é'.repeat(200));
    const none = await kv.range({ key: b('/kv/none') });
    assert.deepEqual([none.kvs, none.more, none.count], [[], false, '0']);
  });

  it('transactions: create-if-absent, compares on every target, put/range/delete ops with prev values', async () => {
    const create = (k: string, v: string) => kv.txn({
      compare: [{ key: b(k), target: CompareTarget.Create, result: CompareResult.Equal, create_revision: 0 }],
      success: [{ request_put: { key: b(k), value: b(v) } }],
      failure: [{ request_range: { key: b(k) } }],
    });
    const first = await create('/kv/t/a', 'one');
    assert.equal(first.succeeded, true);
    assert.ok(first.responses[0]!.response_put);
    const again = await create('/kv/t/a', 'two');
    assert.equal(again.succeeded, false);
    assert.equal(again.responses[0]!.response_range!.kvs[0]!.value.toString(), 'one');
    const rev = Number(first.header.revision);
    const guarded = (target: CompareTarget, field: object) => kv.txn({ compare: [{ key: b('/kv/t/a'), target, result: CompareResult.Equal, ...field }], success: [] });
    assert.equal((await guarded(CompareTarget.Mod, { mod_revision: rev })).succeeded, true);
    assert.equal((await guarded(CompareTarget.Mod, { mod_revision: rev - 1 })).succeeded, false);
    assert.equal((await guarded(CompareTarget.Version, { version: 1 })).succeeded, true);
    assert.equal((await guarded(CompareTarget.Value, { value: b('one') })).succeeded, true);
    assert.equal((await guarded(CompareTarget.Value, { value: b('') })).succeeded, false, 'an empty value is still compared');
    const plain = await kv.put({ key: b('/kv/t/p'), value: b('plain'), prev_kv: true });
    assert.equal(plain.prev_kv, undefined);
    assert.equal((await kv.put({ key: b('/kv/t/p'), value: b('again'), prev_kv: true })).prev_kv!.value.toString(), 'plain');
    await kv.txn({ success: [{ request_delete_range: { key: b('/kv/t/p') } }] });
    const put = await kv.txn({ success: [{ request_put: { key: b('/kv/t/b'), value: b(''), prev_kv: true } }, { request_range: { key: b('/kv/t/a') } }] });
    assert.equal(put.responses[1]!.response_range!.kvs[0]!.value.toString(), 'one');
    assert.equal((await ref.get('/kv/t/b').exists()), true, 'an empty value is stored');
    const del = await kv.txn({ success: [{ request_delete_range: { key: b('/kv/t/'), range_end: b('/kv/t0'), prev_kv: true } }] });
    const d = del.responses[0]!.response_delete_range!;
    assert.equal(d.deleted, '2');
    assert.deepEqual(d.prev_kvs.map((x) => [x.key.toString(), x.value.toString()]), [['/kv/t/a', 'one'], ['/kv/t/b', '']]);
    assert.ok(Number(del.header.revision) > rev);
  });

  it('values larger than the HTTP/2 windows and frames go both ways intact (etcd enforces flow control)', async () => {
    const value = Buffer.alloc(1_200_000);
    for (let i = 0; i < value.length; i++) value[i] = (i * 7) % 256;
    await Promise.all([1, 2, 3].map((i) => kv.put({ key: b(`/kv/big/${i}`), value })));
    const r = await kv.range({ key: b('/kv/big/'), range_end: b('/kv/big0') });
    assert.equal(r.kvs.length, 3);
    for (const k of r.kvs) assert.ok(k.value.equals(value));
  });

  it('reports compaction and future revisions the way the store recognises them', async () => {
    await ref.put('/kv/c').value('1');
    const r = await ref.put('/kv/c').value('2');
    const rev = Number(r.header.revision);
    await ref.kv.compact({ revision: String(rev) });
    await assert.rejects(kv.range({ key: b('/kv/c'), revision: rev - 1 }), (e) => e instanceof EtcdRpcError && isCompacted(e) && !isUnavailable(e));
    await assert.rejects(kv.range({ key: b('/kv/c'), revision: rev + 1000 }), (e) => e instanceof Error && /future revision/.test(e.message));
  });

  it('fails over to the next endpoint, and a silent server hits the deadline as Unavailable', async () => {
    // A port nobody listens on first: the call fails Unavailable, the next one uses etcd.
    const dead = createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const deadPort = (dead.address() as AddressInfo).port;
    await new Promise((r) => dead.close(r));
    const two = new EtcdKV([`http://127.0.0.1:${deadPort}`, ...env.endpoints]);
    await assert.rejects(two.range({ key: b('/kv/x') }), (e) => isUnavailable(e));
    assert.equal((await two.range({ key: b('/kv/x') })).count, '0');
    two.close();
    // A server that accepts and never answers.
    const accepted = new Set<import('node:net').Socket>();
    const silent = createServer((sock) => void accepted.add(sock));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const slow = new EtcdKV([`http://127.0.0.1:${(silent.address() as AddressInfo).port}`], { deadlineMs: 300 });
    const t0 = Date.now();
    await assert.rejects(slow.range({ key: b('/kv/x') }), (e) => isUnavailable(e) && /DEADLINE_EXCEEDED/.test((e as Error).message));
    assert.ok(Date.now() - t0 < 3000);
    slow.close();
    for (const sock of accepted) sock.destroy();
    await new Promise((r) => silent.close(r));
  });

  it('an open watch keeps its process alive, an idle connection does not', async () => {
    const storeURL = new URL('./store.js', import.meta.url).href;
    const child = spawn(process.execPath, ['--input-type=module', '-e', `
      import { Store } from ${JSON.stringify(storeURL)};
      const store = Store.connect(${JSON.stringify(env.endpoints)});
      await store.get('/kv/alive/none'); // a finished call leaves an idle connection
      await store.watch('/kv/alive/', undefined, (e) => { console.log('event ' + e.object.metadata.name); store.close(); }, () => process.exit(3));
      console.log('watching');
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => child.on('exit', r));
    await new Promise<void>((resolve, reject) => {
      const t = setInterval(() => out.includes('watching') && (clearInterval(t), resolve()), 20);
      void exited.then(() => reject(new Error(`exited early: ${out}`)));
    });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(child.exitCode, null, 'still alive while watching');
    await ref.put('/kv/alive/x').value(JSON.stringify({ metadata: { name: 'x' } }));
    assert.equal(await exited, 0, 'exits once the watch is closed and nothing else is open');
    assert.match(out, /event x/);
  });
});
