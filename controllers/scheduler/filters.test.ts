import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_FILTERS, Disk, Excluded, filterContext, firstFailure, HostNamePin, HostReady, isUnconstrained, Memory, NodeSelector, NotCordoned, passesDefaultUnconstrained, Vcpu, Zone } from './filters.js';
import { hostView } from './host-view.js';
import { hostObject, instanceObject } from '../../testing/scheduler-objects.js';

const GiB = 1024 ** 3;
const req = { vcpus: 2, memoryBytes: 4 * GiB, diskBytes: 10 * GiB };
const ctxOf = (spec: Record<string, unknown> = {}, excluded?: Map<string, string>) => filterContext(instanceObject('i', spec), req, excluded);
const small = (o: Parameters<typeof hostObject>[1] = {}) =>
  hostView(hostObject('h1', { allocatable: { vcpus: 4, memory: '8Gi', disk: '20Gi' }, ...o }));

test('HostReady: Ready condition must be True', () => {
  assert.equal(HostReady(ctxOf(), small()), null);
  assert.equal(HostReady(ctxOf(), small({ ready: false })), 'not ready');
  const noConditions = hostObject('h');
  (noConditions.status as { conditions: unknown[] }).conditions = [];
  assert.equal(HostReady(ctxOf(), hostView(noConditions)), 'not ready');
});

test('NotCordoned: spec.unschedulable or spec.fenced', () => {
  assert.equal(NotCordoned(ctxOf(), small()), null);
  assert.equal(NotCordoned(ctxOf(), small({ unschedulable: true })), 'unschedulable');
  assert.equal(NotCordoned(ctxOf(), small({ fenced: true })), 'unschedulable');
});

test('Vcpu, Memory, Disk: request against allocatable − allocated', () => {
  const h = small({ allocated: { vcpus: 2, memory: '4Gi', disk: '10Gi' } });
  assert.equal(Vcpu(ctxOf(), h), null); // exactly fits
  assert.equal(Memory(ctxOf(), h), null);
  assert.equal(Disk(ctxOf(), h), null);
  const full = small({ allocated: { vcpus: 3, memory: '5Gi', disk: '11Gi' } });
  assert.equal(Vcpu(ctxOf(), full), 'insufficient vcpus');
  assert.equal(Memory(ctxOf(), full), 'insufficient memory');
  assert.equal(Disk(ctxOf(), full), 'insufficient disk');
});

test('Vcpu, Memory, Disk: pending claims reduce free room', () => {
  const h = small();
  h.free = { vcpus: 1, memoryBytes: 3 * GiB, diskBytes: 9 * GiB };
  assert.equal(Vcpu(ctxOf(), h), 'insufficient vcpus');
  assert.equal(Memory(ctxOf(), h), 'insufficient memory');
  assert.equal(Disk(ctxOf(), h), 'insufficient disk');
});

test('NodeSelector: every selector label must match; the zone key is left to Zone', () => {
  const h = small({ labels: { gpu: 'yes', 'kova.dev/zone': 'a' } });
  assert.equal(NodeSelector(ctxOf(), h), null);
  assert.equal(NodeSelector(ctxOf({ nodeSelector: { gpu: 'yes' } }), h), null);
  assert.equal(NodeSelector(ctxOf({ nodeSelector: { gpu: 'no' } }), h), "didn't match node selector");
  assert.equal(NodeSelector(ctxOf({ nodeSelector: { gpu: 'yes', ssd: 'yes' } }), h), "didn't match node selector");
  assert.equal(NodeSelector(ctxOf({ nodeSelector: { 'kova.dev/zone': 'b' } }), h), null);
});

test('Zone: nodeSelector kova.dev/zone against the host label', () => {
  const a = small({ labels: { 'kova.dev/zone': 'a' } });
  assert.equal(Zone(ctxOf(), a), null);
  assert.equal(Zone(ctxOf({ nodeSelector: { 'kova.dev/zone': 'a' } }), a), null);
  assert.equal(Zone(ctxOf({ nodeSelector: { 'kova.dev/zone': 'b' } }), a), "didn't match availability zone");
  assert.equal(Zone(ctxOf({ nodeSelector: { 'kova.dev/zone': 'a' } }), small()), "didn't match availability zone");
});

test('HostNamePin: spec.hostName', () => {
  assert.equal(HostNamePin(ctxOf(), small()), null);
  assert.equal(HostNamePin(ctxOf({ hostName: 'h1' }), small()), null);
  assert.equal(HostNamePin(ctxOf({ hostName: 'h2' }), small()), "didn't match requested host");
});

test('Excluded: hosts the server refused in this attempt', () => {
  assert.equal(Excluded(ctxOf({}, new Map([['h1', 'insufficient memory']])), small()), 'insufficient memory');
  assert.equal(Excluded(ctxOf({}, new Map([['h2', 'insufficient memory']])), small()), null);
});

test('firstFailure: the fixed order decides which reason a host is counted under', () => {
  const h = small({ ready: false, unschedulable: true, allocated: { vcpus: 4, memory: '8Gi', disk: '20Gi' } });
  assert.equal(firstFailure(ctxOf(), h), 'not ready');
  assert.equal(firstFailure(ctxOf(), small({ unschedulable: true, allocated: { vcpus: 4 } })), 'unschedulable');
  assert.equal(firstFailure(ctxOf({ hostName: 'x' }), small({ allocated: { vcpus: 4 } })), "didn't match requested host");
  assert.equal(firstFailure(ctxOf(), small({ allocated: { vcpus: 4, memory: '8Gi' } })), 'insufficient vcpus');
  assert.equal(firstFailure(ctxOf(), small({ allocated: { memory: '8Gi', disk: '20Gi' } })), 'insufficient memory');
  assert.equal(firstFailure(ctxOf(), small()), null);
});

test('passesDefaultUnconstrained agrees with the filter list', () => {
  const ctx = ctxOf();
  assert.equal(isUnconstrained(ctx), true);
  assert.equal(isUnconstrained(ctxOf({ hostName: 'x' })), false);
  assert.equal(isUnconstrained(ctxOf({ nodeSelector: { a: 'b' } })), false);
  assert.equal(isUnconstrained(ctxOf({ nodeSelector: { 'kova.dev/zone': 'b' } })), false);
  assert.equal(isUnconstrained(ctxOf({}, new Map([['h', 'x']]))), false);
  assert.equal(isUnconstrained(ctxOf({}, new Map())), true);
  const variants = [
    small(), small({ ready: false }), small({ unschedulable: true }), small({ fenced: true }),
    small({ allocated: { vcpus: 3 } }), small({ allocated: { memory: '5Gi' } }), small({ allocated: { disk: '11Gi' } }),
    small({ allocated: { vcpus: 2, memory: '4Gi', disk: '10Gi' } }),
  ];
  for (const h of variants) assert.equal(passesDefaultUnconstrained(ctx, h), firstFailure(ctx, h, DEFAULT_FILTERS) === null);
});
