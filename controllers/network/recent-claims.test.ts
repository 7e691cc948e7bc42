// RecentClaims: what one process's allocations steer around while its claims cache lags.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RecentClaims } from './recent-claims.js';

function clock(start = 1_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('RecentClaims', () => {
  it('an address being claimed is refused to other owners and granted again to its own', () => {
    const r = new RecentClaims();
    assert.equal(r.reserve('net', '10.0.0.2', 'a'), true);
    assert.equal(r.reserve('net', '10.0.0.2', 'b'), false);
    assert.equal(r.reserve('net', '10.0.0.2', 'a'), true);
    // Another network is another address space.
    assert.equal(r.reserve('other', '10.0.0.2', 'b'), true);
    assert.deepEqual(r.ownedBy('net', 'a'), ['10.0.0.2']);
    assert.deepEqual(r.ownedBy('net', 'b'), []);
    assert.deepEqual(r.ownedBy('other', 'b'), ['10.0.0.2']);
  });

  it('an address found taken is refused to everybody, and forget() frees it', () => {
    const r = new RecentClaims();
    r.reserve('net', '10.0.0.3', 'a');
    r.takenByOther('net', '10.0.0.3');
    assert.equal(r.reserve('net', '10.0.0.3', 'a'), false);
    assert.deepEqual(r.ownedBy('net', 'a'), []);
    r.forget('net', '10.0.0.3');
    assert.equal(r.reserve('net', '10.0.0.3', 'b'), true);
    assert.equal(r.size, 1);
  });

  it('entries expire after the TTL', () => {
    const c = clock();
    const r = new RecentClaims(1_000, 100, c.now);
    r.reserve('net', '10.0.0.4', 'a');
    c.advance(999);
    assert.equal(r.reserve('net', '10.0.0.4', 'b'), false);
    c.advance(1);
    assert.deepEqual(r.ownedBy('net', 'a'), []);
    assert.equal(r.reserve('net', '10.0.0.4', 'b'), true);
    assert.equal(r.size, 1);
  });

  it('holds at most maxEntries, dropping the oldest first; expired ones go as new ones come', () => {
    const c = clock();
    const r = new RecentClaims(10_000, 3, c.now);
    for (let i = 1; i <= 5; i++) {
      r.reserve('net', `10.0.0.${i}`, `o${i}`);
      c.advance(1);
    }
    assert.equal(r.size, 3);
    assert.equal(r.reserve('net', '10.0.0.1', 'x'), true, 'the oldest was dropped');
    assert.equal(r.reserve('net', '10.0.0.5', 'x'), false, 'the newest is kept');
    assert.deepEqual(r.ownedBy('net', 'o1'), []);
    c.advance(20_000);
    r.reserve('net', '10.0.0.9', 'y');
    assert.equal(r.size, 1, 'every expired entry is pruned');
  });
});
