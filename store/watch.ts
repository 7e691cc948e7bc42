// Turns an etcd watch stream (store/etcd/client.ts) into Kubernetes-style ADDED/MODIFIED/DELETED
// events, resuming after the last delivered revision when etcd goes away and comes back.
import type { KObject } from '../api/types.js';
import { decode, prefixEnd, prefixStart } from './codec.js';
import { StoreError } from './errors.js';
import type { EtcdClient, WatchStream } from './etcd/client.js';

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
  kv: EtcdClient;
  prefix: string;
  /** Deliver changes with revision > from (from must be a concrete revision). */
  from: number;
  onEvent: (e: WatchEvent) => void;
  onError: (err: StoreError) => void;
  /** The compaction point, given a compacted revision, for the "too old resource version" message. */
  compactedRevision: (compacted: number) => Promise<number>;
}

const MIN_RETRY_MS = 100;
const MAX_RETRY_MS = 1000;

/**
 * Starts a watch and resolves once etcd has registered it (rejects with Unavailable when etcd
 * cannot be reached). Events are delivered synchronously as each gRPC message arrives. After
 * onError the watch is dead; close() is still safe. When the stream breaks later (etcd
 * restarting), it is reopened after the last delivered revision; if that was compacted
 * meanwhile, onError gets Expired.
 */
export function startWatch(p: WatchParams): Promise<WatchHandle> {
  let last = p.from; // highest revision delivered
  let connected = false;
  let closed = false; // close() was called or onError delivered: deliver nothing more
  let stream: WatchStream | undefined;
  let retry: NodeJS.Timeout | undefined;
  let retryMs = MIN_RETRY_MS;
  let settle!: { resolve: (h: WatchHandle) => void; reject: (e: StoreError) => void };
  const started = new Promise<WatchHandle>((resolve, reject) => (settle = { resolve, reject }));
  const handle: WatchHandle = {
    close: async () => {
      closed = true;
      clearTimeout(retry);
      stream?.close();
    },
  };

  const fail = (err: StoreError) => {
    if (closed) return;
    closed = true;
    clearTimeout(retry);
    stream?.close();
    if (!connected) settle.reject(err);
    else p.onError(err);
  };

  const open = () => {
    stream = p.kv.watch({ key: prefixStart(p.prefix), range_end: prefixEnd(p.prefix), start_revision: last + 1, prev_kv: true }, {
      response: (res) => {
        if (closed) return;
        if (res.canceled) {
          // A compacted start revision (right after creation, or on a reconnect).
          const from = last;
          const expired = (c?: number) => new StoreError('Expired', `too old resource version: ${from}${c ? ` (${c})` : ''}`);
          const compact = Number(res.compact_revision);
          if (compact > 0) return fail(expired(compact));
          if (res.cancel_reason) return fail(new StoreError('Expired', `watch canceled by etcd: ${res.cancel_reason}`));
          void p.compactedRevision(from + 1).then((c) => fail(expired(c)), () => fail(expired()));
          return;
        }
        if (res.created) {
          retryMs = MIN_RETRY_MS;
          if (!connected) {
            connected = true;
            settle.resolve(handle);
          }
        }
        // Replayed history at or before what was delivered is skipped. The floor is fixed per
        // response: one transaction's events share a revision, and etcd never splits a
        // revision across responses.
        const floor = last;
        for (const ev of res.events) {
          const rev = Number(ev.kv.mod_revision);
          if (rev <= floor) continue;
          let event: WatchEvent;
          if (ev.type === 'PUT' && ev.kv.create_revision === ev.kv.mod_revision) {
            event = { type: 'ADDED', object: decode(ev.kv), revision: ev.kv.mod_revision };
          } else if (ev.type === 'PUT') {
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
            return fail(new StoreError('Expired', `delete event at revision ${rev} without previous value; relist`));
          }
          last = rev;
          p.onEvent(event);
          if (closed) return; // the handler closed the watch
        }
      },
      end: (err) => {
        if (closed) return;
        if (!connected) return fail(new StoreError('Unavailable', `cannot start watch: ${err.message}`, { cause: err }));
        // The member went away or lost its leader (the client then prefers another member):
        // reopen after what was delivered, backing off up to a second.
        retry = setTimeout(open, retryMs);
        retryMs = Math.min(MAX_RETRY_MS, retryMs * 2);
      },
    });
  };
  open();
  return started;
}
