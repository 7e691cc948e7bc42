// KovaClient against a real `kova up`: CRUD, paging, selectors, status writes with conflict
// retries, finalizers, errors, binding; against a real API server at its in-flight limit: 429
// retries after Retry-After (kubectl's too), and the client-side token bucket.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import diagnosticsChannel from 'node:diagnostics_channel';
import { mkdtemp, rm } from 'node:fs/promises';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { startControlPlane } from '../cli/control-plane.js';
import type { ControlPlane } from '../cli/control-plane.js';
import { KUBECTL, startKova } from '../e2e/harness.js';
import type { Kova } from '../e2e/harness.js';
import { waitFor } from '../testing/etcd.js';
import { ManualClock } from '../testing/manual-clock.js';
import { StatusError, FLAVORS, HOSTS, INSTANCES, KovaClient, NAMESPACES } from './client.js';
import type { Kind, KObject, KovaClientOptions } from './client.js';

const NS = 'rt-client';
const CONFIGMAPS: Kind = { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap', namespaced: true };

describe('KovaClient', () => {
  let kova: Kova;
  let c: KovaClient;

  before(async () => {
    // The runtime is tested alone: no controllers or agents acting on the test's objects.
    kova = await startKova(['--no-controllers', '--no-agents']);
    c = KovaClient.fromFile(kova.kubeconfig, { userAgent: 'runtime-test' });
    await c.create(NAMESPACES, { metadata: { name: NS } });
    await c.create(FLAVORS, { metadata: { name: 'rt.small' }, spec: { vcpus: 1, memory: '512Mi', disk: '2Gi' } });
  });
  after(async () => {
    c?.close();
    await kova?.stop();
  });

  const inst = (name: string, labels?: Record<string, string>) => ({
    metadata: { name, namespace: NS, labels },
    spec: { flavor: 'rt.small', image: 'tiny' },
  });

  it('creates, gets, lists with selectors and paging, merge-patches, deletes', async () => {
    const created = await c.create(INSTANCES, inst('a', { tier: 'web' }));
    assert.equal(created.kind, 'Instance');
    assert.ok(created.metadata.uid);
    await c.create(INSTANCES, inst('b', { tier: 'db' }));
    await c.create(INSTANCES, inst('c', { tier: 'web' }));

    const got = await c.get(INSTANCES, NS, 'a');
    assert.equal(got?.metadata.uid, created.metadata.uid);
    assert.equal(await c.get(INSTANCES, NS, 'nope'), undefined);

    const all = await c.list(INSTANCES, NS, { limit: 1 }); // forces 3 pages
    assert.deepEqual(all.items.map((o) => o.metadata.name).sort(), ['a', 'b', 'c']);
    assert.ok(all.resourceVersion);
    assert.equal(all.items[0]!.kind, 'Instance');
    const web = await c.list(INSTANCES, NS, { labelSelector: 'tier=web' });
    assert.deepEqual(web.items.map((o) => o.metadata.name).sort(), ['a', 'c']);
    const byName = await c.list(INSTANCES, undefined, { fieldSelector: 'metadata.name=b' });
    assert.deepEqual(byName.items.map((o) => `${o.metadata.namespace}/${o.metadata.name}`), [`${NS}/b`]);

    const patched = await c.mergePatch(INSTANCES, NS, 'a', { metadata: { labels: { tier: null, x: 'y' } } });
    assert.deepEqual(patched.metadata.labels, { x: 'y' }, 'merge patch semantics (null deletes)');

    assert.equal(await c.delete(INSTANCES, NS, 'c'), true);
    assert.equal(await c.delete(INSTANCES, NS, 'c'), false, 'already gone');
    await assert.rejects(
      c.delete(INSTANCES, NS, 'b', { preconditions: { uid: 'not-the-uid' } }),
      (e: unknown) => e instanceof StatusError && e.code === 409,
    );
    assert.ok(await c.get(INSTANCES, NS, 'b'), 'failed precondition keeps the object');
  });

  it('throws StatusError with code, reason and message from the Status body', async () => {
    await assert.rejects(c.create(INSTANCES, inst('a')), (e: unknown) => {
      assert.ok(e instanceof StatusError);
      assert.equal(e.code, 409);
      assert.equal(e.reason, 'AlreadyExists');
      assert.match(e.message, /"a" already exists/);
      return true;
    });
    await assert.rejects(c.mergePatch(INSTANCES, NS, 'ghost', { metadata: { labels: { a: 'b' } } }), (e: unknown) => e instanceof StatusError && e.code === 404 && e.reason === 'NotFound');
  });

  it('patchStatus writes only status; updateStatus retries on conflict with fresh reads', async () => {
    await c.create(INSTANCES, inst('s'));
    const p = await c.patchStatus(INSTANCES, NS, 's', { status: { phase: 'Pending' }, spec: { flavor: 'ignored' } });
    assert.equal((p.status as { phase?: string }).phase, 'Pending');
    assert.equal((p.spec as { flavor: string }).flavor, 'rt.small', 'status subresource ignores spec');

    // Another writer changes the object between our GET and our PUT (injected right before the
    // first PUT): the PUT must fail with 409 and the retry must re-read and re-apply mutate.
    let runs = 0;
    const seenLabels: Array<string | undefined> = [];
    let injected = false;
    const racy = new (class extends KovaClient {
      override async replaceStatus<T extends KObject>(kind: typeof INSTANCES, obj: T): Promise<T> {
        if (!injected) {
          injected = true;
          await c.mergePatch(INSTANCES, NS, 's', { metadata: { labels: { touched: 'yes' } } });
        }
        return super.replaceStatus(kind, obj);
      }
    })(c.kc);
    const res = await racy.updateStatus<KObject>(INSTANCES, NS, 's', (obj) => {
      runs++;
      seenLabels.push(obj.metadata.labels?.touched);
      (obj.status as Record<string, unknown>).phase = 'Running';
    });
    racy.close();
    assert.equal(runs, 2, 'mutate re-applied after the conflict');
    assert.deepEqual(seenLabels, [undefined, 'yes']);
    assert.equal(racy.stats.conflicts, 1);
    assert.equal((res!.status as { phase: string }).phase, 'Running');
    assert.equal(res!.metadata.labels?.touched, 'yes');

    // Returning false skips the write.
    const rv = res!.metadata.resourceVersion;
    const same = await c.updateStatus(INSTANCES, NS, 's', () => false);
    assert.equal(same!.metadata.resourceVersion, rv);
    assert.equal(await c.updateStatus(INSTANCES, NS, 'ghost', () => undefined), undefined);
  });

  it('updateStatus converges under many concurrent writers', async () => {
    await c.create(INSTANCES, inst('counter'));
    await c.patchStatus(INSTANCES, NS, 'counter', { status: { restartCount: 0 } });
    const writers = 10;
    await Promise.all(
      Array.from({ length: writers }, () =>
        c.updateStatus(INSTANCES, NS, 'counter', (o) => {
          const st = o.status as { restartCount: number };
          st.restartCount = (st.restartCount ?? 0) + 1;
        }),
      ),
    );
    const final = await c.get(INSTANCES, NS, 'counter');
    assert.equal((final!.status as { restartCount: number }).restartCount, writers, 'no lost update');
  });

  it('adds and removes finalizers idempotently; removing the last one completes a deletion', async () => {
    await c.create(INSTANCES, inst('f'));
    await c.addFinalizer(INSTANCES, NS, 'f', 'kova.dev/test');
    await c.addFinalizer(INSTANCES, NS, 'f', 'kova.dev/test');
    await c.addFinalizer(INSTANCES, NS, 'f', 'kova.dev/other');
    assert.deepEqual((await c.get(INSTANCES, NS, 'f'))!.metadata.finalizers, ['kova.dev/test', 'kova.dev/other']);
    await c.delete(INSTANCES, NS, 'f');
    const terminating = await c.get(INSTANCES, NS, 'f');
    assert.ok(terminating?.metadata.deletionTimestamp, 'held by finalizers');
    await c.removeFinalizer(INSTANCES, NS, 'f', 'kova.dev/other');
    assert.deepEqual((await c.get(INSTANCES, NS, 'f'))!.metadata.finalizers, ['kova.dev/test']);
    await c.removeFinalizer(INSTANCES, NS, 'f', 'kova.dev/test');
    assert.equal(await c.get(INSTANCES, NS, 'f'), undefined, 'deleted once the last finalizer is gone');
    assert.equal(await c.removeFinalizer(INSTANCES, NS, 'f', 'kova.dev/test'), undefined);
  });

  it('handles cluster-scoped kinds', async () => {
    const h = await c.create(HOSTS, { metadata: { name: 'rt-host-1', labels: { 'kova.dev/zone': 'z1' } }, spec: {} });
    assert.equal(h.metadata.namespace, undefined);
    assert.equal((await c.get(HOSTS, undefined, 'rt-host-1'))!.metadata.uid, h.metadata.uid);
    const out = await kova.k(['get', 'host', 'rt-host-1', '-o', 'jsonpath={.metadata.labels.kova\\.dev/zone}']);
    assert.equal(out, 'z1');
    assert.throws(() => c.objectPath(INSTANCES, undefined, 'x'), /namespace required/);
  });

  it('binds an instance to a host through the binding subresource', async (t) => {
    await c.create(INSTANCES, inst('bound'));
    await c.create(HOSTS, { metadata: { name: 'rt-host-2' }, spec: {} });
    await c.patchStatus(HOSTS, undefined, 'rt-host-2', {
      status: { capacity: { vcpus: 4, memory: '8Gi', disk: '100Gi' }, allocatable: { vcpus: 4, memory: '8Gi', disk: '100Gi' } },
    });
    let bound: KObject;
    try {
      bound = await c.bind(NS, 'bound', 'rt-host-2', { vcpus: 1, memory: '512Mi', disk: '2Gi' });
    } catch (e) {
      // The instance exists, so a 404 means the server does not serve the subresource yet.
      if (e instanceof StatusError && e.code === 404 && (await c.get(INSTANCES, NS, 'bound'))) {
        t.skip(`binding subresource not served yet (404: ${e.message})`);
        return;
      }
      throw e;
    }
    assert.equal((bound.status as { hostName?: string }).hostName, 'rt-host-2');
    assert.ok(bound.metadata.finalizers?.includes('kova.dev/instance-protection'));
  });

  it('keeps its connection after a DELETE with DeleteOptions in the body', async () => {
    // undici closes a connection after a body its method does not expect unless told not to.
    const k = KovaClient.fromFile(kova.kubeconfig, { userAgent: 'runtime-test', maxSockets: 1 });
    let connected = 0;
    const count = () => void connected++;
    diagnosticsChannel.subscribe('undici:client:connected', count);
    try {
      await k.get(FLAVORS, undefined, 'rt.small');
      const before = connected;
      for (let i = 0; i < 5; i++) {
        const cm = await k.create<KObject>(CONFIGMAPS, { metadata: { name: `del-body-${i}`, namespace: NS } });
        await k.delete(CONFIGMAPS, NS, cm.metadata.name!, { preconditions: { uid: cm.metadata.uid }, propagationPolicy: 'Background' });
        await k.get(FLAVORS, undefined, 'rt.small');
      }
      assert.equal(connected - before, 0, 'new connections after DELETEs with a body');
    } finally {
      diagnosticsChannel.unsubscribe('undici:client:connected', count);
      k.close();
    }
  });

  it('sustains many concurrent requests over keep-alive connections', async () => {
    const n = 1000;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: n }, () => c.get(FLAVORS, undefined, 'rt.small')));
    const ms = performance.now() - t0;
    console.log(`# ${n} GETs in ${ms.toFixed(0)} ms (${((n / ms) * 1000).toFixed(0)}/s)`);
    assert.ok(ms < 30_000);
  });
});

