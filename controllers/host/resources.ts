// Host resource amounts in the API's shape ({vcpus, memory, disk} quantities): allocatable from
// capacity and allocation ratios, and sums of allocations. The arithmetic is the scheduler's
// (api/resources.ts), so both sides count the same way; results are canonical
// BinarySI strings (`36Gi`, `1536Mi`), as apimachinery prints quantities.
import { computeAllocatable, DEFAULT_RATIOS, formatResources, parseLenient, sumQuantities } from '../../api/resources.js';
import type { AllocationRatios, ResourceQuantities } from '../../api/resources.js';

export { DEFAULT_RATIOS };
export type { AllocationRatios };
export type HostResources = ResourceQuantities;

/** capacity × ratio, rounded down to whole vCPUs and bytes. */
export function allocatableFor(capacity: HostResources | undefined, ratios: Partial<AllocationRatios> = DEFAULT_RATIOS): { vcpus: number; memory: string; disk: string } {
  return formatResources(computeAllocatable(parseLenient(capacity), ratios));
}

/** Equal amounts, whatever the spelling (`1Gi` equals `1024Mi` and 1073741824). */
export function sameResources(a: HostResources | undefined, b: HostResources | undefined): boolean {
  if (!a || !b) return a === b;
  const x = parseLenient(a);
  const y = parseLenient(b);
  return x.vcpus === y.vcpus && x.memoryBytes === y.memoryBytes && x.diskBytes === y.diskBytes;
}

/** The sum of a list of resource amounts, e.g. a host's allocations. */
export function sumResources(list: readonly HostResources[]): { vcpus: number; memory: string; disk: string } {
  return formatResources(sumQuantities(list));
}
