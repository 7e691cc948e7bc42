// Writes of UsageRecords, shared by the metering reconcilers: compute the next spec from the
// newest copy we have (the cache's first), write it conditionally on its resourceVersion, and on
// a conflict (or a create that finds the record already there) read it again and recompute. The
// builders are pure and idempotent, so a retry or a duplicate reconcile never counts twice.
import { isDeepStrictEqual } from 'node:util';
import { METERING_API_VERSION, USAGE_RECORDS } from '../../api/kinds/usage.js';
import type { UsageRecord, UsageRecordSpec } from '../../api/kinds/usage.js';
import { isConflict, StatusError } from '../../client/client.js';
import type { ApiClient } from '../../client/client.js';

export interface Cache<T> {
  get(namespace: string | undefined, name: string): T | undefined;
  list(namespace?: string): readonly T[];
}

const MAX_ATTEMPTS = 10;

/**
 * Makes the record `ns/name` hold `build(current)`; `build` returns undefined for "nothing to
 * write". Returns the record as stored (or as it was when nothing changed).
 */
export async function writeRecord(
  client: ApiClient,
  cached: UsageRecord | undefined,
  ns: string,
  name: string,
  labels: Record<string, string>,
  build: (current: UsageRecord | undefined) => UsageRecordSpec | undefined,
): Promise<UsageRecord | undefined> {
  let cur = cached;
  for (let attempt = 0; ; attempt++) {
    const next = build(cur);
    if (!next || (cur && isDeepStrictEqual(next, cur.spec))) return cur;
    try {
      if (!cur) {
        return await client.create<UsageRecord>(USAGE_RECORDS, { apiVersion: METERING_API_VERSION, kind: 'UsageRecord', metadata: { name, namespace: ns, labels }, spec: next });
      }
      return await client.update<UsageRecord>(USAGE_RECORDS, { ...cur, spec: next });
    } catch (e) {
      // 409: changed since we read it, or created meanwhile (AlreadyExists): read and recompute.
      if (!isConflict(e) || attempt + 1 >= MAX_ATTEMPTS) throw e;
      cur = await client.get<UsageRecord>(USAGE_RECORDS, ns, name);
    }
  }
}

/** A create refused because the project is being deleted: its records go with it, nothing to keep. */
export function namespaceTerminating(e: unknown): boolean {
  return e instanceof StatusError && e.code === 403 && /because it is being terminated/.test(e.message);
}
