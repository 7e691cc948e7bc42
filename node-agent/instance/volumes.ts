// Makes the volumes attached to a domain match Instance spec.volumes, the desired set: attaches
// what is wanted and ready (hot plug when the guest runs), asks the guest to release what is no
// longer wanted and keeps reporting it Detaching until the hypervisor says it is gone (the
// request is sent again on every pass: a guest that is still booting may ignore it). Returns
// what status.volumes should say; the agent writes it with the rest of the status.
import type { Instance, InstanceVolumeStatus } from '../../api/kinds/index.js';
import { volumeSerial } from '../../api/kinds/index.js';
import type { AttachedVolume, ComputeDriver } from '../driver.js';
import { resolveAttachment } from '../volume/storage.js';
import type { StorageView } from '../volume/storage.js';

export interface VolumeSync {
  volumes: InstanceVolumeStatus[];
  /** Something is not done yet (waiting for a volume, or for the guest to release one). */
  pending: boolean;
  /** Hot plugs and unplugs done in this pass, for events. */
  attached: string[];
  detached: string[];
}

/** Whether an instance needs a look at its domain's volumes at all (saves a hypervisor call). */
export function hasVolumeWork(inst: Instance): boolean {
  return !!inst.spec.volumes?.length || !!inst.status?.volumes?.length;
}

/** `read`: the domain's volumes as listVolumes returned them just before, if nothing changed it since. */
export async function syncVolumes(inst: Instance, id: string, driver: ComputeDriver, storage: Pick<StorageView, 'volume' | 'volumeType'>, host: string, read?: AttachedVolume[]): Promise<VolumeSync> {
  const ns = inst.metadata.namespace!;
  const name = inst.metadata.name!;
  const actual = read ?? (await driver.listVolumes(id));
  const bySerial = new Map<string, AttachedVolume>(actual.map((a) => [a.serial, a]));
  const out: VolumeSync = { volumes: [], pending: false, attached: [], detached: [] };
  const wantedSerials = new Set<string>();
  const reported = new Map((inst.status?.volumes ?? []).map((s) => [s.volume, s]));

  for (const entry of inst.spec.volumes ?? []) {
    const v = storage.volume(ns, entry.volume);
    // A wanted volume missing from the cache keeps the disk status says it has: never unplug on a cache miss.
    const serial = v?.metadata.uid ? volumeSerial(v.metadata.uid) : reported.get(entry.volume)?.serial;
    if (serial) wantedSerials.add(serial);
    const have = serial ? bySerial.get(serial) : undefined;
    if (have) {
      out.volumes.push({ volume: entry.volume, device: have.device, serial: have.serial, state: 'Attached' });
      continue;
    }
    const r = resolveAttachment(storage, ns, entry, host, name);
    if ('wait' in r) {
      out.pending = true;
      out.volumes.push({ volume: entry.volume, state: 'Attaching', message: r.wait });
      continue;
    }
    const a = await driver.attachVolume(id, r.attach);
    out.attached.push(entry.volume);
    out.volumes.push({ volume: entry.volume, device: a.device, serial: a.serial, state: 'Attached' });
  }

  // Attached but not wanted: unplug. The volume's name comes from what status said before.
  const names = new Map([...reported.values()].filter((s) => s.serial).map((s) => [s.serial!, s.volume]));
  for (const a of actual) {
    if (wantedSerials.has(a.serial)) continue;
    const volume = names.get(a.serial) ?? `serial ${a.serial}`;
    const r = await driver.detachVolume(id, a.serial);
    if (r === 'detached') {
      out.detached.push(volume);
      continue;
    }
    out.pending = true;
    out.volumes.push({ volume, device: a.device, serial: a.serial, state: 'Detaching', message: 'waiting for the guest to release the disk' });
  }
  return out;
}
