// The cluster side of Volumes (the host agents create, attach and delete them): decides where a
// volume nobody has placed yet is provisioned, says why it waits while nobody can, and ties
// volumes to the instances that want them deleted along (deleteWithInstance).
//   - shared VolumeType: a Ready, schedulable host chosen by the uid's hash (spread, stable);
//   - restored from a VolumeSnapshot or cloned from a Volume on a host's local storage: that host;
//   - local, volumeBindingMode Immediate: like shared;
//   - local otherwise: WaitForFirstConsumer, the scheduler selects the host with the instance
//     (or, for a volume added to an instance that is bound already, that instance's host).
// The choice is the kova.dev/selected-host annotation, written with a resourceVersion
// precondition; status is written only while no host owns the volume (after that it is the agent's).
// deleteWithInstance: a non-controller ownerReference to each such Instance, so the garbage
// collector deletes the volume once they are all gone; removed again when the flag is.
import { ANNOTATION_SELECTED_HOST, HOSTS, INSTANCES, VOLUMES, VOLUME_SNAPSHOTS, VOLUME_TYPES } from '../../api/kinds/index.js';
import type { Host, Instance, Volume, VolumeSnapshot, VolumeStatus, VolumeType } from '../../api/kinds/index.js';
import { hasCondition, setCondition } from '../../api/conditions.js';
import type { OwnerReference } from '../../api/types.js';
import { API_VERSION } from '../../api/kinds/meta.js';
import { isConflict, isNotFound } from '../../client/client.js';
import type { ApiClient } from '../../client/client.js';
import { controllerFor, requestOf, withDefaults } from '../../client/controller.js';
import type { ControllerHandle, ControllerStartOptions, Reconciler, Request, Result } from '../../client/controller.js';
import { sourcePlacement, spreadHost, volumeHost } from './placement.js';
import type { VolumeLookups } from './placement.js';

interface Cache<T> {
  get(namespace: string | undefined, name: string): T | undefined;
  list(namespace?: string): readonly T[];
}

export interface VolumeCaches {
  volumes: Cache<Volume>;
  volumeTypes: Cache<VolumeType>;
  snapshots: Cache<VolumeSnapshot>;
  instances: Cache<Instance>;
  hosts: Cache<Host>;
}

export const WAITING_FOR_FIRST_CONSUMER = 'waiting for an instance that uses it to be scheduled';

/** The Instances of `v`'s namespace whose spec.volumes entry for it says deleteWithInstance. */
export function deletingOwners(v: Volume, instances: readonly Instance[]): Instance[] {
  return instances.filter((i) => i.metadata.uid && (i.spec.volumes ?? []).some((e) => e.volume === v.metadata.name && e.deleteWithInstance === true));
}

/**
 * `refs` with a reference to each of `owners` and none to the other `known` instances (those
 * that exist and do not ask for it); references to instances not in `known` are kept: they may
 * be gone already, and the garbage collector needs them. Undefined when nothing changes.
 */
export function ownerRefsFor(refs: readonly OwnerReference[], owners: readonly Instance[], known: readonly Instance[]): OwnerReference[] | undefined {
  const want = new Set(owners.map((i) => i.metadata.uid!));
  const knownUids = new Set(known.map((i) => i.metadata.uid));
  const isInstanceRef = (r: OwnerReference) => r.kind === 'Instance' && r.apiVersion === API_VERSION;
  const next = refs.filter((r) => !(isInstanceRef(r) && knownUids.has(r.uid) && !want.has(r.uid)));
  for (const i of owners) {
    if (!next.some((r) => r.uid === i.metadata.uid)) next.push({ apiVersion: API_VERSION, kind: 'Instance', name: i.metadata.name!, uid: i.metadata.uid! });
  }
  const same = next.length === refs.length && next.every((r, k) => r === refs[k]);
  return same ? undefined : next;
}

