// Streaming watch over HTTP: newline-delimited JSON events, resourceVersion semantics of
// kube-apiserver (0/unset = synthetic ADDED for current state), selector-aware event
// translation, bookmarks, timeouts, and 410 as an ERROR event followed by a close.
import type { ServerResponse } from 'node:http';
import type { KObject, ResourceInfo } from '../api/types.js';
import { groupVersion } from '../api/types.js';
import { StoreError } from '../store/store.js';
import type { WatchEvent } from '../store/store.js';
import { storagePrefix } from './keys.js';
import type { ResourceStore } from './resource-store.js';
import { ApiError, gone } from './status.js';

export interface WatchRequest {
  info: ResourceInfo;
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  resourceVersion?: string;
  timeoutSeconds?: number;
  allowBookmarks: boolean;
  sendInitialEvents?: boolean;
  /** How often an idle watch with bookmarks gets one. Default BOOKMARK_INTERVAL_MS. */
  bookmarkIntervalMs?: number;
  /** Turns an object into what the client asked for (plain object, PartialObjectMetadata or one-row Table). */
  render: (obj: KObject, first: boolean) => unknown;
  /** render returns the same object to every watcher of an object (PartialObjectMetadata): serialize it once. */
  sharedRender?: boolean;
  /** Lets the server end this watch early (shutdown, tests); returns the unregister function. */
  register?: (finish: () => void) => () => void;
  onExpired?: () => void;
  /** Called once the 200 is sent: from here on the watch is long-running (metrics, request log). */
  onStart?: () => void;
  /** Bytes of events a watcher may leave unread before its watch is closed. Default MAX_WATCH_BUFFER_BYTES. */
  maxBufferedBytes?: number;
  /** Called once when the watch is closed because its client does not keep up. */
  onSlowClose?: (bufferedBytes: number) => void;
}

export const BOOKMARK_INTERVAL_MS = 30_000;
/**
 * Unread output one watcher may hold in this process. Past it the watch is closed and the client
 * re-watches from its last resourceVersion, as kube-apiserver's cache terminates slow watchers:
 * one stalled client must not grow the server's memory without bound.
 */
export const MAX_WATCH_BUFFER_BYTES = 4 * 1024 * 1024;
/** After a slow watch is ended, how long its buffered tail may take to drain before the connection is dropped. */
export const SLOW_WATCH_GRACE_MS = 5_000;

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

// The watch hub hands each event to every watcher of a resource in one synchronous fan-out, so
// the serialized lines of the current event are all a cache needs: each form (the object, its
// metadata) is serialized once per event. Keyed by the event's object and dropped at the next
// event: a cache living as long as the object kept a serialized copy of every event in the
// hub's history (10,000 per resource), tens of MB under load.
let cachedSource: KObject | undefined;
const cachedLines = new Map<unknown, Partial<Record<EventType, string>>>();

function eventLine(type: EventType, source: KObject, out: unknown): string {
  if (source !== cachedSource) {
    cachedSource = source;
    cachedLines.clear();
  }
  let byType = cachedLines.get(out);
  if (!byType) cachedLines.set(out, (byType = {}));
  return (byType[type] ??= JSON.stringify({ type, object: out }) + '\n');
}

/**
 * Runs one watch until timeout, client disconnect, a store error or a client that stops
 * reading. Query parameters must be validated by the caller: nothing here may fail once the
 * 200 is sent except as an ERROR event.
 */
