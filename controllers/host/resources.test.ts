import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allocatableFor, sameResources, sumResources } from './resources.js';

describe('allocatableFor', () => {
  it('applies the default ratios (cpu 16, ram 1.5, disk 1)', () => {
    assert.deepEqual(allocatableFor({ vcpus: 8, memory: '24Gi', disk: '200Gi' }), { vcpus: 128, memory: '36Gi', disk: '200Gi' });
  });
  it('rounds down and takes custom ratios and byte counts', () => {
    assert.deepEqual(allocatableFor({ vcpus: 3, memory: 1000, disk: '1Gi' }, { cpu: 1.5, ram: 1.0, disk: 0.5 }), { vcpus: 4, memory: '1000', disk: '512Mi' });
  });
  it('offers nothing for missing or malformed capacity (as the scheduler counts it)', () => {
    assert.deepEqual(allocatableFor({}), { vcpus: 0, memory: '0', disk: '0' });
    assert.deepEqual(allocatableFor({ vcpus: 1, memory: 'lots' }), { vcpus: 0, memory: '0', disk: '0' });
  });
});

describe('sameResources / sumResources', () => {
  it('compares amounts, not spellings', () => {
    assert.ok(sameResources({ vcpus: 2, memory: '1Gi', disk: 1073741824 }, { vcpus: 2, memory: '1024Mi', disk: '1Gi' }));
    assert.ok(!sameResources({ vcpus: 2, memory: '1Gi' }, { vcpus: 3, memory: '1Gi' }));
    assert.ok(!sameResources({ vcpus: 2 }, undefined));
  });
  it('sums allocations into canonical quantities', () => {
    assert.deepEqual(sumResources([{ vcpus: 1, memory: '512Mi', disk: '2Gi' }, { vcpus: 2, memory: '1Gi', disk: '4Gi' }]), { vcpus: 3, memory: '1536Mi', disk: '6Gi' });
    assert.deepEqual(sumResources([]), { vcpus: 0, memory: '0', disk: '0' });
  });
});
