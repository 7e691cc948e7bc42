// Takes the VolumeSnapshots of the volumes this host owns: claims the snapshot (status.hostName,
// written with the read resourceVersion, so one host wins), holds a finalizer so the file is
// removed with the object, and copies the volume through the driver: crash-consistent and
// without pausing the guest when a running domain here uses it. A snapshot never depends on its
// volume afterwards: deleting the volume keeps it.
import type { VolumeSnapshot, VolumeSnapshotStatus } from '../../api/kinds/index.js';
import { SNAPSHOT_CLEANUP_FINALIZER, VOLUME_SNAPSHOTS } from '../../api/kinds/index.js';
import { setCondition } from '../../api/conditions.js';
import { formatQuantity } from '../../api/quantity.js';
import { nowRFC3339 } from '../../api/types.js';
import { TerminalError } from '../../client/controller.js';
import type { Reconciler, Request, Result } from '../../client/controller.js';
import type { ApiClient } from '../../client/client.js';
import type { EventRecorder } from '../../client/events.js';
import { domainName } from '../driver.js';
import type { ComputeDriver } from '../driver.js';
import { backendNamed, snapshotDisk, volumeDisk, volumeUses } from './storage.js';
import { volumeHost } from '../../api/kinds/index.js';
import type { StorageView } from './storage.js';


export interface SnapshotReconcilerOptions {
  client: ApiClient;
  hostName: string;
  driver: ComputeDriver;
  storage: StorageView;
  recorder: EventRecorder;
  log: (msg: string) => void;
  waitRequeueMs?: number;
}

export class SnapshotReconciler implements Reconciler {
  readonly name: string;
  readonly stats = { taken: 0, deleted: 0 };

  constructor(private readonly o: SnapshotReconcilerOptions) {
    this.name = `snapshots-${o.hostName}`;
  }

  async reconcile(req: Request): Promise<Result | void> {
    const { storage, hostName, client, driver } = this.o;
    const ns = req.namespace!;
    let s = storage.snapshot(ns, req.name);
    if (!s) return;
    const claimedBy = s.status?.hostName;
    if (claimedBy && claimedBy !== hostName) return;
    const ours = (s.metadata.finalizers ?? []).includes(SNAPSHOT_CLEANUP_FINALIZER);

    if (s.metadata.deletionTimestamp) {
      if (!ours || claimedBy !== hostName) return;
      const b = backendNamed(storage, s.status?.volumeType);
      if (!b) throw new Error(`snapshot ${ns}/${req.name}: VolumeType ${s.status?.volumeType} is gone; cannot tell where its file is`);
      await driver.deleteSnapshot(snapshotDisk(s, b));
      this.stats.deleted++;
      await client.removeFinalizer(VOLUME_SNAPSHOTS, ns, req.name, SNAPSHOT_CLEANUP_FINALIZER);
      return;
    }
    if (s.status?.readyToUse) return;

    const v = storage.volume(ns, s.spec.source.volume);
    if (!claimedBy) {
      // Unclaimed: the volume's owner takes it (the volume controller reports a missing volume).
      if (!v || volumeHost(v) !== hostName) return;
      if (v.status?.capacity === undefined) return { requeueAfterMs: this.o.waitRequeueMs ?? 30_000 };
      const claimed = await client.updateStatus<VolumeSnapshot>(VOLUME_SNAPSHOTS, ns, req.name, (obj) => {
        if (obj.status?.hostName) return false;
        obj.status = withCond({ ...(obj.status ?? {}), hostName, volumeType: v.spec.volumeType, readyToUse: false }, obj, 'False', 'Creating', `copying volume ${v.metadata.name} on host ${hostName}`);
      });
      if (!claimed || claimed.status?.hostName !== hostName) return;
      s = claimed;
    }
    if (!ours) {
      // Before any file exists, so deleting the snapshot always removes it.
      await client.addFinalizer(VOLUME_SNAPSHOTS, ns, req.name, SNAPSHOT_CLEANUP_FINALIZER);
    }
    if (!v || v.metadata.uid === undefined) return this.fail(s, 'VolumeNotFound', `volume ${s.spec.source.volume} is gone; the snapshot was not taken`);
    const t = v.spec.volumeType ? storage.volumeType(v.spec.volumeType) : undefined;
    const b = backendNamed(storage, v.spec.volumeType);
    if (!t || !b) return this.fail(s, 'InvalidVolumeType', `VolumeType ${v.spec.volumeType} of volume ${v.metadata.name} is missing or invalid`);

    const attached = volumeUses(v, storage).filter((u) => u.reported);
    const elsewhere = attached.find((u) => u.instance.status?.hostName !== hostName);
    if (elsewhere) {
      await this.setStatus(s, {}, 'False', 'VolumeInUseElsewhere', `volume ${v.metadata.name} is attached to instance ${elsewhere.instance.metadata.name} on host ${elsewhere.instance.status?.hostName}; the snapshot is taken once it is detached there`);
      return { requeueAfterMs: this.o.waitRequeueMs ?? 30_000 };
    }
    const running = attached.find((u) => u.reported?.state === 'Attached' && u.instance.status?.powerState === 'Running');
    const domain = running && domainName(ns, running.instance.metadata.name!, running.instance.metadata.uid!);
    const at = nowRFC3339(new Date());
    const info = await driver.snapshotVolume(volumeDisk(v, t, b), snapshotDisk(s, b), domain);
    this.stats.taken++;
    const how = domain ? `while instance ${running!.instance.metadata.name} was running (crash-consistent)` : 'offline';
    await this.setStatus(s, { readyToUse: true, restoreSize: formatQuantity(info.virtualBytes), creationTime: at, snapshotHandle: info.path, volumeType: v.spec.volumeType }, 'True', 'Ready', `copied volume ${v.metadata.name} ${how}`);
    void this.o.recorder.normal(s, 'SnapshotTaken', `copied volume ${v.metadata.name} ${how}`);
  }

  private async fail(s: VolumeSnapshot, reason: string, message: string): Promise<never> {
    await this.setStatus(s, { readyToUse: false }, 'False', reason, message);
    void this.o.recorder.warning(s, reason, message);
    throw new TerminalError(`snapshot ${s.metadata.namespace}/${s.metadata.name}: ${message}`);
  }

  private async setStatus(s: VolumeSnapshot, fields: Partial<VolumeSnapshotStatus>, status: 'True' | 'False', reason: string, message: string): Promise<void> {
    await this.o.client.updateStatus<VolumeSnapshot>(VOLUME_SNAPSHOTS, s.metadata.namespace, s.metadata.name!, (obj) => {
      if (obj.status?.hostName !== this.o.hostName) return false;
      obj.status = withCond({ ...obj.status, ...fields }, obj, status, reason, message);
    });
  }
}

function withCond(st: VolumeSnapshotStatus, obj: VolumeSnapshot, status: 'True' | 'False', reason: string, message: string): VolumeSnapshotStatus {
  const gen = obj.metadata.generation;
  return { ...st, observedGeneration: gen, conditions: setCondition(st.conditions, { type: 'Ready', status, reason, message, observedGeneration: gen }) };
}
