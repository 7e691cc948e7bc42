// Network bytes in usage metering end to end: a real `kova up --no-agents --no-controllers` (etcd,
// API server), the controller manager and a sim agent in this process with a 1 s publish
// interval. The expected bytes come from the objects (the status's cumulative counts, the
// ledger's checkpoints), never from the test's clock.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { findCondition } from '../api/conditions.js';
import type { Instance, InstanceNetworkUsage, UsageRecord } from '../api/kinds/index.js';
import { NETWORKS, USAGE_RECORDS } from '../api/kinds/index.js';
import type { Usage } from '../api/metering.js';
import { DAY_MS, rfc3339 } from '../api/metering.js';
import { FLAVORS, INSTANCES, KovaClient, NAMESPACES } from '../client/client.js';
import { usageTable } from '../cli/usage.js';
import { startControllerManager } from '../controllers/manager.js';
import type { ControllerManager } from '../controllers/manager.js';
import { NodeAgent } from '../node-agent/agent.js';
import { SimDriver } from '../node-agent/sim-driver.js';
import { createReadySimImage } from '../node-agent/sim-image.js';
import { eventually, startKova } from './harness.js';
import type { Kova } from './harness.js';

const NS = 'netm';
const HOST = 'net-a';

describe('metering: network bytes', () => {
  let kova: Kova;
  let admin: KovaClient;
  let cm: { ac: AbortController; m: ControllerManager } | undefined;
  let agent: { a: NodeAgent; ac: AbortController } | undefined;
  const driver = new SimDriver({ spawnMs: 10, stopMs: 10, id: HOST });
  /** Every networkUsage the test saw, in order: they must never go down. */
  const seen: InstanceNetworkUsage[] = [];

  const startAgent = async () => {
    const ac = new AbortController();
    const a = new NodeAgent({ client: admin, hostName: HOST, driver, heartbeatS: 1, networkUsageIntervalS: 1, log: () => undefined });
    await a.start(ac.signal);
    agent = { a, ac };
  };
  const stopAgent = async () => {
    agent?.ac.abort();
    await agent?.a.done();
    agent = undefined;
  };
  const get = async () => {
    const i = (await admin.get<Instance>(INSTANCES, NS, 'vm'))!;
    const u = i.status?.networkUsage;
    if (u) seen.push(u);
    return i;
  };
  const running = () => eventually(async () => {
    const i = await get();
    return findCondition(i.status?.conditions, 'Ready')?.status === 'True' && i;
  }, 30_000, 'vm running');
  /** Waits until the status counts pass `than` (both directions). */
  const grown = (than: InstanceNetworkUsage | undefined) => eventually(async () => {
    const u = (await get()).status?.networkUsage;
    return u && u.receiveBytes > (than?.receiveBytes ?? 0) && u.transmitBytes > (than?.transmitBytes ?? 0) && u;
  }, 30_000, `network usage above ${JSON.stringify(than)}`);
  const usage = (q: Record<string, string>) => admin.request<Usage>({ method: 'GET', path: `/apis/metering.kova.dev/v1alpha1/namespaces/${NS}/usage`, query: q });
  const row = (u: Usage) => u.projects.find((p) => p.namespace === NS)?.instances.find((i) => i.name === 'vm');
  const sec = (t: string | undefined) => Date.parse(t!) / 1000;
  /** The sim's rates per NIC (sim-driver.ts SIM_USAGE), one NIC here. */
  const RX_PER_S = 2048;

  before(async () => {
    kova = await startKova(['--no-agents', '--no-controllers']);
    admin = KovaClient.fromFile(kova.kubeconfig, { fieldManager: 'metering-network-test' });
    const ac = new AbortController();
    const m = startControllerManager({
      kubeconfig: kova.kubeconfig, signal: ac.signal, identity: 'metering-network-test',
      leaseDurationS: 2, renewDeadlineS: 1.5, retryPeriodS: 0.2, dataDir: kova.dataDir, log: () => undefined,
    });
    cm = { ac, m };
    await startAgent();
    await admin.create(NAMESPACES, { metadata: { name: NS } });
    await createReadySimImage(admin, NS, 'tiny', kova.dataDir);
    await admin.create(FLAVORS, { metadata: { name: 'net.small' }, spec: { vcpus: 1, memory: '512Mi', disk: '2Gi' } });
    await admin.create(NETWORKS, { metadata: { name: 'private', namespace: NS }, spec: { type: 'vxlan', cidr: '10.44.0.0/24' } });
  });
  after(async () => {
    await stopAgent();
    cm?.ac.abort();
    await cm?.m.done;
    cm?.m.client.close();
    admin?.close();
    await kova?.stop();
  });

  it('publishes growing counts, keeps them monotonic over an agent restart and a stop/start, and the usage API interpolates them', async () => {
    await admin.create(INSTANCES, { metadata: { name: 'vm', namespace: NS }, spec: { flavor: 'net.small', image: 'tiny', runStrategy: 'Always', networks: [{ network: 'private' }] } });
    const first = await running();
    const u1 = await grown(undefined);
    // Eight seconds of traffic at least, so counting the live counters twice shows.
    const u2 = await grown({ ...u1, receiveBytes: Math.max(u1.receiveBytes, 8 * RX_PER_S) });

    // An agent restart: the domain keeps running and its counters go on; they are not counted twice.
    await stopAgent();
    await startAgent();
    const u3 = await grown(u2);
    const sinceS = sec(u3.observedAt) - sec(u2.observedAt);
    assert.ok(u3.receiveBytes - u2.receiveBytes <= (sinceS + 2) * RX_PER_S, `${u3.receiveBytes - u2.receiveBytes} bytes more in ${sinceS} s across the restart: counted twice? (${JSON.stringify([u2, u3])})`);

    // A stop and a start: the domain's counters restart from zero, the totals do not.
    await admin.mergePatch(INSTANCES, NS, 'vm', { spec: { runStrategy: 'Halted' } });
    await eventually(async () => (await get()).status?.phase === 'Stopped', 30_000, 'vm stopped');
    await admin.mergePatch(INSTANCES, NS, 'vm', { spec: { runStrategy: 'Always' } });
    await running();
    const restarted = (await get()).status?.networkUsage;
    await grown(restarted);
    assert.ok(first.status?.startedAt !== (await get()).status?.startedAt, 'a new run');
    // Stop for good; the last counts reach the ledger.
    await admin.mergePatch(INSTANCES, NS, 'vm', { spec: { runStrategy: 'Halted' } });
    const off = await eventually(async () => {
      const i = await get();
      return i.status?.phase === 'Stopped' && i;
    }, 30_000, 'vm stopped again');
    for (let k = 1; k < seen.length; k++) {
      assert.ok(seen[k]!.receiveBytes >= seen[k - 1]!.receiveBytes && seen[k]!.transmitBytes >= seen[k - 1]!.transmitBytes, `went down: ${JSON.stringify(seen[k - 1])} → ${JSON.stringify(seen[k])}`);
    }
    const final = await eventually(async () => {
      const u = (await get()).status?.networkUsage;
      const l = await admin.get<UsageRecord>(USAGE_RECORDS, NS, `instance-${off.metadata.uid}`);
      const last = l?.spec.network?.at(-1);
      // Settled: the agent's last publish (the counts as the guest went) is the ledger's last checkpoint.
      await new Promise((r) => setTimeout(r, 1500));
      const again = (await get()).status?.networkUsage;
      return u && last && again?.observedAt === u.observedAt && last.time === u.observedAt && last.receiveBytes === u.receiveBytes && { u, l: l! };
    }, 30_000, 'the ledger holds the final counts');
    assert.ok(final.u.receiveBytes > u3.receiveBytes);

    // The whole life: exactly the cumulative counts of the status.
    const whole = { start: rfc3339(Date.now() - DAY_MS), end: rfc3339(Date.now() + DAY_MS) };
    const all = row(await usage(whole))!;
    assert.equal(all.networkReceiveBytes, final.u.receiveBytes);
    assert.equal(all.networkTransmitBytes, final.u.transmitBytes);
    const totals = (await usage(whole)).totals;
    assert.equal(totals.networkReceiveBytes, final.u.receiveBytes);
    assert.match(usageTable(await usage(whole)), new RegExp(`NET RX MiB[\\s\\S]*${(final.u.receiveBytes / 2 ** 20).toFixed(2)}`));

    // Half of it: between the values of the checkpoints around the middle, and the halves add up.
    const points = final.l.spec.network!;
    assert.ok(points.length >= 2, JSON.stringify(points));
    const t0 = Date.parse(first.status!.startedAt!);
    const mid = Math.round((t0 + Date.parse(points.at(-1)!.time)) / 2000) * 1000;
    const firstHalf = row(await usage({ start: whole.start, end: rfc3339(mid) }))!;
    const secondHalf = row(await usage({ start: rfc3339(mid), end: whole.end }))!;
    const below = [...points].reverse().find((p) => Date.parse(p.time) <= mid);
    const above = points.find((p) => Date.parse(p.time) >= mid)!;
    assert.ok(firstHalf.networkReceiveBytes >= (below?.receiveBytes ?? 0) && firstHalf.networkReceiveBytes <= above.receiveBytes,
      `${firstHalf.networkReceiveBytes} not within the checkpoints around the middle ${JSON.stringify([below, above])}`);
    assert.ok(firstHalf.networkReceiveBytes > 0 && firstHalf.networkReceiveBytes < final.u.receiveBytes);
    assert.ok(Math.abs(firstHalf.networkReceiveBytes + secondHalf.networkReceiveBytes - final.u.receiveBytes) <= 1);
  });

  it('an instance that stops is read before its emulator goes, and only it is published then', async () => {
    // A publish interval longer than the test: only the early read at the stop can publish, and
    // a guest that takes two seconds to shut down leaves it time to.
    await stopAgent();
    const slow = new SimDriver({ spawnMs: 10, stopMs: 2000, id: HOST });
    const ac = new AbortController();
    const a = new NodeAgent({ client: admin, hostName: HOST, driver: slow, heartbeatS: 1, networkUsageIntervalS: 3600, log: () => undefined });
    await a.start(ac.signal);
    agent = { a, ac };
    for (const name of ['quiet', 'leaver']) {
      await admin.create(INSTANCES, { metadata: { name, namespace: NS }, spec: { flavor: 'net.small', image: 'tiny', runStrategy: 'Always', networks: [{ network: 'private' }] } });
    }
    const inst = async (name: string) => (await admin.get<Instance>(INSTANCES, NS, name))!;
    for (const name of ['quiet', 'leaver']) {
      await eventually(async () => findCondition((await inst(name)).status?.conditions, 'Ready')?.status === 'True', 30_000, `${name} running`);
    }
    await new Promise((r) => setTimeout(r, 2000)); // some traffic on both
    await admin.mergePatch(INSTANCES, NS, 'leaver', { spec: { runStrategy: 'Halted' } });
    const published = await eventually(async () => (await inst('leaver')).status?.networkUsage, 30_000, 'the leaving instance\'s counts');
    assert.ok(published.receiveBytes > 0);
    await eventually(async () => (await inst('leaver')).status?.phase === 'Stopped', 30_000, 'leaver stopped');
    assert.equal((await inst('quiet')).status?.networkUsage, undefined, 'the other instance waits for the interval');
  });

  it('a deleted instance\'s last counts go with its Terminating status and reach its ledger', async () => {
    // The agent of the test above publishes once an hour: only the deletion can publish here.
    await admin.create(INSTANCES, { metadata: { name: 'doomed', namespace: NS }, spec: { flavor: 'net.small', image: 'tiny', runStrategy: 'Always', networks: [{ network: 'private' }] } });
    const before = await eventually(async () => {
      const i = (await admin.get<Instance>(INSTANCES, NS, 'doomed'))!;
      return findCondition(i.status?.conditions, 'Ready')?.status === 'True' && i;
    }, 30_000, 'doomed running');
    await new Promise((r) => setTimeout(r, 2000)); // two seconds of traffic at least
    assert.equal(before.status?.networkUsage, undefined);
    await admin.delete(INSTANCES, NS, 'doomed');
    const ledger = await eventually(async () => {
      const l = await admin.get<UsageRecord>(USAGE_RECORDS, NS, `instance-${before.metadata.uid}`);
      return l?.spec.deleted && !(await admin.get(INSTANCES, NS, 'doomed')) ? l : undefined;
    }, 30_000, 'the deletion recorded and the instance gone');
    const last = ledger.spec.network?.at(-1);
    assert.ok(last && last.receiveBytes >= 2 * RX_PER_S, `the ledger's last checkpoint holds the counts read at the deletion: ${JSON.stringify(ledger.spec.network)}`);
  });
});
