// What the node agent knows about Volumes, VolumeTypes and VolumeSnapshots, and the pure rules
// that turn them into what a driver needs (VolumeDisk, SnapshotDisk, VolumeAttachSpec) or into
// the reason to wait. Both the volume reconciler (which provisions) and the instance reconciler
// (which attaches) go through here, so they agree on names, backends and readiness.
import type { AttachmentState, Instance, InstanceVolumeStatus, Volume, VolumeSnapshot, VolumeType } from '../../api/kinds/index.js';
import { volumeSerial } from '../../api/kinds/index.js';
import { quantityValue } from '../../api/quantity.js';
import type { InformerEvent, InformerHandler } from '../../client/informer.js';
import type { SnapshotDisk, StorageBackend, VolumeAttachSpec, VolumeDisk, VolumeFormat } from '../driver.js';

/** The agent's caches of the storage kinds (informers; shared by the sim agents of a process). */
export interface StorageView {
  volume(namespace: string, name: string): Volume | undefined;
  volumeType(name: string): VolumeType | undefined;
  snapshot(namespace: string, name: string): VolumeSnapshot | undefined;
  /** Every Instance of a namespace, on any host (who uses a volume). */
  instances(namespace: string): readonly Instance[];
}

/** An informer-like source of objects, for wiring wake-ups. */
export interface Watched<T> {
  on(event: InformerEvent, handler: InformerHandler<T>): void;
  off(event: InformerEvent, handler: InformerHandler<T>): void;
}

/** Phases in which a volume's file exists and can be attached. */
const PROVISIONED = new Set(['Available', 'Attaching', 'InUse', 'Detaching', 'Extending']);


export function backendOf(t: VolumeType): StorageBackend | { invalid: string } {
  if (t.spec.backend === 'local') return { type: 'local' };
  if (t.spec.backend === 'shared' && t.spec.sharedPath) return { type: 'shared', path: t.spec.sharedPath };
  return { invalid: `VolumeType ${t.metadata.name} has backend ${t.spec.backend} without a usable sharedPath` };
}

/** The backend of the VolumeType called `name`; undefined when there is none or it is unusable. */
export function backendNamed(storage: Pick<StorageView, 'volumeType'>, name: string | undefined): StorageBackend | undefined {
  const t = name ? storage.volumeType(name) : undefined;
  const b = t && backendOf(t);
  return b && !('invalid' in b) ? b : undefined;
}

/**
 * The file format of a VolumeType's volumes: raw when several instances may attach one at once
 * (QEMU shares no qcow2 file between writers; libvirt refuses `<shareable/>` on it), qcow2
 * otherwise. spec.multiAttach is immutable, so a volume's format never changes.
 */
export function volumeFormat(t: VolumeType): VolumeFormat {
  return t.spec.multiAttach ? 'raw' : 'qcow2';
}

/** The disk of a volume of VolumeType `type` (whose backend is `backend`). */
export function volumeDisk(v: Volume, type: VolumeType, backend: StorageBackend): VolumeDisk {
  return { uid: v.metadata.uid!, key: `${v.metadata.namespace}/${v.metadata.name}`, backend, format: volumeFormat(type) };
}

export function snapshotDisk(s: VolumeSnapshot, backend: StorageBackend): SnapshotDisk {
  return { uid: s.metadata.uid!, key: `${s.metadata.namespace}/${s.metadata.name}`, backend };
}

/** spec.size in bytes. */
export function sizeBytes(v: Volume): number {
  return quantityValue(v.spec.size);
}

export interface VolumeUse {
  instance: Instance;
  /** It is in the instance's spec.volumes (wanted). */
  wanted: boolean;
  /** What the instance's host reports (status.volumes), when anything. */
  reported?: InstanceVolumeStatus;
}

