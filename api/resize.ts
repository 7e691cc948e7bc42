// Resize (Nova's resize, KubeVirt's RestartRequired): an instance bound to a host whose size
// (spec.flavor or spec.resources) changed keeps running with the size its host was charged for
// (Host.status.allocations) until its next restart; then the new size is claimed on its host,
// or, when that host lacks room, the instance moves cold to a host that has it. Shared by the
// instance controller (which reports the change and orders the moves), the node agent (which
// claims and redefines the domain at the restart) and the migration controller (which charges
// a resize move's target for the new size). Pure.
import { insufficiency } from './binding.js';
import type { BindingRefusal } from './binding.js';
import type { Condition } from './conditions.js';
import { findCondition } from './conditions.js';
import type { Host, HostAllocation, Instance } from './kinds/index.js';
import { formatQuantity } from './quantity.js';
import { formatResources, parseLenient, sumQuantities } from './resources.js';
import type { Resources } from './resources.js';

/** The condition type: True while the instance's spec asks for a size its guest does not have yet. */
export const RESTART_REQUIRED = 'RestartRequired';

/** RestartRequired reasons, and who writes each. */
export const ResizeReasons = Object.freeze({
  /** True (instance controller): the size changed; it applies at the next restart. */
  FlavorChanged: 'FlavorChanged',
  /** True (node agent): at the restart the current host lacked room; the guest is kept off for a cold move. */
  MoveRequired: 'MoveRequired',
  /** True (instance controller): a cold Migration is moving the instance to a host with room. */
  Moving: 'Moving',
  /** True (instance controller): no host had room; the node agent boots the old size and says so. */
  NoHostWithRoom: 'NoHostWithRoom',
  /** True (instance controller): the move failed for another reason; handled like NoHostWithRoom. */
  MoveFailed: 'MoveFailed',
  /** False (instance controller): the new size has a smaller disk; disks never shrink, nothing changes. */
  DiskShrinkRefused: 'DiskShrinkRefused',
  /** False (node agent): the guest runs with the new size. */
  Resized: 'Resized',
  /** False (instance controller): the spec asks for the size the guest has again. */
  Unchanged: 'Unchanged',
} as const);

/** Label on a Migration the instance controller creates for a resize: the instance's uid. */
export const RESIZE_MIGRATION_LABEL = 'kova.dev/resize-of';

/** A resize move: its target is charged for the instance's new size (spec), not the size it runs with. */
export function isResizeMigration(m: { metadata: { labels?: Record<string, string> } }): boolean {
  return !!m.metadata.labels?.[RESIZE_MIGRATION_LABEL];
}

/** "2 vCPUs, 1Gi memory, 20Gi disk". */
export function describeSize(r: Resources): string {
  return `${r.vcpus} vCPU${r.vcpus === 1 ? '' : 's'}, ${formatQuantity(r.memoryBytes)} memory, ${formatQuantity(r.diskBytes)} disk`;
}

export function sameSize(a: Resources, b: Resources): boolean {
  return a.vcpus === b.vcpus && a.memoryBytes === b.memoryBytes && a.diskBytes === b.diskBytes;
}

/** What `host` charges the instance `uid` for, or undefined when it holds no allocation for it. */
export function chargedSize(host: Pick<Host, 'status'> | undefined, uid: string): Resources | undefined {
  const a = host?.status?.allocations?.find((x) => x.uid === uid);
  return a ? parseLenient(a) : undefined;
}

/**
 * The allocations of `host` with the instance's entry set to `req` (a compare-and-swap claim
 * re-checks room against the other instances), or why it does not fit.
 */
export function reclaim(host: Host, inst: Pick<Instance, 'metadata'>, req: Resources): { allocations: HostAllocation[]; allocated: ReturnType<typeof formatResources> } | { refused: BindingRefusal } {
  const uid = inst.metadata.uid!;
  const others = (host.status?.allocations ?? []).filter((a) => a.uid !== uid);
  const short = insufficiency(host, others, req);
  if (short) return { refused: short };
  const allocations = [...others, { uid, instance: `${inst.metadata.namespace}/${inst.metadata.name}`, ...formatResources(req) }];
  return { allocations, allocated: formatResources(sumQuantities(allocations)) };
}

/** The instance's RestartRequired condition, if any. */
export function restartRequired(inst: Pick<Instance, 'status'>): Condition | undefined {
  return findCondition(inst.status?.conditions, RESTART_REQUIRED);
}

/** The message of FlavorChanged: old and new sizes, and what happens next. */
export function flavorChangedMessage(inst: Pick<Instance, 'metadata' | 'spec' | 'status'>, running: Resources, wanted: Resources): string {
  const what = inst.spec.flavor ? `flavor ${inst.spec.flavor}` : 'spec.resources';
  const host = inst.status?.hostName ?? 'its host';
  return `${what} asks for ${describeSize(wanted)}; the guest has ${describeSize(running)} until its next restart ` +
    `(kova restart ${inst.metadata.name}, or a stop and start), which applies the new size on host ${host} if it has room, ` +
    'or else moves the instance cold to a host that has';
}

/** The message of DiskShrinkRefused. */
export function diskShrinkMessage(inst: Pick<Instance, 'spec'>, running: Resources, wanted: Resources): string {
  const what = inst.spec.flavor ? `flavor ${inst.spec.flavor}` : 'spec.resources';
  return `${what} asks for a ${formatQuantity(wanted.diskBytes)} disk, smaller than the instance's ${formatQuantity(running.diskBytes)}: ` +
    `disks never shrink, so the instance keeps ${describeSize(running)}; choose a size with a disk of at least ${formatQuantity(running.diskBytes)}`;
}
