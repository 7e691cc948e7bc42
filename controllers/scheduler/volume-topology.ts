// What an Instance's volumes demand of its host (Kubernetes' volume binding, WaitForFirstConsumer):
// a local volume that has a host already pins the instance there; a local volume without one
// goes where the instance goes and needs room on that host's disk; shared volumes go anywhere.
// Pure: reads Volumes and VolumeTypes through lookups (the scheduler's informers).
import type { Instance, Volume } from '../../api/kinds/index.js';
import { isLocal, volumeBytes, volumeHost } from '../volume/placement.js';
import type { VolumeLookups } from '../volume/placement.js';

export interface VolumeTopology {
  /** Hosts that store the instance's local volumes: it can run only on a host that is all of them. */
  hosts: ReadonlySet<string>;
  /** Local volumes without a host yet: created on the instance's host, charged to its disk. */
  unplaced: readonly Volume[];
  /** Their summed spec.size. */
  unplacedBytes: number;
}

export const NO_VOLUMES: VolumeTopology = { hosts: new Set(), unplaced: [], unplacedBytes: 0 };

/** `unschedulable`: a volume the instance needs is not usable yet, and why. */
export function volumeTopology(inst: Instance, l: Pick<VolumeLookups, 'volume' | 'volumeType'>): VolumeTopology | { unschedulable: string } {
  const entries = inst.spec.volumes ?? [];
  if (entries.length === 0) return NO_VOLUMES;
  const ns = inst.metadata.namespace!;
  const hosts = new Set<string>();
  const unplaced: Volume[] = [];
  let unplacedBytes = 0;
  const seen = new Set<string>();
  for (const e of entries) {
    if (seen.has(e.volume)) continue;
    seen.add(e.volume);
    const v = l.volume(ns, e.volume);
    if (!v) return { unschedulable: `volume "${e.volume}" not found` };
    if (v.metadata.deletionTimestamp) return { unschedulable: `volume "${e.volume}" is being deleted` };
    if (!v.spec.volumeType) return { unschedulable: `volume "${e.volume}" has no VolumeType` };
    const type = l.volumeType(v.spec.volumeType);
    if (!type) return { unschedulable: `VolumeType "${v.spec.volumeType}" of volume "${e.volume}" not found` };
    if (!isLocal(type)) continue;
    const host = volumeHost(v);
    if (host) {
      hosts.add(host);
      continue;
    }
    // A clone or restore is placed with its source by the volume controller, not here.
    if (v.spec.source?.snapshot || v.spec.source?.volume) {
      const what = v.spec.source.snapshot ? `snapshot "${v.spec.source.snapshot}"` : `volume "${v.spec.source.volume}"`;
      return { unschedulable: `volume "${e.volume}" waits to be placed on the host of its source ${what}` };
    }
    // Immediate binding: the volume controller places it first (kube's "unbound immediate PersistentVolumeClaims").
    if (type.spec.volumeBindingMode === 'Immediate') return { unschedulable: `volume "${e.volume}" is not placed on a host yet (VolumeType "${type.metadata.name}" binds Immediate)` };
    const bytes = volumeBytes(v);
    if (bytes === undefined) return { unschedulable: `volume "${e.volume}" has an invalid size` };
    unplaced.push(v);
    unplacedBytes += bytes;
  }
  return { hosts, unplaced, unplacedBytes };
}

/** What a local volume costs its host's disk: its host and spec.size, or undefined when nothing. */
export function volumeCharge(v: Volume, l: Pick<VolumeLookups, 'volumeType'>): { host: string; bytes: number } | undefined {
  const host = volumeHost(v);
  if (!host || !v.spec.volumeType || !isLocal(l.volumeType(v.spec.volumeType))) return undefined;
  const bytes = volumeBytes(v);
  return bytes === undefined ? undefined : { host, bytes };
}
