// The maintenance controller against a real control plane (etcd + API server, in process).
// The test plays the migration controller: it watches Migrations by polling, marks each
// Running with its source host, then either moves the instance (status.hostName) and marks the
// Migration Succeeded, or marks it Failed, as told per instance. It records how many
// Migrations were unfinished at once, per source host and in all.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HOSTS, INSTANCES, MIGRATIONS, migrationFinished } from '../../api/kinds/index.js';
import type { Host, Instance, Migration } from '../../api/kinds/index.js';
import { findCondition, setCondition } from '../../api/conditions.js';
import { startControlPlane } from '../../cli/control-plane.js';
import type { ControlPlane } from '../../cli/control-plane.js';
import { FLAVORS, KovaClient, NAMESPACES } from '../../client/client.js';
import { eventually, runKova } from '../../e2e/harness.js';
import { registerHost } from '../../testing/host-fixtures.js';
import { MaintenanceReconciler, startMaintenanceController } from './maintenance-controller.js';
import { DRAIN_HOST_LABEL, MAINTENANCE_CORDON_ANNOTATION } from './maintenance.js';

const NS = 'mt';
const CAPACITY = { vcpus: 16, memory: '64Gi', disk: '200Gi' };
/** How long the fake migration controller keeps a Migration Running. */
const RUN_MS = 300;
const BACKOFF = { initialMs: 400, maxMs: 800 };

interface Behaviour {
  /** Fail this many attempts before succeeding (Infinity: always). */
  failures: number;
  reason: string;
  target: string;
}

