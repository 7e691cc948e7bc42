// Image: a disk image imported once and copied into instances' root disks and volumes.
import type { KObject, ObjectMeta } from '../types.js';
import { resourceRef, type API_VERSION, type StatusBase } from './meta.js';

export const IMAGES = resourceRef('Image', 'images', true);

export type ImageFormat = 'qcow2' | 'raw';
/** Who may boot from the image: its project, every project, or its project and spec.members. */
export type ImageVisibility = 'Private' | 'Public' | 'Shared';
export type ImagePhase = 'Pending' | 'Importing' | 'Ready' | 'Failed';

/** Exactly one is set. */
export interface ImageSource {
  http?: { url: string };
  /** A file on the control plane host. */
  file?: { path: string };
  /** A Volume of the Image's project, copied crash-consistently. */
  volume?: string;
  /** A VolumeSnapshot of the Image's project. */
  snapshot?: string;
}

export interface ImageSpec {
  source: ImageSource;
  /** Detected from the file when omitted. */
  format?: ImageFormat;
  /** Expected digest, 64 lowercase hex digits. */
  sha256?: string;
  /** Defaults to Private (usable only from the Image's namespace). */
  visibility?: ImageVisibility;
  /**
   * Projects (namespaces) a Shared image is shared with (Glance's image members, without the
   * accept step: this list is the grant). Only with visibility Shared.
   */
  members?: string[];
}

export interface ImageStatus extends StatusBase {
  phase?: ImagePhase;
  /** Bytes of the stored file. */
  size?: number;
  /** Bytes of the disk the image expands to. */
  virtualSize?: number;
  format?: string;
  sha256?: string;
  /** A percentage such as "42%". */
  progress?: string;
}

export interface Image extends KObject {
  apiVersion: typeof API_VERSION;
  kind: 'Image';
  metadata: ObjectMeta;
  spec: ImageSpec;
  status?: ImageStatus;
}
