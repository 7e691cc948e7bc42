// KovaClient: a small, fast REST client for kova and the few built-in kinds controllers use.
// Built on a client-node KubeConfig for credentials, but sends requests itself over one
// keep-alive undici pool (about half the CPU per request of node:https) so controllers can
// issue thousands of requests per second, and so every patch carries the content type it
// means (client-node picks SMP/JSON patch on its own).
import http from 'node:http';
import type https from 'node:https';
import { KubeConfig, Watch } from '@kubernetes/client-node';
import { Pool } from 'undici';
import { INSTANCES } from '../api/kinds/index.js';
import type { KObject, ObjectMeta } from '../api/types.js';
import { TokenBucketLimiter } from './rate-limited-queue.js';
import type { Clock } from './workqueue.js';

export type { KObject };

/** Identifies a resource collection; `kind` is what objects of it carry in `kind`. */
export interface Kind {
  group: string; // '' for core
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
}

// The kova kinds' references come from the typed model (api/kinds), so there is one of each.
export { ADDRESS_CLAIMS, FLAVORS, FLOATING_IPS, HOSTS, IMAGES, INSTANCES, KEYPAIRS, NETWORKS, PORTS, ROUTERS, SECURITY_GROUPS, VOLUMES, VOLUME_SNAPSHOTS, VOLUME_TYPES } from '../api/kinds/index.js';
export const LEASES: Kind = { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', kind: 'Lease', namespaced: true };
export const EVENTS: Kind = { group: '', version: 'v1', plural: 'events', kind: 'Event', namespaced: true };
export const NAMESPACES: Kind = { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false };

/** `apiVersion` string of a kind: `v1` or `group/version`. */
export function apiVersionOf(kind: Pick<Kind, 'group' | 'version'>): string {
  return kind.group ? `${kind.group}/${kind.version}` : kind.version;
}

/** A failed API call; `code`, `reason`, `message` come from the server's metav1.Status. */
export class StatusError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly status?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'StatusError';
  }
}

export const isNotFound = (e: unknown): boolean => e instanceof StatusError && e.code === 404;
export const isConflict = (e: unknown): boolean => e instanceof StatusError && e.code === 409;
/** 409 because the name is taken (as opposed to a resourceVersion conflict). */
export const isAlreadyExists = (e: unknown): boolean => e instanceof StatusError && e.code === 409 && e.reason === 'AlreadyExists';

/** An object to create: apiVersion and kind may be left out. */
export interface NewObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
  /** Page size; all pages are fetched and concatenated. */
  limit?: number;
}

export interface ListResult<T> {
  items: T[];
  resourceVersion: string;
}

export interface DeleteOptions {
  preconditions?: { uid?: string; resourceVersion?: string };
  propagationPolicy?: 'Foreground' | 'Background' | 'Orphan';
  gracePeriodSeconds?: number;
}

export interface WriteOptions {
  fieldManager?: string;
}

export type JsonPatchOp =
  | { op: 'add' | 'replace' | 'test'; path: string; value: unknown }
  | { op: 'remove'; path: string };

export interface KovaClientOptions {
  userAgent?: string;
  /** Default fieldManager for writes. */
  fieldManager?: string;
  /** Max connections of the keep-alive pool (default 64). */
  maxSockets?: number;
  /** Conflict retries of updateStatus / finalizer edits (default 10). */
  conflictRetries?: number;
  /** Per-request timeout (default 30 s). */
  timeoutMs?: number;
  /**
   * Client-side rate limit, as client-go's QPS/Burst: a token bucket every request but a watch
   * waits on (retries included). `qps` <= 0 means no limit. Defaults: DEFAULT_QPS/DEFAULT_BURST.
   */
  qps?: number;
  /** Requests that may go at once before `qps` paces them (default: DEFAULT_BURST, at least 1). */
  burst?: number;
  /**
   * Retries of a request answered 429, or 5xx with `Retry-After` (client-go retries both, any
   * verb: such an answer comes before anything was done). Default 10, as client-go.
   */
  maxRetries?: number;
  /** Longest wait a `Retry-After` gets (default 10 s); the wait gets up to 25% jitter on top. */
  maxRetryAfterMs?: number;
  /** Time source of the rate limit and the retry waits (tests use a manual clock). */
  clock?: Clock;
}

