// The agent's reconciler on the in-memory FakeClient and the sim driver with a manual clock:
// fast (no etcd, no sleeps), and every driver fault and back-off path is reachable.
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';
import type { Flavor, Image, Instance } from '../../api/kinds/index.js';
import { FLAVORS, IMAGES, INSTANCES } from '../../api/kinds/index.js';
import { INSTANCE_FINALIZER } from '../../api/types.js';
import { TerminalError } from '../../client/controller.js';
import type { ReconcileContext, Result } from '../../client/controller.js';
import { EventRecorder } from '../../client/events.js';
import { FakeClient } from '../../client/fake.js';
import { ManualClock } from '../../testing/manual-clock.js';
import { SimDriver } from '../sim-driver.js';
import { InstanceAgentReconciler } from './reconciler.js';
import type { InstanceAgentReconcilerOptions } from './reconciler.js';
import { NetworkUsageReporter } from '../network-usage.js';
import { resolveImage } from '../../api/image-visibility.js';

const NS = 'default';
let fake: FakeClient;
let clock: ManualClock;
let driver: SimDriver;
let r: InstanceAgentReconciler;
let options: InstanceAgentReconcilerOptions;
let cached: Instance | undefined;
const signal = new AbortController().signal;
const req = { namespace: NS, name: 'web' };

beforeEach(async () => {
  fake = new FakeClient();
  clock = new ManualClock();
  driver = new SimDriver({ spawnMs: 50, stopMs: 20, clock });
  await fake.create(FLAVORS, { metadata: { name: 'm1' }, spec: { vcpus: 1, memory: '512Mi', disk: '1Gi' } });
  const img = await fake.create(IMAGES, { metadata: { namespace: NS, name: 'tiny' }, spec: { source: { file: { path: '/x' } } } });
  await fake.replaceStatus(IMAGES, { ...img, status: { phase: 'Ready', sha256: 'a'.repeat(64), format: 'qcow2' } });
  const inst = await fake.create<Instance>(INSTANCES, { metadata: { namespace: NS, name: 'web', finalizers: [INSTANCE_FINALIZER] }, spec: { flavor: 'm1', image: 'tiny' } });
  await fake.replaceStatus(INSTANCES, { ...inst, status: { phase: 'Provisioning', hostName: 'h1' } });
  image = await fake.get<Image>(IMAGES, NS, 'tiny');
  options = {
    client: fake,
    hostName: 'h1',
    driver,
    getCached: () => cached,
    recorder: new EventRecorder(fake, 'kova-agent', { log: () => {} }),
    log: () => {},
    startingAfterMs: 10,
    clock,
    resolve: {
      flavor: (name) => fake.get<Flavor>(FLAVORS, undefined, name),
      // The agent's caches (informers) stand in as what the fake holds.
      images: { lookup: (ns, name) => resolveImage(ns, name, { get: (a, b) => (image && a === image.metadata.namespace && b === image.metadata.name ? image : undefined), list: () => (image ? [image] : []) }) },
      keyPair: () => undefined,
      storage: { volume: () => undefined, volumeType: () => undefined },
    },
  };
  r = new InstanceAgentReconciler(options);
});
let image: Image | undefined;

/** One reconcile on the newest stored object, as after an informer event; the manual clock runs the sim. */
async function reconcile(ctx?: ReconcileContext): Promise<Result | void> {
  cached = await fake.get<Instance>(INSTANCES, NS, 'web');
  const p = r.reconcile(req, signal, ctx);
  // Let the sim's delays elapse on the manual clock while the reconcile runs.
  let settled = false;
  void p.then(() => (settled = true), () => (settled = true));
  for (let i = 0; i < 200 && !settled; i++) {
    await new Promise((res) => setImmediate(res));
    clock.advance(10);
  }
  return p;
}
const status = async () => (await fake.get<Instance>(INSTANCES, NS, 'web'))!.status!;
const ready = async () => (await status()).conditions?.find((c) => c.type === 'Ready');

