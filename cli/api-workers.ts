// The API server on several cores: N worker processes (node:cluster) share the listening port
// and serve requests, each with its own etcd client and watch hub. They are stateless toward
// each other: every write is a compare-and-swap in etcd and every watch follows etcd's revision
// order, so any worker may answer any request (as any kube-apiserver replica may). The primary
// keeps the singletons (etcd supervision); the garbage collector and namespace controller run
// once, leader-elected, in `kova controllers`.
//
// GET /metrics lands on any worker and answers for all of them: the worker asks the primary over
// IPC, the primary collects every worker's registry (each within a deadline: one that does not
// answer is left out, not awaited) and sums them with prom-client's AggregatorRegistry.
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import { Registry } from '../api/registry.js';
import { Validator } from '../api/validation.js';
import { ResourceStore } from '../apiserver/resource-store.js';
import { ApiServer } from '../apiserver/server.js';
import { startSecurity } from '../apiserver/auth/setup.js';
import type { InflightLimits } from '../apiserver/inflight.js';
import { loadEtcdTls } from '../store/etcd-options.js';
import type { EtcdTlsFiles } from '../store/etcd-options.js';
import { Store } from '../store/store.js';
import { metricsRegistry, promClient } from '../lib/metrics.js';
import { KOVA_MAIN } from './paths.js';

export interface ApiWorkerConfig {
  /** How to reach etcd: TLS as file paths, which each worker reads (no key bytes in env). */
  etcd: { endpoints: string[]; tlsFiles?: EtcdTlsFiles; keepaliveTimeMs?: number; keepaliveTimeoutMs?: number };
  crdDir: string;
  host: string;
  port: number;
  tls?: { cert: string; key: string };
  token?: string;
  /** The kova CA (PEM), for client certificates. */
  caCert?: string;
  /** The data directory (audit log). */
  dataDir?: string;
  bookmarkIntervalMs?: number;
  /** Requests in flight per worker before 429 (each worker counts its own, as each kube-apiserver does). */
  inflight?: InflightLimits;
  verbose?: boolean;
  /** Request and etcd metrics and GET /metrics (ApiServerOptions.metrics); default on. */
  metrics?: boolean;
  /** One log line per request (ApiServerOptions.requestLogging); default off. */
  requestLogging?: boolean;
}

export interface ApiWorkers {
  port: number;
  stop(): Promise<void>;
}

/**
 * API server processes by default: one per core that nothing else on this machine needs, as
 * kube-apiserver uses every core. `kova up` leaves a core each to its etcd and its controllers
 * and agents (on 2 cores one process beats two there, measured with bench:scale). `kova apiserver`
 * runs neither: it leaves a core only to the etcd it supervises, and with an external etcd (the
 * HA layout) takes every core. On 2 cores beside an external etcd, 32 clients made 9-11% more
 * creates/s through two processes than through one (5-18% on etcd 3.4); one client on one
 * connection is served by one process either way, as fast.
 */
export function defaultApiWorkers(cores: number, what: 'up' | 'apiserver', externalEtcd: boolean): number {
  const reserved = what === 'up' ? 2 : externalEtcd ? 0 : 1;
  return Math.max(1, Math.min(8, cores - reserved));
}

const CONFIG_ENV = 'KOVA_API_WORKER_CONFIG';
const STOP_TIMEOUT_MS = 10_000;
/** How long the primary waits for one worker's metrics before leaving it out of the answer. */
export const WORKER_METRICS_TIMEOUT_MS = 2_000;
/** How long a worker waits for the primary's aggregate before answering 503. */
const AGGREGATE_TIMEOUT_MS = WORKER_METRICS_TIMEOUT_MS + 3_000;

/** IPC messages of the metrics aggregation (worker → primary: ask, answer; primary → worker: collect, aggregate). */
type MetricsMessage =
  | { type: 'kova:metrics-ask'; id: number }
  | { type: 'kova:metrics-aggregate'; id: number; contentType?: string; body?: string; error?: string }
  | { type: 'kova:metrics-collect'; id: number }
  | { type: 'kova:metrics-collected'; id: number; metrics?: unknown[]; error?: string };

type MetricsJson = Awaited<ReturnType<typeof metricsRegistry.getMetricsAsJSON>>;

/**
 * The primary's side: collects every live worker's registry and aggregates them. Scrapes that
 * arrive while a collection runs share it, so concurrent scrapes cost one round of IPC.
 */
