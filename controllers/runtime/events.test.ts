// EventRecorder against a real `kova up`, checked with the real `kubectl describe`.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startKova } from '../../e2e/harness.js';
import type { Kova } from '../../e2e/harness.js';
import { EVENTS, HOSTS, INSTANCES, KovaClient, NAMESPACES } from './client.js';
import type { KObject } from './client.js';
import { EventRecorder } from './events.js';

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
