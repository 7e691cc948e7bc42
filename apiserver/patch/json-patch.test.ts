import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyJsonPatch, formatJsonPointer, parseJsonPointer, PatchError } from './json-patch.js';

const doc = () => ({ metadata: { name: 'web', labels: { 'kova.dev/zone': 'a', 'x~y': '1' } }, spec: { disks: [{ n: 'a' }, { n: 'b' }], flavor: 'small' } });

function expectPatchError(fn: () => unknown, kind: PatchError['kind'], re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof PatchError, `expected PatchError, got ${String(e)}`);
    assert.equal(e.kind, kind, e.message);
    assert.match(e.message, re);
    return true;
  });
}

test('JSON pointers: escaping ~0 and ~1', () => {
  assert.deepEqual(parseJsonPointer(''), []);
  assert.deepEqual(parseJsonPointer('/metadata/labels/kova.dev~1zone'), ['metadata', 'labels', 'kova.dev/zone']);
  assert.deepEqual(parseJsonPointer('/a~01'), ['a~1']);
  assert.equal(formatJsonPointer(['labels', 'kova.dev/zone', 'x~y']), '/labels/kova.dev~1zone/x~0y');
  expectPatchError(() => parseJsonPointer('a/b'), 'Malformed', /must be empty or start with/);
  expectPatchError(() => parseJsonPointer('/a~2'), 'Malformed', /~/);
});

test('add / remove / replace', () => {
  const out = applyJsonPatch(doc(), [
    { op: 'add', path: '/metadata/labels/kova.dev~1tier', value: 'web' },
    { op: 'remove', path: '/metadata/labels/x~0y' },
    { op: 'replace', path: '/spec/flavor', value: 'large' },
    { op: 'add', path: '/spec/disks/-', value: { n: 'c' } },
    { op: 'add', path: '/spec/disks/0', value: { n: 'z' } },
    { op: 'remove', path: '/spec/disks/1' },
  ]) as ReturnType<typeof doc>;
  assert.deepEqual(out.metadata.labels, { 'kova.dev/zone': 'a', 'kova.dev/tier': 'web' });
  assert.equal(out.spec.flavor, 'large');
  assert.deepEqual(out.spec.disks, [{ n: 'z' }, { n: 'b' }, { n: 'c' }]);
});

test('add replaces an existing member and the root', () => {
  assert.deepEqual(applyJsonPatch({ a: 1 }, [{ op: 'add', path: '/a', value: 2 }]), { a: 2 });
  assert.deepEqual(applyJsonPatch({ a: 1 }, [{ op: 'add', path: '', value: [1] }]), [1]);
  assert.deepEqual(applyJsonPatch({ a: 1 }, [{ op: 'replace', path: '', value: { b: 2 } }]), { b: 2 });
});

test('move and copy', () => {
  const out = applyJsonPatch(doc(), [
    { op: 'copy', from: '/spec/flavor', path: '/spec/oldFlavor' },
    { op: 'move', from: '/spec/disks/0', path: '/spec/disks/-' },
    { op: 'move', from: '/metadata/labels', path: '/metadata/annotations' },
  ]) as Record<string, any>;
  assert.equal(out.spec.oldFlavor, 'small');
  assert.deepEqual(out.spec.disks, [{ n: 'b' }, { n: 'a' }]);
  assert.equal(out.metadata.labels, undefined);
  assert.deepEqual(out.metadata.annotations, { 'kova.dev/zone': 'a', 'x~y': '1' });
  expectPatchError(() => applyJsonPatch(doc(), [{ op: 'move', from: '/spec', path: '/spec/inner' }]), 'Unprocessable', /own child/);
});

test('copy makes an independent value', () => {
  const out = applyJsonPatch({ a: { x: 1 } }, [
    { op: 'copy', from: '/a', path: '/b' },
    { op: 'replace', path: '/b/x', value: 2 },
  ]);
  assert.deepEqual(out, { a: { x: 1 }, b: { x: 2 } });
});

test('test op: deep equality, failure is 422', () => {
  assert.doesNotThrow(() => applyJsonPatch(doc(), [{ op: 'test', path: '/spec/disks', value: [{ n: 'a' }, { n: 'b' }] }]));
  assert.doesNotThrow(() => applyJsonPatch({ a: { x: 1, y: 2 } }, [{ op: 'test', path: '/a', value: { y: 2, x: 1 } }]));
  expectPatchError(() => applyJsonPatch(doc(), [{ op: 'test', path: '/spec/flavor', value: 'large' }]), 'Unprocessable', /operation 0 \(test \/spec\/flavor\).*testing value \/spec\/flavor failed/);
  expectPatchError(() => applyJsonPatch(doc(), [{ op: 'test', path: '/spec/nope', value: 1 }]), 'Unprocessable', /\/spec\/nope/);
});

