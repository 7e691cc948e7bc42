import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { findCondition, hasCondition, removeCondition, setCondition } from './conditions.js';

describe('conditions', () => {
  const t0 = new Date('2026-01-01T00:00:00Z');
  const t1 = new Date('2026-01-01T00:05:00Z');
  it('keeps lastTransitionTime while the status stays, moves it when it changes', () => {
    let c = setCondition(undefined, { type: 'Ready', status: 'True', reason: 'A' }, t0);
    c = setCondition(c, { type: 'Ready', status: 'True', reason: 'B', message: 'm' }, t1);
    assert.deepEqual(c, [{ type: 'Ready', status: 'True', reason: 'B', message: 'm', lastTransitionTime: '2026-01-01T00:00:00Z' }]);
    c = setCondition(c, { type: 'Ready', status: 'Unknown', reason: 'C' }, t1);
    assert.equal(findCondition(c, 'Ready')?.lastTransitionTime, '2026-01-01T00:05:00Z');
    assert.ok(hasCondition(c, { type: 'Ready', status: 'Unknown', reason: 'C' }));
    assert.ok(!hasCondition(c, { type: 'Ready', status: 'Unknown', reason: 'D' }));
  });
  it('appends new types and removes by type', () => {
    const c = setCondition([{ type: 'A', status: 'True' }], { type: 'B', status: 'False' }, t0);
    assert.deepEqual(c.map((x) => x.type), ['A', 'B']);
    assert.deepEqual(removeCondition(c, 'A').map((x) => x.type), ['B']);
  });
});
