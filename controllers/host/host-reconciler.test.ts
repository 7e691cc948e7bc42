// HostReconciler on the in-memory FakeClient (no etcd, no API server), with a manual clock:
// allocatable, readiness from the heartbeat Lease, HostReachable on its instances, evacuation of
// a fenced host that is down, and release of stale allocations.
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { HOSTS, INSTANCES } from '../../api/kinds/index.js';
import type { Host, Instance } from '../../api/kinds/index.js';
import type { KObject } from '../../api/types.js';
import { INSTANCE_FINALIZER } from '../../api/types.js';
import { LEASES, NAMESPACES } from '../../client/client.js';
import { FakeClient } from '../../client/fake.js';
import { intercept } from '../../testing/intercept.js';
import { EventRecorder } from '../../client/events.js';
import type { HeartbeatLease } from './heartbeat.js';
import { HEARTBEAT_EXPIRED, HostReconciler, LEASE_NAMESPACE } from './host-reconciler.js';
import type { HostReconcilerDeps } from './host-reconciler.js';

const NS = 'hr';
const GRACE_MS = 40_000;
const cond = (o: { status?: { conditions?: Array<{ type: string }> } } | undefined, type: string) => o?.status?.conditions?.find((c) => c.type === type) as
  { status: string; reason?: string; message?: string } | undefined;

