// Resource arithmetic shared by the API server (binding accounting) and the scheduler, so both
// count the same way: quantities are parsed once into plain numbers (vCPUs and bytes).
import type { Flavor, Instance } from './kinds/index.js';
import { formatQuantity, quantityValue } from './quantity.js';

export interface Resources {
  vcpus: number;
  memoryBytes: number;
  diskBytes: number;
}

/** Overcommit ratios (Nova's cpu/ram/disk_allocation_ratio). */
export interface AllocationRatios {
  cpu: number;
  ram: number;
  disk: number;
}

export const DEFAULT_RATIOS: Readonly<AllocationRatios> = Object.freeze({ cpu: 16.0, ram: 1.5, disk: 1.0 });

export const ZERO: Readonly<Resources> = Object.freeze({ vcpus: 0, memoryBytes: 0, diskBytes: 0 });

/** The API's shape: `{vcpus: 1, memory: "512Mi", disk: "2Gi"}`. */
export interface ResourceQuantities {
  vcpus?: number | string;
  memory?: number | string;
  disk?: number | string;
}

/**
 * Parses `{vcpus, memory, disk}` quantities; missing fields count as 0. Bytes are rounded up
 * (apimachinery's Value()). Throws on a malformed quantity.
 */
export function parseResources(q: ResourceQuantities | undefined | null): Resources {
  if (!q || typeof q !== 'object') return { ...ZERO };
  return {
    vcpus: q.vcpus === undefined ? 0 : quantityValue(q.vcpus),
    memoryBytes: q.memory === undefined ? 0 : quantityValue(q.memory),
    diskBytes: q.disk === undefined ? 0 : quantityValue(q.disk),
  };
}

/** The binding body's `resources` and the Host status shape. */
export function formatResources(r: Resources): { vcpus: number; memory: string; disk: string } {
  return { vcpus: r.vcpus, memory: formatQuantity(r.memoryBytes), disk: formatQuantity(r.diskBytes) };
}

/** `capacity × ratio`, rounded down to whole units as Placement does for inventories. */
export function computeAllocatable(capacity: Resources, ratios: Partial<AllocationRatios> = DEFAULT_RATIOS): Resources {
  const r = { ...DEFAULT_RATIOS, ...ratios };
  return {
    vcpus: Math.floor(capacity.vcpus * r.cpu),
    memoryBytes: Math.floor(capacity.memoryBytes * r.ram),
    diskBytes: Math.floor(capacity.diskBytes * r.disk),
  };
}

/** Like parseResources, but a malformed quantity counts as nothing instead of throwing. */
export function parseLenient(q: ResourceQuantities | undefined | null): Resources {
  try {
    return parseResources(q);
  } catch {
    return { ...ZERO };
  }
}

/** The sum of resource amounts in the API's shape (e.g. a host's allocations), leniently parsed. */
export function sumQuantities(list: readonly (ResourceQuantities | undefined)[]): Resources {
  return list.reduce<Resources>((acc, r) => add(acc, parseLenient(r)), { ...ZERO });
}

export function subtract(a: Resources, b: Resources): Resources {
  return { vcpus: a.vcpus - b.vcpus, memoryBytes: a.memoryBytes - b.memoryBytes, diskBytes: a.diskBytes - b.diskBytes };
}

export function add(a: Resources, b: Resources): Resources {
  return { vcpus: a.vcpus + b.vcpus, memoryBytes: a.memoryBytes + b.memoryBytes, diskBytes: a.diskBytes + b.diskBytes };
}

export type InstanceRequest =
  | { req: Resources }
  | { flavorNotFound: string }
  | { invalid: string };

/**
 * What an instance asks for: its Flavor's size (`spec.flavor`, looked up with `getFlavor`) or
 * `spec.resources`. A missing Flavor is reported apart so the caller can wait for it.
 */
export function instanceRequest(instance: Pick<Instance, 'spec'>, getFlavor: (name: string) => Pick<Flavor, 'spec'> | undefined): InstanceRequest {
  const spec = instance.spec ?? {};
  try {
    if (spec.flavor) {
      const flavor = getFlavor(spec.flavor);
      if (!flavor) return { flavorNotFound: spec.flavor };
      return { req: parseResources(flavor.spec) };
    }
    if (spec.resources) return { req: parseResources(spec.resources) };
    return { invalid: 'neither spec.flavor nor spec.resources is set' };
  } catch (e) {
    return { invalid: (e as Error).message };
  }
}
