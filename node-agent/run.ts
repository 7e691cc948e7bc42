// Entry points for the CLI: one agent (`kova agent --host NAME --driver sim|libvirt`) and a
// fleet of simulated agents in one process (`kova up --driver sim --sim-hosts N`).
import { getMaxListeners, setMaxListeners } from 'node:events';
import type { Flavor, Image, KeyPair, Migration } from '../api/kinds/index.js';
import { FLAVORS, IMAGES, KEYPAIRS, MIGRATIONS } from '../api/kinds/index.js';
import { KovaClient } from '../client/client.js';
import type { KovaClientOptions } from '../client/client.js';
import { Informer } from '../client/informer.js';
import { EventRecorder } from '../client/events.js';
import { NodeAgent } from './agent.js';
import type { NodeAgentOptions } from './agent.js';
import { SharedInstanceInformer } from './shared-instances.js';
import { SimDriver } from './sim-driver.js';
import { StorageInformers } from './volume/storage-informers.js';
import type { SimDriverOptions } from './sim-driver.js';

export interface SimAgents {
  agents: NodeAgent[];
  drivers: SimDriver[];
  client: KovaClient;
  /** Resolves when every agent has stopped (after `signal` aborted). */
  done(): Promise<void>;
}

/**
 * Starts `count` agents named `<prefix>0` … `<prefix>N-1`, each with its own SimDriver, sharing
 * one API client, event recorder, instance watch, and Image, KeyPair and Flavor watches. Resolves once all are
 * registered and synced.
 */
export async function startSimAgents(opts: {
  kubeconfig?: string;
  client?: KovaClient;
  /** Client-side rate limit of the client made from `kubeconfig` (KovaClient's defaults otherwise). */
  clientOptions?: Pick<KovaClientOptions, 'qps' | 'burst'>;
  count: number;
  /**
   * Each agent's own kubeconfig (its node identity, system:node:<host>); the shared watches
   * and event recorder use `kubeconfig`. Without it every agent uses `kubeconfig`.
   */
  kubeconfigFor?: (hostName: string) => string;
  prefix?: string;
  preset?: SimDriverOptions['preset'];
  driverOptions?: Omit<SimDriverOptions, 'preset'>;
  labels?: (i: number) => Record<string, string>;
  workers?: number;
  heartbeatS?: number;
  leaseDurationS?: number;
  /** How often instances' network bytes are published (default 300 s). */
  networkUsageIntervalS?: number;
  signal: AbortSignal;
  log?: (msg: string) => void;
}): Promise<SimAgents> {
  const client = opts.client ?? clientFor(opts.kubeconfig, Math.max(64, opts.count * 2), opts.clientOptions);
  const log = opts.log ?? ((m: string) => console.error(m));
  const recorder = new EventRecorder(client, 'kova-agent', { log });
  const prefix = opts.prefix ?? 'sim-';
  // Every agent listens on the shared signal (controller, informer, shutdown).
  setMaxListeners(Math.max(getMaxListeners(opts.signal), 10 + opts.count * 4), opts.signal);
  const shared = new SharedInstanceInformer(client, log);
  shared.start();
  const images = new Informer<Image>(client, IMAGES, { log });
  images.start();
  const keyPairs = new Informer<KeyPair>(client, KEYPAIRS, { log });
  keyPairs.start();
  const flavors = new Informer<Flavor>(client, FLAVORS, { log });
  flavors.start();
  // Volumes, their types and snapshots, and who uses them: the shared instance watch again.
  const storage = new StorageInformers(client, { instances: shared.informer, log });
  storage.start();
  const migrations = new Informer<Migration>(client, MIGRATIONS, { log });
  migrations.start();
  opts.signal.addEventListener('abort', () => {
    shared.stop();
    images.stop();
    keyPairs.stop();
    flavors.stop();
    storage.stop();
    migrations.stop();
  }, { once: true });
  const drivers: SimDriver[] = [];
  const agents: NodeAgent[] = [];
  for (let i = 0; i < opts.count; i++) {
    const hostName = `${prefix}${i}`;
    // Named after its host, so its local volume files say where they live.
    const driver = new SimDriver({ ...opts.driverOptions, preset: opts.preset, id: hostName });
    drivers.push(driver);
    // Two connections each: an agent only writes its host's objects (the shared client watches),
    // and a hundred sim agents with four each held 30 MB more of TLS connections on both sides.
    const own = opts.kubeconfigFor ? clientFor(opts.kubeconfigFor(hostName), 2, opts.clientOptions) : client;
    agents.push(new NodeAgent({ client: own, hostName, driver, labels: opts.labels?.(i), flavors, recorder, instances: shared.view(`${prefix}${i}`), images, keyPairs, storage, migrations, workers: opts.workers ?? 4, heartbeatS: opts.heartbeatS, leaseDurationS: opts.leaseDurationS, networkUsageIntervalS: opts.networkUsageIntervalS, log }));
  }
  // Register in small batches so a hundred hosts do not hit the API server at once.
  for (let i = 0; i < agents.length; i += 10) await Promise.all(agents.slice(i, i + 10).map((a) => a.start(opts.signal)));
  return { agents, drivers, client, done: async () => void (await Promise.all(agents.map((a) => a.done()))) };
}

/**
 * Runs one agent (its own informers and recorder) until `signal` aborts; resolves
 * once it is up. Takes every NodeAgent option; `client` defaults to one from `kubeconfig`.
 */
export async function runAgent(opts: Omit<NodeAgentOptions, 'client'> & { kubeconfig?: string; client?: KovaClient; clientOptions?: Pick<KovaClientOptions, 'qps' | 'burst'>; signal: AbortSignal }): Promise<NodeAgent> {
  const { kubeconfig, signal, clientOptions, ...rest } = opts;
  const client = opts.client ?? clientFor(kubeconfig, undefined, clientOptions);
  const agent = new NodeAgent({ ...rest, client });
  await agent.start(signal);
  return agent;
}

function clientFor(kubeconfig: string | undefined, maxSockets?: number, limits?: Pick<KovaClientOptions, 'qps' | 'burst'>): KovaClient {
  if (!kubeconfig) throw new Error('a kubeconfig path or a client is required');
  return KovaClient.fromFile(kubeconfig, { ...limits, userAgent: 'kova-agent', fieldManager: 'kova-agent', maxSockets });
}
