import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Instance } from '../../api/kinds/index.js';
import { INSTANCE_FINALIZER } from '../../api/types.js';
import { PowerState } from '../driver.js';
import { decide, factsOf, nextAction, wantRunning } from './decide.js';
import type { Backoff, Decision, InstanceFacts, ObservedDomain, PolicyInput, RunStrategy } from './decide.js';

const input = (runStrategy: RunStrategy, over: Partial<PolicyInput> = {}): PolicyInput => ({ runStrategy, annotations: {}, ...over });
const S = PowerState;

test('Always: spawn when absent, restart after crash or guest shutdown', () => {
  assert.deepEqual(nextAction(input('Always'), undefined), { kind: 'spawn' });
  assert.deepEqual(nextAction(input('Always', { readyReason: 'Running' }), S.Crashed), { kind: 'powerOn', restart: true });
  assert.deepEqual(nextAction(input('Always', { readyReason: 'Running' }), S.Shutdown), { kind: 'powerOn', restart: true });
  // Kova stopped it (runStrategy was Halted): starting it again is not a restart.
  assert.deepEqual(nextAction(input('Always', { readyReason: 'Stopped' }), S.Shutdown), { kind: 'powerOn', restart: false });
  assert.deepEqual(nextAction(input('Always'), S.Running), { kind: 'none' });
  assert.deepEqual(nextAction(input('Always'), S.NoState), { kind: 'wait' });
});

test('Halted: never spawns, powers a running guest off', () => {
  assert.deepEqual(nextAction(input('Halted'), undefined), { kind: 'none' });
  assert.deepEqual(nextAction(input('Halted'), S.Running), { kind: 'powerOff', why: 'runStrategy is Halted' });
  assert.deepEqual(nextAction(input('Halted'), S.Paused).kind, 'powerOff');
  assert.deepEqual(nextAction(input('Halted'), S.Crashed), { kind: 'none' });
});

test('RerunOnFailure: restart after a crash, not after a clean guest shutdown', () => {
  assert.deepEqual(nextAction(input('RerunOnFailure'), undefined), { kind: 'spawn' });
  assert.deepEqual(nextAction(input('RerunOnFailure', { readyReason: 'Running' }), S.Crashed), { kind: 'powerOn', restart: true });
  assert.deepEqual(nextAction(input('RerunOnFailure', { readyReason: 'Running' }), S.Shutdown), { kind: 'none' });
  assert.deepEqual(nextAction(input('RerunOnFailure', { readyReason: 'GuestShutdown' }), S.Shutdown), { kind: 'none' });
  // Off because kova stopped it before the strategy changed: start it.
  assert.deepEqual(nextAction(input('RerunOnFailure', { readyReason: 'Stopped' }), S.Shutdown), { kind: 'powerOn', restart: false });
});

test('Manual: start once, then follow kova.dev/power or leave it', () => {
  assert.deepEqual(nextAction(input('Manual'), undefined), { kind: 'spawn' });
  assert.deepEqual(nextAction(input('Manual', { startedAt: 't' }), undefined), { kind: 'none' });
  assert.deepEqual(nextAction(input('Manual', { startedAt: 't' }), S.Shutdown), { kind: 'none' });
  assert.deepEqual(nextAction(input('Manual', { startedAt: 't' }), S.Crashed), { kind: 'none' });
  assert.equal(wantRunning(input('Manual', { startedAt: 't' }), S.Running), 'leave');
  const off = input('Manual', { startedAt: 't', annotations: { 'kova.dev/power': 'Off' } });
  assert.deepEqual(nextAction(off, S.Running), { kind: 'powerOff', why: 'kova.dev/power is Off' });
  const on = input('Manual', { startedAt: 't', readyReason: 'Stopped', annotations: { 'kova.dev/power': 'On' } });
  assert.deepEqual(nextAction(on, S.Shutdown), { kind: 'powerOn', restart: false });
  assert.deepEqual(nextAction(input('Manual', { startedAt: 't', annotations: { 'kova.dev/power': 'On' } }), undefined), { kind: 'spawn' });
  // kova.dev/power only counts with Manual.
  assert.deepEqual(nextAction(input('Always', { annotations: { 'kova.dev/power': 'Off' } }), S.Running), { kind: 'none' });
});

