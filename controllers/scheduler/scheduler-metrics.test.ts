// kube-scheduler's attempt metrics from the SchedulerReconciler (on the in-memory FakeClient):
// one attempt per reconcile of an unbound instance, by result, under the default profile.
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { FLAVORS, HOSTS, INSTANCES } from '../../api/kinds/index.js';
import type { Flavor, Host, Instance } from '../../api/kinds/index.js';
import { NAMESPACES } from '../../client/client.js';
import { EventRecorder } from '../../client/events.js';
import { FakeClient } from '../../client/fake.js';
import { metricsRegistry } from '../../lib/metrics.js';
import { flavorObject, hostObject, instanceObject } from '../../testing/scheduler-objects.js';
import { SCHEDULER_PROFILE } from './metrics.js';
import { SchedulerReconciler } from './scheduler.js';
import { weighersFor } from './weighers.js';

const NS = 'ns';

async function sample(metric: string, result: string, series = ''): Promise<number> {
  const m = metricsRegistry.getSingleMetric(metric);
  assert.ok(m, `${metric} is registered`);
  const values = (await m.get()).values as Array<{ value: number; labels: Record<string, string | number>; metricName?: string }>;
  const s = values.find((v) => v.labels.result === result && v.labels.profile === SCHEDULER_PROFILE && (!series || v.metricName === metric + series));
  return s?.value ?? 0;
}
const attempts = (result: string) => sample('scheduler_schedule_attempts_total', result);
const latencyCount = (result: string) => sample('scheduler_scheduling_attempt_duration_seconds', result, '_count');

describe('scheduler attempt metrics', () => {
  let fake: FakeClient;
  let r: SchedulerReconciler;
  /** Instances whose cached copy lags behind the server. */
  let lagging: Map<string, Instance>;
  let before: Record<string, number>;

  const counts = async () => ({
    scheduled: await attempts('scheduled'),
    unschedulable: await attempts('unschedulable'),
    error: await attempts('error'),
    latencyScheduled: await latencyCount('scheduled'),
    latencyUnschedulable: await latencyCount('unschedulable'),
    latencyError: await latencyCount('error'),
  });
  /** What changed since beforeEach. */
  const delta = async () => Object.fromEntries(Object.entries(await counts()).map(([k, v]) => [k, v - before[k]!]));

  const host = (name: string, allocatable = { vcpus: 4, memory: '4Gi', disk: '10Gi' }) => {
    fake.seed(HOSTS, hostObject(name, { allocatable }));
    r.onHost(fake.peek<Host>(HOSTS, undefined, name)!, 'add');
  };
  type Deps = ConstructorParameters<typeof SchedulerReconciler>[0];
  const make = (over: Partial<Deps> = {}) => new SchedulerReconciler({
    client: fake,
    instances: { get: (ns, name) => lagging.get(name) ?? fake.peek<Instance>(INSTANCES, ns, name) },
    flavors: { get: (_ns, name) => fake.peek<Flavor>(FLAVORS, undefined, name) },
    enqueue: () => undefined,
    recorder: new EventRecorder(fake, 'kova-scheduler', { log: () => undefined }),
    weighers: weighersFor('spread'),
    ...over,
  });
  const reconcile = (name: string) => r.reconcile({ namespace: NS, name });

  beforeEach(async () => {
    fake = new FakeClient();
    fake.seed(NAMESPACES, { metadata: { name: NS } });
    fake.seed(FLAVORS, flavorObject('small', 1, '1Gi', '1Gi'));
    lagging = new Map();
    r = make();
    before = await counts();
  });

  it('a binding counts one scheduled attempt; reconciling the bound instance again counts none', async () => {
    host('a');
    fake.seed(INSTANCES, instanceObject('i1', { flavor: 'small' }));
    await reconcile('i1');
    await reconcile('i1');
    assert.deepEqual(await delta(), { scheduled: 1, unschedulable: 0, error: 0, latencyScheduled: 1, latencyUnschedulable: 0, latencyError: 0 });
  });

  it('no room and a missing flavor count unschedulable', async () => {
    host('tiny', { vcpus: 4, memory: '512Mi', disk: '10Gi' });
    fake.seed(INSTANCES, instanceObject('i1', { flavor: 'small' }));
    fake.seed(INSTANCES, instanceObject('i2', { flavor: 'nope' }));
    await reconcile('i1');
    await reconcile('i2');
    assert.deepEqual(await delta(), { scheduled: 0, unschedulable: 2, error: 0, latencyScheduled: 0, latencyUnschedulable: 2, latencyError: 0 });
  });

  it('an instance bound elsewhere meanwhile counts error (a binding that failed, as kube-scheduler counts it)', async () => {
    host('a');
    host('b', { vcpus: 4, memory: '8Gi', disk: '10Gi' }); // our choice: more free memory
    fake.seed(INSTANCES, instanceObject('i1', { flavor: 'small' }));
    lagging.set('i1', fake.peek<Instance>(INSTANCES, NS, 'i1')!);
    await fake.bind(NS, 'i1', 'a', { vcpus: 1, memory: '1Gi', disk: '1Gi' }); // another scheduler; our caches have not seen it
    await reconcile('i1');
    assert.equal(r.stats.lostRaces, 1);
    assert.deepEqual(await delta(), { scheduled: 0, unschedulable: 0, error: 1, latencyScheduled: 0, latencyUnschedulable: 0, latencyError: 1 });
  });

  it('a refusal it cannot act on (the flavor vanished on the server) counts error and is thrown for the back-off', async () => {
    fake.seed(INSTANCES, instanceObject('i1', { flavor: 'small' }));
    const small = fake.peek<Flavor>(FLAVORS, undefined, 'small')!;
    r = make({ flavors: { get: () => small } }); // its Flavor cache still has it
    host('a');
    await fake.delete(FLAVORS, undefined, 'small');
    await assert.rejects(reconcile('i1'), /flavor "small" not found/);
    assert.deepEqual(await delta(), { scheduled: 0, unschedulable: 0, error: 1, latencyScheduled: 0, latencyUnschedulable: 0, latencyError: 1 });
  });
});
