import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HostCache } from './host-cache.js';
import { hostView } from './host-view.js';
import { schedule, unschedulableMessage } from './schedule.js';
import { hostObject, instanceObject } from '../../testing/scheduler-objects.js';
import { weighersFor } from './weighers.js';

const GiB = 1024 ** 3;
const req = { vcpus: 1, memoryBytes: 4 * GiB, diskBytes: 10 * GiB };

test('schedule: places on a fitting host', () => {
  const hosts = [
    hostView(hostObject('full', { allocatable: { vcpus: 8, memory: '8Gi', disk: '100Gi' }, allocated: { memory: '6Gi' } })),
    hostView(hostObject('roomy', { allocatable: { vcpus: 8, memory: '8Gi', disk: '100Gi' } })),
  ];
  assert.deepEqual(schedule(instanceObject('i'), req, hosts), { host: 'roomy' });
});

test('schedule: the unschedulable message counts one reason per host', () => {
  const hosts = [
    hostView(hostObject('a', { allocatable: { vcpus: 8, memory: '2Gi', disk: '100Gi' } })),
    hostView(hostObject('b', { allocatable: { vcpus: 8, memory: '2Gi', disk: '100Gi' } })),
    hostView(hostObject('c', { allocatable: { vcpus: 8, memory: '2Gi', disk: '100Gi' } })),
    hostView(hostObject('d', { ready: false })),
    hostView(hostObject('e', { ready: false, unschedulable: true })),
  ];
  assert.deepEqual(schedule(instanceObject('i'), req, hosts), { unschedulable: '0/5 hosts available: 3 insufficient memory, 2 not ready' });
});

test('schedule: equal counts sort by reason; pin, zone and exclusions are reasons too', () => {
  const hosts = [
    hostView(hostObject('a', { unschedulable: true })),
    hostView(hostObject('b', { labels: { 'kova.dev/zone': 'z2' } })),
    hostView(hostObject('c', { labels: { 'kova.dev/zone': 'z1' }, allocatable: { vcpus: 0, memory: '64Gi', disk: '1Ti' } })),
    hostView(hostObject('d', { labels: { 'kova.dev/zone': 'z1' } })),
  ];
  const inst = instanceObject('i', { nodeSelector: { 'kova.dev/zone': 'z1' } });
  assert.deepEqual(schedule(inst, req, hosts), { host: 'd' });
  assert.deepEqual(schedule(inst, req, hosts, { excluded: new Map([['d', 'insufficient memory']]) }), {
    unschedulable: "0/4 hosts available: 1 didn't match availability zone, 1 insufficient memory, 1 insufficient vcpus, 1 unschedulable",
  });
  assert.deepEqual(schedule(instanceObject('p', { hostName: 'b' }), req, hosts), { host: 'b' });
  assert.deepEqual(schedule(instanceObject('p', { hostName: 'a' }), req, hosts), {
    unschedulable: "0/4 hosts available: 3 didn't match requested host, 1 unschedulable",
  });
  assert.deepEqual(schedule(instanceObject('i'), req, []), { unschedulable: '0/0 hosts available: no hosts registered' });
  assert.equal(unschedulableMessage(3, new Map([['x', 1], ['y', 2]])), '0/3 hosts available: 2 y, 1 x');
});

test('schedule: 1000 hosts, 1000 placements well above 1000/s (filter pass + assume)', () => {
  const cache = new HostCache();
  for (let i = 0; i < 1000; i++) {
    cache.upsert(hostObject(`h${i}`, { labels: { 'kova.dev/zone': `z${i % 3}`, rack: `r${i % 10}` }, allocatable: { vcpus: 64, memory: '64Gi', disk: '1Ti' }, ready: i % 50 !== 0 }));
  }
  const small = { vcpus: 1, memoryBytes: GiB / 2, diskBytes: 2 * GiB };
  const inst = instanceObject('i', { nodeSelector: { rack: 'r1' } });
  const free = instanceObject('j');
  const t1 = performance.now();
  for (let n = 0; n < 1000; n++) assert.ok('host' in schedule(free, small, cache.hosts()));
  const unconstrained = 1000 / ((performance.now() - t1) / 1000);
  assert.ok(unconstrained > 2000, `only ${Math.round(unconstrained)} unconstrained placements/s`);
  for (const weighers of [weighersFor('spread'), weighersFor('pack')]) {
    const t0 = performance.now();
    const placed = new Map<string, number>();
    for (let n = 0; n < 1000; n++) {
      const r = schedule(inst, small, cache.hosts(), { weighers });
      assert.ok('host' in r, JSON.stringify(r));
      cache.assume(`u${n}`, r.host, small);
      placed.set(r.host, (placed.get(r.host) ?? 0) + 1);
    }
    const perSec = 1000 / ((performance.now() - t0) / 1000);
    assert.ok(perSec > 2000, `only ${Math.round(perSec)} placements/s`);
    for (const h of placed.keys()) assert.equal(cache.get(h)!.labels.rack, 'r1');
    // spread: 98 ready r1 hosts share 1000 placements evenly; pack: 64 vCPUs fill one host first.
    if (weighers[0].multiplier > 0) assert.ok(Math.max(...placed.values()) <= 11, `uneven spread ${Math.max(...placed.values())}`);
    else assert.ok(placed.size <= 16 && Math.max(...placed.values()) === 64, `pack used ${placed.size} hosts`);
    for (let n = 0; n < 1000; n++) cache.forget(`u${n}`);
  }
});
