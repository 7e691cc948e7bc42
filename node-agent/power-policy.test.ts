import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PowerState } from './driver.js';
import { nextAction, wantRunning } from './power-policy.js';
import type { PolicyInput, RunStrategy } from './power-policy.js';

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
