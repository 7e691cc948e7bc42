// Network bytes in metering: checkpoints of the agents' cumulative counts, merged to one per hour,
// usage over a window as the difference of interpolated values, and compaction that keeps them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NetworkCheckpoint, UsageRecord, UsageSpan } from './kinds/index.js';
import { checkpointsFrom, computeUsage, cumulativeAt, DAY_MS, dayCheckpoints, mergeCheckpoint, periodRows, rfc3339 } from './metering.js';

const DAY = Date.parse('2026-03-10T00:00:00Z');
const H = 3_600_000;
const cp = (ms: number, rx: number, tx = rx / 2): NetworkCheckpoint => ({ time: rfc3339(ms), receiveBytes: rx, transmitBytes: tx });
const small = { flavor: 'm1.small', vcpus: 1, memoryBytes: 512 * 2 ** 20, diskBytes: 2 * 2 ** 30 };
const ledger = (intervals: UsageSpan[], network: NetworkCheckpoint[], extra: Partial<UsageRecord['spec']> = {}): UsageRecord => ({
  apiVersion: 'metering.kova.dev/v1alpha1', kind: 'UsageRecord', metadata: { name: 'instance-u1', namespace: 'p' },
  spec: { subject: { kind: 'Instance', name: 'vm', uid: 'u1' }, intervals, network, ...extra },
});

test('a ledger keeps the first checkpoint of each hour and the latest; never lower, never older; idempotent', () => {
  let l: NetworkCheckpoint[] = [];
  // Every 5 minutes for 3 hours from 08:00, 1 MB per 5 minutes.
  for (let k = 0; k <= 36; k++) l = mergeCheckpoint(l, cp(DAY + 8 * H + k * 300_000, k * 1e6));
  assert.deepEqual(l.map((c) => c.time), ['2026-03-10T08:00:00Z', '2026-03-10T09:00:00Z', '2026-03-10T10:00:00Z', '2026-03-10T11:00:00Z']);
  l = mergeCheckpoint(l, cp(DAY + 11 * H + 300_000, 37e6));
  assert.deepEqual(l.map((c) => c.time).slice(-2), ['2026-03-10T11:00:00Z', '2026-03-10T11:05:00Z']);
  assert.deepEqual(mergeCheckpoint(l, l[l.length - 1]), l, 'the same checkpoint again changes nothing');
  assert.deepEqual(mergeCheckpoint(l, cp(DAY + 9 * H, 99e6)), l, 'an older one is ignored');
  const lower = mergeCheckpoint(l, cp(DAY + 11 * H + 600_000, 5));
  assert.equal(lower[lower.length - 1]!.receiveBytes, 37e6, 'a lower count never lowers the ledger');
});

test('cumulative values interpolate between checkpoints, rise from zero at the first use, stay after the last', () => {
  const pts = [cp(DAY + 2 * H, 200), cp(DAY + 4 * H, 600)];
  const at = (h: number) => cumulativeAt(pts, DAY + h * H, DAY, 'receiveBytes');
  assert.deepEqual([at(-1), at(0), at(1), at(2), at(3), at(4), at(9)], [0, 0, 100, 200, 400, 600, 600]);
  assert.equal(cumulativeAt([], DAY, DAY, 'receiveBytes'), 0);
});

test('usage over a window is the difference at its ends; compacting a day leaves every day-boundary window the same', () => {
  const intervals: UsageSpan[] = [{ start: rfc3339(DAY + 20 * H), end: rfc3339(DAY + 30 * H), ...small }, { start: rfc3339(DAY + 40 * H), ...small }];
  const network: NetworkCheckpoint[] = [];
  let list: NetworkCheckpoint[] = [];
  for (let h = 21; h <= 30; h++) list = mergeCheckpoint(list, cp(DAY + h * H, (h - 20) * 1000));
  for (let h = 41; h <= 50; h++) list = mergeCheckpoint(list, cp(DAY + h * H, 10_000 + (h - 40) * 1000));
  network.push(...list);
  const now = DAY + 3 * DAY_MS;
  const rx = (records: UsageRecord[], from: number, to: number) => computeUsage(records, from, to, now).totals.networkReceiveBytes;
  const l = ledger(intervals, network);
  assert.equal(rx([l], DAY - DAY_MS, now), 20_000, 'the whole life: the latest count');
  assert.equal(rx([l], DAY + 20 * H, DAY + 25 * H), 5000);
  assert.equal(rx([l], DAY + 25.5 * H, DAY + 26 * H), 500, 'interpolated within an hour');
  assert.equal(rx([l], DAY + 32 * H, DAY + 39 * H), 0, 'stopped: nothing');
  const u = computeUsage([l], DAY, now, now);
  assert.equal(u.projects[0]!.instances[0]!.networkTransmitBytes, 10_000);

  // Compact the first day: its rows carry its checkpoints, the ledger keeps the rest (and the last before).
  const rows = periodRows(l.spec.subject!, intervals, DAY, DAY + DAY_MS);
  for (const r of rows) r.network = dayCheckpoints(network, DAY, DAY + DAY_MS);
  const period: UsageRecord = {
    apiVersion: 'metering.kova.dev/v1alpha1', kind: 'UsageRecord', metadata: { name: 'period-2026-03-10', namespace: 'p' },
    spec: { period: { start: rfc3339(DAY), end: rfc3339(DAY + DAY_MS) }, rows },
  };
  const moved = ledger(intervals.filter((i) => !i.end || Date.parse(i.end) > DAY + DAY_MS), checkpointsFrom(network, DAY + DAY_MS), { compactedThrough: rfc3339(DAY + DAY_MS) });
  assert.ok(moved.spec.network!.length < network.length);
  for (const [from, to] of [[DAY - DAY_MS, now], [DAY, DAY + DAY_MS], [DAY + DAY_MS, now], [DAY + DAY_MS, DAY + 2 * DAY_MS]]) {
    assert.equal(rx([moved, period], from!, to!), rx([l], from!, to!), `${rfc3339(from!)} … ${rfc3339(to!)}`);
  }
  // Without the ledger, the period rows alone still hold the counts of the days they fold.
  const rows2 = periodRows(l.spec.subject!, intervals, DAY + DAY_MS, DAY + 2 * DAY_MS);
  for (const r of rows2) r.network = dayCheckpoints(network, DAY + DAY_MS, DAY + 2 * DAY_MS);
  const period2: UsageRecord = { ...period, metadata: { name: 'period-2026-03-11', namespace: 'p' }, spec: { period: { start: rfc3339(DAY + DAY_MS), end: rfc3339(DAY + 2 * DAY_MS) }, rows: rows2 } };
  assert.equal(rx([period, period2], DAY - DAY_MS, DAY + 2 * DAY_MS), rx([l], DAY - DAY_MS, DAY + 2 * DAY_MS));
  assert.equal(rx([period, period2], DAY - DAY_MS, DAY + 2 * DAY_MS), 18_000);
});
