// Usage metering end to end: a real `kova up --driver sim --no-controllers` (etcd, API server,
// sim agent) and the controller manager in this process (as its own identity), so the test can
// stop and restart it. Expected usage is computed from the objects' own timestamps (startedAt,
// the Ready condition's lastTransitionTime, deletionTimestamp), never from the test's clock.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { findCondition } from '../api/conditions.js';
import type { Instance, UsageRecord, Volume } from '../api/kinds/index.js';
import { USAGE_RECORDS } from '../api/kinds/index.js';
import type { Usage } from '../api/metering.js';
import { DAY_MS, dayStart, rfc3339 } from '../api/metering.js';
import { FLAVORS, INSTANCES, KovaClient, NAMESPACES, StatusError, VOLUME_TYPES, VOLUMES } from '../client/client.js';
import { startControllerManager } from '../controllers/manager.js';
import type { ControllerManager } from '../controllers/manager.js';
import { createReadySimImage } from '../node-agent/sim-image.js';
import { createUser, eventually, runKova, startKova } from './harness.js';
import type { Kova } from './harness.js';

const GIB = 2 ** 30;
const SMALL = { vcpus: 1, memory: '512Mi', disk: '2Gi' };
const LARGE = { vcpus: 2, memory: '1Gi', disk: '4Gi' };
const USAGE_CLI = fileURLToPath(new URL('../cli/usage.js', import.meta.url));

const sec = (t: string | undefined) => Date.parse(t!) / 1000;
const close = (actual: number, expected: number, what: string) => assert.ok(Math.abs(actual - expected) < 1e-6, `${what}: ${actual} != ${expected}`);

