import assert from 'node:assert/strict';
import { test } from 'node:test';
import { filterContext } from './filters.js';
import { hostView } from './host-view.js';
import { hostObject, instanceObject } from '../../testing/scheduler-objects.js';
import { freeMemory, freeVcpus, pickHost, scores, weighersFor } from './weighers.js';

const GiB = 1024 ** 3;
const ctx = filterContext(instanceObject('i'), { vcpus: 1, memoryBytes: GiB, diskBytes: GiB });
const host = (name: string, freeMemGi: number, freeVcpus = 8) =>
  hostView(hostObject(name, { allocatable: { vcpus: 8, memory: '16Gi', disk: '100Gi' }, allocated: { vcpus: 8 - freeVcpus, memory: `${16 - freeMemGi}Gi` } }));

test('spread picks the host with the most free memory, pack the least', () => {
  const hs = [host('a', 4), host('b', 12), host('c', 8)];
  assert.equal(pickHost(ctx, hs, weighersFor('spread'))!.name, 'b');
  assert.equal(pickHost(ctx, hs, weighersFor('pack'))!.name, 'a');
  assert.throws(() => weighersFor('random' as 'pack'), /unknown weigher/);
});

test('scores: each weigher normalized to 0..1 and multiplied', () => {
  const hs = [host('a', 4, 8), host('b', 12, 0), host('c', 8, 4)];
  assert.deepEqual([...scores(ctx, hs, [freeMemory(1)])], [0, 1, 0.5]);
  assert.deepEqual([...scores(ctx, hs, [freeMemory(-1)])], [0, -1, -0.5]);
  // Memory ×1 plus vCPUs ×2: a has all vCPUs free, b all memory.
  assert.deepEqual([...scores(ctx, hs, [freeMemory(1), freeVcpus(2)])], [2, 1, 1.5]);
  // Raw numbers of very different scales still weigh by their multipliers only.
  assert.equal(pickHost(ctx, hs, [freeMemory(1), freeVcpus(2)])!.name, 'a');
  assert.equal(pickHost(ctx, hs, [freeMemory(3), freeVcpus(2)])!.name, 'b');
  // A weigher under which every host is equal adds nothing.
  assert.deepEqual([...scores(ctx, [host('x', 4), host('y', 4)], [freeMemory(1)])], [0, 0]);
});

test('ties are broken at random; subsetSize widens the pool to the next best', () => {
  const hs = [host('a', 8), host('b', 8), host('c', 8), host('d', 2)];
  const seen = new Set<string>();
  for (let i = 0; i < 3; i++) seen.add(pickHost(ctx, hs, weighersFor('spread'), { random: () => i / 3 })!.name);
  assert.deepEqual([...seen].sort(), ['a', 'b', 'c']);
  const hs2 = [host('a', 12), host('b', 8), host('c', 4)];
  assert.equal(pickHost(ctx, hs2, weighersFor('spread'), { random: () => 0.99 })!.name, 'a');
  assert.equal(pickHost(ctx, hs2, weighersFor('spread'), { subsetSize: 2, random: () => 0.99 })!.name, 'b');
  assert.equal(pickHost(ctx, hs2, weighersFor('spread'), { subsetSize: 2, random: () => 0 })!.name, 'a');
  assert.equal(pickHost(ctx, [], weighersFor('spread')), undefined);
});
