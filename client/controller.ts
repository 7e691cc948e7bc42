// Controller: N workers pulling keys from a rate-limited queue and calling a Reconciler.
// The reconciler gets only {namespace, name} and reads the world itself (level-triggered), so
// duplicate or missed events are harmless; a thrown error retries with back-off.
import type { KObject } from '../api/types.js';
import type { ApiClient } from './client.js';
import { ReconcileMetrics } from './controller-metrics.js';
import type { ReconcileOutcome } from './controller-metrics.js';
import type { Informer, InformerEvent } from './informer.js';
import { RateLimitedQueue } from './rate-limited-queue.js';
import type { RateLimiter } from './rate-limited-queue.js';
import { SharedInformers } from './shared-informers.js';
import type { Clock } from './workqueue.js';

/** Which object to reconcile. Cluster-scoped objects have no namespace. */
export interface Request {
  namespace?: string;
  name: string;
}

export interface Result {
  /** Reconcile this object again after this many ms (polling), even without events. */
  requeueAfterMs?: number;
  /**
   * `failed`: the reconcile could not make progress (a spawn failed) and has reported it
   * itself (status, Event): the key is retried with its rate-limited back-off, as after a
   * thrown error, and its failure count keeps growing. `pending`: the failed operation is not
   * due again yet (ctx.retryAt is ahead): the back-off is kept and the key retried when due.
   * Any other return is a success and clears the key's back-off.
   */
  backoff?: 'failed' | 'pending';
}

/** What the controller knows about a key's back-off when it calls reconcile. */
export interface ReconcileContext {
  /** Failures in a row for this key (0 after a success). */
  failures: number;
  /** When the key's back-off ends (clock ms); undefined when it is not backing off. */
  retryAt?: number;
  /** The controller clock's now (ms). */
  now: number;
}

/**
 * Makes the world match one object's desired state. Contract: idempotent (may be called any
 * number of times for the same state), reads current state itself, and returns once done or
 * throws: a plain error is retried with per-key exponential back-off; a TerminalError is
 * logged and counted but not retried (until a new event enqueues the key again).
 * `signal` aborts when the controller stops; long waits should honour it.
 */
export interface Reconciler {
  name: string;
  reconcile(req: Request, signal: AbortSignal, ctx?: ReconcileContext): Promise<Result | void>;
}

/** A failure retrying cannot fix (invalid spec, …): logged and counted, not requeued. */
export class TerminalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TerminalError';
  }
}

/** "ns/name" for namespaced objects, "name" for cluster-scoped ones. */
export function keyOf(req: Request): string {
  return req.namespace ? `${req.namespace}/${req.name}` : req.name;
}

