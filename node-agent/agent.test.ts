// The node agent against a real `kova up` (etcd, API server) with an in-process SimDriver:
// registration and heartbeat, the instance lifecycle through binding, runStrategy, power
// annotations, crash restarts, spawn failures (and their back-off) and adoption after an agent
// restart; sim instances wait for their Image and network like libvirt ones.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { KObject } from '../api/types.js';
import { EVENTS, HOSTS, INSTANCES, KovaClient, LEASES } from '../client/client.js';
import { eventually, startKova } from '../e2e/harness.js';
import type { Kova } from '../e2e/harness.js';
import { intercept } from '../testing/intercept.js';
import { NodeAgent } from './agent.js';
import { domainName } from './driver.js';
import { SimDriver } from './sim-driver.js';
import { createReadySimImage } from './sim-image.js';

const HOST = 'agent-test-a';
const NS = 'agent-test';
let kova: Kova;
let client: KovaClient;
let driver: SimDriver;
let agent: NodeAgent;
let stopAgent: AbortController;
const logs: string[] = [];
let imageDir: string;

function newAgent(): NodeAgent {
  stopAgent = new AbortController();
  return new NodeAgent({ client, hostName: HOST, driver, labels: { 'kova.dev/zone': 'a' }, heartbeatS: 1, stopTimeoutMs: 1000, startingAfterMs: 5, settleQuietMs: 200, log: (m) => logs.push(m) });
}

before(async () => {
  kova = await startKova(['--no-agents', '--no-controllers']);
  client = KovaClient.fromFile(kova.kubeconfig, { fieldManager: 'agent-test' });
  driver = new SimDriver({ spawnMs: 20, stopMs: 10, rebootMs: 10 });
  agent = newAgent();
  await agent.start(stopAgent.signal);
  await kova.k(['create', 'namespace', NS]);
  await kova.k(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: { name: 'agent.small' }, spec: { vcpus: 1, memory: '512Mi', disk: '2Gi' } }) });
  imageDir = await mkdtemp(join(tmpdir(), 'kova-agent-test-'));
  await createReadySimImage(client, NS, 'tiny', imageDir);
});

after(async () => {
  stopAgent.abort();
  await agent.done();
  client.close();
  await kova?.stop();
  if (imageDir) await rm(imageDir, { recursive: true, force: true });
});