const statusWrites = () => fake.calls.filter((c) => c.verb === 'updateStatus' && c.resource === 'instances').length;

test('resolves, spawns and reports Running; Starting first when the spawn is slow', async () => {
  const w0 = statusWrites();
  await reconcile();
  const s = await status();
  assert.equal(s.phase, 'Running');
  assert.equal(s.powerState, 'Running');
  assert.equal((await ready())?.reason, 'Running');
  assert.equal(driver.calls.spawn, 1);
  assert.equal(statusWrites() - w0, 2, 'Starting (the spawn took longer than startingAfterMs), then Running');
  // Nothing changed: the next reconcile writes nothing and spawns nothing.
  const w1 = statusWrites();
  await reconcile();
  assert.equal(statusWrites(), w1);
  assert.equal(driver.calls.spawn, 1);
});

test('a slow shutdown reports phase Stopping, then Stopped', async () => {
  await reconcile();
  assert.equal((await status()).phase, 'Running');
  const phases: Array<string | undefined> = [];
  const replace = fake.replaceStatus.bind(fake);
  fake.replaceStatus = ((kind, obj) => {
    phases.push((obj.status as { phase?: string } | undefined)?.phase);
    return replace(kind, obj);
  }) as typeof fake.replaceStatus;
  await fake.mergePatch(INSTANCES, NS, 'web', { spec: { runStrategy: 'Halted' } });
  await reconcile();
  assert.deepEqual(phases, ['Stopping', 'Stopped'], 'the stop took longer (stopMs 20) than startingAfterMs (10)');
  assert.equal((await ready())?.reason, 'Stopped');
  assert.equal(driver.calls.powerOff, 1);
});

test('a failing spawn backs off with the work queue: reported once per attempt, not retried before due', async () => {
  driver.setFault('spawn', 'host full');
  assert.deepEqual(await reconcile(), { backoff: 'failed' });
  let s = await status();
  assert.equal(s.phase, 'Failed');
  assert.equal(s.spawnAttempts, 1);
  assert.equal((await ready())?.reason, 'SpawnFailed');
  assert.match((await ready())!.message!, /host full/);
  // Woken before the back-off ends (e.g. by our own status write): no spawn, no write.
  const w = statusWrites();
  assert.deepEqual(await reconcile({ failures: 1, retryAt: clock.now() + 1000, now: clock.now() }), { backoff: 'pending' });
  assert.equal(driver.calls.spawn, 1);
  assert.equal(statusWrites(), w);
  // Due: tried again, counted.
  assert.deepEqual(await reconcile({ failures: 1, retryAt: clock.now(), now: clock.now() }), { backoff: 'failed' });
  assert.equal((await status()).spawnAttempts, 2);
  driver.setFault('spawn', undefined);
  assert.equal(await reconcile({ failures: 2, retryAt: clock.now(), now: clock.now() }), undefined);
  s = await status();
  assert.equal(s.phase, 'Running');
  assert.equal(s.spawnAttempts, undefined, 'cleared once the guest started');
});

test('an unknown flavor: the instance waits (FlavorReady=False) and runs once the Flavor exists', async () => {
  const m1 = await fake.get<Flavor>(FLAVORS, undefined, 'm1');
  await fake.delete(FLAVORS, undefined, 'm1');
  assert.deepEqual(await reconcile(), { requeueAfterMs: 30_000 });
  let s = await status();
  assert.equal(s.phase, 'Provisioning');
  assert.equal(s.conditions?.find((c) => c.type === 'FlavorReady')?.reason, 'FlavorNotFound');
  assert.equal(driver.calls.spawn, 0);
  // Waiting again writes nothing new.
  const w = statusWrites();
  assert.deepEqual(await reconcile(), { requeueAfterMs: 30_000 });
  assert.equal(statusWrites(), w);
  await fake.create<Flavor>(FLAVORS, { metadata: { name: 'm1' }, spec: m1!.spec });
  await reconcile();
  s = await status();
  assert.equal(s.phase, 'Running');
});

