// The garbage collector against a real API server on a real etcd: it follows every kind in
// metadata form and keeps only objects that can matter, so these cases check it still sees
// every change that turns an object into one that matters, or back; then the three
// propagation policies, and that leader election runs one collector among several managers.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { KObject } from '../../api/types.js';
import { startControlPlane } from '../../cli/control-plane.js';
import type { ControlPlane } from '../../cli/control-plane.js';
import { FLAVORS, KovaClient } from '../../client/client.js';
import { waitFor } from '../../testing/etcd.js';
import { intercept } from '../../testing/intercept.js';
import { startControllerManager } from '../manager.js';
import type { ControllerManager } from '../manager.js';
import { startGarbageCollector } from './garbage-collector.js';
import type { GarbageCollector } from './garbage-collector.js';

let dir: string;
let cp: ControlPlane;
let client: KovaClient;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kova-gc-'));
  cp = await startControlPlane({ dataDir: dir, listen: '127.0.0.1:0' });
  client = KovaClient.fromFile(cp.kubeconfig);
});

after(async () => {
  client?.close();
  await cp?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const ref = (o: KObject, block = false) => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', name: o.metadata.name!, uid: o.metadata.uid!, ...(block ? { blockOwnerDeletion: true } : {}) });
const flavor = (name: string, owner?: KObject, block = false) => client.create(FLAVORS, {
  metadata: { name, ...(owner ? { ownerReferences: [ref(owner, block)] } : {}) },
  spec: { vcpus: 1, memory: '1Gi', disk: '1Gi' },
});
const exists = async (name: string) => !!(await client.get(FLAVORS, undefined, name));

describe('garbage collector', () => {
  const ac = new AbortController();
  let gc: GarbageCollector;
  before(async () => {
    gc = await startGarbageCollector({ client, signal: ac.signal, log: () => undefined });
  });
  after(async () => {
    ac.abort();
    await gc?.done;
  });

  it('follows kinds through metadata-only lists and watches', () => {
    assert.ok(gc.watchers.some((w) => w.kind.plural === 'flavors'));
    assert.ok(!gc.watchers.some((w) => w.kind.kind === 'Event'), 'events are not followed');
    assert.ok(gc.metadata.stats.lists >= gc.watchers.length);
  });

  it('collects a dependent whose owner reference was added after it was created', async () => {
    const owner = await flavor('owner-late');
    const dep = await flavor('dep-late');
    await client.update(FLAVORS, { ...dep, metadata: { ...dep.metadata, ownerReferences: [ref(owner)] } });
    await client.delete(FLAVORS, undefined, 'owner-late');
    await waitFor(async () => !(await exists('dep-late')), 'the dependent to be collected');
  });

  it('keeps a dependent whose owner reference was removed before the owner went', async () => {
    const owner = await flavor('owner-gone');
    const dep = await flavor('dep-freed', owner);
    const { ownerReferences: _, ...meta } = dep.metadata;
    await client.update(FLAVORS, { ...dep, metadata: meta });
    // A control pair: proves the collector has acted on the owner's deletion before the check.
    await flavor('dep-control', owner);
    await client.delete(FLAVORS, undefined, 'owner-gone');
    await waitFor(async () => !(await exists('dep-control')), 'the control dependent to be collected');
    assert.equal(await exists('dep-freed'), true, 'a stale owner reference must not get the freed object deleted');
  });

  it('keeps a dependent while one of its owners remains, and drops the reference to the one gone', async () => {
    const a = await flavor('owner-a');
    const b = await flavor('owner-b');
    const dep = await client.create(FLAVORS, { metadata: { name: 'dep-two', ownerReferences: [ref(a), ref(b)] }, spec: { vcpus: 1, memory: '1Gi', disk: '1Gi' } });
    await client.delete(FLAVORS, undefined, 'owner-a');
    await waitFor(async () => (await client.get(FLAVORS, undefined, 'dep-two'))?.metadata.ownerReferences?.length === 1, 'the reference to the deleted owner to be removed');
    const left = await client.get(FLAVORS, undefined, 'dep-two');
    assert.equal(left?.metadata.uid, dep.metadata.uid);
    assert.deepEqual(left?.metadata.ownerReferences?.map((r) => r.name), ['owner-b']);
  });

  it('foreground: the owner waits (finalizer foregroundDeletion) until its blocking dependents are gone', async () => {
    const owner = await flavor('owner-fg');
    await flavor('dep-fg', owner, true);
    await flavor('dep-fg-2', owner, true);
    await client.delete(FLAVORS, undefined, 'owner-fg', { propagationPolicy: 'Foreground' });
    const marked = await client.get(FLAVORS, undefined, 'owner-fg');
    assert.ok(marked?.metadata.finalizers?.includes('foregroundDeletion'), 'the owner is marked before it goes');
    await waitFor(async () => !(await exists('owner-fg')), 'the owner to be deleted');
    assert.equal(await exists('dep-fg'), false);
    assert.equal(await exists('dep-fg-2'), false);
  });

  it('orphan: dependents lose their reference and stay; the owner goes', async () => {
    const owner = await flavor('owner-or');
    await flavor('dep-or', owner, true);
    await client.delete(FLAVORS, undefined, 'owner-or', { propagationPolicy: 'Orphan' });
    await waitFor(async () => !(await exists('owner-or')), 'the owner to be deleted');
    const dep = await client.get(FLAVORS, undefined, 'dep-or');
    assert.ok(dep, 'the orphaned dependent stays');
    assert.equal(dep.metadata.ownerReferences, undefined);
  });

  it('collects a dependent whose owner was deleted before the dependent was created', async () => {
    const owner = await flavor('owner-early');
    await client.delete(FLAVORS, undefined, 'owner-early');
    await flavor('dep-after', owner);
    await waitFor(async () => !(await exists('dep-after')), 'the dependent of a missing owner to be collected');
  });
});

describe('garbage collector reads', () => {
  it('deletes a dependent after a live read of it, without reading the owner whose deletion its watches reported', async () => {
    const reads: string[] = [];
    // The client as the collector sees it, with its reads of single objects written down.
    const counting = intercept(client, 'get', (get) => (kind, ns, name, ...rest) => {
      reads.push(`${kind.plural}/${name}`);
      return get(kind, ns, name, ...rest);
    });
    const ac = new AbortController();
    const gc = await startGarbageCollector({ client: counting, signal: ac.signal, log: () => undefined });
    try {
      const owner = await flavor('owner-watched');
      const dep = await flavor('dep-watched', owner);
      await waitFor(async () => gc.graph.has(owner.metadata.uid!) && gc.graph.nodes.has(dep.metadata.uid!), 'the graph to hold both');
      await client.delete(FLAVORS, undefined, 'owner-watched');
      await waitFor(async () => !(await exists('dep-watched')), 'the dependent to be collected');
      assert.ok(gc.graph.wasDeleted(owner.metadata.uid!));
      assert.ok(reads.includes('flavors/dep-watched'), `the dependent is read live before it is deleted (reads: ${reads.join(', ')})`);
      assert.ok(!reads.includes('flavors/owner-watched'), `the owner is not read (reads: ${reads.join(', ')})`);
    } finally {
      ac.abort();
      await gc.done;
    }
  });
});

describe('garbage collector under leader election', () => {
  it('runs in one of two controller managers, and in the other once the first stops; the standby keeps its caches warm meanwhile', async () => {
    const logs: Record<string, string[]> = { a: [], b: [] };
    const acs = { a: new AbortController(), b: new AbortController() };
    const clients = { a: KovaClient.fromFile(cp.kubeconfig), b: KovaClient.fromFile(cp.kubeconfig) };
    const timing = { leaseDurationS: 2, renewDeadlineS: 1.5, retryPeriodS: 0.2 };
    const managers: Record<string, ControllerManager> = {};
    for (const id of ['a', 'b'] as const) {
      managers[id] = startControllerManager({ client: clients[id], signal: acs[id].signal, identity: `gc-test-${id}`, log: (m) => logs[id].push(m), ...timing });
    }
    const gcStarted = (id: string) => logs[id].some((l) => l.startsWith('garbage collector: following'));
    try {
      await waitFor(() => gcStarted('a') || gcStarted('b'), 'one garbage collector to start', 30_000);
      const leader = gcStarted('a') ? 'a' : 'b';
      const follower = leader === 'a' ? 'b' : 'a';
      // The follower keeps trying the held Lease (several requests) and still runs no collector.
      const seen = clients[follower].stats.requests;
      await waitFor(() => clients[follower].stats.requests >= seen + 3, 'the follower to retry the Lease');
      assert.equal(managers[follower].isLeader(), false);
      assert.equal(gcStarted(follower), false, 'only the leader runs a garbage collector');
      // The standby has listed every kind the controllers follow, and built its collector's graph.
      await waitFor(() => managers[follower].standbyWarm(), "the standby's caches to sync");
      await waitFor(() => managers[leader].coldInformers() !== undefined, 'the leader to start all its controllers');
      assert.deepEqual(managers[leader].coldInformers(), [], 'every informer of the controllers is in WARM_INFORMERS');

      acs[leader].abort();
      await managers[leader].done;
      await waitFor(() => gcStarted(follower), 'the other manager to take over the garbage collector', 30_000);
      await waitFor(() => managers[follower].coldInformers() !== undefined, 'the new leader to start all its controllers');
      assert.deepEqual(managers[follower].coldInformers(), [], 'the takeover started from the warm caches');
      const owner = await flavor('owner-failover');
      await flavor('dep-failover', owner);
      await client.delete(FLAVORS, undefined, 'owner-failover');
      await waitFor(async () => !(await exists('dep-failover')), 'the new leader to collect the dependent');
    } finally {
      for (const ac of Object.values(acs)) ac.abort();
      await Promise.all(Object.values(managers).map((m) => m.done));
      for (const c of Object.values(clients)) c.close();
    }
  });
});
