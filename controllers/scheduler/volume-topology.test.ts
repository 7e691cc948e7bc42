// Volume topology in scheduling, pure: the rules of kube-scheduler's VolumeBinding plugin as they
// apply to kova (its table's cases: no volumes, claim not found, bound volume with node affinity,
// unbound WaitForFirstConsumer volume that needs room), filters, messages and disk charges.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Volume, VolumeType } from '../../api/kinds/index.js';
import { ANNOTATION_SELECTED_HOST } from '../../api/kinds/index.js';
import { DEFAULT_FILTERS, Disk, filterContext, isUnconstrained, VolumeNodeAffinity } from './filters.js';
import { HostCache } from './host-cache.js';
import { hostView } from './host-view.js';
import { schedule } from './schedule.js';
import { volumeCharge, volumeTopology } from './volume-topology.js';
import type { VolumeTopology } from './volume-topology.js';
import { hostObject, instanceObject } from '../../testing/scheduler-objects.js';

const GiB = 1024 ** 3;
const req = { vcpus: 1, memoryBytes: GiB, diskBytes: GiB };

const types: Record<string, VolumeType> = {
  local: { apiVersion: 'kova.dev/v1alpha1', kind: 'VolumeType', metadata: { name: 'local' }, spec: { backend: 'local' } },
  now: { apiVersion: 'kova.dev/v1alpha1', kind: 'VolumeType', metadata: { name: 'now' }, spec: { backend: 'local', volumeBindingMode: 'Immediate' } },
  shared: { apiVersion: 'kova.dev/v1alpha1', kind: 'VolumeType', metadata: { name: 'shared' }, spec: { backend: 'shared', sharedPath: '/srv/v' } },
};

function vol(name: string, o: { type?: string; size?: string; host?: string; selected?: string; source?: Volume['spec']['source']; deleting?: boolean } = {}): Volume {
  return {
    apiVersion: 'kova.dev/v1alpha1',
    kind: 'Volume',
    metadata: {
      name, namespace: 'ns', uid: `uid-${name}`,
      ...(o.selected ? { annotations: { [ANNOTATION_SELECTED_HOST]: o.selected } } : {}),
      ...(o.deleting ? { deletionTimestamp: '2024-01-01T00:00:00Z' } : {}),
    },
    spec: { size: o.size ?? '2Gi', ...(o.type === '' ? {} : { volumeType: o.type ?? 'local' }), ...(o.source ? { source: o.source } : {}) },
    ...(o.host ? { status: { hostName: o.host, phase: 'Available' } } : {}),
  };
}

const lookups = (vols: Volume[]) => ({
  volume: (_ns: string, name: string) => vols.find((v) => v.metadata.name === name),
  volumeType: (name: string) => types[name],
});
const withVolumes = (...names: string[]) => instanceObject('i', { volumes: names.map((volume) => ({ volume })) });

test('volumeTopology: the VolumeBinding cases', () => {
  const cases: Array<[string, Volume[], string[], VolumeTopology | { unschedulable: string } | { hosts: string[]; unplaced: string[]; unplacedBytes: number }]> = [
    ['no volumes', [], [], { hosts: [], unplaced: [], unplacedBytes: 0 }],
    ['volume not found', [], ['data'], { unschedulable: 'volume "data" not found' }],
    ['volume being deleted', [vol('data', { deleting: true })], ['data'], { unschedulable: 'volume "data" is being deleted' }],
    ['no VolumeType', [vol('data', { type: '' })], ['data'], { unschedulable: 'volume "data" has no VolumeType' }],
    ['VolumeType not found', [vol('data', { type: 'fast' })], ['data'], { unschedulable: 'VolumeType "fast" of volume "data" not found' }],
    ['local, provisioned on a host: node affinity', [vol('data', { host: 'h2' })], ['data'], { hosts: ['h2'], unplaced: [], unplacedBytes: 0 }],
    ['local, selected for a host: node affinity', [vol('data', { selected: 'h3' })], ['data'], { hosts: ['h3'], unplaced: [], unplacedBytes: 0 }],
    ['local, unbound: WaitForFirstConsumer, needs room', [vol('a', { size: '2Gi' }), vol('b', { size: '3Gi' })], ['a', 'b', 'a'], { hosts: [], unplaced: ['a', 'b'], unplacedBytes: 5 * GiB }],
    ['local, unbound restore: waits for its source host', [vol('r', { source: { snapshot: 's' } })], ['r'], { unschedulable: 'volume "r" waits to be placed on the host of its source snapshot "s"' }],
    ['local Immediate, unbound: placed by the volume controller first', [vol('n', { type: 'now' })], ['n'], { unschedulable: 'volume "n" is not placed on a host yet (VolumeType "now" binds Immediate)' }],
    ['local Immediate, placed: node affinity', [vol('n', { type: 'now', selected: 'h4' })], ['n'], { hosts: ['h4'], unplaced: [], unplacedBytes: 0 }],
    ['shared: no constraint', [vol('s', { type: 'shared', host: 'h9' })], ['s'], { hosts: [], unplaced: [], unplacedBytes: 0 }],
    ['two hosts: both kept (no host is both)', [vol('a', { host: 'h1' }), vol('b', { host: 'h2' })], ['a', 'b'], { hosts: ['h1', 'h2'], unplaced: [], unplacedBytes: 0 }],
  ];
  for (const [name, vols, entries, want] of cases) {
    const got = volumeTopology(withVolumes(...entries), lookups(vols));
    const norm = 'unschedulable' in got ? got : { hosts: [...got.hosts].sort(), unplaced: got.unplaced.map((v) => v.metadata.name), unplacedBytes: got.unplacedBytes };
    assert.deepEqual(norm, want, name);
  }
});