/**
 * Default client-side rate limit of a KovaClient. client-go's 5/10 (and kube-controller-manager's
 * 20/30 per controller) are far below what kova's controllers need: they share one client, and
 * the scheduler alone binds about 1,850 instances/s on 2 cores (bench:scale --scheduler-only).
 * These bound a runaway loop without slowing any measured workload (see client/client.test.ts
 * and the commit message for the figures).
 */
export const DEFAULT_QPS = 5000;
export const DEFAULT_BURST = 10000;
export const DEFAULT_MAX_RETRIES = 10;
export const DEFAULT_MAX_RETRY_AFTER_MS = 10_000;

/** Node's timers, kept referenced: a request waiting to be retried keeps a CLI process alive. */
const refClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface BindResources {
  vcpus: number;
  memory: string;
  disk: string;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchOptions {
  /** Changes after this version; unset or '0' first sends the current objects as ADDED. */
  resourceVersion?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

/** A running watch. After abort(), `done` may still be called once (with an abort error): ignore it. */
export interface WatchHandle {
  abort(): void;
}

/**
 * What controllers, agents and informers use of the API: the verbs of one REST client.
 * KovaClient sends them to an API server; FakeClient (client/fake.ts) serves them from memory
 * with the same semantics, for reconciler unit tests without etcd.
 */
export interface ApiClient {
  /** The object, or undefined when it does not exist. */
  get<T extends KObject = KObject>(kind: Kind, namespace: string | undefined, name: string, signal?: AbortSignal): Promise<T | undefined>;
  /** Lists every page; `namespace` undefined lists across all namespaces. */
  list<T extends KObject = KObject>(kind: Kind, namespace?: string, opts?: ListOptions, signal?: AbortSignal): Promise<ListResult<T>>;
  create<T extends KObject = KObject>(kind: Kind, obj: NewObject, opts?: WriteOptions): Promise<T>;
  /** PUT of the whole object (resourceVersion in metadata makes it conditional). */
  update<T extends KObject = KObject>(kind: Kind, obj: T, opts?: WriteOptions): Promise<T>;
  /** Deletes; false when the object was already gone. */
  delete(kind: Kind, namespace: string | undefined, name: string, opts?: DeleteOptions): Promise<boolean>;
  mergePatch<T extends KObject = KObject>(kind: Kind, namespace: string | undefined, name: string, patch: unknown, opts?: WriteOptions): Promise<T>;
  jsonPatch<T extends KObject = KObject>(kind: Kind, namespace: string | undefined, name: string, ops: JsonPatchOp[], opts?: WriteOptions & { subresource?: 'status' }): Promise<T>;
  /** Merge patch of the status subresource. */
  patchStatus<T extends KObject = KObject>(kind: Kind, namespace: string | undefined, name: string, patch: unknown, opts?: WriteOptions): Promise<T>;
  /** PUT of `/status`, conditional on the object's resourceVersion. */
  replaceStatus<T extends KObject = KObject>(kind: Kind, obj: T, opts?: WriteOptions): Promise<T>;
  /** Read-modify-write of status retried on 409 (see KovaClient.updateStatus). */
  updateStatus<T extends KObject = KObject>(kind: Kind, namespace: string | undefined, name: string, mutate: (obj: T) => boolean | void, opts?: WriteOptions): Promise<T | undefined>;
  /** Read-modify-write of the main resource retried on 409. */
  updateWithRetry<T extends KObject = KObject>(kind: Kind, namespace: string | undefined, name: string, mutate: (obj: T) => boolean | void, opts?: WriteOptions): Promise<T | undefined>;
  /**
   * Adds (removes) a finalizer, conflict-safe. `cached`, a copy the caller holds (an informer's),
   * saves the read when its finalizer list is current.
   */
  addFinalizer<T extends KObject = KObject>(kind: Kind, namespace: string | undefined, name: string, finalizer: string, cached?: T): Promise<T | undefined>;
  removeFinalizer<T extends KObject = KObject>(kind: Kind, namespace: string | undefined, name: string, finalizer: string, cached?: T): Promise<T | undefined>;
  /** The Instance binding subresource (see KovaClient.bind). */
  bind<T extends KObject = KObject>(namespace: string, name: string, host: string, resources: BindResources): Promise<T>;
  /** Runs `fn` again while it fails with a 409 Conflict (not AlreadyExists). */
  retryOnConflict<R>(fn: () => Promise<R>): Promise<R>;
  /**
   * Watches a collection: `onEvent` for each event in resourceVersion order (an ERROR event
   * carries a metav1.Status, code 410 when `resourceVersion` is too old), then `done` once when
   * the watch ends (null: closed by the server; an error: it failed). The shape of client-node's
   * Watch.watch, so ListWatch can run on either client.
   */
  watch(kind: Kind, namespace: string | undefined, opts: WatchOptions, onEvent: (type: WatchEventType, obj: KObject) => void, done: (err: unknown) => void): Promise<WatchHandle>;
  close(): void;
}

/** The URL path of a collection (all namespaces when `namespace` is undefined). */
export function collectionPath(kind: Kind, namespace?: string): string {
  const base = kind.group ? `/apis/${kind.group}/${kind.version}` : `/api/${kind.version}`;
  if (kind.namespaced && namespace) return `${base}/namespaces/${encodeURIComponent(namespace)}/${kind.plural}`;
  return `${base}/${kind.plural}`;
}

interface RequestInit {
  method: string;
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
}

/** The kubeconfig's TLS settings the connections are made with. */
const TLS_OPTIONS = ['ca', 'cert', 'key', 'pfx', 'passphrase', 'servername'] as const;

export class KovaClient implements ApiClient {
  readonly server: URL;
  private pool?: Pool;
  private readonly maxConnections: number;
  private readonly rejectUnauthorized: boolean;
  private tls: https.RequestOptions = {};
  private authHeaders: Record<string, string> = {};
  private authLoaded?: Promise<void>;
  private readonly userAgent: string;
  private readonly fieldManager: string | undefined;
  private readonly conflictRetries: number;
  private readonly timeoutMs: number;
  private watcher?: Watch;
  private readonly limiter?: TokenBucketLimiter;
  private readonly maxRetries: number;
  private readonly maxRetryAfterMs: number;
  private readonly clock: Clock;
  /**
   * Requests sent, for tests and benchmarks; `retries` after a 429/Retry-After, `throttled`
   * requests that waited for the rate limit and `throttledMs` how long in all.
   */
  readonly stats = { requests: 0, conflicts: 0, retries: 0, throttled: 0, throttledMs: 0 };

  constructor(
    readonly kc: KubeConfig,
    opts: KovaClientOptions = {},
  ) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.server = new URL(cluster.server);
    this.userAgent = opts.userAgent ?? 'kova-controllers';
    this.fieldManager = opts.fieldManager;
    this.conflictRetries = opts.conflictRetries ?? 10;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.maxConnections = opts.maxSockets ?? 64;
    this.rejectUnauthorized = !cluster.skipTLSVerify;
    this.clock = opts.clock ?? refClock;
    const qps = opts.qps ?? DEFAULT_QPS;
    if (Number.isNaN(qps) || (opts.burst !== undefined && Number.isNaN(opts.burst))) throw new Error('KovaClient: qps and burst must be numbers');
    if (qps > 0) this.limiter = new TokenBucketLimiter(qps, Math.max(1, Math.floor(opts.burst ?? DEFAULT_BURST)), this.clock);
    this.maxRetries = Math.max(0, opts.maxRetries ?? DEFAULT_MAX_RETRIES);
    this.maxRetryAfterMs = Math.max(0, opts.maxRetryAfterMs ?? DEFAULT_MAX_RETRY_AFTER_MS);
  }

  static fromFile(path: string, opts?: KovaClientOptions): KovaClient {
    const kc = new KubeConfig();
    kc.loadFromFile(path);
    return new KovaClient(kc, opts);
  }

  /** Closes the connections (requests still in flight fail). */
  close(): void {
    this.closePool();
  }

  private closePool(): void {
    const pool = this.pool;
    this.pool = undefined;
    void pool?.destroy().catch(() => undefined);
  }

  /** The pool, made once credentials are loaded (its TLS options come from them). */
  private connections(): Pool {
    this.pool ??= new Pool(this.server.origin, {
      connections: this.maxConnections,
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
      connect: { ...this.tls, rejectUnauthorized: this.rejectUnauthorized } as Pool.Options['connect'],
    });
    return this.pool;
  }

  // ---- paths ----

  collectionPath(kind: Kind, namespace?: string): string {
    return collectionPath(kind, namespace);
  }

  objectPath(kind: Kind, namespace: string | undefined, name: string): string {
    if (kind.namespaced && !namespace) throw new Error(`${kind.plural} are namespaced: namespace required for ${name}`);
    return `${this.collectionPath(kind, namespace)}/${encodeURIComponent(name)}`;
  }

  // ---- verbs ----

  /** The object, or undefined when it does not exist. */
  async get<T extends KObject = KObject>(kind: Kind, namespace: string | undefined, name: string, signal?: AbortSignal): Promise<T | undefined> {
    try {
      return await this.request<T>({ method: 'GET', path: this.objectPath(kind, namespace, name), signal });
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  /** Lists every page; `namespace` undefined lists across all namespaces. */
  async list<T extends KObject = KObject>(kind: Kind, namespace?: string, opts: ListOptions = {}, signal?: AbortSignal): Promise<ListResult<T>> {
    const items: T[] = [];
    let cont: string | undefined;
    let resourceVersion = '';
    do {
      const page = await this.request<{ items?: T[]; metadata?: { continue?: string; resourceVersion?: string } }>({
        method: 'GET',
        path: this.collectionPath(kind, namespace),
        query: { labelSelector: opts.labelSelector, fieldSelector: opts.fieldSelector, limit: opts.limit, continue: cont },
        signal,
      });
      for (const item of page.items ?? []) {
        // Lists omit apiVersion/kind on items; fill them so items look like GET results.
        item.apiVersion ??= apiVersionOf(kind);
        item.kind ??= kind.kind;
        items.push(item);
      }
      cont = page.metadata?.continue || undefined;
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
    } while (cont);
    return { items, resourceVersion };
  }

  /** Creates; `apiVersion`/`kind` default to the kind's. */
  async create<T extends KObject = KObject>(kind: Kind, obj: NewObject, opts: WriteOptions = {}): Promise<T> {
    return this.request<T>({
      method: 'POST',
      path: this.collectionPath(kind, obj.metadata.namespace),
      query: { fieldManager: opts.fieldManager ?? this.fieldManager },
      body: { ...obj, apiVersion: obj.apiVersion || apiVersionOf(kind), kind: obj.kind || kind.kind },
    });
  }

  /** PUT of the whole object (resourceVersion in metadata makes it conditional). */
  async update<T extends KObject = KObject>(kind: Kind, obj: T, opts: WriteOptions = {}): Promise<T> {
    return this.request<T>({
      method: 'PUT',
      path: this.objectPath(kind, obj.metadata.namespace, obj.metadata.name!),
      query: { fieldManager: opts.fieldManager ?? this.fieldManager },
      body: obj,
    });
  }

  /** Deletes; returns false when the object was already gone. */
  async delete(kind: Kind, namespace: string | undefined, name: string, opts: DeleteOptions = {}): Promise<boolean> {
    const body: Record<string, unknown> = { apiVersion: 'v1', kind: 'DeleteOptions' };
    if (opts.preconditions) body.preconditions = opts.preconditions;
    if (opts.propagationPolicy) body.propagationPolicy = opts.propagationPolicy;
    if (opts.gracePeriodSeconds !== undefined) body.gracePeriodSeconds = opts.gracePeriodSeconds;
    try {
      await this.request({ method: 'DELETE', path: this.objectPath(kind, namespace, name), body });
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  /** RFC 7386 merge patch of the main resource. */
  async mergePatch<T extends KObject = KObject>(kind: Kind, namespace: string | undefined, name: string, patch: unknown, opts: WriteOptions = {}): Promise<T> {
    return this.request<T>({
      method: 'PATCH',
      path: this.objectPath(kind, namespace, name),
      query: { fieldManager: opts.fieldManager ?? this.fieldManager },
      body: patch,
      contentType: 'application/merge-patch+json',
    });
  }

  /** RFC 6902 JSON patch of the main resource (or of `/status` with subresource 'status'). */
  async jsonPatch<T extends KObject = KObject>(kind: Kind, namespace: string | undefined, name: string, ops: JsonPatchOp[], opts: WriteOptions & { subresource?: 'status' } = {}): Promise<T> {
    const sub = opts.subresource ? `/${opts.subresource}` : '';
    return this.request<T>({
      method: 'PATCH',
      path: this.objectPath(kind, namespace, name) + sub,
      query: { fieldManager: opts.fieldManager ?? this.fieldManager },
      body: ops,
      contentType: 'application/json-patch+json',
    });
  }

  /** Merge patch on the status subresource, e.g. `{status: {phase: 'Running'}}`. */
  async patchStatus<T extends KObject = KObject>(kind: Kind, namespace: string | undefined, name: string, patch: unknown, opts: WriteOptions = {}): Promise<T> {
    return this.request<T>({
      method: 'PATCH',
      path: this.objectPath(kind, namespace, name) + '/status',
      query: { fieldManager: opts.fieldManager ?? this.fieldManager },
      body: patch,
      contentType: 'application/merge-patch+json',
    });
  }

  /** PUT of `/status`; the object's resourceVersion makes it conditional. */
  async replaceStatus<T extends KObject = KObject>(kind: Kind, obj: T, opts: WriteOptions = {}): Promise<T> {
    return this.request<T>({
      method: 'PUT',
      path: this.objectPath(kind, obj.metadata.namespace, obj.metadata.name!) + '/status',
      query: { fieldManager: opts.fieldManager ?? this.fieldManager },
      body: obj,
    });
  }

  /**
   * Read-modify-write of status with optimistic concurrency: GETs the object, calls `mutate` on
   * it (which edits `obj.status` in place; returning `false` means "nothing to change" and skips
   * the write), PUTs `/status` with the read resourceVersion, and on 409 Conflict starts over.
   * Returns the stored object, or undefined when it does not exist (anymore).
   * `mutate` may therefore run several times and must be a pure function of the object.
   */
  async updateStatus<T extends KObject = KObject>(kind: Kind, namespace: string | undefined, name: string, mutate: (obj: T) => boolean | void, opts: WriteOptions = {}): Promise<T | undefined> {
    return readModifyWrite(this, kind, namespace, name, mutate, (obj) => this.replaceStatus(kind, obj, opts));
  }

  /**
   * Same as updateStatus for the main resource (spec/metadata), via PUT with resourceVersion.
   */
  async updateWithRetry<T extends KObject = KObject>(kind: Kind, namespace: string | undefined, name: string, mutate: (obj: T) => boolean | void, opts: WriteOptions = {}): Promise<T | undefined> {
    return readModifyWrite(this, kind, namespace, name, mutate, (obj) => this.update(kind, obj, opts));
  }

  /** Adds a finalizer if missing (conflict-safe). Returns the object, undefined if gone. */
  async addFinalizer<T extends KObject = KObject>(kind: Kind, namespace: string | undefined, name: string, finalizer: string, cached?: T): Promise<T | undefined> {
    return editFinalizers<T>(this, kind, namespace, name, withFinalizer(finalizer), cached);
  }

  /** Removes a finalizer if present (conflict-safe). Returns the object (which may be gone: undefined). */
  async removeFinalizer<T extends KObject = KObject>(kind: Kind, namespace: string | undefined, name: string, finalizer: string, cached?: T): Promise<T | undefined> {
    return editFinalizers<T>(this, kind, namespace, name, withoutFinalizer(finalizer), cached);
  }

  /**
   * Binds an instance to a host through the API server's binding subresource, which checks
   * and claims the host's capacity in one transaction. Returns the updated Instance.
   * Throws StatusError 409 (message starts with "insufficient") when the host has no room.
   */
  async bind<T extends KObject = KObject>(namespace: string, name: string, host: string, resources: BindResources): Promise<T> {
    return this.request<T>({
      method: 'POST',
      path: this.objectPath(INSTANCES, namespace, name) + '/binding',
      body: { apiVersion: 'kova.dev/v1alpha1', kind: 'Binding', metadata: { name }, target: { name: host }, resources },
    });
  }

  /** Watches through client-node's Watch (its streaming and line parsing). */
  async watch(kind: Kind, namespace: string | undefined, opts: WatchOptions, onEvent: (type: WatchEventType, obj: KObject) => void, done: (err: unknown) => void): Promise<WatchHandle> {
    this.watcher ??= new Watch(this.kc);
    const query: Record<string, string> = {};
    if (opts.resourceVersion) query.resourceVersion = opts.resourceVersion;
    if (opts.labelSelector) query.labelSelector = opts.labelSelector;
    if (opts.fieldSelector) query.fieldSelector = opts.fieldSelector;
    return this.watcher.watch(collectionPath(kind, namespace), query, (type: string, obj: KObject) => onEvent(type as WatchEventType, obj), done);
  }

  /** Runs `fn` again (fresh read inside) while it fails with 409 Conflict. */
  async retryOnConflict<R>(fn: () => Promise<R>): Promise<R> {
    // Jittered, growing pause so competing writers spread out instead of colliding in lockstep.
    return retryConflicts(fn, this.conflictRetries, (attempt) => {
      this.stats.conflicts++;
      return new Promise((r) => setTimeout(r, Math.random() * Math.min(200, 2 * 2 ** attempt)));
    });
  }

  // ---- transport ----

  private loadAuth(): Promise<void> {
    this.authLoaded ??= (async () => {
      const opts: https.RequestOptions = {};
      await this.kc.applyToHTTPSOptions(opts);
      const tls: https.RequestOptions = {};
      for (const k of TLS_OPTIONS) if (opts[k] !== undefined) (tls as Record<string, unknown>)[k] = opts[k];
      // Connections made with other credentials are dropped (a rotated client certificate).
      if (this.pool && TLS_OPTIONS.some((k) => tls[k] !== this.tls[k])) this.closePool();
      this.tls = tls;
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(opts.headers ?? {})) if (v !== undefined) headers[k] = String(v);
      if (opts.auth) headers.Authorization = 'Basic ' + Buffer.from(opts.auth).toString('base64');
      this.authHeaders = headers;
      // Drop the agent client-node created; ours keeps connections alive.
      (opts.agent as http.Agent | undefined)?.destroy?.();
    })();
    return this.authLoaded;
  }

  /**
   * Sends one request (after the rate limit lets it); parses JSON; throws StatusError for
   * non-2xx. A 429, or a 5xx with Retry-After, is sent again after the wait the server asked for,
   * up to maxRetries times, as client-go does.
   */
  async request<T = unknown>(init: RequestInit): Promise<T> {
    await this.loadAuth();
    let reloaded = false;
    for (let retries = 0; ; ) {
      if (this.limiter) await this.throttle(init.signal);
      const res = await this.send(init);
      if (res.status === 401 && !reloaded) {
        // Credentials may have rotated (exec/OIDC providers): reload once.
        reloaded = true;
        this.authLoaded = undefined;
        await this.loadAuth();
        continue;
      }
      const wait = retries < this.maxRetries ? this.retryWait(res) : undefined;
      if (wait === undefined) return this.finish<T>(res);
      retries++;
      this.stats.retries++;
      await this.sleep(wait, init.signal);
    }
  }

  /**
   * How long to wait before sending again, or undefined when the answer is final: client-go's
   * checkWait (429 or >= 500, with Retry-After in whole seconds), capped, plus up to 25%
   * jitter so that clients refused together do not come back together.
   */
  private retryWait(res: { status: number; retryAfter?: string }): number | undefined {
    if (res.status !== 429 && res.status < 500) return undefined;
    const h = res.retryAfter;
    if (h === undefined || !/^\s*\d+\s*$/.test(h)) return undefined;
    const ms = Math.min(Number(h) * 1000, this.maxRetryAfterMs);
    return ms * (1 + 0.25 * Math.random());
  }

  /** Waits for a token of the rate limit (client-go's tryThrottle). */
  private throttle(signal?: AbortSignal): Promise<void> {
    const d = this.limiter!.when();
    if (d <= 0) return Promise.resolve();
    this.stats.throttled++;
    this.stats.throttledMs += d;
    return this.sleep(d, signal);
  }

  /** `ms` on the client's clock; rejects with the signal's reason if it aborts first. */
  private sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        this.clock.clearTimeout(timer);
        reject(signal!.reason);
      };
      const timer = this.clock.setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private finish<T>(res: { status: number; body: string }): T {
    let parsed: unknown;
    try {
      parsed = res.body ? JSON.parse(res.body) : undefined;
    } catch {
      parsed = undefined;
    }
    if (res.status >= 200 && res.status < 300) return parsed as T;
    const st = (parsed && typeof parsed === 'object' ? parsed : {}) as { reason?: string; message?: string };
    throw new StatusError(res.status, st.reason ?? httpReason(res.status), st.message ?? (res.body.slice(0, 500) || `HTTP ${res.status}`), parsed as Record<string, unknown>);
  }

  private async send(init: RequestInit): Promise<{ status: number; body: string; retryAfter?: string }> {
    let path = init.path;
    if (init.query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(init.query)) if (v !== undefined && v !== '') q.set(k, String(v));
      const s = q.toString();
      if (s) path += '?' + s;
    }
    const payload = init.body === undefined ? undefined : Buffer.from(JSON.stringify(init.body));
    const headers: Record<string, string> = {
      ...this.authHeaders,
      Accept: 'application/json',
      'User-Agent': this.userAgent,
    };
    if (payload) headers['Content-Type'] = init.contentType ?? 'application/json';
    this.stats.requests++;
    const prefix = this.server.pathname.replace(/\/$/, '');
    // undici closes the connection after a request with a body its method does not expect (a
    // DELETE with DeleteOptions: preconditions, propagationPolicy) unless told not to, and the
    // next request pays a new TLS handshake on both ends. The API server reads DELETE bodies (as
    // kube-apiserver does, client-go sends them), so the connection stays in the pool.
    const reset = payload && init.method === 'DELETE' ? false : undefined;
    const res = await this.connections().request({ method: init.method as 'GET', path: prefix + path, headers, body: payload, signal: init.signal, reset }).catch((e: Error) => {
      throw new Error(`${init.method} ${path}: ${e.message}`, { cause: e });
    });
    const body = await res.body.text();
    const ra = res.headers['retry-after'];
    return { status: res.statusCode, body, retryAfter: Array.isArray(ra) ? ra[0] : ra };
  }
}

// ---- the composite verbs, one implementation for every ApiClient ----

/** Runs `fn` again while it fails with 409 Conflict (not AlreadyExists), `pause` between tries. */
export async function retryConflicts<R>(fn: () => Promise<R>, retries: number, pause: (attempt: number) => Promise<void>): Promise<R> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (!(isConflict(e) && !isAlreadyExists(e)) || attempt >= retries) throw e;
      await pause(attempt);
    }
  }
}

