// The maintenance decision as a table: limits per host and per cluster, retries with back-off,
// stopped instances, instances already migrating, maintenance cleared, cordon bookkeeping.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Host, Instance, Migration, MigrationPhase } from '../../api/kinds/index.js';
import { cordonChange, DRAIN_HOST_LABEL, MAINTENANCE_CORDON_ANNOTATION, migrationPrefix, planMaintenance, retryDelayMs } from './maintenance.js';
import type { MaintenanceInput, MaintenancePlan } from './maintenance.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();

type H = Pick<Host, 'metadata' | 'spec' | 'status'>;
type I = Pick<Instance, 'metadata' | 'status'>;
type M = Pick<Migration, 'metadata' | 'spec' | 'status'>;

const host = (spec: Host['spec'], annotations?: Record<string, string>, name = 'h1'): H => ({ metadata: { name, annotations }, spec, status: {} });
const draining = (extra: Host['spec'] = {}) => host({ maintenance: true, unschedulable: true, ...extra }, { [MAINTENANCE_CORDON_ANNOTATION]: 'true' });
const inst = (name: string, on = 'h1', extra: Partial<I['status']> = {}, meta: Partial<I['metadata']> = {}): I =>
  ({ metadata: { name, namespace: 'p', uid: `uid-${name}`, ...meta }, status: { hostName: on, phase: 'Running', ...extra } });
let seq = 0;
/** A Migration of instance p/<instance>; `endedMs` for finished ones. */
const mig = (instance: string, phase: MigrationPhase | undefined, o: { source?: string; target?: string; endedMs?: number; reason?: string; uid?: string } = {}): M => ({
  metadata: { name: `${instance}-${++seq}`, namespace: 'p', creationTimestamp: iso(T0 - 1_000_000 + seq) },
  spec: { instance },
  status: {
    phase, sourceHost: o.source, targetHost: o.target, instanceUID: o.uid,
    endTime: o.endedMs === undefined ? undefined : iso(o.endedMs),
    conditions: phase === 'Failed' ? [{ type: 'Failed', status: 'True', reason: o.reason ?? 'Unschedulable', message: '0/3 hosts available: 3 insufficient memory' }] : [],
  },
});

function plan(h: H, instances: I[], migrations: M[] = [], extra: Partial<MaintenanceInput> = {}): MaintenancePlan {
  const all = [...instances, ...(extra.instances ?? [])];
  return planMaintenance({
    host: h,
    instances: instances.filter((i) => i.status?.hostName === h.metadata.name),
    migrations,
    hostOf: (_ns, n) => all.find((i) => i.metadata.name === n)?.status?.hostName,
    now: T0,
    ...extra,
  });
}