export function requestOf(key: string): Request {
  const i = key.indexOf('/');
  return i < 0 ? { name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

/** Key of an API object (its namespace and name). */
export function keyOfObject(obj: { metadata?: { namespace?: string; name?: string } }): string {
  return keyOf({ namespace: obj.metadata?.namespace, name: obj.metadata?.name ?? '' });
}

export interface ControllerOptions {
  /** Parallel workers (default 2). Keys are never reconciled concurrently regardless. */
  workers?: number;
  log?: (msg: string) => void;
  clock?: Clock;
  limiter?: RateLimiter;
}

export class Controller {
  readonly name: string;
  readonly queue: RateLimitedQueue;
  readonly stats = { reconciles: 0, errors: 0, terminalErrors: 0, requeues: 0, failures: 0, backoffWaits: 0 };
  private readonly workers: number;
  private readonly log: (msg: string) => void;
  private readonly metrics: ReconcileMetrics;
  private running?: Promise<void>;

  constructor(
    readonly reconciler: Reconciler,
    opts: ControllerOptions = {},
  ) {
    this.name = reconciler.name;
    this.workers = opts.workers ?? 2;
    this.log = opts.log ?? ((m) => console.error(m));
    // The queue is named after its controller: its workqueue_* metrics carry name=<controller>.
    this.queue = new RateLimitedQueue({ name: this.name, clock: opts.clock, limiter: opts.limiter });
    this.metrics = new ReconcileMetrics(this.name);
  }

  /** Queues a reconcile of `req` (deduplicated with any already waiting). */
  enqueue(req: Request): void {
    this.queue.add(keyOf(req));
  }

  enqueueKey(key: string): void {
    this.queue.add(key);
  }

  enqueueAfter(req: Request, ms: number): void {
    this.queue.addAfter(keyOf(req), ms);
  }

  /**
   * Runs the workers until `signal` aborts; resolves once in-flight reconciles have finished.
   * Keys can be enqueued before start().
   */
  start(signal: AbortSignal): Promise<void> {
    if (this.running) return this.running;
    const onAbort = () => this.queue.shutDown();
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    this.metrics.started(this.workers);
    const workers = Array.from({ length: this.workers }, () => this.worker(signal));
    this.running = Promise.all(workers).then(() => signal.removeEventListener('abort', onAbort));
    return this.running;
  }

  private async worker(signal: AbortSignal): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      this.metrics.workerBusy();
      const t0 = performance.now();
      let outcome: ReconcileOutcome | undefined;
      try {
        outcome = await this.processOne(key, signal);
      } finally {
        this.queue.done(key);
        this.metrics.workerIdle();
        if (outcome) this.metrics.reconciled(outcome, (performance.now() - t0) / 1000);
      }
    }
  }

  /** Reconciles `key` and requeues it as its result says; returns what happened (undefined: stopping). */
  private async processOne(key: string, signal: AbortSignal): Promise<ReconcileOutcome | undefined> {
    this.stats.reconciles++;
    try {
      const q = this.queue;
      const ctx: ReconcileContext = { failures: q.numRequeues(key), retryAt: q.retryAt(key), now: q.clock.now() };
      const res = await this.reconciler.reconcile(requestOf(key), signal, ctx);
      if (res?.backoff === 'failed') {
        // controller-runtime's Requeue: true: retried with the key's rate-limited back-off.
        this.stats.failures++;
        q.addRateLimited(key);
        return 'requeue';
      }
      if (res?.backoff === 'pending') {
        // An event woke the key early: it stays queued for when its back-off ends.
        this.stats.backoffWaits++;
        const at = q.retryAt(key);
        q.addAfter(key, at === undefined ? 0 : at - q.clock.now());
        return 'requeue_after';
      }
      q.forget(key);
      if (res && res.requeueAfterMs !== undefined && res.requeueAfterMs >= 0) {
        this.stats.requeues++;
        this.queue.addAfter(key, res.requeueAfterMs);
        return 'requeue_after';
      }
      return 'success';
    } catch (e) {
      if (signal.aborted) return undefined; // stopping: errors caused by the abort are expected
      if (e instanceof TerminalError) {
        this.stats.terminalErrors++;
        this.queue.forget(key);
        this.log(`${this.name}: ${key}: terminal error, not retrying: ${e.message}`);
        return 'terminal_error';
      }
      this.stats.errors++;
      const n = this.queue.numRequeues(key);
      this.queue.addRateLimited(key);
      this.log(`${this.name}: ${key}: reconcile failed (retry ${n + 1}): ${errorMessage(e)}`);
      return 'error';
    }
  }
}

/** What every start*Controller function takes. */
export interface ControllerStartOptions {
  client: ApiClient;
  /** Stops the controller when aborted. */
  signal: AbortSignal;
  /** Informers shared with the other controllers of the process (default: its own). */
  informers?: SharedInformers;
  workers?: number;
  log?: (msg: string) => void;
}

/** A started controller. */
export interface ControllerHandle {
  controller: Controller;
  /** Resolves when the controller has stopped (after `signal` aborted). */
  done: Promise<void>;
}

