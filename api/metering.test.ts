import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Instance, UsageRecord, UsageSpan } from './kinds/index.js';
import { advance, boundIntervals, computeUsage, DAY_MS, instanceFacts, periodRows, rfc3339 } from './metering.js';

const T0 = Date.parse('2026-03-10T08:00:00Z');
const at = (s: number) => rfc3339(T0 + s * 1000);
const small = { flavor: 'm1.small', vcpus: 1, memoryBytes: 512 * 2 ** 20, diskBytes: 2 * 2 ** 30 };
const large = { flavor: 'm1.large', vcpus: 4, memoryBytes: 8 * 2 ** 30, diskBytes: 20 * 2 ** 30 };

function inst(ready: 'True' | 'False' | undefined, ltt: number, startedAt?: number, deleted?: number): Instance {
  return {
    apiVersion: 'kova.dev/v1alpha1', kind: 'Instance',
    metadata: { name: 'vm', namespace: 'p', uid: 'u1', ...(deleted !== undefined ? { deletionTimestamp: at(deleted) } : {}) },
    spec: { flavor: 'm1.small' },
    status: {
      ...(startedAt !== undefined ? { startedAt: at(startedAt) } : {}),
      ...(ready ? { conditions: [{ type: 'Ready', status: ready, lastTransitionTime: at(ltt) }] } : {}),
    },
  };
}

const ledger = (intervals: UsageSpan[], extra: Partial<UsageRecord['spec']> = {}): UsageRecord => ({
  apiVersion: 'metering.kova.dev/v1alpha1', kind: 'UsageRecord', metadata: { name: 'instance-u1', namespace: 'p' },
  spec: { subject: { kind: 'Instance', name: 'vm', uid: 'u1' }, intervals, ...extra },
});

test('a run opens at startedAt and closes at the Ready transition; the same facts change nothing', () => {
  let iv = advance([], instanceFacts(inst('True', 5, 5)), { size: () => small });
  assert.deepEqual(iv, [{ start: at(5), ...small }]);
  assert.deepEqual(advance(iv, instanceFacts(inst('True', 5, 5)), { size: () => large }), iv, 'idempotent; size fixed at the start');
  iv = advance(iv, instanceFacts(inst('False', 65, 5)), { size: () => small });
  assert.deepEqual(iv, [{ start: at(5), end: at(65), ...small }]);
  assert.deepEqual(advance(iv, instanceFacts(inst('False', 65, 5)), { size: () => small }), iv);
});

test('a restart (new startedAt) closes the run and opens one with the size in effect then', () => {
  const iv = advance([{ start: at(0), ...small }], instanceFacts(inst('True', 0, 100)), { size: () => large });
  assert.deepEqual(iv, [{ start: at(0), end: at(100), ...small }, { start: at(100), ...large }]);
});

test('an unpause opens at the Ready transition, not the older startedAt', () => {
  const iv = advance([{ start: at(0), end: at(10), ...small }], instanceFacts(inst('True', 30, 0)), { size: () => small });
  assert.deepEqual(iv[1], { start: at(30), ...small });
});

test('a deletion ends the run at the deletionTimestamp, or earlier when it had stopped', () => {
  assert.deepEqual(advance([{ start: at(0), ...small }], instanceFacts(inst('True', 0, 0, 50)), { size: () => small }), [{ start: at(0), end: at(50), ...small }]);
  // Terminating flips Ready after the deletion: the deletion time counts.
  assert.deepEqual(advance([{ start: at(0), ...small }], instanceFacts(inst('False', 70, 0, 50)), { size: () => small }), [{ start: at(0), end: at(50), ...small }]);
  assert.deepEqual(advance([{ start: at(0), ...small }], instanceFacts(inst('False', 20, 0, 50)), { size: () => small }), [{ start: at(0), end: at(20), ...small }]);
});

test('boundIntervals coalesces the oldest same-size neighbours and keeps the seconds', () => {
  const many: UsageSpan[] = Array.from({ length: 10 }, (_, k) => ({ start: at(k * 10), end: at(k * 10 + 3), ...small }));
  const bounded = boundIntervals(many, 4);
  assert.equal(bounded.length, 4);
  const secs = (l: UsageSpan[]) => computeUsage([ledger(l)], T0, T0 + DAY_MS, T0 + DAY_MS).totals.instanceHours * 3600;
  assert.ok(Math.abs(secs(bounded) - 30) < 1e-9, `${secs(bounded)}`);
});

test('usage: exact seconds times the size, clipped to the window, open runs up to now', () => {
  const l = ledger([{ start: at(0), end: at(3600), ...small }, { start: at(3600), ...large }]);
  const u = computeUsage([l], T0, T0 + DAY_MS, T0 + 7200 * 1000, 'p');
  const row = u.projects[0]!.instances[0]!;
  assert.equal(row.runningSeconds, 7200);
  assert.equal(row.state, 'Running');
  assert.equal(row.flavor, 'm1.large');
  assert.equal(u.totals.instanceHours, 2);
  assert.equal(u.totals.vcpuHours, 5);
  assert.equal(u.totals.memoryGiBHours, 0.5 + 8);
  const clipped = computeUsage([l], T0 + 1800 * 1000, T0 + 5400 * 1000, T0 + 7200 * 1000);
  assert.equal(clipped.totals.instanceHours, 1);
  assert.equal(clipped.totals.vcpuHours, 0.5 + 2);
});

test('compaction into a period record keeps the totals, and a half-done compaction counts once', () => {
  const day = Date.parse('2026-03-10T00:00:00Z');
  const intervals: UsageSpan[] = [{ start: at(0), end: at(1000), ...small }, { start: at(5000), ...large }];
  const l = ledger(intervals);
  const now = day + 2 * DAY_MS + 3600_000;
  const before = computeUsage([l], day - DAY_MS, now, now);
  const rows = periodRows(l.spec.subject!, intervals, day, day + DAY_MS);
  assert.equal(rows.length, 2);
  const period: UsageRecord = {
    apiVersion: 'metering.kova.dev/v1alpha1', kind: 'UsageRecord', metadata: { name: 'period-2026-03-10', namespace: 'p' },
    spec: { period: { start: rfc3339(day), end: rfc3339(day + DAY_MS) }, rows },
  };
  // The rows are written but the ledger not yet moved on: counted once.
  const half = computeUsage([l, period], day - DAY_MS, now, now);
  assert.deepEqual(half.totals, before.totals);
  const moved = ledger([{ start: at(5000), ...large }], { compactedThrough: rfc3339(day + DAY_MS) });
  const after = computeUsage([moved, period], day - DAY_MS, now, now);
  assert.deepEqual(after.totals, before.totals);
  assert.equal(after.projects[0]!.instances[0]!.runningSeconds, before.projects[0]!.instances[0]!.runningSeconds);
});