/** The instances of the volume's namespace that want it or still report it attached. */
export function volumeUses(v: Volume, storage: Pick<StorageView, 'instances'>): VolumeUse[] {
  const name = v.metadata.name!;
  const out: VolumeUse[] = [];
  for (const i of storage.instances(v.metadata.namespace!)) {
    const wanted = !!i.spec.volumes?.some((e) => e.volume === name);
    const reported = i.status?.volumes?.find((e) => e.volume === name);
    if (wanted || reported) out.push({ instance: i, wanted, ...(reported ? { reported } : {}) });
  }
  return out;
}

/** Volume.status.attachments from what the instances' hosts report, sorted by instance. */
export function attachmentsOf(uses: readonly VolumeUse[]): NonNullable<Volume['status']>['attachments'] {
  return uses
    .filter((u) => u.reported)
    .map((u) => ({
      instance: u.instance.metadata.name!,
      ...(u.reported!.device ? { device: u.reported!.device } : {}),
      ...(u.reported!.serial ? { serial: u.reported!.serial } : {}),
      ...(u.instance.status?.hostName ? { host: u.instance.status.hostName } : {}),
      state: u.reported!.state ?? 'Attaching',
    }))
    .sort((a, b) => a.instance.localeCompare(b.instance));
}

/**
 * The phase a provisioned volume shows for its attachments: Detaching or Attaching while any is
 * in between (a guest still holding the disk is never reported Available), InUse when attached.
 */
export function attachmentPhase(states: readonly (AttachmentState | undefined)[]): 'Available' | 'Attaching' | 'InUse' | 'Detaching' {
  if (states.includes('Detaching')) return 'Detaching';
  if (states.some((s) => s === 'Attaching' || s === undefined)) return 'Attaching';
  if (states.length) return 'InUse';
  return 'Available';
}

/**
 * How an instance on `host` gets one of its volumes: the attach spec, or why it must wait.
 * `ofInstance` is the instance's own name (its attachments do not conflict with it).
 */
export function resolveAttachment(
  storage: Pick<StorageView, 'volume' | 'volumeType'>,
  namespace: string,
  entry: { volume: string; readOnly?: boolean; bootOrder?: number },
  host: string,
  ofInstance: string,
  /** A migration target also takes the local volumes stored on the migration's source: they are copied with the guest. */
  migratingFrom?: string,
): { attach: VolumeAttachSpec } | { wait: string } {
  const v = storage.volume(namespace, entry.volume);
  if (!v) return { wait: `volume ${entry.volume} not found` };
  if (v.metadata.deletionTimestamp) return { wait: `volume ${entry.volume} is being deleted` };
  if (!v.spec.volumeType) return { wait: `volume ${entry.volume} has no VolumeType` };
  const type = storage.volumeType(v.spec.volumeType);
  if (!type) return { wait: `VolumeType ${v.spec.volumeType} of volume ${entry.volume} not found` };
  const backend = backendOf(type);
  if ('invalid' in backend) return { wait: backend.invalid };
  if (!PROVISIONED.has(v.status?.phase ?? '') || !v.status?.hostName) {
    return { wait: `volume ${entry.volume} is ${v.status?.phase ?? 'Pending'}, not created yet` };
  }
  if (backend.type === 'local' && v.status.hostName !== host && v.status.hostName !== migratingFrom) {
    return { wait: `volume ${entry.volume} is stored on host ${v.status.hostName}, not on ${host}` };
  }
  if (!type.spec.multiAttach) {
    const other = (v.status.attachments ?? []).find((a) => a.instance !== ofInstance);
    if (other) return { wait: `volume ${entry.volume} is attached to instance ${other.instance}, and VolumeType ${type.metadata.name} does not allow multiAttach` };
  }
  const attach: VolumeAttachSpec = { disk: volumeDisk(v, type, backend), serial: volumeSerial(v.metadata.uid!) };
  if (entry.readOnly) attach.readOnly = true;
  if (type.spec.multiAttach) attach.shareable = true;
  if (entry.bootOrder !== undefined) attach.bootOrder = entry.bootOrder;
  return { attach };
}
