// The graph's pre-decoding filter: a MODIFIED watch line is skipped only when decoding it
// could not change the graph.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { INSTANCES } from '../../api/kinds/index.js';
import { GcGraph } from './graph.js';

const line = (metadata: Record<string, unknown>) =>
  JSON.stringify({ type: 'MODIFIED', object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata } });
const meta = (uid: string, extra: Record<string, unknown> = {}) =>
  ({ name: `n-${uid}`, namespace: 'ns', uid, resourceVersion: '7', finalizers: ['kova.dev/instance-protection'], ...extra });

test('unchangedPlain: only a known object without owners or deletion finalizers, still without them', () => {
  const g = new GcGraph();
  g.upsert(INSTANCES, { metadata: meta('plain') } as never);
  const owner = { apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', name: 'o', uid: 'plain' };
  g.upsert(INSTANCES, { metadata: meta('dependent', { ownerReferences: [owner] }) } as never);
  assert.equal(g.unchangedPlain(line(meta('plain'))), true, 'a status write of a plain object');
  assert.equal(g.unchangedPlain(line(meta('unknown'))), false, 'not in the graph yet: must be decoded');
  assert.equal(g.unchangedPlain(line(meta('plain', { ownerReferences: [owner] }))), false, 'gains an owner');
  assert.equal(g.unchangedPlain(line(meta('plain', { finalizers: ['orphan'] }))), false, 'gains an orphan finalizer');
  assert.equal(g.unchangedPlain(line(meta('plain', { finalizers: ['foregroundDeletion'] }))), false, 'gains a foreground finalizer');
  // Lost its owners: the line has none, but the graph holds it as a node that matters.
  assert.equal(g.unchangedPlain(line(meta('dependent'))), false, 'a node that matters is always decoded');
});