class MetricsAggregator {
  private nextId = 0;
  private readonly pending = new Map<number, (metrics: MetricsJson | undefined) => void>();
  private inFlight?: Promise<{ contentType: string; body: string }>;

  constructor(private readonly workers: () => Iterable<Worker>) {}

  /** A worker's message: an answer to a collection, or a scrape to answer. */
  onMessage(from: Worker, m: MetricsMessage): void {
    if (m.type === 'kova:metrics-collected') {
      this.pending.get(m.id)?.(m.error ? undefined : (m.metrics as MetricsJson));
    } else if (m.type === 'kova:metrics-ask') {
      this.aggregate().then(
        (r) => from.isConnected() && from.send({ type: 'kova:metrics-aggregate', id: m.id, ...r }),
        (e: unknown) => from.isConnected() && from.send({ type: 'kova:metrics-aggregate', id: m.id, error: e instanceof Error ? e.message : String(e) }),
      );
    }
  }

  private aggregate(): Promise<{ contentType: string; body: string }> {
    this.inFlight ??= this.collectAll().finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  private async collectAll(): Promise<{ contentType: string; body: string }> {
    const live = [...this.workers()].filter((w) => w.isConnected());
    const answers = await Promise.all(live.map((w) => this.collect(w)));
    const registry = promClient.AggregatorRegistry.aggregate(answers.filter((a): a is MetricsJson => !!a));
    return { contentType: metricsRegistry.contentType, body: await registry.metrics() };
  }

  /** One worker's metrics, or undefined when it does not answer in time. */
  private collect(w: Worker): Promise<MetricsJson | undefined> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      const done = (metrics: MetricsJson | undefined) => {
        clearTimeout(timer);
        this.pending.delete(id);
        resolve(metrics);
      };
      const timer = setTimeout(() => done(undefined), WORKER_METRICS_TIMEOUT_MS);
      this.pending.set(id, done);
      try {
        w.send({ type: 'kova:metrics-collect', id } satisfies MetricsMessage);
      } catch {
        done(undefined);
      }
    });
  }
}

/** A worker's side: answers the primary's collections and asks it for the aggregate. */
function workerMetrics(): () => Promise<{ contentType: string; body: string }> {
  let nextId = 0;
  const waiting = new Map<number, (m: Extract<MetricsMessage, { type: 'kova:metrics-aggregate' }>) => void>();
  process.on('message', (m: MetricsMessage) => {
    if (m?.type === 'kova:metrics-collect') {
      metricsRegistry.getMetricsAsJSON().then(
        (metrics) => process.send?.({ type: 'kova:metrics-collected', id: m.id, metrics } satisfies MetricsMessage),
        (e: unknown) => process.send?.({ type: 'kova:metrics-collected', id: m.id, error: String(e) } satisfies MetricsMessage),
      );
    } else if (m?.type === 'kova:metrics-aggregate') {
      waiting.get(m.id)?.(m);
    }
  });
  return () => new Promise((resolve, reject) => {
    const id = nextId++;
    const timer = setTimeout(() => {
      waiting.delete(id);
      reject(new Error(`the API workers' metrics were not aggregated within ${AGGREGATE_TIMEOUT_MS} ms`));
    }, AGGREGATE_TIMEOUT_MS);
    waiting.set(id, (m) => {
      clearTimeout(timer);
      waiting.delete(id);
      if (m.error || m.body === undefined) reject(new Error(m.error ?? 'no metrics'));
      else resolve({ contentType: m.contentType ?? metricsRegistry.contentType, body: m.body });
    });
    process.send!({ type: 'kova:metrics-ask', id } satisfies MetricsMessage);
  });
}

