// The node agent: registers its Host, heartbeats its Lease, watches the instances bound to it
// and runs each through the InstanceAgentReconciler, like a kubelet for VMs. On start it adopts
// the domains it finds (matching them to instances by key and uid) instead of spawning anew.
import type { Flavor, Host, Image, Instance, KeyPair, Migration, Volume, VolumeSnapshot } from '../api/kinds/index.js';
import { resolveImage } from '../api/image-visibility.js';
import { instanceRequest } from '../api/resources.js';
import { FLAVORS, HOSTS, IMAGES, INSTANCES, KEYPAIRS, MIGRATIONS } from '../api/kinds/index.js';
import { Controller, errorMessage } from '../client/controller.js';
import type { Reconciler } from '../client/controller.js';
import { ExponentialBackoffLimiter, MaxOfLimiter, TokenBucketLimiter } from '../client/rate-limited-queue.js';
import { realClock } from '../client/workqueue.js';
import type { Clock } from '../client/workqueue.js';
import { NAMESPACES } from '../client/client.js';
import type { KovaClient } from '../client/client.js';
import { EventRecorder } from '../client/events.js';
import { Informer } from '../client/informer.js';
import type { ComputeDriver, DomainInfo } from './driver.js';
import { imageCacheOf } from './image-cache.js';
import type { ImageCache } from './image-cache.js';
import { LeaseHeartbeat, registerHost } from './host-registration.js';
import type { HostStatusFacts } from './host-registration.js';
import { InstanceAgentReconciler } from './instance/reconciler.js';
import { NetworkAgent, resolveNic } from './network-agent.js';
import type { NetworkAgentOptions } from './network-agent.js';
import type { InstanceView } from './shared-instances.js';
import { StorageInformers } from './volume/storage-informers.js';
import { volumeHost } from '../api/kinds/index.js';
import { VolumeReconciler } from './volume/volume-reconciler.js';
import { SnapshotReconciler } from './volume/snapshot-reconciler.js';
import { MigrationAgent, localVolumesOf } from './migration/migration-agent.js';
import { registerAgentMetrics } from './metrics.js';
import { NetworkUsageReporter } from './network-usage.js';

export interface NodeAgentOptions {
  client: KovaClient;
  hostName: string;
  driver: ComputeDriver;
  /** Labels set on the Host (others are left alone), e.g. kova.dev/zone. */
  labels?: Record<string, string>;
  heartbeatS?: number;
  leaseDurationS?: number;
  /** Parallel reconciles (default 8). */
  workers?: number;
  /** Shared by all agents of a process (sim); one of its own otherwise. */
  recorder?: EventRecorder;
  /**
   * The instances bound to this host: by default its own informer with
   * `fieldSelector=status.hostName=<host>`; sim agents get views of one shared watch.
   */
  instances?: InstanceView;
  stopTimeoutMs?: number;
  /**
   * Back-off of failed spawns (the work queue's rate limiter, as client-go's default): the
   * first retry after retryBaseMs (default 5 ms), doubling up to retryMaxMs (default 5 min),
   * max'ed with a token bucket of 10 retries/s (burst 100) over all of this host's instances.
   */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** The work queue's clock (tests). */
  clock?: Clock;
  /** Shared by all agents of a process (sim); one of its own otherwise. */
  images?: Informer<Image>;
  /** Shared by all agents of a process (sim); one of its own otherwise. */
  keyPairs?: Informer<KeyPair>;
  /** Shared by all agents of a process (sim); one of its own otherwise. */
  flavors?: Informer<Flavor>;
  startingAfterMs?: number;
  /** How long an instance waits quietly for its ports' addresses before this agent reports the wait (default 30 s). */
  settleQuietMs?: number;
  /** Boot instances from this per-host image cache (default: the driver's, if it has one). */
  imageCache?: ImageCache;
  log?: (msg: string) => void;
  /** Host networking (bridges, VXLAN, DHCP, security groups, NAT) for this host; off when absent. */
  network?: Omit<NetworkAgentOptions, 'client' | 'hostName' | 'log'>;
  /** Shared by all agents of a process (sim, started by its owner); one of its own otherwise. */
  storage?: StorageInformers;
  /** All Migrations: shared by all agents of a process (sim, started by its owner); one of its own otherwise. */
  migrations?: Informer<Migration>;
  /** How long one driver.instanceStats() read serves metric scrapes (default 1000 ms; benchmarks 0). */
  metricsCacheMs?: number;
  /** How often the instances' network bytes are published in status.networkUsage (default 300 s). */
  networkUsageIntervalS?: number;
}