describe('maintenance controller', () => {
  let cp: ControlPlane;
  let dir: string;
  let client: KovaClient;
  const stop = new AbortController();
  const behaviour = new Map<string, Behaviour>(); // instance name → what its migrations do
  const attempts = new Map<string, number>();
  const seenAt = new Map<string, number>(); // migration name → when the fake controller first saw it
  const startedAt = new Map<string, number>();
  let maxInCluster = 0;
  const maxPerHost = new Map<string, number>();
  let fake: Promise<void> | undefined;

  const getHost = async (name: string) => (await client.get<Host>(HOSTS, undefined, name))!;
  const drained = async (name: string) => findCondition((await getHost(name)).status?.conditions, 'Drained');
  const listMigrations = async () => (await client.list<Migration>(MIGRATIONS, NS)).items;
  const migrationsOf = async (instance: string) => (await listMigrations()).filter((m) => m.spec.instance === instance);
  const now = () => new Date().toISOString();

  async function instance(name: string, host: string, runStrategy = 'Always'): Promise<void> {
    await client.create(INSTANCES, { metadata: { name, namespace: NS }, spec: { flavor: 'small', image: 'tiny', runStrategy } });
    await client.bind(NS, name, host, { vcpus: 1, memory: '512Mi', disk: '1Gi' });
    await client.updateStatus<Instance>(INSTANCES, NS, name, (i) => {
      i.status!.phase = runStrategy === 'Halted' ? 'Stopped' : 'Running';
    });
  }

  /** One pass of the fake migration controller. */
  async function fakeMigrationController(): Promise<void> {
    const items = await listMigrations();
    const unfinished = items.filter((m) => !migrationFinished(m));
    maxInCluster = Math.max(maxInCluster, unfinished.length);
    const perHost = new Map<string, number>();
    for (const m of items) {
      const name = m.metadata.name!;
      if (!seenAt.has(name)) seenAt.set(name, Date.now());
      if (migrationFinished(m)) continue;
      const inst = await client.get<Instance>(INSTANCES, NS, m.spec.instance);
      const source = m.status?.sourceHost ?? inst?.status?.hostName ?? '?';
      perHost.set(source, (perHost.get(source) ?? 0) + 1);
      if (!m.status?.phase || m.status.phase === 'Pending') {
        await client.updateStatus<Migration>(MIGRATIONS, NS, name, (x) => {
          x.status = { ...x.status, phase: 'Running', sourceHost: source, instanceUID: inst?.metadata.uid, mode: inst?.status?.phase === 'Stopped' ? 'Cold' : 'Live', startTime: now() };
        });
        startedAt.set(name, Date.now());
        continue;
      }
      if (Date.now() - (startedAt.get(name) ?? 0) < RUN_MS) continue;
      const b = behaviour.get(m.spec.instance) ?? { failures: 0, reason: '', target: 'h9' };
      const n = (attempts.get(m.spec.instance) ?? 0) + 1;
      attempts.set(m.spec.instance, n);
      if (n <= b.failures) {
        await client.updateStatus<Migration>(MIGRATIONS, NS, name, (x) => {
          x.status!.phase = 'Failed';
          x.status!.endTime = now();
          x.status!.conditions = setCondition(x.status!.conditions, { type: 'Failed', status: 'True', reason: b.reason, message: `injected failure ${n}` });
        });
        continue;
      }
      await client.updateStatus<Instance>(INSTANCES, NS, m.spec.instance, (i) => {
        i.status!.hostName = b.target;
      });
      await client.updateStatus<Migration>(MIGRATIONS, NS, name, (x) => {
        x.status!.phase = 'Succeeded';
        x.status!.targetHost = b.target;
        x.status!.endTime = now();
        x.status!.conditions = setCondition(x.status!.conditions, { type: 'Succeeded', status: 'True', reason: 'Succeeded', message: `moved to ${b.target}` });
      });
    }
    for (const [h, n] of perHost) maxPerHost.set(h, Math.max(maxPerHost.get(h) ?? 0, n));
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kova-maintenance-'));
    cp = await startControlPlane({ dataDir: dir, listen: '127.0.0.1:0' });
    client = KovaClient.fromFile(cp.kubeconfig);
    await client.create(NAMESPACES, { metadata: { name: NS } });
    await client.create(FLAVORS, { metadata: { name: 'small' }, spec: { vcpus: 1, memory: '512Mi', disk: '1Gi' } });
    for (const h of ['h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'h9']) await registerHost(client, h, { capacity: CAPACITY });
    await startMaintenanceController({ client, signal: stop.signal, limits: { perHost: 2, perCluster: 3 }, backoff: BACKOFF, log: () => undefined });
    fake = (async () => {
      while (!stop.signal.aborted) {
        await fakeMigrationController().catch((e) => { if (!stop.signal.aborted) console.error(`fake migration controller: ${e}`); });
        await new Promise((r) => setTimeout(r, 40));
      }
    })();
  });
  after(async () => {
    stop.abort();
    await fake;
    client?.close();
    await cp?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('drains a host: cordons it, moves every instance (a stopped one too) at most 2 at a time, then uncordons', async () => {
    for (const n of ['a1', 'a2', 'a3', 'a4']) await instance(n, 'h1');
    await instance('a5', 'h1', 'Halted');
    for (const n of ['a1', 'a2', 'a3', 'a4', 'a5']) behaviour.set(n, { failures: 0, reason: '', target: 'h9' });
    // Control: nothing happens without maintenance.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await listMigrations()).length, 0);

    await client.mergePatch(HOSTS, undefined, 'h1', { spec: { maintenance: true } });
    const cordoned = await eventually(async () => {
      const h = await getHost('h1');
      return h.spec?.unschedulable === true && h;
    }, 10_000, 'h1 cordoned');
    assert.equal(cordoned.metadata.annotations?.[MAINTENANCE_CORDON_ANNOTATION], 'true');

    const cond = await eventually(async () => {
      const c = await drained('h1');
      return c?.status === 'True' && c;
    }, 20_000, 'Drained=True on h1');
    assert.equal(cond.reason, 'Drained');
    assert.equal(cond.message, 'no instances left on host h1');
    for (const n of ['a1', 'a2', 'a3', 'a4', 'a5']) assert.equal((await client.get<Instance>(INSTANCES, NS, n))!.status?.hostName, 'h9', n);

    const migs = await listMigrations();
    assert.equal(migs.length, 5, 'one Migration per instance');
    for (const m of migs) {
      assert.equal(m.metadata.labels?.[DRAIN_HOST_LABEL], 'h1');
      assert.match(m.metadata.name!, new RegExp(`^${m.spec.instance}-[a-z0-9]{5}$`));
      assert.equal(m.spec.targetHost, undefined);
      assert.equal(m.spec.mode, undefined, 'the migration controller picks the mode');
    }
    assert.equal(migs.find((m) => m.spec.instance === 'a5')?.status?.mode, 'Cold');
    assert.equal(maxPerHost.get('h1'), 2, 'two outbound at a time from h1, and the limit was reached');

    await client.mergePatch(HOSTS, undefined, 'h1', { spec: { maintenance: false } });
    const back = await eventually(async () => {
      const h = await getHost('h1');
      return h.spec?.unschedulable === false && !findCondition(h.status?.conditions, 'Drained') && h;
    }, 10_000, 'h1 uncordoned, Drained removed');
    assert.equal(back.metadata.annotations?.[MAINTENANCE_CORDON_ANNOTATION], undefined);
  });

  it('keeps at most 3 unfinished Migrations in the cluster while two hosts drain', async () => {
    maxInCluster = 0;
    for (const n of ['b1', 'b2', 'b3']) await instance(n, 'h2');
    for (const n of ['c1', 'c2', 'c3']) await instance(n, 'h3');
    for (const n of ['b1', 'b2', 'b3', 'c1', 'c2', 'c3']) behaviour.set(n, { failures: 0, reason: '', target: 'h9' });
    await Promise.all(['h2', 'h3'].map((h) => client.mergePatch(HOSTS, undefined, h, { spec: { maintenance: true } })));
    for (const h of ['h2', 'h3']) await eventually(async () => (await drained(h))?.status === 'True', 20_000, `Drained=True on ${h}`);
    assert.equal(maxInCluster, 3, 'the cluster limit was reached and never passed');
    assert.ok(maxPerHost.get('h2')! <= 2 && maxPerHost.get('h3')! <= 2);
    assert.equal((await listMigrations()).filter((m) => /^[bc]/.test(m.spec.instance)).length, 6);
  });

  it('retries failed Migrations with back-off and lists the instances that cannot move; clearing maintenance stops it', async () => {
    await instance('d1', 'h4');
    await instance('d2', 'h4');
    behaviour.set('d1', { failures: 2, reason: 'TargetPrepareFailed', target: 'h9' });
    behaviour.set('d2', { failures: Infinity, reason: 'Unschedulable', target: 'h9' });
    await client.mergePatch(HOSTS, undefined, 'h4', { spec: { maintenance: true } });

    const failed = await eventually(async () => {
      const c = await drained('h4');
      return c?.reason === 'MigrationsFailed' && /mt\/d2: Unschedulable: injected failure/.test(c.message ?? '') && c;
    }, 10_000, 'MigrationsFailed naming mt/d2');
    assert.equal(failed.status, 'False');
    // d1 moves on its third attempt; d2 never does.
    await eventually(async () => (await client.get<Instance>(INSTANCES, NS, 'd1'))!.status?.hostName === 'h9', 15_000, 'd1 moved after two failures');
    // The stand-in controller moves the instance, then ends its Migration: wait for that too.
    const d1 = await eventually(async () => {
      const ms = (await migrationsOf('d1')).sort((x, y) => seenAt.get(x.metadata.name!)! - seenAt.get(y.metadata.name!)!);
      return ms[ms.length - 1]?.status?.phase === 'Succeeded' && ms;
    }, 10_000, 'd1\'s last Migration Succeeded');
    assert.deepEqual(d1.map((m) => m.status?.phase), ['Failed', 'Failed', 'Succeeded']);
    // Each retry waited for its back-off after the previous failure ended (400 ms, then 800 ms).
    for (const [i, wait] of [[1, 400], [2, 800]] as const) {
      const gap = seenAt.get(d1[i].metadata.name!)! - Date.parse(d1[i - 1].status!.endTime!);
      assert.ok(gap >= wait - 50, `retry ${i} came ${gap} ms after the failure (back-off ${wait} ms)`);
    }
    const c = await eventually(async () => {
      const x = await drained('h4');
      return x?.message?.startsWith('1 instance left on host h4') && x;
    }, 5_000, 'only d2 left');
    assert.equal(c.reason, 'MigrationsFailed');
    assert.match(c.message!, /cannot move: mt\/d2: Unschedulable: injected failure \d+ \((next retry at |retrying)/);
    assert.doesNotMatch(c.message!, /mt\/d1/);

    // Maintenance cleared: whatever runs finishes, nothing new starts.
    await client.mergePatch(HOSTS, undefined, 'h4', { spec: { maintenance: false } });
    await eventually(async () => (await getHost('h4')).spec?.unschedulable === false, 10_000, 'h4 uncordoned');
    await eventually(async () => (await migrationsOf('d2')).every((m) => migrationFinished(m)), 5_000, 'the running d2 Migration finished');
    const count = (await migrationsOf('d2')).length;
    await new Promise((r) => setTimeout(r, BACKOFF.maxMs + 600));
    assert.equal((await migrationsOf('d2')).length, count, 'no Migration after maintenance was cleared');
    assert.equal((await client.get<Instance>(INSTANCES, NS, 'd2'))!.status?.hostName, 'h4');
  });

  it('leaves a host an operator cordoned cordoned; kova drain --wait and kova uncordon', async () => {
    await instance('e1', 'h5');
    behaviour.set('e1', { failures: 0, reason: '', target: 'h9' });
    await client.mergePatch(HOSTS, undefined, 'h5', { spec: { unschedulable: true } });
    const out = await runKova(['drain', 'h5', '--wait', '--timeout', '20s', '--kubeconfig', cp.kubeconfig], 30_000);
    assert.match(out, /^kova: host h5: maintenance on: cordoned, its instances are migrated off$/m);
    assert.match(out, /^kova: host h5: drained: no instances left on host h5$/m);
    assert.equal((await client.get<Instance>(INSTANCES, NS, 'e1'))!.status?.hostName, 'h9');
    const h5 = await getHost('h5');
    assert.equal(h5.metadata.annotations?.[MAINTENANCE_CORDON_ANNOTATION], undefined, 'maintenance did not cordon it');
    // Clearing maintenance alone leaves the operator's cordon.
    await client.mergePatch(HOSTS, undefined, 'h5', { spec: { maintenance: false } });
    await eventually(async () => !findCondition((await getHost('h5')).status?.conditions, 'Drained'), 10_000, 'Drained removed from h5');
    assert.equal((await getHost('h5')).spec?.unschedulable, true);
    // kova uncordon makes it schedulable.
    assert.match(await runKova(['uncordon', 'h5', '--kubeconfig', cp.kubeconfig]), /^kova: host h5: schedulable$/m);
    assert.equal((await getHost('h5')).spec?.unschedulable, false);

    // --timeout: a host whose instance cannot move.
    await instance('f1', 'h6');
    behaviour.set('f1', { failures: Infinity, reason: 'Unschedulable', target: 'h9' });
    await assert.rejects(runKova(['drain', 'h6', '--wait', '--timeout', '2s', '--kubeconfig', cp.kubeconfig], 30_000), /host h6: not drained after 2 s \(MigrationsFailed: 1 instance left on host h6: .*mt\/f1: Unschedulable/s);
    assert.match(await runKova(['uncordon', 'h6', '--kubeconfig', cp.kubeconfig]), /^kova: host h6: schedulable, maintenance off \(running migrations finish\)$/m);
    await assert.rejects(runKova(['drain', 'nope', '--kubeconfig', cp.kubeconfig]), /host nope not found/);
  });
});

// A Migration create that admission refuses (422: an in-flight Migration of the instance the
// cache has not shown yet) is a failure of that instance: logged, listed in Drained, retried
// with back-off, never a hot loop. The reconciler runs alone here, with its clock in the test's
// hands and a Migrations cache that lags (empty), against a real API server with admission.
describe('maintenance controller: a Migration create refused by admission', () => {
  const NS2 = 'mt422';
  let cp: ControlPlane;
  let dir: string;
  let client: KovaClient;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kova-maintenance-422-'));
    cp = await startControlPlane({ dataDir: dir, listen: '127.0.0.1:0' });
    client = KovaClient.fromFile(cp.kubeconfig);
    await client.create(NAMESPACES, { metadata: { name: NS2 } });
    await client.create(FLAVORS, { metadata: { name: 'small' }, spec: { vcpus: 1, memory: '512Mi', disk: '1Gi' } });
    for (const h of ['h1', 'h2']) await registerHost(client, h, { capacity: CAPACITY });
    await client.create(INSTANCES, { metadata: { name: 'g1', namespace: NS2 }, spec: { flavor: 'small', image: 'tiny' } });
    await client.bind(NS2, 'g1', 'h1', { vcpus: 1, memory: '512Mi', disk: '1Gi' });
    await client.updateStatus<Instance>(INSTANCES, NS2, 'g1', (i) => {
      i.status!.phase = 'Running';
    });
  });
  after(async () => {
    client?.close();
    await cp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('counts a 422 as a failure of the instance: logged, listed in Drained, retried with back-off', async () => {
    // Someone else's Migration of g1, unfinished (no migration controller runs here).
    await client.create(MIGRATIONS, { metadata: { name: 'by-hand', namespace: NS2 }, spec: { instance: 'g1' } });
    await client.mergePatch(HOSTS, undefined, 'h1', { spec: { maintenance: true } });
    const host = (await client.get<Host>(HOSTS, undefined, 'h1'))!;
    const g1 = (await client.get<Instance>(INSTANCES, NS2, 'g1'))!;
    let clock = Date.now();
    const logs: string[] = [];
    const r = new MaintenanceReconciler({
      client,
      hosts: { get: (_ns, n) => (n === 'h1' ? host : undefined), list: () => [host] },
      instances: { get: (ns, n) => (ns === NS2 && n === 'g1' ? g1 : undefined), list: () => [g1] },
      migrations: { get: () => undefined, list: () => [] }, // lags: does not show by-hand yet
      backoff: { initialMs: 1000, maxMs: 4000 },
      now: () => clock,
      log: (m) => logs.push(m),
    });
    const attempts = () => logs.filter((l) => /cannot create a Migration for mt422\/g1/.test(l));

    const first = await r.reconcile({ name: 'h1' });
    assert.equal(attempts().length, 1);
    assert.match(attempts()[0], /\(failure 1, next try in 1 s\): .*in-flight migration detected: Migration "by-hand"/);
    assert.equal(first?.requeueAfterMs, 1050, 'looked at again when the back-off ends, not at once');
    const c = findCondition((await client.get<Host>(HOSTS, undefined, 'h1'))!.status?.conditions, 'Drained')!;
    assert.equal(c.status, 'False');
    assert.equal(c.reason, 'MigrationsFailed');
    assert.match(c.message!, /^1 instance left on host h1: 0 migrating, 1 waiting; cannot move: mt422\/g1: could not create a Migration: .*in-flight migration detected.* \(next retry at /);

    // Within the back-off: no new create.
    clock += 500;
    await r.reconcile({ name: 'h1' });
    assert.equal(attempts().length, 1, 'no retry before the back-off ends');
    // Due: refused again, and the back-off doubles.
    clock += 600;
    const second = await r.reconcile({ name: 'h1' });
    assert.equal(attempts().length, 2);
    assert.match(attempts()[1], /\(failure 2, next try in 2 s\)/);
    assert.equal(second?.requeueAfterMs, 2050);

    // The other Migration ends (deleted): the next due attempt creates the drain's.
    await client.delete(MIGRATIONS, NS2, 'by-hand');
    await eventually(async () => (await client.list<Migration>(MIGRATIONS, NS2)).items.length === 0, 10_000, 'by-hand gone');
    clock += 2100;
    await r.reconcile({ name: 'h1' });
    assert.equal(attempts().length, 2);
    const made = (await client.list<Migration>(MIGRATIONS, NS2)).items;
    assert.equal(made.length, 1);
    assert.equal(made[0].metadata.labels?.[DRAIN_HOST_LABEL], 'h1');
    await r.reconcile({ name: 'h1' }); // as the created Migration's event would
    assert.equal((await client.list<Migration>(MIGRATIONS, NS2)).items.length, 1, 'remembered: not created twice');
    const after = findCondition((await client.get<Host>(HOSTS, undefined, 'h1'))!.status?.conditions, 'Drained')!;
    assert.equal(after.reason, 'Draining', 'the refused create is no longer listed once one is made');
  });
});
