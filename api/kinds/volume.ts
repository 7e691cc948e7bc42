// Volume: a data disk, blank or copied from an Image, attached to at most one instance.
import type { KObject, ObjectMeta } from '../types.js';
import { resourceRef, type API_VERSION, type Quantity, type StatusBase } from './meta.js';

export const VOLUMES = resourceRef('Volume', 'volumes', true);

export type VolumePhase = 'Pending' | 'Available' | 'InUse' | 'Failed';

export interface VolumeSpec {
  size: Quantity;
  /** Blank when omitted. */
  source?: { image: string };
}

export interface VolumeStatus extends StatusBase {
  phase?: VolumePhase;
  /** The Instance it is attached to. */
  attachedTo?: string;
  /** The Host that stores it. */
  hostName?: string;
}

export interface Volume extends KObject {
  apiVersion: typeof API_VERSION;
  kind: 'Volume';
  metadata: ObjectMeta;
  spec: VolumeSpec;
  status?: VolumeStatus;
}