export class NodeAgent {
  readonly hostName: string;
  readonly reconciler: InstanceAgentReconciler;
  readonly controller: Controller;
  /** Volumes and snapshots this host owns (provisioning, extension, deletion, snapshots). */
  readonly volumes: VolumeReconciler;
  readonly snapshots: SnapshotReconciler;
  private readonly volumeController: Controller;
  private readonly snapshotController: Controller;
  private readonly storage: StorageInformers;
  private readonly ownStorage: boolean;
  /** This host's part in Migrations (prepare as target, transfer as source). */
  readonly migrationAgent: MigrationAgent;
  private readonly migrationController: Controller;
  private readonly migrations: Informer<Migration>;
  private readonly ownMigrations: boolean;
  /** The host network reconciler, when `network` was given. */
  readonly network?: NetworkAgent;
  private readonly informer: InstanceView;
  /** All Images: instances wait for theirs to be Ready, whatever the driver. */
  private readonly images: Informer<Image>;
  /** KeyPairs, for the resolver (a cache, not a GET per spawn). */
  private readonly keyPairs: Informer<KeyPair>;
  /** Flavors, for sizing domains (a cache, not a GET per spawn or per migration). */
  private readonly flavors: Informer<Flavor>;
  /** The agent started (and stops) the Image, KeyPair and Flavor informers; shared ones belong to their owner. */
  private readonly ownImages: boolean;
  private readonly ownKeyPairs: boolean;
  private readonly ownFlavors: boolean;
  private readonly heartbeat: LeaseHeartbeat;
  private readonly recorder: EventRecorder;
  private readonly log: (msg: string) => void;
  private stopped?: Promise<void>;
  /** What adoption found at start, for logs and tests. */
  readonly adoption = { adopted: 0, orphansDestroyed: 0, foreign: 0 };
  private clusterID?: string;
  /** The Host as last registered (start and every heartbeat), for the metrics. */
  private hostObject?: Host;
  private readonly imageCache?: ImageCache;
  /** Publishes the instances' network bytes for metering. */
  readonly networkUsage: NetworkUsageReporter;

