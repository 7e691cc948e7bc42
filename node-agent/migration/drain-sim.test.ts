// Host maintenance with the real maintenance and migration controllers (a real `kova up
// --no-agents`) and three sim agents in this process: a drained host ends with no instance on
// it, running ones still Running and the stopped one still Stopped elsewhere, at most 2
// migrations out of it at a time; an instance pinned to it is listed in Drained with its
// reason while the others move; `kova drain HOST --wait` and uncordon.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Host, Instance, Migration } from '../../api/kinds/index.js';
import { MIGRATIONS, migrationFinished } from '../../api/kinds/index.js';
import { findCondition } from '../../api/conditions.js';
import { HOSTS, INSTANCES } from '../../client/client.js';
import type { KovaClient } from '../../client/client.js';
import { DRAIN_HOST_LABEL, MAINTENANCE_CORDON_ANNOTATION } from '../../controllers/host/maintenance.js';
import { eventually, runKova } from '../../e2e/harness.js';
import type { Kova } from '../../e2e/harness.js';
import { startSimCloud } from '../../e2e/sim-cloud.js';
import type { SimCloud } from '../../e2e/sim-cloud.js';
import type { SimAgents } from '../run.js';
import { domainName } from '../driver.js';

const NS = 'drainsim';
const HOST_NAMES = ['drain-0', 'drain-1', 'drain-2'];
const PIN = { 'example.com/only-here': 'yes' };

