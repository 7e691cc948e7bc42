import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Instance, UsageRecord, UsageSpan } from './kinds/index.js';
import { advance, advanceInstance, boundIntervals, computeUsage, DAY_MS, instanceFacts, MAX_POWER_HISTORY, periodRows, rfc3339, withPowerHistory } from './metering.js';

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

// ---- status.powerHistory: transitions the controller missed while it was down ----

type H = [running: boolean, s: number][];
const history = (h: H) => h.map(([running, s]) => ({ running, time: at(s) }));
function withHistory(i: Instance, h: H | undefined): Instance {
  return h ? { ...i, status: { ...i.status, powerHistory: history(h) } } : i;
}
const ranSeconds = (iv: UsageSpan[]) => iv.reduce((n, i) => n + (Date.parse(i.end ?? at(1000)) - Date.parse(i.start)) / 1000, 0);

test('advanceInstance replays the history the ledger does not hold: exact runs, duplicates ignored, today\'s logic without one', () => {
  const cases: { name: string; ledger: UsageSpan[]; now: Instance; history?: H; want: [number, number | undefined][] }[] = [
    { name: 'stop + start while down', ledger: [{ start: at(0), ...small }], now: inst('True', 300, 300), history: [[true, 0], [false, 100], [true, 300]], want: [[0, 100], [300, undefined]] },
    { name: 'stop + start + stop while down', ledger: [{ start: at(0), ...small }], now: inst('False', 500, 300), history: [[true, 0], [false, 100], [true, 300], [false, 500]], want: [[0, 100], [300, 500]] },
    { name: 'several runs from a stopped ledger', ledger: [{ start: at(0), end: at(10), ...small }], now: inst('False', 90, 70), history: [[true, 0], [false, 10], [true, 20], [false, 40], [true, 70], [false, 90]], want: [[0, 10], [20, 40], [70, 90]] },
    { name: 'a reboot (later start, no stop) while down', ledger: [{ start: at(0), ...small }], now: inst('False', 400, 200), history: [[true, 0], [true, 200], [false, 400]], want: [[0, 200], [200, 400]] },
    { name: 'the history already recorded changes nothing', ledger: [{ start: at(0), end: at(100), ...small }, { start: at(300), ...small }], now: inst('True', 300, 300), history: [[true, 0], [false, 100], [true, 300]], want: [[0, 100], [300, undefined]] },
    { name: 'duplicate entries (a status written twice) count once', ledger: [{ start: at(0), ...small }], now: inst('True', 300, 300), history: [[true, 0], [false, 100], [false, 100], [true, 300], [true, 300]], want: [[0, 100], [300, undefined]] },
    { name: 'a stop and a start in the ledger\'s last second', ledger: [{ start: at(0), end: at(100), ...small }], now: inst('False', 200, 100), history: [[true, 0], [false, 100], [true, 100], [false, 200]], want: [[0, 100], [100, 200]] },
    { name: 'a deletion ends the replay: Terminating after it is not counted', ledger: [{ start: at(0), ...small }], now: inst('False', 260, 200, 250), history: [[true, 0], [false, 100], [true, 200], [false, 260]], want: [[0, 100], [200, 250]] },
    { name: 'no history (an older agent): today\'s logic, the gap counts as running', ledger: [{ start: at(0), ...small }], now: inst('True', 300, 300), want: [[0, 300], [300, undefined]] },
    { name: 'the ledger older than the oldest entry: the gap before it is approximated', ledger: [{ start: at(0), ...small }], now: inst('False', 500, 300), history: [[true, 200], [false, 250], [true, 300], [false, 500]], want: [[0, 200], [200, 250], [300, 500]] },
    { name: 'entries older than compactedThrough are not replayed', ledger: [], now: inst('False', 100, 0), history: [[true, 0], [false, 100]], want: [] },
  ];
  for (const c of cases) {
    const compacted = c.name.includes('compactedThrough') ? at(200) : undefined;
    const i = withHistory(c.now, c.history);
    const iv = advanceInstance(c.ledger, i, () => small, compacted);
    assert.deepEqual(iv.map((x) => [x.start, x.end]), c.want.map(([s, e]) => [at(s), e === undefined ? undefined : at(e)]), c.name);
    assert.deepEqual(advanceInstance(iv, i, () => large, compacted), iv, `${c.name}: idempotent`);
  }
  // Exact to the second: the two runs of the stop + start + stop case.
  assert.equal(ranSeconds(advanceInstance([{ start: at(0), ...small }], withHistory(inst('False', 500, 300), [[true, 0], [false, 100], [true, 300], [false, 500]]), () => small)), 300);
});

test('withPowerHistory appends a transition only when it is news, with the condition\'s and startedAt\'s times, bounded', () => {
  const st = (i: Instance) => i.status!;
  const starting = st(inst('False', 0));
  assert.equal(withPowerHistory(undefined, starting).powerHistory, undefined, 'not running yet is no transition');
  let s = withPowerHistory(starting, st(inst('True', 10, 10)));
  assert.deepEqual(s.powerHistory, history([[true, 10]]));
  assert.equal(withPowerHistory(s, { ...s }).powerHistory, s.powerHistory, 'the same status again appends nothing');
  s = withPowerHistory(s, { ...st(inst('False', 40, 10)), powerHistory: s.powerHistory });
  s = withPowerHistory(s, { ...st(inst('False', 40, 10)), powerHistory: s.powerHistory });
  assert.deepEqual(s.powerHistory, history([[true, 10], [false, 40]]));
  s = withPowerHistory(s, { ...st(inst('True', 60, 60)), powerHistory: s.powerHistory });
  s = withPowerHistory(s, { ...st(inst('True', 60, 90)), powerHistory: s.powerHistory }); // a reboot: a new run
  assert.deepEqual(s.powerHistory, history([[true, 10], [false, 40], [true, 60], [true, 90]]));
  // A status written without a history (an older agent, an evacuation) is caught up from what it shows.
  const old = st(inst('True', 5, 5));
  assert.deepEqual(withPowerHistory(old, st(inst('False', 50, 5))).powerHistory, history([[true, 5], [false, 50]]));
  const evacuated = { ...st(inst('False', 120)), powerHistory: history([[true, 100]]) };
  assert.deepEqual(withPowerHistory(evacuated, { ...st(inst('True', 200, 200)), powerHistory: evacuated.powerHistory }).powerHistory, history([[true, 100], [false, 120], [true, 200]]));
  let b = st(inst('False', 0));
  for (let k = 1; k <= 40; k++) b = withPowerHistory(b, { ...st(inst(k % 2 ? 'True' : 'False', k * 10, k * 10)), powerHistory: b.powerHistory });
  assert.equal(b.powerHistory!.length, MAX_POWER_HISTORY);
  assert.deepEqual(b.powerHistory!.at(-1), { running: false, time: at(400) });
});