test('missing paths are Unprocessable and name the op and path', () => {
  expectPatchError(() => applyJsonPatch(doc(), [{ op: 'replace', path: '/spec/nope', value: 1 }]), 'Unprocessable', /operation 0 \(replace \/spec\/nope\).*missing key/);
  expectPatchError(() => applyJsonPatch(doc(), [{ op: 'remove', path: '/spec/nope' }]), 'Unprocessable', /remove \/spec\/nope.*nonexistent key: nope/);
  expectPatchError(() => applyJsonPatch(doc(), [{ op: 'add', path: '/status/phase', value: 'x' }]), 'Unprocessable', /add \/status\/phase.*missing path/);
  expectPatchError(() => applyJsonPatch(doc(), [{ op: 'add', path: '/spec/disks/5', value: 'x' }]), 'Unprocessable', /invalid index/);
  expectPatchError(() => applyJsonPatch(doc(), [{ op: 'remove', path: '/spec/disks/-' }]), 'Unprocessable', /invalid index/);
  expectPatchError(() => applyJsonPatch(doc(), [{ op: 'add', path: '/spec/disks/01', value: 'x' }]), 'Unprocessable', /invalid index/);
  expectPatchError(() => applyJsonPatch(doc(), [{ op: 'copy', from: '/nope', path: '/x' }]), 'Unprocessable', /copy .*missing from path/);
  expectPatchError(() => applyJsonPatch(doc(), [{ op: 'move', from: '/nope', path: '/x' }]), 'Unprocessable', /move .*missing from path/);
});

test('a failing op leaves the input untouched (atomic)', () => {
  const d = doc();
  const before = structuredClone(d);
  assert.throws(() => applyJsonPatch(d, [{ op: 'replace', path: '/spec/flavor', value: 'x' }, { op: 'test', path: '/spec/flavor', value: 'y' }]));
  assert.deepEqual(d, before);
});

test('malformed patches are 400', () => {
  expectPatchError(() => applyJsonPatch(doc(), { op: 'add' }), 'Malformed', /cannot unmarshal object/);
  expectPatchError(() => applyJsonPatch(doc(), [{ path: '/a' }]), 'Malformed', /missing "op"/);
  expectPatchError(() => applyJsonPatch(doc(), [{ op: 'frobnicate', path: '/a' }]), 'Malformed', /Unexpected kind: frobnicate/);
  expectPatchError(() => applyJsonPatch(doc(), [{ op: 'add', path: '/a' }]), 'Malformed', /missing "value"/);
  expectPatchError(() => applyJsonPatch(doc(), [{ op: 'move', path: '/a' }]), 'Malformed', /"from"/);
  expectPatchError(() => applyJsonPatch(doc(), [{ op: 'remove' }]), 'Malformed', /"path"/);
  expectPatchError(() => applyJsonPatch(doc(), ['x']), 'Malformed', /must be a JSON object/);
  expectPatchError(() => applyJsonPatch(doc(), [{ op: 'remove', path: 'spec' }]), 'Malformed', /JSON pointer/);
});

test('operation limit is 413', () => {
  const ops = Array.from({ length: 3 }, () => ({ op: 'test', path: '/spec/flavor', value: 'small' }));
  const e = (() => {
    try {
      applyJsonPatch(doc(), ops, { maxOperations: 2 });
    } catch (err) {
      return err as PatchError;
    }
    return undefined;
  })();
  assert.equal(e?.kind, 'TooLarge');
  assert.equal(e?.code, 413);
  assert.match(e!.message, /maximum operations in a JSON patch is 2, got 3/);
  assert.equal(new PatchError('Malformed', 'x').code, 400);
  assert.equal(new PatchError('Unprocessable', 'x').code, 422);
});

test('"__proto__" paths add members, not prototypes', () => {
  const out = applyJsonPatch({ spec: {} }, [{ op: 'add', path: '/spec/__proto__', value: { x: 1 } }]) as { spec: object };
  assert.equal(JSON.stringify(out), '{"spec":{"__proto__":{"x":1}}}');
  assert.equal(Object.getPrototypeOf(out.spec), Object.prototype);
});
