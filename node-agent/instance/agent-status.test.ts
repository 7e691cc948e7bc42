import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PowerState } from '../driver.js';
import { nextStatus, sameStatus } from './agent-status.js';

const t0 = new Date('2026-01-01T00:00:00Z');
const t1 = new Date('2026-01-01T00:01:00Z');
const dom = (state: PowerState) => ({ uuid: 'u-1', state });

test('running: phase, powerState, Ready, startedAt; other fields kept', () => {
  const prev = { hostName: 'h', phase: 'Provisioning' as const, conditions: [{ type: 'Scheduled', status: 'True' as const, lastTransitionTime: 'x' }] };
  const s = nextStatus(prev, { generation: 2, domain: dom(PowerState.Running), started: true, now: t0 });
  assert.equal(s.phase, 'Running');
  assert.equal(s.hostName, 'h');
  assert.equal(s.domainUUID, 'u-1');
  assert.equal(s.powerState, 'Running');
  assert.equal(s.startedAt, '2026-01-01T00:00:00Z');
  assert.equal(s.restartCount, 0);
  assert.equal(s.observedGeneration, 2);
  assert.deepEqual(s.conditions!.map((c) => [c.type, c.status, c.reason]), [['Scheduled', 'True', undefined], ['Ready', 'True', 'Running']]);
});

test('the same observation later is the same status (no write)', () => {
  const a = nextStatus({}, { generation: 1, domain: dom(PowerState.Running), now: t0 });
  const b = nextStatus(a, { generation: 1, domain: dom(PowerState.Running), now: t1 });
  assert.ok(sameStatus(a, b));
  const c = nextStatus(a, { generation: 1, domain: dom(PowerState.Crashed), now: t1 });
  assert.ok(!sameStatus(a, c));
  assert.equal(c.conditions!.find((x) => x.type === 'Ready')!.lastTransitionTime, '2026-01-01T00:01:00Z');
});

test('off states say who turned the guest off', () => {
  const running = nextStatus({}, { domain: dom(PowerState.Running), now: t0 });
  const ready = (s: ReturnType<typeof nextStatus>) => s.conditions!.find((c) => c.type === 'Ready')!;
  assert.equal(ready(nextStatus(running, { domain: dom(PowerState.Crashed) })).reason, 'Crashed');
  const guest = nextStatus(running, { domain: dom(PowerState.Shutdown) });
  assert.equal(guest.phase, 'Stopped');
  assert.equal(ready(guest).reason, 'GuestShutdown');
  const byKova = nextStatus(running, { domain: dom(PowerState.Shutdown), stoppedWhy: 'runStrategy is Halted' });
  assert.equal(ready(byKova).reason, 'Stopped');
  assert.equal(ready(byKova).message, 'stopped by kova: runStrategy is Halted');
  assert.equal(ready(nextStatus(byKova, { domain: dom(PowerState.Shutdown) })).reason, 'Stopped', 'stays attributed to kova');
  const halted = nextStatus({}, { stoppedWhy: 'runStrategy is Halted' });
  assert.equal(halted.phase, 'Stopped');
  assert.equal(halted.powerState, undefined);
});

test('restarts count, paused keeps phase Running with Paused=True, failures are Failed', () => {
  const s = nextStatus({ restartCount: 2 }, { domain: dom(PowerState.Running), restarted: true, started: true });
  assert.equal(s.restartCount, 3);
  const p = nextStatus(s, { domain: dom(PowerState.Paused) });
  assert.equal(p.phase, 'Running');
  assert.deepEqual(p.conditions!.map((c) => [c.type, c.status]), [['Ready', 'False'], ['Paused', 'True']]);
  const u = nextStatus(p, { domain: dom(PowerState.Running) });
  assert.deepEqual(u.conditions!.map((c) => [c.type, c.status]), [['Ready', 'True'], ['Paused', 'False']]);
  const f = nextStatus(u, { failure: 'no space left' });
  assert.equal(f.phase, 'Failed');
  assert.equal(f.conditions![0].message, 'no space left');
  assert.equal(nextStatus(u, { phase: 'Terminating' }).phase, 'Terminating');
  assert.equal(nextStatus(u, { phase: 'Starting' }).phase, 'Starting');
});

test('failed spawns are counted in spawnAttempts with an unchanged condition; a start clears the count', () => {
  const t1 = new Date('2026-01-01T00:00:00Z');
  const f1 = nextStatus({}, { failure: 'host full', now: t1 });
  const f2 = nextStatus(f1, { failure: 'host full', now: new Date('2026-01-01T00:01:00Z') });
  assert.deepEqual([f1.spawnAttempts, f2.spawnAttempts], [1, 2]);
  assert.deepEqual(f2.conditions, f1.conditions, 'the same failure leaves the condition as it was');
  const up = nextStatus(f2, { domain: dom(PowerState.Running), started: true });
  assert.equal(up.spawnAttempts, undefined);
  assert.equal(up.phase, 'Running');
});
