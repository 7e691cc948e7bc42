// Prometheus metrics of the node agents of a process: per instance, from the hypervisor's domain
// stats (KubeVirt's kubevirt_vmi_* names with the kova prefix), instance phases, the host's
// capacity and allocation, the image cache and the network plan apply time.
//
// Per-instance series are read at scrape time (the metrics' collect callbacks), not polled: one
// driver.instanceStats() per host and scrape, reused for a second (a scrape reads a dozen
// metrics, and several scrapers may come at once), one call at a time per host. Every collect
// starts from empty, so instances and hosts that went away leave the output. Several agents in one
// process (sim hosts) each register their host here; the metrics are the process's, once.
import type { Host, Instance } from '../api/kinds/index.js';
import { parseLenient } from '../api/resources.js';
import type { ResourceQuantities } from '../api/resources.js';
import { counter, gauge, histogram } from '../lib/metrics.js';
import type { Histogram } from 'prom-client';
import type { ComputeDriver, InstanceStats } from './driver.js';
import type { ImageCache } from './image-cache.js';

/** What an agent lends the collector; read at scrape time. */
export interface AgentMetricsSource {
  hostName: string;
  driver: Pick<ComputeDriver, 'instanceStats'>;
  /** The instances bound to this host (the agent's cache). */
  instances(): readonly Instance[];
  /** The Host as the agent last registered it (heartbeats refresh it). */
  host(): Host | undefined;
  imageCache?: ImageCache;
  log?: (msg: string) => void;
  /** How long one stats read is reused (default 1000 ms). */
  cacheMs?: number;
}

interface HostSnapshot {
  /** Undefined when the driver failed: the host's instances then have no usage series. */
  stats?: InstanceStats[];
  imageCacheBytes?: number;
}

const DEFAULT_CACHE_MS = 1000;
/** A failing stats read is logged once per this long per host, not at every scrape. */
const ERROR_LOG_MS = 60_000;

/** One host's collector: the cached, single-flight stats read. */
class HostCollector {
  private last?: { at: number; snap: HostSnapshot };
  private inflight?: Promise<HostSnapshot>;
  private lastErrorLog = 0;

  constructor(readonly source: AgentMetricsSource) {}

  snapshot(): Promise<HostSnapshot> {
    // A read in flight is shared: one stats call at a time per host.
    if (this.inflight) return this.inflight;
    if (this.last && Date.now() - this.last.at < (this.source.cacheMs ?? DEFAULT_CACHE_MS)) return Promise.resolve(this.last.snap);
    this.inflight = this.read()
      .then((snap) => {
        this.last = { at: Date.now(), snap };
        return snap;
      })
      .finally(() => {
        this.inflight = undefined;
      });
    return this.inflight;
  }

  private async read(): Promise<HostSnapshot> {
    const [stats, imageCacheBytes] = await Promise.all([
      this.source.driver.instanceStats().catch((e: unknown) => {
        const now = Date.now();
        if (now - this.lastErrorLog >= ERROR_LOG_MS) {
          this.lastErrorLog = now;
          this.source.log?.(`agent ${this.source.hostName}: metrics: reading instance stats failed: ${e instanceof Error ? e.message : String(e)}`);
        }
        return undefined;
      }),
      this.source.imageCache?.diskUsageBytes().catch(() => undefined),
    ]);
    return { stats, imageCacheBytes };
  }
}

const collectors = new Map<string, HostCollector>();

/** All registered hosts' snapshots, for one collect. */
async function snapshots(): Promise<Array<[HostCollector, HostSnapshot]>> {
  const list = [...collectors.values()];
  return Promise.all(list.map(async (c) => [c, await c.snapshot()] as [HostCollector, HostSnapshot]));
}

type VmiLabels = 'namespace' | 'name' | 'host';
type CounterField = 'blockReadBytes' | 'blockWriteBytes' | 'blockReadRequests' | 'blockWriteRequests' | 'netRxBytes' | 'netTxBytes';

/** Instances bound to the host with the stats of their own domain (same uid). */
function* instanceStats(c: HostCollector, snap: HostSnapshot): Generator<[Instance, InstanceStats]> {
  if (!snap.stats) return;
  const byKey = new Map<string, InstanceStats>();
  for (const s of snap.stats) if (s.instanceKey && s.counters) byKey.set(s.instanceKey, s);
  for (const i of c.source.instances()) {
    const s = byKey.get(`${i.metadata.namespace}/${i.metadata.name}`);
    if (s && s.instanceUID === i.metadata.uid) yield [i, s];
  }
}

const vmiLabels = (i: Instance, host: string) => ({ namespace: i.metadata.namespace!, name: i.metadata.name!, host });

let defined = false;
let applyDuration: Histogram<'host'> | undefined;

