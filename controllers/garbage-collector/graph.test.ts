// The graph's pre-decoding filter: a MODIFIED watch line is skipped only when decoding it
// could not change the graph.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { INSTANCES } from '../../api/kinds/index.js';
import { DELETED_UIDS_KEPT } from '../../client/deleted-uids.js';
import { GcGraph } from './graph.js';

const line = (metadata: Record<string, unknown>, type = 'MODIFIED') =>
  Buffer.from(JSON.stringify({ type, object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata } }));
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

test('addedPlain: a new object that cannot matter is recorded from its uid alone; one that may matter is decoded', () => {
  const g = new GcGraph();
  assert.equal(g.addedPlain(INSTANCES, line(meta('a'), 'ADDED')), true);
  assert.equal(g.has('a'), true, 'known: an owner reference to it finds it');
  assert.equal(g.nodes.has('a'), false);
  const owner = { apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', name: 'n-a', uid: 'a' };
  assert.equal(g.addedPlain(INSTANCES, line(meta('b', { ownerReferences: [owner] }), 'ADDED')), false, 'has an owner: decode it');
  assert.equal(g.has('b'), false);
  assert.equal(g.addedPlain(INSTANCES, line(meta('c', { finalizers: ['orphan'] }), 'ADDED')), false);
  // Decoding b (what the watcher does when addedPlain says false) makes it a node that matters.
  g.upsert(INSTANCES, { metadata: meta('b', { ownerReferences: [owner] }) } as never);
  assert.equal(g.nodes.has('b'), true);
});

test('wasDeleted: the uids of the latest deletions the watches reported, a bounded set', () => {
  const g = new GcGraph();
  g.upsert(INSTANCES, { metadata: meta('gone') } as never);
  assert.equal(g.wasDeleted('gone'), false, 'there');
  g.remove('gone');
  assert.equal(g.has('gone'), false);
  assert.equal(g.wasDeleted('gone'), true);
  assert.equal(g.wasDeleted('never-seen'), false, 'unknown is not deleted: that one is read live');
  // Relisted without it: deleted meanwhile, as a DELETED event would say.
  g.upsert(INSTANCES, { metadata: meta('relisted') } as never);
  g.replace(INSTANCES, []);
  assert.equal(g.wasDeleted('relisted'), true);
  // Seen again (a stale read): believed there, the safe side.
  g.upsert(INSTANCES, { metadata: meta('gone') } as never);
  assert.equal(g.wasDeleted('gone'), false);
  // The oldest is forgotten first.
  g.remove('first');
  for (let i = 0; i < DELETED_UIDS_KEPT; i++) g.remove(`u-${i}`);
  assert.equal(g.wasDeleted('first'), false, 'beyond the bound: read live again');
  assert.equal(g.wasDeleted(`u-${DELETED_UIDS_KEPT - 1}`), true);
});
