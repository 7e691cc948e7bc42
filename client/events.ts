// EventRecorder: core/v1 Events about API objects, as `kubectl describe` shows them.
// Like client-go's EventCorrelator, before anything is written:
// - identical events (same object uid, type, reason, message) within 10 minutes bump `count`
//   and `lastTimestamp` on one Event instead of piling up new ones;
// - similar events (same object, type and reason, differing messages): from the 10th distinct
//   message within 10 minutes on they share one Event, its message prefixed
//   "(combined from similar events): " and updated to the latest;
// - a per-object token bucket (burst 25, then one per 5 minutes) drops the rest of a storm.
// Every cache is an LRU of at most 4096 entries. Recording is best effort: it never throws to
// the caller and never blocks a reconcile long.
import { createHash } from 'node:crypto';
import type { KObject } from '../api/types.js';
import { EVENTS, isNotFound } from './client.js';
import type { ApiClient } from './client.js';
import { errorMessage } from './controller.js';

export type EventType = 'Normal' | 'Warning';

const DEDUP_WINDOW_MS = 10 * 60_000;
const MAX_CACHE = 4096;
export const COMBINED_PREFIX = '(combined from similar events): ';

interface Seen {
  namespace: string;
  name: string;
  count: number;
  firstTimestamp: string;
  at: number;
}

/** RFC 3339 with second precision, as Event timestamps are. */
function eventTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A Map bounded to `max` entries that evicts the least recently used one. */
export class LruCache<V> {
  private readonly m = new Map<string, V>();
  constructor(readonly max: number) {}
  get(key: string): V | undefined {
    const v = this.m.get(key);
    if (v !== undefined) {
      this.m.delete(key);
      this.m.set(key, v);
    }
    return v;
  }
  set(key: string, v: V): void {
    this.m.delete(key);
    this.m.set(key, v);
    // Map iteration is insertion order: the first key is the least recently used.
    while (this.m.size > this.max) this.m.delete(this.m.keys().next().value!);
  }
  delete(key: string): void {
    this.m.delete(key);
  }
  get size(): number {
    return this.m.size;
  }
}

export interface CorrelatorOptions {
  now?: () => number;
  /** Distinct messages of one object, type and reason before they are combined (client-go: 10). */
  maxSimilar?: number;
  /** Window of the aggregation and the identical-event count (client-go: 10 minutes). */
  windowMs?: number;
  /** Events per object at once (client-go: 25) ... */
  spamBurst?: number;
  /** ... then one every this many ms (client-go: 5 minutes). */
  spamRefillMs?: number;
  /** Entries per cache (client-go: 4096). */
  cacheSize?: number;
}

/** What the recorder should write: `key` names the Event series (same key, same Event). */
export type Correlated = { drop: true } | { drop: false; key: string; message: string; combined: boolean };

/**
 * client-go's EventAggregator and spam filter, without the writing: pure bookkeeping on a
 * clock, so it is unit-testable.
 */
export class EventCorrelator {
  private readonly now: () => number;
  private readonly maxSimilar: number;
  private readonly windowMs: number;
  private readonly burst: number;
  private readonly refillMs: number;
  /** similar key → distinct messages seen and when the last one was. */
  private readonly similar: LruCache<{ messages: Set<string>; at: number }>;
  /** object key → token bucket. */
  private readonly spam: LruCache<{ tokens: number; at: number }>;
  readonly stats = { combined: 0, dropped: 0 };

  constructor(o: CorrelatorOptions = {}) {
    this.now = o.now ?? (() => Date.now());
    this.maxSimilar = o.maxSimilar ?? 10;
    this.windowMs = o.windowMs ?? DEDUP_WINDOW_MS;
    this.burst = o.spamBurst ?? 25;
    this.refillMs = o.spamRefillMs ?? 5 * 60_000;
    this.similar = new LruCache(o.cacheSize ?? MAX_CACHE);
    this.spam = new LruCache(o.cacheSize ?? MAX_CACHE);
  }

  correlate(objectKey: string, type: EventType, reason: string, message: string): Correlated {
    const now = this.now();
    // Spam filter first here (client-go filters after observing; the outcome is the same:
    // a dropped event is written nowhere).
    let bucket = this.spam.get(objectKey);
    if (!bucket) bucket = { tokens: this.burst, at: now };
    bucket.tokens = Math.min(this.burst, bucket.tokens + (now - bucket.at) / this.refillMs);
    bucket.at = now;
    this.spam.set(objectKey, bucket);
    if (bucket.tokens < 1) {
      this.stats.dropped++;
      return { drop: true };
    }
    bucket.tokens -= 1;

    const similarKey = `${objectKey}\0${type}\0${reason}`;
    let rec = this.similar.get(similarKey);
    if (!rec || now - rec.at > this.windowMs) rec = { messages: new Set(), at: now };
    rec.messages.add(message);
    rec.at = now;
    this.similar.set(similarKey, rec);
    if (rec.messages.size < this.maxSimilar) return { drop: false, key: `${similarKey}\0${message}`, message, combined: false };
    // Too many variants: bound the set too, it only needs to stay at the threshold.
    if (rec.messages.size > this.maxSimilar) rec.messages.delete(rec.messages.values().next().value!);
    this.stats.combined++;
    return { drop: false, key: similarKey, message: COMBINED_PREFIX + message, combined: true };
  }
}