describe('host maintenance on simulated hosts', () => {
  let cloud: SimCloud;
  let kova: Kova;
  let client: KovaClient;
  let sims: SimAgents;

  const inst = async (name: string) => (await client.get<Instance>(INSTANCES, NS, name))!;
  const host = async (name: string) => (await client.get<Host>(HOSTS, undefined, name))!;
  const drained = async (name: string) => findCondition((await host(name)).status?.conditions, 'Drained');
  const driverOf = (h: string) => sims.drivers[HOST_NAMES.indexOf(h)];
  const phaseIs = async (name: string, phase: string) => {
    await eventually(async () => (await inst(name)).status?.phase === phase, 20_000, `${name} ${phase}`);
  };
  const create = async (name: string, spec: Record<string, unknown>) => {
    await client.create(INSTANCES, { metadata: { name, namespace: NS }, spec: { flavor: 'drainsim.small', image: 'tiny', ...spec } });
    await phaseIs(name, 'Running');
  };
  /** Samples the unfinished Migrations out of `source` until stopped; returns the most seen at once. */
  const watchConcurrency = (source: string) => {
    let max = 0;
    let on = true;
    const done = (async () => {
      while (on) {
        const items = (await client.list<Migration>(MIGRATIONS, NS)).items;
        max = Math.max(max, items.filter((m) => m.metadata.labels?.[DRAIN_HOST_LABEL] === source && !migrationFinished(m)).length);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    return async () => {
      on = false;
      await done;
      return max;
    };
  };

  before(async () => {
    // 1.5 s a transfer: two at once are seen, and the third waits for a slot.
    cloud = await startSimCloud({ namespace: NS, prefix: 'drain-', labels: (i) => (i === 0 ? PIN : {}), driverOptions: { migrateMs: 1500 }, flavors: { 'drainsim.small': { vcpus: 1, memory: '256Mi', disk: '1Gi' } } });
    ({ kova, client, sims } = cloud);
  });

  after(() => cloud?.stop());

  it('drains a host with Host.spec.maintenance: the others move (2 at a time), the pinned one is listed with its reason; uncordon', async () => {
    for (const n of ['a', 'b', 'c']) await create(n, { hostName: 'drain-0' });
    await create('pinned', { nodeSelector: PIN });
    await client.mergePatch(INSTANCES, NS, 'c', { spec: { runStrategy: 'Halted' } });
    await phaseIs('c', 'Stopped');
    for (const n of ['a', 'b', 'c', 'pinned']) assert.equal((await inst(n)).status?.hostName, 'drain-0', n);
    const uids = new Map<string, string>();
    for (const n of ['a', 'b', 'c']) uids.set(n, (await inst(n)).metadata.uid!);

    const concurrency = watchConcurrency('drain-0');
    await client.mergePatch(HOSTS, undefined, 'drain-0', { spec: { maintenance: true } });
    // The three move; the pinned one cannot, and Drained says why.
    const stuck = await eventually(async () => {
      const c = await drained('drain-0');
      return c?.message?.startsWith('1 instance left on host drain-0') && /cannot move: drainsim\/pinned: Unschedulable: /.test(c.message) && c;
    }, 30_000, 'Drained lists only the pinned instance');
    const max = await concurrency();
    assert.equal(stuck.status, 'False');
    assert.equal(stuck.reason, 'MigrationsFailed');
    assert.match(stuck.message!, /0\/3 hosts available: 2 didn't match node selector, 1 is the source host/);
    assert.equal(max, 2, 'at most two migrations out of drain-0 at a time, and the limit was reached');
    const h = await host('drain-0');
    assert.equal(h.spec?.unschedulable, true);
    assert.equal(h.metadata.annotations?.[MAINTENANCE_CORDON_ANNOTATION], 'true');

    for (const [n, phase] of [['a', 'Running'], ['b', 'Running'], ['c', 'Stopped']] as const) {
      await phaseIs(n, phase);
      const i = await inst(n);
      assert.notEqual(i.status?.hostName, 'drain-0', `${n} left drain-0`);
      assert.equal(i.metadata.uid, uids.get(n), `${n} is the same instance`);
      const dom = domainName(NS, n, i.metadata.uid!);
      assert.ok((await driverOf(i.status!.hostName!).listDomains()).some((d) => d.id === dom && d.state === (phase === 'Running' ? 'Running' : 'Shutdown')), `${n}'s domain is on ${i.status!.hostName}`);
      assert.ok(!(await driverOf('drain-0').listDomains()).some((d) => d.id === dom), `${n}'s domain left drain-0`);
    }
    const migs = (await client.list<Migration>(MIGRATIONS, NS)).items.filter((m) => m.metadata.labels?.[DRAIN_HOST_LABEL] === 'drain-0');
    for (const n of ['a', 'b', 'c']) {
      const mine = migs.filter((m) => m.spec.instance === n);
      assert.deepEqual(mine.map((m) => m.status?.phase), ['Succeeded'], `one Migration of ${n}, Succeeded`);
      assert.equal(mine[0].status?.mode, n === 'c' ? 'Cold' : 'Live');
    }
    assert.ok(migs.filter((m) => m.spec.instance === 'pinned').every((m) => m.status?.phase === 'Failed'));

    // The pinned instance goes (its owner deletes it): drained.
    await client.delete(INSTANCES, NS, 'pinned');
    const done = await eventually(async () => {
      const c = await drained('drain-0');
      return c?.status === 'True' && c;
    }, 20_000, 'Drained=True');
    assert.equal(done.message, 'no instances left on host drain-0');
    assert.equal((await driverOf('drain-0').listDomains()).length, 0, 'nothing left on the drained host');

    await client.mergePatch(HOSTS, undefined, 'drain-0', { spec: { maintenance: false } });
    const back = await eventually(async () => {
      const x = await host('drain-0');
      return x.spec?.unschedulable === false && !findCondition(x.status?.conditions, 'Drained') && x;
    }, 10_000, 'drain-0 uncordoned');
    assert.equal(back.metadata.annotations?.[MAINTENANCE_CORDON_ANNOTATION], undefined);
  });

  it('kova drain HOST --wait returns once the host is empty; kova uncordon', async () => {
    const hosts = await Promise.all(['a', 'b', 'c'].map(async (n) => (await inst(n)).status!.hostName!));
    const busiest = ['drain-1', 'drain-2'].sort((x, y) => hosts.filter((h) => h === y).length - hosts.filter((h) => h === x).length)[0];
    const leaving = ['a', 'b', 'c'].filter((_, i) => hosts[i] === busiest);
    assert.ok(leaving.length > 0);
    const out = await runKova(['drain', busiest, '--wait', '--timeout', '30s', '--kubeconfig', kova.kubeconfig], 40_000);
    assert.match(out, new RegExp(`^kova: host ${busiest}: drained: no instances left on host ${busiest}$`, 'm'));
    for (const n of leaving) {
      const i = await inst(n);
      assert.notEqual(i.status?.hostName, busiest);
      await phaseIs(n, n === 'c' ? 'Stopped' : 'Running');
    }
    assert.equal((await driverOf(busiest).listDomains()).length, 0);
    assert.match(await runKova(['uncordon', busiest, '--kubeconfig', kova.kubeconfig]), new RegExp(`^kova: host ${busiest}: schedulable, maintenance off`, 'm'));
    await eventually(async () => (await host(busiest)).spec?.unschedulable === false && !findCondition((await host(busiest)).status?.conditions, 'Drained'), 10_000, 'uncordoned');
  });
});