  constructor(private readonly o: NodeAgentOptions) {
    this.hostName = o.hostName;
    this.log = o.log ?? ((m) => console.error(m));
    this.recorder = o.recorder ?? new EventRecorder(o.client, 'kova-agent', { log: this.log });
    this.heartbeat = new LeaseHeartbeat(o.client, o.hostName, o.leaseDurationS ?? 40);
    this.informer = o.instances ?? new Informer<Instance>(o.client, INSTANCES, { fieldSelector: `status.hostName=${o.hostName}`, log: this.log });
    const cache = o.imageCache ?? imageCacheOf(o.driver);
    this.imageCache = cache;
    this.ownImages = !o.images;
    const images = o.images ?? new Informer<Image>(o.client, IMAGES, { log: this.log });
    this.images = images;
    this.ownKeyPairs = !o.keyPairs;
    const keyPairs = o.keyPairs ?? new Informer<KeyPair>(o.client, KEYPAIRS, { log: this.log });
    this.keyPairs = keyPairs;
    if (o.network) this.network = new NetworkAgent({ ...o.network, client: o.client, hostName: o.hostName, log: this.log });
    const network = this.network;
    this.ownFlavors = !o.flavors;
    const flavors = o.flavors ?? new Informer<Flavor>(o.client, FLAVORS, { log: this.log });
    this.flavors = flavors;
    this.ownStorage = !o.storage;
    this.storage = o.storage ?? new StorageInformers(o.client, { log: this.log });
    const storage = this.storage;
    const imageLookup = (ns: string, name: string) => resolveImage(ns, name, images);
    this.ownMigrations = !o.migrations;
    this.migrations = o.migrations ?? new Informer<Migration>(o.client, MIGRATIONS, { log: this.log });
    const migrations = this.migrations;
    // A domain of an instance that a Migration is moving here is not an orphan to destroy.
    const migratingHere = (d: DomainInfo) => {
      // No Migration exists, so nothing moves a domain here: a deleted one keeps its finalizer
      // until its transfer is over. The cache of every instance is watched only while one does.
      if (!migrations.list().length) return false;
      if (!storage.instancesSynced()) throw new Error(`domain ${d.name}: not judged yet, the cache of every instance (a Migration may be moving it here) is still listing`);
      const key = d.instanceKey ?? '';
      const i = key.indexOf('/');
      const inst = i > 0 ? storage.allInstances.get(key.slice(0, i), key.slice(i + 1)) : undefined;
      return !!inst && inst.metadata.uid === d.instanceUID && inst.status?.migration?.targetHost === o.hostName;
    };
    this.migratingHere = migratingHere;
    this.reconciler = new InstanceAgentReconciler({
      client: o.client,
      hostName: o.hostName,
      driver: o.driver,
      getCached: (ns, name) => this.informer.get(ns, name),
      recorder: this.recorder,
      log: this.log,
      stopTimeoutMs: o.stopTimeoutMs,
      startingAfterMs: o.startingAfterMs,
      settleQuietMs: o.settleQuietMs,
      finalNetworkUsage: (inst) => this.networkUsage.finalUsage(inst),
      migratingHere,
      resolve: {
        flavor: async (name) => flavors.get(undefined, name),
        images: {
          cache,
          // The same visibility rules as the instance controller's (own, Public, Shared with ns).
          lookup: imageLookup,
        },
        storage,
        keyPair: (ns, name) => keyPairs.get(ns, name),
        network: network && {
          portConfigured: (ns, port) => network.portConfigured(ns, port),
          portDevice: (ns, name) => {
            const port = network.port(ns, name);
            return port && resolveNic(port, network.network(ns, port.spec.network))?.device;
          },
          network: (ns, name) => network.network(ns, name),
        },
        clusterID: () => this.clusterID,
      },
    });
    const clock = o.clock ?? realClock;
    const limiter = new MaxOfLimiter(new ExponentialBackoffLimiter(o.retryBaseMs ?? 5, o.retryMaxMs ?? 300_000), new TokenBucketLimiter(10, 100, clock));
    this.controller = new Controller(this.reconciler, { workers: o.workers ?? 8, log: this.log, clock, limiter });
    const common = { client: o.client, hostName: o.hostName, driver: o.driver, storage, recorder: this.recorder, log: this.log };
    this.volumes = new VolumeReconciler({ ...common, images: { cache, lookup: imageLookup } });
    this.snapshots = new SnapshotReconciler(common);
    const storageLimiter = () => new MaxOfLimiter(new ExponentialBackoffLimiter(o.retryBaseMs ?? 5, o.retryMaxMs ?? 300_000), new TokenBucketLimiter(10, 100, clock));
    this.volumeController = new Controller(afterInstancesSynced(this.volumes, storage), { workers: 2, log: this.log, clock, limiter: storageLimiter() });
    this.snapshotController = new Controller(afterInstancesSynced(this.snapshots, storage), { workers: 2, log: this.log, clock, limiter: storageLimiter() });
    this.migrationAgent = new MigrationAgent({
      client: o.client, hostName: o.hostName, driver: o.driver, recorder: this.recorder, log: this.log,
      migration: (ns, name) => this.migrations.get(ns, name),
      instance: (ns, name) => storage.allInstances.get(ns, name),
      resolve: (inst, ro) => this.reconciler.resolve(inst, ro),
      localVolumes: (inst) => localVolumesOf(inst, storage),
      volumeStoredOn: (ns, name) => storage.volume(ns, name)?.status?.hostName,
      rootDiskBytes: async (inst) => {
        const flavor = inst.spec.flavor ? flavors.get(undefined, inst.spec.flavor) : undefined;
        const r = instanceRequest(inst, () => flavor);
        return 'req' in r ? r.req.diskBytes : undefined;
      },
    });
    this.networkUsage = new NetworkUsageReporter({ client: o.client, hostName: o.hostName, driver: o.driver, instances: () => this.informer.list(), intervalS: o.networkUsageIntervalS, log: this.log });
    this.migrationController = new Controller(afterInstancesSynced(this.migrationAgent, storage), { workers: 4, log: this.log, clock, limiter: storageLimiter() });
  }

  private readonly migratingHere: (d: DomainInfo) => boolean;

