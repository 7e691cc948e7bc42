// kova's storage layer: Kubernetes object semantics (resourceVersion, preconditions, consistent
// paginated lists, watches) on etcd. Keys are full etcd keys chosen by the caller, e.g.
// `/registry/kova.dev/instances/demo/web-1`; resourceVersion is always the etcd revision.
import type { KObject } from '../api/types.js';
import { decode, decodeContinue, encode, encodeContinue, parseRevision, prefixEnd, prefixStart, withRV } from './codec.js';
import { compact, compactedRevision, startCompactor } from './compactor.js';
import { StoreError, isCompacted, isFutureRevision, toStoreError } from './errors.js';
import { EtcdClient, type EtcdClusterInfo } from './etcd/client.js';
import { CompareResult, CompareTarget, type RequestOp, type TxnRequest, type TxnResponse } from './etcd/proto.js';
import type { EtcdConnectionOptions } from './etcd-options.js';
import { observeEtcd, type EtcdOperation } from './etcd-metrics.js';
import { startWatch, type WatchEvent, type WatchHandle, type WatchParams } from './watch.js';

export { StoreError, type StoreErrorCode } from './errors.js';
export type { WatchEvent, WatchHandle } from './watch.js';
export type { EtcdClusterInfo, EtcdMemberStatus } from './etcd/client.js';
export type { EtcdConnectionOptions } from './etcd-options.js';

export interface StoreOptions {
  /** How often startCompactor() compacts. Default 5 minutes. */
  compactIntervalMs?: number;
  /** Revisions of history the compactor keeps. Default 10000. */
  compactKeepRevisions?: number;
}

export interface ListOptions {
  /** Page size; 0 or undefined means everything. */
  limit?: number;
  /** Token from a previous page; the page is read at that page's revision. */
  continueToken?: string;
  /** Read at this revision instead of now (ignored with continueToken, which carries its own). */
  revision?: string;
}

export interface ListResult {
  items: KObject[];
  /** The revision the list was read at: the global etcd revision, not the newest item's. */
  revision: string;
  continueToken?: string;
  /** Items after this page (only with continueToken). */
  remainingItemCount?: number;
}

export interface GuaranteedUpdateOptions {
  /** Give up with Conflict after this many failed compare-and-swaps. Default 100. */
  maxRetries?: number;
}

export class Store {
  private readonly watches = new Set<WatchHandle>();
  private stopCompactor?: () => void;
  private readonly compactListeners = new Set<(revision: number) => void>();
  /** Whether etcd calls are timed into etcd_request_duration_seconds (see recordMetrics). */
  private metricsOn = true;

  /** The Store owns its etcd client: close() closes it. */
  constructor(
    readonly kv: EtcdClient,
    private readonly opts: StoreOptions = {},
  ) {}

  /**
   * A Store with its own etcd client (endpoints alone, or with TLS, keepalive and the call
   * deadline). Connects lazily: the first call fails with 'Unavailable' if etcd is down; call
   * verify() at process start for a clear error about a wrong CA, a refused certificate or
   * endpoints of different clusters.
   */
  static connect(endpoints: string[] | EtcdConnectionOptions, opts?: StoreOptions): Store {
    return new Store(new EtcdClient(endpoints), opts);
  }

  /**
   * Asks every endpoint for its status (within the call deadline): throws an Error naming the
   * endpoint and the flag to check for TLS problems and members of different clusters, or when
   * no endpoint answers (every one with requireAll). See EtcdClient.verify.
   */
  verify(opts?: { requireAll?: boolean }): Promise<EtcdClusterInfo> {
    return this.kv.verify(opts);
  }

  /** Times etcd calls into etcd_request_duration_seconds (default) or not (an API server with metrics off). */
  recordMetrics(on: boolean): void {
    this.metricsOn = on;
  }

  /** Creates `key` only if it does not exist (one txn round trip). Returns the stored object. */
  async create(key: string, obj: KObject): Promise<KObject> {
    const k = Buffer.from(key);
    const value = encode(obj);
    const res = await this.txn('create', key, {
      compare: [{ key: k, target: CompareTarget.Create, result: CompareResult.Equal, create_revision: 0 }],
      success: [{ request_put: { key: k, value } }],
    });
    if (!res.succeeded) throw new StoreError('AlreadyExists', `${key} already exists`);
    return withRV(obj, res.header.revision);
  }

