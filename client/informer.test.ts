// Informer against a real control plane (in-process, so the test can cut watches, compact
// etcd and take the API server down and up again on the same port and data dir).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startControlPlane } from '../cli/control-plane.js';
import type { ControlPlane } from '../cli/control-plane.js';
import { eventually } from '../e2e/harness.js';
import { HOSTS, INSTANCES, KovaClient, NAMESPACES } from './client.js';
import type { KObject } from './client.js';
import { Informer } from './informer.js';
import { SharedInformers } from './shared-informers.js';

const NS = 'rt-inf';

describe('Informer', () => {
  let dir: string;
  let cp: ControlPlane;
  let c: KovaClient;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kova-rt-informer-'));
    cp = await startControlPlane({ dataDir: dir, listen: '127.0.0.1:0' });
    c = KovaClient.fromFile(cp.kubeconfig);
    await c.create(NAMESPACES, { metadata: { name: NS } });
  });
  after(async () => {
    c?.close();
    await cp?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const inst = (name: string) => ({ metadata: { name, namespace: NS }, spec: { flavor: 'f', image: 'tiny' } });

  function record(inf: Informer) {
    const events: string[] = [];
    inf.on('add', (o) => events.push(`add ${o.metadata.name}`));
    inf.on('update', (o) => events.push(`update ${o.metadata.name}`));
    inf.on('delete', (o) => events.push(`delete ${o.metadata.name}`));
    return events;
  }

  it('syncs, sees add/update/delete, and serves get/list from its cache', async () => {
    await c.create(INSTANCES, inst('pre'));
    const logs: string[] = [];
    const inf = new Informer(c, INSTANCES, { namespace: NS, log: (m) => logs.push(m) });
    // A throwing handler is logged and does not keep later handlers from running.
    inf.on('add', () => {
      throw new Error('bad handler');
    });
    const removed = () => assert.fail('handler was removed');
    inf.on('update', removed);
    inf.off('update', removed);
    const events = record(inf);
    assert.equal(inf.hasSynced(), false);
    inf.start();
    try {
      await inf.waitForSync(AbortSignal.timeout(10_000));
      assert.equal(inf.hasSynced(), true);
      assert.deepEqual(events, ['add pre'], 'initial list is delivered as adds before sync completes');
      assert.equal(inf.get(NS, 'pre')?.metadata.name, 'pre');

      await c.create(INSTANCES, inst('x'));
      await c.mergePatch(INSTANCES, NS, 'x', { metadata: { labels: { a: 'b' } } });
      await c.delete(INSTANCES, NS, 'pre');
      await eventually(() => events.includes('delete pre') && events.includes('update x'), 10_000, 'watch events');
      assert.deepEqual(events, ['add pre', 'add x', 'update x', 'delete pre']);
      assert.equal(inf.get(NS, 'pre'), undefined);
      assert.equal(inf.get(NS, 'x')?.metadata.labels?.a, 'b');
      assert.deepEqual(inf.list().map((o) => o.metadata.name), ['x']);
      assert.deepEqual(inf.list('other-ns'), []);
      assert.match(logs.join('\n'), /add handler failed: bad handler/);
    } finally {
      inf.stop();
    }
    await c.delete(INSTANCES, NS, 'x');
  });

  it('honours field and label selectors for cluster-scoped kinds', async () => {
    const inf = new Informer(c, HOSTS, { labelSelector: 'rack=r1' });
    const events = record(inf);
    inf.start();
    try {
      await inf.waitForSync(AbortSignal.timeout(10_000));
      await c.create(HOSTS, { metadata: { name: 'h-other', labels: { rack: 'r2' } }, spec: {} });
      await c.create(HOSTS, { metadata: { name: 'h-r1', labels: { rack: 'r1' } }, spec: {} });
      await eventually(() => inf.get(undefined, 'h-r1'), 10_000, 'h-r1 in cache');
      assert.equal(inf.get(undefined, 'h-other'), undefined);
      // Relabelling out of the selector looks like a delete to a selector watch.
      await c.mergePatch(HOSTS, undefined, 'h-r1', { metadata: { labels: { rack: 'r3' } } });
      await eventually(() => events.includes('delete h-r1'), 10_000, 'delete on leaving the selector');
      assert.deepEqual(events, ['add h-r1', 'delete h-r1']);
    } finally {
      inf.stop();
    }

    const byField = new Informer(c, INSTANCES, { fieldSelector: 'status.hostName=h-r1' });
    byField.start();
    try {
      await byField.waitForSync(AbortSignal.timeout(10_000));
      await c.create(INSTANCES, inst('on-h'));
      await c.create(INSTANCES, inst('elsewhere'));
      await c.patchStatus(INSTANCES, NS, 'on-h', { status: { hostName: 'h-r1' } });
      await eventually(() => byField.get(NS, 'on-h'), 10_000, 'instance on h-r1');
      assert.equal(byField.get(NS, 'elsewhere'), undefined);
      assert.equal(byField.list().length, 1);
    } finally {
      byField.stop();
    }
  });

  it('keeps working after the API server cuts its watches, relists after 410, and after an outage', async () => {
    const logs: string[] = [];
    const inf = new Informer<KObject>(c, INSTANCES, { namespace: NS, minBackoffMs: 100, maxBackoffMs: 500, log: (m) => logs.push(m) });
    const events = record(inf);
    inf.start();
    try {
      await inf.waitForSync(AbortSignal.timeout(10_000));
      await c.create(INSTANCES, inst('keep'));
      await c.create(INSTANCES, inst('doomed'));
      await eventually(() => inf.get(NS, 'keep') && inf.get(NS, 'doomed'), 10_000, 'initial objects');

      // 1. Watches closed by the server (as on a server-side timeout): re-watch, no relist needed.
      cp.apiserver!.closeWatches();
      await c.create(INSTANCES, inst('after-cut'));
      await eventually(() => inf.get(NS, 'after-cut'), 10_000, 'event after a watch cut');

      // 2. Outage: API server and etcd stop; the informer errors (client-node would stop here).
      const port = new URL(cp.url).port;
      await cp.stop();
      await eventually(() => inf.stats.errors >= 2, 15_000, 'informer errors while the server is down');

      // 3. On the same data but another port, out of the informer's reach, 'doomed' is deleted
      //    and history is compacted. Back on its port, the informer's resume gets 410 and it
      //    must relist to learn of it. (Done on the informer's own port, a reconnect between
      //    the restart and the compaction would see the delete as a plain watch event.)
      const aside = await startControlPlane({ dataDir: dir, listen: '127.0.0.1:0' });
      const direct = KovaClient.fromFile(aside.kubeconfig);
      await direct.delete(INSTANCES, NS, 'doomed');
      await direct.create(INSTANCES, inst('while-away'));
      await aside.resources.store.compact(await aside.resources.store.currentRevision());
      direct.close();
      await aside.stop();
      const listsBefore = inf.stats.lists;
      cp = await startControlPlane({ dataDir: dir, listen: `127.0.0.1:${port}` });
      await eventually(() => events.includes('delete doomed') && inf.get(NS, 'while-away'), 20_000, 'relist after the outage');
      assert.ok(inf.stats.lists > listsBefore, 'relisted');
      assert.ok(inf.stats.restarts >= 1, 'restarted itself');
      assert.equal(inf.get(NS, 'doomed'), undefined);
      assert.equal(events.filter((e) => e === 'delete doomed').length, 1);

      // 4. And it keeps watching.
      await c.mergePatch(INSTANCES, NS, 'keep', { metadata: { labels: { still: 'watching' } } });
      await eventually(() => inf.get(NS, 'keep')?.metadata.labels?.still === 'watching', 10_000, 'watch after recovery');
      assert.ok(logs.some((l) => l.includes('restarting in')), logs.join('\n'));
    } finally {
      inf.stop();
    }
  });

  it('shared: one informer per kind and options, late handlers get the cache, it runs until its last user stops', async () => {
    await c.create(INSTANCES, inst('shared-pre'));
    const shared = new SharedInformers(c, () => undefined);
    const a = shared.for(INSTANCES, { namespace: NS });
    assert.equal(shared.for(INSTANCES, { namespace: NS }), a, 'same kind and options, same informer');
    assert.notEqual(shared.for(INSTANCES, { namespace: NS, labelSelector: 'x=y' }), a);
    const first = record(a);
    a.start();
    await a.waitForSync();
    // A second controller joins after the initial list: it is told about what is cached.
    const b = shared.for(INSTANCES, { namespace: NS });
    b.start();
    const second = record(b);
    await eventually(() => second.includes('add shared-pre'), 5000, 'late handler replay');
    assert.equal(first.filter((e) => e === 'add shared-pre').length, 1, 'the first handler is not told twice');
    // One user stops; the other keeps receiving events.
    a.stop();
    await c.create(INSTANCES, inst('shared-after'));
    await eventually(() => second.includes('add shared-after'), 10_000, 'events after one user stopped');
    // Control: an informer of the same collection, still running, must see the next object;
    // by then the stopped one has not.
    const control = new Informer(c, INSTANCES, { namespace: NS });
    control.start();
    await control.waitForSync();
    b.stop();
    await c.create(INSTANCES, inst('shared-gone'));
    await eventually(() => control.get(NS, 'shared-gone'), 10_000, 'the control informer sees shared-gone');
    control.stop();
    assert.ok(!second.includes('add shared-gone'), 'stopped after the last user');
    assert.equal(b.get(NS, 'shared-gone'), undefined);
  });
});
