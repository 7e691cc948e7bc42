import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { staleReason, splitInstanceKey } from './allocations.js';

describe('allocations', () => {
  const a = { uid: 'u1', instance: 'ns/web', vcpus: 1, memory: '512Mi', disk: '1Gi' };
  it('holds while the same instance is bound to the host', () => {
    assert.equal(staleReason(a, 'h1', { uid: 'u1', hostName: 'h1' }), undefined);
  });
  it('is stale when the instance is gone, recreated, unbound or elsewhere', () => {
    assert.match(staleReason(a, 'h1', undefined)!, /no longer exists/);
    assert.match(staleReason(a, 'h1', { uid: 'u2', hostName: 'h1' })!, /recreated/);
    assert.match(staleReason(a, 'h1', { uid: 'u1' })!, /no longer bound/);
    assert.match(staleReason(a, 'h1', { uid: 'u1', hostName: 'h2' })!, /bound to host h2/);
  });
  it('holds on the target while a Migration moves the instance there, and is stale there after it ends', () => {
    assert.equal(staleReason(a, 'h2', { uid: 'u1', hostName: 'h1', migrationTarget: 'h2' }), undefined);
    assert.equal(staleReason(a, 'h1', { uid: 'u1', hostName: 'h1', migrationTarget: 'h2' }), undefined);
    assert.match(staleReason(a, 'h2', { uid: 'u1', hostName: 'h1' })!, /bound to host h1/);
    assert.match(staleReason(a, 'h1', { uid: 'u1', hostName: 'h2' })!, /bound to host h2/);
    assert.match(staleReason(a, 'h3', { uid: 'u2', hostName: 'h1', migrationTarget: 'h3' })!, /recreated/);
  });
  it('splits instance keys', () => {
    assert.deepEqual(splitInstanceKey('ns/web'), { namespace: 'ns', name: 'web' });
    assert.equal(splitInstanceKey('web'), undefined);
    assert.equal(splitInstanceKey('ns/'), undefined);
  });
});
