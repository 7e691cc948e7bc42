// Migration: one request to move an Instance to another Host, live (the guest keeps running)
// or cold (a stopped instance's disks are copied). Like KubeVirt's
// VirtualMachineInstanceMigration, one object per attempt: a failed Migration stays Failed,
// and a new one may be created at once.
import type { KObject, ObjectMeta } from '../types.js';
import { resourceRef, type API_VERSION, type Quantity, type StatusBase } from './meta.js';

export const MIGRATIONS = resourceRef('Migration', 'migrations', true);

export type MigrationMode = 'Live' | 'Cold';
export type MigrationPhase = 'Pending' | 'Scheduling' | 'PreparingTarget' | 'Running' | 'Succeeded' | 'Failed';
/**
 * How the disks move: Shared (every disk is on shared storage: only memory and device state
 * travel), BlockCopy (local disks are copied to the target while the guest runs), None (a
 * stopped instance without local disks: only its definition moves).
 */
export type MigrationStorage = 'Shared' | 'BlockCopy' | 'None';

export interface MigrationSpec {
  /** Name of the Instance in this namespace. Immutable. */
  instance: string;
  /** Move to this Host (it must pass the scheduler's filters). */
  targetHost?: string;
  /** Labels the target Host must carry. */
  nodeSelector?: Record<string, string>;
  /** Live when the instance runs and Cold when it is stopped, unless set. */
  mode?: MigrationMode;
  /** Switch to post-copy when pre-copy does not converge (the guest runs on the target while the rest of its memory follows). */
  allowPostCopy?: boolean;
  /** Throttle the guest's vCPUs when pre-copy does not converge. */
  allowAutoConverge?: boolean;
  /** Bytes per second for the transfer (memory and disks); unlimited when absent. */
  bandwidth?: Quantity;
  /** Abort when the transfer has not finished after this many seconds per GiB of memory and copied disk (default 150). */
  completionTimeoutPerGiB?: number;
  /** Abort when the remaining data has not shrunk for this many seconds (default 150). */
  progressTimeoutSeconds?: number;
}

export interface MigrationStatus extends StatusBase {
  phase?: MigrationPhase;
  /** metadata.uid of the Instance when the migration started (a recreated instance is not moved). */
  instanceUID?: string;
  sourceHost?: string;
  targetHost?: string;
  /** The mode in effect (spec.mode, or what the instance's power state implies). */
  mode?: MigrationMode;
  storage?: MigrationStorage;
  startTime?: string;
  endTime?: string;
  /** How long the guest was paused at switch-over. */
  downtimeMs?: number;
  /** Bytes sent so far (memory and disks). */
  dataProcessedBytes?: number;
  /** Bytes to send in all, as the hypervisor estimates it. */
  dataTotalBytes?: number;
  dataRemainingBytes?: number;
  /** Percent done, 0–100, while Running. */
  progress?: number;
  /**
   * What the target host prepared for the source to connect to (hypervisor URI, inbound
   * address, disk locations): Nova's migrate_data, written by the target host.
   */
  migrateData?: Record<string, string>;
}

export interface Migration extends KObject {
  apiVersion: typeof API_VERSION;
  kind: 'Migration';
  metadata: ObjectMeta;
  spec: MigrationSpec;
  status?: MigrationStatus;
}

/** Held by the controller until a deleted Migration's transfer is aborted (or was over). */
export const MIGRATION_ABORT_FINALIZER = 'kova.dev/migration-abort';

/** Conditions of a Migration: kubectl wait mig/X --for=condition=Succeeded. */
export const MigrationConditions = Object.freeze({
  /** True once the instance runs on the target and the source is released. */
  Succeeded: 'Succeeded',
  /** True once the migration ended without moving the instance; its reason says why. */
  Failed: 'Failed',
  /** True once the target host has prepared (image, disks, ports, volumes). */
  TargetReady: 'TargetReady',
  /**
   * True once the hypervisor finished: the guest runs on the target and is gone from the
   * source (written by a host); the controller then moves the binding and sets Succeeded.
   */
  Transferred: 'Transferred',
} as const);

export const DEFAULT_COMPLETION_TIMEOUT_PER_GIB = 150;
export const DEFAULT_PROGRESS_TIMEOUT_SECONDS = 150;

/** A Migration that has ended (it moves nothing any more). */
export function migrationFinished(m: Pick<Migration, 'status'>): boolean {
  return m.status?.phase === 'Succeeded' || m.status?.phase === 'Failed';
}
