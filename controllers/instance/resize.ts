// The instance controller's part in a resize (api/resize.ts), pure: from a bound instance, the
// size its spec asks for, the size its host charges it for and its resize Migrations, what to
// do next: report the change (RestartRequired), start a cold move the node agent asked for, or
// report how the move ended. The node agent does the rest at the restart (node-agent/instance/resize.ts).
import type { Condition } from '../../api/conditions.js';
import type { Instance, Migration } from '../../api/kinds/index.js';
import { MigrationConditions } from '../../api/kinds/index.js';
import { findCondition } from '../../api/conditions.js';
import { describeSize, diskShrinkMessage, flavorChangedMessage, ResizeReasons, RESTART_REQUIRED, restartRequired, sameSize } from '../../api/resize.js';
import type { Resources } from '../../api/resources.js';

export type CondSpec = Omit<Condition, 'lastTransitionTime'>;

export type ResizeAction =
  | { kind: 'none' }
  | { kind: 'setCondition'; condition: CondSpec }
  /** Create a cold Migration labelled as this instance's resize. */
  | { kind: 'createMigration' };

export interface ResizeInput {
  inst: Pick<Instance, 'metadata' | 'spec' | 'status'>;
  /** The size the spec asks for (undefined: unknown, e.g. the flavor is missing). */
  wanted?: Resources;
  /** What the instance's host charges it for (undefined: no allocation found). */
  charged?: Resources;
  /** The Migrations labelled as resizes of this instance (any order). */
  migrations: readonly Migration[];
}

function finished(m: Migration): boolean {
  return m.status?.phase === 'Succeeded' || m.status?.phase === 'Failed';
}

function newest(ms: readonly Migration[]): Migration | undefined {
  return [...ms].sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '') || (a.metadata.name ?? '').localeCompare(b.metadata.name ?? '')).at(-1);
}

/** The next step of a resize for a bound instance. */
export function resizeAction({ inst, wanted, charged, migrations }: ResizeInput): ResizeAction {
  if (!inst.status?.hostName || inst.metadata.deletionTimestamp || !wanted || !charged) return { kind: 'none' };
  const gen = inst.metadata.generation;
  const cond = restartRequired(inst);
  const reason = cond?.status === 'True' ? cond.reason : undefined;
  const set = (c: CondSpec): ResizeAction => (same(cond, c) ? { kind: 'none' } : { kind: 'setCondition', condition: c });

  if (reason === ResizeReasons.MoveRequired) {
    const running = migrations.find((m) => !finished(m));
    if (running) return set({ type: RESTART_REQUIRED, status: 'True', reason: ResizeReasons.Moving, observedGeneration: gen, message: `moving cold to a host with room for ${describeSize(wanted)} (migration ${running.metadata.name}); the guest boots there with the new size` });
    // Another Migration moves it meanwhile: ask again once it has ended.
    if (inst.status.migration) return { kind: 'none' };
    return { kind: 'createMigration' };
  }
  if (reason === ResizeReasons.Moving) {
    const m = newest(migrations);
    if (m && !finished(m)) return { kind: 'none' };
    if (m?.status?.phase === 'Succeeded') return { kind: 'none' }; // the new host's agent boots it with the new size
    const failed = m && findCondition(m.status?.conditions, MigrationConditions.Failed);
    if (failed?.reason === 'Unschedulable') {
      return set({ type: RESTART_REQUIRED, status: 'True', reason: ResizeReasons.NoHostWithRoom, observedGeneration: gen, message: `no host has room for ${describeSize(wanted)}: ${failed.message ?? ''}; the instance keeps ${describeSize(charged)} on host ${inst.status.hostName}` });
    }
    const why = m ? `migration ${m.metadata.name} failed: ${failed?.message ?? 'no reason given'}` : 'its migration is gone';
    return set({ type: RESTART_REQUIRED, status: 'True', reason: ResizeReasons.MoveFailed, observedGeneration: gen, message: `the cold move to a host with room for ${describeSize(wanted)} did not happen (${why}); the instance keeps ${describeSize(charged)} on host ${inst.status.hostName}` });
  }
  // Consumed by the node agent at the boot that follows.
  if (reason === ResizeReasons.NoHostWithRoom || reason === ResizeReasons.MoveFailed) return { kind: 'none' };

  if (sameSize(wanted, charged)) {
    // Right after the agent's claim the sizes match while it boots the guest: it clears the
    // condition itself once the guest runs (Resized). Only a new spec (a change undone) is cleared here.
    const stale = cond?.status === 'True' || cond?.reason === ResizeReasons.DiskShrinkRefused;
    if (stale && cond?.observedGeneration !== gen) {
      return set({ type: RESTART_REQUIRED, status: 'False', reason: ResizeReasons.Unchanged, observedGeneration: gen, message: `the spec asks for the size the guest has: ${describeSize(charged)}` });
    }
    return { kind: 'none' };
  }
  if (wanted.diskBytes < charged.diskBytes) {
    return set({ type: RESTART_REQUIRED, status: 'False', reason: ResizeReasons.DiskShrinkRefused, observedGeneration: gen, message: diskShrinkMessage(inst, charged, wanted) });
  }
  // The agent may have added what the last restart found (no room anywhere): keep its message for this spec.
  if (reason === ResizeReasons.FlavorChanged && cond?.observedGeneration === gen) return { kind: 'none' };
  return set({ type: RESTART_REQUIRED, status: 'True', reason: ResizeReasons.FlavorChanged, observedGeneration: gen, message: flavorChangedMessage(inst, charged, wanted) });
}

function same(c: Condition | undefined, want: CondSpec): boolean {
  return !!c && c.status === want.status && c.reason === want.reason && c.message === want.message && c.observedGeneration === want.observedGeneration;
}