describe('host maintenance decision', () => {
  it('back-off doubles from 30 s to at most 5 minutes', () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 50].map((n) => retryDelayMs(n)), [0, 30_000, 60_000, 120_000, 240_000, 300_000, 300_000, 300_000]);
  });

  it('cordon bookkeeping', () => {
    const rows: [string, H, ReturnType<typeof cordonChange>][] = [
      ['maintenance on an uncordoned host cordons it', host({ maintenance: true }), 'cordon'],
      ['maintenance on a host an operator cordoned: nothing to remember', host({ maintenance: true, unschedulable: true }), undefined],
      ['maintenance, cordoned by maintenance', draining(), undefined],
      ['an operator uncordoned during maintenance: cordoned again', host({ maintenance: true, unschedulable: false }, { [MAINTENANCE_CORDON_ANNOTATION]: 'true' }), 'cordon'],
      ['maintenance cleared: uncordon what maintenance cordoned', host({ maintenance: false, unschedulable: true }, { [MAINTENANCE_CORDON_ANNOTATION]: 'true' }), 'uncordon'],
      ['maintenance cleared, operator already uncordoned: forget the mark', host({ unschedulable: false }, { [MAINTENANCE_CORDON_ANNOTATION]: 'true' }), 'forget'],
      ['maintenance cleared on an operator-cordoned host: left cordoned', host({ unschedulable: true }), undefined],
      ['no maintenance', host({}), undefined],
    ];
    for (const [what, h, want] of rows) {
      assert.equal(cordonChange(h), want, what);
      assert.equal(plan(h, []).cordon, want, what);
    }
  });

  it('limits per host and per cluster', () => {
    const five = ['a', 'b', 'c', 'd', 'e'].map((n) => inst(n));
    const elsewhere = ['x', 'y', 'z', 'w'].map((n) => inst(n, 'h2'));
    const rows: [string, M[], Partial<MaintenanceInput>, string[]][] = [
      ['default 2 per host', [], {}, ['p/a', 'p/b']],
      ['per host limit 3', [], { limits: { perHost: 3, perCluster: 5 } }, ['p/a', 'p/b', 'p/c']],
      ['one outbound already (sourceHost)', [mig('a', 'Running', { source: 'h1' })], {}, ['p/b']],
      ['one outbound still Pending: its source is where the instance is bound', [mig('a', 'Pending')], {}, ['p/b']],
      ['two outbound: none', [mig('a', 'Running', { source: 'h1' }), mig('b', 'Scheduling')], {}, []],
      ['cluster: 4 unfinished elsewhere leave one slot', elsewhere.map((i) => mig(i.metadata.name!, 'Running', { source: 'h2' })), {}, ['p/a']],
      ['cluster: 5 unfinished elsewhere leave none', [...elsewhere, inst('v', 'h3')].map((i) => mig(i.metadata.name!, 'Running', { source: 'h3' })), {}, []],
      ['finished Migrations do not count', [mig('x', 'Succeeded', { source: 'h2', target: 'h3', endedMs: T0 - 10 }), mig('y', 'Failed', { source: 'h2', endedMs: T0 - 10 })], {}, ['p/a', 'p/b']],
      ['large limits: everything at once', [], { limits: { perHost: 10, perCluster: 10 } }, ['p/a', 'p/b', 'p/c', 'p/d', 'p/e']],
    ];
    for (const [what, migrations, extra, want] of rows) {
      assert.deepEqual(plan(draining(), [...five, ...elsewhere], migrations, extra).migrate, want, what);
    }
  });

  it('stopped, failed and migrating instances; instances being deleted', () => {
    const p = plan(draining(), [
      inst('stopped', 'h1', { phase: 'Stopped' }),
      inst('moving', 'h1', { migration: { name: 'moving-x', uid: 'u', sourceHost: 'h1', targetHost: 'h2', mode: 'Live' } }),
      inst('gone', 'h1', {}, { deletionTimestamp: iso(T0) }),
    ], [], { limits: { perHost: 5, perCluster: 5 } });
    // A stopped instance moves too (the migration controller picks Cold); one with
    // status.migration is moving already; one being deleted is waited for, not moved.
    assert.deepEqual(p.migrate, ['p/stopped']);
    assert.equal(p.condition?.status, 'False');
    assert.equal(p.condition?.reason, 'Draining');
    assert.equal(p.condition?.message, '3 instances left on host h1: 2 migrating, 0 waiting, 1 being deleted');
  });

  it('an unfinished Migration of the instance, made by anyone, is not duplicated', () => {
    const p = plan(draining(), [inst('a'), inst('b')], [mig('a', 'PreparingTarget', { source: 'h1' })]);
    assert.deepEqual(p.migrate, ['p/b']);
    assert.match(p.condition!.message!, /2 migrating, 0 waiting/);
  });

  it('retries a failed Migration with back-off from its endTime', () => {
    const failedAt = T0 - 20_000;
    const once = [mig('a', 'Failed', { source: 'h1', endedMs: failedAt, reason: 'Unschedulable' })];
    // 20 s after the first failure: 10 s to go.
    let p = plan(draining(), [inst('a')], once);
    assert.deepEqual(p.migrate, []);
    assert.equal(p.requeueAfterMs, 10_000);
    assert.equal(p.condition?.reason, 'MigrationsFailed');
    assert.equal(p.condition?.message, `1 instance left on host h1: 0 migrating, 1 waiting; cannot move: p/a: Unschedulable: 0/3 hosts available: 3 insufficient memory (next retry at ${iso(failedAt + 30_000)})`);
    assert.deepEqual(p.stuck, [{ instance: 'p/a', reason: 'Unschedulable: 0/3 hosts available: 3 insufficient memory', retryAt: failedAt + 30_000 }]);
    // Due: a new Migration.
    p = plan(draining(), [inst('a')], once, { now: failedAt + 30_000 });
    assert.deepEqual(p.migrate, ['p/a']);
    // Three failures in a row: 2 minutes after the last.
    const thrice = [...once, mig('a', 'Failed', { endedMs: failedAt + 40_000 }), mig('a', 'Failed', { endedMs: failedAt + 100_000, reason: 'TargetPrepareFailed' })];
    p = plan(draining(), [inst('a')], thrice, { now: failedAt + 200_000 });
    assert.deepEqual(p.migrate, []);
    assert.equal(p.requeueAfterMs, failedAt + 100_000 + 120_000 - (failedAt + 200_000));
    assert.match(p.condition!.message!, /p\/a: TargetPrepareFailed: /);
    // A success resets the count (the instance came back here, e.g. moved by hand).
    const healed = [...thrice, mig('a', 'Succeeded', { source: 'h2', target: 'h1', endedMs: failedAt + 150_000 })];
    p = plan(draining(), [inst('a')], healed, { now: failedAt + 200_000 });
    assert.deepEqual(p.migrate, ['p/a']);
    assert.equal(p.condition?.reason, 'Draining');
    // A retry under way: still listed with its last failure, not duplicated.
    p = plan(draining(), [inst('a')], [...once, mig('a', 'Running', { source: 'h1' })], { now: T0 + 60_000 });
    assert.deepEqual(p.migrate, []);
    assert.deepEqual(p.stuck, [{ instance: 'p/a', reason: 'Unschedulable: 0/3 hosts available: 3 insufficient memory', retryAt: undefined }]);
    assert.match(p.condition!.message!, /\(retrying\)$/);
  });

  it('failures of an earlier instance with the same name do not count', () => {
    const p = plan(draining(), [inst('a')], [mig('a', 'Failed', { endedMs: T0 - 1000, uid: 'uid-old' })]);
    assert.deepEqual(p.migrate, ['p/a']);
    assert.deepEqual(p.stuck, []);
  });

  it('a Succeeded Migration whose instance the cache still shows here is waited for, a while', () => {
    const moved = [mig('a', 'Succeeded', { source: 'h1', target: 'h2', endedMs: T0 - 1000 })];
    let p = plan(draining(), [inst('a')], moved);
    assert.deepEqual(p.migrate, []);
    assert.equal(p.requeueAfterMs, 59_000);
    p = plan(draining(), [inst('a')], moved, { now: T0 + 60_000 });
    assert.deepEqual(p.migrate, ['p/a']);
  });

  it('Drained=True once no instance is left', () => {
    const p = plan(draining(), [inst('a', 'h2')], [mig('a', 'Succeeded', { source: 'h1', target: 'h2', endedMs: T0 })]);
    assert.deepEqual(p.migrate, []);
    assert.deepEqual(p.condition, { type: 'Drained', status: 'True', reason: 'Drained', message: 'no instances left on host h1' });
  });

  it('maintenance cleared: no new Migrations, the condition goes', () => {
    const cleared: H = { ...host({ unschedulable: true }, { [MAINTENANCE_CORDON_ANNOTATION]: 'true' }), status: { conditions: [{ type: 'Drained', status: 'False', reason: 'Draining' }] } };
    const p = plan(cleared, [inst('a'), inst('b')]);
    assert.deepEqual(p.migrate, []);
    assert.equal(p.condition, null);
    assert.equal(p.cordon, 'uncordon');
    // Without a condition to remove, nothing to write.
    assert.equal(plan(host({}), [inst('a')]).condition, undefined);
  });

  it('a fenced host is left to evacuation', () => {
    const p = plan(draining({ fenced: true }), [inst('a')]);
    assert.deepEqual(p.migrate, []);
    assert.match(p.condition!.message!, /fenced: evacuation moves its instances/);
  });

  it('lists at most 20 instances that cannot move', () => {
    const names = Array.from({ length: 25 }, (_, i) => `i${String(i).padStart(2, '0')}`);
    const p = plan(draining(), names.map((n) => inst(n)), names.map((n) => mig(n, 'Failed', { endedMs: T0 })));
    assert.equal(p.stuck.length, 25);
    assert.match(p.condition!.message!, /p\/i19: .*; and 5 more$/);
    assert.doesNotMatch(p.condition!.message!, /p\/i20/);
  });

  it('generated names fit 63 characters', () => {
    assert.equal(migrationPrefix('web'), 'web-');
    assert.equal((migrationPrefix('a'.repeat(63)) + 'xxxxx').length, 63);
    assert.equal(DRAIN_HOST_LABEL, 'kova.dev/drain-host');
  });
});
