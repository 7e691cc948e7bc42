// Scale benchmark. Default (`--hosts 100 --instances 10000`): one `kova up --driver sim
// --sim-hosts H` (API server, controllers and H simulated hypervisors in one process) on its own
// etcd, and a load generator here that creates M instances and watches them reach Running:
// instances/s from the first create until all run, placements/s, p50/p99 create→Running, the
// control plane's peak RSS, and the raw etcd put rate measured in the same run. `--volumes N`:
// the first N instances each boot with a local volume of their own (created where the
// instance is scheduled), and `volumes_in_use` counts those attached at the end.
//
// `--scheduler-only`: a fresh `kova up` (no node agents) on its own etcd and N Hosts registered
// directly (status with capacity, allocatable and Ready). Placements alone, as kube-scheduler's
// scheduler_perf measures scheduling throughput: a backlog of B instances is created while no
// scheduler runs, then the scheduler starts (kova: a standalone `kova controllers` process;
// in-process: in this process) and `scheduler_placements_per_s` is how fast it places them,
// from its first placement to its last (`scheduler_placements_from_start_per_s` counts from
// its start: process, leader election, cache sync). Then M more instances are created while
// it runs, and `concurrent_placements_per_s` is placements/s from the first create until all
// are placed: on a small machine that is bounded by how fast the same cores create
// instances (`placements_per_create` ≈ 1). The raw etcd put rate of the same etcd is measured
// in the same run. The last output line is one JSON object.
//
//   node dist/bench/scale.js --scheduler-only --hosts 1000 [--backlog 10000] [--instances 5000]
//     [--scheduler kova|in-process] [--workers N] [--weigher spread|pack]
//     [--kubeconfig F --etcd-endpoints URLS]   (a kova already running, with --scheduler in-process)
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Etcd3 } from 'etcd3';
import type { KObject } from '../api/types.js';
import { FLAVORS, IMAGES, INSTANCES, KovaClient, LEASES, NAMESPACES, VOLUME_TYPES, VOLUMES } from '../client/client.js';
import { ANNOTATION_DEFAULT_VOLUME_TYPE } from '../api/kinds/index.js';
import type { Volume } from '../api/kinds/index.js';
import { NO_DEFAULT_QUOTA } from '../controllers/namespace/default-quota.js';
import { writeSimImageFile } from '../node-agent/sim-image.js';
import { Informer } from '../client/informer.js';
import { registerHost } from '../testing/host-fixtures.js';
import { startScheduler } from '../controllers/scheduler/scheduler.js';
import type { WeigherPolicy } from '../controllers/scheduler/weighers.js';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { eventually, KOVA_BIN, startKova } from '../e2e/harness.js';
import { startEtcd } from '../store/etcd-process.js';
import { pct, rate, rawEtcdPutRate, round } from './common.js';

const { values } = parseArgs({
  options: {
    'scheduler-only': { type: 'boolean', default: false },
    hosts: { type: 'string' },
    instances: { type: 'string' },
    /** Where the scheduler runs: in `kova up`'s controllers (default) or in this process. */
    scheduler: { type: 'string', default: 'kova' },
    workers: { type: 'string' },
    weigher: { type: 'string', default: 'spread' },
    concurrency: { type: 'string', default: '32' },
    /** --scheduler-only: instances created before the scheduler starts (default 10000). */
    backlog: { type: 'string' },
    /** Use a running kova (e.g. one under a profiler) instead of starting one; needs its etcd. */
    kubeconfig: { type: 'string' },
    'etcd-endpoints': { type: 'string' },
    /** Full run: the first N instances each boot with a volume of their own (default 0). */
    volumes: { type: 'string', default: '0' },
  },
});
const HOSTS_N = Number(values.hosts ?? (values['scheduler-only'] ? 1000 : 100));
const INSTANCES_N = Number(values.instances ?? (values['scheduler-only'] ? 5000 : 10000));
const CONCURRENCY = Number(values.concurrency);
const VOLUMES_N = Math.min(Number(values.volumes), INSTANCES_N);

const log = (m: string) => process.stderr.write(`bench:scale: ${m}\n`);

/** Waits until some `kova controllers` holds the leader Lease (the scheduler runs only then). */
async function controllersLeading(client: KovaClient, timeoutMs: number): Promise<void> {
  await eventually(async () => ((await client.get(LEASES, 'kova-system', 'kova-controllers'))?.spec as { holderIdentity?: string } | undefined)?.holderIdentity, timeoutMs, 'a leading kova controllers');
}