test('VolumeNodeAffinity and Disk filters; volume constraints leave the fast path', () => {
  const h1 = hostView(hostObject('h1', { allocatable: { vcpus: 4, memory: '8Gi', disk: '10Gi' } }));
  const h2 = hostView(hostObject('h2', { allocatable: { vcpus: 4, memory: '8Gi', disk: '10Gi' } }));
  const pinned = filterContext(instanceObject('i'), req, undefined, { hosts: new Set(['h2']), unplaced: [], unplacedBytes: 0 });
  assert.equal(VolumeNodeAffinity(pinned, h1), 'volume node affinity conflict');
  assert.equal(VolumeNodeAffinity(pinned, h2), null);
  assert.equal(isUnconstrained(pinned), false);
  const split = filterContext(instanceObject('i'), req, undefined, { hosts: new Set(['h1', 'h2']), unplaced: [], unplacedBytes: 0 });
  assert.equal(VolumeNodeAffinity(split, h1), 'volume node affinity conflict');
  assert.equal(VolumeNodeAffinity(split, h2), 'volume node affinity conflict');
  const big = filterContext(instanceObject('i'), req, undefined, { hosts: new Set(), unplaced: [], unplacedBytes: 9 * GiB });
  assert.equal(Disk(big, h1), null, 'root 1Gi + volumes 9Gi fit 10Gi exactly');
  const bigger = filterContext(instanceObject('i'), req, undefined, { hosts: new Set(), unplaced: [], unplacedBytes: 9 * GiB + 1 });
  assert.equal(Disk(bigger, h1), 'insufficient disk');
  assert.equal(isUnconstrained(bigger), false);
  assert.equal(isUnconstrained(filterContext(instanceObject('i'), req)), true);
  assert.ok(DEFAULT_FILTERS.includes(VolumeNodeAffinity));
});

test('schedule: a local volume pins the instance to its host; that host lacking room says why', () => {
  const hosts = () => [
    hostView(hostObject('a', { allocatable: { vcpus: 8, memory: '8Gi', disk: '100Gi' } })),
    hostView(hostObject('b', { allocatable: { vcpus: 8, memory: '8Gi', disk: '100Gi' } })),
    hostView(hostObject('c', { allocatable: { vcpus: 8, memory: '512Mi', disk: '100Gi' } })),
    hostView(hostObject('d', { ready: false })),
  ];
  const on = (host: string) => ({ volumes: { hosts: new Set([host]), unplaced: [], unplacedBytes: 0 } });
  assert.deepEqual(schedule(instanceObject('i'), req, hosts(), on('b')), { host: 'b' });
  assert.deepEqual(schedule(instanceObject('i'), req, hosts(), on('c')), { unschedulable: '0/4 hosts available: 2 volume node affinity conflict, 1 insufficient memory, 1 not ready' });
  assert.deepEqual(schedule(instanceObject('i'), req, hosts(), on('gone')), { unschedulable: '0/4 hosts available: 3 volume node affinity conflict, 1 not ready' });
});

test('HostCache: local volumes use their host\'s disk, charged and released like claims', () => {
  const cache = new HostCache();
  cache.upsert(hostObject('h1', { allocatable: { vcpus: 8, memory: '8Gi', disk: '10Gi' } }));
  const free = () => cache.get('h1')!.free.diskBytes;
  assert.equal(free(), 10 * GiB);
  const l = { volumeType: (n: string) => types[n] };
  // Provisioned there; selected for it; shared (not charged); no host (not charged).
  assert.equal(cache.setVolume('v1', volumeCharge(vol('v1', { size: '3Gi', host: 'h1' }), l)), false);
  cache.setVolume('v2', volumeCharge(vol('v2', { size: '2Gi', selected: 'h1' }), l));
  cache.setVolume('v3', volumeCharge(vol('v3', { size: '4Gi', type: 'shared', host: 'h1' }), l));
  cache.setVolume('v4', volumeCharge(vol('v4', { size: '4Gi' }), l));
  assert.equal(free(), 5 * GiB);
  assert.equal(cache.volumeBytes('h1'), 5 * GiB);
  // The same charge again changes nothing; a host change or a deletion frees room.
  assert.equal(cache.setVolume('v1', { host: 'h1', bytes: 3 * GiB }), false);
  assert.equal(cache.setVolume('v2', undefined), true);
  assert.equal(free(), 7 * GiB);
  // An instance claim and a volume charge add up; a host update keeps the volume charges.
  cache.assume('i1', 'h1', { vcpus: 1, memoryBytes: GiB, diskBytes: GiB });
  assert.equal(free(), 6 * GiB);
  cache.upsert(hostObject('h1', { allocatable: { vcpus: 8, memory: '8Gi', disk: '10Gi' } }));
  assert.equal(free(), 6 * GiB);
  // A volume charged to a host the cache learns of later counts once it does.
  cache.setVolume('v5', { host: 'h2', bytes: GiB });
  cache.upsert(hostObject('h2', { allocatable: { vcpus: 8, memory: '8Gi', disk: '10Gi' } }));
  assert.equal(cache.get('h2')!.free.diskBytes, 9 * GiB);
  // The scheduler picks the host whose disk still fits the volumes it brings.
  const ctx = { volumes: { hosts: new Set<string>(), unplaced: [], unplacedBytes: 8 * GiB } };
  assert.deepEqual(schedule(instanceObject('i'), { vcpus: 1, memoryBytes: GiB, diskBytes: GiB }, cache.hosts(), ctx), { host: 'h2' });
});
