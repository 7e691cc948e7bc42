// MigrationReconciler on the in-memory FakeClient, with caches that lag behind the store as an
// informer does right after a write: a pass woken before the watch delivers the controller's
// own writes must start from what those writes returned, not redo its steps.
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { HOSTS, INSTANCES, MIGRATIONS } from '../../api/kinds/index.js';
import type { Host, Instance, Migration } from '../../api/kinds/index.js';
import { NAMESPACES } from '../../client/client.js';
import { FakeClient } from '../../client/fake.js';
import { MigrationReconciler } from './migration-controller.js';

const NS = 'mc';

describe('MigrationReconciler (fake client, lagging caches)', () => {
  let fake: FakeClient;
  let r: MigrationReconciler;
  /** What the informers hold: refreshed only by sync(), as a watch delivers later. */
  let cache: { migrations: Map<string, Migration>; instances: Map<string, Instance>; hosts: Map<string, Host> };

  const sync = () => {
    cache.migrations = new Map([['mv', fake.peek<Migration>(MIGRATIONS, NS, 'mv')!]]);
    cache.instances = new Map([['vm', fake.peek<Instance>(INSTANCES, NS, 'vm')!]]);
    cache.hosts = new Map(['h1', 'h2'].map((h) => [h, fake.peek<Host>(HOSTS, undefined, h)!]));
  };
  const view = <T>(m: () => Map<string, T>) => ({ get: (_ns: string | undefined, name: string) => m().get(name), list: () => [...m().values()] });
  const none = { get: () => undefined, list: () => [] };
  const host = (name: string) => ({
    metadata: { name, labels: { 'kubernetes.io/hostname': name } },
    spec: {},
    status: {
      capacity: { vcpus: 8, memory: '16Gi', disk: '100Gi' },
      allocatable: { vcpus: 8, memory: '16Gi', disk: '100Gi' },
      allocations: [],
      conditions: [{ type: 'Ready', status: 'True', reason: 'AgentReady' }],
    },
  });

  beforeEach(async () => {
    fake = new FakeClient();
    fake.seed(NAMESPACES, { metadata: { name: NS } });
    fake.seed(HOSTS, host('h1'));
    fake.seed(HOSTS, host('h2'));
    fake.seed(INSTANCES, { metadata: { name: 'vm', namespace: NS }, spec: { image: 'tiny', resources: { vcpus: 1, memory: '1Gi', disk: '1Gi' } }, status: { phase: 'Pending' } });
    await fake.bind(NS, 'vm', 'h1', { vcpus: 1, memory: '1Gi', disk: '1Gi' });
    await fake.updateStatus<Instance>(INSTANCES, NS, 'vm', (i) => {
      i.status = { ...i.status, phase: 'Running', powerState: 'Running' };
    });
    fake.seed(MIGRATIONS, { metadata: { name: 'mv', namespace: NS }, spec: { instance: 'vm', targetHost: 'h2' } });
    cache = { migrations: new Map(), instances: new Map(), hosts: new Map() };
    sync();
    r = new MigrationReconciler({
      client: fake,
      migrations: view(() => cache.migrations),
      instances: view(() => cache.instances),
      hosts: view(() => cache.hosts),
      flavors: none,
      volumes: none,
      volumeTypes: none,
      log: () => undefined,
    });
  });

  it('marks the instance, charges the target and writes PreparingTarget once, however often a stale cache wakes it', async () => {
    await r.reconcile({ namespace: NS, name: 'mv' });
    const m = fake.peek<Migration>(MIGRATIONS, NS, 'mv')!;
    assert.equal(m.status?.phase, 'PreparingTarget');
    assert.equal(m.status?.targetHost, 'h2');
    assert.equal(fake.peek<Instance>(INSTANCES, NS, 'vm')!.status?.migration?.targetHost, 'h2');
    assert.equal(fake.peek<Host>(HOSTS, undefined, 'h2')!.status?.allocations?.length, 1);
    // Woken again (by its own finalizer and mark) before the informers saw any of it.
    const before = fake.stats.requests;
    await r.reconcile({ namespace: NS, name: 'mv' });
    await r.reconcile({ namespace: NS, name: 'mv' });
    assert.deepEqual(fake.calls.slice(before).map((c) => `${c.verb} ${c.resource}`), [], 'no step taken again, not even a read');
    // Once the informers catch up, nothing is left to do either.
    sync();
    await r.reconcile({ namespace: NS, name: 'mv' });
    assert.equal(fake.stats.requests, before);
  });
});