test('an unsizable spec is terminal: reported once (InvalidSpec), not retried until the spec changes', async () => {
  // Neither a flavor nor resources (the API refuses this; a stale or hand-made object may not).
  await fake.mergePatch(INSTANCES, NS, 'web', { spec: { flavor: null } });
  await assert.rejects(reconcile(), (e: unknown) => e instanceof TerminalError && /cannot size the instance/.test((e as Error).message));
  assert.equal((await status()).phase, 'Failed');
  assert.equal((await ready())?.reason, 'InvalidSpec');
  // The write's own event wakes it: nothing to do, nothing written, nothing thrown.
  const w = statusWrites();
  assert.equal(await reconcile(), undefined);
  assert.equal(statusWrites(), w);
  assert.equal(driver.calls.spawn, 0);
  // A new spec (generation) is worth a try.
  await fake.mergePatch(INSTANCES, NS, 'web', { spec: { resources: { vcpus: 1, memory: '256Mi', disk: '1Gi' } } });
  await reconcile();
  assert.equal((await status()).phase, 'Running');
});

test('an Image that is not Ready: the instance waits (Provisioning, ImageReady=False), no spawn, no back-off', async () => {
  image = undefined;
  assert.deepEqual(await reconcile(), { requeueAfterMs: 30_000 });
  const s = await status();
  assert.equal(s.phase, 'Provisioning');
  assert.equal(s.conditions?.find((c) => c.type === 'ImageReady')?.reason, 'ImageNotFound');
  assert.equal(driver.calls.spawn, 0);
});

test('power faults surface as reconcile errors (the controller retries them); delete destroys, then drops the finalizer', async () => {
  await reconcile();
  await fake.mergePatch(INSTANCES, NS, 'web', { spec: { runStrategy: 'Halted' } });
  driver.setFault('powerOff', 'qemu does not answer');
  await assert.rejects(reconcile(), /qemu does not answer/);
  driver.setFault('powerOff', undefined);
  await reconcile();
  assert.equal((await status()).phase, 'Stopped');
  assert.equal((await ready())?.reason, 'Stopped');

  await fake.delete(INSTANCES, NS, 'web');
  driver.setFault('destroy', 'device busy');
  await assert.rejects(reconcile(), /device busy/);
  assert.ok(await fake.get(INSTANCES, NS, 'web'), 'the finalizer holds the instance while its domain exists');
  driver.setFault('destroy', undefined);
  await reconcile();
  assert.equal(await fake.get(INSTANCES, NS, 'web'), undefined);
  assert.equal(driver.usage().domains, 0);
});

test("the watch echo of the agent's own status write is recognised (it wakes no pass); anything else is not", async () => {
  await reconcile(); // spawns and writes status
  const mine = await fake.get<Instance>(INSTANCES, NS, 'web');
  assert.ok(statusWrites() > 0);
  assert.equal(r.isOwnWrite(mine!), true, 'the object our last write returned');
  // A change by someone else (a newer resourceVersion) is not ours, nor an older copy.
  const theirs = await fake.mergePatch<Instance>(INSTANCES, NS, 'web', { metadata: { labels: { a: 'b' } } });
  assert.equal(r.isOwnWrite(theirs), false);
  assert.equal(r.isOwnWrite({ ...mine!, metadata: { ...mine!.metadata, resourceVersion: '1' } }), false);
  // Once the informer has delivered something newer, our write is forgotten.
  r.observed(theirs);
  assert.equal(r.isOwnWrite(mine!), false);
});

