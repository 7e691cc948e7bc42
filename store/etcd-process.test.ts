import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { KObject } from '../api/types.js';
import { ensureEtcdPki, type EtcdPki } from '../apiserver/pki.js';
import { findEtcd, freePort, startEtcd, startEtcdCluster } from './etcd-process.js';
import { Store, StoreError, type WatchEvent } from './store.js';
import { startTestEtcd, startTestEtcdCluster, waitFor } from '../testing/etcd.js';

const run = promisify(execFile);

/** etcdctl (v3 API) against `endpoint`, with kova's client identity when `pki` is given. */
async function etcdctl(endpoint: string, pki: EtcdPki | undefined, ...args: string[]): Promise<string> {
  const creds = pki ? ['--cacert', pki.caFile, '--cert', pki.clientCertFile, '--key', pki.clientKeyFile] : [];
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, ETCDCTL_API: '3' };
  const { stdout } = await run('etcdctl', ['--endpoints', endpoint, '--dial-timeout', '3s', '--command-timeout', '5s', ...creds, ...args], { env });
  return stdout;
}

const obj = (name: string): KObject => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name } });

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('startEtcd', () => {
  it('starts a healthy member on loopback and stops it', async () => {
    const lines: string[] = [];
    const env = await startTestEtcd({ log: (l) => lines.push(l) });
    try {
      assert.match(env.endpoints[0], /^http:\/\/127\.0\.0\.1:\d+$/);
      const health = await (await fetch(`${env.endpoints[0]}/health`)).json();
      assert.equal(health.health, 'true');
      assert.ok(alive(env.etcd.pid));
      assert.ok(lines.length > 0, 'etcd output reaches the log callback');
    } finally {
      await env.cleanup();
    }
    assert.equal(alive(env.etcd.pid), false);
    assert.equal(await env.etcd.exited, 0, 'SIGTERM is a clean shutdown');
    await env.etcd.stop(); // idempotent
  });

  it('explains how to install etcd when it is missing', async () => {
    await assert.rejects(findEtcd('etcd-not-installed-here'), /hack\/install-host-deps\.sh.*apt-get install etcd-server/);
    await assert.rejects(startEtcd({ dataDir: '/tmp/unused', binary: '/nonexistent/etcd' }), /install-host-deps/);
  });

  it('fails with the tail of etcd output when it cannot start', async () => {
    const port = await freePort();
    const blocker = createServer().listen(port, '127.0.0.1');
    await new Promise((r) => blocker.once('listening', r));
    try {
      await assert.rejects(
        startTestEtcd({ clientPort: port, peerPort: await freePort() }),
        (err: Error) => /did not become healthy/.test(err.message) && /address already in use/.test(err.message),
      );
    } finally {
      blocker.close();
    }
  });

  it('restartOnCrash brings etcd back and watches resume without gaps', async () => {
    const env = await startTestEtcd({ restartOnCrash: true });
    const store = Store.connect(env.endpoints);
    try {
      const p = '/registry/test/crash/';
      const events: WatchEvent[] = [];
      const errors: StoreError[] = [];
      const w = await store.watch(p, await store.currentRevision(), (e) => events.push(e), (e) => errors.push(e));
      await store.create(p + 'a', obj('a'));
      await waitFor(() => events.length === 1, 'first event');

      const oldPid = env.etcd.pid;
      process.kill(oldPid, 'SIGKILL');
      await waitFor(() => !alive(oldPid), 'etcd to die');
      await assert.rejects(store.create(p + 'down', obj('down')), (e) => e instanceof StoreError && e.code === 'Unavailable');

      // Writes succeed again once the supervisor restarted etcd (same port, same data).
      await waitFor(async () => {
        try {
          await store.create(p + 'b', obj('b'));
          return true;
        } catch (e) {
          if (e instanceof StoreError && e.code === 'Unavailable') return false;
          throw e;
        }
      }, 'etcd to come back', 20_000);
      assert.notEqual(env.etcd.pid, oldPid);
      assert.equal(env.etcd.restarts, 1);
      assert.equal((await store.get(p + 'a'))?.metadata.name, 'a', 'data survived');
      await store.create(p + 'c', obj('c'));

      await waitFor(() => events.length >= 3, 'events after the restart', 20_000);
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(events.map((e) => `${e.type} ${e.object.metadata.name}`), ['ADDED a', 'ADDED b', 'ADDED c']);
      assert.deepEqual(errors, []);
      await w.close();
    } finally {
      await store.close();
      await env.cleanup();
    }
    assert.equal(await env.etcd.exited, 0);
  });

  // etcd sends a replay in batches of 1000 revisions, each stamped with the *current* revision;
  // etcd3 would resume after that header revision and silently skip the rest of the replay.
  it('a watch replaying history resumes where it left off after an etcd crash', async () => {
    const env = await startTestEtcd({ restartOnCrash: true });
    const store = Store.connect(env.endpoints);
    try {
      const p = '/registry/test/replay/';
      const from = await store.currentRevision();
      const N = 2500;
      await Promise.all(
        Array.from({ length: 25 }, async (_, w) => {
          for (let i = w; i < N; i += 25) await store.create(p + `k${i}`, obj(`k${i}`));
        }),
      );
      const revs: number[] = [];
      const errors: StoreError[] = [];
      let killed = false;
      const w = await store.watch(p, from, (e) => {
        revs.push(Number(e.revision));
        if (!killed) {
          killed = true;
          process.kill(env.etcd.pid, 'SIGKILL'); // mid-replay: later batches are not sent yet
        }
      }, (e) => errors.push(e));
      await waitFor(() => revs.length >= N || errors.length > 0, `${N} events`, 30_000);
      assert.equal(env.etcd.restarts, 1);
      assert.deepEqual(errors, []);
      assert.equal(revs.length, N);
      assert.equal(new Set(revs).size, N, 'no duplicates');
      assert.deepEqual(revs, [...revs].sort((a, b) => a - b), 'in order');
      await w.close();
    } finally {
      await store.close();
      await env.cleanup();
    }
  });
});

