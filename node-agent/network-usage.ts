// Network usage for metering (Ceilometer's compute agent: poll and publish). Every
// networkUsageIntervalS the agent reads all its domains' counters in one driver call and
// publishes, per instance whose numbers changed, the bytes received and transmitted since the
// instance's creation in status.networkUsage; the metering controller records them
// (docs/metering.md). Domain counters restart with the emulator (stop/start, migration); the
// totals do not: each instance keeps a base (the bytes not in the live counter) and the last
// reading, and a counter that goes down folds the last reading into the base.
import type { Instance, InstanceNetworkUsage } from '../api/kinds/index.js';
import { INSTANCES } from '../api/kinds/index.js';
import { rfc3339 } from '../api/metering.js';
import { errorMessage } from '../client/controller.js';
import { isConflict, isNotFound, StatusError } from '../client/client.js';
import type { ApiClient } from '../client/client.js';
import type { ComputeDriver, InstanceStats } from './driver.js';

export const DEFAULT_NETWORK_USAGE_INTERVAL_S = 300;
/** Status writes in flight per agent: a host of many instances spreads its publish. */
const PUBLISH_CONCURRENCY = 4;
const MAX_ATTEMPTS = 5;

export interface Bytes {
  rx: number;
  tx: number;
}

/** One instance's totals: base + the live counter, `last` the latest reading of the live counter. */
export interface NetworkAccount {
  base: Bytes;
  last: Bytes;
}

/**
 * The account of an instance as its status says (adoption by a new or restarted agent, a
 * migration's target): the totals minus the domain counters they were read with, so a domain
 * that still runs (its counters at or above them) continues exactly, and one whose counters
 * restarted meanwhile (below them) folds them back at the first reading.
 */
export function accountFromStatus(u: InstanceNetworkUsage | undefined): NetworkAccount {
  const total = { rx: u?.receiveBytes ?? 0, tx: u?.transmitBytes ?? 0 };
  const dom = { rx: Math.min(u?.domainReceiveBytes ?? 0, total.rx), tx: Math.min(u?.domainTransmitBytes ?? 0, total.tx) };
  return { base: { rx: total.rx - dom.rx, tx: total.tx - dom.tx }, last: dom };
}

/**
 * The account after reading the domain's counters (`undefined`: no emulator, e.g. stopped): a
 * counter below the last reading means they restarted, so the last reading joins the base; no
 * counters at all mean the next ones start from zero.
 */
export function observe(a: NetworkAccount, counters: Bytes | undefined): NetworkAccount {
  const c = counters ?? { rx: 0, tx: 0 };
  // Either counter going down means a new emulator: both restarted.
  const restarted = c.rx < a.last.rx || c.tx < a.last.tx;
  const base = restarted ? { rx: a.base.rx + a.last.rx, tx: a.base.tx + a.last.tx } : { ...a.base };
  return { base, last: { rx: c.rx, tx: c.tx } };
}

export const totalOf = (a: NetworkAccount): Bytes => ({ rx: a.base.rx + a.last.rx, tx: a.base.tx + a.last.tx });

export interface NetworkUsageReporterOptions {
  client: ApiClient;
  hostName: string;
  driver: Pick<ComputeDriver, 'instanceStats'>;
  /** The instances bound to this host (the agent's cache). */
  instances: () => readonly Instance[];
  intervalS?: number;
  now?: () => number;
  log: (msg: string) => void;
}

interface Tracked {
  account: NetworkAccount;
  /** What the status says (as published by us or read). */
  published?: InstanceNetworkUsage;
}

export class NetworkUsageReporter {
  private readonly tracked = new Map<string, Tracked>(); // by uid
  private running?: Promise<void>;

  constructor(private readonly o: NetworkUsageReporterOptions) {}

  /** Polls every interval until `signal` aborts; returns the stop (which waits for a poll in flight). */
  start(signal: AbortSignal): () => Promise<void> {
    const ms = (this.o.intervalS ?? DEFAULT_NETWORK_USAGE_INTERVAL_S) * 1000;
    const timer = setInterval(() => void this.poll(), ms);
    const stop = async () => {
      clearInterval(timer);
      clearTimeout(this.nudged);
      await this.running;
    };
    signal.addEventListener('abort', () => clearInterval(timer), { once: true });
    return stop;
  }

