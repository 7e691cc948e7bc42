// The host and instance controllers against a real control plane (etcd + API server, in
// process). Hosts and heartbeat Leases are written by hand, playing the node agent; bindings go
// through the API server's binding subresource.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { KObject } from '../../api/types.js';
import { startControlPlane } from '../../cli/control-plane.js';
import type { ControlPlane } from '../../cli/control-plane.js';
import { eventually, KUBECTL } from '../../e2e/harness.js';
import { EVENTS, FLAVORS, HOSTS, IMAGES, INSTANCES, KovaClient, LEASES, NAMESPACES } from '../../client/client.js';
import { startInstanceController } from '../instance/instance-controller.js';
import type { Condition } from '../../api/conditions.js';
import { findCondition } from '../../api/conditions.js';
import { startHostController } from './host-controller.js';
import { HostReconciler } from './host-reconciler.js';
import type { Host as HostObject, Instance as InstanceObject } from '../../api/kinds/index.js';

const NS = 'hc';
const GRACE_MS = 3000;

/** MicroTime as the API writes it: 6 fractional digits. */
const microTime = (d = new Date()) => d.toISOString().replace(/Z$/, '000Z');

describe('host controller', () => {
  let cp: ControlPlane;
  let dir: string;
  let client: KovaClient;
  const stop = new AbortController();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kova-hostctl-'));
    cp = await startControlPlane({ dataDir: dir, listen: '127.0.0.1:0' });
    client = KovaClient.fromFile(cp.kubeconfig);
    await client.create(NAMESPACES, { metadata: { name: NS } });
    await client.create(FLAVORS, { metadata: { name: 'small' }, spec: { vcpus: 1, memory: '512Mi', disk: '1Gi' } });
    await client.create(IMAGES, { metadata: { name: 'tiny', namespace: NS }, spec: { source: { file: { path: '/nonexistent/tiny.qcow2' } } } });
    const log = () => undefined;
    await startHostController({ client, signal: stop.signal, ratios: { cpu: 8 }, graceMs: GRACE_MS, log });
    await startInstanceController({ client, signal: stop.signal, log });
  });
  after(async () => {
    stop.abort();
    client?.close();
    await cp?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  // ---- the node agent's part, by hand ----

  async function renewLease(host: string, durationSeconds: number, renewTime = new Date()): Promise<void> {
    const spec = { holderIdentity: host, leaseDurationSeconds: durationSeconds, renewTime: microTime(renewTime) };
    const cur = await client.get(LEASES, 'kova-system', host);
    if (cur) await client.mergePatch(LEASES, 'kova-system', host, { spec });
    else await client.create(LEASES, { metadata: { name: host, namespace: 'kova-system' }, spec: { ...spec, acquireTime: spec.renewTime } });
  }

  async function setHostReady(host: string): Promise<void> {
    await client.updateStatus<HostObject>(HOSTS, undefined, host, (h) => {
      h.status ??= {};
      h.status.conditions = [{ type: 'Ready', status: 'True', reason: 'AgentReady', message: 'kova agent is posting heartbeats', lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') }];
    });
  }

  /** Registers a Host with capacity and Ready=True, heartbeating with the given lease duration. */
  async function registerHost(name: string, leaseSeconds: number, capacity = { vcpus: 2, memory: '4Gi', disk: '20Gi' }): Promise<void> {
    await client.create(HOSTS, { metadata: { name }, spec: {} });
    await client.patchStatus(HOSTS, undefined, name, { status: { capacity, driver: 'sim' } });
    await setHostReady(name);
    await renewLease(name, leaseSeconds);
    await eventually(async () => (await getHost(name)).status?.allocatable, 10_000, `allocatable of ${name}`);
  }

  const getHost = async (name: string) => (await client.get<HostObject>(HOSTS, undefined, name))!;
  const getInstance = (name: string) => client.get<InstanceObject>(INSTANCES, NS, name);
  const cond = (obj: { status?: { conditions?: Condition[] } } | undefined, type: string) => findCondition(obj?.status?.conditions, type);

  async function createInstance(name: string, extra: Partial<KObject['metadata']> = {}, spec: Record<string, unknown> = { flavor: 'small', image: 'tiny' }): Promise<InstanceObject> {
    return client.create<InstanceObject>(INSTANCES, { metadata: { name, namespace: NS, ...extra }, spec });
  }

  async function bound(name: string, host: string): Promise<InstanceObject> {
    await createInstance(name);
    return client.bind<InstanceObject>(NS, name, host, { vcpus: 1, memory: '512Mi', disk: '1Gi' });
  }

  /** Plays the agent finishing a deletion. */
  const dropFinalizer = (name: string) => client.removeFinalizer(INSTANCES, NS, name, 'kova.dev/instance-protection');

  const eventsFor = async (name: string, reason: string) =>
    (await client.list(EVENTS, undefined)).items.filter((e) => (e.involvedObject as { name?: string }).name === name && e.reason === reason);

  it('writes allocatable = capacity × ratios and follows capacity changes', async () => {
    await registerHost('alloc-1', 60);
    // cpu ratio 8 from the options, ram 1.5 and disk 1.0 by default.
    assert.deepEqual((await getHost('alloc-1')).status?.allocatable, { vcpus: 16, memory: '6Gi', disk: '20Gi' });
    await client.patchStatus(HOSTS, undefined, 'alloc-1', { status: { capacity: { vcpus: 3, memory: '1Gi', disk: '10Gi' } } });
    await eventually(async () => (await getHost('alloc-1')).status?.allocatable?.vcpus === 24, 10_000, 'allocatable after a capacity change');
    assert.deepEqual((await getHost('alloc-1')).status?.allocatable, { vcpus: 24, memory: '1536Mi', disk: '10Gi' });
  });

  it('marks a host whose lease expired Ready=Unknown and its instances HostReachable=False, and back', async () => {
    await registerHost('beat-1', 2);
    const inst = await bound('beat-a', 'beat-1');
    assert.equal(inst.status?.hostName, 'beat-1');
    const renewedAt = Date.parse((await client.get<KObject & { spec: { renewTime: string } }>(LEASES, 'kova-system', 'beat-1'))!.spec.renewTime);
    const expiresAt = renewedAt + 2000;

    const host = await eventually(async () => {
      const h = await getHost('beat-1');
      return cond(h, 'Ready')?.status === 'Unknown' && h;
    }, 10_000, 'Ready=Unknown after the lease expired');
    const detectedMs = Date.now() - expiresAt;
    assert.ok(detectedMs >= 0, 'not before the lease expired');
    assert.ok(detectedMs < 2500, `detected ${detectedMs} ms after expiry (requeue at expiry, not polling)`);
    console.log(`heartbeat expiry detected ${detectedMs} ms after the lease ran out`);
    const ready = cond(host, 'Ready')!;
    assert.equal(ready.reason, 'HeartbeatExpired');
    assert.equal(ready.message, `kova agent on host beat-1 stopped posting heartbeats at ${new Date(renewedAt).toISOString()}`);

    const reach = await eventually(async () => {
      const c = cond(await getInstance('beat-a'), 'HostReachable');
      return c?.status === 'False' && c;
    }, 5_000, 'HostReachable=False');
    assert.equal(reach.reason, 'HostNotReady');
    assert.match(reach.message!, /^host beat-1 is not ready: kova agent on host beat-1 stopped posting heartbeats at /);
    await eventually(async () => (await eventsFor('beat-1', 'HostNotReady')).length === 1, 5_000, 'HostNotReady event');

    // The agent comes back: it renews its Lease and reports Ready=True.
    await renewLease('beat-1', 60);
    await setHostReady('beat-1');
    await eventually(async () => cond(await getInstance('beat-a'), 'HostReachable')?.status === 'True', 5_000, 'HostReachable=True again');
    // A fresh lease keeps the host Ready. Control: a capacity change the controller must answer
    // (allocatable) makes it reconcile beat-1 after the renewal; keys are reconciled one at a
    // time, so by then any wrong Unknown would have been written.
    await client.patchStatus(HOSTS, undefined, 'beat-1', { status: { capacity: { vcpus: 3, memory: '4Gi', disk: '20Gi' } } });
    await eventually(async () => (await getHost('beat-1')).status?.allocatable?.vcpus === 24, 10_000, 'allocatable after the control change');
    assert.equal(cond(await getHost('beat-1'), 'Ready')?.status, 'True');
  });

  it('declares a host that never posted a heartbeat not ready after the grace period', async () => {
    const created = Date.now();
    await client.create(HOSTS, { metadata: { name: 'silent-1' }, spec: {} });
    const h = await eventually(async () => {
      const x = await getHost('silent-1');
      return cond(x, 'Ready')?.status === 'Unknown' && x;
    }, GRACE_MS + 5_000, 'Ready=Unknown without any lease');
    assert.ok(Date.now() - created >= GRACE_MS - 1000, 'not before the grace period');
    assert.match(cond(h, 'Ready')!.message!, /^kova agent on host silent-1 has not posted a heartbeat since the host was registered at /);
  });

  it('releases allocations of deleted instances and unknown ones, keeps live ones', async () => {
    await registerHost('gc-1', 60);
    const a = await bound('gc-a', 'gc-1');
    await bound('gc-b', 'gc-1');
    let h = await getHost('gc-1');
    assert.deepEqual(h.status?.allocations?.map((x) => x.instance).sort(), [`${NS}/gc-a`, `${NS}/gc-b`]);
    assert.deepEqual(h.status?.allocated, { vcpus: 2, memory: '1Gi', disk: '2Gi' });

    await client.delete(INSTANCES, NS, 'gc-a');
    // Bound: the finalizer stays until the agent has destroyed the domain. Control: an unbound
    // instance deleted after it, which the instance controller must release, is gone first.
    await createInstance('gc-control', { finalizers: ['kova.dev/instance-protection'] });
    await client.delete(INSTANCES, NS, 'gc-control');
    await eventually(async () => !(await getInstance('gc-control')), 5_000, 'control instance released');
    assert.ok((await getInstance('gc-a'))?.metadata.deletionTimestamp, 'a bound instance waits for its agent');
    // And nobody removed the finalizer meanwhile: ours is the write that deletes it.
    assert.ok(await dropFinalizer('gc-a'), 'the finalizer was still there for the agent to remove');
    h = await eventually(async () => {
      const x = await getHost('gc-1');
      return x.status?.allocations?.length === 1 && x;
    }, 5_000, 'allocation of gc-a released');
    assert.equal(h.status!.allocations![0].instance, `${NS}/gc-b`);
    assert.deepEqual(h.status?.allocated, { vcpus: 1, memory: '512Mi', disk: '1Gi' });
    assert.ok(!h.status!.allocations!.some((x) => x.uid === a.metadata.uid));

    // An entry nobody owns (an instance that never existed) goes too; allocated follows.
    await client.updateStatus<HostObject>(HOSTS, undefined, 'gc-1', (x) => {
      x.status!.allocations = [...x.status!.allocations!, { uid: 'ghost-uid', instance: `${NS}/ghost`, vcpus: 4, memory: '1Gi', disk: '1Gi' }];
      x.status!.allocated = { vcpus: 5, memory: '1536Mi', disk: '2Gi' };
    });
    h = await eventually(async () => {
      const x = await getHost('gc-1');
      return x.status?.allocations?.length === 1 && x;
    }, 5_000, 'ghost allocation released');
    assert.deepEqual(h.status?.allocated, { vcpus: 1, memory: '512Mi', disk: '1Gi' });
  });

  it('never releases an allocation its (stale) cache does not know about without a live check', async () => {
    await registerHost('stale-1', 60);
    await bound('stale-a', 'stale-1');
    const host = await getHost('stale-1');
    await client.updateStatus<HostObject>(HOSTS, undefined, 'stale-1', (x) => {
      x.status!.allocations = [...x.status!.allocations!, { uid: 'ghost-2', instance: `${NS}/ghost-2`, vcpus: 1, memory: '1Gi', disk: '1Gi' }];
    });
    // A reconciler whose instance cache has seen nothing at all (as right after a binding).
    const lease = await client.get(LEASES, 'kova-system', 'stale-1');
    const blind = new HostReconciler({
      client,
      hosts: { get: () => host, list: () => [host] },
      leases: { get: () => lease, list: () => (lease ? [lease] : []) },
      instancesOn: () => [],
      instance: () => undefined,
    });
    await blind.reconcile({ name: 'stale-1' });
    const after = await getHost('stale-1');
    assert.deepEqual(after.status?.allocations?.map((a) => a.instance), [`${NS}/stale-a`]);
    assert.deepEqual(after.status?.allocated, { vcpus: 1, memory: '512Mi', disk: '1Gi' });
  });

  it('keeps allocations exact while bindings and deletions race with collection', async () => {
    await registerHost('race-1', 60, { vcpus: 64, memory: '64Gi', disk: '500Gi' });
    const first = Array.from({ length: 6 }, (_, i) => `race-old-${i}`);
    for (const n of first) await bound(n, 'race-1');
    const fresh = Array.from({ length: 12 }, (_, i) => `race-new-${i}`);
    await Promise.all([
      ...fresh.map((n) => bound(n, 'race-1')),
      ...first.map(async (n) => {
        await client.delete(INSTANCES, NS, n);
        await dropFinalizer(n);
      }),
    ]);
    const live = async () => (await client.list<InstanceObject>(INSTANCES, NS, { fieldSelector: 'status.hostName=race-1' })).items;
    const h = await eventually(async () => {
      const x = await getHost('race-1');
      const uids = (x.status?.allocations ?? []).map((a) => a.uid).sort();
      const want = (await live()).map((i) => i.metadata.uid!).sort();
      return JSON.stringify(uids) === JSON.stringify(want) && x;
    }, 10_000, 'allocations == instances bound to race-1');
    assert.equal(h.status?.allocations?.length, 12);
    assert.deepEqual(h.status?.allocated, { vcpus: 12, memory: '6Gi', disk: '12Gi' });
  });

  it('evacuates a fenced host that is not ready, and leaves a fenced ready host alone', async () => {
    await registerHost('dead-1', 1);
    await registerHost('alive-1', 60);
    await bound('ev-live', 'dead-1');
    await bound('ev-gone', 'dead-1');
    await bound('ev-other', 'alive-1');
    // The agent had recorded a domain before the host died.
    await client.patchStatus(INSTANCES, NS, 'ev-live', { status: { domainUUID: '7d3e4a5c-0000-4000-8000-000000000001', phase: 'Running', powerState: 'Running' } });
    await eventually(async () => cond(await getHost('dead-1'), 'Ready')?.status === 'Unknown', 10_000, 'dead-1 not ready');
    // Every change to the two instances from here on, to check below that none came before the fencing.
    const changes: Array<{ type: string; name: string; rv: number; hostName?: string }> = [];
    const watch = await client.watch(INSTANCES, NS, { resourceVersion: (await client.list(INSTANCES, NS)).resourceVersion }, (type, o) => {
      if (['ev-live', 'ev-gone'].includes(o.metadata.name!)) changes.push({ type, name: o.metadata.name!, rv: Number(o.metadata.resourceVersion), hostName: (o as InstanceObject).status?.hostName });
    }, () => undefined);
    await client.delete(INSTANCES, NS, 'ev-gone');
    // Not fenced yet: the deletion waits (nobody knows the domain is gone). Control: a capacity
    // change makes the host controller reconcile dead-1 (after the deletion, one key at a time).
    await client.patchStatus(HOSTS, undefined, 'dead-1', { status: { capacity: { vcpus: 3, memory: '4Gi', disk: '20Gi' } } });
    await eventually(async () => (await getHost('dead-1')).status?.allocatable?.vcpus === 24, 10_000, 'allocatable after the control change');
    assert.ok(await getInstance('ev-gone'), 'deletion on an unfenced dead host waits');
    assert.equal((await getInstance('ev-live'))?.status?.hostName, 'dead-1');

    await client.mergePatch(HOSTS, undefined, 'alive-1', { spec: { fenced: true } });
    const fencedAt = Number((await client.mergePatch(HOSTS, undefined, 'dead-1', { spec: { fenced: true } })).metadata.resourceVersion);

    const live = await eventually(async () => {
      const i = await getInstance('ev-live');
      return i && !i.status?.hostName ? i : undefined;
    }, 5_000, 'ev-live unbound');
    assert.equal(live.status?.phase, 'Pending');
    assert.equal(live.status?.domainUUID, undefined);
    const sched = cond(live, 'Scheduled')!;
    assert.deepEqual([sched.status, sched.reason, sched.message], ['False', 'Evacuated', 'evacuated from fenced host dead-1']);
    assert.equal(cond(live, 'HostReachable'), undefined);
    await eventually(async () => !(await getInstance('ev-gone')), 5_000, 'ev-gone deleted');
    const dead = await eventually(async () => {
      const x = await getHost('dead-1');
      return x.status?.allocations?.length === 0 && x;
    }, 5_000, 'dead-1 allocations released');
    assert.deepEqual(dead.status?.allocated, { vcpus: 0, memory: '0', disk: '0' });
    await eventually(async () => (await eventsFor('ev-live', 'Evacuated')).length === 1, 5_000, 'Evacuated event');
    await eventually(() => changes.some((c) => c.type === 'DELETED' && c.name === 'ev-gone'), 5_000, 'the watch saw ev-gone go');
    watch.abort();
    const unbound = changes.find((c) => c.name === 'ev-live' && !c.hostName)!;
    const gone = changes.find((c) => c.name === 'ev-gone' && c.type === 'DELETED')!;
    assert.ok(unbound.rv > fencedAt && gone.rv > fencedAt, `evacuation only after the fencing: ${JSON.stringify(changes)}, fenced at ${fencedAt}`);

    // The fenced but ready host keeps its instance.
    const other = await getInstance('ev-other');
    assert.equal(other?.status?.hostName, 'alive-1');
    assert.equal((await getHost('alive-1')).status?.allocations?.length, 1);
  });

  it('shows it all through kubectl: Ready column, events, fencing by patch, kubectl wait', async () => {
    const kubectl = (args: string[]) => new Promise<string>((resolve, reject) => {
      execFile(KUBECTL, ['--kubeconfig', cp.kubeconfig, '--cache-dir', join(dir, 'kubectl-cache'), ...args], { timeout: 30_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`kubectl ${args.join(' ')}: ${stderr}${stdout}`)) : resolve(stdout));
    });
    await registerHost('kc-1', 1);
    await bound('kc-a', 'kc-1');
    await kubectl(['wait', 'host/kc-1', '--for=condition=Ready=Unknown', '--timeout=10s']);
    assert.match(await kubectl(['get', 'host', 'kc-1', '--no-headers']), /^kc-1\s+Unknown\s+sim\s/);
    assert.match(await kubectl(['describe', 'host', 'kc-1']), /Warning\s+HostNotReady\s+.*kova agent on host kc-1 stopped posting heartbeats at/);
    await kubectl(['wait', 'vm/kc-a', '-n', NS, '--for=condition=HostReachable=False', '--timeout=10s']);
    await kubectl(['patch', 'host', 'kc-1', '--type=merge', '-p', '{"spec":{"fenced":true}}']);
    await kubectl(['wait', 'vm/kc-a', '-n', NS, '--for=condition=Scheduled=False', '--timeout=10s']);
    assert.equal(await kubectl(['get', 'vm', 'kc-a', '-n', NS, '-o', 'jsonpath={.status.phase}/{.status.hostName}']), 'Pending/');
    assert.match(await kubectl(['describe', 'vm', 'kc-a', '-n', NS]), /Normal\s+Evacuated\s+.*evacuated from fenced host kc-1/);
    // Unbound now: deleting it completes without any agent.
    await kubectl(['delete', 'vm', 'kc-a', '-n', NS, '--timeout=10s']);
  });

  it('instance controller: Pending + Validated for unbound instances, follows flavor and image', async () => {
    await createInstance('val-1', {}, { flavor: 'later', image: 'tiny' });
    const i = await eventually(async () => {
      const x = await getInstance('val-1');
      return cond(x, 'Validated') ? x : undefined;
    }, 5_000, 'Validated condition');
    assert.equal(i.status?.phase, 'Pending');
    assert.equal(i.status?.observedGeneration, 1);
    const v = cond(i, 'Validated')!;
    assert.deepEqual([v.status, v.reason, v.message], ['False', 'FlavorNotFound', 'flavor "later" not found']);

    await client.create(FLAVORS, { metadata: { name: 'later' }, spec: { vcpus: 1, memory: '256Mi', disk: '1Gi' } });
    await eventually(async () => cond(await getInstance('val-1'), 'Validated')?.status === 'True', 5_000, 'Validated=True once the flavor exists');

    // A Public image of another project is usable; a Private one is not.
    await client.create(NAMESPACES, { metadata: { name: 'hc-other' } });
    await client.create(IMAGES, { metadata: { name: 'pub', namespace: 'hc-other' }, spec: { source: { file: { path: '/x.qcow2' } }, visibility: 'Public' } });
    await client.create(IMAGES, { metadata: { name: 'priv', namespace: 'hc-other' }, spec: { source: { file: { path: '/x.qcow2' } }, visibility: 'Private' } });
    // Every write to val-pub, in order, to show below that none gave it a Validated condition.
    const pubWrites: InstanceObject[] = [];
    const watch = await client.watch(INSTANCES, NS, { resourceVersion: (await client.list(INSTANCES, NS)).resourceVersion }, (_type, o) => {
      if (o.metadata.name === 'val-pub') pubWrites.push(o as InstanceObject);
    }, () => undefined);
    await createInstance('val-pub', {}, { resources: { vcpus: 1, memory: '256Mi', disk: '1Gi' }, image: 'pub' });
    await createInstance('val-priv', {}, { resources: { vcpus: 1, memory: '256Mi', disk: '1Gi' }, image: 'priv' });
    const priv = await eventually(async () => {
      const c = cond(await getInstance('val-priv'), 'Validated');
      return c?.status === 'False' && c;
    }, 5_000, 'private image of another namespace not usable');
    assert.equal(priv.reason, 'ImageNotFound');
    // Valid instances carry no Validated condition. Control: a spec change that makes val-pub
    // invalid, which the controller must report. A key is reconciled one at a time and the watch
    // delivers writes in order, so once that report is seen, any condition an earlier reconcile
    // wrote has been seen before it.
    const controlRv = Number((await client.mergePatch(INSTANCES, NS, 'val-pub', { spec: { image: 'priv' } })).metadata.resourceVersion);
    await eventually(() => pubWrites.some((o) => cond(o, 'Validated')?.reason === 'ImageNotFound'), 5_000, 'val-pub reported invalid after the control change');
    watch.abort();
    const early = pubWrites.filter((o) => Number(o.metadata.resourceVersion) < controlRv);
    assert.ok(early.length >= 1, 'the watch saw val-pub created');
    assert.deepEqual(early.map((o) => cond(o, 'Validated')), early.map(() => undefined), 'public image usable');

    // A spec change moves observedGeneration while unbound.
    await client.mergePatch(INSTANCES, NS, 'val-1', { spec: { runStrategy: 'Halted' } });
    await eventually(async () => (await getInstance('val-1'))?.status?.observedGeneration === 2, 5_000, 'observedGeneration 2');
  });

  it('instance controller: an unbound instance being deleted loses its protection finalizer', async () => {
    await createInstance('del-1', { finalizers: ['kova.dev/instance-protection'] });
    await client.delete(INSTANCES, NS, 'del-1');
    await eventually(async () => !(await getInstance('del-1')), 5_000, 'unbound instance deleted');
  });
});