// Overload: an in-process API server (so the test can see its slots) with one mutating slot,
// held by a create whose body stops halfway; the client's rate limit on a manual clock.
describe('KovaClient under overload', () => {
  let dir: string;
  let cp: ControlPlane;
  let port: number;
  const clients: KovaClient[] = [];
  const held: tls.TLSSocket[] = [];
  const client = (opts: KovaClientOptions) => {
    const k = KovaClient.fromFile(cp.kubeconfig, opts);
    clients.push(k);
    return k;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kova-rt-overload-'));
    cp = await startControlPlane({ dataDir: dir, listen: '127.0.0.1:0', inflight: { maxRequestsInflight: 100, maxMutatingRequestsInflight: 1 } });
    port = Number(new URL(cp.url).port);
  });
  // A test that failed while holding the slot must not leave it to the next one.
  afterEach(async () => {
    for (const s of held.splice(0)) s.destroy();
    await waitFor(() => cp.apiserver!.inflight.mutating === 0, 'held slots released');
  });
  after(async () => {
    for (const k of clients) k.close();
    await cp?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** Holds the one mutating slot until release() (which completes the create) or abort(). */
  async function holdMutatingSlot(name: string) {
    const body = JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name } });
    const socket = tls.connect({ port, host: '127.0.0.1', ca: cp.caCert, servername: '127.0.0.1' });
    socket.on('error', () => undefined);
    held.push(socket);
    socket.write(`POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${cp.token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body.slice(0, 5)}`);
    await waitFor(() => cp.apiserver!.inflight.mutating === 1, 'the slot taken');
    return {
      release: () => void socket.write(body.slice(5)),
      abort: () => socket.destroy(),
    };
  }

  it('retries a 429 after its Retry-After (on its clock) and succeeds', async () => {
    const clock = new ManualClock();
    const k = client({ clock, qps: 0 });
    const slot = await holdMutatingSlot('held-1');
    const rejected = cp.apiserver!.inflight.rejected.mutating;
    const created = k.create(CONFIGMAPS, { metadata: { name: 'retried', namespace: 'default' } });
    await waitFor(() => k.stats.retries === 1 && clock.pending() === 1, 'the 429 and a retry timer');
    assert.equal(cp.apiserver!.inflight.rejected.mutating, rejected + 1);
    clock.advance(999);
    assert.equal(clock.pending(), 1, 'Retry-After: 1 is honoured: no retry before a second');
    assert.equal(k.stats.requests, 1);
    slot.release();
    await waitFor(() => cp.apiserver!.inflight.mutating === 0, 'the slot released');
    clock.advance(251); // the wait is 1 s plus at most 25% jitter
    const obj = await created;
    assert.equal(obj.metadata.name, 'retried');
    assert.deepEqual([k.stats.requests, k.stats.retries], [2, 1]);
  });

  it('gives up after maxRetries with the 429 StatusError; reads are not refused meanwhile', async () => {
    const k = client({ maxRetries: 2, maxRetryAfterMs: 0, qps: 0 });
    const slot = await holdMutatingSlot('held-2');
    try {
      await assert.rejects(k.create(CONFIGMAPS, { metadata: { name: 'never', namespace: 'default' } }), (e: unknown) => {
        assert.ok(e instanceof StatusError);
        assert.equal(e.code, 429);
        assert.equal(e.reason, 'TooManyRequests');
        assert.deepEqual(e.status?.details, { retryAfterSeconds: 1 });
        return true;
      });
      assert.deepEqual([k.stats.requests, k.stats.retries], [3, 2]);
      assert.equal(await k.get(CONFIGMAPS, 'default', 'never'), undefined);
    } finally {
      slot.abort();
    }
    await waitFor(() => cp.apiserver!.inflight.mutating === 0, 'the aborted slot released');
  });

  it('kubectl honours the 429 Retry-After too', async () => {
    const slot = await holdMutatingSlot('held-3');
    const rejected = cp.apiserver!.inflight.rejected.mutating;
    const env = { ...process.env, KUBECONFIG: cp.kubeconfig };
    const run = new Promise<{ err: Error | null; out: string }>((resolve) => {
      execFile(KUBECTL, ['-v=6', '--cache-dir', join(dir, 'kubectl-cache'), 'create', 'configmap', 'by-kubectl', '-n', 'default'], { env, timeout: 60_000 }, (err, stdout, stderr) => resolve({ err, out: stdout + stderr }));
    });
    await waitFor(() => cp.apiserver!.inflight.rejected.mutating > rejected, 'kubectl refused once', 30_000);
    slot.release();
    const { err, out } = await run;
    assert.equal(err, null, out);
    assert.match(out, /configmap\/by-kubectl created/);
  });

  it('the token bucket lets burst requests go at once, then one per 1/qps; watches do not wait', async () => {
    const clock = new ManualClock();
    const k = client({ clock, qps: 10, burst: 2 });
    const gets = Array.from({ length: 5 }, () => k.get(NAMESPACES, undefined, 'default'));
    await waitFor(() => k.stats.requests === 2 && clock.pending() === 3, 'the burst sent, three waiting');
    assert.equal(k.stats.throttled, 3);
    assert.equal(k.stats.throttledMs, 100 + 200 + 300);
    clock.advance(99);
    assert.equal(clock.pending(), 3);
    clock.advance(1);
    await waitFor(() => k.stats.requests === 3, 'one more after 100 ms');
    assert.equal(clock.pending(), 2);
    clock.advance(200);
    await Promise.all(gets);
    assert.equal(k.stats.requests, 5);

    // The bucket is empty for the next ~30 s of its clock, yet a watch opens and delivers.
    const seen = new Promise<string>((resolve, reject) => {
      void k.watch(NAMESPACES, undefined, { fieldSelector: 'metadata.name=default' }, (type, obj) => resolve(`${type} ${obj.metadata.name}`), (e) => reject(e ?? new Error('watch closed')))
        .then((h) => seen.finally(() => h.abort()));
    });
    assert.equal(await seen, 'ADDED default');
    assert.equal(k.stats.requests, 5);
  });

  it('qps 0 or negative means no limit', async () => {
    for (const qps of [0, -1]) {
      const clock = new ManualClock();
      const k = client({ clock, qps, burst: 1 });
      await Promise.all(Array.from({ length: 20 }, () => k.get(NAMESPACES, undefined, 'default')));
      assert.deepEqual([k.stats.requests, k.stats.throttled, clock.pending()], [20, 0, 0]);
    }
  });
});
