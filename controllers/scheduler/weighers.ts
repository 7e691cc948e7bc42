// Nova-style weighers: each gives a raw number per candidate host; raw numbers are normalized
// to 0..1 over the candidates, multiplied by the weigher's multiplier and summed. The best
// host wins; exact ties (and, with subsetSize > 1, the next best) are picked at random so that
// two schedulers working on the same state rarely race for the same host.
import type { FilterContext } from './filters.js';
import type { HostView } from './host-view.js';

export interface Weigher {
  name: string;
  /** Positive prefers high raw values, negative prefers low ones (Nova's *_weight_multiplier). */
  multiplier: number;
  weigh(ctx: FilterContext, host: HostView): number;
}

export const freeMemory = (multiplier: number): Weigher => ({ name: 'FreeMemory', multiplier, weigh: (_c, h) => h.free.memoryBytes });
export const freeVcpus = (multiplier: number): Weigher => ({ name: 'FreeVcpus', multiplier, weigh: (_c, h) => h.free.vcpus });
export const freeDisk = (multiplier: number): Weigher => ({ name: 'FreeDisk', multiplier, weigh: (_c, h) => h.free.diskBytes });

export type WeigherPolicy = 'spread' | 'pack';

/** spread: most free memory first (the default, Nova's RAMWeigher). pack: least free memory first. */
export function weighersFor(policy: WeigherPolicy): Weigher[] {
  if (policy === 'pack') return [freeMemory(-1)];
  if (policy === 'spread') return [freeMemory(1)];
  throw new Error(`unknown weigher policy ${JSON.stringify(policy)} (spread or pack)`);
}

export interface PickOptions {
  /** Pick at random among the best `subsetSize` hosts (Nova's host_subset_size); default 1. */
  subsetSize?: number;
  random?: () => number;
}

/** Total normalized score per candidate, in the candidates' order. */
export function scores(ctx: FilterContext, candidates: readonly HostView[], weighers: readonly Weigher[]): Float64Array {
  const total = new Float64Array(candidates.length);
  const raw = new Float64Array(candidates.length);
  for (const w of weighers) {
    if (w.multiplier === 0) continue;
    let min = Infinity;
    let max = -Infinity;
    for (let i = 0; i < candidates.length; i++) {
      const v = w.weigh(ctx, candidates[i]);
      raw[i] = v;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    const range = max - min;
    if (range === 0) continue; // every host is equal under this weigher: it adds nothing
    for (let i = 0; i < candidates.length; i++) total[i] += (w.multiplier * (raw[i] - min)) / range;
  }
  return total;
}

const EPSILON = 1e-12;

/** The chosen host among candidates that passed the filters, or undefined when there are none. */
export function pickHost(ctx: FilterContext, candidates: readonly HostView[], weighers: readonly Weigher[], opts: PickOptions = {}): HostView | undefined {
  if (candidates.length === 0) return undefined;
  const random = opts.random ?? Math.random;
  const s = scores(ctx, candidates, weighers);
  let best = -Infinity;
  for (const v of s) if (v > best) best = v;
  const ties: number[] = [];
  for (let i = 0; i < s.length; i++) if (s[i] >= best - EPSILON) ties.push(i);
  const subset = Math.max(1, opts.subsetSize ?? 1);
  let pool = ties;
  if (ties.length < subset) {
    pool = Array.from(s.keys()).sort((a, b) => s[b] - s[a]).slice(0, Math.min(subset, s.length));
  }
  return candidates[pool[Math.floor(random() * pool.length)] ?? pool[0]];
}
