// Informer: a cache of one kind kept current by list + watch, on client-node's ListWatch.
// ListWatch already relists after 410 Expired (emitting deletes for objects that vanished
// meanwhile) and caches by namespace/name, but it stops for good on any other error (API
// server restarting, connection refused); this wrapper restarts it with back-off.
import { ListWatch } from '@kubernetes/client-node';
import type { Watch } from '@kubernetes/client-node';
import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import type { KObject } from '../api/types.js';
import { apiVersionOf, collectionPath } from './client.js';
import type { ApiClient, Kind } from './client.js';
import { errorMessage } from './controller.js';

export type InformerEvent = 'add' | 'update' | 'delete';
export type InformerHandler<T> = (obj: T) => void;

export interface InformerOptions {
  /** Only this namespace (default: all namespaces). */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  log?: (msg: string) => void;
  /** Restart back-off bounds (default 200 ms … 30 s). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

export class Informer<T extends KObject = KObject> {
  // client-node's object type differs from ours (Date vs string timestamps); the wire JSON is ours.
  private readonly lw: ListWatch<KubernetesObject>;
  private readonly log: (msg: string) => void;
  private synced = false;
  private syncWaiters: Array<() => void> = [];
  private stopped = true;
  /** start() calls not yet matched by stop(). */
  private users = 0;
  private restartTimer?: NodeJS.Timeout;
  private backoffMs: number;
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly wrappers = { add: new Map(), update: new Map(), delete: new Map() } as Record<InformerEvent, Map<InformerHandler<T>, (o: KubernetesObject) => void>>;
  /** Counters for tests and metrics. */
  readonly stats = { lists: 0, restarts: 0, errors: 0 };

  constructor(
    readonly client: ApiClient,
    readonly kind: Kind,
    readonly opts: InformerOptions = {},
  ) {
    this.log = opts.log ?? ((m) => console.error(m));
    this.minBackoffMs = opts.minBackoffMs ?? 200;
    this.maxBackoffMs = opts.maxBackoffMs ?? 30_000;
    this.backoffMs = this.minBackoffMs;
    const path = collectionPath(kind, opts.namespace);
    const listFn = async (): Promise<KubernetesListObject<KubernetesObject>> => {
      this.stats.lists++;
      const r = await client.list<T>(kind, opts.namespace, { labelSelector: opts.labelSelector, fieldSelector: opts.fieldSelector, limit: 500 });
      // ListWatch fills its cache right after this promise resolves (same microtask chain);
      // setImmediate runs after that, so waiters see the full cache.
      setImmediate(() => this.markSynced());
      return { apiVersion: apiVersionOf(kind), kind: `${kind.kind}List`, metadata: { resourceVersion: r.resourceVersion }, items: r.items as KubernetesObject[] };
    };
    // ListWatch only calls watch.watch(path, query, onEvent, done): route it to the client's
    // watch, so an informer runs on any ApiClient (the real one, or the in-memory fake).
    const watch: Pick<Watch, 'watch'> = {
      watch: (_path, query, onEvent, done) =>
        client.watch(kind, opts.namespace, { resourceVersion: query.resourceVersion as string | undefined, labelSelector: opts.labelSelector, fieldSelector: opts.fieldSelector }, (type, obj) => onEvent(type, obj, { type, object: obj }), done) as Promise<AbortController>,
    };
    this.lw = new ListWatch<KubernetesObject>(path, watch as Watch, listFn, false, opts.labelSelector, opts.fieldSelector);
    this.lw.on('error', (err) => this.onError(err));
    // Any event means the watch works again: reset the restart back-off.
    const healthy = () => (this.backoffMs = this.minBackoffMs);
    this.lw.on('add', healthy);
    this.lw.on('update', healthy);
    this.lw.on('delete', healthy);
  }

  /**
   * Starts list + watch; returns at once (use waitForSync for the initial list). An informer
   * shared by several controllers is started by each and runs until each has stopped it.
   */
  start(): void {
    this.users++;
    if (!this.stopped) return;
    this.stopped = false;
    void this.lw.start().catch((e) => this.onError(e));
  }

  stop(): void {
    if (this.users > 0) this.users--;
    if (this.users > 0) return;
    this.stopped = true;
    clearTimeout(this.restartTimer);
    void this.lw.stop();
    for (const w of this.syncWaiters.splice(0)) w();
  }

  /**
   * Calls `handler` for each change, after the cache was updated. Handlers should only enqueue
   * keys; one that throws is logged (client-node would otherwise silently skip the handlers
   * after it).
   */
  on(event: InformerEvent, handler: InformerHandler<T>): void {
    const wrapped = (o: KubernetesObject) => {
      try {
        handler(o as unknown as T);
      } catch (e) {
        this.log(`informer ${this.kind.plural}: ${event} handler failed: ${errorMessage(e)}`);
      }
    };
    this.wrappers[event].set(handler, wrapped);
    this.lw.on(event, wrapped);
    // A handler joining a running informer (one shared with other controllers) is told about
    // what is already cached, like client-go's AddEventHandler; a duplicate add is harmless.
    if (event === 'add' && !this.stopped) {
      setImmediate(() => {
        if (this.wrappers.add.get(handler) !== wrapped) return;
        for (const o of this.lw.list()) wrapped(o);
      });
    }
  }

  off(event: InformerEvent, handler: InformerHandler<T>): void {
    const wrapped = this.wrappers[event].get(handler);
    if (!wrapped) return;
    this.wrappers[event].delete(handler);
    this.lw.off(event, wrapped);
  }

  /** Cached object (namespace undefined for cluster-scoped kinds). Do not mutate it. */
  get(namespace: string | undefined, name: string): T | undefined {
    return this.lw.get(name, namespace) as T | undefined;
  }

  /** Cached objects, optionally of one namespace. Do not mutate them. */
  list(namespace?: string): readonly T[] {
    return this.lw.list(namespace) as unknown as readonly T[];
  }

  /** True once the first list has filled the cache. */
  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves once synced; rejects if `signal` aborts first. */
  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(signal!.reason ?? new Error('aborted'));
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.syncWaiters.push(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  private markSynced(): void {
    // A successful list also means the connection is healthy again.
    this.backoffMs = this.minBackoffMs;
    if (this.synced) return;
    this.synced = true;
    for (const w of this.syncWaiters.splice(0)) w();
  }

  private onError(err: unknown): void {
    if (this.stopped) return;
    this.stats.errors++;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.maxBackoffMs, this.backoffMs * 2);
    this.log(`informer ${this.kind.plural}: ${errorMessage(err)}; restarting in ${delay} ms`);
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      if (this.stopped) return;
      this.stats.restarts++;
      // Resumes the watch from the last seen resourceVersion; a 410 then triggers a relist.
      void this.lw.start().catch((e) => this.onError(e));
    }, delay);
    this.restartTimer.unref?.();
  }
}
