// VolumeType: a class of Volumes (Cinder volume type, Kubernetes StorageClass).
import type { KObject, ObjectMeta } from '../types.js';
import { resourceRef, type API_VERSION, type StatusBase } from './meta.js';

export const VOLUME_TYPES = resourceRef('VolumeType', 'volumetypes', false);

export type VolumeBackend = 'local' | 'shared';

export interface VolumeTypeSpec {
  backend: VolumeBackend;
  /** Required for `shared`: the directory mounted at the same place on every host. */
  sharedPath?: string;
  /** Defaults to true. */
  allowVolumeExpansion?: boolean;
  /** Defaults to false. */
  multiAttach?: boolean;
  /** Defaults to WaitForFirstConsumer (local volumes are created where their first instance runs). */
  volumeBindingMode?: 'Immediate' | 'WaitForFirstConsumer';
}

export type VolumeTypeStatus = StatusBase;

export interface VolumeType extends KObject {
  apiVersion: typeof API_VERSION;
  kind: 'VolumeType';
  metadata: ObjectMeta;
  spec: VolumeTypeSpec;
  status?: VolumeTypeStatus;
}

/** `"true"` marks the default VolumeType (storageclass.kubernetes.io/is-default-class). */
export const ANNOTATION_DEFAULT_VOLUME_TYPE = 'kova.dev/is-default-volume-type';

export function isDefaultVolumeType(t: Pick<VolumeType, 'metadata'>): boolean {
  return t.metadata.annotations?.[ANNOTATION_DEFAULT_VOLUME_TYPE] === 'true';
}
