// A Host reduced to what the filters and weighers read, parsed once per Host change.
import type { Host } from '../../api/kinds/index.js';
import { computeAllocatable, parseResources, subtract, ZERO } from '../../api/resources.js';
import type { AllocationRatios, Resources } from '../../api/resources.js';

export interface HostView {
  name: string;
  labels: Readonly<Record<string, string>>;
  /** The Ready condition is True. */
  ready: boolean;
  /** Cordoned (`spec.unschedulable`) or fenced (`spec.fenced`). */
  unschedulable: boolean;
  allocatable: Resources;
  /** `status.allocated` as the API server last reported it. */
  allocated: Resources;
  /** Instance uids in `status.allocations[]`: claims the server has already counted. */
  allocationUids: ReadonlySet<string>;
  /** allocatable − allocated − claims assumed by this scheduler but not yet in `allocated`. */
  free: Resources;
}

/**
 * Builds the view of a Host object from `status.allocatable` (written by the host controller).
 * With `ratios` given, a host without it falls back to `capacity × ratios`; by default it offers
 * nothing, as the API server's binding refuses such a host. A Host whose quantities do not
 * parse is kept but offers nothing (allocatable 0).
 */
export function hostView(h: Host, ratios?: Partial<AllocationRatios>): HostView {
  const status = h.status ?? {};
  let allocatable: Resources;
  let allocated: Resources;
  try {
    if (status.allocatable) allocatable = parseResources(status.allocatable);
    else allocatable = ratios ? computeAllocatable(parseResources(status.capacity), ratios) : { ...ZERO };
    allocated = parseResources(status.allocated);
  } catch {
    allocatable = { ...ZERO };
    allocated = { ...ZERO };
  }
  const uids = new Set<string>();
  for (const a of status.allocations ?? []) if (a?.uid) uids.add(a.uid);
  return {
    name: h.metadata.name ?? '',
    labels: h.metadata.labels ?? {},
    ready: (status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
    unschedulable: h.spec?.unschedulable === true || h.spec?.fenced === true,
    allocatable,
    allocated,
    allocationUids: uids,
    free: subtract(allocatable, allocated),
  };
}
