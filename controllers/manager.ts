// `kova controllers`: every reconciler of the control plane behind one Lease-based leader
// election, like kube-controller-manager. Standbys campaign; only the leader reconciles, and a
// leader that loses its Lease stops all reconcilers before campaigning again. A standby keeps
// the controllers' caches warm meanwhile (WarmCaches), as controller-runtime's manager starts
// its caches before the election: a takeover then starts from synced informers and a built
// garbage-collector graph instead of listing every kind while the cluster is at its busiest.
import { setMaxListeners } from 'node:events';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { KovaClient } from '../client/client.js';
import type { KovaClientOptions } from '../client/client.js';
import { LeaderElector } from '../client/leader.js';
import { startHostController } from './host/host-controller.js';
import { startMaintenanceController } from './host/maintenance-controller.js';
import { startImageController } from './image/image-controller.js';
import { startInstanceController } from './instance/instance-controller.js';
import { startResizeController } from './instance/resize-controller.js';
import { startNetworkControllers } from './network/network-controllers.js';
import { startKeyPairController } from './keypair/keypair-controller.js';
import { prepareGarbageCollector } from './garbage-collector/garbage-collector.js';
import type { PreparedGarbageCollector } from './garbage-collector/garbage-collector.js';
import { startNamespaceController } from './namespace/namespace-controller.js';
import { startDefaultQuotaController } from './namespace/default-quota.js';
import { startQuotaController } from './quota/quota-controller.js';
import { startScheduler } from './scheduler/scheduler.js';
import { startVolumeController } from './volume/volume-controller.js';
import { startSnapshotController } from './volume/snapshot-controller.js';
import { startMigrationController } from './migration/migration-controller.js';
import { startClusterRoleAggregationController } from './rbac/clusterrole-aggregation.js';
import { startMeteringController } from './metering/metering-controller.js';
import { SharedInformers } from '../client/shared-informers.js';
import type { SharedInformerOptions } from '../client/shared-informers.js';
import { LEASES, NAMESPACES } from '../client/client.js';
import type { Kind } from '../client/client.js';
import type { Informer } from '../client/informer.js';
import {
  ADDRESS_CLAIMS, FLAVORS, FLOATING_IPS, HOSTS, IMAGES, INSTANCES, KEYPAIRS, MIGRATIONS, NETWORKS, PORTS, ROUTERS,
  SECURITY_GROUPS, USAGE_RECORDS, VOLUME_SNAPSHOTS, VOLUME_TYPES, VOLUMES,
} from '../api/kinds/index.js';
import { LEASE_NAMESPACE } from './host/host-reconciler.js';
import { QUOTA_DEFAULTS_CONFIGMAP, QUOTA_DEFAULTS_NAMESPACE } from './namespace/default-quota.js';
import { CONFIG_MAPS, RESOURCE_QUOTAS } from './quota/quota-controller.js';
import { CLUSTER_ROLES } from './rbac/clusterrole-aggregation.js';
import type { AllocationRatios } from '../api/resources.js';
import type { WeigherPolicy } from './scheduler/weighers.js';

export const CONTROLLERS_LEASE = 'kova-controllers';

export interface ControllerManagerOptions {
  client?: KovaClient;
  kubeconfig?: string;
  /** Client-side rate limit of the client made from `kubeconfig` (KovaClient's defaults otherwise). */
  clientOptions?: Pick<KovaClientOptions, 'qps' | 'burst'>;
  signal: AbortSignal;
  /** Unique per process; default `<hostname>_<pid>`. */
  identity?: string;
  ratios?: Partial<AllocationRatios>;
  weigher?: WeigherPolicy;
  /** Lease timing (seconds); defaults 15/10/2 as kube-controller-manager. */
  leaseDurationS?: number;
  renewDeadlineS?: number;
  retryPeriodS?: number;
  log?: (msg: string) => void;
  /**
   * The control plane's data directory; Images are imported into DATA_DIR/images. Without it
   * the image controller does not run (Images stay Pending).
   */
  dataDir?: string;
  /** Called with true when this process starts leading, false when it stops. */
  onLeadership?: (leading: boolean) => void;
}

/**
 * The informers the controllers follow (SharedInformers.for's kind and options), which a standby
 * keeps warm. One the controllers use but this list lacks is listed at the takeover, as before,
 * and named by ControllerManager.coldInformers (a test keeps the list complete).
 */
export const WARM_INFORMERS: ReadonlyArray<readonly [Kind, SharedInformerOptions?]> = [
  [INSTANCES], [HOSTS], [FLAVORS], [IMAGES], [KEYPAIRS], [MIGRATIONS], [VOLUMES], [VOLUME_TYPES], [VOLUME_SNAPSHOTS],
  [PORTS], [NETWORKS], [ADDRESS_CLAIMS], [SECURITY_GROUPS], [FLOATING_IPS], [ROUTERS], [USAGE_RECORDS],
  [NAMESPACES], [CLUSTER_ROLES], [RESOURCE_QUOTAS],
  [LEASES, { namespace: LEASE_NAMESPACE }],
  [CONFIG_MAPS, { namespace: QUOTA_DEFAULTS_NAMESPACE, fieldSelector: `metadata.name=${QUOTA_DEFAULTS_CONFIGMAP}` }],
];

/**
 * What a campaigning process keeps current for the term it may win: the informers of
 * WARM_INFORMERS (started once here, so they run while the term's controllers come and go) and
 * a prepared garbage collector. Handed to that term; stopped with it or when the campaign ends.
 */