  /**
   * Registers the host, syncs the instance cache, adopts existing domains and starts the
   * workers and the heartbeat. Resolves once the agent is up; `signal` stops it, and
   * `done()` resolves when it has stopped.
   */
  async start(signal: AbortSignal): Promise<void> {
    const { driver, client } = this.o;
    await driver.init();
    const info = await driver.hostInfo();
    const facts: HostStatusFacts = { info, driver: driver.name };
    this.hostObject = await registerHost(client, this.hostName, this.o.labels ?? {}, facts);
    // Like Kubernetes' cluster ID convention: the uid of the kube-system namespace.
    this.clusterID = (await client.get(NAMESPACES, undefined, 'kube-system'))?.metadata.uid;
    await this.heartbeat.renew();
    await this.network?.start(signal);

    const enqueue = (obj: { metadata: { namespace?: string; name?: string } }) => this.controller.enqueue({ namespace: obj.metadata.namespace, name: obj.metadata.name! });
    this.informer.on('add', (obj) => {
      this.reconciler.observed(obj);
      enqueue(obj);
    });
    this.informer.on('update', (obj) => {
      // The echo of our own status write is skipped: reconciling the state a pass just wrote
      // would only read the domain again (a spec change in between fails that write instead).
      const echo = this.reconciler.isOwnWrite(obj);
      this.reconciler.observed(obj);
      this.networkUsage.nudge(obj);
      if (!echo) enqueue(obj);
    });
    this.informer.on('delete', (obj) => {
      this.reconciler.observed(obj, true);
      enqueue(obj);
    });
    this.informer.start();
    await this.informer.waitForSync(signal);
    // An Image becoming Ready (or changing) wakes the instances here that boot from it; a
    // KeyPair or Flavor appearing wakes those that wait for it.
    const wakeImage = (img: Image) => {
      for (const i of this.informer.list()) if (i.spec.image === img.metadata.name) enqueue(i);
    };
    const wakeKeyPair = (kp: KeyPair) => {
      for (const i of this.informer.list()) if (i.spec.keyPair === kp.metadata.name && i.metadata.namespace === kp.metadata.namespace) enqueue(i);
    };
    const wakeFlavor = (f: Flavor) => {
      for (const i of this.informer.list()) if (i.spec.flavor === f.metadata.name) enqueue(i);
    };
    for (const ev of ['add', 'update', 'delete'] as const) {
      this.images.on(ev, wakeImage);
      this.keyPairs.on(ev, wakeKeyPair);
    }
    this.flavors.on('add', wakeFlavor);
    if (this.ownImages) this.images.start();
    if (this.ownKeyPairs) this.keyPairs.start();
    if (this.ownFlavors) this.flavors.start();
    await this.images.waitForSync(signal);
    await this.keyPairs.waitForSync(signal);
    await this.flavors.waitForSync(signal);
    const unwireStorage = this.wireStorage(enqueue);
    if (this.ownStorage) this.storage.start();
    await this.storage.waitForSync(signal);
    const unwireMigrations = this.wireMigrations();
    if (this.ownMigrations) this.migrations.start();
    await this.migrations.waitForSync(signal);
    // Adoption tells an arriving migration from an orphan by the cache of every instance.
    if (this.storage.instancesWanted()) await this.storage.instancesReady(signal);
    // A Port configured here (or not any more) wakes the instances here that use it.
    this.network?.onPortChange((ns, port) => {
      for (const i of this.informer.list()) {
        if (i.metadata.namespace !== ns) continue;
        if ((i.status?.addresses ?? []).some((a) => a.port === port)) enqueue(i);
      }
    });
    // A port plugged here for an arriving instance wakes the Migrations that wait for it.
    this.network?.onIncomingPortReady((ns) => {
      for (const m of this.migrations.list(ns)) {
        if (m.status?.targetHost === this.hostName && m.status.phase === 'PreparingTarget') this.migrationController.enqueue({ namespace: ns, name: m.metadata.name! });
      }
    });

    await this.adopt(await driver.listDomains());
    const unsubscribe = driver.onEvent((e) => {
      if (!e.instanceKey) return;
      const i = e.instanceKey.indexOf('/');
      this.controller.enqueue({ namespace: e.instanceKey.slice(0, i), name: e.instanceKey.slice(i + 1) });
    });
    for (const obj of this.informer.list()) enqueue(obj);
    const workers = this.controller.start(signal);
    const storageWorkers = [this.volumeController.start(signal), this.snapshotController.start(signal), this.migrationController.start(signal)];
    for (const m of this.migrations.list()) if (this.migrationAgent.concerns(m)) this.migrationController.enqueue({ namespace: m.metadata.namespace, name: m.metadata.name! });
    for (const v of this.storage.volumes.list()) if (volumeHost(v) === this.hostName) this.volumeController.enqueue({ namespace: v.metadata.namespace, name: v.metadata.name! });
    for (const sn of this.storage.snapshots.list()) this.snapshotController.enqueue({ namespace: sn.metadata.namespace, name: sn.metadata.name! });

    const beat = setInterval(() => void this.beat(facts), (this.o.heartbeatS ?? 10) * 1000);
    const stopNetworkUsage = this.networkUsage.start(signal);
    const unregisterMetrics = registerAgentMetrics({ hostName: this.hostName, driver, instances: () => this.informer.list(), host: () => this.hostObject, imageCache: this.imageCache, log: this.log, cacheMs: this.o.metricsCacheMs });
    this.stopped = new Promise<void>((resolve) => {
      const stop = async () => {
        clearInterval(beat);
        unregisterMetrics();
        await stopNetworkUsage();
        unsubscribe();
        this.informer.stop();
        for (const ev of ['add', 'update', 'delete'] as const) {
          this.images.off(ev, wakeImage);
          this.keyPairs.off(ev, wakeKeyPair);
        }
        this.flavors.off('add', wakeFlavor);
        if (this.ownImages) this.images.stop();
        if (this.ownKeyPairs) this.keyPairs.stop();
        if (this.ownFlavors) this.flavors.stop();
        unwireStorage();
        if (this.ownStorage) this.storage.stop();
        unwireMigrations();
        if (this.ownMigrations) this.migrations.stop();
        await this.migrationAgent.stop();
        await workers;
        await Promise.all(storageWorkers);
        resolve();
      };
      if (signal.aborted) void stop();
      else signal.addEventListener('abort', () => void stop(), { once: true });
    });
  }