  async get(key: string): Promise<KObject | undefined> {
    const res = await this.call('get', key, () => this.kv.range({ key: Buffer.from(key) }));
    return res.kvs[0] && decode(res.kvs[0]);
  }

  /** Reads several keys at one revision in one round trip; missing keys give undefined. */
  async getMany(keys: string[]): Promise<Array<KObject | undefined>> {
    const res = await this.txn('get', keys[0] ?? '', { success: keys.map((k) => ({ request_range: { key: Buffer.from(k) } })) });
    return res.responses.map((r) => {
      const kv = r.response_range?.kvs[0];
      return kv && decode(kv);
    });
  }

  /**
   * Lists keys under `prefix`, sorted by key. The prefix is a plain byte prefix, so pass a
   * trailing slash (`/registry/kova.dev/instances/demo/`) or `demo2` would match too.
   * Every page of a paginated list reads at the first page's revision (a consistent snapshot);
   * once that revision is compacted the token fails with 'Expired'.
   */
  async list(prefix: string, opts: ListOptions = {}): Promise<ListResult> {
    let start = prefixStart(prefix);
    let rev = opts.revision && opts.revision !== '0' ? parseRevision(opts.revision) : 0;
    if (opts.continueToken) {
      const t = decodeContinue(opts.continueToken);
      start = Buffer.from(prefix + t.start);
      rev = t.rv;
    }
    const limit = opts.limit && opts.limit > 0 ? opts.limit : 0;
    const res = await this.call(
      'list',
      prefix,
      () => this.kv.range({ key: start, range_end: prefixEnd(prefix), limit, revision: rev }),
      rev,
    );
    // A range at an old revision still reports the current revision in its header.
    const revision = rev ? String(rev) : res.header.revision;
    const items = res.kvs.map((kv) => decode(kv));
    const out: ListResult = { items, revision };
    if (res.more && res.kvs.length) {
      const lastKey = res.kvs[res.kvs.length - 1].key.toString('utf8');
      // "\0" makes the next page start strictly after the last key.
      out.continueToken = encodeContinue({ rv: Number(revision), start: lastKey.slice(prefix.length) + '\0' });
      out.remainingItemCount = Number(res.count) - items.length;
    }
    return out;
  }

  /** Number of keys under `prefix` now (count-only range, no values transferred). */
  async count(prefix: string): Promise<number> {
    const res = await this.call('count', prefix, () =>
      this.kv.range({ key: prefixStart(prefix), range_end: prefixEnd(prefix), count_only: true }),
    );
    return Number(res.count);
  }

  /** Writes `obj` if the key's mod_revision is still `expectedRevision`. */
  async update(key: string, obj: KObject, expectedRevision: string): Promise<KObject> {
    const r = await this.casPut(key, obj, parseRevision(expectedRevision));
    if ('stored' in r) return r.stored;
    if (!r.current) throw new StoreError('NotFound', `${key} not found`);
    throw conflict(key, expectedRevision, r.current);
  }

  /**
   * Read-modify-write that retries on conflicts, like kube-apiserver's GuaranteedUpdate.
   * `fn` gets a fresh copy of the current object on every attempt and returns the object to
   * write. Returning `current` itself (the same reference, even if mutated) means "no change":
   * nothing is written and `current` is returned. Errors thrown by `fn` abort the update.
   */
  async guaranteedUpdate(
    key: string,
    fn: (current: KObject) => KObject | Promise<KObject>,
    opts: GuaranteedUpdateOptions = {},
  ): Promise<KObject> {
    let current = await this.get(key);
    const maxRetries = opts.maxRetries ?? 100;
    for (let attempt = 0; ; attempt++) {
      if (!current) throw new StoreError('NotFound', `${key} not found`);
      const next = await fn(current);
      if (next === current) return current;
      const r = await this.casPut(key, next, Number(current.metadata.resourceVersion));
      if ('stored' in r) return r.stored;
      if (attempt >= maxRetries && r.current) throw conflict(key, current.metadata.resourceVersion!, r.current);
      current = r.current; // the failed txn already read the newer state: no extra get
    }
  }

