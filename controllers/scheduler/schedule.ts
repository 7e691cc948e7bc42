// One scheduling decision: filter every host, weigh the survivors, pick one; or explain why
// none fits, in kube-scheduler's form counted per reason.
import type { Instance } from '../../api/kinds/index.js';
import { DEFAULT_FILTERS, filterContext, firstFailure, isUnconstrained, passesDefaultUnconstrained } from './filters.js';
import type { Filter } from './filters.js';
import type { HostView } from './host-view.js';
import type { Resources } from '../../api/resources.js';
import { pickHost, weighersFor } from './weighers.js';
import type { PickOptions, Weigher } from './weighers.js';
import type { VolumeTopology } from './volume-topology.js';

export type ScheduleResult = { host: string } | { unschedulable: string };

export interface ScheduleOptions extends PickOptions {
  weighers?: readonly Weigher[];
  filters?: readonly Filter[];
  /** Hosts to skip for this attempt, with the reason to count them under. */
  excluded?: ReadonlyMap<string, string>;
  /** What the instance's volumes demand of its host. */
  volumes?: VolumeTopology;
}

const DEFAULT_WEIGHERS = weighersFor('spread');

export function schedule(instance: Instance, req: Resources, hosts: Iterable<HostView>, opts: ScheduleOptions = {}): ScheduleResult {
  const ctx = filterContext(instance, req, opts.excluded, opts.volumes);
  const filters = opts.filters ?? DEFAULT_FILTERS;
  const passed: HostView[] = [];
  const failures = new Map<string, number>();
  let total = 0;
  const fast = filters === DEFAULT_FILTERS && isUnconstrained(ctx);
  for (const h of hosts) {
    total++;
    if (fast && passesDefaultUnconstrained(ctx, h)) {
      passed.push(h);
      continue;
    }
    const reason = firstFailure(ctx, h, filters);
    if (reason === null) passed.push(h);
    else failures.set(reason, (failures.get(reason) ?? 0) + 1);
  }
  const chosen = pickHost(ctx, passed, opts.weighers ?? DEFAULT_WEIGHERS, opts);
  if (chosen) return { host: chosen.name };
  return { unschedulable: unschedulableMessage(total, failures) };
}

/** `0/5 hosts available: 3 insufficient memory, 2 not ready` (count desc, then reason). */
export function unschedulableMessage(total: number, failures: ReadonlyMap<string, number>): string {
  if (total === 0) return '0/0 hosts available: no hosts registered';
  const parts = [...failures].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([r, n]) => `${n} ${r}`);
  return `0/${total} hosts available: ${parts.join(', ')}`;
}
