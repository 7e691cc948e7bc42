// EventRecorder against a real `kova up`, checked with the real `kubectl describe`.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startKova } from '../e2e/harness.js';
import type { Kova } from '../e2e/harness.js';
import { EVENTS, HOSTS, INSTANCES, KovaClient, NAMESPACES } from './client.js';
import type { KObject } from './client.js';
import { COMBINED_PREFIX, EventCorrelator, EventRecorder, LruCache } from './events.js';
import { ManualClock } from '../testing/manual-clock.js';

const NS = 'rt-events';

describe('EventRecorder', () => {
  let kova: Kova;
  let c: KovaClient;

  before(async () => {
    // The runtime is tested alone: no controllers or agents acting on the test's objects.
    kova = await startKova(['--no-controllers', '--no-agents']);
    c = KovaClient.fromFile(kova.kubeconfig);
    await c.create(NAMESPACES, { metadata: { name: NS } });
  });
  after(async () => {
    c?.close();
    await kova?.stop();
  });

  const eventsFor = async (name: string, ns?: string) =>
    (await c.list(EVENTS, ns, { fieldSelector: `involvedObject.name=${name}` })).items as Array<KObject & { count: number; reason: string; type: string; involvedObject: Record<string, string>; source: { component: string }; firstTimestamp: string; lastTimestamp: string }>;

  it('writes Events that kubectl describe shows, counting identical repeats on one Event', async () => {
    const inst = await c.create(INSTANCES, { metadata: { name: 'web', namespace: NS }, spec: { flavor: 'f', image: 'tiny' } });
    const rec = new EventRecorder(c, 'kova-scheduler');
    await rec.event(inst, 'Warning', 'FailedScheduling', '0/2 hosts available: 2 insufficient memory');
    await rec.event(inst, 'Warning', 'FailedScheduling', '0/2 hosts available: 2 insufficient memory');
    // Concurrent repeats must not lose counts or create duplicates.
    await Promise.all([
      rec.event(inst, 'Warning', 'FailedScheduling', '0/2 hosts available: 2 insufficient memory'),
      rec.event(inst, 'Warning', 'FailedScheduling', '0/2 hosts available: 2 insufficient memory'),
    ]);
    await rec.event(inst, 'Normal', 'Scheduled', 'Bound to host-1');

    const evs = await eventsFor('web', NS);
    assert.equal(evs.length, 2, JSON.stringify(evs, null, 1));
    const failed = evs.find((e) => e.reason === 'FailedScheduling')!;
    assert.equal(failed.count, 4);
    assert.equal(failed.type, 'Warning');
    assert.equal(failed.source.component, 'kova-scheduler');
    assert.match(failed.metadata.name!, /^web\.[0-9a-f]{16}$/);
    assert.deepEqual(failed.involvedObject, {
      apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', name: 'web', namespace: NS, uid: inst.metadata.uid, resourceVersion: inst.metadata.resourceVersion,
    });
    assert.ok(failed.firstTimestamp <= failed.lastTimestamp);
    assert.equal(rec.stats.created, 2);
    assert.equal(rec.stats.updated, 3);

    const out = await kova.k(['describe', 'instance', 'web', '-n', NS]);
    const section = out.slice(out.indexOf('Events:'));
    assert.match(section, /Warning\s+FailedScheduling\s+.*\(x4 over .*\)\s+kova-scheduler\s+0\/2 hosts available: 2 insufficient memory/);
    assert.match(section, /Normal\s+Scheduled\s+.*kova-scheduler\s+Bound to host-1/);
  });

  it('starts a new Event after the 10 minute window, and for cluster-scoped objects uses namespace default', async () => {
    let now = Date.now();
    const rec = new EventRecorder(c, 'kova-host-controller', { now: () => now });
    const host = await c.create(HOSTS, { metadata: { name: 'ev-host' }, spec: {} });
    await rec.event(host, 'Warning', 'HeartbeatExpired', 'no heartbeat for 40s');
    now += 9 * 60_000;
    await rec.event(host, 'Warning', 'HeartbeatExpired', 'no heartbeat for 40s');
    now += 11 * 60_000;
    await rec.event(host, 'Warning', 'HeartbeatExpired', 'no heartbeat for 40s');
    const evs = await eventsFor('ev-host');
    assert.deepEqual(evs.map((e) => [e.metadata.namespace, e.count]).sort(), [['default', 1], ['default', 2]]);
    assert.equal(evs[0]!.involvedObject.namespace, undefined);

    const out = await kova.k(['describe', 'host', 'ev-host']);
    assert.match(out.slice(out.indexOf('Events:')), /Warning\s+HeartbeatExpired\s+.*kova-host-controller\s+no heartbeat for 40s/);
  });

  it('combines similar events of one object into one Event and drops a storm beyond the spam burst', async () => {
    const inst = await c.create(INSTANCES, { metadata: { name: 'noisy', namespace: NS }, spec: { flavor: 'f', image: 'tiny' } });
    const rec = new EventRecorder(c, 'kova-agent');
    for (let i = 1; i <= 12; i++) await rec.warning(inst, 'Failed', `attempt ${i} failed`);
    let evs = await eventsFor('noisy', NS);
    // Nine Events of their own, then the 10th to 12th message share one.
    assert.equal(evs.length, 10, evs.map((e) => `${e.count}× ${(e as { message?: string }).message}`).join('\n'));
    const combined = evs.filter((e) => ((e as { message?: string }).message ?? '').startsWith(COMBINED_PREFIX));
    assert.equal(combined.length, 1);
    assert.equal(combined[0]!.count, 3);
    assert.equal((combined[0] as { message?: string }).message, `${COMBINED_PREFIX}attempt 12 failed`);
    // 25 per object at once: 13 more go through (onto the combined Event), the rest are dropped.
    for (let i = 13; i <= 40; i++) await rec.warning(inst, 'Failed', `attempt ${i} failed`);
    evs = await eventsFor('noisy', NS);
    assert.equal(evs.length, 10);
    assert.equal(evs.find((e) => ((e as { message?: string }).message ?? '').startsWith(COMBINED_PREFIX))!.count, 16);
    assert.equal(rec.stats.dropped, 15);
  });

  it('never throws to the caller', async () => {
    const logs: string[] = [];
    const rec = new EventRecorder(c, 'test', { log: (m) => logs.push(m) });
    const ghost: KObject = { apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', metadata: { name: 'ghost', namespace: 'no-such-namespace', uid: 'u' } };
    await rec.event(ghost, 'Normal', 'Test', 'goes nowhere');
    assert.equal(rec.stats.failed, 1);
    assert.match(logs.join('\n'), /event Test for Instance ghost/);
  });

  it('recreates the Event when it was deleted', async () => {
    const inst = await c.create(INSTANCES, { metadata: { name: 'again', namespace: NS }, spec: { flavor: 'f', image: 'tiny' } });
    const rec = new EventRecorder(c, 'test');
    await rec.event(inst, 'Normal', 'Started', 'guest started');
    const [ev] = await eventsFor('again', NS);
    await c.delete(EVENTS, NS, ev!.metadata.name!);
    await rec.event(inst, 'Normal', 'Started', 'guest started');
    const evs = await eventsFor('again', NS);
    assert.equal(evs.length, 1);
    assert.equal(evs[0]!.count, 1);
  });
});

describe('EventCorrelator (client-go aggregator and spam filter)', () => {
  it('gives identical events one key, and combines the 10th distinct message on within 10 minutes', () => {
    const clock = new ManualClock();
    const ec = new EventCorrelator({ now: () => clock.now() });
    const a = ec.correlate('uid-1', 'Warning', 'Failed', 'm');
    const b = ec.correlate('uid-1', 'Warning', 'Failed', 'm');
    assert.ok(!a.drop && !b.drop);
    assert.equal(a.key, b.key);
    assert.equal(a.combined, false);
    const keys = new Set<string>([a.key]);
    for (let i = 2; i <= 9; i++) {
      const r = ec.correlate('uid-1', 'Warning', 'Failed', `m${i}`);
      assert.ok(!r.drop && !r.combined, `message ${i} is its own event`);
      keys.add(r.key);
    }
    assert.equal(keys.size, 9);
    const tenth = ec.correlate('uid-1', 'Warning', 'Failed', 'm10');
    const eleventh = ec.correlate('uid-1', 'Warning', 'Failed', 'm11');
    const again = ec.correlate('uid-1', 'Warning', 'Failed', 'm');
    assert.ok(!tenth.drop && !eleventh.drop && !again.drop);
    assert.equal(tenth.combined, true);
    assert.equal(tenth.message, `${COMBINED_PREFIX}m10`);
    assert.equal(eleventh.key, tenth.key);
    assert.equal(again.key, tenth.key, 'once combined, repeats go to the combined Event too');
    // Another reason, type or object is another series.
    const other = ec.correlate('uid-1', 'Warning', 'BackOff', 'm12');
    assert.ok(!other.drop && !other.combined);
    const otherObj = ec.correlate('uid-2', 'Warning', 'Failed', 'm13');
    assert.ok(!otherObj.drop && !otherObj.combined);
    // After 10 quiet minutes the count of similar messages starts over.
    clock.advance(10 * 60_000 + 1);
    const later = ec.correlate('uid-1', 'Warning', 'Failed', 'm14');
    assert.ok(!later.drop && !later.combined);
  });

  it('lets 25 events of an object through at once, then one per 5 minutes', () => {
    const clock = new ManualClock();
    const ec = new EventCorrelator({ now: () => clock.now() });
    const send = (uid = 'uid-1') => !ec.correlate(uid, 'Normal', 'Started', 'same').drop;
    let passed = 0;
    for (let i = 0; i < 100; i++) if (send()) passed++;
    assert.equal(passed, 25);
    assert.equal(ec.stats.dropped, 75);
    assert.ok(send('uid-2'), 'another object has its own bucket');
    clock.advance(4 * 60_000);
    assert.equal(send(), false);
    clock.advance(60_000);
    assert.equal(send(), true, 'one token after 5 minutes');
    assert.equal(send(), false);
    clock.advance(10 * 5 * 60_000);
    passed = 0;
    for (let i = 0; i < 20; i++) if (send()) passed++;
    assert.equal(passed, 10, 'refills at one per 5 minutes');
  });

  it('bounds its caches (LRU)', () => {
    const clock = new ManualClock();
    const ec = new EventCorrelator({ now: () => clock.now(), cacheSize: 100 });
    for (let i = 0; i < 1000; i++) ec.correlate(`uid-${i}`, 'Normal', 'Started', `m${i}`);
    const internals = ec as unknown as { similar: LruCache<unknown>; spam: LruCache<unknown> };
    assert.equal(internals.similar.size, 100);
    assert.equal(internals.spam.size, 100);
    const lru = new LruCache<number>(2);
    lru.set('a', 1);
    lru.set('b', 2);
    lru.get('a');
    lru.set('c', 3);
    assert.deepEqual([lru.get('a'), lru.get('b'), lru.get('c')], [1, undefined, 3], 'the least recently used goes');
  });
});
