// One etcd watch per resource, shared by every API watcher of it (kube-apiserver's cacher, in
// small): each change is decoded once and fanned out, and a short history of recent events lets
// new watchers resume from a recent resourceVersion without their own etcd watch. A hundred node
// agents each watching "instances on my host" would otherwise make a hundred etcd watches that
// all decode every instance change.
import type { KObject } from '../api/types.js';
import { StoreError } from './errors.js';
import type { Store } from './store.js';
import type { WatchEvent, WatchHandle } from './watch.js';

/**
 * Recent events kept per resource for watchers that start slightly in the past (an informer
 * re-watching from its last resourceVersion); one starting before the history gets a watch of
 * its own on etcd, so the size trades memory for etcd watches, not correctness. Each event holds
 * a decoded object and its previous version, about 7 KB for an Instance: 10,000 per resource
 * took about 370 MB of the API server in bench:scale (peak 799 MB, 433 MB with 1,000), while
 * watchers resuming there are seconds behind at most, which 1,000 events still cover at
 * hundreds of writes per second. kube-apiserver's watch cache started at 100 per resource.
 */
const HISTORY = 1_000;
/** History may exceed HISTORY by this much before it is trimmed back (trimming is a copy). */
const TRIM_BATCH = 250;

interface Subscriber {
  from: number;
  namespace?: string;
  onEvent: (e: WatchEvent) => void;
  onError: (err: StoreError) => void;
}

class SharedWatch {
  private readonly subs = new Set<Subscriber>();
  private readonly history: WatchEvent[] = [];
  /** Every event with revision > floor is in history or yet to come. */
  private floor = 0;
  private upstream?: WatchHandle;
  private starting?: Promise<void>;

  constructor(
    private readonly store: Store,
    private readonly prefix: string,
  ) {}

  /** Serves the watch from the shared stream, or returns undefined when `from` is older than its history. */
  async subscribe(sub: Subscriber): Promise<WatchHandle | undefined> {
    await this.ensureStarted();
    if (sub.from < this.floor) return undefined;
    // Replay history synchronously, then join the live stream: no event can slip in between.
    for (const e of this.history) if (Number(e.revision) > sub.from && inNamespace(e.object, sub.namespace)) sub.onEvent(e);
    const last = this.history.length ? Number(this.history[this.history.length - 1].revision) : sub.from;
    const joined: Subscriber = { ...sub, from: Math.max(sub.from, last) };
    this.subs.add(joined);
    return { close: async () => void this.subs.delete(joined) };
  }

  private ensureStarted(): Promise<void> {
    if (this.upstream) return Promise.resolve();
    this.starting ??= (async () => {
      try {
        const from = await this.store.currentRevision();
        this.floor = Number(from);
        this.upstream = await this.store.watch(this.prefix, from, (e) => this.dispatch(e), (err) => this.fail(err));
      } finally {
        this.starting = undefined;
      }
    })();
    return this.starting;
  }

  private dispatch(e: WatchEvent): void {
    this.history.push(e);
    // Trimmed in batches: splicing one event off the front of 10,000 on every event moved the
    // whole array each time (~0.1 ms per event once the history was full).
    if (this.history.length >= HISTORY + TRIM_BATCH) this.floor = Number(this.history.splice(0, this.history.length - HISTORY).pop()!.revision);
    const rev = Number(e.revision);
    for (const s of this.subs) {
      if (rev <= s.from || !inNamespace(e.object, s.namespace)) continue;
      s.from = rev;
      s.onEvent(e);
    }
  }

  /** The upstream watch died (e.g. etcd was down longer than its history): every watcher relists. */
  private fail(err: StoreError): void {
    const subs = [...this.subs];
    this.subs.clear();
    this.history.length = 0;
    this.upstream = undefined;
    for (const s of subs) s.onError(err);
  }

  /** etcd history before `revision` is gone: so is ours, so resuming from it answers 410 as etcd would. */
  compacted(revision: number): void {
    const floor = revision - 1;
    if (floor <= this.floor) return;
    this.floor = floor;
    const keep = this.history.findIndex((e) => Number(e.revision) > floor);
    this.history.splice(0, keep < 0 ? this.history.length : keep);
  }

  async close(): Promise<void> {
    this.subs.clear();
    await this.upstream?.close();
    this.upstream = undefined;
  }
}

function inNamespace(o: KObject, ns: string | undefined): boolean {
  return ns === undefined || o.metadata.namespace === ns;
}

export class WatchHub {
  private readonly shared = new Map<string, SharedWatch>();

  constructor(private readonly store: Store) {
    store.onCompacted((rev) => {
      for (const s of this.shared.values()) s.compacted(rev);
    });
  }

  /**
   * Like Store.watch for the resource stored under `resourcePrefix` (optionally one namespace of
   * it): events with revision > fromRevision. Recent revisions come from the shared stream;
   * older ones get a dedicated etcd watch (which reports compaction as 'Expired').
   */
  async watch(
    resourcePrefix: string,
    namespace: string | undefined,
    fromRevision: string | undefined,
    onEvent: (e: WatchEvent) => void,
    onError: (err: StoreError) => void,
  ): Promise<WatchHandle> {
    const from = fromRevision && fromRevision !== '0' ? Number(fromRevision) : Number(await this.store.currentRevision());
    if (!Number.isSafeInteger(from) || from < 0) throw new StoreError('Invalid', `invalid resource version: ${fromRevision}`);
    let sw = this.shared.get(resourcePrefix);
    if (!sw) this.shared.set(resourcePrefix, (sw = new SharedWatch(this.store, resourcePrefix)));
    const handle = await sw.subscribe({ from, namespace, onEvent, onError });
    if (handle) return handle;
    const prefix = namespace === undefined ? resourcePrefix : `${resourcePrefix}${namespace}/`;
    return this.store.watch(prefix, String(from), onEvent, onError);
  }

  async close(): Promise<void> {
    await Promise.all([...this.shared.values()].map((s) => s.close()));
    this.shared.clear();
  }
}
