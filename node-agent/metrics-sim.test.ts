// The node agent's metrics with two sim agents in one process against a real `kova up` (etcd, API
// server): per-instance series with their host's labels, counters that grow, and series that
// leave with their instance or their agent.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { INSTANCES, KovaClient } from '../client/client.js';
import { eventually, startKova } from '../e2e/harness.js';
import type { Kova } from '../e2e/harness.js';
import { exposition } from '../lib/metrics.js';
import { NodeAgent } from './agent.js';
import { timeNetworkPlanApply } from './metrics.js';
import { SimDriver } from './sim-driver.js';
import { createReadySimImage } from './sim-image.js';

const NS = 'metrics-test';
const HOSTS = ['metrics-a', 'metrics-b'];
let kova: Kova;
let client: KovaClient;
let imageDir: string;
const agents = new Map<string, { agent: NodeAgent; stop: AbortController }>();

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of the process's exposition (Prometheus text format; kova's label values have no quotes or escapes). */
async function scrape(): Promise<Sample[]> {
  const { body } = await exposition();
  const out: Sample[] = [];
  for (const line of body.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

const series = (samples: Sample[], name: string, match: Record<string, string>) =>
  samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));

function one(samples: Sample[], name: string, match: Record<string, string>): Sample {
  const found = series(samples, name, match);
  assert.equal(found.length, 1, `${name} ${JSON.stringify(match)}: ${found.length} series`);
  return found[0];
}

const VMI_COUNTERS = [
  'kova_vmi_cpu_usage_seconds_total',
  'kova_vmi_storage_read_traffic_bytes_total',
  'kova_vmi_storage_write_traffic_bytes_total',
  'kova_vmi_storage_iops_read_total',
  'kova_vmi_storage_iops_write_total',
  'kova_vmi_network_receive_bytes_total',
  'kova_vmi_network_transmit_bytes_total',
];

before(async () => {
  kova = await startKova(['--no-agents', '--no-controllers']);
  client = KovaClient.fromFile(kova.kubeconfig, { fieldManager: 'metrics-test' });
  for (const hostName of HOSTS) {
    const stop = new AbortController();
    const agent = new NodeAgent({ client, hostName, driver: new SimDriver({ spawnMs: 10, stopMs: 10 }), heartbeatS: 1, log: () => {} });
    await agent.start(stop.signal);
    agents.set(hostName, { agent, stop });
  }
  await kova.k(['create', 'namespace', NS]);
  await kova.k(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: { name: 'metrics.small' }, spec: { vcpus: 2, memory: '512Mi', disk: '2Gi' } }) });
  imageDir = await mkdtemp(join(tmpdir(), 'kova-metrics-test-'));
  await createReadySimImage(client, NS, 'tiny', imageDir);
  for (const [i, host] of HOSTS.entries()) {
    const name = `vm-${i}`;
    await client.create(INSTANCES, { metadata: { name, namespace: NS }, spec: { flavor: 'metrics.small', image: 'tiny' } });
    await client.bind(NS, name, host, { vcpus: 2, memory: '512Mi', disk: '2Gi' });
  }
  await eventually(async () => (await client.list(INSTANCES, NS, { fieldSelector: 'status.phase=Running' })).items.length === HOSTS.length, 15_000, 'both instances Running');
});

after(async () => {
  for (const { agent, stop } of agents.values()) {
    stop.abort();
    await agent.done();
  }
  client?.close();
  await kova?.stop();
  if (imageDir) await rm(imageDir, { recursive: true, force: true });
});

