// The etcd client against a real etcd, checked field by field against etcd3 (the reference
// client) on the same keys; and its failover against members that misbehave: a port nobody
// listens on, a member that accepts and never answers, a member answering "no leader".
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http2 from 'node:http2';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { EtcdClient, EtcdRpcError, etcdVersionAdvice } from './client.js';
import { CompareResult, CompareTarget } from './proto.js';
import { isCompacted, isUnavailable } from '../errors.js';
import { Store, StoreError } from '../store.js';
import { startTestEtcd, waitFor, type TestEtcd } from '../../testing/etcd.js';

let env: TestEtcd;
let kv: EtcdClient;
let ref: Etcd3;
const b = (s: string) => Buffer.from(s);

before(async () => {
  env = await startTestEtcd();
  kv = new EtcdClient(env.endpoints);
  ref = new Etcd3({ hosts: env.endpoints });
});
after(async () => {
  kv?.close();
  ref?.close();
  await env?.cleanup();
});

/** A port that refuses connections. */
async function refusedEndpoint(): Promise<string> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return `http://127.0.0.1:${port}`;
}

/** A member that accepts TCP connections and never sends a byte. */
async function silentMember(): Promise<{ endpoint: string; connections: () => number; close(): Promise<void> }> {
  const socks = new Set<Socket>();
  let count = 0;
  const srv: Server = createServer((s) => {
    count++;
    socks.add(s);
    s.on('error', () => {});
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    endpoint: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`,
    connections: () => count,
    close: async () => {
      for (const s of socks) s.destroy();
      await new Promise((r) => srv.close(r));
    },
  };
}

/** A gRPC server that answers every call with `status`/`message` (trailers-only), as a member in trouble does. */
async function failingMember(status: number, message: string) {
  const calls: Array<{ path: string; hasleader: string | undefined }> = [];
  const srv = http2.createServer();
  srv.on('stream', (stream, headers) => {
    calls.push({ path: String(headers[':path']), hasleader: headers.hasleader as string | undefined });
    stream.on('data', () => {});
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(status), 'grpc-message': encodeURIComponent(message) }, { endStream: true });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    endpoint: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`,
    calls,
    close: () => new Promise<void>((r) => srv.close(() => r())),
  };
}

function inst(name: string) {
  return { apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', metadata: { name, namespace: 'demo' }, spec: {} };
}

describe('EtcdClient', () => {
  it('etcdVersionAdvice names the members older than 3.5, and only those; it reads what verify() reports', async () => {
    const m = (endpoint: string, version: string) => ({ endpoint, version });
    for (const v of ['3.5.0', '3.5.16', '3.6.4', '4.0.0']) assert.equal(etcdVersionAdvice([m('https://a:2379', v)]), undefined, v);
    for (const v of ['3.4.23', '3.3.27', '2.3.8']) {
      const advice = etcdVersionAdvice([m('https://a:2379', v)]);
      assert.ok(advice?.includes(`https://a:2379 (${v}) is older than 3.5`), `${v}: ${advice}`);
      assert.match(advice!, /install-host-deps\.sh/);
    }
    const mixed = etcdVersionAdvice([m('https://a:2379', '3.5.16'), m('https://b:2379', '3.4.23'), m('https://c:2379', '3.6.0')])!;
    assert.ok(mixed.includes('https://b:2379 (3.4.23)') && !mixed.includes('https://a:2379') && !mixed.includes('https://c:2379'), mixed);
    assert.equal(etcdVersionAdvice([]), undefined);
    // The test etcd's own version, as verify() reports it, parses (whichever etcd this host has).
    const info = await kv.verify();
    const version = info.members[0]!.version;
    assert.match(version, /^\d+\.\d+\.\d+/);
    assert.equal(etcdVersionAdvice(info.members) === undefined, Number(version.split('.')[1]) >= 5 || Number(version.split('.')[0]) > 3);
  });

  it('reads what etcd3 reads: keys, values, revisions, versions, paging and counts', async () => {
    for (let i = 0; i < 5; i++) await ref.put(`/kv/r/${i}`).value(`v${i}-${'é'.repeat(i * 100)}`);
    await ref.put('/kv/r/2').value('changed');
    const mine = await kv.range({ key: b('/kv/r/'), range_end: b('/kv/r0'), limit: 3 });
    const theirs = await ref.kv.range({ key: b('/kv/r/'), range_end: b('/kv/r0'), limit: 3 });
    assert.equal(mine.header.revision, theirs.header.revision);
    assert.equal(mine.header.cluster_id, theirs.header.cluster_id, 'uint64 cluster IDs exact');
    assert.equal(mine.header.member_id, theirs.header.member_id);
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
    const st = await kv.status();
    assert.equal(st.header.cluster_id, theirs.header.cluster_id);
    assert.match(st.version, /^3\./);
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

  it('values larger than the HTTP/2 windows and frames go both ways intact, and a 3 MiB watch message decodes', async () => {
    const value = Buffer.alloc(1_200_000);
    for (let i = 0; i < value.length; i++) value[i] = (i * 7) % 256;
    const start = Number((await kv.range({ key: b('/kv/big/'), count_only: true })).header.revision);
    await Promise.all([1, 2, 3].map((i) => kv.put({ key: b(`/kv/big/${i}`), value })));
    const r = await kv.range({ key: b('/kv/big/'), range_end: b('/kv/big0') });
    assert.equal(r.kvs.length, 3);
    for (const k of r.kvs) assert.ok(k.value.equals(value));
    // Replayed from history, the three puts arrive in one watch response of about 3.6 MB.
    const got: Buffer[] = [];
    const w = kv.watch({ key: b('/kv/big/'), range_end: b('/kv/big0'), start_revision: start + 1 }, {
      response: (res) => { for (const e of res.events) got.push(e.kv.value); },
      end: (err) => assert.fail(err),
    });
    await waitFor(() => got.length === 3, 'three big events');
    w.close();
    for (const v of got) assert.ok(v.equals(value));
  });

  it('reports compaction and future revisions the way the store recognises them', async () => {
    await ref.put('/kv/c').value('1');
    const r = await ref.put('/kv/c').value('2');
    const rev = Number(r.header.revision);
    await kv.compact({ revision: rev });
    await assert.rejects(kv.range({ key: b('/kv/c'), revision: rev - 1 }), (e) => e instanceof EtcdRpcError && isCompacted(e) && !isUnavailable(e));
    await assert.rejects(kv.range({ key: b('/kv/c'), revision: rev + 1000 }), (e) => e instanceof Error && /future revision/.test(e.message));
    await assert.rejects(kv.compact({ revision: rev }), (e) => isCompacted(e), 'compacting again says so');
  });

  it('a refused endpoint: the same call (a write too: nothing was sent) goes to the next member', async () => {
    const two = new EtcdClient([await refusedEndpoint(), ...env.endpoints]);
    try {
      const res = await two.txn({
        compare: [{ key: b('/kv/fo/a'), target: CompareTarget.Create, result: CompareResult.Equal, create_revision: 0 }],
        success: [{ request_put: { key: b('/kv/fo/a'), value: b('x') } }],
      });
      assert.equal(res.succeeded, true);
      assert.equal((await two.range({ key: b('/kv/fo/a') })).kvs.length, 1);
    } finally {
      two.close();
    }
    const dead = new EtcdClient([await refusedEndpoint()]);
    await assert.rejects(dead.range({ key: b('/kv/x') }), (e) => isUnavailable(e) && /connection refused/.test((e as Error).message));
    dead.close();
  });

  it('a silent member: calls and a watch move to the healthy member within about the deadline', async () => {
    const silent = await silentMember();
    const store = Store.connect({ endpoints: [silent.endpoint, ...env.endpoints], callDeadlineMs: 400, keepaliveTimeMs: 200, keepaliveTimeoutMs: 300 });
    try {
      // A watch first: it is opened on the silent member and must move over.
      const events: string[] = [];
      const t0 = Date.now();
      const w = await store.watch('/kv/silent/', undefined, (e) => events.push(e.object.metadata.name!), (err) => assert.fail(err));
      assert.ok(Date.now() - t0 < 3000, `watch started in ${Date.now() - t0} ms`);
      assert.ok(silent.connections() >= 1, 'the silent member was tried first');
      const t1 = Date.now();
      for (let i = 0; i < 5; i++) await store.create(`/kv/silent/i${i}`, inst(`i${i}`));
      assert.ok(Date.now() - t1 < 3000, `5 creates took ${Date.now() - t1} ms`);
      await waitFor(() => events.length === 5, '5 watch events');
      assert.deepEqual(events, ['i0', 'i1', 'i2', 'i3', 'i4']);
      await w.close();
    } finally {
      await store.close();
      await silent.close();
    }
    // Alone, the silent member fails the call within the deadline, as Unavailable.
    const alone = silentMember();
    const s = await alone;
    const only = Store.connect({ endpoints: [s.endpoint], callDeadlineMs: 300 });
    const t2 = Date.now();
    await assert.rejects(only.get('/kv/x'), (e) => e instanceof StoreError && e.code === 'Unavailable' && /within 300 ms/.test(e.message));
    assert.ok(Date.now() - t2 < 2000);
    await only.close();
    await s.close();
  });

  it('a member answering "etcdserver: no leader": writes and reads go to the next member; it was asked with hasleader', async () => {
    const noLeader = await failingMember(14, 'etcdserver: no leader');
    const c = new EtcdClient([noLeader.endpoint, ...env.endpoints]);
    try {
      const res = await c.txn({
        compare: [{ key: b('/kv/nl/a'), target: CompareTarget.Create, result: CompareResult.Equal, create_revision: 0 }],
        success: [{ request_put: { key: b('/kv/nl/a'), value: b('x') } }],
      });
      assert.equal(res.succeeded, true, 'a write rejected with "no leader" did not apply: retried elsewhere');
      assert.deepEqual(noLeader.calls, [{ path: '/etcdserverpb.KV/Txn', hasleader: 'true' }]);
      await c.range({ key: b('/kv/nl/a') });
      assert.equal(noLeader.calls.length, 1, 'the member is skipped for a while');
    } finally {
      c.close();
      await noLeader.close();
    }
  });

  it('a member answering "request timed out" (may have applied): a read moves on, a write is not repeated', async () => {
    const timedOut = await failingMember(14, 'etcdserver: request timed out');
    const c = new EtcdClient([timedOut.endpoint, ...env.endpoints]);
    try {
      await assert.rejects(c.put({ key: b('/kv/to/a'), value: b('x') }), (e) => isUnavailable(e) && /request timed out/.test((e as Error).message));
      assert.equal((await ref.get('/kv/to/a').exists()), false, 'not repeated on the healthy member');
      // The failed member is now skipped; make it preferred again with a fresh client.
      const c2 = new EtcdClient([timedOut.endpoint, ...env.endpoints]);
      assert.equal((await c2.range({ key: b('/kv/to/a') })).count, '0');
      assert.equal(timedOut.calls.length, 2, 'the read was tried on it first');
      c2.close();
    } finally {
      c.close();
      await timedOut.close();
    }
  });

  it('verify: the cluster ID of every member; a member of another cluster or no member at all is a clear error', async () => {
    const info = await new Store(kv).verify();
    assert.equal(info.clusterId, (await ref.kv.range({ key: b('x') })).header.cluster_id);
    assert.equal(info.members.length, 1);
    const refused = await refusedEndpoint();
    const partial = Store.connect([...env.endpoints, refused]);
    const p = await partial.verify();
    assert.deepEqual(p.unreachable.map((u) => u.endpoint), [refused], 'one member down is reported, not fatal');
    await assert.rejects(partial.verify({ requireAll: true }), /connection refused/);
    await partial.close();
    const none = Store.connect({ endpoints: [refused], callDeadlineMs: 500 });
    await assert.rejects(none.verify(), new RegExp(`etcd ${refused}: connection refused`));
    await none.close();
    const other = await startTestEtcd();
    const mixed = Store.connect([...env.endpoints, ...other.endpoints]);
    try {
      await assert.rejects(mixed.verify(), /etcd endpoints belong to different clusters: .* vs .*every --etcd-endpoints URL must be a member of the same cluster/);
    } finally {
      await mixed.close();
      await other.cleanup();
    }
  });

  it('an open watch keeps its process alive, an idle connection does not', async () => {
    const storeURL = new URL('../store.js', import.meta.url).href;
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