/** The defaults of ControllerStartOptions filled in: a log to stderr and a set of informers of its own. */
export function withDefaults<O extends ControllerStartOptions>(opts: O): O & { log: (msg: string) => void; informers: SharedInformers } {
  const log = opts.log ?? ((m: string) => console.error(m));
  return { ...opts, log, informers: opts.informers ?? new SharedInformers(opts.client, log) };
}

/** The requests an informer event maps to: none, one, or several. */
export type EventMapper<T> = (obj: T, event: InformerEvent) => Request | readonly Request[] | undefined | void;

/**
 * `map`, but on an update only when the object's spec changed: a new uid or generation (the API
 * server moves generation on spec changes and on deletion, never on status writes), as
 * controller-runtime's GenerationChangedPredicate. For dependents that read only the spec of
 * what they watch: a network's status moves with every address handed out, and waking each of
 * its ports for each of those made the port workers' work grow with the square of the ports.
 */
export function onSpecChange<T extends KObject>(map: EventMapper<T>): EventMapper<T> {
  /** What each object looked like at its last event: `uid generation`. Bounded by the cache. */
  const seen = new Map<string, string>();
  return (obj, ev) => {
    const key = `${obj.metadata.namespace ?? ''}/${obj.metadata.name ?? ''}`;
    if (ev === 'delete') {
      seen.delete(key);
      return map(obj, ev);
    }
    const mark = `${obj.metadata.uid} ${obj.metadata.generation}`;
    if (ev === 'update' && obj.metadata.generation !== undefined && seen.get(key) === mark) return undefined;
    seen.set(key, mark);
    return map(obj, ev);
  };
}

/** What start() does with an informer, whatever its object type. */
type SyncedCache = Pick<Informer<KObject>, 'start' | 'stop' | 'waitForSync'>;

const ALL_EVENTS: readonly InformerEvent[] = ['add', 'update', 'delete'];
const self = (o: KObject): Request => ({ namespace: o.metadata.namespace, name: o.metadata.name ?? '' });

/**
 * Wires a reconciler to the informers it follows, as controller-runtime's builder does:
 *
 *   await controllerFor(reconciler, { workers: 2, log })
 *     .watches(keypairs)                                      // the object itself
 *     .watches(flavors, (f) => referrers(f), ['add', 'delete']) // mapped to other objects
 *     .start(signal);
 *
 * start() starts the informers (stopped again when `signal` aborts), waits until all have
 * synced, and only then starts the workers, so a reconcile never sees a half-filled cache.
 */
export class ControllerBuilder {
  readonly controller: Controller;
  private readonly informers = new Set<SyncedCache>();

  constructor(reconciler: Reconciler, opts: ControllerOptions = {}) {
    this.controller = new Controller(reconciler, opts);
  }

  /** Enqueues what `map` returns for each of `events` (default: the object itself, on every event). */
  watches<T extends KObject>(informer: Informer<T>, map: EventMapper<T> = self, events: readonly InformerEvent[] = ALL_EVENTS): this {
    this.informers.add(informer);
    for (const ev of events) {
      informer.on(ev, (o) => {
        const out = map(o, ev);
        if (!out) return;
        if (Array.isArray(out)) for (const r of out) this.controller.enqueue(r);
        else this.controller.enqueue(out as Request);
      });
    }
    return this;
  }

  /** Informers the reconciler reads without reacting to their events: started and synced with the rest. */
  reads(...informers: SyncedCache[]): this {
    for (const inf of informers) this.informers.add(inf);
    return this;
  }

  async start(signal: AbortSignal): Promise<ControllerHandle> {
    const informers = [...this.informers];
    for (const inf of informers) inf.start();
    // Each informer is stopped once per start (shared ones run while any user has them started).
    signal.addEventListener('abort', () => informers.forEach((i) => i.stop()), { once: true });
    await Promise.all(informers.map((i) => i.waitForSync(signal)));
    return { controller: this.controller, done: this.controller.start(signal) };
  }
}

export function controllerFor(reconciler: Reconciler, opts: ControllerOptions = {}): ControllerBuilder {
  return new ControllerBuilder(reconciler, opts);
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