test('restartedAt reboots once; paused pauses and unpauses', () => {
  const ann = { 'kova.dev/restartedAt': '2026-01-01T00:00:00Z' };
  assert.deepEqual(nextAction(input('Always', { annotations: ann }), S.Running), { kind: 'reboot' });
  assert.deepEqual(nextAction(input('Always', { annotations: ann, observedRestartedAt: '2026-01-01T00:00:00Z' }), S.Running), { kind: 'none' });
  assert.deepEqual(nextAction(input('Halted', { annotations: ann }), S.Shutdown), { kind: 'none' }, 'kept off: acknowledged, not rebooted');
  assert.deepEqual(nextAction(input('Manual', { startedAt: 't', annotations: ann }), S.Shutdown), { kind: 'reboot' }, 'Nova reboot starts a stopped guest');
  assert.deepEqual(nextAction(input('Always', { annotations: { 'kova.dev/paused': 'true' } }), S.Running), { kind: 'pause' });
  assert.deepEqual(nextAction(input('Always', { annotations: { 'kova.dev/paused': 'true' } }), S.Paused), { kind: 'none' });
  assert.deepEqual(nextAction(input('Always'), S.Paused), { kind: 'unpause' });
  assert.deepEqual(nextAction(input('Always', { annotations: { 'kova.dev/paused': 'false' } }), S.Paused), { kind: 'unpause' });
});

// ---- decide(): the whole step, from an Instance, the observed domain and the back-off ----

const UID = 'uid-1';
function inst(over: { runStrategy?: RunStrategy; annotations?: Record<string, string>; deleting?: boolean; finalizer?: boolean; generation?: number; status?: Instance['status'] } = {}): Instance {
  return {
    apiVersion: 'kova.dev/v1alpha1',
    kind: 'Instance',
    metadata: {
      namespace: 'demo', name: 'web', uid: UID, generation: over.generation ?? 1,
      annotations: over.annotations ?? {},
      finalizers: over.finalizer === false ? [] : [INSTANCE_FINALIZER],
      ...(over.deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}),
    },
    spec: { image: 'tiny', flavor: 'm1', ...(over.runStrategy ? { runStrategy: over.runStrategy } : {}) },
    status: { hostName: 'h1', ...over.status },
  };
}
const running: ObservedDomain = { state: S.Running, instanceUID: UID };
const dom = (state: PowerState, instanceUID = UID): ObservedDomain => ({ state, instanceUID });
const failedOnce = { observedGeneration: 1, spawnAttempts: 1, conditions: [{ type: 'Ready', status: 'False' as const, reason: 'SpawnFailed' }] };
const due: Backoff = { retryAt: 2000, now: 1000 };

