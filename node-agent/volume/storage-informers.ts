// The informers behind a StorageView: Volumes, VolumeTypes, VolumeSnapshots and every Instance
// (who uses a volume may run on any host for a shared backend). One set per agent process: the
// sim agents of a process share it, as they share the instance watch.
// The watch of every Instance starts only once something needs it: a Volume or VolumeSnapshot
// exists, or the agent calls needInstances (a Migration exists). Each agent holding it decodes
// every instance change of the cluster, so on a cluster without volumes and migrations an agent
// watches only the instances bound to its host, as a kubelet watches only its pods.
import type { Instance, Volume, VolumeSnapshot, VolumeType } from '../../api/kinds/index.js';
import { INSTANCES, VOLUME_SNAPSHOTS, VOLUME_TYPES, VOLUMES } from '../../api/kinds/index.js';
import type { KovaClient } from '../../client/client.js';
import { Informer } from '../../client/informer.js';
import type { StorageView } from './storage.js';

/** A volume whose users changed: `namespace/name`. */
export type VolumeUseListener = (namespace: string, volume: string) => void;

export class StorageInformers implements StorageView {
  readonly volumes: Informer<Volume>;
  readonly volumeTypes: Informer<VolumeType>;
  readonly snapshots: Informer<VolumeSnapshot>;
  readonly allInstances: Informer<Instance>;
  private readonly ownInstances: boolean;
  private instancesNeeded = false;
  private started = false;
  /** The volumes each instance named last time (spec or status), so a removal wakes the volume too. */
  private readonly lastUse = new Map<string, string[]>();
  private readonly useListeners = new Set<VolumeUseListener>();

  /** `instances`: an existing informer of every Instance to reuse (the sim's shared one). */
  constructor(client: KovaClient, opts: { instances?: Informer<Instance>; log?: (msg: string) => void } = {}) {
    const log = opts.log;
    this.volumes = new Informer<Volume>(client, VOLUMES, { log });
    this.volumeTypes = new Informer<VolumeType>(client, VOLUME_TYPES, { log });
    this.snapshots = new Informer<VolumeSnapshot>(client, VOLUME_SNAPSHOTS, { log });
    this.ownInstances = !opts.instances;
    this.allInstances = opts.instances ?? new Informer<Instance>(client, INSTANCES, { log });
    const track = (i: Instance, deleted: boolean) => {
      const key = `${i.metadata.namespace}/${i.metadata.name}`;
      const now = deleted ? [] : usedVolumes(i);
      const before = this.lastUse.get(key) ?? [];
      if (now.length) this.lastUse.set(key, now);
      else this.lastUse.delete(key);
      if (!now.length && !before.length) return;
      for (const v of new Set([...before, ...now])) for (const cb of this.useListeners) cb(i.metadata.namespace!, v);
    };
    this.allInstances.on('add', (i) => track(i, false));
    this.allInstances.on('update', (i) => track(i, false));
    this.allInstances.on('delete', (i) => track(i, true));
    const need = () => this.needInstances();
    this.volumes.on('add', need);
    this.snapshots.on('add', need);
  }

  /** Starts the watch of every Instance (once, while these informers run); idempotent. */
  needInstances(): void {
    if (this.instancesNeeded) return;
    this.instancesNeeded = true;
    if (this.started && this.ownInstances) this.allInstances.start();
  }

  /** Whether the watch of every Instance was asked for. */
  instancesWanted(): boolean {
    return this.instancesNeeded || !this.ownInstances;
  }

  /** Whether instances() can be answered: the watch of every Instance has listed them. */
  instancesSynced(): boolean {
    return this.allInstances.hasSynced();
  }

  /** Starts the watch of every Instance if needed and resolves once it has listed them. */
  async instancesReady(signal?: AbortSignal): Promise<void> {
    this.needInstances();
    await this.allInstances.waitForSync(signal);
  }

  /** Calls `cb` for each volume an instance names (or stopped naming) whenever the instance changes. */
  onVolumeUse(cb: VolumeUseListener): () => void {
    this.useListeners.add(cb);
    return () => this.useListeners.delete(cb);
  }

  volume(namespace: string, name: string): Volume | undefined {
    return this.volumes.get(namespace, name);
  }

  volumeType(name: string): VolumeType | undefined {
    return this.volumeTypes.get(undefined, name);
  }

  snapshot(namespace: string, name: string): VolumeSnapshot | undefined {
    return this.snapshots.get(namespace, name);
  }

  /** Throws until instancesReady has resolved: an unsynced cache would report a used volume unused. */
  instances(namespace: string): readonly Instance[] {
    if (!this.instancesSynced()) throw new Error('the cache of every instance is not synced yet');
    return this.allInstances.list(namespace);
  }

  start(): void {
    this.started = true;
    this.volumes.start();
    this.volumeTypes.start();
    this.snapshots.start();
    if (this.ownInstances && this.instancesNeeded) this.allInstances.start();
  }

  /** Resolves once the storage kinds are listed, and every Instance too when a volume or snapshot exists. */
  async waitForSync(signal?: AbortSignal): Promise<void> {
    await Promise.all([this.volumes.waitForSync(signal), this.volumeTypes.waitForSync(signal), this.snapshots.waitForSync(signal)]);
    if (this.instancesWanted()) await this.allInstances.waitForSync(signal);
  }

  stop(): void {
    this.started = false;
    this.volumes.stop();
    this.volumeTypes.stop();
    this.snapshots.stop();
    if (this.ownInstances && this.instancesNeeded) this.allInstances.stop();
  }
}

/** The volumes an instance names in spec.volumes or status.volumes, each once. */
function usedVolumes(i: Instance): string[] {
  const names = new Set<string>();
  for (const v of i.spec.volumes ?? []) names.add(v.volume);
  for (const v of i.status?.volumes ?? []) names.add(v.volume);
  return [...names];
}
