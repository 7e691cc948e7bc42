// npm run bench:metrics — the cost of one /metrics scrape of a node agent with 100 running sim
// instances: a fresh `kova up --no-agents --no-controllers` (etcd, API server), one sim agent in
// this process with N instances bound and Running, then `exposition()` of the process registry
// (what /metrics serves) timed over --scrapes scrapes, each reading the driver's stats afresh
// (the agent's 1 s stats cache is off). Baselines measured in the same run: the exposition of
// the same number of plain prom-client series set directly in a registry of their own (what
// prom-client costs without kova), and the driver's instanceStats() call alone. Goal: a scrape
// of 100 instances under 50 ms. The last output line is one JSON object.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { INSTANCES, KovaClient } from '../client/client.js';
import { eventually, startKova } from '../e2e/harness.js';
import { exposition, promClient } from '../lib/metrics.js';
import { NodeAgent } from '../node-agent/agent.js';
import { SimDriver } from '../node-agent/sim-driver.js';
import { createReadySimImage } from '../node-agent/sim-image.js';
import { median, pct, round } from './common.js';

const { values } = parseArgs({ options: { instances: { type: 'string', default: '100' }, scrapes: { type: 'string', default: '200' } } });
const N = Math.max(1, Number(values.instances));
const SCRAPES = Math.max(10, Number(values.scrapes));
const NS = 'bench-metrics';
const HOST = 'bench-metrics-0';
const log = (m: string) => process.stderr.write(`bench:metrics: ${m}\n`);

/** Times `fn` `n` times after n/10 warm-up runs; milliseconds. */
async function timed(n: number, fn: () => Promise<unknown>): Promise<number[]> {
  for (let i = 0; i < Math.ceil(n / 10); i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return out;
}

/** The same series kova exports per instance (8 usage + info) and per host, as plain gauges in a registry of their own. */
function plainRegistry(n: number): promClient.Registry {
  const registry = new promClient.Registry();
  const names = ['cpu', 'rd_bytes', 'wr_bytes', 'rd_reqs', 'wr_reqs', 'rx', 'tx', 'rss'];
  for (const name of names) {
    const g = new promClient.Gauge({ name: `baseline_${name}`, help: name, labelNames: ['namespace', 'name', 'host'], registers: [registry] });
    for (let i = 0; i < n; i++) g.set({ namespace: NS, name: `vm-${i}`, host: HOST }, i * 1000.5);
  }
  const info = new promClient.Gauge({ name: 'baseline_info', help: 'info', labelNames: ['namespace', 'name', 'host', 'flavor', 'phase'], registers: [registry] });
  for (let i = 0; i < n; i++) info.set({ namespace: NS, name: `vm-${i}`, host: HOST, flavor: 'bench.tiny', phase: 'Running' }, 1);
  return registry;
}

async function main(): Promise<void> {
  const kova = await startKova(['--no-agents', '--no-controllers']);
  const client = KovaClient.fromFile(kova.kubeconfig, { fieldManager: 'bench-metrics', maxSockets: 32 });
  const stop = new AbortController();
  const driver = new SimDriver({ spawnMs: 1, preset: 'large' });
  const agent = new NodeAgent({ client, hostName: HOST, driver, log: () => {}, metricsCacheMs: 0 });
  const imageDir = await mkdtemp(join(tmpdir(), 'kova-bench-metrics-'));
  try {
    await agent.start(stop.signal);
    await kova.k(['create', 'namespace', NS]);
    await kova.k(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: { name: 'bench.tiny' }, spec: { vcpus: 1, memory: '64Mi', disk: '1Gi' } }) });
    await createReadySimImage(client, NS, 'tiny', imageDir);
    const names = Array.from({ length: N }, (_, i) => `vm-${i}`);
    for (let i = 0; i < N; i += 20) {
      await Promise.all(names.slice(i, i + 20).map(async (name) => {
        await client.create(INSTANCES, { metadata: { name, namespace: NS }, spec: { flavor: 'bench.tiny', image: 'tiny' } });
        await client.bind(NS, name, HOST, { vcpus: 1, memory: '64Mi', disk: '1Gi' });
      }));
    }
    await eventually(async () => (await client.list(INSTANCES, NS, { fieldSelector: 'status.phase=Running' })).items.length === N, 60_000, `all ${N} Running`);
    await eventually(async () => agent.informerSize() === N || undefined, 10_000, 'the agent sees them all');
    const body = (await exposition()).body;
    const cpuSeries = body.split('\n').filter((l) => l.startsWith('kova_vmi_cpu_usage_seconds_total{')).length;
    if (cpuSeries !== N) throw new Error(`expected ${N} kova_vmi_cpu_usage_seconds_total series, got ${cpuSeries}`);
    log(`${N} instances Running on ${HOST}; exposition ${body.length} bytes; ${SCRAPES} scrapes`);

    const scrape = await timed(SCRAPES, exposition);
    const plain = plainRegistry(N);
    const baseline = await timed(SCRAPES, () => plain.metrics());
    const stats = await timed(SCRAPES, () => driver.instanceStats());
    const p50 = median(scrape);
    const baseP50 = median(baseline);
    const result = {
      instances: N,
      scrapes: SCRAPES,
      scrape_ms_p50: round(p50, 2),
      scrape_ms_p99: round(pct(scrape, 99), 2),
      scrape_bytes: body.length,
      baseline_plain_gauges_ms_p50: round(baseP50, 2),
      baseline_driver_stats_ms_p50: round(median(stats), 3),
      ratio_scrape_to_plain: round(p50 / baseP50, 2),
      goal_scrape_ms: 50,
      ok: pct(scrape, 99) < 50,
    };
    log(`scrape p50 ${result.scrape_ms_p50} ms, p99 ${result.scrape_ms_p99} ms; plain gauges p50 ${result.baseline_plain_gauges_ms_p50} ms; driver stats p50 ${result.baseline_driver_stats_ms_p50} ms`);
    console.log(JSON.stringify(result));
  } finally {
    stop.abort();
    await agent.done();
    client.close();
    await kova.stop();
    await rm(imageDir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