  /**
   * Wake-ups between the storage kinds and the work queues: a Volume change wakes its owner's
   * volume reconcile, the instances here that use it and the snapshots waiting for it; an
   * instance that names a volume (or stops naming it) wakes the volume; a snapshot wakes its
   * reconcile. Returns the unwiring.
   */
  private wireStorage(enqueueInstance: (obj: { metadata: { namespace?: string; name?: string } }) => void): () => void {
    const me = this.hostName;
    const onVolume = (v: Volume) => {
      const ns = v.metadata.namespace!;
      const name = v.metadata.name!;
      if (volumeHost(v) === me) {
        this.volumeController.enqueue({ namespace: ns, name });
        for (const sn of this.storage.snapshots.list(ns)) if (sn.spec.source.volume === name && !sn.status?.readyToUse) this.snapshotController.enqueue({ namespace: ns, name: sn.metadata.name! });
      }
      for (const i of this.informer.list()) {
        if (i.metadata.namespace === ns && (i.spec.volumes?.some((e) => e.volume === name) || i.status?.volumes?.some((e) => e.volume === name))) enqueueInstance(i);
      }
    };
    const onSnapshot = (sn: VolumeSnapshot) => this.snapshotController.enqueue({ namespace: sn.metadata.namespace, name: sn.metadata.name! });
    const unUse = this.storage.onVolumeUse((ns, name) => {
      const v = this.storage.volume(ns, name);
      if (v && volumeHost(v) === me) this.volumeController.enqueue({ namespace: ns, name });
    });
    for (const ev of ['add', 'update', 'delete'] as const) {
      this.storage.volumes.on(ev, onVolume);
      this.storage.snapshots.on(ev, onSnapshot);
    }
    return () => {
      unUse();
      for (const ev of ['add', 'update', 'delete'] as const) {
        this.storage.volumes.off(ev, onVolume);
        this.storage.snapshots.off(ev, onSnapshot);
      }
    };
  }

