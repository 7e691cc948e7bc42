import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KObject } from '../api/types.js';
import { OwnWrites } from './own-writes.js';

const obj = (name: string, rv: number): KObject => ({ apiVersion: 'v1', kind: 'Test', metadata: { namespace: 'ns', name, resourceVersion: String(rv) } });

test('OwnWrites prefers our write until the informer catches up, and knows its echo', () => {
  const w = new OwnWrites<KObject>();
  const mine = w.remember(obj('a', 7));
  assert.equal(w.newest(obj('a', 5), 'ns', 'a'), mine, 'our write is newer than the cache');
  assert.equal(w.newest(obj('a', 9), 'ns', 'a')?.metadata.resourceVersion, '9', 'a newer cache wins (a recreated object too)');
  assert.equal(w.newest(undefined, 'ns', 'a'), undefined, 'gone from the cache: gone');
  assert.equal(w.isOwnWrite(obj('a', 7)), false, 'and forgotten');

  w.remember(obj('b', 3));
  assert.equal(w.isOwnWrite(obj('b', 3)), true);
  assert.equal(w.isOwnWrite(obj('b', 4)), false);
  assert.equal(w.isOwnWrite(obj('c', 3)), false, 'another object');
  w.observed(obj('b', 2));
  assert.equal(w.isOwnWrite(obj('b', 3)), true, 'an older delivery keeps it');
  w.observed(obj('b', 3));
  assert.equal(w.isOwnWrite(obj('b', 3)), false, 'its own delivery ends it');
  w.remember(obj('b', 5));
  w.observed(obj('b', 1), true);
  assert.equal(w.isOwnWrite(obj('b', 5)), false, 'a delete ends it');
  w.remember(obj('d', 1));
  w.forget('ns', 'd');
  assert.equal(w.isOwnWrite(obj('d', 1)), false);
});
