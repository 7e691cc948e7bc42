import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyMergePatch, createMergePatch } from './merge-patch.js';

// RFC 7386 appendix A examples.
const rfcCases: Array<[unknown, unknown, unknown]> = [
  [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
  [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
  [{ a: 'b' }, { a: null }, {}],
  [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
  [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
  [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
  [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
  [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
  [['a', 'b'], ['c', 'd'], ['c', 'd']],
  [{ a: 'b' }, ['c'], ['c']],
  [{ a: 'foo' }, null, null],
  [{ a: 'foo' }, 'bar', 'bar'],
  [{ e: null }, { a: 1 }, { e: null, a: 1 }],
  [[1, 2], { a: 'b', c: null }, { a: 'b' }],
  [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
];

test('applyMergePatch: RFC 7386 appendix A', () => {
  for (const [target, patch, want] of rfcCases) {
    assert.deepEqual(applyMergePatch(target, patch), want, JSON.stringify({ target, patch }));
  }
});

test('applyMergePatch does not modify its arguments', () => {
  const target = { spec: { a: 1, list: [1, 2] }, keep: { x: 1 } };
  const patch = { spec: { a: null, b: { c: 1 } } };
  const tCopy = structuredClone(target);
  const pCopy = structuredClone(patch);
  const out = applyMergePatch(target, patch) as { spec: Record<string, unknown>; keep: object };
  assert.deepEqual(target, tCopy);
  assert.deepEqual(patch, pCopy);
  assert.deepEqual(out, { spec: { list: [1, 2], b: { c: 1 } }, keep: { x: 1 } });
  assert.notEqual(out.keep, target.keep, 'result shares no structure with the target');
});

test('applyMergePatch: kubectl label style patch', () => {
  const obj = { metadata: { name: 'web', labels: { a: '1', b: '2' } }, spec: { flavor: 'small' } };
  assert.deepEqual(applyMergePatch(obj, { metadata: { labels: { a: null, c: '3' } } }), {
    metadata: { name: 'web', labels: { b: '2', c: '3' } },
    spec: { flavor: 'small' },
  });
});

test('createMergePatch round-trips', () => {
  const cases: Array<[unknown, unknown]> = [
    [{ a: 1, b: { c: 2, d: [1, 2] } }, { a: 1, b: { c: 3, d: [1, 2] } }],
    [{ a: 1, b: 2 }, { a: 1 }],
    [{ a: { b: 1 } }, { a: 'x' }],
    [{ a: [1, 2] }, { a: [1, 2, 3] }],
    [{}, { x: { y: { z: true } } }],
    [{ a: 1 }, { a: 1 }],
  ];
  for (const [o, m] of cases) {
    const p = createMergePatch(o, m);
    assert.deepEqual(applyMergePatch(o, p), m, JSON.stringify({ o, m, p }));
  }
  assert.deepEqual(createMergePatch({ a: 1, b: { c: 2 } }, { a: 1, b: { c: 2 } }), {});
  assert.deepEqual(createMergePatch({ a: 1, b: 2 }, { b: 3 }), { a: null, b: 3 });
  assert.deepEqual(createMergePatch({ s: { x: 1, y: 2 } }, { s: { x: 1 } }), { s: { y: null } });
});

test('"__proto__" is an ordinary member, never a prototype change', () => {
  const patch = JSON.parse('{"spec":{"__proto__":{"polluted":true}}}');
  const out = applyMergePatch({ spec: { a: 1 } }, patch) as { spec: Record<string, unknown> };
  assert.equal(Object.getPrototypeOf(out.spec), Object.prototype);
  assert.deepEqual(Object.keys(out.spec), ['a', '__proto__']);
  assert.equal(JSON.stringify(out), '{"spec":{"a":1,"__proto__":{"polluted":true}}}');
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});