export class VolumeReconciler implements Reconciler {
  readonly name = 'volume';
  readonly stats = { selected: 0, ownerUpdates: 0, statusWrites: 0 };
  /** Shared volumes that found no host: retried when Hosts change. */
  readonly waitingForHosts = new Set<string>();
  private readonly lookups: VolumeLookups;

  constructor(
    private readonly client: Pick<ApiClient, 'get' | 'mergePatch' | 'updateStatus' | 'updateWithRetry'>,
    private readonly c: VolumeCaches,
  ) {
    this.lookups = {
      volume: (ns, name) => c.volumes.get(ns, name),
      volumeType: (name) => c.volumeTypes.get(undefined, name),
      snapshot: (ns, name) => c.snapshots.get(ns, name),
    };
  }

  async reconcile(req: Request): Promise<Result | void> {
    const key = `${req.namespace}/${req.name}`;
    const v = this.c.volumes.get(req.namespace, req.name);
    if (!v) {
      this.waitingForHosts.delete(key);
      return;
    }
    await this.syncOwners(v);
    if (v.metadata.deletionTimestamp || volumeHost(v)) {
      this.waitingForHosts.delete(key);
      return;
    }
    const typeName = v.spec.volumeType;
    const type = typeName ? this.c.volumeTypes.get(undefined, typeName) : undefined;
    if (!type) {
      const message = typeName
        ? `VolumeType "${typeName}" not found; create it (kubectl get volumetypes lists the others), or recreate the volume with an existing spec.volumeType`
        : 'the volume names no VolumeType and none is the default; create one annotated kova.dev/is-default-volume-type: "true", or recreate the volume with spec.volumeType';
      return this.pending(v, 'VolumeTypeNotFound', message);
    }
    const src = sourcePlacement(v, this.lookups);
    if ('wait' in src) return this.pending(v, src.wait.reason, src.wait.message);
    if ('host' in src) return this.select(v, src.host);
    // Shared volumes go anywhere; a local type binding Immediate (not WaitForFirstConsumer) too.
    if (type.spec.backend === 'shared' || type.spec.volumeBindingMode === 'Immediate') {
      const host = spreadHost(v.metadata.uid!, this.c.hosts.list());
      if (!host) {
        this.waitingForHosts.add(key);
        return this.pending(v, 'NoHostAvailable', 'no Ready, schedulable host to create the volume on; it is created once there is one');
      }
      this.waitingForHosts.delete(key);
      return this.select(v, host);
    }
    // Its first consumer is bound already (the volume was added to a scheduled instance): there.
    const consumer = this.c.instances.list(v.metadata.namespace).find((i) => i.status?.hostName && !i.metadata.deletionTimestamp && (i.spec.volumes ?? []).some((e) => e.volume === v.metadata.name));
    if (consumer) return this.select(v, consumer.status!.hostName!);
    return this.pending(v, 'WaitingForFirstConsumer', WAITING_FOR_FIRST_CONSUMER);
  }

  /** deleteWithInstance as ownerReferences (never on a volume being deleted: nothing to add then). */
  private async syncOwners(v: Volume): Promise<void> {
    if (v.metadata.deletionTimestamp) return;
    const known = this.c.instances.list(v.metadata.namespace);
    const owners = deletingOwners(v, known);
    if (!ownerRefsFor(v.metadata.ownerReferences ?? [], owners, known)) return;
    await this.client.updateWithRetry<Volume>(VOLUMES, v.metadata.namespace, v.metadata.name!, (fresh) => {
      if (fresh.metadata.uid !== v.metadata.uid || fresh.metadata.deletionTimestamp) return false;
      const next = ownerRefsFor(fresh.metadata.ownerReferences ?? [], owners, known);
      if (!next) return false;
      if (next.length) fresh.metadata.ownerReferences = next;
      else delete fresh.metadata.ownerReferences;
    });
    this.stats.ownerUpdates++;
  }