export class EventRecorder {
  /** Event series key → the Event written for it. */
  private readonly seen = new LruCache<Seen>(MAX_CACHE);
  readonly correlator: EventCorrelator;
  /** Per-series write chain, so updates of one Event never race each other. */
  private readonly chains = new Map<string, Promise<void>>();
  private readonly log: (msg: string) => void;
  readonly stats = { created: 0, updated: 0, failed: 0, dropped: 0 };

  constructor(
    readonly client: ApiClient,
    readonly component: string,
    opts: { log?: (msg: string) => void; now?: () => number; correlator?: Omit<CorrelatorOptions, 'now'> } = {},
  ) {
    this.log = opts.log ?? ((m) => console.error(m));
    if (opts.now) this.now = opts.now;
    this.correlator = new EventCorrelator({ ...opts.correlator, now: () => this.now() });
  }

  private now: () => number = () => Date.now();

  /**
   * Records an event about `obj`. Returns a promise that resolves when it is written (or failed
   * and was logged); callers may ignore it.
   */
  event(obj: KObject, type: EventType, reason: string, message: string): Promise<void> {
    const uid = obj.metadata.uid ?? `${obj.kind}/${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
    const c = this.correlator.correlate(uid, type, reason, message);
    if (c.drop) {
      this.stats.dropped++;
      return Promise.resolve();
    }
    const seriesKey = c.key;
    const prev = this.chains.get(seriesKey) ?? Promise.resolve();
    const next = prev
      .then(() => this.write(obj, type, reason, c.message, seriesKey, c.combined))
      .catch((e) => {
        this.stats.failed++;
        this.log(`event ${reason} for ${obj.kind} ${obj.metadata.name}: ${errorMessage(e)}`);
      });
    this.chains.set(seriesKey, next);
    void next.then(() => {
      if (this.chains.get(seriesKey) === next) this.chains.delete(seriesKey);
    });
    return next;
  }

  warning(obj: KObject, reason: string, message: string): Promise<void> {
    return this.event(obj, 'Warning', reason, message);
  }

  normal(obj: KObject, reason: string, message: string): Promise<void> {
    return this.event(obj, 'Normal', reason, message);
  }

  private async write(obj: KObject, type: EventType, reason: string, message: string, seriesKey: string, combined: boolean): Promise<void> {
    const now = this.now();
    const ts = eventTime(now);
    const seen = this.seen.get(seriesKey);
    if (seen && now - seen.at < DEDUP_WINDOW_MS) {
      const count = seen.count + 1;
      try {
        // A combined Event shows the latest of its messages, as client-go's does.
        await this.client.mergePatch(EVENTS, seen.namespace, seen.name, combined ? { count, lastTimestamp: ts, message } : { count, lastTimestamp: ts });
        seen.count = count;
        seen.at = now;
        this.seen.set(seriesKey, seen);
        this.stats.updated++;
        return;
      } catch (e) {
        if (!isNotFound(e)) throw e;
        // Someone deleted (or TTL'd) the Event: start a new series below.
      }
    }
    const namespace = obj.metadata.namespace || 'default';
    const name = `${obj.metadata.name}.${createHash('sha256').update(`${seriesKey}\0${now}`).digest('hex').slice(0, 16)}`;
    const involvedObject: Record<string, string> = { apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata.name ?? '' };
    if (obj.metadata.namespace) involvedObject.namespace = obj.metadata.namespace;
    if (obj.metadata.uid) involvedObject.uid = obj.metadata.uid;
    if (obj.metadata.resourceVersion) involvedObject.resourceVersion = obj.metadata.resourceVersion;
    await this.client.create(EVENTS, {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name, namespace },
      involvedObject,
      reason,
      message,
      type,
      source: { component: this.component },
      reportingComponent: this.component,
      firstTimestamp: ts,
      lastTimestamp: ts,
      count: 1,
    });
    this.stats.created++;
    this.seen.set(seriesKey, { namespace, name, count: 1, firstTimestamp: ts, at: now });
  }
}
