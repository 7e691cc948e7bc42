import assert from 'node:assert/strict';
import { test } from 'node:test';
import { computeAllocatable, DEFAULT_RATIOS, formatResources, instanceRequest, parseResources } from './resources.js';
import type { Flavor, Instance, InstanceSpec } from './kinds/index.js';

const instanceObject = (name: string, spec: Partial<InstanceSpec> = {}): Instance =>
  ({ apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', metadata: { name, namespace: 'ns', uid: `uid-${name}` }, spec: { image: 'tiny', ...spec } });
const flavorObject = (name: string, vcpus: number, memory: string, disk: string): Flavor =>
  ({ apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: { name }, spec: { vcpus, memory, disk } });

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

test('parseResources: quantities to numbers, missing fields are 0', () => {
  assert.deepEqual(parseResources({ vcpus: 2, memory: '512Mi', disk: '2Gi' }), { vcpus: 2, memoryBytes: 512 * MiB, diskBytes: 2 * GiB });
  assert.deepEqual(parseResources({ memory: 1000, disk: '1.5Gi' }), { vcpus: 0, memoryBytes: 1000, diskBytes: 1.5 * GiB });
  assert.deepEqual(parseResources(undefined), { vcpus: 0, memoryBytes: 0, diskBytes: 0 });
  // Fractional bytes round up like apimachinery's Value().
  assert.equal(parseResources({ memory: '100m' }).memoryBytes, 1);
  assert.throws(() => parseResources({ memory: '12 GB' }));
});

test('formatResources: the API shape', () => {
  assert.deepEqual(formatResources({ vcpus: 1, memoryBytes: 512 * MiB, diskBytes: 2 * GiB }), { vcpus: 1, memory: '512Mi', disk: '2Gi' });
});

test('computeAllocatable: capacity × ratios, defaults 16 / 1.5 / 1.0', () => {
  assert.deepEqual(DEFAULT_RATIOS, { cpu: 16, ram: 1.5, disk: 1 });
  const cap = { vcpus: 8, memoryBytes: 24 * GiB, diskBytes: 200 * GiB };
  assert.deepEqual(computeAllocatable(cap), { vcpus: 128, memoryBytes: 36 * GiB, diskBytes: 200 * GiB });
  assert.deepEqual(computeAllocatable(cap, { cpu: 2 }), { vcpus: 16, memoryBytes: 36 * GiB, diskBytes: 200 * GiB });
  assert.deepEqual(computeAllocatable(cap, { cpu: 1, ram: 1, disk: 0.5 }), { vcpus: 8, memoryBytes: 24 * GiB, diskBytes: 100 * GiB });
  // Rounded down to whole units.
  assert.equal(computeAllocatable({ vcpus: 3, memoryBytes: 3, diskBytes: 0 }, { cpu: 1.5, ram: 1.5 }).memoryBytes, 4);
  assert.equal(computeAllocatable({ vcpus: 3, memoryBytes: 3, diskBytes: 0 }, { cpu: 1.5 }).vcpus, 4);
});

test('instanceRequest: from the Flavor, from spec.resources, or why not', () => {
  const flavors = new Map([['m1.small', flavorObject('m1.small', 1, '512Mi', '2Gi')]]);
  const get = (n: string) => flavors.get(n);
  assert.deepEqual(instanceRequest(instanceObject('a', { flavor: 'm1.small' }), get), { req: { vcpus: 1, memoryBytes: 512 * MiB, diskBytes: 2 * GiB } });
  assert.deepEqual(instanceRequest(instanceObject('b', { resources: { vcpus: 4, memory: '8Gi', disk: '20Gi' } }), get), { req: { vcpus: 4, memoryBytes: 8 * GiB, diskBytes: 20 * GiB } });
  assert.deepEqual(instanceRequest(instanceObject('c', { flavor: 'm1.huge' }), get), { flavorNotFound: 'm1.huge' });
  assert.ok('invalid' in instanceRequest(instanceObject('d', {}), get));
  assert.ok('invalid' in instanceRequest(instanceObject('e', { resources: { vcpus: 1, memory: 'lots', disk: '1Gi' } }), get));
});
