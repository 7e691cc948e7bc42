// The migration controller's decisions, pure: the mode a Migration runs in, how its disks move,
// which hosts may receive the instance, and the status that reports each step.
import type { Instance, Migration, MigrationMode, MigrationStatus, MigrationStorage, Volume, VolumeType } from '../../api/kinds/index.js';
import { MigrationConditions } from '../../api/kinds/index.js';
import { setCondition } from '../../api/conditions.js';
import { DEFAULT_FILTERS, Excluded, VolumeNodeAffinity } from '../scheduler/filters.js';
import type { Filter } from '../scheduler/filters.js';

/** Why a Migration failed: the Failed condition's reason. */
export const MigrationReasons = Object.freeze({
  InstanceNotFound: 'InstanceNotFound',
  NotScheduled: 'NotScheduled',
  NotRunning: 'NotRunning',
  InstanceDeleted: 'InstanceDeleted',
  InFlight: 'MigrationInFlight',
  Unschedulable: 'Unschedulable',
  Unsupported: 'Unsupported',
  Aborted: 'Aborted',
  Succeeded: 'Succeeded',
} as const);

export interface StorageLookups {
  volume(namespace: string, name: string): Volume | undefined;
  volumeType(name: string): VolumeType | undefined;
}

/** Live for a guest that runs (or is paused), Cold for one that is off, unless the Migration says. */
export function effectiveMode(m: Migration, inst: Instance): MigrationMode {
  if (m.spec.mode) return m.spec.mode;
  const s = inst.status?.powerState;
  return s === 'Running' || s === 'Paused' ? 'Live' : 'Cold';
}

/**
 * How the instance's disks move: BlockCopy when any is local (the root disk of an image-backed
 * instance always is), Shared when all are on shared storage (boot from a shared volume), None
 * for a cold move with nothing local. `localVolumes` are the local Volumes that move with it.
 * An error when a volume or its type is missing.
 */
export function storagePlan(inst: Instance, mode: MigrationMode, l: StorageLookups): { storage: MigrationStorage; localVolumes: Volume[] } | { error: string } {
  const ns = inst.metadata.namespace!;
  const localVolumes: Volume[] = [];
  for (const e of inst.spec.volumes ?? []) {
    const v = l.volume(ns, e.volume);
    if (!v) return { error: `volume "${e.volume}" not found` };
    const type = v.spec.volumeType ? l.volumeType(v.spec.volumeType) : undefined;
    if (!type) return { error: `VolumeType "${v.spec.volumeType ?? ''}" of volume "${e.volume}" not found` };
    if (type.spec.backend === 'local') localVolumes.push(v);
  }
  const local = inst.spec.image !== undefined || localVolumes.length > 0;
  if (local) return { storage: 'BlockCopy', localVolumes };
  return { storage: mode === 'Live' ? 'Shared' : 'None', localVolumes };
}

/**
 * The scheduler's filters for a target: the source host is counted as such first, and a local
 * volume does not pin the instance (it moves with it).
 */
export const TARGET_FILTERS: readonly Filter[] = [Excluded, ...DEFAULT_FILTERS.filter((f) => f !== VolumeNodeAffinity && f !== Excluded)];

/**
 * The instance as the target's filters should see it: pinned to spec.targetHost (an explicit
 * target overrides the instance's own pin), with the Migration's nodeSelector added.
 */
export function targetQuery(inst: Instance, m: Migration): Instance {
  const spec = { ...inst.spec };
  if (m.spec.targetHost) spec.hostName = m.spec.targetHost;
  else if (spec.hostName === inst.status?.hostName) delete spec.hostName;
  if (m.spec.nodeSelector) spec.nodeSelector = { ...spec.nodeSelector, ...m.spec.nodeSelector };
  return { ...inst, spec };
}

/** A copy of `st` ended as Failed with `reason`. */
export function failedStatus(st: MigrationStatus | undefined, reason: string, message: string, now = new Date()): MigrationStatus {
  const next: MigrationStatus = { ...(st ?? {}), phase: 'Failed', endTime: st?.endTime ?? now.toISOString() };
  next.conditions = setCondition(next.conditions, { type: MigrationConditions.Failed, status: 'True', reason, message }, now);
  next.conditions = setCondition(next.conditions, { type: MigrationConditions.Succeeded, status: 'False', reason, message }, now);
  return next;
}

/** A copy of `st` ended as Succeeded. */
export function succeededStatus(st: MigrationStatus | undefined, now = new Date()): MigrationStatus {
  const message = `the instance runs on host ${st?.targetHost ?? '?'}`;
  const next: MigrationStatus = { ...(st ?? {}), phase: 'Succeeded', endTime: st?.endTime ?? now.toISOString(), progress: 100 };
  next.conditions = setCondition(next.conditions, { type: MigrationConditions.Succeeded, status: 'True', reason: MigrationReasons.Succeeded, message }, now);
  next.conditions = setCondition(next.conditions, { type: MigrationConditions.Failed, status: 'False', reason: MigrationReasons.Succeeded, message }, now);
  return next;
}
