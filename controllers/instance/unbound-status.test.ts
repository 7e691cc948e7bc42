import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveImage } from '../../api/image-visibility.js';
import { applyUnboundStatus, validatedCondition } from './unbound-status.js';
import type { References, UnboundInstance } from './unbound-status.js';

/** Images as "ns/name" (Private) or "ns/name:Public". */
const refs = (flavors: string[], images: string[]): References => {
  const objs = images.map((s) => {
    const [key, vis] = s.split(':');
    const [namespace, name] = key!.split('/');
    return { metadata: { namespace, name }, spec: { visibility: (vis ?? 'Private') as 'Private' | 'Public' } };
  });
  return {
    flavorExists: (n) => flavors.includes(n),
    image: (ns, n) => resolveImage(ns, n, { get: (a, b) => objs.find((o) => o.metadata.namespace === a && o.metadata.name === b), list: () => objs }),
  };
};

describe('validatedCondition', () => {
  it('is True when flavor and image exist, or resources replace the flavor', () => {
    const c = validatedCondition('p', { flavor: 'm1', image: 'tiny' }, refs(['m1'], ['p/tiny']), 2);
    assert.deepEqual(c, { type: 'Validated', status: 'True', reason: 'Valid', message: 'flavor and image exist', observedGeneration: 2 });
    assert.equal(validatedCondition('p', { resources: { vcpus: 1, memory: '1Gi', disk: '1Gi' }, image: 'tiny' }, refs([], ['p/tiny'])).status, 'True');
  });
  it('names what is missing, flavor first', () => {
    const c = validatedCondition('p', { flavor: 'm1', image: 'tiny' }, refs([], []));
    assert.equal(c.status, 'False');
    assert.equal(c.reason, 'FlavorNotFound');
    assert.equal(c.message, 'flavor "m1" not found; image "tiny" not found in namespace p, and no Public image or image Shared with p has that name');
    assert.equal(validatedCondition('p', { flavor: 'm1', image: 'tiny' }, refs(['m1'], [])).reason, 'ImageNotFound');
  });
  it('follows image visibility: another project\'s Private image is not found, a Public one is usable, two Public ones are ambiguous', () => {
    assert.equal(validatedCondition('p', { flavor: 'm1', image: 'tiny' }, refs(['m1'], ['q/tiny'])).reason, 'ImageNotFound');
    assert.equal(validatedCondition('p', { flavor: 'm1', image: 'tiny' }, refs(['m1'], ['q/tiny:Public'])).status, 'True');
    const c = validatedCondition('p', { flavor: 'm1', image: 'tiny' }, refs(['m1'], ['q/tiny:Public', 'r/tiny:Public']));
    assert.deepEqual([c.status, c.reason], ['False', 'ImageAmbiguous']);
    assert.match(c.message!, /^image "tiny" is ambiguous: Public images of that name exist in namespaces q, r;/);
  });
});

describe('applyUnboundStatus', () => {
  const now = new Date('2026-01-01T00:00:00Z');
  const ok = { type: 'Validated', status: 'True' as const, reason: 'Valid', message: 'flavor and image exist', observedGeneration: 1 };
  const bad = { type: 'Validated', status: 'False' as const, reason: 'FlavorNotFound', message: 'flavor "m1" not found', observedGeneration: 1 };
  it('initializes phase and observedGeneration; a valid instance gets no condition', () => {
    const inst: UnboundInstance = { metadata: { generation: 1 } };
    assert.equal(applyUnboundStatus(inst, ok, now), true);
    assert.deepEqual(inst.status, { phase: 'Pending', observedGeneration: 1 });
    assert.equal(applyUnboundStatus(inst, ok, now), false, 'idempotent');
    const fresh: UnboundInstance = { metadata: { generation: 1 }, status: { phase: 'Pending' } };
    assert.equal(applyUnboundStatus(fresh, ok, now), false, 'phase set by the API server: nothing to write');
  });
  it('reports a problem, then keeps the condition current', () => {
    const inst: UnboundInstance = { metadata: { generation: 1 }, status: { phase: 'Pending' } };
    assert.equal(applyUnboundStatus(inst, bad, now), true);
    assert.deepEqual(inst.status, { phase: 'Pending', observedGeneration: 1, conditions: [{ ...bad, lastTransitionTime: '2026-01-01T00:00:00Z' }] });
    assert.equal(applyUnboundStatus(inst, bad, now), false, 'idempotent');
    assert.equal(applyUnboundStatus(inst, ok, now), true, 'fixed: flips to True');
    assert.equal(inst.status?.conditions?.[0].status, 'True');
  });
  it('never overwrites a phase another writer set, but follows the generation', () => {
    const inst: UnboundInstance = { metadata: { generation: 3 }, status: { phase: 'Failed', observedGeneration: 2, conditions: [{ ...ok, lastTransitionTime: 'x' }] } };
    assert.equal(applyUnboundStatus(inst, { ...ok, observedGeneration: 3 }, now), true);
    assert.equal(inst.status?.phase, 'Failed');
    assert.equal(inst.status?.observedGeneration, 3);
  });
  it('leaves bound and deleted instances alone', () => {
    assert.equal(applyUnboundStatus({ metadata: { generation: 1 }, status: { hostName: 'h' } }, ok, now), false);
    assert.equal(applyUnboundStatus({ metadata: { generation: 1, deletionTimestamp: '2026-01-01T00:00:00Z' } }, ok, now), false);
  });
});
