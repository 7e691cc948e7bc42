// Turns an etcd3 prefix watcher into Kubernetes-style ADDED/MODIFIED/DELETED events.
import type { Etcd3, IWatchResponse } from 'etcd3';
import type { KObject } from '../api/types.js';
import { decode, prefixEnd, prefixStart } from './codec.js';
import { StoreError, isUnavailable } from './errors.js';

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  /** For DELETED: the object as it was, with resourceVersion = the deletion revision. */
  object: KObject;
  /** The etcd revision of the change (equals object.metadata.resourceVersion). */
  revision: string;
  /** For MODIFIED: the object before the change (decoded lazily, on first access). */
  readonly prevObject?: KObject;
}

export interface WatchHandle {
  close(): Promise<void>;
}

export interface WatchParams {
  client: Etcd3;
  prefix: string;
  /** Deliver changes with revision > from (from must be a concrete revision). */
  from: number;
  onEvent: (e: WatchEvent) => void;
  onError: (err: StoreError) => void;
  /** The compaction point, given a compacted revision, for the "too old resource version" message. */
  compactedRevision: (compacted: number) => Promise<number>;
}

const CANCEL_TIMEOUT_MS = 5000;

/**
 * Starts a watch and resolves once etcd has registered it. Events are delivered synchronously
 * as each gRPC message arrives (no buffering). After onError the watch is dead; close() is
 * still safe. Reconnects after an etcd restart resume after the last delivered revision.
 */
export function startWatch(p: WatchParams): Promise<WatchHandle> {
  const watcher = p.client
    .watch()
    .inRange({ start: prefixStart(p.prefix), end: prefixEnd(p.prefix) })
    .startRevision(String(p.from + 1))
    .withPreviousKV()
    .watcher();

  let last = p.from; // highest revision delivered
  let connected = false;
  let dead = false; // etcd canceled the watch (or it never started): don't cancel() it again
  let closed = false; // close() was called or onError delivered: deliver nothing more
  let settle!: { resolve: (h: WatchHandle) => void; reject: (e: StoreError) => void };
  const started = new Promise<WatchHandle>((resolve, reject) => (settle = { resolve, reject }));

  const fail = (err: StoreError) => {
    if (!connected) return settle.reject(err);
    if (closed) return;
    closed = true;
    p.onError(err);
  };

  watcher.on('data', (res: IWatchResponse) => {
    if (closed) return;
    for (const ev of res.events) {
      const rev = Number(ev.kv.mod_revision);
      if (rev <= last) continue; // replayed after a reconnect
      let event: WatchEvent;
      if (ev.type === 'Put' && ev.kv.create_revision === ev.kv.mod_revision) {
        event = { type: 'ADDED', object: decode(ev.kv), revision: ev.kv.mod_revision };
      } else if (ev.type === 'Put') {
        const prevKv = ev.prev_kv;
        let prev: KObject | undefined;
        event = {
          type: 'MODIFIED',
          object: decode(ev.kv),
          revision: ev.kv.mod_revision,
          get prevObject() {
            return (prev ??= prevKv ? decode(prevKv) : undefined);
          },
        };
      } else if (ev.prev_kv) {
        event = { type: 'DELETED', object: decode(ev.prev_kv, ev.kv.mod_revision), revision: ev.kv.mod_revision };
      } else {
        // etcd could not load the old value (compacted): we cannot say what was deleted.
        void cancelWatcher();
        return fail(new StoreError('Expired', `delete event at revision ${rev} without previous value; relist`));
      }
      last = rev;
      p.onEvent(event);
      if (closed) return; // the handler closed the watch
    }
  });

  // etcd3 resumes from the *header* revision of the last message it saw, which runs ahead of
  // the events while etcd is still replaying history; resume from what we delivered instead.
  watcher.on('disconnected', (err: Error) => {
    watcher.request.start_revision = String(last + 1);
    if (!connected) {
      // Never registered: etcd is down. Fail fast instead of letting etcd3 retry forever.
      void cancelWatcher();
      fail(new StoreError('Unavailable', `cannot start watch: ${err.message}`, { cause: err }));
    }
  });

  // In etcd 3.4 a compacted start revision is reported as a cancel with an empty reason
  // (etcd3 drops the compact_revision field), right after creation or on a reconnect.
  watcher.on('error', (err: Error) => {
    dead = true;
    const from = last;
    if (/^Watcher canceled: ?$/.test(err.message)) {
      const expired = (c?: number) => new StoreError('Expired', `too old resource version: ${from}${c ? ` (${c})` : ''}`);
      void p.compactedRevision(from + 1).then((c) => fail(expired(c)), () => fail(expired()));
    } else {
      fail(new StoreError(isUnavailable(err) ? 'Unavailable' : 'Expired', `watch failed: ${err.message}`, { cause: err }));
    }
  });

  watcher.once('connected', () => {
    connected = true;
    settle.resolve({
      close: async () => {
        closed = true;
        await cancelWatcher();
      },
    });
  });

  async function cancelWatcher(): Promise<void> {
    // After an etcd-side cancel, etcd3's cancel() would wait forever for an 'end' that never comes.
    if (dead) return;
    dead = true;
    await Promise.race([watcher.cancel(), new Promise((r) => setTimeout(r, CANCEL_TIMEOUT_MS).unref())]).catch(() => {});
  }

  return started;
}
