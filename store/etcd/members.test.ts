// The etcd client against real etcd members started here: TLS with a private CA and client
// certificates, and a 3-member cluster whose members are stopped and killed under an open watch.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { EtcdClient } from './client.js';
import { findEtcd, freePort } from '../etcd-process.js';
import { Store, StoreError, type WatchEvent } from '../store.js';
import { waitFor } from '../../testing/etcd.js';

const run = promisify(execFile);

interface Member {
  name: string;
  client: string;
  proc: ChildProcess;
}

/** Starts one etcd member with `extra` flags; resolves once its process runs (not when healthy). */
async function startMember(binary: string, dir: string, name: string, clientURL: string, peerURL: string, cluster: string, extra: string[] = []): Promise<Member> {
  const proc = spawn(binary, [
    '--name', name, '--data-dir', join(dir, name),
    '--listen-client-urls', clientURL, '--advertise-client-urls', clientURL,
    '--listen-peer-urls', peerURL, '--initial-advertise-peer-urls', peerURL,
    '--initial-cluster', cluster, '--initial-cluster-state', 'new', '--initial-cluster-token', `kova-test-${cluster.length}`,
    // Quick elections, and keepalive PINGs as often as the test sends them.
    '--heartbeat-interval', '50', '--election-timeout', '500', '--grpc-keepalive-min-time', '100ms',
    '--logger', 'zap', '--log-outputs', 'stderr', ...extra,
  ], { stdio: ['ignore', 'ignore', 'ignore'] });
  return { name, client: clientURL, proc };
}

function stop(m: Member): Promise<void> {
  if (m.proc.exitCode !== null || m.proc.signalCode !== null) return Promise.resolve();
  return new Promise((r) => {
    m.proc.once('exit', () => r());
    m.proc.kill('SIGCONT');
    m.proc.kill('SIGKILL');
  });
}

