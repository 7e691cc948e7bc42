// `kova controllers`: every reconciler of the control plane behind one Lease-based leader
// election, like kube-controller-manager. Standbys campaign; only the leader reconciles, and a
// leader that loses its Lease stops all reconcilers before campaigning again.
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
import { startGarbageCollector } from './garbage-collector/garbage-collector.js';
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

export interface ControllerManager {
  client: KovaClient;
  identity: string;
  isLeader(): boolean;
  /** Resolves after `signal` aborted and every reconciler stopped. */
  done: Promise<void>;
}

export function startControllerManager(opts: ControllerManagerOptions): ControllerManager {
  const client = opts.client ?? KovaClient.fromFile(mustKubeconfig(opts.kubeconfig), { ...opts.clientOptions, userAgent: 'kova-controllers', fieldManager: 'kova-controllers', maxSockets: 128 });
  const log = opts.log ?? ((m: string) => console.error(m));
  const identity = opts.identity ?? `${hostname()}_${process.pid}`;
  let leading = false;

  const lead = async (signal: AbortSignal) => {
    setMaxListeners(200, signal); // every informer and queue of every controller listens on it
    leading = true;
    opts.onLeadership?.(true);
    log(`controllers: ${identity} is the leader; starting scheduler, host and instance controllers`);
    try {
      // One informer per kind for all of them, new for each term of leadership.
      const common = { client, signal, log, informers: new SharedInformers(client, log) };
      const parts = await Promise.all([
        startScheduler({ ...common, weigher: opts.weigher, ratios: opts.ratios }),
        startHostController({ ...common, ratios: opts.ratios }),
        startMaintenanceController(common),
        startInstanceController(common),
        startResizeController(common),
        startNetworkControllers(common),
        startKeyPairController(common),
        startGarbageCollector(common),
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
      }
      if (!opts.signal.aborted) await new Promise((r) => setTimeout(r, 1000));
    }
  })();

  return { client, identity, isLeader: () => leading, done };
}

function mustKubeconfig(path: string | undefined): string {
  if (!path) throw new Error('a kubeconfig path or a client is required');
  return path;
}