  /**
   * Writes several objects in one etcd transaction, each guarded by its expected revision: all
   * are written or none. Used where one API operation must change two objects atomically (the
   * Instance binding charges a Host). On a lost race it throws Conflict carrying the current
   * objects (`current` holds the first object that changed).
   */
  async updateMany(writes: Array<{ key: string; obj: KObject; expectedRevision: string }>): Promise<KObject[]> {
    const res = await this.txn('update', writes[0]?.key ?? '', {
      compare: writes.map((w) => ({ key: Buffer.from(w.key), target: CompareTarget.Mod, result: CompareResult.Equal, mod_revision: parseRevision(w.expectedRevision) })),
      success: writes.map((w) => ({ request_put: { key: Buffer.from(w.key), value: encode(w.obj) } })),
      failure: writes.map((w) => ({ request_range: { key: Buffer.from(w.key) } })),
    });
    if (res.succeeded) return writes.map((w) => withRV(w.obj, res.header.revision));
    for (let i = 0; i < writes.length; i++) {
      const kv = res.responses[i]?.response_range?.kvs[0];
      if (!kv) throw new StoreError('NotFound', `${writes[i].key} not found`);
      const current = decode(kv);
      if (current.metadata.resourceVersion !== writes[i].expectedRevision) throw conflict(writes[i].key, writes[i].expectedRevision, current);
    }
    throw new StoreError('Conflict', 'transaction failed without a changed object');
  }

  /**
   * Writes several objects in one etcd transaction: a write without `expectedRevision` creates
   * its key (which must not exist), one with it replaces the key at that mod revision. All are
   * written or none; when a guard fails, the same round trip returns the current object of every
   * key (undefined where absent), so the caller can retry without reading again. Quotas are
   * charged this way, together with the object that uses them.
   */
  async writeAll(writes: Array<{ key: string; obj: KObject; expectedRevision?: string }>): Promise<{ stored: KObject[] } | { current: Array<KObject | undefined> }> {
    const res = await this.txn('txn', writes[0]?.key ?? '', {
      compare: writes.map((w) => w.expectedRevision === undefined
        ? { key: Buffer.from(w.key), target: CompareTarget.Create, result: CompareResult.Equal, create_revision: 0 }
        : { key: Buffer.from(w.key), target: CompareTarget.Mod, result: CompareResult.Equal, mod_revision: parseRevision(w.expectedRevision) }),
      success: writes.map((w) => ({ request_put: { key: Buffer.from(w.key), value: encode(w.obj) } })),
      failure: writes.map((w) => ({ request_range: { key: Buffer.from(w.key) } })),
    });
    if (res.succeeded) return { stored: writes.map((w) => withRV(w.obj, res.header.revision)) };
    return {
      current: writes.map((_, i) => {
        const kv = res.responses[i]?.response_range?.kvs[0];
        return kv && decode(kv);
      }),
    };
  }

  /**
   * Deletes `key` (if its mod_revision is `expectedRevision`, when given) and returns the object
   * as it was, with resourceVersion set to the deletion revision.
   */
  async delete(key: string, expectedRevision?: string): Promise<KObject> {
    const k = Buffer.from(key);
    const del: RequestOp = { request_delete_range: { key: k, prev_kv: true } };
    const res = await this.txn(
      'delete',
      key,
      expectedRevision === undefined
        ? { success: [del] }
        : {
            compare: [{ key: k, target: CompareTarget.Mod, result: CompareResult.Equal, mod_revision: parseRevision(expectedRevision) }],
            success: [del],
            failure: [{ request_range: { key: k } }],
          },
    );
    if (res.succeeded) {
      const prev = res.responses[0]?.response_delete_range?.prev_kvs[0];
      if (prev) return decode(prev, res.header.revision);
      throw new StoreError('NotFound', `${key} not found`);
    }
    const current = res.responses[0]?.response_range?.kvs[0];
    if (!current) throw new StoreError('NotFound', `${key} not found`);
    throw conflict(key, expectedRevision!, decode(current));
  }