/** Forks `n` API workers and resolves with the shared port once all listen. Crashed workers are replaced. */
export function startApiWorkers(n: number, config: ApiWorkerConfig, log: (m: string) => void): Promise<ApiWorkers> {
  cluster.setupPrimary({ exec: KOVA_MAIN, args: ['api-worker'] });
  const workers = new Set<Worker>();
  const metrics = new MetricsAggregator(() => workers);
  let stopping = false;
  let port = config.port;

  const fork = (onListening?: (port: number) => void, onFail?: (e: Error) => void) => {
    // Every worker asks for the configured port (even 0): the primary shares one listening
    // handle per address:port request among them.
    const w = cluster.fork({ [CONFIG_ENV]: JSON.stringify(config) });
    workers.add(w);
    let listening = false;
    w.on('message', (m: { type?: string; port?: number; error?: string }) => {
      if (m?.type?.startsWith('kova:metrics-')) metrics.onMessage(w, m as MetricsMessage);
      else if (m?.type === 'listening') {
        listening = true;
        onListening?.(m.port!);
      } else if (m?.type === 'failed') onFail?.(new Error(m.error));
    });
    w.on('exit', (code, signal) => {
      workers.delete(w);
      if (stopping) return;
      if (!listening) return onFail?.(new Error(`API worker exited with ${signal ?? code} before listening`));
      log(`API worker ${w.process.pid} exited with ${signal ?? code}; starting another`);
      setTimeout(() => !stopping && fork(), 500).unref();
    });
  };

  const stop = async () => {
    stopping = true;
    await Promise.all([...workers].map((w) => new Promise<void>((resolve) => {
      if (w.isDead()) return resolve();
      const timer = setTimeout(() => w.process.kill('SIGKILL'), STOP_TIMEOUT_MS);
      w.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      w.process.kill('SIGTERM');
    })));
  };

  return new Promise((resolve, reject) => {
    const fail = (e: Error) => void stop().then(() => reject(e));
    fork((p) => {
      port = p;
      let up = 1;
      if (up === n) return resolve({ port, stop });
      for (let i = 1; i < n; i++) fork(() => ++up === n && resolve({ port, stop }), fail);
    }, fail);
  });
}

/**
 * Last-resort handlers of a process that serves the API (`kova up`, `kova apiserver`, API
 * workers). No request may get here: the server answers every handler error with a Status.
 * A rejection that escapes anyway is a bug, not a reason to drop every client: it is logged
 * with its stack and the process keeps serving (Node's default would exit). An uncaught
 * exception may have left state half-updated, so it is logged and the process exits nonzero
 * (a worker is then replaced by the primary).
 */
export function installProcessGuards(name: string): void {
  const stack = (e: unknown) => (e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.on('unhandledRejection', (reason) => {
    process.stderr.write(`${name}: unhandled promise rejection (a bug; still serving): ${stack(reason)}\n`);
  });
  process.on('uncaughtException', (err) => {
    process.stderr.write(`${name}: uncaught exception (a bug; exiting): ${stack(err)}\n`);
    process.exit(70);
  });
}

/** Entry point of an API worker process (`kova api-worker`, forked by startApiWorkers). */
export async function runApiWorker(): Promise<void> {
  const config = JSON.parse(process.env[CONFIG_ENV] ?? 'null') as ApiWorkerConfig | null;
  if (!config || !cluster.isWorker) throw new Error('kova api-worker is started by kova up / kova apiserver with --api-workers');
  installProcessGuards(`kova api-worker ${process.pid}`);
  const log = config.verbose ? (m: string) => process.stderr.write(`api-worker ${process.pid}: ${m}\n`) : () => undefined;
  try {
    const { endpoints, tlsFiles, keepaliveTimeMs, keepaliveTimeoutMs } = config.etcd;
    const store = Store.connect({ endpoints, tls: tlsFiles && (await loadEtcdTls(tlsFiles)), keepaliveTimeMs, keepaliveTimeoutMs });
    await store.verify();
    const registry = await Registry.load(config.crdDir);
    const resources = new ResourceStore(store, registry, new Validator(registry));
    await resources.namespaces.start();
    const security = await startSecurity(resources, { token: config.token, caCert: config.caCert, dataDir: config.dataDir });
    const server = new ApiServer({
      registry, resources, ...security.options, log, bookmarkIntervalMs: config.bookmarkIntervalMs, inflight: config.inflight,
      metrics: config.metrics, requestLogging: config.requestLogging, metricsSource: workerMetrics(),
    });
    const addr = await server.listen(config.host, config.port, config.tls);
    const shutdown = async () => {
      await server.close().catch(() => undefined);
      await security.stop().catch(() => undefined);
      await resources.namespaces.stop().catch(() => undefined);
      await store.close().catch(() => undefined);
      process.exit(0);
    };
    process.on('SIGTERM', () => void shutdown());
    process.on('SIGINT', () => undefined); // the primary decides when workers stop
    process.send!({ type: 'listening', port: addr.port });
  } catch (e) {
    process.send!({ type: 'failed', error: e instanceof Error ? e.message : String(e) });
    process.exit(1);
  }
}
