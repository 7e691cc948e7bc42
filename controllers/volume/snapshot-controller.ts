// The cluster side of VolumeSnapshots: the host that stores the source volume takes the
// snapshot and owns its status; until one does, this says why nothing happens when the source
// Volume does not exist (Ready=False, VolumeNotFound), and takes that back once it does.
import { VOLUMES, VOLUME_SNAPSHOTS } from '../../api/kinds/index.js';
import type { Volume, VolumeSnapshot, VolumeSnapshotStatus } from '../../api/kinds/index.js';
import { findCondition, hasCondition, setCondition } from '../../api/conditions.js';
import type { ApiClient } from '../../client/client.js';
import { controllerFor, withDefaults } from '../../client/controller.js';
import type { ControllerHandle, ControllerStartOptions, Reconciler, Request } from '../../client/controller.js';

export const VOLUME_NOT_FOUND = 'VolumeNotFound';

interface Cache<T> {
  get(namespace: string | undefined, name: string): T | undefined;
  list(namespace?: string): readonly T[];
}

export class SnapshotReconciler implements Reconciler {
  readonly name = 'volumesnapshot';

  constructor(
    private readonly client: Pick<ApiClient, 'updateStatus'>,
    private readonly snapshots: Cache<VolumeSnapshot>,
    private readonly volumes: Cache<Volume>,
  ) {}

  async reconcile(req: Request): Promise<void> {
    const s = this.snapshots.get(req.namespace, req.name);
    if (!s || s.metadata.deletionTimestamp || s.status?.hostName) return;
    const source = s.spec.source.volume;
    const gen = s.metadata.generation;
    const at = gen !== undefined ? { observedGeneration: gen } : {};
    if (!this.volumes.get(req.namespace, source)) {
      return this.write(s, { type: 'Ready', status: 'False', reason: VOLUME_NOT_FOUND, message: `source volume "${source}" not found; create it, or delete this snapshot`, ...at });
    }
    // The volume is there now: its host takes the snapshot; say so instead of the stale reason.
    if (findCondition(s.status?.conditions, 'Ready')?.reason === VOLUME_NOT_FOUND) {
      return this.write(s, { type: 'Ready', status: 'False', reason: 'WaitingForHost', message: `waiting for the host of volume "${source}" to take the snapshot`, ...at });
    }
  }

  private async write(s: VolumeSnapshot, cond: Parameters<typeof setCondition>[1]): Promise<void> {
    const same = (st: VolumeSnapshotStatus | undefined) => hasCondition(st?.conditions, cond) && !st?.readyToUse;
    if (same(s.status)) return;
    await this.client.updateStatus<VolumeSnapshot>(VOLUME_SNAPSHOTS, s.metadata.namespace, s.metadata.name!, (fresh) => {
      // Once a host has claimed the snapshot, its status is the host's.
      if (fresh.metadata.uid !== s.metadata.uid || fresh.status?.hostName || same(fresh.status)) return false;
      const st = (fresh.status ??= {});
      st.readyToUse = false;
      st.conditions = setCondition(st.conditions, cond);
    });
  }
}

/** Starts the snapshot controller: informers on VolumeSnapshots and Volumes. */
export async function startSnapshotController(opts: ControllerStartOptions): Promise<ControllerHandle> {
  const { client, signal, log, informers } = withDefaults(opts);
  const snapshots = informers.for<VolumeSnapshot>(VOLUME_SNAPSHOTS);
  const volumes = informers.for<Volume>(VOLUMES);
  const of = (v: Volume) => snapshots.list(v.metadata.namespace).filter((s) => s.spec.source.volume === v.metadata.name).map((s) => ({ namespace: s.metadata.namespace, name: s.metadata.name! }));
  return controllerFor(new SnapshotReconciler(client, snapshots, volumes), { workers: opts.workers ?? 1, log })
    .watches(snapshots)
    .watches(volumes, of, ['add', 'delete'])
    .start(signal);
}
