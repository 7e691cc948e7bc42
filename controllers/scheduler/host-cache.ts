// The scheduler's view of all Hosts plus its assumed placements (kube-scheduler's assume
// cache): a claim is counted against its host from the moment the scheduler picks it until
// the host's status shows the server-side allocation (its uid in `status.allocations`), so
// concurrent workers never pick a host with room that is already promised. Local Volumes are
// charged to their host's disk the same way: from the Volume informer (status.hostName or the
// selected-host annotation), and at once when the scheduler selects a host for one. Pure: no I/O.
import type { Host } from '../../api/kinds/index.js';
import { hostView } from './host-view.js';
import type { HostView } from './host-view.js';
import { subtract } from '../../api/resources.js';
import type { AllocationRatios, Resources } from '../../api/resources.js';

interface Assumption {
  uid: string;
  host: string;
  req: Resources;
  /** Set when the binding succeeded: after this the claim is dropped even if never confirmed. */
  expiresAt?: number;
}

export interface HostCacheOptions {
  /** Fallback for hosts without `status.allocatable` (see hostView); none by default. */
  ratios?: Partial<AllocationRatios>;
  /** How long a successful binding is counted before the host's status must show it. */
  assumeTtlMs?: number;
  now?: () => number;
}

export class HostCache {
  private readonly views = new Map<string, HostView>();
  private readonly assumed = new Map<string, Assumption>();
  private readonly byHost = new Map<string, Set<string>>();
  /** Local volumes by uid: the host whose disk they use and their size. */
  private readonly volumes = new Map<string, { host: string; bytes: number }>();
  private readonly volumeBytesByHost = new Map<string, number>();
  private readonly ttl: number;
  private readonly now: () => number;

  constructor(private readonly opts: HostCacheOptions = {}) {
    this.ttl = opts.assumeTtlMs ?? 30_000;
    this.now = opts.now ?? Date.now;
  }

  hosts(): Iterable<HostView> {
    return this.views.values();
  }

  get(name: string): HostView | undefined {
    return this.views.get(name);
  }

  get size(): number {
    return this.views.size;
  }

  assumedCount(): number {
    return this.assumed.size;
  }

  /**
   * Adds or replaces a Host. Returns true when the change may let an unschedulable instance fit
   * now (a new host, more free room, readiness regained, cordon lifted, labels changed).
   */
  upsert(obj: Host): boolean {
    const next = hostView(obj, this.opts.ratios);
    const prev = this.views.get(next.name);
    const ids = this.byHost.get(next.name);
    if (ids) {
      const now = this.now();
      for (const uid of [...ids]) {
        const a = this.assumed.get(uid)!;
        if (next.allocationUids.has(uid) || (a.expiresAt !== undefined && now >= a.expiresAt)) this.drop(uid);
      }
    }
    this.views.set(next.name, next);
    this.recompute(next.name);
    if (!prev) return true;
    return (
      (next.ready && !prev.ready) ||
      (!next.unschedulable && prev.unschedulable) ||
      next.free.vcpus > prev.free.vcpus ||
      next.free.memoryBytes > prev.free.memoryBytes ||
      next.free.diskBytes > prev.free.diskBytes ||
      !sameLabels(next.labels, prev.labels)
    );
  }

  remove(name: string): void {
    this.views.delete(name);
    for (const uid of [...(this.byHost.get(name) ?? [])]) this.drop(uid);
  }

  /**
   * Charges local volume `uid` to `host`'s disk (replacing its earlier charge), or drops its
   * charge (undefined: deleted, not local, no host). Returns true when some host gained room.
   */
  setVolume(uid: string, charge: { host: string; bytes: number } | undefined): boolean {
    const prev = this.volumes.get(uid);
    if (prev && charge && prev.host === charge.host && prev.bytes === charge.bytes) return false;
    if (prev) {
      this.volumes.delete(uid);
      this.addVolumeBytes(prev.host, -prev.bytes);
    }
    if (charge) {
      this.volumes.set(uid, charge);
      this.addVolumeBytes(charge.host, charge.bytes);
    }
    return !!prev && (!charge || prev.host !== charge.host || charge.bytes < prev.bytes);
  }

  /** Bytes of local volumes charged to `host`. */
  volumeBytes(host: string): number {
    return this.volumeBytesByHost.get(host) ?? 0;
  }

  private addVolumeBytes(host: string, bytes: number): void {
    const n = (this.volumeBytesByHost.get(host) ?? 0) + bytes;
    if (n === 0) this.volumeBytesByHost.delete(host);
    else this.volumeBytesByHost.set(host, n);
    this.recompute(host);
  }

  /** Counts `req` against `host` for instance `uid` (replacing an earlier claim of that uid). */
  assume(uid: string, host: string, req: Resources): void {
    this.forget(uid);
    this.assumed.set(uid, { uid, host, req });
    let ids = this.byHost.get(host);
    if (!ids) this.byHost.set(host, (ids = new Set()));
    ids.add(uid);
    this.recompute(host);
  }

  /** The binding succeeded: keep counting until the host shows it, at most the TTL. */
  finishBinding(uid: string): void {
    const a = this.assumed.get(uid);
    if (!a) return;
    if (this.views.get(a.host)?.allocationUids.has(uid)) this.forget(uid);
    else a.expiresAt = this.now() + this.ttl;
  }

  /** True while a successful binding of `uid` is counted but not yet shown by its host. */
  isBound(uid: string): boolean {
    return this.assumed.get(uid)?.expiresAt !== undefined;
  }

  /** The binding failed: the claim no longer counts. */
  forget(uid: string): void {
    const a = this.assumed.get(uid);
    if (!a) return;
    this.drop(uid);
    this.recompute(a.host);
  }

  /** Drops expired claims of hosts that have not changed since; returns true if any was dropped. */
  sweep(): boolean {
    const now = this.now();
    let dropped = false;
    for (const a of [...this.assumed.values()]) {
      if (a.expiresAt !== undefined && now >= a.expiresAt) {
        this.forget(a.uid);
        dropped = true;
      }
    }
    return dropped;
  }

  private drop(uid: string): void {
    const a = this.assumed.get(uid);
    if (!a) return;
    this.assumed.delete(uid);
    const ids = this.byHost.get(a.host);
    ids?.delete(uid);
    if (ids && ids.size === 0) this.byHost.delete(a.host);
  }

  private recompute(host: string): void {
    const v = this.views.get(host);
    if (!v) return;
    let free = subtract(v.allocatable, v.allocated);
    for (const uid of this.byHost.get(host) ?? []) free = subtract(free, this.assumed.get(uid)!.req);
    const volumeBytes = this.volumeBytesByHost.get(host);
    if (volumeBytes) free = { ...free, diskBytes: free.diskBytes - volumeBytes };
    v.free = free;
  }
}

function sameLabels(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => a[k] === b[k]);
}