/** The per-instance counters: name, help, and how to read it from the domain's counters. */
const VMI_COUNTERS: Array<{ name: string; help: string; value: (s: NonNullable<InstanceStats['counters']>) => number }> = [
  { name: 'kova_vmi_cpu_usage_seconds_total', help: 'Total CPU time spent by the instance in all vCPUs and the emulator, in seconds.', value: (s) => s.cpuTimeNs / 1e9 },
  ...([
    ['kova_vmi_storage_read_traffic_bytes_total', 'Total bytes read from storage by the instance, over all its disks.', 'blockReadBytes'],
    ['kova_vmi_storage_write_traffic_bytes_total', 'Total bytes written to storage by the instance, over all its disks.', 'blockWriteBytes'],
    ['kova_vmi_storage_iops_read_total', 'Total read requests of the instance, over all its disks.', 'blockReadRequests'],
    ['kova_vmi_storage_iops_write_total', 'Total write requests of the instance, over all its disks.', 'blockWriteRequests'],
    ['kova_vmi_network_receive_bytes_total', 'Total bytes received by the instance, over all its interfaces.', 'netRxBytes'],
    ['kova_vmi_network_transmit_bytes_total', 'Total bytes transmitted by the instance, over all its interfaces.', 'netTxBytes'],
  ] as Array<[string, string, CounterField]>).map(([name, help, field]) => ({ name, help, value: (s: NonNullable<InstanceStats['counters']>) => s[field] })),
];

/** Defines the agent metrics in the process registry (once). */
function defineMetrics(): void {
  if (defined) return;
  defined = true;
  for (const m of VMI_COUNTERS) {
    counter<VmiLabels>({
      name: m.name,
      help: m.help,
      labelNames: ['namespace', 'name', 'host'],
      async collect() {
        const snaps = await snapshots();
        this.reset();
        for (const [c, snap] of snaps) for (const [i, s] of instanceStats(c, snap)) this.inc(vmiLabels(i, c.source.hostName), m.value(s.counters!));
      },
    });
  }
  gauge<VmiLabels>({
    name: 'kova_vmi_memory_resident_bytes',
    help: 'Resident set size of the instance\'s emulator process, in bytes.',
    labelNames: ['namespace', 'name', 'host'],
    async collect() {
      const snaps = await snapshots();
      this.reset();
      for (const [c, snap] of snaps) {
        for (const [i, s] of instanceStats(c, snap)) if (s.counters!.memoryResidentBytes !== undefined) this.set(vmiLabels(i, c.source.hostName), s.counters!.memoryResidentBytes);
      }
    },
  });
  gauge<VmiLabels | 'flavor' | 'phase'>({
    name: 'kova_vmi_info',
    help: 'Information about the instances bound to the host; always 1.',
    labelNames: ['namespace', 'name', 'host', 'flavor', 'phase'],
    collect() {
      this.reset();
      for (const c of collectors.values()) {
        for (const i of c.source.instances()) this.set({ ...vmiLabels(i, c.source.hostName), flavor: i.spec.flavor ?? '', phase: i.status?.phase ?? 'Pending' }, 1);
      }
    },
  });
  gauge<'host' | 'phase'>({
    name: 'kova_vmi_phase_count',
    help: 'Number of instances bound to the host, by phase.',
    labelNames: ['host', 'phase'],
    collect() {
      this.reset();
      for (const c of collectors.values()) {
        const counts = new Map<string, number>();
        for (const i of c.source.instances()) {
          const phase = i.status?.phase ?? 'Pending';
          counts.set(phase, (counts.get(phase) ?? 0) + 1);
        }
        for (const [phase, n] of counts) this.set({ host: c.source.hostName, phase }, n);
      }
    },
  });
  const hostResources = (name: string, help: string, field: 'capacity' | 'allocatable' | 'allocated') =>
    gauge<'host' | 'resource'>({
      name,
      help: `${help}, by resource: vcpus (count), memory and disk (bytes).`,
      labelNames: ['host', 'resource'],
      collect() {
        this.reset();
        for (const c of collectors.values()) {
          const q = c.source.host()?.status?.[field];
          if (!q) continue;
          const r = parseLenient(q as ResourceQuantities);
          const host = c.source.hostName;
          this.set({ host, resource: 'vcpus' }, r.vcpus);
          this.set({ host, resource: 'memory' }, r.memoryBytes);
          this.set({ host, resource: 'disk' }, r.diskBytes);
        }
      },
    });
  hostResources('kova_host_capacity', 'Physical capacity of the host', 'capacity');
  hostResources('kova_host_allocatable', 'Capacity of the host the scheduler may allocate (capacity × allocation ratios)', 'allocatable');
  hostResources('kova_host_allocated', 'Resources allocated to the instances bound to the host', 'allocated');
  gauge<'host'>({
    name: 'kova_image_cache_bytes',
    help: 'Bytes on disk of the host\'s image cache.',
    labelNames: ['host'],
    async collect() {
      const snaps = await snapshots();
      this.reset();
      for (const [c, snap] of snaps) if (snap.imageCacheBytes !== undefined) this.set({ host: c.source.hostName }, snap.imageCacheBytes);
    },
  });
  applyDuration = histogram<'host'>({
    name: 'kova_network_plan_apply_duration_seconds',
    help: 'Time the host network agent takes to apply a plan (bridges, VXLAN, DHCP, nftables), in seconds.',
    labelNames: ['host'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  });
}

/**
 * Adds an agent's host to the process's metrics; returns the removal (call it when the agent
 * stops: its series leave the output). A later registration of the same host replaces it.
 */
export function registerAgentMetrics(source: AgentMetricsSource): () => void {
  defineMetrics();
  const c = new HostCollector(source);
  collectors.set(source.hostName, c);
  return () => {
    if (collectors.get(source.hostName) !== c) return;
    collectors.delete(source.hostName);
    applyDuration?.remove({ host: source.hostName });
  };
}

/** Starts timing one network plan apply of `host`; call the result when it ends. */
export function timeNetworkPlanApply(host: string): () => void {
  defineMetrics();
  return applyDuration!.startTimer({ host });
}