test('each instance has its usage series, labelled namespace, name and host only, and its info', async () => {
  const s = await scrape();
  for (const [i, host] of HOSTS.entries()) {
    const who = { namespace: NS, name: `vm-${i}` };
    for (const name of [...VMI_COUNTERS, 'kova_vmi_memory_resident_bytes']) {
      const sample = one(s, name, who);
      assert.deepEqual(sample.labels, { ...who, host }, name);
    }
    assert.equal(one(s, 'kova_vmi_memory_resident_bytes', who).value, 256 * 1024 * 1024, 'the sim keeps half of 512Mi resident');
    const info = one(s, 'kova_vmi_info', who);
    assert.deepEqual(info.labels, { ...who, host, flavor: 'metrics.small', phase: 'Running' });
    assert.equal(info.value, 1);
    assert.equal(one(s, 'kova_vmi_phase_count', { host, phase: 'Running' }).value, 1);
    assert.equal(one(s, 'kova_host_capacity', { host, resource: 'vcpus' }).value, 8);
    assert.equal(one(s, 'kova_host_capacity', { host, resource: 'memory' }).value, 32 * 1024 ** 3);
  }
  // The HELP and TYPE of a counter, as Prometheus reads them.
  const { body } = await exposition();
  assert.match(body, /^# TYPE kova_vmi_cpu_usage_seconds_total counter$/m);
  assert.match(body, /^# TYPE kova_vmi_memory_resident_bytes gauge$/m);
});

test('the host allocation follows the bindings (the Host object of the heartbeat)', async () => {
  for (const host of HOSTS) {
    await eventually(async () => {
      const s = await scrape();
      const vcpus = series(s, 'kova_host_allocated', { host, resource: 'vcpus' })[0]?.value;
      const memory = series(s, 'kova_host_allocated', { host, resource: 'memory' })[0]?.value;
      return vcpus === 2 && memory === 512 * 1024 * 1024 ? true : undefined;
    }, 10_000, `${host} allocation in kova_host_allocated`);
  }
});

test('the CPU counter of a running instance grows between scrapes', async () => {
  const who = { namespace: NS, name: 'vm-0', host: HOSTS[0] };
  const first = one(await scrape(), 'kova_vmi_cpu_usage_seconds_total', who).value;
  // Scrapes within a second share one stats read: look again after that.
  const second = await eventually(async () => {
    const v = one(await scrape(), 'kova_vmi_cpu_usage_seconds_total', who).value;
    return v > first ? v : undefined;
  }, 10_000, 'a larger CPU counter');
  assert.ok(second > first);
  const rx = one(await scrape(), 'kova_vmi_storage_read_traffic_bytes_total', who).value;
  assert.ok(rx > 0, 'disk reads grow with running time too');
});

test("a deleted instance's series leave the output", async () => {
  await client.delete(INSTANCES, NS, 'vm-0');
  await eventually(async () => {
    const s = await scrape();
    const left = [...VMI_COUNTERS, 'kova_vmi_memory_resident_bytes', 'kova_vmi_info'].filter((n) => series(s, n, { namespace: NS, name: 'vm-0' }).length);
    return left.length === 0 ? true : undefined;
  }, 15_000, 'no series of vm-0');
  const s = await scrape();
  assert.equal(series(s, 'kova_vmi_phase_count', { host: HOSTS[0] }).length, 0, 'no phases counted on a host without instances');
  assert.equal(one(s, 'kova_vmi_cpu_usage_seconds_total', { namespace: NS, name: 'vm-1' }).labels.host, HOSTS[1], 'the other instance stays');
});

test("stopping an agent removes its host's series, its network apply times included", async () => {
  const b = agents.get(HOSTS[1])!;
  // What the host network agent records around each plan apply.
  timeNetworkPlanApply(HOSTS[1])();
  assert.equal(one(await scrape(), 'kova_network_plan_apply_duration_seconds_count', { host: HOSTS[1] }).value, 1);
  b.stop.abort();
  await b.agent.done();
  agents.delete(HOSTS[1]);
  const s = await scrape();
  assert.deepEqual(s.filter((x) => x.labels.host === HOSTS[1]).map((x) => x.name), []);
  assert.equal(one(s, 'kova_host_capacity', { host: HOSTS[0], resource: 'vcpus' }).value, 8, 'the other agent still reports');
});