  /** The selected-host annotation, only if no one placed the volume since the cache saw it. */
  private async select(v: Volume, host: string): Promise<Result | void> {
    const { namespace, name } = v.metadata;
    try {
      await this.client.mergePatch(VOLUMES, namespace, name!, { metadata: { resourceVersion: v.metadata.resourceVersion, annotations: { [ANNOTATION_SELECTED_HOST]: host } } });
      this.stats.selected++;
    } catch (e) {
      if (isNotFound(e)) return;
      // Changed meanwhile (maybe placed by the scheduler): look again once the cache has it.
      if (isConflict(e)) return { requeueAfterMs: 200 };
      throw e;
    }
  }

  /** Phase Pending with Ready=False, only while no host owns the volume. */
  private async pending(v: Volume, reason: string, message: string): Promise<void> {
    const gen = v.metadata.generation;
    const cond = { type: 'Ready', status: 'False' as const, reason, message, ...(gen !== undefined ? { observedGeneration: gen } : {}) };
    const same = (st: VolumeStatus | undefined) => st?.phase === 'Pending' && hasCondition(st.conditions, cond);
    if (same(v.status)) return;
    await this.client.updateStatus<Volume>(VOLUMES, v.metadata.namespace, v.metadata.name!, (fresh) => {
      if (fresh.metadata.uid !== v.metadata.uid || volumeHost(fresh) || fresh.metadata.deletionTimestamp || same(fresh.status)) return false;
      const st = (fresh.status ??= {});
      st.phase = 'Pending';
      st.conditions = setCondition(st.conditions, cond);
    });
    this.stats.statusWrites++;
  }
}

const req = (o: { metadata: { namespace?: string; name?: string } }): Request => ({ namespace: o.metadata.namespace, name: o.metadata.name! });

/** Starts the volume controller: informers on Volumes, VolumeTypes, VolumeSnapshots, Instances and Hosts. */
export async function startVolumeController(opts: ControllerStartOptions): Promise<ControllerHandle & { reconciler: VolumeReconciler }> {
  const { client, signal, log, informers } = withDefaults(opts);
  const c: VolumeCaches = {
    volumes: informers.for<Volume>(VOLUMES),
    volumeTypes: informers.for<VolumeType>(VOLUME_TYPES),
    snapshots: informers.for<VolumeSnapshot>(VOLUME_SNAPSHOTS),
    instances: informers.for<Instance>(INSTANCES),
    hosts: informers.for<Host>(HOSTS),
  };
  const reconciler = new VolumeReconciler(client, c);
  const volumes = informers.for<Volume>(VOLUMES);
  const unplaced = (list: readonly Volume[]) => list.filter((v) => !volumeHost(v));
  const handle = await controllerFor(reconciler, { workers: opts.workers ?? 2, log })
    // The volume itself, and clones of it waiting for its host.
    .watches(volumes, (v) => [req(v), ...unplaced(volumes.list(v.metadata.namespace)).filter((o) => o.spec.source?.volume === v.metadata.name).map(req)])
    .watches(informers.for<VolumeType>(VOLUME_TYPES), (t) => unplaced(volumes.list()).filter((v) => v.spec.volumeType === t.metadata.name).map(req), ['add', 'update'])
    .watches(informers.for<VolumeSnapshot>(VOLUME_SNAPSHOTS), (s) => unplaced(volumes.list(s.metadata.namespace)).filter((v) => v.spec.source?.snapshot === s.metadata.name).map(req))
    // The volumes it names, and those that carry a reference to it (an entry dropped or changed).
    .watches(informers.for<Instance>(INSTANCES), (i) => {
      const ns = i.metadata.namespace;
      const names = new Set((i.spec.volumes ?? []).map((e) => e.volume));
      for (const v of volumes.list(ns)) if (v.metadata.ownerReferences?.some((r) => r.uid === i.metadata.uid)) names.add(v.metadata.name!);
      return [...names].map((name) => ({ namespace: ns, name }));
    }, ['add', 'update'])
    .watches(informers.for<Host>(HOSTS), () => [...reconciler.waitingForHosts].map(requestOf), ['add', 'update'])
    .start(signal);
  return { ...handle, reconciler };
}
