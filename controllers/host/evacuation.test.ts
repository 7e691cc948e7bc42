import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { evacuationAction, unboundStatus } from './evacuation.js';
import type { InstanceLike } from './evacuation.js';

describe('evacuation', () => {
  const bound: InstanceLike = { metadata: { name: 'web', namespace: 'ns', generation: 3, finalizers: ['kova.dev/instance-protection'] }, status: { hostName: 'h1', phase: 'Running' } };
  it('unbinds live instances and releases the finalizer of deleted ones', () => {
    assert.equal(evacuationAction(bound, 'h1'), 'unbind');
    assert.equal(evacuationAction(bound, 'h2'), 'none');
    assert.equal(evacuationAction({ ...bound, metadata: { ...bound.metadata, deletionTimestamp: '2026-01-01T00:00:00Z' } }, 'h1'), 'releaseFinalizer');
    assert.equal(evacuationAction({ metadata: { deletionTimestamp: '2026-01-01T00:00:00Z', finalizers: ['other'] }, status: { hostName: 'h1' } }, 'h1'), 'none');
  });
  it('builds the unbound status', () => {
    const now = new Date('2026-01-01T00:00:00Z');
    const s = unboundStatus({
      phase: 'Running', hostName: 'h1', domainUUID: 'd', powerState: 'Running', startedAt: 'x', restartCount: 2,
      conditions: [{ type: 'Scheduled', status: 'True', lastTransitionTime: 'old' }, { type: 'HostReachable', status: 'False' }],
    }, 'h1', 3, now);
    assert.deepEqual(s, {
      phase: 'Pending', restartCount: 2,
      conditions: [
        { type: 'Scheduled', status: 'False', reason: 'Evacuated', message: 'evacuated from fenced host h1', observedGeneration: 3, lastTransitionTime: '2026-01-01T00:00:00Z' },
        { type: 'Ready', status: 'False', reason: 'Evacuated', message: 'evacuated from fenced host h1', observedGeneration: 3, lastTransitionTime: '2026-01-01T00:00:00Z' },
      ],
    });
  });
});
