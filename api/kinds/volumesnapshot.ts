// VolumeSnapshot: a point-in-time, crash-consistent copy of a Volume.
import type { KObject, ObjectMeta } from '../types.js';
import { resourceRef, type API_VERSION, type Quantity, type StatusBase } from './meta.js';

export const VOLUME_SNAPSHOTS = resourceRef('VolumeSnapshot', 'volumesnapshots', true);

export interface VolumeSnapshotSpec {
  source: { volume: string };
}

export interface VolumeSnapshotStatus extends StatusBase {
  readyToUse?: boolean;
  restoreSize?: Quantity;
  creationTime?: string;
  /** The host that took and stores it. */
  hostName?: string;
  volumeType?: string;
  /** The snapshot file's path on its host (or on the shared backend). */
  snapshotHandle?: string;
}

export interface VolumeSnapshot extends KObject {
  apiVersion: typeof API_VERSION;
  kind: 'VolumeSnapshot';
  metadata: ObjectMeta;
  spec: VolumeSnapshotSpec;
  status?: VolumeSnapshotStatus;
}

/** Held by the host that stores a snapshot's file until it has removed it. */
export const SNAPSHOT_CLEANUP_FINALIZER = 'kova.dev/snapshot-cleanup';
