import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyStrategicMergePatch } from './strategic-merge.js';
import { PatchError } from './errors.js';

const ns = () => ({
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: {
    name: 'team-a',
    labels: { a: '1' },
    finalizers: ['x', 'y'],
    ownerReferences: [
      { apiVersion: 'v1', kind: 'A', name: 'a', uid: 'u1' },
      { apiVersion: 'v1', kind: 'B', name: 'b', uid: 'u2' },
    ],
  },
  spec: { finalizers: ['kubernetes'] },
  status: { phase: 'Active', conditions: [{ type: 'A', status: 'True' }, { type: 'B', status: 'False' }] },
});

test('behaves as a merge patch for maps and scalars', () => {
  const out = applyStrategicMergePatch(ns(), { metadata: { labels: { a: null, b: '2' } }, status: { phase: 'Terminating' } }) as any;
  assert.deepEqual(out.metadata.labels, { b: '2' });
  assert.equal(out.status.phase, 'Terminating');
  assert.deepEqual(out.spec, { finalizers: ['kubernetes'] });
});

test('drops $setElementOrder, $retainKeys and applies $deleteFromPrimitiveList', () => {
  const out = applyStrategicMergePatch(ns(), {
    metadata: {
      '$setElementOrder/finalizers': ['y', 'x'],
      '$deleteFromPrimitiveList/finalizers': ['x'],
      labels: { $retainKeys: ['a'], c: '3' },
    },
  }) as any;
  assert.deepEqual(out.metadata.finalizers, ['y']);
  assert.deepEqual(out.metadata.labels, { a: '1', c: '3' });
  assert.ok(!Object.keys(out.metadata).some((k) => k.startsWith('$')));
});

test('metadata.finalizers merge as a set; Namespace spec.finalizers is replaced', () => {
  const out = applyStrategicMergePatch(ns(), { metadata: { finalizers: ['y', 'z'] }, spec: { finalizers: ['other'] } }) as any;
  assert.deepEqual(out.metadata.finalizers, ['x', 'y', 'z']);
  assert.deepEqual(out.spec.finalizers, ['other']);
});

test('ownerReferences merge by uid, $patch: delete removes an item', () => {
  const out = applyStrategicMergePatch(ns(), {
    metadata: {
      ownerReferences: [
        { uid: 'u2', controller: true },
        { uid: 'u3', apiVersion: 'v1', kind: 'C', name: 'c' },
        { uid: 'u1', $patch: 'delete' },
      ],
    },
  }) as any;
  assert.deepEqual(out.metadata.ownerReferences, [
    { apiVersion: 'v1', kind: 'B', name: 'b', uid: 'u2', controller: true },
    { uid: 'u3', apiVersion: 'v1', kind: 'C', name: 'c' },
  ]);
});

test('status.conditions merge by type', () => {
  const out = applyStrategicMergePatch(ns(), { status: { conditions: [{ type: 'B', status: 'True', reason: 'Ok' }, { type: 'C', status: 'Unknown' }] } }) as any;
  assert.deepEqual(out.status.conditions, [
    { type: 'A', status: 'True' },
    { type: 'B', status: 'True', reason: 'Ok' },
    { type: 'C', status: 'Unknown' },
  ]);
});

test('$patch: replace on a list item replaces the whole list', () => {
  const out = applyStrategicMergePatch(ns(), { status: { conditions: [{ $patch: 'replace' }, { type: 'Z', status: 'True' }] } }) as any;
  assert.deepEqual(out.status.conditions, [{ type: 'Z', status: 'True' }]);
});

test('list items without the merge key fall back to replacing the list', () => {
  const out = applyStrategicMergePatch(ns(), { status: { conditions: [{ status: 'True' }] } }) as any;
  assert.deepEqual(out.status.conditions, [{ status: 'True' }]);
});

test('$patch: replace and delete on maps', () => {
  const out = applyStrategicMergePatch(ns(), { metadata: { labels: { $patch: 'replace', only: 'me' } }, status: { $patch: 'delete' } }) as any;
  assert.deepEqual(out.metadata.labels, { only: 'me' });
  assert.equal(out.status, undefined);
  assert.throws(() => applyStrategicMergePatch(ns(), { metadata: { $patch: 'bogus' } }), (e: unknown) => e instanceof PatchError && e.kind === 'Malformed');
});

test('other lists are replaced whole; custom strategies can be passed', () => {
  const target = { spec: { ports: [{ port: 80, name: 'http' }], tags: ['a'] } };
  assert.deepEqual(applyStrategicMergePatch(target, { spec: { ports: [{ port: 443 }] } }), { spec: { ports: [{ port: 443 }], tags: ['a'] } });
  const custom = (p: readonly string[]) => (p.join('.') === 'spec.ports' ? { strategy: 'merge' as const, mergeKey: 'port' } : undefined);
  assert.deepEqual(applyStrategicMergePatch(target, { spec: { ports: [{ port: 443 }, { port: 80, proto: 'TCP' }] } }, { listStrategy: custom }), {
    spec: { ports: [{ port: 80, name: 'http', proto: 'TCP' }, { port: 443 }], tags: ['a'] },
  });
});

test('input is not modified; non-object patches are malformed', () => {
  const t = ns();
  const before = structuredClone(t);
  applyStrategicMergePatch(t, { metadata: { finalizers: ['q'], labels: { a: null } } });
  assert.deepEqual(t, before);
  assert.throws(() => applyStrategicMergePatch(t, [1]), (e: unknown) => e instanceof PatchError && e.kind === 'Malformed');
});