describe('etcd with TLS', () => {
  it('requires a client certificate from the kova CA; keys are mode 600', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kova-etcd-tls-'));
    try {
      const pki = await ensureEtcdPki(join(dir, 'pki'));
      for (const f of [pki.keyFile, pki.peerKeyFile, pki.clientKeyFile]) assert.equal((await stat(f)).mode & 0o777, 0o600, f);
      assert.equal((await stat(join(dir, 'pki', 'etcd'))).mode & 0o777, 0o700);
      const again = await ensureEtcdPki(join(dir, 'pki'));
      assert.equal((await stat(again.certFile)).mtimeMs, (await stat(pki.certFile)).mtimeMs, 'certificates are reused');

      const etcd = await startEtcd({ dataDir: join(dir, 'etcd'), tls: pki });
      try {
        const [ep] = etcd.endpoints;
        assert.match(ep!, /^https:\/\/127\.0\.0\.1:\d+$/);
        await etcdctl(ep!, pki, 'put', '/registry/x', 'secret');
        assert.equal(await etcdctl(ep!, pki, 'get', '--print-value-only', '/registry/x'), 'secret\n');
        // The CA alone (no client certificate) is refused, and so is plain HTTP.
        await assert.rejects(run('etcdctl', ['--endpoints', ep!, '--cacert', pki.caFile, '--dial-timeout', '2s', '--command-timeout', '3s', 'get', '/registry/x'], { env: { PATH: process.env.PATH, ETCDCTL_API: '3' } }));
        await assert.rejects(etcdctl(ep!.replace('https:', 'http:'), undefined, 'get', '/registry/x'));
      } finally {
        await etcd.stop();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a plain-HTTP data dir of an older kova restarts with TLS and keeps its data', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kova-etcd-upgrade-'));
    try {
      const plain = await startEtcd({ dataDir: join(dir, 'etcd') });
      await etcdctl(plain.endpoints[0]!, undefined, 'put', '/registry/old', 'kept');
      await plain.stop();
      const pki = await ensureEtcdPki(join(dir, 'pki'));
      const tls = await startEtcd({ dataDir: join(dir, 'etcd'), tls: pki });
      try {
        assert.equal(await etcdctl(tls.endpoints[0]!, pki, 'get', '--print-value-only', '/registry/old'), 'kept\n');
      } finally {
        await tls.stop();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('startEtcdCluster', () => {
  it('3 TLS members: one killed, the others serve; it restarts and catches up; a restart keeps the data', async () => {
    const c = await startTestEtcdCluster({ members: 3, tls: true });
    const pki: EtcdPki = { ...c.tls!.server };
    try {
      assert.equal(c.endpoints.length, 3);
      assert.ok(c.endpoints.every((e) => e.startsWith('https://127.0.0.1:')));
      type Status = { Endpoint: string; Status: { header: { cluster_id: number; member_id: number }; leader: number } };
      const status = JSON.parse(await etcdctl(c.endpoints.join(','), pki, 'endpoint', 'status', '-w', 'json')) as Status[];
      assert.equal(new Set(status.map((s) => s.Status.header.cluster_id)).size, 1, 'one cluster');

      // The leader: the harder case (the others must elect a new one).
      const leader = status.find((s) => s.Status.leader === s.Status.header.member_id)!.Endpoint;
      const victim = c.members.find((m) => m.endpoint === leader)!;
      const other = c.members.find((m) => m !== victim)!;
      const oldPid = victim.pid;
      victim.kill('SIGKILL');
      // Written while the member is down: a majority still serves. A put racing the election
      // can be dropped by etcd (the client times out), so retry as a client would.
      await waitFor(async () => {
        try {
          await etcdctl(other.endpoint, pki, 'put', '--command-timeout=2s', '/registry/during', 'v1');
          return true;
        } catch {
          return false;
        }
      }, 'a put on a surviving member', 20_000);
      await waitFor(() => victim.pid !== oldPid && victim.restarts === 1, 'the supervisor to restart the member', 15_000);
      // A serializable read is answered from the member's own data: it has caught up.
      await waitFor(async () => {
        try {
          return (await etcdctl(victim.endpoint, pki, 'get', '--consistency=s', '--print-value-only', '/registry/during')) === 'v1\n';
        } catch {
          return false;
        }
      }, 'the restarted member to catch up', 15_000);

      // stop() and restart() of one member (what failover tests use).
      const stopped = c.members.find((m) => m !== other)!;
      await stopped.stop();
      await etcdctl(other.endpoint, pki, 'put', '/registry/while-stopped', 'v2');
      await stopped.restart();
      assert.equal(await etcdctl(stopped.endpoint, pki, 'get', '--consistency=s', '--print-value-only', '/registry/while-stopped'), 'v2\n');
    } finally {
      await c.cleanup();
    }
  });

  it('restarts a stopped cluster from its data dir with the same ports; refuses another member count', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kova-etcd-cluster-restart-'));
    try {
      const first = await startEtcdCluster({ dataDir: dir, members: 3 });
      await etcdctl(first.endpoints[0]!, undefined, 'put', '/registry/k', 'v');
      await first.stop();
      await assert.rejects(startEtcdCluster({ dataDir: dir, members: 5 }), /has 3 members, not 5.*--etcd-members 3/);
      await assert.rejects(startEtcdCluster({ dataDir: dir, members: 2 }), /must be 1, 3, 5 or 7/);
      const second = await startEtcdCluster({ dataDir: dir, members: 3 });
      try {
        assert.deepEqual(second.endpoints, first.endpoints);
        assert.equal(await etcdctl(second.endpoints[2]!, undefined, 'get', '--print-value-only', '/registry/k'), 'v\n');
      } finally {
        await second.stop();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
