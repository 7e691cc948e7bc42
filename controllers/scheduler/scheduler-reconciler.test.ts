// SchedulerReconciler on the in-memory FakeClient (no etcd, no API server): placement, and what
// it does with each typed refusal of the binding when its host view is stale.
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { FLAVORS, HOSTS, INSTANCES } from '../../api/kinds/index.js';
import type { Flavor, Host, Instance } from '../../api/kinds/index.js';
import { NAMESPACES } from '../../client/client.js';
import { FakeClient } from '../../client/fake.js';
import { EventRecorder } from '../../client/events.js';
import { flavorObject, hostObject, instanceObject } from '../../testing/scheduler-objects.js';
import type { HostOpts } from '../../testing/scheduler-objects.js';
import { SchedulerReconciler } from './scheduler.js';
import { weighersFor } from './weighers.js';

const NS = 'ns';

describe('SchedulerReconciler (fake client)', () => {
  let fake: FakeClient;
  let r: SchedulerReconciler;
  let enqueued: string[];
  /** Instances whose cached copy lags behind the server. */
  let lagging: Map<string, Instance>;
  type Deps = ConstructorParameters<typeof SchedulerReconciler>[0];
  const make = (over: Partial<Deps> = {}) => new SchedulerReconciler({
    client: fake,
    instances: { get: (ns, name) => lagging.get(name) ?? fake.peek<Instance>(INSTANCES, ns, name) },
    flavors: { get: (_ns, name) => fake.peek<Flavor>(FLAVORS, undefined, name) },
    enqueue: (key) => enqueued.push(key),
    recorder: new EventRecorder(fake, 'kova-scheduler', { log: () => undefined }),
    weighers: weighersFor('spread'),
    ...over,
  });

  const instance = (name: string) => fake.peek<Instance>(INSTANCES, NS, name);
  /** A Host as the server has it and as the scheduler's cache sees it. */
  const host = (name: string, o: HostOpts = {}) => {
    const h = hostObject(name, o);
    fake.seed(HOSTS, h);
    r.onHost(fake.peek<Host>(HOSTS, undefined, name)!, 'add');
  };
  const reconcile = (name: string) => r.reconcile({ namespace: NS, name });

  beforeEach(() => {
    fake = new FakeClient();
    fake.seed(NAMESPACES, { metadata: { name: NS } });
    fake.seed(FLAVORS, flavorObject('small', 1, '1Gi', '1Gi'));
    enqueued = [];
    lagging = new Map();
    r = make();
  });

  it('binds to the host with most free memory and records the charge on it', async () => {
    host('a', { allocatable: { vcpus: 4, memory: '4Gi', disk: '10Gi' } });
    host('b', { allocatable: { vcpus: 4, memory: '8Gi', disk: '10Gi' } });
    fake.seed(INSTANCES, instanceObject('i1', { flavor: 'small' }));
    await reconcile('i1');
    assert.equal(instance('i1')?.status?.hostName, 'b');
    assert.deepEqual(fake.peek<Host>(HOSTS, undefined, 'b')?.status?.allocated, { vcpus: 1, memory: '1Gi', disk: '1Gi' });
    assert.equal(r.stats.bound, 1);
    // Reconciling again before the instance cache shows the binding does not bind twice: the
    // assume cache knows it is bound.
    lagging.set('i1', { ...instance('i1')!, status: {} });
    await reconcile('i1');
    assert.equal(r.stats.bindCalls, 1);
  });

  // The cache says `stale` has room (or takes instances); the server knows better and says why.
  // Each refusal rules the host out for this attempt and the instance goes to `ok` at once.
  const refusals: Array<[string, (h: Host) => void, keyof SchedulerReconciler['stats'] | undefined]> = [
    ['InsufficientMemory', (h) => (h.status!.allocatable = { vcpus: 64, memory: '512Mi', disk: '1Ti' }), 'bindConflicts'],
    ['NoAllocatable', (h) => delete h.status!.allocatable, 'bindConflicts'],
    ['HostFenced', (h) => (h.spec = { fenced: true }), undefined],
    ['HostNotReady', (h) => (h.status!.conditions = [{ type: 'Ready', status: 'False', reason: 'HeartbeatExpired' }]), undefined],
  ];
  for (const [cause, serverSide, counter] of refusals) {
    it(`a ${cause} refusal excludes the host and places the instance elsewhere in the same reconcile`, async () => {
      host('stale', { allocatable: { vcpus: 64, memory: '64Gi', disk: '1Ti' } });
      host('ok', { allocatable: { vcpus: 4, memory: '4Gi', disk: '10Gi' } });
      const h = fake.peek<Host>(HOSTS, undefined, 'stale')!;
      serverSide(h);
      fake.seed(HOSTS, h); // the server changes; the scheduler's cache is not told
      fake.seed(INSTANCES, instanceObject('i1', { flavor: 'small' }));
      await reconcile('i1');
      assert.equal(instance('i1')?.status?.hostName, 'ok');
      assert.equal(r.stats.bindCalls, 2);
      if (counter) assert.equal(r.stats[counter], 1);
      else assert.equal(r.stats.bindConflicts, 0, 'not counted as lack of room');
    });
  }

  it('a host deleted on the server is ruled out too', async () => {
    host('gone', { allocatable: { vcpus: 64, memory: '64Gi', disk: '1Ti' } });
    host('ok', { allocatable: { vcpus: 4, memory: '4Gi', disk: '10Gi' } });
    await fake.delete(HOSTS, undefined, 'gone');
    fake.seed(INSTANCES, instanceObject('i1', { flavor: 'small' }));
    await reconcile('i1');
    assert.equal(instance('i1')?.status?.hostName, 'ok');
  });

  it('an instance bound by someone else meanwhile is left alone (AlreadyBound: a lost race, not an error)', async () => {
    host('a', { allocatable: { vcpus: 4, memory: '4Gi', disk: '10Gi' } });
    host('b', { allocatable: { vcpus: 4, memory: '8Gi', disk: '10Gi' } }); // our choice: more free memory
    fake.seed(INSTANCES, instanceObject('i1', { flavor: 'small' }));
    lagging.set('i1', instance('i1')!);
    // Another scheduler binds it to a; neither our instance cache nor our host cache has seen it.
    await fake.bind(NS, 'i1', 'a', { vcpus: 1, memory: '1Gi', disk: '1Gi' });
    await reconcile('i1');
    assert.equal(instance('i1')?.status?.hostName, 'a');
    assert.equal(r.stats.lostRaces, 1);
    assert.equal(r.stats.bound, 0);
  });

  it('a refusal it cannot act on (the flavor vanished on the server) is thrown for the back-off', async () => {
    host('a', { allocatable: { vcpus: 4, memory: '4Gi', disk: '10Gi' } });
    fake.seed(INSTANCES, instanceObject('i1', { flavor: 'small' }));
    const small = fake.peek<Flavor>(FLAVORS, undefined, 'small')!;
    r = make({ flavors: { get: () => small } }); // its Flavor cache still has it
    host('a', { allocatable: { vcpus: 4, memory: '4Gi', disk: '10Gi' } });
    await fake.delete(FLAVORS, undefined, 'small');
    await assert.rejects(reconcile('i1'), /flavor "small" not found/);
    assert.equal(instance('i1')?.status?.hostName, undefined);
  });

  it('no room anywhere: Pending with Scheduled=False counted per reason, retried when a host changes', async () => {
    host('full', { allocatable: { vcpus: 4, memory: '512Mi', disk: '10Gi' } });
    host('down', { ready: false });
    fake.seed(INSTANCES, instanceObject('i1', { flavor: 'small' }));
    await reconcile('i1');
    const st = instance('i1')?.status;
    assert.equal(st?.phase, 'Pending');
    const cond = st?.conditions?.find((c) => c.type === 'Scheduled');
    assert.deepEqual([cond?.status, cond?.reason, cond?.message], ['False', 'Unschedulable', '0/2 hosts available: 1 insufficient memory, 1 not ready']);
    assert.ok(r.isWaiting(`${NS}/i1`));
    // Its own status write coming back through the informer does not requeue it...
    r.onInstance(instance('i1')!, 'update');
    assert.deepEqual(enqueued, []);
    // ...a host with room does.
    host('full', { allocatable: { vcpus: 4, memory: '4Gi', disk: '10Gi' } });
    assert.deepEqual(enqueued, [`${NS}/i1`]);
    await reconcile('i1');
    assert.equal(instance('i1')?.status?.hostName, 'full');
    assert.ok(!r.isWaiting(`${NS}/i1`));
  });
});