function instance(name: string, volume?: string) {
  return {
    apiVersion: 'kova.dev/v1alpha1', kind: 'Instance',
    metadata: { name, namespace: 'bench', labels: { app: 'bench' } },
    spec: { flavor: 'm1.small', image: 'tiny', runStrategy: 'Always', ...(volume ? { volumes: [{ volume }] } : {}) },
  };
}

async function schedulerOnly(): Promise<Record<string, number>> {
  const dir = await mkdtemp(join(tmpdir(), 'kova-bench-scale-'));
  const external = values.kubeconfig !== undefined;
  if (external && !values['etcd-endpoints']) throw new Error('--kubeconfig needs --etcd-endpoints (for the raw etcd baseline)');
  const etcd = external ? undefined : await startEtcd({ dataDir: join(dir, 'etcd') });
  const endpoints = etcd?.endpoints ?? values['etcd-endpoints']!.split(',');
  const raw = new Etcd3({ hosts: endpoints });
  if (values.scheduler !== 'kova' && values.scheduler !== 'in-process') throw new Error('--scheduler must be kova or in-process');
  const inProcess = values.scheduler === 'in-process';
  const BACKLOG = Number(values.backlog ?? 10_000);
  if (!Number.isInteger(BACKLOG) || BACKLOG < 100) throw new Error('--backlog must be an integer of at least 100');
  // kova's own scheduler runs in a standalone `kova controllers` process started once the
  // backlog exists (as in a split deployment).
  const splitControllers = !inProcess;
  if (splitControllers && external) throw new Error('--kubeconfig needs --scheduler in-process (the bench starts kova controllers itself)');
  const kova = external ? undefined : await startKova(['--etcd-endpoints', endpoints.join(','), '--no-seed', '--no-agents', '--no-controllers']);
  let controllers: ChildProcess | undefined;
  const client = KovaClient.fromFile(values.kubeconfig ?? kova!.kubeconfig, { maxSockets: 128 });
  const stop = new AbortController();
  try {
    await client.create(NAMESPACES, { metadata: { name: 'bench', annotations: { ...NO_DEFAULT_QUOTA } } });
    // Enough room for every instance with spread or pack: 64 vCPUs, 48Gi per host.
    await client.create(FLAVORS, { metadata: { name: 'm1.small' }, spec: { vcpus: 1, memory: '512Mi', disk: '2Gi' } });
    log(`registering ${HOSTS_N} hosts`);
    const hostRate = await rate(HOSTS_N, CONCURRENCY, (i) =>
      registerHost(client, `h${i}`, { capacity: { vcpus: 4, memory: '32Gi', disk: '400Gi' }, labels: { 'kova.dev/zone': `z${i % 3}` } }),
    );
    log(`${round(hostRate)} hosts/s`);

    // Completion is observed through a watch, as a client would see it.
    const watcher = new Informer(client, INSTANCES, { namespace: 'bench', log });
    const bound = new Set<string>();
    let target = 0;
    let allBound: () => void = () => undefined;
    let firstBoundAt = 0;
    const onInstance = (o: KObject) => {
      if ((o.status as { hostName?: string } | undefined)?.hostName && !bound.has(o.metadata.name!)) {
        bound.add(o.metadata.name!);
        if (bound.size === 1) firstBoundAt = performance.now();
      }
      if (bound.size >= target) allBound();
    };
    const untilBound = (n: number) => {
      target = n;
      const progress = setInterval(() => log(`${bound.size}/${n} placed`), 2000);
      return new Promise<void>((r) => {
        allBound = r;
        if (bound.size >= n) r();
      }).finally(() => clearInterval(progress));
    };
    watcher.on('add', onInstance);
    watcher.on('update', onInstance);
    watcher.start();
    await watcher.waitForSync();

    log(`creating a backlog of ${BACKLOG} instances before the scheduler starts`);
    await rate(BACKLOG, CONCURRENCY, async (i) => {
      await client.create(INSTANCES, instance(`backlog-${i}`));
    });
    log('backlog created; starting the scheduler');
    const tSched = performance.now();
    if (splitControllers) {
      controllers = spawn(process.execPath, [KOVA_BIN, 'controllers', '--kubeconfig', kova!.kubeconfig], { stdio: ['ignore', 'inherit', 'inherit'] });
    }
    let sched: Awaited<ReturnType<typeof startScheduler>> | undefined;
    if (inProcess) {
      sched = await startScheduler({ client, signal: stop.signal, ...(values.workers ? { workers: Number(values.workers) } : {}), weigher: values.weigher as WeigherPolicy, log });
      if (sched.cache.size !== HOSTS_N) throw new Error(`scheduler sees ${sched.cache.size} hosts`);
    }
    await untilBound(BACKLOG);
    const tDone = performance.now();
    const fromStartRate = BACKLOG / ((tDone - tSched) / 1000);
    // Without the scheduler's start-up (process, leader election, cache sync): placements alone.
    const drainRate = (BACKLOG - 1) / ((tDone - firstBoundAt) / 1000);
    log(`backlog placed at ${round(drainRate)}/s from the first placement (${round(fromStartRate)}/s from the scheduler's start)`);

    log(`creating ${INSTANCES_N} instances, concurrency ${CONCURRENCY}`);
    const t0 = performance.now();
    const createRate = await rate(INSTANCES_N, CONCURRENCY, async (i) => {
      await client.create(INSTANCES, instance(`i-${i}`));
    });
    log(`created at ${round(createRate)}/s; waiting for placements (${bound.size - BACKLOG} so far)`);
    await untilBound(BACKLOG + INSTANCES_N);
    const placeRate = INSTANCES_N / ((performance.now() - t0) / 1000);
    watcher.stop();
    log(`placed at ${round(placeRate)}/s`);
    stop.abort();
    await sched?.done;

    // Baseline: instance-sized values put straight into the same etcd, same concurrency.
    const sample = JSON.stringify(instance('x'));
    const n = Math.max(2000, INSTANCES_N);
    log(`raw etcd puts, concurrency ${CONCURRENCY}, n=${n}`);
    const etcdRate = await rawEtcdPutRate(raw, '/bench/scale/', n, CONCURRENCY, sample);
    return {
      hosts: HOSTS_N,
      backlog: BACKLOG,
      scheduler_placements_per_s: round(drainRate),
      scheduler_placements_from_start_per_s: round(fromStartRate),
      etcd_puts_per_s: round(etcdRate),
      placements_per_etcd_put: round(drainRate / etcdRate, 3),
      instances: INSTANCES_N,
      concurrent_placements_per_s: round(placeRate),
      creates_per_s: round(createRate),
      placements_per_create: round(placeRate / createRate, 3),
      hosts_registered_per_s: round(hostRate),
      ...(sched ? { mean_bind_ms: round(sched.stats.bindMs / Math.max(1, sched.stats.bindCalls), 2), bind_conflicts: sched.stats.bindConflicts, unschedulable_attempts: sched.stats.unschedulable, events_dropped: sched.events.stats.dropped } : {}),
    };
  } finally {
    controllers?.kill('SIGTERM');
    stop.abort();
    client.close();
    await kova?.stop();
    raw.close();
    await etcd?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Peak resident set size (VmHWM) of a process and its children (kova up runs controllers and agents as one), in MiB. */
async function peakRssMb(pid: number | undefined): Promise<number> {
  if (!pid) return 0;
  const hwm = async (p: number) => Number(/VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${p}/status`, 'utf8').catch(() => ''))?.[1] ?? 0);
  const children = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '')).split(' ').filter(Boolean).map(Number);
  let kb = await hwm(pid);
  for (const c of children) kb += await hwm(c);
  return round(kb / 1024);
}

async function fullRun(): Promise<Record<string, number>> {
  const dir = await mkdtemp(join(tmpdir(), 'kova-bench-scale-'));
  const etcd = await startEtcd({ dataDir: join(dir, 'etcd') });
  const raw = new Etcd3({ hosts: etcd.endpoints });
  const kova = await startKova(['--etcd-endpoints', etcd.endpoints.join(','), '--no-seed', '--driver', 'sim', '--sim-hosts', String(HOSTS_N)], 300_000);
  const client = KovaClient.fromFile(kova.kubeconfig, { maxSockets: 128, fieldManager: 'bench' });
  try {
    await client.create(NAMESPACES, { metadata: { name: 'bench', annotations: { ...NO_DEFAULT_QUOTA } } });
    // 256Mi: 100 default sim hosts (48Gi allocatable each) hold 10,000 with room to spare.
    await client.create(FLAVORS, { metadata: { name: 'm1.small' }, spec: { vcpus: 1, memory: '256Mi', disk: '2Gi' } });
    log('waiting for the controllers to lead');
    await controllersLeading(client, 60_000);
    // Sim instances wait for a Ready Image like libvirt ones: a small raw file to import.
    const image = await writeSimImageFile(dir);
    await client.create(IMAGES, { metadata: { name: 'tiny', namespace: 'bench' }, spec: { source: { file: { path: image.path } }, format: 'raw' } });
    await eventually(async () => ((await client.get(IMAGES, 'bench', 'tiny'))?.status as { phase?: string } | undefined)?.phase === 'Ready', 60_000, 'Image bench/tiny Ready');

    if (VOLUMES_N > 0) {
      // Local volumes, created where their instance is scheduled (WaitForFirstConsumer).
      await client.create(VOLUME_TYPES, { metadata: { name: 'local', annotations: { [ANNOTATION_DEFAULT_VOLUME_TYPE]: 'true' } }, spec: { backend: 'local' } });
      log(`creating ${VOLUMES_N} volumes`);
      await rate(VOLUMES_N, CONCURRENCY, (i) => client.create(VOLUMES, { metadata: { name: `v-${i}`, namespace: 'bench' }, spec: { size: '1Gi' } }).then(() => undefined));
    }

    const createdAt = new Map<string, number>();
    const latencies: number[] = [];
    const bound = new Set<string>();
    let lastBoundAt = 0;
    let running = 0;
    let allRunning!: () => void;
    const done = new Promise<void>((r) => (allRunning = r));
    const watcher = new Informer(client, INSTANCES, { namespace: 'bench', log });
    const onInstance = (o: KObject) => {
      const name = o.metadata.name!;
      const st = o.status as { hostName?: string; phase?: string } | undefined;
      if (st?.hostName && !bound.has(name)) {
        bound.add(name);
        lastBoundAt = performance.now();
      }
      if (st?.phase === 'Running' && createdAt.has(name)) {
        latencies.push(performance.now() - createdAt.get(name)!);
        createdAt.delete(name); // count each instance once
        if (++running === INSTANCES_N) allRunning();
      }
    };
    watcher.on('add', onInstance);
    watcher.on('update', onInstance);
    watcher.start();
    await watcher.waitForSync();

    log(`creating ${INSTANCES_N} instances on ${HOSTS_N} sim hosts, concurrency ${CONCURRENCY}`);
    const progress = setInterval(() => log(`${bound.size} placed, ${running} running`), 5000);
    const t0 = performance.now();
    const createRate = await rate(INSTANCES_N, CONCURRENCY, async (i) => {
      const name = `i-${i}`;
      createdAt.set(name, performance.now());
      await client.create(INSTANCES, instance(name, i < VOLUMES_N ? `v-${i}` : undefined));
    });
    log(`created at ${round(createRate)}/s`);
    await done;
    const allRunningS = (performance.now() - t0) / 1000;
    clearInterval(progress);
    watcher.stop();
    const rss = await peakRssMb(kova.proc.pid);

    const sample = JSON.stringify(instance('x'));
    const n = Math.max(2000, Math.min(INSTANCES_N, 10_000));
    log(`raw etcd puts, concurrency ${CONCURRENCY}, n=${n}`);
    const etcdRate = await rawEtcdPutRate(raw, '/bench/scale/', n, CONCURRENCY, sample);
    return {
      hosts: HOSTS_N,
      instances: INSTANCES_N,
      all_running_s: round(allRunningS, 2),
      instances_per_s: round(INSTANCES_N / allRunningS),
      scheduler_placements_per_s: round(INSTANCES_N / ((lastBoundAt - t0) / 1000)),
      create_to_running_p50_ms: round(pct(latencies, 50)),
      create_to_running_p99_ms: round(pct(latencies, 99)),
      control_plane_peak_rss_mb: rss,
      etcd_puts_per_s: round(etcdRate),
      instances_per_etcd_put: round(INSTANCES_N / allRunningS / etcdRate, 3),
      creates_per_s: round(createRate),
      ...(VOLUMES_N > 0 ? { volumes: VOLUMES_N, volumes_in_use: await inUse(client, VOLUMES_N) } : {}),
    };
  } finally {
    client.close();
    await kova.stop();
    raw.close();
    await etcd.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** How many of the bench volumes are InUse (each attached to its instance). */
async function inUse(client: KovaClient, n: number): Promise<number> {
  let count = 0;
  await eventually(async () => {
    const list = await client.list<Volume>(VOLUMES, 'bench');
    count = list.items.filter((v) => v.status?.phase === 'InUse').length;
    return count === n;
  }, 60_000, `${n} volumes InUse`).catch(() => undefined);
  return count;
}

async function main() {
  console.log(JSON.stringify(values['scheduler-only'] ? await schedulerOnly() : await fullRun()));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
