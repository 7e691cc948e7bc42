// gRPC frame splitting is linear: a 4 MiB message fed in 16 KiB chunks is copied once, not once
// per chunk (joining everything buffered on each chunk copied ~512 MiB and took 3.6 s).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FrameDecoder, frame } from './frames.js';

function chunks(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

describe('FrameDecoder', () => {
  it('a 4 MiB message in 16 KiB chunks is copied once (linear), and arrives intact', () => {
    const msg = Buffer.alloc(4 << 20);
    for (let i = 0; i < msg.length; i++) msg[i] = (i * 31) & 0xff;
    const d = new FrameDecoder();
    const got: Buffer[] = [];
    for (const c of chunks(frame(msg), 16 << 10)) {
      d.push(c);
      for (let m = d.next(); m; m = d.next()) got.push(m);
    }
    assert.equal(got.length, 1);
    assert.ok(got[0]!.equals(msg));
    // A decoder that re-joins what is buffered on every chunk copies ~n²/(2·16 KiB) = 512 MiB here.
    assert.ok(d.copiedBytes <= msg.length + 5, `copied ${d.copiedBytes} bytes for a ${msg.length}-byte message`);
  });

  it('many small messages split at every offset, headers across chunks, empty messages', () => {
    const msgs = Array.from({ length: 50 }, (_, i) => Buffer.alloc(i % 7 === 0 ? 0 : i * 3, i));
    const stream = Buffer.concat(msgs.map(frame));
    for (const size of [1, 2, 3, 5, 6, 64, stream.length]) {
      const d = new FrameDecoder();
      const got: Buffer[] = [];
      for (const c of chunks(stream, size)) {
        d.push(c);
        for (let m = d.next(); m; m = d.next()) got.push(m);
      }
      assert.deepEqual(got.map((m) => m.toString('hex')), msgs.map((m) => m.toString('hex')), `chunks of ${size}`);
      if (size === stream.length) assert.equal(d.copiedBytes, 0, 'messages inside one chunk are slices, not copies');
      assert.ok(d.copiedBytes <= stream.length + 5 * msgs.length);
    }
  });

  it('a compressed message is refused', () => {
    const d = new FrameDecoder();
    d.push(Buffer.from([1, 0, 0, 0, 1, 9]));
    assert.throws(() => d.next(), /compressed/);
  });
});
