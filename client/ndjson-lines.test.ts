import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LineSplitter, isBlank, startsWith, stringAfter } from './ndjson-lines.js';

const split = (s: LineSplitter, chunk: string) => [...s.push(Buffer.from(chunk))].map((b) => b.toString());

test('LineSplitter: lines inside one chunk, across chunks, and a held tail', () => {
  const s = new LineSplitter();
  assert.deepEqual(split(s, 'a\nbb\nc'), ['a', 'bb']);
  assert.deepEqual(split(s, 'cc'), [], 'no newline yet: nothing complete');
  assert.deepEqual(split(s, 'c\n\nd'), ['cccc', '']);
  assert.deepEqual(split(s, '\n'), ['d']);
  // Every byte boundary of a multi-byte character still reassembles the line.
  const text = '{"name":"ünï"}\n';
  const bytes = Buffer.from(text);
  for (let cut = 1; cut < bytes.length; cut++) {
    const t = new LineSplitter();
    const out = [...t.push(bytes.subarray(0, cut)), ...t.push(bytes.subarray(cut))].map((b) => b.toString());
    assert.deepEqual(out, ['{"name":"ünï"}'], `cut at ${cut}`);
  }
});

test('LineSplitter: a line past the bound is an error, not unbounded growth', () => {
  const s = new LineSplitter(8);
  assert.deepEqual(split(s, '1234'), []);
  assert.throws(() => split(s, '56789'), /longer than 8 bytes/);
  assert.deepEqual(split(new LineSplitter(8), '123456789012\n'), ['123456789012'], 'a long line within one chunk costs no buffering');
});

test('byte helpers: prefix, string after a key, blank', () => {
  const line = Buffer.from('{"type":"MODIFIED","object":{"metadata":{"uid":"u-1","resourceVersion":"42"}}}');
  assert.equal(startsWith(line, Buffer.from('{"type":"MODIFIED",')), true);
  assert.equal(startsWith(line, Buffer.from('{"type":"ADDED",')), false);
  assert.equal(startsWith(Buffer.from('{"ty'), Buffer.from('{"type"')), false);
  assert.equal(stringAfter(line, Buffer.from('"uid":"')), 'u-1');
  assert.equal(stringAfter(line, Buffer.from('"resourceVersion":"')), '42');
  assert.equal(stringAfter(line, Buffer.from('"name":"')), undefined);
  assert.equal(isBlank(Buffer.from(' \r\t')), true);
  assert.equal(isBlank(Buffer.from(' x')), false);
});