  private nudged?: ReturnType<typeof setTimeout>;
  /** A driver stats read in flight (readStats). */
  private statsRead?: Promise<InstanceStats[]>;
  private lastNudge = -Infinity;
  /** Instances nudged since the last early poll: only they are published by it. */
  private leaving = new Set<string>();

  /**
   * A best-effort early poll when an instance is about to lose its emulator (a stop, a migration
   * away, a restart): the counters are read before the agent lets the domain go, usually.
   * Nudges within a second share one poll, which publishes only the nudged instances (many
   * stops at once must not rewrite every other instance's status once a second). A deletion
   * needs none: the agent writes the last counts with Terminating (finalUsage).
   */
  nudge(inst: Instance): void {
    const leaving = inst.spec.runStrategy === 'Halted'
      || inst.status?.migration?.sourceHost === this.o.hostName || inst.status?.phase === 'Stopping';
    const phase = inst.status?.phase;
    const uid = inst.metadata.uid ?? '';
    // Not only instances an interval poll has seen: one younger than the interval has traffic too.
    if (!leaving || phase === 'Stopped' || phase === 'Failed' || !uid || inst.status?.hostName !== this.o.hostName) return;
    this.leaving.add(uid);
    if (this.nudged) return;
    const now = Date.now();
    this.nudged = setTimeout(() => {
      this.nudged = undefined;
      this.lastNudge = Date.now();
      const only = this.leaving;
      this.leaving = new Set();
      void this.poll(only);
    }, Math.max(0, this.lastNudge + 1000 - now));
  }

  /**
   * One poll: one stats call, then the status writes (a few at a time) of the changed instances,
   * or of those in `only`. Never overlaps itself: a poll asked for while one runs shares it.
   */
  poll(only?: ReadonlySet<string>): Promise<void> {
    this.running ??= this.pollOnce(only).finally(() => (this.running = undefined));
    return this.running;
  }

  /** The driver's stats; callers while a read is in flight share it (one `virsh domstats` for many deletions). */
  private readStats(): Promise<InstanceStats[]> {
    this.statsRead ??= this.o.driver.instanceStats().finally(() => (this.statsRead = undefined));
    return this.statsRead;
  }

  /**
   * The totals of an instance whose domain is about to be destroyed for good (a deletion), read
   * now, for the agent to write with its Terminating status: one write instead of two, and
   * counts read while the domain still runs. Undefined when the totals are those the status has
   * (or there are none), or the driver cannot say (the deletion goes on without them).
   */
  async finalUsage(inst: Instance): Promise<InstanceNetworkUsage | undefined> {
    const uid = inst.metadata.uid;
    if (!uid) return undefined;
    let stats;
    try {
      stats = await this.readStats();
    } catch (e) {
      this.o.log(`agent ${this.o.hostName}: network usage of ${inst.metadata.namespace}/${inst.metadata.name}: instanceStats failed: ${errorMessage(e)}`);
      return undefined;
    }
    const c = stats.find((s) => s.instanceUID === uid)?.counters;
    const next = this.read(inst, uid, c ? { rx: c.netRxBytes, tx: c.netTxBytes } : undefined, this.o.now?.() ?? Date.now());
    const prev = inst.status?.networkUsage;
    if (prev ? prev.receiveBytes === next.receiveBytes && prev.transmitBytes === next.transmitBytes : next.receiveBytes === 0 && next.transmitBytes === 0) return undefined;
    return next;
  }

  /** Folds a reading of `inst`'s counters into its account (made from its status at first sight); the totals as status.networkUsage would say them. */
  private read(inst: Instance, uid: string, counters: Bytes | undefined, now: number): InstanceNetworkUsage {
    let t = this.tracked.get(uid);
    if (!t) this.tracked.set(uid, (t = { account: accountFromStatus(inst.status?.networkUsage), published: inst.status?.networkUsage }));
    t.account = observe(t.account, counters);
    const total = totalOf(t.account);
    return { receiveBytes: total.rx, transmitBytes: total.tx, observedAt: rfc3339(now), domainReceiveBytes: t.account.last.rx, domainTransmitBytes: t.account.last.tx };
  }

