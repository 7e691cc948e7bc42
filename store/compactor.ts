// Compaction: etcd keeps every revision until told otherwise, and kova (not etcd's
// --auto-compaction) decides when, like kube-apiserver does.
import type { EtcdClient } from './etcd/client.js';
import { isCompacted, toStoreError } from './errors.js';

/** Compacts history before `revision`; an already compacted revision is not an error. */
export async function compact(client: EtcdClient, revision: number): Promise<void> {
  try {
    await client.compact({ revision, physical: false });
  } catch (err) {
    if (!isCompacted(err)) throw toStoreError(err);
  }
}

/** A key no one writes: reads of it only tell whether a revision is still readable. */
const PROBE_KEY = Buffer.from([0]);

/**
 * The current compaction point: the oldest readable revision in (known compacted, readable].
 * etcd 3.4 reports it only in some watch cancel messages, so binary-search it
 * (about log2(revision) tiny reads; only used to word an Expired error).
 */
export async function compactedRevision(client: EtcdClient, compacted: number, readable: number): Promise<number> {
  let lo = compacted;
  let hi = readable;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    try {
      await client.range({ key: PROBE_KEY, count_only: true, revision: mid });
      hi = mid;
    } catch (err) {
      if (!isCompacted(err)) throw err;
      lo = mid;
    }
  }
  return hi;
}

export interface CompactorOptions {
  /** Called after each successful compaction with its revision. */
  onCompacted?: (revision: number) => void;
  /** Default 5 minutes, as kube-apiserver. */
  intervalMs?: number;
  /** Revisions of history to keep. Default 10000. */
  keepRevisions?: number;
  /** Called with failures other than "already compacted"; the compactor keeps running. */
  onError?: (err: unknown) => void;
}

/** Every interval, compacts to `current - keepRevisions`. Returns a stop function. */
export function startCompactor(
  client: EtcdClient,
  currentRevision: () => Promise<number>,
  opts: CompactorOptions = {},
): () => void {
  const keep = opts.keepRevisions ?? 10_000;
  let done = 0;
  let running = false;
  const tick = async () => {
    if (running) return;
    running = true;
    try {
      const target = (await currentRevision()) - keep;
      if (target > done) {
        await compact(client, target);
        done = target;
        opts.onCompacted?.(target);
      }
    } catch (err) {
      opts.onError?.(err);
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void tick(), opts.intervalMs ?? 5 * 60_000);
  timer.unref(); // never keep the process alive just to compact
  return () => clearInterval(timer);
}
