// The compactor: once a UTC day is over (and `compactAfterMs` more, for late records), each
// ledger's use within that day is summed per size into the project's period record for the day
// (period-YYYY-MM-DD, split into -1, -2, ... at MAX_PERIOD_ROWS rows) and the ledger moves its
// compactedThrough past the day, dropping the intervals that ended before it. A ledger whose
// subject is deleted and whose every day is folded is deleted. The two writes are not atomic:
// a subject's rows in a day's period record mean "this day is folded" (api/metering.ts
// ledgerFloor), so a crash between them neither loses nor double-counts, and a retry after one
// only moves the ledger on. Period records are read with a fresh LIST, never from a cache.
import { USAGE_RECORDS } from '../../api/kinds/usage.js';
import type { UsageRecord, UsageRow } from '../../api/kinds/usage.js';
import { checkpointsFrom, DAY_MS, dayCheckpoints, dayName, dayStart, MAX_PERIOD_ROWS, PERIOD_LABEL, periodRecordName, periodRows, RECORD_TYPE_LABEL, rfc3339, timeOf } from '../../api/metering.js';
import { isAlreadyExists, isConflict, isNotFound } from '../../client/client.js';
import type { ApiClient } from '../../client/client.js';
import type { Reconciler, Request, Result } from '../../client/controller.js';
import { writeRecord } from './ledger-writer.js';
import type { Cache } from './ledger-writer.js';

export interface CompactorOptions {
  client: ApiClient;
  records: Cache<UsageRecord>;
  now: () => number;
  /** How long after a day ends it is compacted (default an hour). */
  compactAfterMs?: number;
  log: (msg: string) => void;
}

export const DEFAULT_COMPACT_AFTER_MS = 3_600_000;
const MAX_ATTEMPTS = 10;

export class Compactor implements Reconciler {
  readonly name = 'metering-compactor';
  private readonly after: number;

  constructor(private readonly o: CompactorOptions) {
    this.after = o.compactAfterMs ?? DEFAULT_COMPACT_AFTER_MS;
  }

  async reconcile(req: Request): Promise<Result | void> {
    const ns = req.namespace!;
    let ledger = this.o.records.get(ns, req.name);
    if (!ledger?.spec.subject) return;
    for (;;) {
      const day = nextDay(ledger);
      if (day === undefined) return this.finish(ledger);
      const due = day + DAY_MS + this.after;
      const now = this.o.now();
      if (due > now) return { requeueAfterMs: due - now };
      await this.fold(ns, ledger, day);
      const moved = await writeRecord(this.o.client, ledger, ns, req.name, ledger.metadata.labels ?? {}, (cur) => {
        if (!cur?.spec.subject) return undefined;
        const through = Math.max(timeOf(cur.spec.compactedThrough) ?? -Infinity, day + DAY_MS);
        const intervals = (cur.spec.intervals ?? []).filter((i) => i.end === undefined || timeOf(i.end)! > through);
        // Network checkpoints before the day's end are in the period rows (the last one stays: the base of what follows).
        const network = cur.spec.network ? { network: checkpointsFrom(cur.spec.network, through) } : {};
        return { ...cur.spec, compactedThrough: rfc3339(through), intervals, ...network };
      });
      if (!moved) return;
      ledger = moved;
    }
  }

  /** Adds the ledger's rows for `day` to the day's period record unless a record of the day already holds its subject. */
  private async fold(ns: string, ledger: UsageRecord, day: number): Promise<void> {
    const subject = ledger.spec.subject!;
    const rows = periodRows(subject, ledger.spec.intervals ?? [], Math.max(day, timeOf(ledger.spec.compactedThrough) ?? -Infinity), day + DAY_MS);
    if (!rows.length) return;
    const network = dayCheckpoints(ledger.spec.network, day, day + DAY_MS);
    if (network.length) for (const r of rows) r.network = network;
    for (let attempt = 0; ; attempt++) {
      const shards = (await this.o.client.list<UsageRecord>(USAGE_RECORDS, ns, { labelSelector: `${PERIOD_LABEL}=${dayName(day)}` })).items
        .filter((r) => timeOf(r.spec.period?.start) === day);
      if (shards.some((r) => r.spec.rows?.some((row) => row.uid === subject.uid))) return; // folded before
      try {
        await this.addRows(ns, day, shards, rows);
        return;
      } catch (e) {
        if (!(isConflict(e) || isAlreadyExists(e)) || attempt + 1 >= MAX_ATTEMPTS) throw e;
      }
    }
  }

  private async addRows(ns: string, day: number, shards: UsageRecord[], rows: UsageRow[]): Promise<void> {
    const roomy = shards.find((r) => (r.spec.rows?.length ?? 0) + rows.length <= MAX_PERIOD_ROWS);
    if (roomy) {
      await this.o.client.update<UsageRecord>(USAGE_RECORDS, { ...roomy, spec: { ...roomy.spec, rows: [...(roomy.spec.rows ?? []), ...rows] } });
      return;
    }
    const taken = new Set(shards.map((r) => r.metadata.name));
    let shard = 0;
    while (taken.has(periodRecordName(day, shard))) shard++;
    await this.o.client.create<UsageRecord>(USAGE_RECORDS, {
      apiVersion: 'metering.kova.dev/v1alpha1', kind: 'UsageRecord',
      metadata: { name: periodRecordName(day, shard), namespace: ns, labels: { [RECORD_TYPE_LABEL]: 'period', [PERIOD_LABEL]: dayName(day) } },
      spec: { period: { start: rfc3339(day), end: rfc3339(day + DAY_MS) }, rows },
    });
  }

  /** A deleted subject's ledger with nothing left to fold is deleted (its usage is in period records). */
  private async finish(ledger: UsageRecord): Promise<void> {
    const deleted = timeOf(ledger.spec.deleted);
    if (deleted === undefined || (ledger.spec.intervals ?? []).length) return;
    try {
      await this.o.client.delete(USAGE_RECORDS, ledger.metadata.namespace, ledger.metadata.name!, { preconditions: { resourceVersion: ledger.metadata.resourceVersion } });
    } catch (e) {
      if (!isNotFound(e) && !isConflict(e)) throw e;
    }
  }
}

/**
 * The first UTC day the ledger still has use in, or undefined when it has none left to fold:
 * from its compactedThrough (or its first interval's day), up to the day its use ends (open
 * intervals: never).
 */
function nextDay(ledger: UsageRecord): number | undefined {
  const intervals = ledger.spec.intervals ?? [];
  if (!intervals.length) return undefined;
  const first = Math.min(...intervals.map((i) => timeOf(i.start)!));
  const from = Math.max(timeOf(ledger.spec.compactedThrough) ?? -Infinity, dayStart(first));
  const ends = intervals.map((i) => timeOf(i.end) ?? Infinity);
  const last = Math.max(...ends);
  return from < last ? dayStart(from) : undefined;
}
