// Nova-style host filters. Each is pure and cheap: it reads a precomputed HostView and a
// FilterContext built once per scheduling attempt, and returns null when the host passes or
// a short reason that the unschedulable message counts ("3 insufficient memory").
import type { Instance } from '../../api/kinds/index.js';
import type { HostView } from './host-view.js';
import type { Resources } from '../../api/resources.js';
import type { VolumeTopology } from './volume-topology.js';

export const ZONE_LABEL = 'kova.dev/zone';

export interface FilterContext {
  instance: Instance;
  req: Resources;
  /** `spec.nodeSelector` without the zone key, as entries (no object walk per host). */
  selector: ReadonlyArray<readonly [string, string]>;
  /** `spec.nodeSelector["kova.dev/zone"]`. */
  zone?: string;
  /** `spec.hostName`. */
  pin?: string;
  /** Hosts ruled out for this attempt (the server refused a binding), with the reason to count. */
  excluded?: ReadonlyMap<string, string>;
  /** Hosts that store the instance's local volumes (it runs only where all of them are). */
  volumeHosts?: ReadonlySet<string>;
  /** Disk for the local volumes created with the instance on its host, beyond req.diskBytes. */
  volumeBytes: number;
}

export type Filter = (ctx: FilterContext, host: HostView) => string | null;

export function filterContext(instance: Instance, req: Resources, excluded?: ReadonlyMap<string, string>, volumes?: VolumeTopology): FilterContext {
  const spec = instance.spec;
  const selector = Object.entries(spec.nodeSelector ?? {}).filter(([k]) => k !== ZONE_LABEL);
  return {
    instance,
    req,
    selector,
    zone: spec.nodeSelector?.[ZONE_LABEL],
    pin: spec.hostName || undefined,
    excluded: excluded && excluded.size > 0 ? excluded : undefined,
    volumeHosts: volumes && volumes.hosts.size > 0 ? volumes.hosts : undefined,
    volumeBytes: volumes?.unplacedBytes ?? 0,
  };
}

export const HostReady: Filter = (_ctx, h) => (h.ready ? null : 'not ready');

export const NotCordoned: Filter = (_ctx, h) => (h.unschedulable ? 'unschedulable' : null);

export const HostNamePin: Filter = (ctx, h) => (ctx.pin === undefined || ctx.pin === h.name ? null : "didn't match requested host");

export const Zone: Filter = (ctx, h) => (ctx.zone === undefined || h.labels[ZONE_LABEL] === ctx.zone ? null : "didn't match availability zone");

export const NodeSelector: Filter = (ctx, h) => {
  for (const [k, v] of ctx.selector) if (h.labels[k] !== v) return "didn't match node selector";
  return null;
};

/** kube-scheduler's VolumeBinding: "node(s) had volume node affinity conflict". */
export const VolumeNodeAffinity: Filter = (ctx, h) => {
  if (ctx.volumeHosts === undefined) return null;
  for (const host of ctx.volumeHosts) if (host !== h.name) return 'volume node affinity conflict';
  return null;
};

export const Excluded: Filter = (ctx, h) => ctx.excluded?.get(h.name) ?? null;

export const Vcpu: Filter = (ctx, h) => (ctx.req.vcpus <= h.free.vcpus ? null : 'insufficient vcpus');

export const Memory: Filter = (ctx, h) => (ctx.req.memoryBytes <= h.free.memoryBytes ? null : 'insufficient memory');

/** The root disk and the local volumes created with the instance (free disk already counts the host's other local volumes). */
export const Disk: Filter = (ctx, h) => (ctx.req.diskBytes + ctx.volumeBytes <= h.free.diskBytes ? null : 'insufficient disk');

/**
 * The fixed order: a host is counted under the first filter it fails. Host state first (a
 * host that is down says more than its free memory), then the instance's placement
 * constraints, then fit.
 */
export const DEFAULT_FILTERS: readonly Filter[] = [HostReady, NotCordoned, HostNamePin, Zone, NodeSelector, VolumeNodeAffinity, Excluded, Vcpu, Memory, Disk];

/**
 * DEFAULT_FILTERS in one expression, for the common case of an instance without placement
 * constraints: true when the host passes them all. Hosts it rejects go through the list to
 * find their reason.
 */
export function passesDefaultUnconstrained(ctx: FilterContext, h: HostView): boolean {
  const f = h.free;
  const r = ctx.req;
  return h.ready && !h.unschedulable && r.vcpus <= f.vcpus && r.memoryBytes <= f.memoryBytes && r.diskBytes <= f.diskBytes;
}

export function isUnconstrained(ctx: FilterContext): boolean {
  return ctx.pin === undefined && ctx.zone === undefined && ctx.selector.length === 0 && ctx.excluded === undefined && ctx.volumeHosts === undefined && ctx.volumeBytes === 0;
}

/** The first failing filter's reason, or null when the host passes them all. */
export function firstFailure(ctx: FilterContext, host: HostView, filters: readonly Filter[] = DEFAULT_FILTERS): string | null {
  for (const f of filters) {
    const r = f(ctx, host);
    if (r !== null) return r;
  }
  return null;
}
