// EventRecorder: core/v1 Events about API objects, as `kubectl describe` shows them.
// Identical events (same object uid, type, reason, message) within 10 minutes bump `count` and
// `lastTimestamp` on one Event instead of piling up new ones, like client-go's correlator.
// Recording is best effort: it never throws to the caller and never blocks a reconcile long.
import { createHash } from 'node:crypto';
import type { KObject } from '../../api/types.js';
import { EVENTS, isNotFound, KovaClient } from './client.js';
import { errorMessage } from './controller.js';

export type EventType = 'Normal' | 'Warning';

const DEDUP_WINDOW_MS = 10 * 60_000;
const MAX_CACHE = 4096;

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

export class EventRecorder {
  private readonly seen = new Map<string, Seen>();
  /** Per-series write chain, so updates of one Event never race each other. */
  private readonly chains = new Map<string, Promise<void>>();
  private readonly log: (msg: string) => void;
  readonly stats = { created: 0, updated: 0, failed: 0 };

  constructor(
    readonly client: KovaClient,
    readonly component: string,
    opts: { log?: (msg: string) => void; now?: () => number } = {},
  ) {
    this.log = opts.log ?? ((m) => console.error(m));
    if (opts.now) this.now = opts.now;
  }

  private now: () => number = () => Date.now();

  /**
   * Records an event about `obj`. Returns a promise that resolves when it is written (or failed
   * and was logged); callers may ignore it.
   */
  event(obj: KObject, type: EventType, reason: string, message: string): Promise<void> {
    const uid = obj.metadata.uid ?? `${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
    const seriesKey = `${uid}\0${type}\0${reason}\0${message}`;
    const prev = this.chains.get(seriesKey) ?? Promise.resolve();
    const next = prev
      .then(() => this.write(obj, type, reason, message, seriesKey))
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

  private async write(obj: KObject, type: EventType, reason: string, message: string, seriesKey: string): Promise<void> {
    const now = this.now();
    const ts = eventTime(now);
    const seen = this.seen.get(seriesKey);
    if (seen && now - seen.at < DEDUP_WINDOW_MS) {
      const count = seen.count + 1;
      try {
        await this.client.mergePatch(EVENTS, seen.namespace, seen.name, { count, lastTimestamp: ts });
        seen.count = count;
        seen.at = now;
        this.remember(seriesKey, seen);
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
    this.remember(seriesKey, { namespace, name, count: 1, firstTimestamp: ts, at: now });
  }

  private remember(key: string, s: Seen): void {
    this.seen.delete(key);
    this.seen.set(key, s);
    // Map iteration is insertion order: drop the least recently written series.
    while (this.seen.size > MAX_CACHE) this.seen.delete(this.seen.keys().next().value!);
  }
}