export async function serveWatch(rs: ResourceStore, req: WatchRequest, res: ServerResponse): Promise<void> {
  const { info } = req;
  const { label, field } = rs.selectors(info, req);
  const filtered = !!(label || field);
  const matches = (o: KObject) => (!label || label.matches(o.metadata.labels ?? {})) && (!field || field.matches(o));

  let closed = false;
  let rendered = 0;
  let lastRevision = '0';
  const timers: NodeJS.Timeout[] = [];
  let storeWatch: { close(): Promise<void> } | undefined;

  res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
  res.flushHeaders();
  req.onStart?.();

  let unregister = () => {};
  let wake: (() => void) | undefined;
  const finish = () => {
    if (closed) return;
    closed = true;
    unregister();
    for (const t of timers) clearTimeout(t);
    void storeWatch?.close().catch(() => undefined);
    wake?.();
    res.end();
  };
  res.on('close', finish);
  if (req.register) unregister = req.register(finish);

  // Events dispatched in one turn of the event loop (an etcd message carries many, and several
  // may arrive in one poll phase) leave in one TLS write: setImmediate, not nextTick, which
  // would flush after every message.
  let corked = false;
  // Back-pressure. Live events are pushed by the shared etcd watch and cannot wait for one
  // client: past `maxBuffered` unread bytes the watch is closed. The initial list waits for the
  // client instead (the watch has not started yet), and a replay of recent history is written
  // at once (it comes from memory already held) with the live bound counted on top of it.
  const maxBuffered = req.maxBufferedBytes ?? MAX_WATCH_BUFFER_BYTES;
  let live = false;
  let baseline = 0;
  res.on('drain', () => (baseline = 0));
  const closeSlow = () => {
    const buffered = res.writableLength;
    req.onSlowClose?.(buffered);
    finish();
    // A client that reads again gets the buffered tail and a clean end; one that does not is
    // dropped, which frees what it left unread.
    if (!res.writableFinished) {
      const t = setTimeout(() => res.destroy(), SLOW_WATCH_GRACE_MS);
      t.unref();
      res.once('close', () => clearTimeout(t));
    }
  };
  const write = (line: string) => {
    // Checked before the write: one event larger than the bound still goes to a reading client.
    if (live && res.writableLength > baseline + maxBuffered) return closeSlow();
    if (!corked) {
      corked = true;
      res.cork();
      setImmediate(() => {
        corked = false;
        res.uncork();
      });
    }
    res.write(line);
  };
  const drained = () => new Promise<void>((resolve) => {
    const done = () => {
      res.off('drain', done);
      wake = undefined;
      resolve();
    };
    wake = done;
    res.on('drain', done);
  });
  const send = (type: EventType, object: unknown) => {
    if (closed) return;
    write(JSON.stringify({ type, object }) + '\n');
  };
  const sendObject = (type: EventType, obj: KObject) => {
    if (closed) return;
    const out = req.render(obj, rendered++ === 0);
    // Plain objects are shared by every watcher of the resource: serialize each event once.
    if (out === obj || req.sharedRender) write(eventLine(type, obj, out));
    else send(type, out);
  };
  const sendError = (err: ApiError) => {
    if (err.code === 410) req.onExpired?.();
    send('ERROR', err.toStatus());
    finish();
  };
  const bookmark = (annotations?: Record<string, string>) => {
    const metadata: Record<string, unknown> = { resourceVersion: lastRevision };
    if (annotations) metadata.annotations = annotations;
    send('BOOKMARK', { kind: info.kind, apiVersion: groupVersion(info), metadata });
  };

  const timeoutMs = (req.timeoutSeconds && req.timeoutSeconds > 0 ? req.timeoutSeconds : 1800 * (1 + Math.random())) * 1000;
  // setTimeout treats more than 2^31-1 ms as 1 ms: a huge timeoutSeconds means "as long as possible".
  timers.push(setTimeout(finish, Math.min(timeoutMs, 2 ** 31 - 1)));

  // Objects this watcher currently sees, so a change that moves an object into or out of the
  // selector becomes ADDED/DELETED as kube-apiserver's cacher does.
  const visible = new Set<string>();
  const keyOf = (o: KObject) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;

  const onEvent = (e: WatchEvent) => {
    lastRevision = e.revision;
    if (!filtered) {
      sendObject(e.type, e.object);
      return;
    }
    const k = keyOf(e.object);
    const was = e.prevObject ? matches(e.prevObject) : visible.has(k);
    if (e.type === 'DELETED') {
      visible.delete(k);
      if (was || matches(e.object)) sendObject('DELETED', e.object);
      return;
    }
    const now = matches(e.object);
    if (now) visible.add(k);
    else visible.delete(k);
    if (now && !was) sendObject('ADDED', e.object);
    else if (now && was) sendObject('MODIFIED', e.object);
    else if (!now && was) sendObject('DELETED', e.object);
  };

  const onError = (err: StoreError) => {
    if (err.code === 'Expired') sendError(gone(err.message));
    else sendError(new ApiError(500, 'InternalError', `watch failed: ${err.message}`));
  };

  try {
    let from = req.resourceVersion;
    const initial = req.sendInitialEvents || !from || from === '0';
    if (initial) {
      const list = await rs.list(info, req.namespace, { labelSelector: req.labelSelector, fieldSelector: req.fieldSelector });
      for (const o of list.items) {
        visible.add(keyOf(o));
        sendObject('ADDED', o);
        if (res.writableLength > maxBuffered && !closed) await drained();
        if (closed) return;
      }
      from = list.resourceVersion;
      lastRevision = from;
      if (req.sendInitialEvents && req.allowBookmarks) bookmark({ 'k8s.io/initial-events-end': 'true' });
    } else {
      lastRevision = from!;
    }
    if (closed) return;
    storeWatch = await rs.watches.watch(storagePrefix(info, undefined), info.namespaced ? req.namespace : undefined, from, onEvent, onError);
    if (closed) await storeWatch.close();
    baseline = res.writableLength;
    live = true;
  } catch (e) {
    if (e instanceof StoreError && e.code === 'Expired') return sendError(gone(e.message));
    if (e instanceof ApiError) return sendError(e);
    return sendError(new ApiError(500, 'InternalError', e instanceof Error ? e.message : String(e)));
  }

  if (req.allowBookmarks) {
    const tick = () => {
      if (closed) return;
      bookmark();
      timers.push(setTimeout(tick, req.bookmarkIntervalMs ?? BOOKMARK_INTERVAL_MS));
    };
    timers.push(setTimeout(tick, req.bookmarkIntervalMs ?? BOOKMARK_INTERVAL_MS));
  }
}
