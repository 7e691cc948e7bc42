// The pure placement rules of the volume controller: spread of shared volumes, the host a
// source pins, and deleteWithInstance as ownerReferences.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Instance, Volume, VolumeSnapshot, VolumeType } from '../../api/kinds/index.js';
import { hostObject, instanceObject } from '../../testing/scheduler-objects.js';
import { sourcePlacement, spreadHost } from './placement.js';
import { deletingOwners, ownerRefsFor } from './volume-controller.js';

test('spreadHost: stable for a uid, only Ready schedulable hosts, spread over them', () => {
  const hosts = ['a', 'b', 'c', 'd'].map((n) => hostObject(n));
  const down = hostObject('e', { ready: false });
  const cordoned = hostObject('f', { unschedulable: true });
  const fenced = hostObject('g', { fenced: true });
  const all = [...hosts, down, cordoned, fenced];
  const counts = new Map<string, number>();
  for (let i = 0; i < 400; i++) {
    const uid = `0000${i}-aaaa-bbbb-cccc-dddddddddddd`;
    const h = spreadHost(uid, all)!;
    assert.equal(spreadHost(uid, [...all].reverse()), h, 'independent of list order');
    counts.set(h, (counts.get(h) ?? 0) + 1);
  }
  assert.deepEqual([...counts.keys()].sort(), ['a', 'b', 'c', 'd']);
  for (const n of counts.values()) assert.ok(n > 60, `roughly even: ${[...counts]}`);
  assert.equal(spreadHost('x', [down, cordoned, fenced]), undefined);
});

test('sourcePlacement: snapshots and clones pin a volume to their host', () => {
  const t = (backend: 'local' | 'shared'): VolumeType => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'VolumeType', metadata: { name: backend }, spec: { backend } });
  const snap = (status?: VolumeSnapshot['status']): VolumeSnapshot => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'VolumeSnapshot', metadata: { name: 's', namespace: 'ns' }, spec: { source: { volume: 'src' } }, ...(status ? { status } : {}) });
  const vol = (name: string, spec: Partial<Volume['spec']>, host?: string): Volume => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'Volume', metadata: { name, namespace: 'ns' }, spec: { size: '1Gi', volumeType: 'local', ...spec }, ...(host ? { status: { hostName: host } } : {}) });
  const l = (s?: VolumeSnapshot, vols: Volume[] = []) => ({ snapshot: () => s, volume: (_: string, n: string) => vols.find((v) => v.metadata.name === n), volumeType: (n: string) => t(n as 'local') });
  const restore = vol('r', { source: { snapshot: 's' } });
  assert.deepEqual(sourcePlacement(restore, l()), { wait: { reason: 'SnapshotNotFound', message: 'VolumeSnapshot "s" not found; create it, or recreate the volume from an existing one' } });
  assert.equal((sourcePlacement(restore, l(snap({ readyToUse: false, hostName: 'h1' }))) as { wait: { reason: string } }).wait.reason, 'WaitingForSnapshot');
  assert.deepEqual(sourcePlacement(restore, l(snap({ readyToUse: true, hostName: 'h1', volumeType: 'local' }))), { host: 'h1' });
  assert.deepEqual(sourcePlacement(restore, l(snap({ readyToUse: true, hostName: 'h1', volumeType: 'shared' }))), { free: true });
  const clone = vol('c', { source: { volume: 'src' } });
  assert.equal((sourcePlacement(clone, l()) as { wait: { reason: string } }).wait.reason, 'SourceVolumeNotFound');
  assert.equal((sourcePlacement(clone, l(undefined, [vol('src', {})])) as { wait: { reason: string } }).wait.reason, 'WaitingForSourceVolume');
  assert.deepEqual(sourcePlacement(clone, l(undefined, [vol('src', {}, 'h2')])), { host: 'h2' });
  assert.deepEqual(sourcePlacement(clone, l(undefined, [vol('src', { volumeType: 'shared' })])), { free: true });
  assert.deepEqual(sourcePlacement(vol('b', { source: { image: 'tiny' } }), l()), { free: true });
});

test('ownerRefsFor: deleteWithInstance adds a reference, dropping the flag removes it, gone instances keep theirs', () => {
  const v: Volume = { apiVersion: 'kova.dev/v1alpha1', kind: 'Volume', metadata: { name: 'data', namespace: 'ns' }, spec: { size: '1Gi' } };
  const inst = (name: string, del?: boolean): Instance => instanceObject(name, { volumes: [{ volume: 'data', ...(del === undefined ? {} : { deleteWithInstance: del }) }] });
  const a = inst('a', true);
  const b = inst('b', false);
  const c = inst('c');
  const other = instanceObject('o', { volumes: [{ volume: 'other', deleteWithInstance: true }] });
  const known = [a, b, c, other];
  assert.deepEqual(deletingOwners(v, known).map((i) => i.metadata.name), ['a']);
  const refA = { apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', name: 'a', uid: 'uid-a' };
  assert.deepEqual(ownerRefsFor([], [a], known), [refA]);
  assert.equal(ownerRefsFor([refA], [a], known), undefined, 'nothing to change');
  // b had asked before and no longer does; a gone instance (uid-z) and a foreign owner stay.
  const refB = { ...refA, name: 'b', uid: 'uid-b' };
  const refGone = { ...refA, name: 'z', uid: 'uid-z' };
  const foreign = { apiVersion: 'v1', kind: 'ConfigMap', name: 'x', uid: 'uid-x' };
  assert.deepEqual(ownerRefsFor([refB, refGone, foreign], [a], known), [refGone, foreign, refA]);
  assert.deepEqual(ownerRefsFor([refA], [], known), []);
});