const table: Array<[string, Instance, ObservedDomain | undefined, Backoff | undefined, Decision['kind']]> = [
  // deletion and the finalizer come first, whatever the domain
  ['deleting, domain running', inst({ deleting: true }), running, undefined, 'finalize'],
  ['deleting, no domain', inst({ deleting: true }), undefined, undefined, 'finalize'],
  ['deleting without our finalizer', inst({ deleting: true, finalizer: false }), running, undefined, 'finalize'],
  ['deleting while backing off', inst({ deleting: true, status: failedOnce }), undefined, due, 'finalize'],
  ['no finalizer yet', inst({ finalizer: false }), undefined, undefined, 'addFinalizer'],
  // a domain of an earlier instance with the same name
  ['stale domain', inst(), dom(S.Running, 'uid-0'), undefined, 'destroyStale'],
  ['stale domain, Halted', inst({ runStrategy: 'Halted' }), dom(S.Shutdown, 'uid-0'), undefined, 'destroyStale'],
  // runStrategy × domain state
  ['Always, absent', inst(), undefined, undefined, 'spawn'],
  ['Always, running', inst(), running, undefined, 'none'],
  ['Always, crashed', inst(), dom(S.Crashed), undefined, 'powerOn'],
  ['Always, being built', inst(), dom(S.NoState), undefined, 'wait'],
  ['Halted, absent', inst({ runStrategy: 'Halted' }), undefined, undefined, 'none'],
  ['Halted, running', inst({ runStrategy: 'Halted' }), running, undefined, 'powerOff'],
  ['Halted, paused', inst({ runStrategy: 'Halted' }), dom(S.Paused), undefined, 'powerOff'],
  ['RerunOnFailure, guest shut down', inst({ runStrategy: 'RerunOnFailure', status: { conditions: [{ type: 'Ready', status: 'True', reason: 'Running' }] } }), dom(S.Shutdown), undefined, 'none'],
  ['RerunOnFailure, crashed', inst({ runStrategy: 'RerunOnFailure' }), dom(S.Crashed), undefined, 'powerOn'],
  ['Manual, never started, absent', inst({ runStrategy: 'Manual' }), undefined, undefined, 'spawn'],
  ['Manual, started, shut down', inst({ runStrategy: 'Manual', status: { startedAt: 't' } }), dom(S.Shutdown), undefined, 'none'],
  // annotations
  ['Manual, power Off, running', inst({ runStrategy: 'Manual', annotations: { 'kova.dev/power': 'Off' }, status: { startedAt: 't' } }), running, undefined, 'powerOff'],
  ['Manual, power On, shut down', inst({ runStrategy: 'Manual', annotations: { 'kova.dev/power': 'On' }, status: { startedAt: 't' } }), dom(S.Shutdown), undefined, 'powerOn'],
  ['restartedAt, running', inst({ annotations: { 'kova.dev/restartedAt': 'r1' } }), running, undefined, 'reboot'],
  ['restartedAt acted on', inst({ annotations: { 'kova.dev/restartedAt': 'r1' }, status: { observedRestartedAt: 'r1' } }), running, undefined, 'none'],
  ['paused=true, running', inst({ annotations: { 'kova.dev/paused': 'true' } }), running, undefined, 'pause'],
  ['paused annotation gone, paused', inst(), dom(S.Paused), undefined, 'unpause'],
  // back-off: only a spawn of the spec that failed waits for it
  ['failed spawn, not due', inst({ status: failedOnce }), undefined, due, 'backoff'],
  ['failed spawn, due', inst({ status: failedOnce }), undefined, { retryAt: 1000, now: 1000 }, 'spawn'],
  ['failed spawn, no back-off known', inst({ status: failedOnce }), undefined, undefined, 'spawn'],
  ['failed spawn, new generation', inst({ generation: 2, status: failedOnce }), undefined, due, 'spawn'],
  ['never failed, back-off from an API error', inst(), undefined, due, 'spawn'],
  ['backing off but the domain exists', inst({ status: failedOnce }), running, due, 'none'],
  ['backing off, Halted', inst({ runStrategy: 'Halted', status: failedOnce }), undefined, due, 'none'],
  // a spec reported invalid stays so until it changes
  ['invalid spec reported', inst({ status: { observedGeneration: 1, conditions: [{ type: 'Ready', status: 'False', reason: 'InvalidSpec' }] } }), undefined, undefined, 'invalid'],
  ['invalid spec, new generation', inst({ generation: 2, status: { observedGeneration: 1, conditions: [{ type: 'Ready', status: 'False', reason: 'InvalidSpec' }] } }), undefined, undefined, 'spawn'],
  ['invalid spec, now Halted', inst({ runStrategy: 'Halted', status: { observedGeneration: 1, conditions: [{ type: 'Ready', status: 'False', reason: 'InvalidSpec' }] } }), undefined, undefined, 'none'],
];

for (const [name, i, d, b, want] of table) {
  test(`decide: ${name} → ${want}`, () => {
    assert.equal(decide(factsOf(i), d, b).kind, want);
  });
}

test('factsOf reads the instance; runStrategy defaults to Always', () => {
  const f: InstanceFacts = factsOf(inst({ status: { ...failedOnce, startedAt: 't', observedRestartedAt: 'r' } }));
  assert.deepEqual(f, {
    uid: UID, deleting: false, hasFinalizer: true, generation: 1, observedGeneration: 1, spawnAttempts: 1,
    runStrategy: 'Always', annotations: {}, startedAt: 't', observedRestartedAt: 'r', readyReason: 'SpawnFailed',
  });
});