describe('HostReconciler (fake client)', () => {
  let fake: FakeClient;
  let now: number;
  let r: HostReconciler;

  const host = (name: string) => fake.peek<Host>(HOSTS, undefined, name)!;
  const instance = (name: string) => fake.peek<Instance>(INSTANCES, NS, name);
  const reconcile = (name: string) => r.reconcile({ name });
  /** A host registered now, with capacity and a Lease renewed now (as its agent does). */
  const register = (name: string) => {
    fake.seed(HOSTS, { metadata: { name, creationTimestamp: new Date(now).toISOString() }, spec: {}, status: { capacity: { vcpus: 2, memory: '4Gi', disk: '20Gi' }, conditions: [{ type: 'Ready', status: 'True', reason: 'AgentReady' }] } });
    fake.seed(LEASES, { metadata: { name, namespace: LEASE_NAMESPACE }, spec: { holderIdentity: name, leaseDurationSeconds: 40, renewTime: new Date(now).toISOString() } });
  };
  /** An instance bound to `hostName` through the binding, as the scheduler binds. */
  const bound = async (name: string, hostName: string) => {
    fake.seed(INSTANCES, { metadata: { name, namespace: NS }, spec: { image: 'tiny', resources: { vcpus: 1, memory: '1Gi', disk: '1Gi' } }, status: { phase: 'Pending' } });
    return fake.bind<Instance>(NS, name, hostName, { vcpus: 1, memory: '1Gi', disk: '1Gi' });
  };

  beforeEach(() => {
    fake = new FakeClient();
    fake.seed(NAMESPACES, { metadata: { name: NS } });
    fake.seed(NAMESPACES, { metadata: { name: LEASE_NAMESPACE } });
    now = Date.parse('2026-01-01T00:00:00Z');
    // The caches are the store itself: a reconcile sees every write before it.
    r = new HostReconciler(deps(fake));
  });

  /** The reconciler's dependencies: `client` for its reads and writes, caches that are the store itself. */
  const deps = (client: FakeClient, instanceDeleted?: (uid: string) => boolean): HostReconcilerDeps => {
    const listOn = (h: string) => [...allInstances()].filter((i) => i.status?.hostName === h);
    const allInstances = () => ['a', 'b', 'c', 'gone', 'x'].map(instance).filter((i): i is Instance => !!i);
    return {
      client,
      instanceDeleted,
      hosts: { get: (_ns, name) => fake.peek<Host>(HOSTS, undefined, name), list: () => [] },
      leases: { get: (ns, name) => fake.peek<KObject & HeartbeatLease>(LEASES, ns, name), list: () => [] },
      instancesOn: listOn,
      instance: (ns, name) => fake.peek<Instance>(INSTANCES, ns, name),
      events: new EventRecorder(fake, 'kova-host-controller', { log: () => undefined }),
      ratios: { cpu: 8, ram: 1.5, disk: 1 },
      graceMs: GRACE_MS,
      now: () => now,
    };
  };

  it('writes allocatable from capacity × ratios once, then nothing', async () => {
    register('h1');
    const res = await reconcile('h1');
    assert.deepEqual(host('h1').status?.allocatable, { vcpus: 16, memory: '6Gi', disk: '20Gi' });
    // Looks again when the Lease would run out (plus a margin), not only at the 5-minute resync.
    assert.equal(res && res.requeueAfterMs, 40_000 + 50);
    const rv = fake.resourceVersion();
    await reconcile('h1');
    assert.equal(fake.resourceVersion(), rv, 'a second pass writes nothing');
  });

  it('an expired Lease makes the host Ready=Unknown and its instances HostReachable=False; a renewal undoes the latter', async () => {
    register('h1');
    await reconcile('h1');
    await bound('a', 'h1');
    now += 41_000;
    await reconcile('h1');
    const ready = cond(host('h1'), 'Ready');
    assert.deepEqual([ready?.status, ready?.reason], ['Unknown', HEARTBEAT_EXPIRED]);
    assert.match(ready!.message!, /kova agent on host h1 stopped posting heartbeats at 2026-01-01T00:00:00.000Z/);
    const reach = cond(instance('a'), 'HostReachable');
    assert.deepEqual([reach?.status, reach?.reason], ['False', 'HostNotReady']);
    assert.equal(instance('a')?.status?.hostName, 'h1', 'not fenced: the instance stays bound');

    // The agent is back: it renews its Lease and reports Ready=True itself.
    fake.seed(LEASES, { metadata: { name: 'h1', namespace: LEASE_NAMESPACE }, spec: { holderIdentity: 'h1', leaseDurationSeconds: 40, renewTime: new Date(now).toISOString() } });
    const h = host('h1');
    h.status!.conditions = [{ type: 'Ready', status: 'True', reason: 'AgentReady' }];
    fake.seed(HOSTS, h);
    await reconcile('h1');
    assert.equal(cond(host('h1'), 'Ready')?.status, 'True');
    assert.equal(cond(instance('a'), 'HostReachable')?.status, 'True');
  });

  it('a fenced host that is down is evacuated: instances unbound, those being deleted released', async () => {
    register('h1');
    await reconcile('h1');
    await bound('a', 'h1');
    await bound('b', 'h1');
    await fake.delete(INSTANCES, NS, 'b'); // held by its protection finalizer
    assert.ok(instance('b')?.metadata.deletionTimestamp);
    // Control: fenced but still up, nothing is evacuated.
    await fake.mergePatch(HOSTS, undefined, 'h1', { spec: { fenced: true } });
    await reconcile('h1');
    assert.equal(instance('a')?.status?.hostName, 'h1');
    assert.ok(instance('b'), 'still held by its finalizer');
    now += 41_000;
    await reconcile('h1');
    const a = instance('a')!;
    assert.equal(a.status?.hostName, undefined);
    assert.equal(a.status?.phase, 'Pending');
    assert.deepEqual([cond(a, 'Scheduled')?.status, cond(a, 'Scheduled')?.reason], ['False', 'Evacuated']);
    assert.ok(a.metadata.finalizers?.includes(INSTANCE_FINALIZER), 'an unbound live instance keeps its protection');
    assert.equal(instance('b'), undefined, 'the deleted one is gone');
    // Both allocations released with them.
    assert.deepEqual(host('h1').status?.allocations, []);
    assert.deepEqual(host('h1').status?.allocated, { vcpus: 0, memory: '0', disk: '0' });
  });

  it('releases allocations of instances that are gone or recreated, and keeps the rest', async () => {
    register('h1');
    await reconcile('h1');
    await bound('a', 'h1');
    await bound('gone', 'h1');
    await bound('x', 'h1');
    // 'gone' vanishes without its finalizer being honoured (e.g. written around the API);
    // 'x' is recreated under the same name (new uid), not bound anywhere.
    const h = host('h1');
    const x = instance('x')!;
    fake.seed(INSTANCES, { metadata: { name: 'x', namespace: NS, uid: 'new-uid' }, spec: x.spec, status: { phase: 'Pending' } });
    await fake.removeFinalizer(INSTANCES, NS, 'gone', INSTANCE_FINALIZER);
    await fake.delete(INSTANCES, NS, 'gone');
    assert.equal(host('h1').status?.allocations?.length, 3, 'still charged before the pass');
    await reconcile('h1');
    const after = host('h1');
    assert.deepEqual(after.status?.allocations?.map((al) => al.instance), [`${NS}/a`]);
    assert.deepEqual(after.status?.allocated, { vcpus: 1, memory: '1Gi', disk: '1Gi' });
    assert.notEqual(after.metadata.resourceVersion, h.metadata.resourceVersion);
  });

  it('releases the allocation of an instance whose deletion the watch reported without reading it; reads the other suspects', async () => {
    register('h1');
    await reconcile('h1');
    await bound('a', 'h1');
    const gone = await bound('gone', 'h1');
    await bound('x', 'h1');
    await fake.removeFinalizer(INSTANCES, NS, 'gone', INSTANCE_FINALIZER);
    await fake.delete(INSTANCES, NS, 'gone');
    const x = instance('x')!;
    fake.seed(INSTANCES, { metadata: { name: 'x', namespace: NS, uid: 'new-uid' }, spec: x.spec, status: { phase: 'Pending' } });
    const reads: string[] = [];
    // The fake client, with its reads of single instances written down.
    const counting = intercept(fake, 'get', (get) => (kind, ns, name, ...rest) => {
      if (kind.plural === 'instances') reads.push(name);
      return get(kind, ns, name, ...rest);
    });
    await new HostReconciler(deps(counting, (uid) => uid === gone.metadata.uid)).reconcile({ name: 'h1' });
    assert.deepEqual(host('h1').status?.allocations?.map((al) => al.instance), [`${NS}/a`]);
    assert.deepEqual(reads, ['x'], 'only the recreated one is read; the deleted one is known gone');
  });
});