  /** Migration events, and an instance's migration mark, wake this host's part in them. */
  private wireMigrations(): () => void {
    const onMigration = (m: Migration) => {
      this.storage.needInstances();
      if (this.migrationAgent.concerns(m)) this.migrationController.enqueue({ namespace: m.metadata.namespace, name: m.metadata.name! });
    };
    const onInstance = (i: Instance) => {
      const mark = i.status?.migration;
      if (!mark) return;
      if (mark.sourceHost === this.hostName || mark.targetHost === this.hostName) this.migrationController.enqueue({ namespace: i.metadata.namespace, name: mark.name });
    };
    for (const ev of ['add', 'update', 'delete'] as const) {
      this.migrations.on(ev, onMigration);
      this.storage.allInstances.on(ev, onInstance);
    }
    return () => {
      for (const ev of ['add', 'update', 'delete'] as const) {
        this.migrations.off(ev, onMigration);
        this.storage.allInstances.off(ev, onInstance);
      }
    };
  }

  /** Instances in the agent's cache (bound to this host). */
  informerSize(): number {
    return this.informer.list().length;
  }

  /** Resolves after the agent stopped (its signal aborted and in-flight reconciles ended). */
  done(): Promise<void> {
    return this.stopped ?? Promise.resolve();
  }

  /**
   * Matches the host's domains to the instances bound here. A kova domain whose instance is
   * bound here (same uid) is adopted; one whose instance is gone or lives elsewhere now is an
   * orphan and is destroyed; domains kova did not create are only reported.
   */
  private async adopt(domains: DomainInfo[]): Promise<void> {
    let host: Host | undefined;
    const hostObj = async () => (host ??= await this.o.client.get<Host>(HOSTS, undefined, this.hostName));
    for (const d of domains) {
      if (d.managedByKova && d.clusterID && this.clusterID && d.clusterID !== this.clusterID) {
        // Another kova cluster shares this hypervisor: its domains are not ours to judge.
        this.adoption.foreign++;
        this.log(`agent ${this.hostName}: domain ${d.name} belongs to another kova cluster (${d.clusterID}); leaving it alone`);
        continue;
      }
      if (!d.managedByKova || !d.instanceKey) {
        this.adoption.foreign++;
        this.log(`agent ${this.hostName}: domain ${d.name} was not created by kova; leaving it alone`);
        const h = await hostObj();
        if (h) void this.recorder.warning(h, 'ForeignDomain', `domain ${d.name} on this host was not created by kova; it is not managed, and its resources are not accounted`);
        continue;
      }
      const i = d.instanceKey.indexOf('/');
      const inst = this.informer.get(d.instanceKey.slice(0, i), d.instanceKey.slice(i + 1));
      if (inst && inst.metadata.uid === d.instanceUID) {
        this.reconciler.domains.set(d.instanceKey, d.id);
        this.adoption.adopted++;
        continue;
      }
      if (this.migratingHere(d)) {
        this.log(`agent ${this.hostName}: domain ${d.name} is arriving by migration; leaving it to the migration`);
        continue;
      }
      this.adoption.orphansDestroyed++;
      this.log(`agent ${this.hostName}: destroying orphan domain ${d.name} (instance ${d.instanceKey} uid ${d.instanceUID} is not bound to this host)`);
      try {
        await this.o.driver.destroy(d.id);
        const h = await hostObj();
        if (h) void this.recorder.normal(h, 'OrphanDestroyed', `destroyed domain ${d.name}: its instance ${d.instanceKey} (uid ${d.instanceUID}) is no longer bound to this host`);
      } catch (e) {
        this.log(`agent ${this.hostName}: could not destroy orphan domain ${d.name}: ${errorMessage(e)}`);
      }
    }
    if (domains.length) this.log(`agent ${this.hostName}: adopted ${this.adoption.adopted} domain(s), destroyed ${this.adoption.orphansDestroyed} orphan(s), ${this.adoption.foreign} foreign`);
  }

  /** One heartbeat: renew the Lease, and re-assert the Host status if someone changed it. */
  private async beat(facts: HostStatusFacts): Promise<void> {
    try {
      await this.heartbeat.renew();
      this.hostObject = await registerHost(this.o.client, this.hostName, this.o.labels ?? {}, facts);
    } catch (e) {
      this.log(`agent ${this.hostName}: heartbeat failed: ${errorMessage(e)}`);
    }
  }
}

/** `r`, reconciling only once the cache of every Instance has listed them: it reads who uses a volume or where an instance moves. */
function afterInstancesSynced(r: Reconciler, storage: StorageInformers): Reconciler {
  return {
    name: r.name,
    reconcile: async (req, signal, ctx) => {
      await storage.instancesReady(signal);
      return r.reconcile(req, signal, ctx);
    },
  };
}