/** GET, mutate, write with the read resourceVersion; start over on 409; undefined once the object is gone. */
export function readModifyWrite<T extends KObject>(c: ApiClient, kind: Kind, namespace: string | undefined, name: string, mutate: (obj: T) => boolean | void, write: (obj: T) => Promise<T>): Promise<T | undefined> {
  return c.retryOnConflict(async () => {
    const obj = await c.get<T>(kind, namespace, name);
    if (!obj) return undefined;
    if (mutate(obj) === false) return obj;
    try {
      return await write(obj);
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  });
}

/**
 * updateStatus that starts from a copy the caller already holds (an informer's): its
 * resourceVersion guards the PUT, so a stale copy costs a 409 and then the usual read-modify-
 * write, and a current one saves the GET. A mutation that finds nothing to do (or refuses) on
 * the copy is run again on a fresh read before it is believed: the copy may be behind.
 */
export async function updateStatusFrom<T extends KObject>(c: ApiClient, kind: Kind, namespace: string | undefined, name: string, cached: T | undefined, mutate: (obj: T) => boolean | void, opts: WriteOptions = {}): Promise<T | undefined> {
  if (cached && cached.metadata.name === name && cached.metadata.namespace === namespace) {
    const obj = structuredClone(cached);
    let write = false;
    try {
      write = mutate(obj) !== false;
    } catch {
      // refused on the copy: the fresh read below decides
    }
    if (write) {
      try {
        return await c.replaceStatus<T>(kind, obj, opts);
      } catch (e) {
        if (isNotFound(e)) return undefined;
        if (!isConflict(e)) throw e;
      }
    }
  }
  return c.updateStatus<T>(kind, namespace, name, mutate, opts);
}

/** The finalizer edits of addFinalizer and removeFinalizer (for editFinalizers; undefined: no change). */
export const withFinalizer = (finalizer: string) => (fins: string[]): string[] | undefined => (fins.includes(finalizer) ? undefined : [...fins, finalizer]);
export const withoutFinalizer = (finalizer: string) => (fins: string[]): string[] | undefined => (fins.includes(finalizer) ? fins.filter((f) => f !== finalizer) : undefined);

/** Replaces metadata.finalizers with `edit`'s result (undefined: no change), conflict-safe. */
export function editFinalizers<T extends KObject>(c: ApiClient, kind: Kind, namespace: string | undefined, name: string, edit: (fins: string[]) => string[] | undefined, cached?: T): Promise<T | undefined> {
  // JSON patch guarded by `test`s on the uid and on the finalizer list it replaces: it applies
  // only if nobody changed the list since we read it (the server answers 422 otherwise), and a
  // status or label write meanwhile does not make it fail. An object without finalizers yet is
  // guarded by its resourceVersion (a missing path cannot be tested).
  let copy = cached && cached.metadata.name === name && cached.metadata.namespace === namespace ? cached : undefined;
  return c.retryOnConflict(async () => {
    // The caller's copy (an informer's) saves a read; a stale one costs a refused patch.
    const obj = copy ?? (await c.get<T>(kind, namespace, name));
    const fromCopy = obj === copy;
    copy = undefined;
    if (!obj) return undefined;
    const fins = obj.metadata.finalizers;
    const next = edit(fins ?? []);
    if (!next) return fromCopy ? editFinalizers<T>(c, kind, namespace, name, edit) : obj; // the copy may be behind: decide on a fresh read
    const guard: JsonPatchOp[] = fins
      ? [{ op: 'test', path: '/metadata/uid', value: obj.metadata.uid }, { op: 'test', path: '/metadata/finalizers', value: fins }]
      : [{ op: 'test', path: '/metadata/resourceVersion', value: obj.metadata.resourceVersion }];
    try {
      return await c.jsonPatch<T>(kind, namespace, name, [...guard, { op: 'add', path: '/metadata/finalizers', value: next }]);
    } catch (e) {
      if (isNotFound(e)) return undefined;
      // A failed `test` op is 422 Invalid in Kubernetes; treat it as the conflict it is.
      if (e instanceof StatusError && e.code === 422 && /test/i.test(e.message)) throw new StatusError(409, 'Conflict', e.message, e.status);
      throw e;
    }
  });
}

function httpReason(code: number): string {
  switch (code) {
    case 404:
      return 'NotFound';
    case 409:
      return 'Conflict';
    case 422:
      return 'Invalid';
    case 401:
      return 'Unauthorized';
    case 403:
      return 'Forbidden';
    default:
      return http.STATUS_CODES[code]?.replace(/\s+/g, '') ?? 'Unknown';
  }
}
