import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HostCache } from './host-cache.js';
import { hostObject } from '../../testing/scheduler-objects.js';

const GiB = 1024 ** 3;
const req = { vcpus: 1, memoryBytes: GiB, diskBytes: 2 * GiB };
const alloc = { vcpus: 4, memory: '4Gi', disk: '100Gi' };

test('HostCache: allocatable from status, or nothing, or capacity × ratios when asked', () => {
  assert.deepEqual(new HostCache().upsert(hostObject('a', { capacity: { vcpus: 2, memory: '2Gi', disk: '10Gi' } })), true);
  const plain = new HostCache();
  plain.upsert(hostObject('a', { capacity: { vcpus: 2, memory: '2Gi', disk: '10Gi' } }));
  assert.deepEqual(plain.get('a')!.free, { vcpus: 0, memoryBytes: 0, diskBytes: 0 });
  const c = new HostCache({ ratios: { cpu: 4 } });
  c.upsert(hostObject('a', { capacity: { vcpus: 2, memory: '2Gi', disk: '10Gi' } }));
  assert.deepEqual(c.get('a')!.allocatable, { vcpus: 8, memoryBytes: 3 * GiB, diskBytes: 10 * GiB });
  c.upsert(hostObject('b', { capacity: { vcpus: 2, memory: '2Gi', disk: '10Gi' }, allocatable: alloc }));
  assert.deepEqual(c.get('b')!.allocatable, { vcpus: 4, memoryBytes: 4 * GiB, diskBytes: 100 * GiB });
  // Garbage quantities: the host is kept but offers nothing.
  c.upsert(hostObject('bad', { allocatable: { vcpus: 4, memory: 'lots', disk: '1Gi' } }));
  assert.deepEqual(c.get('bad')!.free, { vcpus: 0, memoryBytes: 0, diskBytes: 0 });
});

test('HostCache: assumed claims count until the host status shows them', () => {
  const c = new HostCache();
  c.upsert(hostObject('a', { allocatable: alloc }));
  c.assume('u1', 'a', req);
  c.assume('u2', 'a', req);
  assert.deepEqual(c.get('a')!.free, { vcpus: 2, memoryBytes: 2 * GiB, diskBytes: 96 * GiB });
  c.finishBinding('u1');
  // A host update that does not show u1 yet keeps both claims.
  c.upsert(hostObject('a', { allocatable: alloc, labels: { x: 'y' } }));
  assert.equal(c.get('a')!.free.vcpus, 2);
  // The server's allocation for u1 replaces the assumption: free stays the same.
  c.upsert(hostObject('a', { allocatable: alloc, allocated: { vcpus: 1, memory: '1Gi', disk: '2Gi' }, allocations: [{ uid: 'u1' }] }));
  assert.deepEqual(c.get('a')!.free, { vcpus: 2, memoryBytes: 2 * GiB, diskBytes: 96 * GiB });
  assert.equal(c.assumedCount(), 1);
  // A failed binding is forgotten at once.
  c.forget('u2');
  assert.equal(c.get('a')!.free.vcpus, 3);
  assert.equal(c.assumedCount(), 0);
  // Re-assuming the same uid elsewhere moves the claim.
  c.upsert(hostObject('b', { allocatable: alloc }));
  c.assume('u3', 'a', req);
  c.assume('u3', 'b', req);
  assert.equal(c.get('a')!.free.vcpus, 3);
  assert.equal(c.get('b')!.free.vcpus, 3);
  c.remove('b');
  assert.equal(c.assumedCount(), 0);
});

test('HostCache: successful bindings never confirmed expire after the TTL', () => {
  let now = 1000;
  const c = new HostCache({ assumeTtlMs: 500, now: () => now });
  c.upsert(hostObject('a', { allocatable: alloc }));
  c.assume('u1', 'a', req);
  c.assume('u2', 'a', req); // still binding: never expires
  assert.equal(c.isBound('u1'), false);
  c.finishBinding('u1');
  assert.equal(c.isBound('u1'), true);
  assert.equal(c.isBound('u2'), false);
  now += 499;
  assert.equal(c.sweep(), false);
  now += 1;
  assert.equal(c.sweep(), true);
  assert.equal(c.get('a')!.free.vcpus, 3);
  now += 10_000;
  assert.equal(c.sweep(), false);
  // The host showing the allocation drops the claim even while the binding call is in flight.
  c.upsert(hostObject('a', { allocatable: alloc, allocations: [{ uid: 'u2' }], allocated: { vcpus: 1, memory: '1Gi', disk: '2Gi' } }));
  assert.equal(c.assumedCount(), 0);
  assert.equal(c.get('a')!.free.vcpus, 3);
  c.finishBinding('u2'); // nothing left to finish
  assert.equal(c.assumedCount(), 0);
});

test('HostCache.upsert: true only for changes that can make room', () => {
  const c = new HostCache();
  assert.equal(c.upsert(hostObject('a', { allocatable: alloc, ready: false })), true); // new host
  assert.equal(c.upsert(hostObject('a', { allocatable: alloc, ready: false })), false);
  assert.equal(c.upsert(hostObject('a', { allocatable: alloc })), true); // ready again
  assert.equal(c.upsert(hostObject('a', { allocatable: alloc, unschedulable: true })), false); // cordon takes room away
  assert.equal(c.upsert(hostObject('a', { allocatable: alloc })), true); // uncordon
  assert.equal(c.upsert(hostObject('a', { allocatable: alloc, allocated: { vcpus: 2 } })), false);
  assert.equal(c.upsert(hostObject('a', { allocatable: alloc, allocated: { vcpus: 1 } })), true); // allocations dropped
  assert.equal(c.upsert(hostObject('a', { allocatable: { ...alloc, memory: '8Gi' }, allocated: { vcpus: 1 } })), true); // bigger
  assert.equal(c.upsert(hostObject('a', { allocatable: { ...alloc, memory: '8Gi' }, allocated: { vcpus: 1 }, labels: { z: '1' } })), true);
  c.assume('u', 'a', req);
  assert.equal(c.upsert(hostObject('a', { allocatable: { ...alloc, memory: '8Gi' }, allocated: { vcpus: 2, memory: '1Gi', disk: '2Gi' }, allocations: [{ uid: 'u' }], labels: { z: '1' } })), false);
});
