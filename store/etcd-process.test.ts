import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import type { KObject } from '../api/types.js';
import { findEtcd, freePort, startEtcd } from './etcd-process.js';
import { Store, StoreError, type WatchEvent } from './store.js';
import { startTestEtcd, waitFor } from '../testing/etcd.js';

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
