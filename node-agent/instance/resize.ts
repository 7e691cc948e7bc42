// The node agent's part in a resize (api/resize.ts): at a boot of an existing guest (a restart,
// a start after a stop) or a spawn, the size it boots with is the size its host is charged for.
// When the spec asks for another size, the agent first claims it on its own host (compare-and-
// swap on Host.status.allocations that re-checks room); when the host lacks room it keeps the
// guest off and asks for a cold move (RestartRequired reason MoveRequired), which the instance
// controller turns into a Migration. bootPlan is the decision, pure; the reconciler acts on it.
import type { Condition } from '../../api/conditions.js';
import { describeSize, ResizeReasons, RESTART_REQUIRED, sameSize } from '../../api/resize.js';
import type { Resources } from '../../api/resources.js';
import type { CondSpec } from './agent-status.js';

export interface ResizeFacts {
  /** The size the spec asks for; undefined when it cannot be known (flavor missing). */
  wanted?: Resources;
  /** What this host charges the instance for; undefined when it holds no allocation for it. */
  charged?: Resources;
  /** The instance's RestartRequired condition. */
  condition?: Pick<Condition, 'status' | 'reason' | 'message'>;
}

export type BootPlan =
  /** Boot with `size` (the domain is redefined to it first when given). */
  | { kind: 'boot'; size?: Resources; consumesNoRoom?: boolean }
  /** Claim `size` on this host first; boot with it, or ask for a move when the host lacks room. */
  | { kind: 'claim'; size: Resources }
  /** Keep the guest off: a cold move to a host with room is being arranged. */
  | { kind: 'hold'; why: string };

/** What to do at a boot. */
export function bootPlan(f: ResizeFacts): BootPlan {
  const { wanted, charged } = f;
  if (!wanted || !charged) return { kind: 'boot' };
  // Disks never shrink: the instance keeps what it has (the controller says so).
  if (wanted.diskBytes < charged.diskBytes) return { kind: 'boot', size: charged };
  if (sameSize(wanted, charged)) return { kind: 'boot', size: wanted };
  switch (f.condition?.status === 'True' ? f.condition.reason : undefined) {
    case ResizeReasons.MoveRequired:
    case ResizeReasons.Moving:
      return { kind: 'hold', why: `resizing to ${describeSize(wanted)}: waiting for a cold move to a host with room` };
    case ResizeReasons.NoHostWithRoom:
    case ResizeReasons.MoveFailed:
      // This restart found no room anywhere: boot as it was; the next restart tries again.
      return { kind: 'boot', size: charged, consumesNoRoom: true };
    default:
      return { kind: 'claim', size: wanted };
  }
}

/**
 * Whether a boot needs bootPlan at all (it costs a read of the Host): a resize is pending, or
 * the domain's vCPUs or memory differ from the spec's.
 */
export function resizeMayApply(wanted: Resources | undefined, condition: Pick<Condition, 'status'> | undefined, dom?: { vcpus: number; memoryBytes: number }): boolean {
  if (!wanted) return false;
  if (condition?.status === 'True') return true;
  return !!dom && (dom.vcpus !== wanted.vcpus || dom.memoryBytes !== wanted.memoryBytes);
}

/** RestartRequired once the host lacked room at the restart. */
export function moveRequiredCondition(host: string, wanted: Resources, why: string, generation?: number): CondSpec {
  return {
    type: RESTART_REQUIRED, status: 'True', reason: ResizeReasons.MoveRequired, observedGeneration: generation,
    message: `at the restart, host ${host} lacked room for ${describeSize(wanted)} (${why}); the guest stays off while it moves cold to a host with room`,
  };
}

/** RestartRequired after a boot: cleared when the guest got the size its spec asks for; after a boot with the old size (no room anywhere), pending until the next restart. */
export function afterBootCondition(host: string, plan: BootPlan, f: ResizeFacts, generation?: number): CondSpec | undefined {
  if (plan.kind !== 'boot' || !plan.size || !f.wanted) return undefined;
  if (plan.consumesNoRoom) {
    return {
      type: RESTART_REQUIRED, status: 'True', reason: ResizeReasons.FlavorChanged, observedGeneration: generation,
      message: `${f.condition?.message ?? 'no host had room for the new size'}; the guest was started again with ${describeSize(plan.size)} on host ${host}; ${describeSize(f.wanted)} applies at the next restart`,
    };
  }
  if (f.condition?.status === 'True' && sameSize(plan.size, f.wanted)) {
    return { type: RESTART_REQUIRED, status: 'False', reason: ResizeReasons.Resized, observedGeneration: generation, message: `the guest runs with ${describeSize(plan.size)} since its restart on host ${host}` };
  }
  return undefined;
}
