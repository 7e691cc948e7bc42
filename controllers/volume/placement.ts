// Where a Volume is provisioned, as pure rules the volume controller and the scheduler share.
// A local volume lives on one host (Kubernetes' local PersistentVolumes): its host is fixed by
// the agent that stores it (status.hostName), or chosen beforehand and written to the
// kova.dev/selected-host annotation, by the scheduler for its first consumer (WaitForFirstConsumer)
// or by the volume controller when its source (snapshot, volume) lives on one host. A shared
// volume is reachable from every host: any Ready host may provision it.
import { createHash } from 'node:crypto';
import type { Host, Volume, VolumeSnapshot, VolumeType } from '../../api/kinds/index.js';
import { quantityValue } from '../../api/quantity.js';

export interface VolumeLookups {
  volume(namespace: string, name: string): Volume | undefined;
  volumeType(name: string): VolumeType | undefined;
  snapshot(namespace: string, name: string): VolumeSnapshot | undefined;
}

export { volumeHost } from '../../api/kinds/index.js';

/** spec.size in bytes; undefined when it does not parse (validation should have refused it). */
export function volumeBytes(v: Volume): number | undefined {
  try {
    return quantityValue(v.spec.size);
  } catch {
    return undefined;
  }
}

export function isLocal(t: VolumeType | undefined): boolean {
  return t?.spec.backend === 'local';
}

/**
 * Where the volume's source pins it: `host` when the source lives on one host's local storage,
 * `wait` (with the Ready condition to show) while that is not known yet, `free` when the
 * source does not constrain the host (blank, an Image, or a source on shared storage).
 */
export type SourcePlacement =
  | { host: string }
  | { wait: { reason: string; message: string } }
  | { free: true };

export function sourcePlacement(v: Volume, l: VolumeLookups): SourcePlacement {
  const ns = v.metadata.namespace!;
  const src = v.spec.source;
  if (src?.snapshot) {
    const s = l.snapshot(ns, src.snapshot);
    if (!s) return { wait: { reason: 'SnapshotNotFound', message: `VolumeSnapshot "${src.snapshot}" not found; create it, or recreate the volume from an existing one` } };
    if (!s.status?.readyToUse || !s.status.hostName) {
      return { wait: { reason: 'WaitingForSnapshot', message: `waiting for VolumeSnapshot "${src.snapshot}" to be ready to use` } };
    }
    // A snapshot on the shared backend can be restored anywhere; else where its file is.
    const type = s.status.volumeType ? l.volumeType(s.status.volumeType) : undefined;
    return type?.spec.backend === 'shared' ? { free: true } : { host: s.status.hostName };
  }
  if (src?.volume) {
    const from = l.volume(ns, src.volume);
    if (!from) return { wait: { reason: 'SourceVolumeNotFound', message: `source volume "${src.volume}" not found` } };
    const type = from.spec.volumeType ? l.volumeType(from.spec.volumeType) : undefined;
    if (type?.spec.backend === 'shared') return { free: true };
    if (!from.status?.hostName) {
      return { wait: { reason: 'WaitingForSourceVolume', message: `waiting for source volume "${src.volume}" to be created on a host` } };
    }
    return { host: from.status.hostName };
  }
  return { free: true };
}

/** Ready and accepting work (not cordoned, not fenced). */
export function isSchedulableHost(h: Host): boolean {
  return !h.spec?.unschedulable && !h.spec?.fenced && (h.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/**
 * A host for a volume that any host may provision: the same for the same uid while the set of
 * candidates is unchanged, and spread evenly over them (the uid's hash over the sorted names).
 */
export function spreadHost(uid: string, hosts: readonly Host[]): string | undefined {
  const names = hosts.filter(isSchedulableHost).map((h) => h.metadata.name!).sort();
  if (names.length === 0) return undefined;
  const n = createHash('sha256').update(uid).digest().readUInt32BE(0);
  return names[n % names.length];
}