test('after dropping its finalizer from an instance another finalizer still holds, a pass on an older cached copy writes nothing', async () => {
  await fake.mergePatch(INSTANCES, NS, 'web', { metadata: { finalizers: [INSTANCE_FINALIZER, 'kova.dev/metering'] } });
  await reconcile();
  await fake.delete(INSTANCES, NS, 'web');
  // The informer's copy lags: it still shows the deletion with our finalizer on.
  const stale = await fake.get<Instance>(INSTANCES, NS, 'web');
  await reconcile();
  assert.deepEqual((await fake.get<Instance>(INSTANCES, NS, 'web'))!.metadata.finalizers, ['kova.dev/metering']);
  const writes = fake.calls.length;
  cached = stale;
  await r.reconcile(req, signal);
  assert.deepEqual(fake.calls.slice(writes).map((c) => `${c.verb} ${c.resource}`).filter((c) => !c.startsWith('get ')), [], 'no status write, no finalizer patch');
  assert.equal(driver.usage().domains, 0);
});

test('an instance whose ports have no addresses yet waits quietly for 30 s (no status, no event), then reports the wait; its addresses start it', async () => {
  await fake.mergePatch(INSTANCES, NS, 'web', { spec: { networks: [{ network: 'private' }] } });
  const writes = () => fake.calls.filter((c) => c.verb !== 'get' && c.verb !== 'list').map((c) => `${c.verb} ${c.resource}`);
  const w0 = writes().length;
  const quiet = await reconcile();
  assert.deepEqual(writes().slice(w0), [], 'the addresses are moments away: the agent writes nothing yet');
  assert.ok(quiet && quiet.requeueAfterMs! > 29_000 && quiet.requeueAfterMs! <= 30_000, `looks again when the quiet time ends: ${JSON.stringify(quiet)}`);
  assert.equal(driver.usage().domains, 0, 'not spawned before its network');
  clock.advance(15_000);
  const still = await reconcile();
  assert.deepEqual(writes().slice(w0), [], 'still within the quiet time');
  assert.ok(still && still.requeueAfterMs! <= 15_000, 'the quiet time counts from the first pass, not from each');
  clock.advance(15_000);
  await reconcile();
  assert.deepEqual(writes().slice(w0), ['updateStatus instances', 'create events'], 'then the wait is reported: status and a Waiting event');
  assert.equal((await ready())?.reason, 'NetworkNotReady');
  const inst = (await fake.get<Instance>(INSTANCES, NS, 'web'))!;
  await fake.replaceStatus(INSTANCES, { ...inst, status: { ...inst.status, addresses: [{ network: 'private', port: 'web-private', ip: '10.0.0.5', mac: '52:54:00:00:00:05' }] } });
  await reconcile();
  assert.equal((await status()).phase, 'Running');
  assert.equal(driver.usage().domains, 1);
});

test('a deletion writes the last network counts with Terminating (one status write), read before the domain goes', async () => {
  const reporter = new NetworkUsageReporter({ client: fake, hostName: 'h1', driver, instances: () => [], now: () => clock.now(), log: () => {} });
  r = new InstanceAgentReconciler({ ...options, finalNetworkUsage: (i) => reporter.finalUsage(i) });
  const inst = (await fake.mergePatch<Instance>(INSTANCES, NS, 'web', { spec: { networks: [{ network: 'private' }] } }))!;
  await fake.replaceStatus(INSTANCES, { ...inst, status: { ...inst.status, addresses: [{ network: 'private', port: 'web-private', ip: '10.0.0.5', mac: '52:54:00:00:00:05' }] } });
  await reconcile();
  assert.equal((await status()).phase, 'Running');
  clock.advance(10_000); // ten seconds of the sim's traffic: 2048 bytes/s in, 1024 out
  await fake.mergePatch(INSTANCES, NS, 'web', { metadata: { finalizers: [INSTANCE_FINALIZER, 'kova.dev/metering'] } });
  await fake.delete(INSTANCES, NS, 'web');
  const w0 = statusWrites();
  await reconcile();
  assert.equal(statusWrites() - w0, 1, 'Terminating and the counts in one write');
  const s = await status();
  assert.equal(s.phase, 'Terminating');
  assert.ok(s.networkUsage && s.networkUsage.receiveBytes >= 10 * 2048 && s.networkUsage.transmitBytes >= 10 * 1024, JSON.stringify(s.networkUsage));
  assert.equal(driver.usage().domains, 0, 'destroyed after the read');
});
