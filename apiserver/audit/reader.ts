// Reads the audit log back (audit.log and its rotated files), filtered: what `kova audit` prints.
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { AUDIT_FILE, ROTATED_FILE } from './log.js';
import type { AuditEvent } from './event.js';

export interface AuditFilter {
  /** Events whose request was received at or after this time. */
  since?: Date;
  /** The user who authenticated or whom they impersonated. */
  user?: string;
  verb?: string;
  namespace?: string;
}

/**
 * `--since` as kubectl logs takes it (a duration: 90s, 30m, 1h, 2h30m, 1d) or an RFC 3339 time.
 * Throws naming the value when it is neither.
 */
export function parseSince(value: string, now: Date = new Date()): Date {
  const d = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/.test(value) ? durationMs(value) : undefined;
  if (d !== undefined) return new Date(now.getTime() - d);
  if (/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$/i.test(value)) {
    const t = new Date(value);
    if (!Number.isNaN(t.getTime())) return t;
  }
  throw new Error(`--since must be a duration (30s, 30m, 1h, 1d) or an RFC 3339 time (2026-01-02T15:04:05Z), got ${JSON.stringify(value)}`);
}

function durationMs(v: string): number {
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  let total = 0;
  for (const m of v.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) total += Number(m[1]) * unit[m[2]!]!;
  return total;
}

export function matches(e: AuditEvent, f: AuditFilter): boolean {
  if (f.since && !(Date.parse(e.requestReceivedTimestamp) >= f.since.getTime())) return false;
  if (f.user !== undefined && e.user?.username !== f.user && e.impersonatedUser?.username !== f.user) return false;
  if (f.verb !== undefined && e.verb !== f.verb) return false;
  if (f.namespace !== undefined && (e.objectRef?.namespace ?? '') !== f.namespace) return false;
  return true;
}

/** The log's files, oldest first; none when the directory does not exist. */
export async function auditFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const rotated = names.filter((n) => ROTATED_FILE.test(n)).sort();
  return [...rotated, ...(names.includes(AUDIT_FILE) ? [AUDIT_FILE] : [])].map((n) => join(dir, n));
}

/**
 * The events of the log in `dir` that pass `filter`, in the order they were received. Lines
 * that are not JSON Events (a line cut short by a crash) are skipped and counted. A rotated
 * file last written before `since` is not read at all.
 */
export async function readAuditLog(dir: string, filter: AuditFilter = {}): Promise<{ events: AuditEvent[]; skipped: number }> {
  const events: AuditEvent[] = [];
  let skipped = 0;
  for (const file of await auditFiles(dir)) {
    if (filter.since) {
      const st = await stat(file).catch(() => undefined);
      if (!st || st.mtime < filter.since) continue;
    }
    const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
    try {
      for await (const line of lines) {
        if (!line.trim()) continue;
        let e: AuditEvent;
        try {
          e = JSON.parse(line) as AuditEvent;
        } catch {
          skipped++;
          continue;
        }
        if (e?.kind !== 'Event' || typeof e.requestReceivedTimestamp !== 'string') {
          skipped++;
          continue;
        }
        if (matches(e, filter)) events.push(e);
      }
    } catch (err) {
      // Pruned by a running server between listing and reading: its events are gone anyway.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  // Processes append independently, and a late writer's lines may sit in a rotated file.
  events.sort((a, b) => (a.requestReceivedTimestamp < b.requestReceivedTimestamp ? -1 : a.requestReceivedTimestamp > b.requestReceivedTimestamp ? 1 : 0));
  return { events, skipped };
}
