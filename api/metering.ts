// Metering arithmetic shared by the metering controller (which records ledgers and compacts them)
// and the API server (which answers the usage API from them). Pure: every time comes from the
// objects (startedAt, conditions' lastTransitionTime, creationTimestamp, deletionTimestamp), never
// from when someone looked, so the same objects give the same ledger whoever records them.
import { findCondition } from './conditions.js';
import type { FloatingIP, Instance, InstancePowerTransition, InstanceStatus, Volume } from './kinds/index.js';
import type { MeteredKind, NetworkCheckpoint, UsageRecord, UsageRow, UsageSpan, UsageSubject } from './kinds/usage.js';
import { METERING_API_VERSION } from './kinds/usage.js';
import { quantityValue } from './quantity.js';
import { nowRFC3339 } from './types.js';

export const DAY_MS = 86_400_000;
/** Closed intervals a ledger keeps before the oldest same-size neighbours are coalesced. */
export const MAX_LEDGER_INTERVALS = 256;
/** Rows per period record; a day with more is split over several records. */
export const MAX_PERIOD_ROWS = 512;
/** Labels of UsageRecords: which of the two shapes, and the day of a period record. */
export const RECORD_TYPE_LABEL = 'metering.kova.dev/type';
export const PERIOD_LABEL = 'metering.kova.dev/period';

/** RFC 3339 with whole seconds, as every timestamp kova writes. */
export function rfc3339(ms: number): string {
  return nowRFC3339(new Date(ms));
}

/** Milliseconds of an RFC 3339 time; undefined when absent or unreadable. */
export function timeOf(t: string | undefined): number | undefined {
  if (!t) return undefined;
  const ms = Date.parse(t);
  return Number.isFinite(ms) ? ms : undefined;
}

/** Start of the UTC day of `ms`. */
export function dayStart(ms: number): number {
  return Math.floor(ms / DAY_MS) * DAY_MS;
}

