import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KObject } from '../api/types.js';
import { encode, withRV, writtenObjectJson } from './codec.js';

test('encode stores the object without its resourceVersion, as JSON.stringify would', () => {
  const objs: KObject[] = [
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a', namespace: 'd', resourceVersion: '7', labels: { x: 'y' } }, data: { k: 'v"\u2028' } },
    { apiVersion: 'v1', kind: 'X', metadata: {} } as KObject,
    { kind: 'X', spec: { a: undefined, b: [undefined, 1] }, metadata: { name: 'm' } } as unknown as KObject,
    { apiVersion: 'v1', kind: 'X' } as KObject,
    { metadata: { resourceVersion: '3' }, kind: 'X', skip: undefined } as unknown as KObject,
  ];
  for (const o of objs) {
    const { resourceVersion: _rv, ...metadata } = o.metadata ?? {};
    assert.equal(encode(o).toString(), JSON.stringify({ ...o, metadata }));
  }
});

test('the answer to a write is the stored text with the resourceVersion spliced in', () => {
  const objs: KObject[] = [
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a', namespace: 'd', labels: { '"metadata":{': 'y' } }, data: { metadata: '{"metadata":{' } },
    { spec: { metadata: { name: 'inner' } }, apiVersion: 'v1', kind: 'X', metadata: { name: 'b', resourceVersion: '4' } } as unknown as KObject,
  ];
  for (const o of objs) {
    encode(o);
    const out = withRV(o, '12345');
    const json = writtenObjectJson(out);
    assert.ok(json);
    assert.deepEqual(JSON.parse(json), JSON.parse(JSON.stringify(out)));
    assert.equal(o.metadata.resourceVersion === '12345', false, 'the caller\'s object is left alone');
  }
  // Metadata with no members has nowhere to splice: the answer is serialized the usual way.
  const empty = { apiVersion: 'v1', kind: 'X', metadata: {} } as KObject;
  encode(empty);
  assert.equal(writtenObjectJson(withRV(empty, '1')), undefined);
  // Objects that were not written this way have no stored text.
  assert.equal(writtenObjectJson({ metadata: { name: 'x' } }), undefined);
});
