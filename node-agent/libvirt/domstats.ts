// The usage counters of every domain on a host from ONE `virsh domstats` process (libvirt's
// virConnectGetAllDomainStats, what KubeVirt's exporter reads): the metrics scrape must not cost
// a process per domain.
import { PowerState } from '../driver.js';
import type { DomainCounters } from '../driver.js';
import type { Virsh } from './virsh.js';

/** The stat groups kova exports; the domain list is every domain (inactive ones give their state). */
export const DOMSTATS_ARGS = ['domstats', '--raw', '--state', '--cpu-total', '--balloon', '--block', '--interface'] as const;

/** A scrape waits this long at most (Prometheus' default scrape timeout is 10 s). */
const DOMSTATS_TIMEOUT_MS = 8_000;
/** Output bound: a few hundred bytes per disk and NIC; this is thousands of domains. */
const DOMSTATS_MAX_BYTES = 8 << 20;

export interface DomainStatsRecord {
  name: string;
  state: PowerState;
  /** Present while the domain has an emulator (running, paused, shutting down). */
  counters?: DomainCounters;
}

export async function readDomainStats(virsh: Virsh): Promise<DomainStatsRecord[]> {
  return parseDomStats(await virsh.runWith({ timeoutMs: DOMSTATS_TIMEOUT_MS, maxBuffer: DOMSTATS_MAX_BYTES }, ...DOMSTATS_ARGS));
}

/**
 * Parses `virsh domstats --raw` output: a `Domain: 'NAME'` line, then `  key=value` lines
 * (state.state, cpu.time, balloon.rss in KiB, block.N.rd.bytes, net.N.rx.bytes, ...).
 */
export function parseDomStats(out: string): DomainStatsRecord[] {
  const records: DomainStatsRecord[] = [];
  let name: string | undefined;
  let fields = new Map<string, string>();
  const flush = () => {
    if (name !== undefined) records.push(toRecord(name, fields));
    fields = new Map();
  };
  for (const line of out.split('\n')) {
    const header = /^Domain: '(.*)'\s*$/.exec(line);
    if (header) {
      flush();
      name = header[1];
      continue;
    }
    const i = line.indexOf('=');
    if (name !== undefined && i > 0) fields.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  flush();
  return records;
}

// virDomainState and virDomainShutoffReason values.
const VIR_DOMAIN = { NOSTATE: 0, RUNNING: 1, BLOCKED: 2, PAUSED: 3, SHUTDOWN: 4, SHUTOFF: 5, CRASHED: 6, PMSUSPENDED: 7 };
const VIR_DOMAIN_SHUTOFF_CRASHED = 3;
/** More disks or NICs than a domain can have (QEMU's PCI slots): a bound on a bogus count. */
const MAX_DEVICES = 1024;

function toRecord(name: string, f: Map<string, string>): DomainStatsRecord {
  const num = (k: string) => {
    const v = Number(f.get(k));
    return Number.isFinite(v) && v >= 0 ? v : 0;
  };
  const code = Number(f.get('state.state') ?? VIR_DOMAIN.NOSTATE);
  const state = powerState(code, num('state.reason'));
  // A shut-off domain still reports the cpu.time of its last run: only a live emulator counts.
  const live = code === VIR_DOMAIN.RUNNING || code === VIR_DOMAIN.BLOCKED || code === VIR_DOMAIN.PAUSED || code === VIR_DOMAIN.SHUTDOWN || code === VIR_DOMAIN.PMSUSPENDED;
  if (!live) return { name, state };
  const sum = (group: 'block' | 'net', key: string) => {
    let total = 0;
    for (let i = 0, n = Math.min(num(`${group}.count`), MAX_DEVICES); i < n; i++) total += num(`${group}.${i}.${key}`);
    return total;
  };
  return {
    name,
    state,
    counters: {
      cpuTimeNs: num('cpu.time'),
      ...(f.has('balloon.rss') ? { memoryResidentBytes: num('balloon.rss') * 1024 } : {}),
      blockReadBytes: sum('block', 'rd.bytes'),
      blockWriteBytes: sum('block', 'wr.bytes'),
      blockReadRequests: sum('block', 'rd.reqs'),
      blockWriteRequests: sum('block', 'wr.reqs'),
      netRxBytes: sum('net', 'rx.bytes'),
      netTxBytes: sum('net', 'tx.bytes'),
    },
  };
}

function powerState(code: number, reason: number): PowerState {
  switch (code) {
    case VIR_DOMAIN.RUNNING:
    case VIR_DOMAIN.BLOCKED:
    case VIR_DOMAIN.SHUTDOWN: // shutting down: still running, as parseDomState says
      return PowerState.Running;
    case VIR_DOMAIN.PAUSED:
    case VIR_DOMAIN.PMSUSPENDED:
      return PowerState.Paused;
    case VIR_DOMAIN.SHUTOFF:
      return reason === VIR_DOMAIN_SHUTOFF_CRASHED ? PowerState.Crashed : PowerState.Shutdown;
    case VIR_DOMAIN.CRASHED:
      return PowerState.Crashed;
    default:
      return PowerState.NoState;
  }
}
