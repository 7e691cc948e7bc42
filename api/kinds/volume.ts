// Volume: persistent block storage (Cinder's volume), attached declaratively through
// Instance spec.volumes; VolumeType says where it lives, VolumeSnapshot copies it.
import type { KObject, ObjectMeta } from '../types.js';
import { resourceRef, type API_VERSION, type Quantity, type StatusBase } from './meta.js';

export const VOLUMES = resourceRef('Volume', 'volumes', true);

/** Cinder's state machine in Kubernetes form. */
export type VolumePhase = 'Pending' | 'Creating' | 'Available' | 'Attaching' | 'InUse' | 'Detaching' | 'Extending' | 'Deleting' | 'Failed';
export type AttachmentState = 'Attaching' | 'Attached' | 'Detaching';

/** At most one is set; blank when none is. */
export interface VolumeSource {
  image?: string;
  snapshot?: string;
  volume?: string;
}

export interface VolumeSpec {
  size: Quantity;
  /** The default VolumeType is filled in at admission when omitted. */
  volumeType?: string;
  source?: VolumeSource;
}

export interface VolumeAttachment {
  instance: string;
  device?: string;
  serial?: string;
  host?: string;
  state?: AttachmentState;
}

export interface VolumeStatus extends StatusBase {
  phase?: VolumePhase;
  /** The Host that stores a local volume (or provisioned a shared one). */
  hostName?: string;
  capacity?: Quantity;
  attachments?: VolumeAttachment[];
}

export interface Volume extends KObject {
  apiVersion: typeof API_VERSION;
  kind: 'Volume';
  metadata: ObjectMeta;
  spec: VolumeSpec;
  status?: VolumeStatus;
}

/** Protects a Volume from deletion while it is attached (like kubernetes.io/pvc-protection). */
export const VOLUME_PROTECTION_FINALIZER = 'kova.dev/volume-protection';
/**
 * Host chosen for a local volume not created yet: by the scheduler for its first consumer
 * (WaitForFirstConsumer), by the volume controller for a source that lives on one host, or
 * for a shared volume, the host that provisions it. Kubernetes' volume.kubernetes.io/selected-node.
 */
export const ANNOTATION_SELECTED_HOST = 'kova.dev/selected-host';

/**
 * The host that owns a volume: the one that stores it (status.hostName), or the one chosen to
 * create it (ANNOTATION_SELECTED_HOST); undefined while none is.
 */
export function volumeHost(v: Pick<Volume, 'metadata' | 'status'>): string | undefined {
  return v.status?.hostName || v.metadata.annotations?.[ANNOTATION_SELECTED_HOST] || undefined;
}

/** The serial a guest sees for a volume: virtio-blk keeps 20 characters. */
export function volumeSerial(uid: string): string {
  return uid.slice(0, 20);
}