class WarmCaches {
  readonly informers: SharedInformers;
  readonly gc: PreparedGarbageCollector;
  private readonly ac = new AbortController();
  private readonly held: Informer[] = [];
  private readonly warmKeys: ReadonlySet<string>;

  constructor(client: KovaClient, log: (msg: string) => void) {
    setMaxListeners(200, this.ac.signal);
    this.informers = new SharedInformers(client, log);
    for (const [kind, o] of WARM_INFORMERS) {
      const inf = this.informers.for(kind, o);
      inf.start();
      this.held.push(inf);
    }
    this.warmKeys = new Set(this.informers.keys());
    this.gc = prepareGarbageCollector({ client, signal: this.ac.signal, log });
  }

  /** Whether every warm informer has listed, and the garbage collector's graph is complete. */
  synced(): boolean {
    return this.held.every((i) => i.hasSynced()) && this.gc.hasSynced();
  }

  /** Informers a term created beyond the warm ones (listed at its start), readable. */
  cold(): string[] {
    return this.informers.keys().filter((k) => !this.warmKeys.has(k)).map((k) => k.replaceAll('\0', ' ').trim());
  }

  stop(): void {
    this.ac.abort();
    for (const inf of this.held.splice(0)) inf.stop();
  }
}

export interface ControllerManager {
  client: KovaClient;
  identity: string;
  isLeader(): boolean;
  /** Whether the caches this process keeps for its next term (a standby's) have all listed. */
  standbyWarm(): boolean;
  /**
   * Informers the current or last term had to list at its start (not in WARM_INFORMERS): none,
   * normally; undefined until a term has started all its controllers.
   */
  coldInformers(): string[] | undefined;
  /** Resolves after `signal` aborted and every reconciler stopped. */
  done: Promise<void>;
}

export function startControllerManager(opts: ControllerManagerOptions): ControllerManager {
  const client = opts.client ?? KovaClient.fromFile(mustKubeconfig(opts.kubeconfig), { ...opts.clientOptions, userAgent: 'kova-controllers', fieldManager: 'kova-controllers', maxSockets: 128 });
  const log = opts.log ?? ((m: string) => console.error(m));
  const identity = opts.identity ?? `${hostname()}_${process.pid}`;
  let leading = false;
  /** The caches of the next term (a standby's), or of the current one. */
  let warm: WarmCaches | undefined;
  let cold: string[] | undefined;

  const lead = async (signal: AbortSignal) => {
    setMaxListeners(200, signal); // every informer and queue of every controller listens on it
    leading = true;
    opts.onLeadership?.(true);
    log(`controllers: ${identity} is the leader; starting scheduler, host and instance controllers`);
    // The standby's caches become this term's, and end with it (the next campaign warms new ones).
    const caches = warm ?? new WarmCaches(client, log);
    signal.addEventListener('abort', () => caches.stop(), { once: true });
    try {
      // One informer per kind for all of them, new for each term of leadership.
      const common = { client, signal, log, informers: caches.informers };
      const parts = await Promise.all([
        startScheduler({ ...common, weigher: opts.weigher, ratios: opts.ratios }),
        startHostController({ ...common, ratios: opts.ratios }),
        startMaintenanceController(common),
        startInstanceController(common),
        startResizeController(common),
        startNetworkControllers(common),
        startKeyPairController(common),
        caches.gc.run(signal),
        startNamespaceController(common),
        startClusterRoleAggregationController(common),
        startDefaultQuotaController(common),
        startQuotaController(common),
        startVolumeController(common),
        startSnapshotController(common),
        startMigrationController(common),
        startMeteringController(common),
        ...(opts.dataDir ? [startImageController({ ...common, storeDir: join(opts.dataDir, 'images') })] : []),
      ]);
      cold = caches.cold();
      if (cold.length) log(`controllers: informers not kept warm by the standby (listed at the takeover): ${cold.join(', ')}`);
      await Promise.all(parts.map((p) => p.done));
    } catch (e) {
      if (!signal.aborted) log(`controllers: failed while leading: ${e instanceof Error ? e.message : String(e)}`);
    }
  };

  const done = (async () => {
    // Campaign again after losing the Lease (e.g. an API server restart), until asked to stop.
    while (!opts.signal.aborted) {
      const elector = new LeaderElector({
        client, name: CONTROLLERS_LEASE, identity, log,
        leaseDurationS: opts.leaseDurationS, renewDeadlineS: opts.renewDeadlineS, retryPeriodS: opts.retryPeriodS,
      });
      warm = new WarmCaches(client, log);
      try {
        await elector.run(opts.signal, {
          onStartedLeading: lead,
          onStoppedLeading: () => {
            if (leading) log(`controllers: ${identity} stopped leading`);
            leading = false;
            opts.onLeadership?.(false);
          },
        });
      } catch (e) {
        log(`controllers: leader election failed: ${e instanceof Error ? e.message : String(e)}`);
      } finally {
        warm.stop(); // a term's ended with it already; a campaign's that did not win ends here
      }
      if (!opts.signal.aborted) await new Promise((r) => setTimeout(r, 1000));
    }
  })();

  return { client, identity, isLeader: () => leading, standbyWarm: () => !leading && !!warm?.synced(), coldInformers: () => cold, done };
}

function mustKubeconfig(path: string | undefined): string {
  if (!path) throw new Error('a kubeconfig path or a client is required');
  return path;
}