  private async pollOnce(only?: ReadonlySet<string>): Promise<void> {
    let stats;
    try {
      stats = await this.readStats();
    } catch (e) {
      this.o.log(`agent ${this.o.hostName}: network usage: instanceStats failed: ${errorMessage(e)}`);
      return;
    }
    const now = this.o.now?.() ?? Date.now();
    const counters = new Map<string, Bytes>();
    for (const s of stats) if (s.instanceUID && s.counters) counters.set(s.instanceUID, { rx: s.counters.netRxBytes, tx: s.counters.netTxBytes });
    const due: Array<[Instance, InstanceNetworkUsage]> = [];
    const seen = new Set<string>();
    for (const inst of this.o.instances()) {
      const uid = inst.metadata.uid;
      if (!uid || inst.status?.hostName !== this.o.hostName) continue;
      seen.add(uid);
      // A deleted instance's last counts go with its Terminating status (finalUsage).
      if (inst.metadata.deletionTimestamp) continue;
      const next = this.read(inst, uid, counters.get(uid), now);
      const prev = this.tracked.get(uid)!.published;
      if (prev && prev.receiveBytes === next.receiveBytes && prev.transmitBytes === next.transmitBytes && (prev.domainReceiveBytes ?? 0) === next.domainReceiveBytes && (prev.domainTransmitBytes ?? 0) === next.domainTransmitBytes) continue;
      if (!prev && next.receiveBytes === 0 && next.transmitBytes === 0) continue; // nothing to say yet
      if (only && !only.has(uid)) continue; // an early poll: the others wait for the interval
      due.push([inst, next]);
    }
    // Instances that left this host (deleted, migrated away) are forgotten: a new owner starts from their status.
    for (const uid of this.tracked.keys()) if (!seen.has(uid)) this.tracked.delete(uid);
    for (let i = 0; i < due.length; i += PUBLISH_CONCURRENCY) {
      await Promise.all(due.slice(i, i + PUBLISH_CONCURRENCY).map(([inst, u]) => this.publish(inst, u)));
    }
  }

  /**
   * Writes status.networkUsage with a JSON patch guarded by a `test` of the value we last saw
   * there (so other status writers never conflict with us, and two writers of it never lower
   * it); on a conflict, a newer value from elsewhere (a migration's other side) becomes our base.
   */
  private async publish(inst: Instance, next: InstanceNetworkUsage): Promise<void> {
    const uid = inst.metadata.uid!;
    const ns = inst.metadata.namespace;
    const name = inst.metadata.name!;
    let seen = this.tracked.get(uid)?.published;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const t = this.tracked.get(uid);
      if (!t) return;
      try {
        await this.o.client.jsonPatch(INSTANCES, ns, name, [
          ...(seen ? [{ op: 'test' as const, path: '/status/networkUsage/observedAt', value: seen.observedAt }, { op: 'test' as const, path: '/status/networkUsage/receiveBytes', value: seen.receiveBytes }] : []),
          { op: 'add', path: '/status/networkUsage', value: next },
        ], { subresource: 'status' });
        t.published = next;
        return;
      } catch (e) {
        if (isNotFound(e)) return;
        if (!isConflict(e) && !(e instanceof StatusError && (e.code === 422 || e.code === 500) && /test|path/i.test(e.message))) {
          this.o.log(`agent ${this.o.hostName}: network usage of ${ns}/${name}: ${errorMessage(e)}`);
          return;
        }
      }
      const fresh = await this.o.client.get<Instance>(INSTANCES, ns, name).catch(() => undefined);
      if (!fresh || fresh.metadata.uid !== uid) return;
      seen = fresh.status?.networkUsage;
      if (seen && (seen.receiveBytes > next.receiveBytes || seen.transmitBytes > next.transmitBytes)) {
        // Someone published more (the other side of a migration): continue from there.
        t.account = accountFromStatus({ ...seen, domainReceiveBytes: t.account.last.rx, domainTransmitBytes: t.account.last.tx });
        t.published = seen;
        return;
      }
    }
  }
}