describe('metering', () => {
  let kova: Kova;
  let admin: KovaClient;
  let cm: { ac: AbortController; m: ControllerManager } | undefined;
  let n = 0;

  const startControllers = () => {
    const ac = new AbortController();
    const m = startControllerManager({
      kubeconfig: join(kova.dataDir, 'kubeconfigs', 'controller-manager.kubeconfig'), signal: ac.signal, identity: `metering-test-${++n}`,
      leaseDurationS: 2, renewDeadlineS: 1.5, retryPeriodS: 0.2, dataDir: kova.dataDir, log: () => undefined,
    });
    cm = { ac, m };
  };
  const stopControllers = async () => {
    cm?.ac.abort();
    await cm?.m.done;
    cm?.m.client.close();
    cm = undefined;
  };

  const instance = async (ns: string, name: string, flavor: string) => {
    await admin.create(INSTANCES, { metadata: { name, namespace: ns }, spec: { flavor, image: 'tiny', runStrategy: 'Always' } });
    return eventually(async () => {
      const i = await admin.get<Instance>(INSTANCES, ns, name);
      return findCondition(i?.status?.conditions, 'Ready')?.status === 'True' && i!.metadata.finalizers?.includes('kova.dev/metering') && i;
    }, 30_000, `${name} running and metered`);
  };
  const get = (ns: string, name: string) => admin.get<Instance>(INSTANCES, ns, name);
  const stopped = (ns: string, name: string) => eventually(async () => {
    const i = await get(ns, name);
    return i?.status?.phase === 'Stopped' && i;
  }, 30_000, `${name} stopped`);
  const ledger = (ns: string, uid: string) => admin.get<UsageRecord>(USAGE_RECORDS, ns, `instance-${uid}`);
  const closedLedger = async (ns: string, uid: string, intervals: number) => {
    let last: UsageRecord | undefined;
    return eventually(async () => {
      const l = (last = await ledger(ns, uid));
      const iv = l?.spec.intervals ?? [];
      return iv.length === intervals && iv.every((i) => i.end) && l;
    }, 30_000, `ledger of ${uid} closed`).catch((e: Error) => {
      throw new Error(`${e.message}: ${JSON.stringify(last?.spec)}`);
    });
  };
  const usage = (ns: string | undefined, q: Record<string, string> = {}) => admin.request<Usage>({
    method: 'GET', path: ns ? `/apis/metering.kova.dev/v1alpha1/namespaces/${ns}/usage` : '/apis/metering.kova.dev/v1alpha1/usage', query: q,
  });
  // A window around everything the test does, independent of month boundaries.
  const window = () => ({ start: rfc3339(Date.now() - 2 * DAY_MS), end: rfc3339(Date.now() + DAY_MS) });
  const rowOf = (u: Usage, ns: string, name: string) => u.projects.find((p) => p.namespace === ns)?.instances.find((i) => i.name === name);

  before(async () => {
    kova = await startKova(['--driver', 'sim', '--sim-hosts', '1', '--no-controllers']);
    admin = KovaClient.fromFile(kova.kubeconfig);
    for (const ns of ['m1', 'm2']) {
      await admin.create(NAMESPACES, { metadata: { name: ns } });
      await createReadySimImage(admin, ns, 'tiny', kova.dataDir);
    }
    await admin.create(FLAVORS, { metadata: { name: 'small' }, spec: SMALL });
    await admin.create(FLAVORS, { metadata: { name: 'large' }, spec: LARGE });
    startControllers();
  });
  after(async () => {
    await stopControllers();
    admin?.close();
    await kova?.stop();
  });

  it('an instance that ran T seconds on a flavor is T × its resources, exact to the second', async () => {
    const started = await instance('m1', 'a', 'small');
    await new Promise((r) => setTimeout(r, 1100)); // a whole second at least
    await runKova(['stop', 'a', '-n', 'm1', '--kubeconfig', kova.kubeconfig]);
    const off = await stopped('m1', 'a');
    await closedLedger('m1', started.metadata.uid!, 1);
    const t = sec(findCondition(off.status?.conditions, 'Ready')?.lastTransitionTime) - sec(started.status?.startedAt);
    assert.ok(t >= 1, `ran ${t} s`);
    const row = rowOf(await usage('m1', window()), 'm1', 'a')!;
    assert.equal(row.runningSeconds, t);
    assert.equal(row.state, 'Stopped');
    assert.equal(row.flavor, 'small');
    close(row.instanceHours * 3600, t, 'instanceHours');
    close(row.vcpuHours * 3600, t * 1, 'vcpuHours');
    close(row.memoryGiBHours * 3600, t * 0.5, 'memoryGiBHours');
    close(row.diskGiBHours * 3600, t * 2, 'diskGiBHours');
  });

  it('a resize applies from the restart', async () => {
    const first = await instance('m1', 'b', 'small');
    await admin.mergePatch(INSTANCES, 'm1', 'b', { spec: { flavor: 'large' } });
    await eventually(async () => findCondition((await get('m1', 'b'))?.status?.conditions, 'RestartRequired')?.status === 'True', 20_000, 'RestartRequired');
    await new Promise((r) => setTimeout(r, 1100));
    await runKova(['restart', 'b', '-n', 'm1', '--kubeconfig', kova.kubeconfig]);
    const resized = await eventually(async () => {
      const i = await get('m1', 'b');
      return i?.status?.startedAt !== first.status?.startedAt && findCondition(i?.status?.conditions, 'Ready')?.status === 'True' && i;
    }, 30_000, 'restarted');
    await new Promise((r) => setTimeout(r, 1100));
    await runKova(['stop', 'b', '-n', 'm1', '--kubeconfig', kova.kubeconfig]);
    const off = await stopped('m1', 'b');
    const l = await closedLedger('m1', first.metadata.uid!, 2);
    assert.deepEqual(l.spec.intervals!.map((i) => [i.flavor, i.vcpus]), [['small', 1], ['large', 2]]);
    const tSmall = sec(resized.status?.startedAt) - sec(first.status?.startedAt);
    const tLarge = sec(findCondition(off.status?.conditions, 'Ready')?.lastTransitionTime) - sec(resized.status?.startedAt);
    const row = rowOf(await usage('m1', window()), 'm1', 'b')!;
    assert.equal(row.runningSeconds, tSmall + tLarge);
    assert.equal(row.flavor, 'large');
    close(row.vcpuHours * 3600, tSmall * 1 + tLarge * 2, 'vcpuHours');
    close(row.memoryGiBHours * 3600, tSmall * 0.5 + tLarge * 1, 'memoryGiBHours');
    close(row.diskGiBHours * 3600, tSmall * 2 + tLarge * 4, 'diskGiBHours');
  });

  it('stays exact when the controller is down while an instance stops and another is deleted', async () => {
    const c = await instance('m2', 'c', 'small');
    const d = await instance('m2', 'd', 'large');
    await eventually(async () => (await ledger('m2', d.metadata.uid!))?.spec.intervals?.length === 1, 20_000, 'd recorded');
    await new Promise((r) => setTimeout(r, 1100)); // both run a whole second at least
    await stopControllers();
    await admin.mergePatch(INSTANCES, 'm2', 'c', { spec: { runStrategy: 'Halted' } });
    const off = await stopped('m2', 'c');
    await admin.delete(INSTANCES, 'm2', 'd');
    // The agent destroys the guest and drops its finalizer; metering's keeps the object.
    const doomed = await eventually(async () => {
      const i = await get('m2', 'd');
      return !!i?.metadata.deletionTimestamp && i.metadata.finalizers?.join() === 'kova.dev/metering' && i;
    }, 30_000, 'd held by the metering finalizer');
    await new Promise((r) => setTimeout(r, 1100)); // the restart is later than both ends
    startControllers();
    await eventually(async () => !(await get('m2', 'd')), 30_000, 'd deleted once recorded');
    const lc = await closedLedger('m2', c.metadata.uid!, 1).catch(async (e: Error) => {
      throw new Error(`${e.message}\nc was ${JSON.stringify(c.status)}\nc stopped ${JSON.stringify(off.status)}`);
    });
    const ld = await closedLedger('m2', d.metadata.uid!, 1);
    assert.equal(lc.spec.intervals![0]!.end, findCondition(off.status?.conditions, 'Ready')?.lastTransitionTime);
    assert.equal(ld.spec.intervals![0]!.end, doomed.metadata.deletionTimestamp);
    assert.equal(ld.spec.deleted, doomed.metadata.deletionTimestamp);
    const u = await usage('m2', window());
    const td = sec(doomed.metadata.deletionTimestamp) - sec(d.status?.startedAt);
    const rd = rowOf(u, 'm2', 'd')!;
    assert.equal(rd.state, 'Deleted');
    assert.equal(rd.runningSeconds, td);
    close(rd.vcpuHours * 3600, td * 2, 'vcpuHours of d');
    assert.equal(rowOf(u, 'm2', 'c')!.runningSeconds, sec(lc.spec.intervals![0]!.end) - sec(c.status?.startedAt));
  });

  it('stays exact when the controller is down while an instance stops, starts and stops again (status.powerHistory)', async () => {
    const e = await instance('m2', 'e', 'small');
    await eventually(async () => (await ledger('m2', e.metadata.uid!))?.spec.intervals?.length === 1, 20_000, 'e recorded');
    const historyOf = (i: Instance | undefined) => (i?.status?.powerHistory ?? []).map((h) => [h.running, h.time] as const);
    const transitioned = (running: boolean, count: number) => eventually(async () => {
      const i = await get('m2', 'e');
      const h = historyOf(i);
      const ready = findCondition(i?.status?.conditions, 'Ready')?.status === 'True';
      return h.length === count && h[h.length - 1]![0] === running && ready === running && (running || i?.status?.phase === 'Stopped') && i;
    }, 30_000, `e ${running ? 'running' : 'stopped'} with ${count} transitions`);
    assert.deepEqual(historyOf(e), [[true, e.status?.startedAt]], 'the first start is in the history, at startedAt');
    await new Promise((r) => setTimeout(r, 1100));
    await stopControllers();
    const power = (runStrategy: string) => admin.mergePatch(INSTANCES, 'm2', 'e', { spec: { runStrategy } });
    await power('Halted');
    await transitioned(false, 2);
    await new Promise((r) => setTimeout(r, 1100)); // a stopped gap of a whole second at least
    await power('Always');
    await transitioned(true, 3);
    await new Promise((r) => setTimeout(r, 1100));
    await power('Halted');
    const off = await transitioned(false, 4);
    const h = historyOf(off).map(([, t]) => sec(t));
    assert.equal(h[3], sec(findCondition(off.status?.conditions, 'Ready')?.lastTransitionTime), 'the same time as the Ready condition');
    assert.equal(h[2], sec(off.status?.startedAt), 'the same time as startedAt');
    startControllers();
    const l = await closedLedger('m2', e.metadata.uid!, 2);
    assert.deepEqual(l.spec.intervals!.map((i) => [sec(i.start), sec(i.end)]), [[h[0], h[1]], [h[2], h[3]]]);
    const ran = (h[1]! - h[0]!) + (h[3]! - h[2]!);
    assert.ok(h[2]! > h[1]!, 'a stopped gap between the runs');
    const row = rowOf(await usage('m2', window()), 'm2', 'e')!;
    assert.equal(row.runningSeconds, ran);
    close(row.vcpuHours * 3600, ran * 1, 'vcpuHours of e');
  });

  it('reads as RBAC allows: a project member reads its own usage, not another project\'s, and cannot write ledgers', async () => {
    const user = await createUser(kova, 'metered', ['--project', 'm1', '--role', 'member']);
    const own = await user.kubectl(['get', '--raw', '/apis/metering.kova.dev/v1alpha1/namespaces/m1/usage']);
    assert.equal(own.code, 0, own.stderr);
    assert.equal((JSON.parse(own.stdout) as Usage).kind, 'Usage');
    for (const path of ['/apis/metering.kova.dev/v1alpha1/namespaces/m2/usage', '/apis/metering.kova.dev/v1alpha1/usage']) {
      const r = await user.kubectl(['get', '--raw', path]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /forbidden|Forbidden/, path);
    }
    const forged = await user.kubectl(['create', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'metering.kova.dev/v1alpha1', kind: 'UsageRecord', metadata: { name: 'forged', namespace: 'm1' }, spec: {} }),
    });
    assert.notEqual(forged.code, 0);
    assert.match(forged.stderr, /forbidden/i);
  });

  it('refuses bad windows with a 400 naming the parameter; discovery and kubectl see the resource', async () => {
    for (const [q, param] of [[{ start: 'yesterday' }, 'start'], [{ end: '2026-13-01T00:00:00Z' }, 'end'], [{ start: '2026-05-02T00:00:00Z', end: '2026-05-01T00:00:00Z' }, 'start']] as const) {
      const e = await usage('m1', q).then(() => undefined, (x: unknown) => x);
      assert.ok(e instanceof StatusError && e.code === 400, `${JSON.stringify(q)}: ${e}`);
      assert.match(e.message, new RegExp(`^${param}: `));
    }
    const resources = await kova.k(['api-resources', '--api-group=metering.kova.dev', '-o', 'name']);
    assert.deepEqual(resources.trim().split('\n').sort(), ['usage.metering.kova.dev', 'usagerecords.metering.kova.dev']);
    const all = JSON.parse(await kova.k(['get', '--raw', '/apis/metering.kova.dev/v1alpha1/usage'])) as Usage;
    assert.ok(all.projects.some((p) => p.namespace === 'm1') || all.totals.instanceHours >= 0);
  });

  it('`kova usage -o json` prints the Usage the API answers', async () => {
    const w = window();
    const out = await new Promise<string>((resolve, reject) => execFile(process.execPath, ['--input-type=module', '-e',
      `const m = await import(${JSON.stringify(USAGE_CLI)}); await m.usageCommand(process.argv.slice(1));`,
      '--', '-n', 'm1', '--start', w.start, '--end', w.end, '-o', 'json', '--kubeconfig', kova.kubeconfig,
    ], (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout))));
    const cli = JSON.parse(out) as Usage;
    const api = await usage('m1', w);
    assert.equal(cli.kind, 'Usage');
    assert.deepEqual(cli.projects.map((p) => p.instances.map((i) => [i.name, i.runningSeconds])), api.projects.map((p) => p.instances.map((i) => [i.name, i.runningSeconds])));
    assert.ok(cli.totals.vcpuHours > 0);
  });

  it('compacts a past day into period records with the same totals and drops the finished ledger', async () => {
    const day = dayStart(Date.now()) - 3 * DAY_MS;
    const t = (h: number) => rfc3339(day + h * 3_600_000);
    // A deleted instance's ledger spanning two past days (as the meter writes it, by the admin here).
    await admin.create(USAGE_RECORDS, {
      metadata: { name: 'instance-compact-me', namespace: 'm2', labels: { 'metering.kova.dev/type': 'ledger' } },
      spec: {
        subject: { kind: 'Instance', name: 'old', uid: 'compact-me' },
        intervals: [{ start: t(22), end: t(27), flavor: 'small', vcpus: 1, memoryBytes: GIB / 2, diskBytes: 2 * GIB }, { start: t(29), end: t(30), flavor: 'large', vcpus: 2, memoryBytes: GIB, diskBytes: 4 * GIB }],
        deleted: t(30),
      },
    });
    const q = { start: rfc3339(day - DAY_MS), end: rfc3339(Date.now() + DAY_MS) };
    // The compactor may act at once: the expected value comes from the intervals themselves.
    await eventually(async () => !(await admin.get(USAGE_RECORDS, 'm2', 'instance-compact-me')), 30_000, 'the ledger folded and deleted');
    const periods = (await admin.list<UsageRecord>(USAGE_RECORDS, 'm2', { labelSelector: 'metering.kova.dev/type=period' })).items;
    const mine = periods.filter((p) => p.spec.rows?.some((r) => r.uid === 'compact-me'));
    assert.deepEqual(mine.map((p) => p.spec.period?.start).sort(), [rfc3339(day), rfc3339(day + DAY_MS)]);
    const row = rowOf(await usage('m2', q), 'm2', 'old')!;
    assert.equal(row.runningSeconds, 6 * 3600);
    close(row.vcpuHours, 5 * 1 + 1 * 2, 'vcpuHours after compaction');
    close(row.memoryGiBHours, 5 * 0.5 + 1 * 1, 'memoryGiBHours after compaction');
    // A window inside the first day counts that day's part only.
    const firstDay = rowOf(await usage('m2', { start: rfc3339(day), end: rfc3339(day + DAY_MS) }), 'm2', 'old')!;
    assert.equal(firstDay.runningSeconds, 2 * 3600);
  });
  it('meters a volume from creation to deletion at its size', async () => {
    await admin.create(VOLUME_TYPES, { metadata: { name: 'local' }, spec: { backend: 'local' } });
    const v = await admin.create<Volume>(VOLUMES, { metadata: { name: 'data', namespace: 'm2' }, spec: { size: '2Gi', volumeType: 'local' } });
    await eventually(async () => (await admin.get<Volume>(VOLUMES, 'm2', 'data'))?.metadata.finalizers?.includes('kova.dev/metering'), 20_000, 'volume metered');
    await new Promise((r) => setTimeout(r, 1100));
    await admin.delete(VOLUMES, 'm2', 'data');
    await eventually(async () => !(await admin.get(VOLUMES, 'm2', 'data')), 30_000, 'volume deleted');
    const l = (await admin.get<UsageRecord>(USAGE_RECORDS, 'm2', `volume-${v.metadata.uid}`))!;
    const t = sec(l.spec.deleted) - sec(v.metadata.creationTimestamp);
    assert.ok(t >= 1);
    const row = (await usage('m2', window())).projects.find((p) => p.namespace === 'm2')!.volumes.find((x) => x.name === 'data')!;
    assert.equal(row.seconds, t);
    assert.equal(row.state, 'Deleted');
    close(row.volumeGiBHours * 3600, t * 2, 'volumeGiBHours');
  });

  it('a project with metered objects is deleted (the finalizers do not hold it)', async () => {
    await instance('m1', 'last', 'small');
    await admin.delete(NAMESPACES, undefined, 'm1');
    await eventually(async () => !(await admin.get(NAMESPACES, undefined, 'm1')), 60_000, 'namespace m1 gone');
  });
});
