// The instance meter on the in-memory FakeClient: a deletion it sees before the agent is done
// keeps the instance (its finalizer stays) until the agent's last network counts are recorded.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FLAVORS, HOSTS, INSTANCES, METERING_FINALIZER, USAGE_RECORDS } from '../../api/kinds/index.js';
import type { Flavor, Host, Instance, UsageRecord } from '../../api/kinds/index.js';
import { INSTANCE_FINALIZER } from '../../api/types.js';
import type { KObject } from '../../api/types.js';
import { NAMESPACES } from '../../client/client.js';
import type { Kind } from '../../client/client.js';
import { FakeClient } from '../../client/fake.js';
import { InstanceMeter } from './instance-meter.js';

const NS = 'm';

test('a deletion seen before the agent is done: recorded at once, the finalizer kept until the last network counts are in', async () => {
  const fake = new FakeClient();
  fake.seed(NAMESPACES, { metadata: { name: NS } });
  // The caches are the store itself: a pass sees every write before it.
  const cache = <T extends KObject>(kind: Kind) => ({
    get: (ns: string | undefined, name: string) => fake.peek<T>(kind, ns, name),
    list: () => [] as T[],
  });
  const meter = new InstanceMeter({ client: fake, records: cache<UsageRecord>(USAGE_RECORDS), log: () => undefined }, cache<Instance>(INSTANCES), cache<Host>(HOSTS), cache<Flavor>(FLAVORS));
  const started = '2026-01-01T00:00:00Z';
  fake.seed(INSTANCES, {
    metadata: { name: 'vm', namespace: NS, uid: 'u-vm', finalizers: [INSTANCE_FINALIZER, METERING_FINALIZER] },
    spec: { image: 'tiny', resources: { vcpus: 1, memory: '1Gi', disk: '1Gi' } },
    status: { phase: 'Running', hostName: 'h1', startedAt: started, conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: started }] },
  });
  const reconcile = () => meter.reconcile({ namespace: NS, name: 'vm' });
  await reconcile();
  await fake.delete(INSTANCES, NS, 'vm');
  await reconcile();
  const ledger = () => fake.peek<UsageRecord>(USAGE_RECORDS, NS, 'instance-u-vm')!;
  assert.ok(ledger().spec.deleted, 'the deletion is recorded at once');
  assert.deepEqual(fake.peek<Instance>(INSTANCES, NS, 'vm')?.metadata.finalizers, [INSTANCE_FINALIZER, METERING_FINALIZER], 'kept while the agent holds the instance');
  // The agent: its last counts with the Terminating status, then its finalizer off.
  const inst = fake.peek<Instance>(INSTANCES, NS, 'vm')!;
  await fake.replaceStatus(INSTANCES, { ...inst, status: { ...inst.status!, phase: 'Terminating', networkUsage: { observedAt: '2026-01-01T00:10:00Z', receiveBytes: 5000, transmitBytes: 700 } } });
  await fake.removeFinalizer(INSTANCES, NS, 'vm', INSTANCE_FINALIZER);
  await reconcile();
  assert.deepEqual(ledger().spec.network?.at(-1), { time: '2026-01-01T00:10:00Z', receiveBytes: 5000, transmitBytes: 700 });
  assert.equal(fake.peek(INSTANCES, NS, 'vm'), undefined, 'gone once both finalizers are');
});