/** "2026-05-01" for the UTC day starting at `ms`. */
export function dayName(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

export const ledgerName = (kind: MeteredKind, uid: string) => `${kind.toLowerCase()}-${uid}`;
export const periodRecordName = (day: number, shard: number) => `period-${dayName(day)}${shard ? `-${shard}` : ''}`;

// ---- what the objects say ----

/**
 * When a subject was in use, as its object says now: `on` since `since`, or off since `offAt`;
 * `deletedAt` once it is being deleted (its usage ends there).
 */
export interface UseFacts {
  on: boolean;
  since?: number;
  offAt?: number;
  deletedAt?: number;
}

/** The resources a span is charged for. */
export type SpanSize = Pick<UsageSpan, 'flavor' | 'vcpus' | 'memoryBytes' | 'diskBytes' | 'sizeBytes'>;

/**
 * An instance runs while its Ready condition is True (the agent's view of the guest). A run
 * starts at the later of status.startedAt (a reboot restamps it while Ready stays True) and
 * Ready's lastTransitionTime (an unpause); it ends at Ready's lastTransitionTime to anything else
 * (Stopping, Stopped, Paused, Crashed, Terminating) or at the deletionTimestamp.
 */
export function instanceFacts(inst: Pick<Instance, 'metadata' | 'status'>): UseFacts {
  const ready = findCondition(inst.status?.conditions, 'Ready');
  const ltt = timeOf(ready?.lastTransitionTime);
  const on = ready?.status === 'True' && ltt !== undefined;
  const started = timeOf(inst.status?.startedAt);
  return {
    on,
    since: on ? Math.max(ltt!, started ?? ltt!) : undefined,
    offAt: on ? undefined : ltt,
    deletedAt: timeOf(inst.metadata.deletionTimestamp),
  };
}

/** Run transitions an instance's status.powerHistory keeps (crds/instance.yaml maxItems). */
export const MAX_POWER_HISTORY = 16;

/** The run transition `f` says happened last: running since `since`, or stopped at `offAt`. */
function transitionOf(f: UseFacts): InstancePowerTransition | undefined {
  const t = f.on ? f.since : f.offAt;
  return t === undefined ? undefined : { running: f.on, time: rfc3339(t) };
}

/** The history with `t` appended when it is news: the running state flips, or a later run starts (a reboot). */
function noteTransition(history: readonly InstancePowerTransition[], t: InstancePowerTransition | undefined, ranBefore: boolean): readonly InstancePowerTransition[] {
  if (!t || (!t.running && !history.length && !ranBefore)) return history; // not running yet is no transition
  const last = history[history.length - 1];
  if (last && last.running === t.running && (!t.running || timeOf(t.time)! <= (timeOf(last.time) ?? -Infinity))) return history;
  return [...history, t].slice(-MAX_POWER_HISTORY);
}

/**
 * `next` (an Instance status about to be written over `prev`) with its powerHistory brought up to
 * date: the transition `prev` shows (written by someone who kept no history: an older agent, an
 * evacuation) and then the one `next` shows, each only when it is news, with the times of the
 * Ready condition and startedAt. Idempotent: writing the same status again appends nothing.
 */
export function withPowerHistory(prev: InstanceStatus | undefined, next: InstanceStatus): InstanceStatus {
  const facts = (status: InstanceStatus | undefined) => instanceFacts({ metadata: {}, status });
  const before = prev?.powerHistory ?? [];
  let history = prev ? noteTransition(before, transitionOf(facts(prev)), !!prev.startedAt) : before;
  history = noteTransition(history, transitionOf(facts(next)), !!(prev?.startedAt ?? next.startedAt));
  if (history === (next.powerHistory ?? [])) return next;
  return history.length ? { ...next, powerHistory: [...history] } : next;
}

/**
 * The transitions of an instance's powerHistory the ledger's intervals may not hold yet: those
 * from the ledger's latest time on (its last start or end, or where its compaction left off), up
 * to the deletion. Replaying them through advance() before the current facts rebuilds the runs
 * and stops that happened while the controller was not looking; when the ledger's latest time is
 * older than the oldest entry, transitions may be missing in between (more than
 * MAX_POWER_HISTORY of them, or some made before the agent kept a history), and that gap counts
 * as the latest facts alone would count it.
 */
export function unrecordedTransitions(inst: Pick<Instance, 'metadata' | 'status'>, intervals: readonly UsageSpan[], compactedThrough?: string): UseFacts[] {
  const history = inst.status?.powerHistory ?? [];
  let latest = timeOf(compactedThrough) ?? -Infinity;
  for (const i of intervals) latest = Math.max(latest, timeOf(i.start) ?? -Infinity, timeOf(i.end) ?? -Infinity);
  const deletedAt = timeOf(inst.metadata.deletionTimestamp) ?? Infinity;
  const out: UseFacts[] = [];
  for (const h of history) {
    const t = timeOf(h.time);
    if (t === undefined || t < latest || t > deletedAt) continue;
    out.push(h.running ? { on: true, since: t } : { on: false, offAt: t });
  }
  return out;
}

/**
 * An instance's intervals after observing it: the transitions of its powerHistory the ledger
 * does not hold yet, then what it says now (instanceFacts). `size` is asked for each run opened,
 * with the intervals before it.
 */
export function advanceInstance(intervals: readonly UsageSpan[], inst: Pick<Instance, 'metadata' | 'status'>, size: (before: readonly UsageSpan[]) => SpanSize, compactedThrough?: string): UsageSpan[] {
  let out = [...intervals];
  for (const f of [...unrecordedTransitions(inst, intervals, compactedThrough), instanceFacts(inst)]) {
    const before = out;
    out = advance(before, f, { size: () => size(before) });
  }
  return out;
}

/** Volumes and floating IPs count from their creation to their deletion (Cinder's and Neutron's usage audit). */
export function existenceFacts(obj: Pick<Volume | FloatingIP, 'metadata'>): UseFacts {
  const created = timeOf(obj.metadata.creationTimestamp);
  return { on: created !== undefined, since: created, deletedAt: timeOf(obj.metadata.deletionTimestamp) };
}

/** A volume is charged for the size its spec asks for. */
export function volumeSize(v: Pick<Volume, 'spec'>): SpanSize {
  try {
    return { sizeBytes: Math.max(0, Math.round(quantityValue(v.spec.size))) };
  } catch {
    return { sizeBytes: 0 };
  }
}

export function sameSize(a: SpanSize, b: SpanSize): boolean {
  return (a.vcpus ?? 0) === (b.vcpus ?? 0) && (a.memoryBytes ?? 0) === (b.memoryBytes ?? 0)
    && (a.diskBytes ?? 0) === (b.diskBytes ?? 0) && (a.sizeBytes ?? 0) === (b.sizeBytes ?? 0);
}

function sizeOf(s: SpanSize): SpanSize {
  const out: SpanSize = {};
  if (s.flavor) out.flavor = s.flavor;
  for (const k of ['vcpus', 'memoryBytes', 'diskBytes', 'sizeBytes'] as const) if (s[k] !== undefined) out[k] = s[k];
  return out;
}

// ---- recording ----

export interface AdvanceOptions {
  /** The size now; asked for only when an interval opens (or, with resizeAt, to compare). */
  size: () => SpanSize;
  /** Re-size the open interval from this time when the size differs (volumes); instances change size only at a (re)start. */
  resizeAt?: number;
}

/**
 * The intervals after observing `f`: the open interval is closed when the subject stopped,
 * was deleted, or started again (a restart: the new run may have a new size); a new one opens
 * when it runs. Idempotent: the same facts leave the intervals unchanged.
 */
export function advance(intervals: readonly UsageSpan[], f: UseFacts, o: AdvanceOptions): UsageSpan[] {
  const out = intervals.map((i) => ({ ...i }));
  const last = out[out.length - 1];
  const open = last && last.end === undefined ? last : undefined;
  const lastEnd = out.reduce((m, i) => Math.max(m, timeOf(i.end) ?? -Infinity), -Infinity);
  const close = (at: number) => {
    const start = timeOf(open!.start)!;
    open!.end = rfc3339(Math.max(start, at));
  };
  if (f.deletedAt !== undefined) {
    if (open) close(f.on ? f.deletedAt : Math.min(f.offAt ?? f.deletedAt, f.deletedAt));
  } else if (f.on && f.since !== undefined) {
    const openStart = open ? timeOf(open.start)! : undefined;
    if (open && f.since > openStart!) {
      close(f.since);
      out.push({ start: rfc3339(f.since), ...sizeOf(o.size()) });
    } else if (open && o.resizeAt !== undefined) {
      const size = o.size();
      if (!sameSize(open, size)) {
        const at = Math.max(openStart!, o.resizeAt);
        close(at);
        out.push({ start: rfc3339(at), ...sizeOf(size) });
      }
    } else if (!open) {
      out.push({ start: rfc3339(Math.max(f.since, lastEnd)), ...sizeOf(o.size()) });
    }
  } else if (open) {
    close(f.offAt ?? timeOf(open.start)!);
  }
  // An interval that ended where it began used nothing.
  return out.filter((i) => i.end === undefined || i.end !== i.start || (i.seconds ?? 0) > 0);
}

const spanSeconds = (i: UsageSpan) => i.seconds ?? ((timeOf(i.end)! - timeOf(i.start)!) / 1000);

/**
 * Keeps a ledger bounded: while it holds more than `max` closed intervals, the oldest pair of
 * neighbours with the same size (preferably within one UTC day) becomes one coalesced interval
 * (its seconds kept, spread over its span). A subject that flaps all day costs a bounded ledger;
 * only windows that cut such a span are prorated.
 */
export function boundIntervals(intervals: readonly UsageSpan[], max = MAX_LEDGER_INTERVALS): UsageSpan[] {
  const out = intervals.map((i) => ({ ...i }));
  const closed = () => out.filter((i) => i.end !== undefined).length;
  while (closed() > max) {
    let at = -1;
    for (const sameDay of [true, false]) {
      for (let k = 0; k + 1 < out.length && at < 0; k++) {
        const [a, b] = [out[k]!, out[k + 1]!];
        if (a.end === undefined || b.end === undefined || !sameSize(a, b) || a.flavor !== b.flavor) continue;
        if (sameDay && dayStart(timeOf(a.start)!) !== dayStart(timeOf(b.end)! - 1)) continue;
        at = k;
      }
      if (at >= 0) break;
    }
    if (at < 0) break; // every neighbour differs in size: nothing to merge without losing it
    const [a, b] = [out[at]!, out[at + 1]!];
    out.splice(at, 2, { ...a, end: b.end, seconds: spanSeconds(a) + spanSeconds(b) });
  }
  return out;
}

// ---- network bytes: checkpoints of cumulative counts ----

const HOUR_MS = 3_600_000;
/** Network checkpoints a ledger keeps (a compactor down for weeks): beyond, the older half is thinned. */
export const MAX_LEDGER_CHECKPOINTS = 480;

/** The checkpoint of an instance's status.networkUsage, if it has one. */
export function networkCheckpoint(inst: Pick<Instance, 'status'>): NetworkCheckpoint | undefined {
  const u = inst.status?.networkUsage;
  const t = timeOf(u?.observedAt);
  if (!u || t === undefined) return undefined;
  return { time: rfc3339(t), receiveBytes: Math.max(0, Math.round(u.receiveBytes)), transmitBytes: Math.max(0, Math.round(u.transmitBytes)) };
}

/**
 * The checkpoints after recording `p`: a later one is kept, lower counts never (the counts are
 * monotonic), and only the first of each UTC hour and the latest stay (a ledger grows by one per
 * hour, whatever the publish interval). Idempotent.
 */
export function mergeCheckpoint(list: readonly NetworkCheckpoint[] | undefined, p: NetworkCheckpoint | undefined): NetworkCheckpoint[] {
  const out = [...(list ?? [])];
  const last = out[out.length - 1];
  if (!p || (last && timeOf(p.time)! <= timeOf(last.time)!)) return out;
  const next = { ...p, receiveBytes: Math.max(p.receiveBytes, last?.receiveBytes ?? 0), transmitBytes: Math.max(p.transmitBytes, last?.transmitBytes ?? 0) };
  const hour = (c: NetworkCheckpoint) => Math.floor(timeOf(c.time)! / HOUR_MS);
  const prev = out[out.length - 2];
  if (last && prev && hour(prev) === hour(last)) out.pop(); // the latest was only the latest
  out.push(next);
  while (out.length > MAX_LEDGER_CHECKPOINTS) {
    const half = Math.floor(out.length / 2);
    for (let k = half - 1; k >= 1; k -= 2) out.splice(k, 1);
  }
  return out;
}

/** The checkpoints a period row of the day [from, to) keeps: the last before it, its first and last, the first after it. */
export function dayCheckpoints(list: readonly NetworkCheckpoint[] | undefined, from: number, to: number): NetworkCheckpoint[] {
  const l = list ?? [];
  const t = (c: NetworkCheckpoint) => timeOf(c.time)!;
  const before = l.filter((c) => t(c) <= from).pop();
  const inside = l.filter((c) => t(c) > from && t(c) < to);
  const afterIt = l.find((c) => t(c) >= to);
  return [before, inside[0], inside[inside.length - 1], afterIt].filter((c, i, a): c is NetworkCheckpoint => !!c && a.indexOf(c) === i);
}

/** The checkpoints a ledger keeps once compacted through `through`: from there on, and the last one before. */
export function checkpointsFrom(list: readonly NetworkCheckpoint[] | undefined, through: number): NetworkCheckpoint[] {
  const l = list ?? [];
  const k = l.findIndex((c) => timeOf(c.time)! >= through);
  const from = k < 0 ? l.length - 1 : Math.max(0, k - 1);
  return l.slice(Math.max(0, from));
}

/**
 * Cumulative bytes at `t` from checkpoints (sorted, one per time): linear between two, the last
 * value after the last; before the first, zero at `zeroAt` (the subject's first use) rising to it.
 */
export function cumulativeAt(points: readonly NetworkCheckpoint[], t: number, zeroAt: number | undefined, field: 'receiveBytes' | 'transmitBytes'): number {
  if (!points.length) return 0;
  const first = points[0]!;
  const t0 = timeOf(first.time)!;
  if (t <= t0) {
    if (zeroAt === undefined || zeroAt >= t0) return t < t0 ? 0 : first[field];
    return t <= zeroAt ? 0 : first[field] * ((t - zeroAt) / (t0 - zeroAt));
  }
  for (let k = 1; k < points.length; k++) {
    const b = points[k]!;
    const tb = timeOf(b.time)!;
    if (t > tb) continue;
    const a = points[k - 1]!;
    const ta = timeOf(a.time)!;
    return a[field] + (b[field] - a[field]) * ((t - ta) / (tb - ta));
  }
  return points[points.length - 1]![field];
}

/** Checkpoints from several sources (period rows, a ledger) as one sorted list, one per time. */
function sortedCheckpoints(list: readonly NetworkCheckpoint[]): NetworkCheckpoint[] {
  const byTime = new Map<number, NetworkCheckpoint>();
  for (const c of list) {
    const t = timeOf(c.time);
    if (t === undefined) continue;
    const have = byTime.get(t);
    if (!have || c.receiveBytes + c.transmitBytes > have.receiveBytes + have.transmitBytes) byTime.set(t, c);
  }
  return [...byTime.entries()].sort(([x], [y]) => x - y).map(([, c]) => c);
}

// ---- compaction ----

/**
 * Seconds of `span` within [from, to): the overlap for a plain interval, its share of `seconds`
 * for a coalesced one or a period row (exact when it was in use all through its span). An open
 * span ends at `openEnd`.
 */
export function secondsWithin(span: Pick<UsageSpan, 'start' | 'end' | 'seconds'>, from: number, to: number, openEnd: number): number {
  const s = timeOf(span.start)!;
  const e = timeOf(span.end) ?? Math.max(s, openEnd);
  const overlap = Math.max(0, Math.min(e, to) - Math.max(s, from));
  if (span.seconds === undefined) return overlap / 1000;
  if (e <= s) return s >= from && s < to ? span.seconds : 0;
  return span.seconds * (overlap / (e - s));
}

/** A subject's rows for the period [from, to), one per size, from its intervals (open ones run up to `to`). */
export function periodRows(subject: UsageSubject, intervals: readonly UsageSpan[], from: number, to: number): UsageRow[] {
  const rows = new Map<string, UsageRow>();
  for (const i of intervals) {
    const seconds = secondsWithin(i, from, to, to);
    if (seconds <= 0) continue;
    const s = Math.max(timeOf(i.start)!, from);
    const e = Math.min(timeOf(i.end) ?? to, to);
    const size = sizeOf(i);
    const key = JSON.stringify([size.flavor ?? '', size.vcpus ?? 0, size.memoryBytes ?? 0, size.diskBytes ?? 0, size.sizeBytes ?? 0]);
    const row = rows.get(key);
    if (row) {
      row.seconds += seconds;
      row.start = rfc3339(Math.min(timeOf(row.start)!, s));
      row.end = rfc3339(Math.max(timeOf(row.end)!, e));
    } else {
      rows.set(key, { kind: subject.kind, name: subject.name, uid: subject.uid, start: rfc3339(s), end: rfc3339(e), seconds, ...size });
    }
  }
  return [...rows.values()];
}

/** Where a ledger's uncompacted usage begins: its compactedThrough, or later when period records already hold later days of its subject. */
export function ledgerFloor(ledger: UsageRecord, foldedThrough: ReadonlyMap<string, number>): number {
  const uid = ledger.spec.subject?.uid ?? '';
  return Math.max(timeOf(ledger.spec.compactedThrough) ?? -Infinity, foldedThrough.get(uid) ?? -Infinity);
}

/** The end of the latest period holding each subject (by uid), from period records. */
export function foldedThroughOf(records: readonly UsageRecord[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of records) {
    const end = timeOf(r.spec.period?.end);
    if (end === undefined) continue;
    for (const row of r.spec.rows ?? []) out.set(row.uid, Math.max(out.get(row.uid) ?? -Infinity, end));
  }
  return out;
}

// ---- reading: the Usage object of the API ----

/** Usage totals; every field name says its unit. */
export interface UsageTotals {
  instanceHours: number;
  vcpuHours: number;
  memoryGiBHours: number;
  diskGiBHours: number;
  volumeGiBHours: number;
  floatingIPHours: number;
  /** Bytes received and transmitted by instances (network interfaces, the guest's side). */
  networkReceiveBytes: number;
  networkTransmitBytes: number;
}

export interface InstanceUsage {
  name: string;
  uid: string;
  /** The flavor and size of its latest run in the window. */
  flavor?: string;
  vcpus: number;
  memoryMiB: number;
  diskGiB: number;
  /** Running, Stopped or Deleted at the window's end. */
  state: 'Running' | 'Stopped' | 'Deleted';
  startedAt?: string;
  endedAt?: string;
  runningSeconds: number;
  instanceHours: number;
  vcpuHours: number;
  memoryGiBHours: number;
  diskGiBHours: number;
  /** Within the window: cumulative at its end minus at its start (interpolated between checkpoints). */
  networkReceiveBytes: number;
  networkTransmitBytes: number;
}

export interface VolumeUsage {
  name: string;
  uid: string;
  sizeGiB: number;
  state: 'Existing' | 'Deleted';
  seconds: number;
  volumeGiBHours: number;
}

export interface FloatingIPUsage {
  name: string;
  uid: string;
  state: 'Existing' | 'Deleted';
  seconds: number;
  floatingIPHours: number;
}

export interface ProjectUsage {
  namespace: string;
  totals: UsageTotals;
  instances: InstanceUsage[];
  volumes: VolumeUsage[];
  floatingIPs: FloatingIPUsage[];
}

/** The answer of GET /apis/metering.kova.dev/v1alpha1/[namespaces/NS/]usage. */
export interface Usage {
  apiVersion: typeof METERING_API_VERSION;
  kind: 'Usage';
  metadata: { namespace?: string };
  start: string;
  end: string;
  totals: UsageTotals;
  projects: ProjectUsage[];
}

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;
const zeroTotals = (): UsageTotals => ({ instanceHours: 0, vcpuHours: 0, memoryGiBHours: 0, diskGiBHours: 0, volumeGiBHours: 0, floatingIPHours: 0, networkReceiveBytes: 0, networkTransmitBytes: 0 });

interface Acc {
  kind: MeteredKind;
  name: string;
  uid: string;
  seconds: number;
  vcpuSeconds: number;
  memoryByteSeconds: number;
  diskByteSeconds: number;
  sizeByteSeconds: number;
  /** The latest span seen (its size describes the row). */
  latest?: { start: number; size: SpanSize };
  first?: number;
  lastEnd?: number;
  open: boolean;
  deleted: boolean;
  /** Network checkpoints from period rows and the ledger; the earliest use (zero bytes then). */
  network: NetworkCheckpoint[];
  earliest?: number;
}

/**
 * Usage within [start, end) from a project's (or every project's) UsageRecords, with open
 * intervals counted up to `now`. Period records count for the days they hold; each ledger counts
 * from where its compaction left off.
 */
export function computeUsage(records: readonly UsageRecord[], start: number, end: number, now: number, namespace?: string): Usage {
  const periods = records.filter((r) => r.spec.period);
  const ledgers = records.filter((r) => r.spec.subject);
  const folded = foldedThroughOf(periods);
  const accs = new Map<string, Acc>(); // by namespace + uid
  const accOf = (ns: string, kind: MeteredKind, name: string, uid: string) => {
    const key = `${ns}\0${uid}`;
    let a = accs.get(key);
    if (!a) accs.set(key, (a = { kind, name, uid, seconds: 0, vcpuSeconds: 0, memoryByteSeconds: 0, diskByteSeconds: 0, sizeByteSeconds: 0, open: false, deleted: false, network: [] }));
    return a;
  };
  const add = (a: Acc, span: UsageSpan, from: number, to: number, openEnd: number) => {
    a.earliest = Math.min(a.earliest ?? Infinity, timeOf(span.start)!);
    const sec = secondsWithin(span, from, to, openEnd);
    const s = timeOf(span.start)!;
    if (sec <= 0 && !(span.end === undefined && s < to && openEnd > from)) return;
    a.seconds += sec;
    a.vcpuSeconds += sec * (span.vcpus ?? 0);
    a.memoryByteSeconds += sec * (span.memoryBytes ?? 0);
    a.diskByteSeconds += sec * (span.diskBytes ?? 0);
    a.sizeByteSeconds += sec * (span.sizeBytes ?? 0);
    const from1 = Math.max(s, from);
    if (!a.latest || from1 >= a.latest.start) a.latest = { start: from1, size: sizeOf(span) };
    a.first = Math.min(a.first ?? Infinity, from1);
    const e = Math.min(timeOf(span.end) ?? openEnd, to);
    a.lastEnd = Math.max(a.lastEnd ?? -Infinity, e);
  };
  const stop = Math.min(end, now);
  for (const r of periods) {
    const ns = r.metadata.namespace ?? '';
    for (const row of r.spec.rows ?? []) {
      const a = accOf(ns, row.kind, row.name, row.uid);
      add(a, row, start, stop, now);
      if (row.network) a.network.push(...row.network);
    }
  }
  for (const l of ledgers) {
    const subject = l.spec.subject!;
    const a = accOf(l.metadata.namespace ?? '', subject.kind, subject.name, subject.uid);
    const floor = ledgerFloor(l, folded);
    const deleted = timeOf(l.spec.deleted);
    if (deleted !== undefined && deleted <= stop) a.deleted = true;
    if (l.spec.network) a.network.push(...l.spec.network);
    for (const i of l.spec.intervals ?? []) {
      const openEnd = deleted !== undefined ? Math.min(deleted, now) : now;
      if (i.end === undefined && timeOf(i.start)! < stop && deleted === undefined) a.open = true;
      add(a, i, Math.max(start, floor), stop, openEnd);
    }
    if (a.open && deleted !== undefined) a.open = false;
  }

  const projects = new Map<string, ProjectUsage>();
  for (const [key, a] of [...accs].sort(([x], [y]) => x.localeCompare(y))) {
    if (a.first === undefined) continue; // nothing within the window
    const ns = key.slice(0, key.indexOf('\0'));
    let p = projects.get(ns);
    if (!p) projects.set(ns, (p = { namespace: ns, totals: zeroTotals(), instances: [], volumes: [], floatingIPs: [] }));
    const size = a.latest?.size ?? {};
    const hours = a.seconds / 3600;
    if (a.kind === 'Instance') {
      const points = sortedCheckpoints(a.network);
      const bytes = (f: 'receiveBytes' | 'transmitBytes') => Math.max(0, Math.round(cumulativeAt(points, stop, a.earliest, f) - cumulativeAt(points, start, a.earliest, f)));
      const row: InstanceUsage = {
        name: a.name, uid: a.uid, ...(size.flavor ? { flavor: size.flavor } : {}),
        vcpus: size.vcpus ?? 0, memoryMiB: (size.memoryBytes ?? 0) / MIB, diskGiB: (size.diskBytes ?? 0) / GIB,
        state: a.deleted ? 'Deleted' : a.open ? 'Running' : 'Stopped',
        startedAt: rfc3339(a.first),
        ...(a.open ? {} : { endedAt: rfc3339(a.lastEnd!) }),
        runningSeconds: a.seconds,
        instanceHours: hours,
        vcpuHours: a.vcpuSeconds / 3600,
        memoryGiBHours: a.memoryByteSeconds / GIB / 3600,
        diskGiBHours: a.diskByteSeconds / GIB / 3600,
        networkReceiveBytes: bytes('receiveBytes'),
        networkTransmitBytes: bytes('transmitBytes'),
      };
      p.instances.push(row);
      p.totals.instanceHours += row.instanceHours;
      p.totals.vcpuHours += row.vcpuHours;
      p.totals.memoryGiBHours += row.memoryGiBHours;
      p.totals.diskGiBHours += row.diskGiBHours;
      p.totals.networkReceiveBytes += row.networkReceiveBytes;
      p.totals.networkTransmitBytes += row.networkTransmitBytes;
    } else if (a.kind === 'Volume') {
      const row: VolumeUsage = { name: a.name, uid: a.uid, sizeGiB: (size.sizeBytes ?? 0) / GIB, state: a.deleted ? 'Deleted' : 'Existing', seconds: a.seconds, volumeGiBHours: a.sizeByteSeconds / GIB / 3600 };
      p.volumes.push(row);
      p.totals.volumeGiBHours += row.volumeGiBHours;
    } else {
      const row: FloatingIPUsage = { name: a.name, uid: a.uid, state: a.deleted ? 'Deleted' : 'Existing', seconds: a.seconds, floatingIPHours: hours };
      p.floatingIPs.push(row);
      p.totals.floatingIPHours += row.floatingIPHours;
    }
  }
  const totals = zeroTotals();
  for (const p of projects.values()) for (const k of Object.keys(totals) as (keyof UsageTotals)[]) totals[k] += p.totals[k];
  return {
    apiVersion: METERING_API_VERSION,
    kind: 'Usage',
    metadata: namespace ? { namespace } : {},
    start: rfc3339(start),
    end: rfc3339(end),
    totals,
    projects: [...projects.values()],
  };
}