  /**
   * Calls onEvent for every change under `prefix` with revision > fromRevision, in order, as
   * soon as etcd sends it. Undefined or '0' means "from now". A compacted fromRevision calls
   * onError with 'Expired' (the watch is then dead; close() stays safe). Watching from a list's
   * `revision` misses nothing: etcd replays history from that point. Events can arrive before
   * the returned promise resolves. If etcd restarts, the watch resumes after the last delivered
   * event (or fails with 'Expired' if that was compacted meanwhile).
   */
  async watch(
    prefix: string,
    fromRevision: string | undefined,
    onEvent: (e: WatchEvent) => void,
    onError: (err: StoreError) => void,
  ): Promise<WatchHandle> {
    const from = fromRevision && fromRevision !== '0' ? parseRevision(fromRevision) : Number(await this.currentRevision());
    let inner: WatchHandle | undefined;
    const handle: WatchHandle = {
      close: async () => {
        this.watches.delete(handle);
        await inner?.close();
      },
    };
    inner = await startWatch({
      kv: this.kv,
      prefix,
      from,
      onEvent,
      onError: (err) => {
        this.watches.delete(handle);
        onError(err);
      },
      compactedRevision: async (compacted) => compactedRevision(this.kv, compacted, Number(await this.currentRevision())),
    });
    this.watches.add(handle);
    return handle;
  }

  /** The global etcd revision now (linearizable). */
  async currentRevision(): Promise<string> {
    const res = await this.call('getCurrentResourceVersion', '', () => this.kv.range({ key: Buffer.from([0]), count_only: true }));
    return res.header.revision;
  }

  /** Discards history before `revision`. Already compacted is fine. */
  async compact(revision: string): Promise<void> {
    await compact(this.kv, parseRevision(revision));
    this.compacted(parseRevision(revision));
  }

  /** Calls `fn` after every compaction made through this Store (history before it is gone). */
  onCompacted(fn: (revision: number) => void): void {
    this.compactListeners.add(fn);
  }

  private compacted(revision: number): void {
    for (const fn of this.compactListeners) fn(revision);
  }

  /** Starts periodic compaction (see StoreOptions); idempotent; stopped by close(). */
  startCompactor(onError?: (err: unknown) => void): void {
    this.stopCompactor ??= startCompactor(this.kv, async () => Number(await this.currentRevision()), {
      intervalMs: this.opts.compactIntervalMs,
      keepRevisions: this.opts.compactKeepRevisions,
      onCompacted: (rev) => this.compacted(rev),
      onError,
    });
  }

  /** Stops the compactor, closes open watches and the etcd client. */
  async close(): Promise<void> {
    this.stopCompactor?.();
    await Promise.all([...this.watches].map((w) => w.close()));
    this.kv.close();
  }

  /** Put if mod_revision matches; on mismatch the same round trip reads the current object. */
  private async casPut(key: string, obj: KObject, expected: number): Promise<{ stored: KObject } | { current?: KObject }> {
    const k = Buffer.from(key);
    const res = await this.txn('update', key, {
      compare: [{ key: k, target: CompareTarget.Mod, result: CompareResult.Equal, mod_revision: expected }],
      success: [{ request_put: { key: k, value: encode(obj) } }],
      failure: [{ request_range: { key: k } }],
    });
    if (res.succeeded) return { stored: withRV(obj, res.header.revision) };
    const kv = res.responses[0]?.response_range?.kvs[0];
    return { current: kv && decode(kv) };
  }

  private txn(operation: EtcdOperation, key: string, req: TxnRequest): Promise<TxnResponse> {
    return this.call(operation, key, () => this.kv.txn(req));
  }

  /**
   * Runs an etcd call, mapping compaction/connection failures to StoreError, and times it as
   * `operation` on the resource of `key` (failed calls too, as kube-apiserver does).
   */
  private async call<T>(operation: EtcdOperation, key: string, fn: () => Promise<T>, atRevision?: number): Promise<T> {
    const start = this.metricsOn ? performance.now() : 0;
    try {
      return await fn();
    } catch (err) {
      if (isCompacted(err)) {
        throw new StoreError('Expired', `too old resource version: ${atRevision ?? '?'}`, { cause: err });
      }
      if (isFutureRevision(err)) {
        throw new StoreError('Invalid', `too large resource version: ${atRevision ?? '?'}`, { cause: err });
      }
      throw toStoreError(err);
    } finally {
      if (this.metricsOn) observeEtcd(operation, key, start);
    }
  }
}


function conflict(key: string, expected: string, current: KObject): StoreError {
  const msg = `${key}: the object has been modified (resourceVersion ${expected}, now ${current.metadata.resourceVersion})`;
  return new StoreError('Conflict', msg, { current });
}
