import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ResizeReasons } from '../../api/resize.js';
import type { Resources } from '../../api/resources.js';
import { afterBootCondition, bootPlan, resizeMayApply } from './resize.js';
import type { BootPlan, ResizeFacts } from './resize.js';

const Mi = 2 ** 20;
const Gi = 2 ** 30;
const small: Resources = { vcpus: 1, memoryBytes: 512 * Mi, diskBytes: 1 * Gi };
const big: Resources = { vcpus: 2, memoryBytes: 1 * Gi, diskBytes: 2 * Gi };
const tinyDisk: Resources = { vcpus: 2, memoryBytes: 1 * Gi, diskBytes: 512 * Mi };
const cond = (reason: string, status: 'True' | 'False' = 'True') => ({ type: 'RestartRequired', status, reason, message: `m-${reason}` });

describe('bootPlan: the size a boot uses', () => {
  const table: Array<[string, ResizeFacts, BootPlan]> = [
    ['flavor unknown: boot as before', { charged: small }, { kind: 'boot' }],
    ['no allocation here: boot as before', { wanted: big }, { kind: 'boot' }],
    ['same size: boot it', { wanted: small, charged: small }, { kind: 'boot', size: small }],
    ['larger: claim it here first', { wanted: big, charged: small, condition: cond(ResizeReasons.FlavorChanged) }, { kind: 'claim', size: big }],
    ['larger, no condition yet: claim', { wanted: big, charged: small }, { kind: 'claim', size: big }],
    ['smaller disk: refused, keeps the charged size', { wanted: tinyDisk, charged: big }, { kind: 'boot', size: big }],
    ['a move was asked for: hold', { wanted: big, charged: small, condition: cond(ResizeReasons.MoveRequired) }, { kind: 'hold', why: 'resizing to 2 vCPUs, 1Gi memory, 2Gi disk: waiting for a cold move to a host with room' }],
    ['moving: hold', { wanted: big, charged: small, condition: cond(ResizeReasons.Moving) }, { kind: 'hold', why: 'resizing to 2 vCPUs, 1Gi memory, 2Gi disk: waiting for a cold move to a host with room' }],
    ['no host had room: boot the old size', { wanted: big, charged: small, condition: cond(ResizeReasons.NoHostWithRoom) }, { kind: 'boot', size: small, consumesNoRoom: true }],
    ['move failed: boot the old size', { wanted: big, charged: small, condition: cond(ResizeReasons.MoveFailed) }, { kind: 'boot', size: small, consumesNoRoom: true }],
    ['moved: the new host charges the new size', { wanted: big, charged: big, condition: cond(ResizeReasons.Moving) }, { kind: 'boot', size: big }],
    ['a False condition does not hold anything', { wanted: big, charged: small, condition: cond(ResizeReasons.MoveRequired, 'False') }, { kind: 'claim', size: big }],
  ];
  for (const [name, facts, want] of table) it(name, () => assert.deepEqual(bootPlan(facts), want));
});

describe('resizeMayApply: when a boot reads the Host', () => {
  it('only with a pending condition or a domain of another size', () => {
    assert.equal(resizeMayApply(undefined, cond('FlavorChanged')), false);
    assert.equal(resizeMayApply(small, undefined, { vcpus: 1, memoryBytes: 512 * Mi }), false);
    assert.equal(resizeMayApply(small, cond('Resized', 'False'), { vcpus: 1, memoryBytes: 512 * Mi }), false);
    assert.equal(resizeMayApply(small, cond('FlavorChanged')), true);
    assert.equal(resizeMayApply(big, undefined, { vcpus: 1, memoryBytes: 512 * Mi }), true);
    assert.equal(resizeMayApply(big, undefined), false, 'a spawn without a pending resize');
  });
});

describe('afterBootCondition', () => {
  it('clears a pending resize once booted with the new size', () => {
    const c = afterBootCondition('h1', { kind: 'boot', size: big }, { wanted: big, charged: big, condition: cond('Moving') }, 3);
    assert.deepEqual(c && { s: c.status, r: c.reason, g: c.observedGeneration }, { s: 'False', r: 'Resized', g: 3 });
    assert.match(c!.message!, /2 vCPUs, 1Gi memory, 2Gi disk since its restart on host h1/);
  });
  it('keeps it pending, with what happened, after a boot with the old size', () => {
    const c = afterBootCondition('h1', { kind: 'boot', size: small, consumesNoRoom: true }, { wanted: big, charged: small, condition: cond('NoHostWithRoom') });
    assert.equal(c?.status, 'True');
    assert.equal(c?.reason, 'FlavorChanged');
    assert.match(c!.message!, /^m-NoHostWithRoom; the guest was started again with 1 vCPU, 512Mi memory, 1Gi disk on host h1; 2 vCPUs, 1Gi memory, 2Gi disk applies at the next restart$/);
  });
  it('writes nothing for an ordinary boot', () => {
    assert.equal(afterBootCondition('h1', { kind: 'boot', size: small }, { wanted: small, charged: small }), undefined);
    assert.equal(afterBootCondition('h1', { kind: 'boot' }, { charged: small }), undefined);
  });
});