async function create(name: string, spec: Record<string, unknown> = {}, annotations: Record<string, string> = {}): Promise<void> {
  const obj = { apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', metadata: { name, namespace: NS, annotations }, spec: { flavor: 'agent.small', image: 'tiny', hostName: HOST, ...spec } };
  await kova.k(['apply', '-f', '-'], { input: JSON.stringify(obj) });
}

const bind = (name: string) => client.bind(NS, name, HOST, { vcpus: 1, memory: '512Mi', disk: '2Gi' });

async function createBound(name: string, spec: Record<string, unknown> = {}, annotations: Record<string, string> = {}): Promise<KObject> {
  await create(name, spec, annotations);
  return bind(name);
}

const inst = async (name: string) => (await client.get(INSTANCES, NS, name))!;
const status = async (name: string) => ((await inst(name)).status ?? {}) as Record<string, any>;
const ready = (s: Record<string, any>) => (s.conditions ?? []).find((c: { type: string }) => c.type === 'Ready');
const domId = (obj: KObject) => domainName(NS, obj.metadata.name!, obj.metadata.uid!);
const patch = (name: string, p: unknown) => kova.k(['patch', 'instance', name, '-n', NS, '--type=merge', '-p', JSON.stringify(p)]);

async function waitPhase(name: string, phase: string, extra: (s: Record<string, any>) => boolean = () => true): Promise<Record<string, any>> {
  return eventually(async () => {
    const s = await status(name);
    return s.phase === phase && extra(s) ? s : undefined;
  }, 15_000, `${name} phase ${phase}`);
}

async function eventReasons(name: string): Promise<string[]> {
  const list = JSON.parse(await kova.k(['get', 'events', '-n', NS, '-o', 'json'])) as { items: Array<{ involvedObject: { name: string }; reason: string }> };
  return list.items.filter((e) => e.involvedObject.name === name).map((e) => e.reason);
}

test('registers its Host with capacity and heartbeats its Lease', async () => {
  const host = (await client.get(HOSTS, undefined, HOST))!;
  const st = host.status as Record<string, any>;
  assert.equal(host.metadata.labels?.['kova.dev/zone'], 'a');
  assert.deepEqual(st.capacity, { vcpus: 8, memory: '32Gi', disk: '500Gi' });
  assert.deepEqual(st.allocatable, { vcpus: 128, memory: '48Gi', disk: '500Gi' });
  assert.equal(st.driver, 'sim');
  assert.equal(st.hypervisor, 'sim');
  assert.equal(st.architecture, 'x86_64');
  assert.match(st.agentVersion, /^kova-agent\//);
  assert.deepEqual([ready(st).status, ready(st).reason], ['True', 'AgentReady']);

  const lease = JSON.parse(await kova.k(['get', 'lease', HOST, '-n', 'kova-system', '-o', 'json']));
  assert.equal(lease.spec.holderIdentity, HOST);
  assert.equal(lease.spec.leaseDurationSeconds, 40);
  assert.match(lease.spec.renewTime, /\.\d{6}Z$/);
  await eventually(async () => {
    const l = (await client.get(LEASES, 'kova-system', HOST))!;
    return (l.spec as { renewTime: string }).renewTime !== lease.spec.renewTime;
  }, 5_000, 'lease renewal');

  // The host controller's verdict is overwritten by the next heartbeat while the agent lives.
  await client.updateStatus(HOSTS, undefined, HOST, (h) => {
    (h.status as any).conditions = [{ type: 'Ready', status: 'False', reason: 'HeartbeatExpired', message: 'x', lastTransitionTime: '2026-01-01T00:00:00Z' }];
  });
  await eventually(async () => ready((await client.get(HOSTS, undefined, HOST))!.status as any)?.status === 'True', 5_000, 'Ready re-asserted');
});

test('a bound instance goes Running; delete waits for the domain to be destroyed', async () => {
  await create('web-1');
  const phases = kova.spawnKubectl(['get', 'instances', '-n', NS, '-w', '--field-selector=metadata.name=web-1', '-o', 'custom-columns=PHASE:.status.phase', '--no-headers']);
  await eventually(() => phases.output().includes('Pending'), 5_000, 'watch started');
  const bound = await bind('web-1');
  const s = await waitPhase('web-1', 'Running');
  // Spawns slower than startingAfterMs (5 ms here; the sim takes 20) report Starting.
  await eventually(() => /Provisioning\s+Starting\s+Running/.test(phases.output()), 3_000, `phases in\n${phases.output()}`);
  await phases.stop();
  const dom = await driver.getInfo(domId(bound));
  assert.equal(s.domainUUID, dom.uuid);
  assert.equal(s.powerState, 'Running');
  assert.equal(s.restartCount, 0);
  assert.ok(s.startedAt);
  assert.deepEqual([ready(s).status, ready(s).reason], ['True', 'Running']);
  assert.equal(dom.memoryBytes, 512 * 2 ** 20);
  assert.equal(dom.instanceKey, `${NS}/web-1`);
  assert.ok((await inst('web-1')).metadata.finalizers?.includes('kova.dev/instance-protection'));
  await eventually(async () => (await eventReasons('web-1')).includes('Started'), 5_000, 'Started event');

  const watch = kova.spawnKubectl(['get', 'instance', 'web-1', '-n', NS, '-w', '-o', 'custom-columns=PHASE:.status.phase', '--no-headers']);
  // The watch must be running before the delete, or a slow kubectl start misses Terminating.
  await eventually(() => watch.output().includes('Running'), 5_000, 'watch started');
  await kova.k(['delete', 'instance', 'web-1', '-n', NS, '--timeout=20s']);
  assert.equal(await client.get(INSTANCES, NS, 'web-1'), undefined);
  assert.deepEqual(await driver.listDomains(), [], 'domain destroyed before the instance went away');
  await eventually(() => watch.output().includes('Terminating'), 3_000, 'Terminating phase seen');
  await watch.stop();
});

test('runStrategy Halted keeps the guest off, Always starts it again', async () => {
  const bound = await createBound('hal', { runStrategy: 'Halted' });
  const id = domId(bound);
  let s = await waitPhase('hal', 'Stopped');
  assert.deepEqual([ready(s).status, ready(s).reason], ['False', 'Stopped']);
  assert.equal(s.powerState, undefined);
  assert.equal((await driver.listDomains()).some((d) => d.id === id), false, 'never spawned');

  await patch('hal', { spec: { runStrategy: 'Always' } });
  s = await waitPhase('hal', 'Running');
  const uuid = s.domainUUID;
  await patch('hal', { spec: { runStrategy: 'Halted' } });
  s = await waitPhase('hal', 'Stopped', (x) => x.powerState === 'Shutdown');
  assert.equal((await driver.getInfo(id)).state, 'Shutdown');
  assert.equal(s.observedGeneration, (await inst('hal')).metadata.generation);
  await patch('hal', { spec: { runStrategy: 'Always' } });
  s = await waitPhase('hal', 'Running');
  assert.equal(s.domainUUID, uuid, 'the same domain was powered on');
  assert.equal(s.restartCount, 0, 'starting a guest kova stopped is not a restart');
  const reasons = await eventReasons('hal');
  assert.ok(reasons.includes('Stopped'), reasons.join());
});

test('a crashed guest is restarted (Always); a guest shutdown is final (RerunOnFailure)', async () => {
  const a = await createBound('crashy');
  await waitPhase('crashy', 'Running');
  driver.crash(domId(a));
  const s = await waitPhase('crashy', 'Running', (x) => x.restartCount === 1);
  assert.equal(s.powerState, 'Running');
  await eventually(async () => (await eventReasons('crashy')).includes('Restarted'), 5_000, 'Restarted event');

  const r = await createBound('rerun', { runStrategy: 'RerunOnFailure' });
  await waitPhase('rerun', 'Running');
  driver.crash(domId(r));
  await waitPhase('rerun', 'Running', (x) => x.restartCount === 1);
  driver.shutdownFromGuest(domId(r));
  const st = await waitPhase('rerun', 'Stopped');
  assert.deepEqual([ready(st).reason, st.powerState, st.restartCount], ['GuestShutdown', 'Shutdown', 1]);
  await new Promise((res) => setTimeout(res, 300));
  assert.equal((await driver.getInfo(domId(r))).state, 'Shutdown', 'not restarted');

  // Always restarts after a clean guest shutdown too.
  driver.shutdownFromGuest(domId(a));
  await waitPhase('crashy', 'Running', (x) => x.restartCount === 2);
});

test('power annotations: restartedAt reboots once, paused pauses, power Off with Manual', async () => {
  const b = await createBound('pwr', { runStrategy: 'Manual' });
  const id = domId(b);
  const first = await waitPhase('pwr', 'Running');
  const events: string[] = [];
  const off = driver.onEvent((e) => e.id === id && events.push(e.reason));

  await kova.k(['annotate', 'instance', 'pwr', '-n', NS, 'kova.dev/restartedAt=2026-11-25T10:00:00Z']);
  let s = await waitPhase('pwr', 'Running', (x) => x.observedRestartedAt === '2026-11-25T10:00:00Z');
  assert.deepEqual(events, ['Rebooted']);
  assert.equal(s.domainUUID, first.domainUUID);

  await kova.k(['annotate', 'instance', 'pwr', '-n', NS, 'kova.dev/paused=true']);
  s = await waitPhase('pwr', 'Running', (x) => x.powerState === 'Paused');
  assert.equal(s.conditions.find((c: { type: string }) => c.type === 'Paused').status, 'True');
  await kova.k(['annotate', 'instance', 'pwr', '-n', NS, 'kova.dev/paused-']);
  s = await waitPhase('pwr', 'Running', (x) => x.powerState === 'Running');
  assert.equal(s.conditions.find((c: { type: string }) => c.type === 'Paused').status, 'False');

  await kova.k(['annotate', 'instance', 'pwr', '-n', NS, 'kova.dev/power=Off']);
  s = await waitPhase('pwr', 'Stopped', (x) => x.powerState === 'Shutdown');
  assert.equal(ready(s).message, 'stopped by kova: kova.dev/power is Off');
  // Without the annotation a Manual guest is left as it is.
  await kova.k(['annotate', 'instance', 'pwr', '-n', NS, 'kova.dev/power-']);
  await new Promise((res) => setTimeout(res, 300));
  assert.equal((await driver.getInfo(id)).state, 'Shutdown');
  await kova.k(['annotate', 'instance', 'pwr', '-n', NS, 'kova.dev/power=On']);
  s = await waitPhase('pwr', 'Running');
  assert.equal(s.restartCount, 0);
  assert.deepEqual(events, ['Rebooted', 'Paused', 'Resumed', 'Stopped', 'Started']);
  off();
});

test('a failed spawn shows Failed with the reason, then is retried', async () => {
  driver.failNextSpawn('disk image tiny is corrupt');
  const watch = kova.spawnKubectl(['get', 'instances', '-n', NS, '-w', '--field-selector=metadata.name=flaky', '-o', 'custom-columns=PHASE:.status.phase,MSG:.status.conditions[?(@.type=="Ready")].message', '--no-headers']);
  await createBound('flaky');
  await waitPhase('flaky', 'Running');
  await eventually(() => /Failed\s+could not start the guest .*disk image tiny is corrupt/.test(watch.output()), 5_000, `Failed phase in\n${watch.output()}`);
  await watch.stop();
  assert.ok((await eventReasons('flaky')).includes('Failed'));
});

test('a spawn that always fails backs off: few attempts, one Event with a growing count, a stable message', async () => {
  driver.setFault('spawn', 'not enough memory on this host (simulated)');
  const calls0 = driver.calls.spawn;
  const writes0 = agent.reconciler.stats.statusWrites;
  await createBound('doomed');
  const first = await waitPhase('doomed', 'Failed');
  const msg = ready(first).message;
  const t0 = Date.now();
  // 5 ms doubling: attempts at about 0, 5, 15, 35, 75 … 2555 ms, ten in 3 s. Without the
  // back-off (our own status write re-queues the key) it was ~130 a second.
  await new Promise((res) => setTimeout(res, 3000));
  const attempts = driver.calls.spawn - calls0;
  const elapsed = Date.now() - t0;
  assert.ok(attempts >= 5 && attempts <= 14, `${attempts} spawn attempts in ${elapsed} ms`);
  assert.equal(msg, `could not start the guest on host ${HOST}: not enough memory on this host (simulated)`);
  // Starting (the sim's spawn outlasts startingAfterMs here) and Failed: two writes per attempt.
  assert.ok(agent.reconciler.stats.statusWrites - writes0 <= 2 * attempts + 2, 'two status writes per attempt at most');
  const s = await status('doomed');
  assert.equal(s.phase, 'Failed');
  assert.equal(ready(s).message, msg, 'the message does not change between attempts');
  assert.equal(ready(s).lastTransitionTime, ready(first).lastTransitionTime);
  assert.ok(s.spawnAttempts >= attempts - 1 && s.spawnAttempts <= attempts, `spawnAttempts ${s.spawnAttempts} after ${attempts} attempts`);
  const evs = await eventually(async () => {
    const list = (await client.list(EVENTS, NS, { fieldSelector: 'involvedObject.name=doomed' })).items as Array<KObject & { reason: string; count: number; message: string }>;
    const failed = list.filter((e) => e.reason === 'Failed');
    return failed.length && failed[0]!.count >= attempts - 1 ? failed : undefined;
  }, 5_000, 'Failed events counted');
  assert.equal(evs.length, 1, `one Failed Event: ${evs.map((e) => `${e.count}× ${e.message}`).join('; ')}`);
  assert.equal(evs[0]!.message, msg);

  // A status write of someone else's (or our own) does not short-circuit the back-off: the
  // update wakes the key, and the spawn is still not retried before it is due.
  const before = driver.calls.spawn;
  await kova.k(['label', 'instance', 'doomed', '-n', NS, 'poke=1']);
  await eventually(async () => agent.controller.stats.backoffWaits > 0, 5_000, 'an early wake-up waited for its back-off');
  assert.ok(driver.calls.spawn - before <= 1, `${driver.calls.spawn - before} attempts after a wake-up`);

  // Once the host can take it, a new spec is tried at once; the count is gone once it runs.
  driver.setFault('spawn', undefined);
  await patch('doomed', { spec: { userData: '#cloud-config\n' } });
  const running = await waitPhase('doomed', 'Running');
  assert.equal(running.spawnAttempts, undefined);
  await kova.k(['delete', 'instance', 'doomed', '-n', NS, '--timeout=20s']);
});

test('sim instances wait for their Image to be Ready, like libvirt ones', async () => {
  await createBound('img-wait', { image: 'later' });
  const s = await eventually(async () => {
    const x = await status('img-wait');
    return x.conditions?.find((c: { type: string }) => c.type === 'ImageReady')?.reason === 'ImageNotFound' ? x : undefined;
  }, 10_000, 'ImageReady=False ImageNotFound');
  assert.equal(s.phase, 'Provisioning');
  assert.deepEqual([ready(s).status, ready(s).reason], ['False', 'ImageNotFound']);
  assert.equal((await driver.listDomains()).some((d) => d.instanceKey === `${NS}/img-wait`), false, 'not spawned');
  await createReadySimImage(client, NS, 'later', imageDir);
  const r = await waitPhase('img-wait', 'Running').catch(async (e) => {
    console.log(JSON.stringify(await status('img-wait'), null, 1), logs.slice(-20).join('\n'));
    throw e;
  });
  const ic = r.conditions.find((c: { type: string }) => c.type === 'ImageReady');
  assert.deepEqual([ic.status, ic.reason], ['True', 'Ready']);
  assert.equal((await driver.listDomains()).find((d) => d.instanceKey === `${NS}/img-wait`)?.state, 'Running');
});

test('an instance whose Flavor is gone waits for it (FlavorNotFound), then runs with the size it has again', async () => {
  const flavor = (vcpus: number) => JSON.stringify({ apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: { name: 'agent.later' }, spec: { vcpus, memory: '256Mi', disk: '1Gi' } });
  await kova.k(['apply', '-f', '-'], { input: flavor(1) });
  // Bound while its flavor exists, kept off; the flavor goes before its first start.
  await createBound('flavor-wait', { flavor: 'agent.later', runStrategy: 'Halted' });
  await waitPhase('flavor-wait', 'Stopped');
  await kova.k(['delete', 'flavor', 'agent.later']);
  await patch('flavor-wait', { spec: { runStrategy: 'Always' } });
  const s = await eventually(async () => {
    const x = await status('flavor-wait');
    return x.conditions?.find((c: { type: string }) => c.type === 'FlavorReady')?.reason === 'FlavorNotFound' ? x : undefined;
  }, 10_000, 'FlavorReady=False FlavorNotFound');
  assert.notEqual(s.phase, 'Running');
  assert.equal((await driver.listDomains()).some((d) => d.instanceKey === `${NS}/flavor-wait` && d.state === 'Running'), false, 'not started');
  await kova.k(['apply', '-f', '-'], { input: flavor(2) });
  await waitPhase('flavor-wait', 'Running');
  const dom = (await driver.listDomains()).find((d) => d.instanceKey === `${NS}/flavor-wait`);
  assert.equal(dom?.vcpus, 2, 'sized by the flavor that came back');
});

test('a sim instance on a network waits (Ready=False, network reason, after its quiet time: settleQuietMs 200 here) until its port is attached, then runs', async () => {
  await createBound('net-wait', { networks: [{ network: 'net1' }] });
  const s = await eventually(async () => {
    const x = await status('net-wait');
    return ready(x)?.reason === 'NetworkNotReady' ? x : undefined;
  }, 10_000, 'Ready=False NetworkNotReady');
  assert.equal(s.phase, 'Provisioning');
  assert.equal(ready(s).status, 'False');
  assert.equal(s.conditions.find((c: { type: string }) => c.type === 'NetworkReady').status, 'False');
  assert.equal((await driver.listDomains()).some((d) => d.instanceKey === `${NS}/net-wait`), false, 'not spawned before its network');
  // What the port controller writes once the Port has its address.
  await client.patchStatus(INSTANCES, NS, 'net-wait', { status: { addresses: [{ network: 'net1', port: 'net-wait-net1', ip: '10.9.0.5', mac: '52:54:00:00:00:05' }] } });
  const r = await waitPhase('net-wait', 'Running');
  assert.equal(r.conditions.find((c: { type: string }) => c.type === 'NetworkReady').status, 'True');
  const dom = (await driver.listDomains()).find((d) => d.instanceKey === `${NS}/net-wait`);
  assert.equal(dom?.state, 'Running');
});

test('a restarted agent adopts its domains instead of spawning them again', async () => {
  const before = new Map((await driver.listDomains()).map((d) => [d.id, d.uuid]));
  assert.ok(before.size >= 4);
  const statusBefore = await status('crashy');
  stopAgent.abort();
  await agent.done();

  driver.addForeignDomain('kova-agent-test.ghost', { instanceKey: `${NS}/ghost`, instanceUID: 'gone' });
  driver.addForeignDomain('someone-elses-vm');
  // A domain of another kova cluster on the same hypervisor: its instance is unknown here, yet it must survive.
  driver.addForeignDomain('kova-other-cluster.vm', { instanceKey: `${NS}/elsewhere`, instanceUID: 'u-1', clusterID: 'another-cluster' });
  agent = newAgent();
  await agent.start(stopAgent.signal);
  assert.deepEqual(agent.adoption, { adopted: before.size, orphansDestroyed: 1, foreign: 2 });

  await new Promise((res) => setTimeout(res, 500));
  const afterList = await driver.listDomains();
  assert.ok(afterList.some((d) => d.id === 'kova-other-cluster.vm'), "another cluster's domain is left alone");
  assert.deepEqual(new Map(afterList.filter((d) => d.id !== 'someone-elses-vm' && d.id !== 'kova-other-cluster.vm').map((d) => [d.id, d.uuid])), before);
  const ours = afterList.find((d) => before.has(d.id))!;
  assert.ok(ours.clusterID && ours.clusterID.length > 10, 'domains record the cluster id');
  assert.equal(agent.reconciler.stats.spawns, 0);
  assert.equal(agent.reconciler.stats.statusWrites, 0, 'nothing changed, nothing written');
  assert.equal((await status('crashy')).startedAt, statusBefore.startedAt);

  // The restarted agent still acts: a crash is handled.
  driver.crash(domId(await inst('crashy')));
  await waitPhase('crashy', 'Running', (x) => x.restartCount === statusBefore.restartCount + 1);
});

test('the agent watches every instance only while a Volume, VolumeSnapshot or Migration exists', async () => {
  const host = 'agent-test-watches';
  const watches: string[] = [];
  const watching = intercept(client, 'watch', (watch) => (kind, ns, opts, onEvent, done) => {
    watches.push(`${kind.plural}?${opts.fieldSelector ?? ''}`);
    return watch(kind, ns, opts, onEvent, done);
  });
  const everyInstance = () => watches.filter((w) => w === 'instances?').length;
  const run = async () => {
    const stop = new AbortController();
    const a = new NodeAgent({ client: watching, hostName: host, driver: new SimDriver(), heartbeatS: 1, log: (m) => logs.push(m) });
    await a.start(stop.signal);
    return async () => {
      stop.abort();
      await a.done();
    };
  };
  let stop = await run();
  try {
    assert.ok(watches.includes(`instances?status.hostName=${host}`), 'its own instances are watched');
    assert.equal(everyInstance(), 0, 'no Volume or Migration: no watch of every instance');
    await create('migrating');
    await bind('migrating');
    await kova.k(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'kova.dev/v1alpha1', kind: 'Migration', metadata: { name: 'watch-test', namespace: NS }, spec: { instance: 'migrating' } }) });
    await eventually(() => everyInstance() === 1, 15_000, 'a Migration to start the watch of every instance');
    await kova.k(['delete', 'migration', 'watch-test', '-n', NS, '--wait=false']);
    await stop();

    await kova.k(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'kova.dev/v1alpha1', kind: 'Volume', metadata: { name: 'watch-test', namespace: NS }, spec: { size: '1Gi' } }) });
    watches.length = 0;
    stop = await run();
    assert.equal(everyInstance(), 1, 'a Volume that exists at start: the agent starts with every instance listed');
  } finally {
    await stop();
    await kova.k(['delete', 'volume,instance', 'watch-test', 'migrating', '-n', NS, '--ignore-not-found', '--wait=false']);
    await client.delete(HOSTS, undefined, host).catch(() => {});
  }
});