let binary: string;
let dir: string;
before(async () => {
  binary = await findEtcd();
  dir = await mkdtemp(join(tmpdir(), 'kova-etcd-members-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('TLS', () => {
  let member: Member;
  let ca: Buffer, cert: Buffer, key: Buffer, otherCa: Buffer;
  let endpoint: string;

  before(async () => {
    const pki = join(dir, 'pki');
    await run('mkdir', ['-p', pki]);
    const f = (n: string) => join(pki, n);
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    for (const c of ['ca', 'other-ca']) await run('openssl', ['req', '-x509', ...ec, '-keyout', f(`${c}.key`), '-out', f(`${c}.crt`), '-days', '1', '-subj', `/CN=${c}`]);
    await writeFile(f('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
    await writeFile(f('client.ext'), 'extendedKeyUsage=clientAuth\n');
    for (const c of ['server', 'client']) {
      await run('openssl', ['req', ...ec, '-keyout', f(`${c}.key`), '-out', f(`${c}.csr`), '-subj', `/CN=${c}`]);
      await run('openssl', ['x509', '-req', '-in', f(`${c}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f(`${c}.crt`), '-days', '1', '-extfile', f(`${c}.ext`)]);
    }
    const { readFile } = await import('node:fs/promises');
    [ca, cert, key, otherCa] = await Promise.all([f('ca.crt'), f('client.crt'), f('client.key'), f('other-ca.crt')].map((p) => readFile(p)));
    const [cp, pp] = [await freePort(), await freePort()];
    endpoint = `https://127.0.0.1:${cp}`;
    member = await startMember(binary, dir, 'tls', endpoint, `http://127.0.0.1:${pp}`, `tls=http://127.0.0.1:${pp}`,
      ['--cert-file', f('server.crt'), '--key-file', f('server.key'), '--trusted-ca-file', f('ca.crt'), '--client-cert-auth']);
    const probe = new EtcdClient({ endpoints: [endpoint], tls: { ca, cert, key }, callDeadlineMs: 1000 });
    await waitFor(() => probe.status().then(() => true, () => false), 'etcd with TLS to answer', 20_000);
    probe.close();
  });
  after(async () => {
    if (member) await stop(member);
  });

  it('with the private CA and a client certificate, calls and verify work', async () => {
    const store = Store.connect({ endpoints: [endpoint], tls: { ca, cert, key } });
    try {
      const info = await store.verify({ requireAll: true });
      assert.equal(info.members.length, 1);
      assert.match(info.members[0]!.version, /^3\./);
      await store.create('/tls/a', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a' } });
      assert.equal((await store.get('/tls/a'))?.metadata.name, 'a');
    } finally {
      await store.close();
    }
  });

  it('a wrong CA, no client certificate, or http:// on the TLS port: a clear error from verify, and Unavailable from calls', async () => {
    const cases: Array<[string, ConstructorParameters<typeof EtcdClient>[0], RegExp]> = [
      ['wrong CA', { endpoints: [endpoint], tls: { ca: otherCa, cert, key } }, new RegExp(`etcd ${endpoint}: certificate signed by unknown authority .*check --etcd-cafile`)],
      ['system CAs', { endpoints: [endpoint] }, /certificate signed by unknown authority .*check --etcd-cafile/],
      ['no client certificate', { endpoints: [endpoint], tls: { ca } }, new RegExp(`etcd ${endpoint} refused the TLS handshake .*check --etcd-certfile and --etcd-keyfile`)],
      ['http on a TLS port', { endpoints: [endpoint.replace('https:', 'http:')], callDeadlineMs: 1000 }, /etcd http:\/\/127\.0\.0\.1:\d+/],
    ];
    for (const [what, opts, message] of cases) {
      const store = Store.connect({ callDeadlineMs: 2000, ...(opts as object), endpoints: (opts as { endpoints: string[] }).endpoints });
      const t0 = Date.now();
      await assert.rejects(store.verify(), message, what);
      assert.ok(Date.now() - t0 < 3000, `${what}: answered in ${Date.now() - t0} ms`);
      await assert.rejects(store.get('/tls/a'), (e) => e instanceof StoreError && e.code === 'Unavailable', what);
      await store.close();
    }
  });
});

describe('a 3-member cluster', () => {
  const members: Member[] = [];
  before(async () => {
    const ports = [];
    for (let i = 0; i < 3; i++) ports.push([await freePort(), await freePort()] as const);
    const cluster = ports.map(([, p], i) => `m${i}=http://127.0.0.1:${p}`).join(',');
    for (let i = 0; i < 3; i++) {
      members.push(await startMember(binary, dir, `m${i}`, `http://127.0.0.1:${ports[i]![0]}`, `http://127.0.0.1:${ports[i]![1]}`, cluster));
    }
    const probe = new EtcdClient({ endpoints: members.map((m) => m.client), callDeadlineMs: 1000 });
    await waitFor(() => probe.verify({ requireAll: true }).then(() => true, () => false), 'a 3-member cluster', 30_000);
    probe.close();
  });
  after(async () => {
    await Promise.all(members.map(stop));
  });

  /** Creates `names` under /ha/, retrying while the cluster elects a leader; AlreadyExists after a retry means it applied. */
  async function writeAll(store: Store, names: string[]): Promise<void> {
    for (const name of names) {
      const deadline = Date.now() + 20_000;
      for (let attempt = 0; ; attempt++) {
        try {
          await store.create(`/ha/${name}`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name } });
          break;
        } catch (err) {
          if (err instanceof StoreError && err.code === 'AlreadyExists' && attempt > 0) break;
          if (!(err instanceof StoreError && err.code === 'Unavailable') || Date.now() > deadline) throw err;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    }
  }

  it('calls waiting on a frozen member (SIGSTOP) leave it in seconds, not at the call deadline: a read is retried on the next member, a write that left fails Unavailable', async () => {
    const eps = members.map((m) => m.client);
    // Default keepalive (30 s) and call deadline (10 s): only the PING sent when calls wait on a
    // silent member can find it sooner.
    const store = Store.connect({ endpoints: eps });
    try {
      await writeAll(store, ['frozen']);
      members[0]!.proc.kill('SIGSTOP');
      try {
        const t0 = Date.now();
        const [read, write] = await Promise.allSettled([
          store.get('/ha/frozen'),
          store.create('/ha/frozen-write', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'frozen-write' } }),
        ]);
        const took = Date.now() - t0;
        assert.equal(read.status, 'fulfilled', String((read as PromiseRejectedResult).reason));
        assert.equal((read as PromiseFulfilledResult<{ metadata: { name: string } } | undefined>).value?.metadata.name, 'frozen');
        assert.equal(write.status, 'rejected');
        const err = (write as PromiseRejectedResult).reason;
        assert.ok(err instanceof StoreError && err.code === 'Unavailable', String(err));
        assert.match(err.message, /no answer within 2000 ms to a PING sent after calls waited \d+ ms for a reply/);
        // Found after 1–1.5 s of silence plus the 2 s PING timeout.
        assert.ok(took < 6000, `the frozen member was left after ${took} ms; the call deadline is 10 s`);
        // The next call goes to a live member straight away.
        const t1 = Date.now();
        await store.get('/ha/frozen');
        assert.ok(Date.now() - t1 < 1000, `a call after that took ${Date.now() - t1} ms`);
      } finally {
        members[0]!.proc.kill('SIGCONT');
      }
      // m0 answers again: wait until it has caught up so the next tests start from three members.
      const m0 = new EtcdClient({ endpoints: [eps[0]!], callDeadlineMs: 1000 });
      await waitFor(() => m0.range({ key: Buffer.from('/ha/frozen') }).then(() => true, () => false), 'm0 to serve again', 20_000);
      m0.close();
    } finally {
      await store.close();
    }
  });

  it('a watch survives its member being SIGSTOPped, then SIGKILLed: every event exactly once, in order', async () => {
    const eps = members.map((m) => m.client);
    // Fresh client: the watch opens on the first endpoint, m0.
    const watcher = Store.connect({ endpoints: eps, keepaliveTimeMs: 300, keepaliveTimeoutMs: 500, callDeadlineMs: 1500 });
    const events: WatchEvent[] = [];
    const errors: StoreError[] = [];
    const w = await watcher.watch('/ha/', undefined, (e) => events.push(e), (e) => errors.push(e));
    const writer = Store.connect({ endpoints: [eps[1]!, eps[2]!, eps[0]!], callDeadlineMs: 1500 });
    try {
      await writeAll(writer, ['before']);
      await waitFor(() => events.length === 1, 'the first event');

      // m0 goes silent (no FIN, no RST): only the keepalive PING can tell.
      members[0]!.proc.kill('SIGSTOP');
      const stopped = Array.from({ length: 30 }, (_, i) => `stopped-${i}`);
      try {
        await writeAll(writer, stopped);
        await waitFor(() => events.length === 31, 'the events written while m0 was stopped', 20_000);
      } finally {
        members[0]!.proc.kill('SIGCONT');
      }

      // The watch moved to m1 (the next member): kill it outright.
      members[1]!.proc.kill('SIGKILL');
      const killed = Array.from({ length: 30 }, (_, i) => `killed-${i}`);
      await writeAll(writer, killed);
      await waitFor(() => events.length >= 61, 'the events written after m1 was killed', 20_000);
      // A control write: once its event is in, any duplicate of the earlier ones would be too.
      await writeAll(writer, ['control']);
      await waitFor(() => events.some((e) => e.object.metadata.name === 'control'), 'the control event', 20_000);

      const names = events.map((e) => e.object.metadata.name);
      assert.deepEqual(names, ['before', ...stopped, ...killed, 'control'], 'every event exactly once, in write order');
      const revs = events.map((e) => Number(e.revision));
      assert.deepEqual(revs, [...revs].sort((a, b) => a - b));
      assert.equal(new Set(revs).size, revs.length);
      assert.ok(events.every((e) => e.type === 'ADDED'));
      assert.deepEqual(errors, []);
    } finally {
      await w.close();
      await watcher.close();
      await writer.close();
    }
  });

  it('a member that loses quorum cancels a watch ("no leader") and answers calls at once instead of timing out', async () => {
    // m0 alone once m1 and m2 stop (m1 may be dead already).
    const m0 = new EtcdClient({ endpoints: [members[0]!.client], callDeadlineMs: 8000 });
    await waitFor(() => m0.range({ key: Buffer.from('/ha/x') }).then(() => true, () => false), 'm0 to serve', 20_000);
    let ended: Error | undefined;
    let created = false;
    const w = m0.watch({ key: Buffer.from('/ha/'), range_end: Buffer.from('/ha0') }, { response: (r) => void (created ||= r.created), end: (e) => void (ended = e) });
    await waitFor(() => created, 'the watch to start');
    members[1]!.proc.kill('SIGSTOP');
    members[2]!.proc.kill('SIGSTOP');
    try {
      await waitFor(() => ended !== undefined, 'the watch to be cancelled', 15_000);
      assert.match(ended!.message, /no leader/);
      const t0 = Date.now();
      await assert.rejects(m0.range({ key: Buffer.from('/ha/x') }), /etcdserver: no leader/);
      assert.ok(Date.now() - t0 < 2000, `"no leader" after ${Date.now() - t0} ms, not the 8 s deadline`);
    } finally {
      w.close();
      m0.close();
      members[1]!.proc.kill('SIGCONT');
      members[2]!.proc.kill('SIGCONT');
    }
  });
});
