// HPACK (RFC 7541) as a gRPC client needs it: a complete decoder for what the server sends
// (static and dynamic table, Huffman strings, table size updates), and an encoder that only
// writes literals without indexing, so the server's decoding state never depends on ours.
import { HUFFMAN_BITS, HUFFMAN_CODES, STATIC_TABLE } from './hpack-tables.js';

export class HpackError extends Error {}

/** The decoder's table limit we advertise (SETTINGS_HEADER_TABLE_SIZE default). */
export const TABLE_SIZE = 4096;

// Huffman decoding trie: node n's children are TRIE[2n] (bit 0) and TRIE[2n+1] (bit 1); 0 means
// none (the root is never a child), a negative value -1-s is a leaf for symbol s.
const TRIE = ((): Int32Array => {
  const t: number[] = [0, 0];
  for (let sym = 0; sym < HUFFMAN_CODES.length; sym++) {
    const code = HUFFMAN_CODES[sym]!;
    const bits = HUFFMAN_BITS[sym]!;
    let node = 0;
    for (let b = bits - 1; b >= 0; b--) {
      const slot = 2 * node + ((code >>> b) & 1);
      if (b === 0) {
        t[slot] = -1 - sym;
      } else {
        if (!t[slot]) {
          t[slot] = t.length / 2;
          t.push(0, 0);
        }
        node = t[slot]!;
      }
    }
  }
  return Int32Array.from(t);
})();

function huffmanDecode(src: Buffer, start: number, end: number): Buffer {
  const out = Buffer.allocUnsafe(Math.ceil(((end - start) * 8) / 5));
  let n = 0;
  let node = 0;
  let pad = 0; // bits since the last symbol, all of them ones so far?
  let ones = true;
  for (let i = start; i < end; i++) {
    const byte = src[i]!;
    for (let b = 7; b >= 0; b--) {
      const bit = (byte >>> b) & 1;
      const next = TRIE[2 * node + bit]!;
      pad++;
      ones &&= bit === 1;
      if (next < 0) {
        const sym = -1 - next;
        if (sym === 256) throw new HpackError('Huffman string contains EOS');
        out[n++] = sym;
        node = 0;
        pad = 0;
        ones = true;
      } else if (next === 0) {
        throw new HpackError('invalid Huffman code');
      } else {
        node = next;
      }
    }
  }
  // Padding: the most significant bits of EOS (all ones), shorter than a byte.
  if (pad > 7 || !ones) throw new HpackError('invalid Huffman padding');
  return out.subarray(0, n);
}

/** Reads HPACK integers and strings from one header block. */
class BlockReader {
  pos = 0;
  constructor(private readonly buf: Buffer) {}

  more(): boolean {
    return this.pos < this.buf.length;
  }

  peek(): number {
    return this.buf[this.pos]!;
  }

  /** An integer with an N-bit prefix in the current byte. */
  int(prefixBits: number): number {
    const max = (1 << prefixBits) - 1;
    let v = this.buf[this.pos++]! & max;
    if (v < max) return v;
    let shift = 0;
    for (;;) {
      if (this.pos >= this.buf.length) throw new HpackError('truncated integer');
      const b = this.buf[this.pos++]!;
      v += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if (!(b & 0x80)) return v;
      if (shift > 28) throw new HpackError('integer too large');
    }
  }

  string(): string {
    if (this.pos >= this.buf.length) throw new HpackError('truncated string');
    const huffman = (this.buf[this.pos]! & 0x80) !== 0;
    const len = this.int(7);
    const start = this.pos;
    const end = start + len;
    if (end > this.buf.length) throw new HpackError('truncated string');
    this.pos = end;
    return (huffman ? huffmanDecode(this.buf, start, end) : this.buf.subarray(start, end)).toString('latin1');
  }
}

/** One connection's decoding context: the dynamic table persists from block to block. */
export class HpackDecoder {
  /** Newest first. */
  private readonly table: Array<readonly [string, string]> = [];
  private size = 0;
  private max = TABLE_SIZE;

  decode(block: Buffer): Array<readonly [string, string]> {
    const r = new BlockReader(block);
    const out: Array<readonly [string, string]> = [];
    while (r.more()) {
      const b = r.peek();
      if (b & 0x80) {
        out.push(this.entry(r.int(7)));
      } else if (b & 0x40) {
        const field = this.literal(r, 6);
        this.add(field);
        out.push(field);
      } else if (b & 0x20) {
        const size = r.int(5);
        if (size > TABLE_SIZE) throw new HpackError(`table size update to ${size} exceeds ${TABLE_SIZE}`);
        this.max = size;
        this.evict(0);
      } else {
        out.push(this.literal(r, 4)); // without indexing, or never indexed
      }
    }
    return out;
  }

  private literal(r: BlockReader, prefixBits: number): readonly [string, string] {
    const index = r.int(prefixBits);
    const name = index === 0 ? r.string() : this.entry(index)[0];
    return [name, r.string()];
  }

  private entry(index: number): readonly [string, string] {
    if (index >= 1 && index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1]!;
    const e = this.table[index - STATIC_TABLE.length - 1];
    if (!e) throw new HpackError(`header index ${index} out of range`);
    return e;
  }

  private add(field: readonly [string, string]): void {
    const size = field[0].length + field[1].length + 32;
    this.evict(size);
    if (size > this.max) return; // larger than the table: it empties it and is not kept
    this.table.unshift(field);
    this.size += size;
  }

  /** Drops the oldest entries until `room` more octets fit. */
  private evict(room: number): void {
    while (this.table.length && this.size + room > this.max) {
      const [n, v] = this.table.pop()!;
      this.size -= n.length + v.length + 32;
    }
  }
}

function writeInt(out: number[], first: number, prefixBits: number, v: number): void {
  const max = (1 << prefixBits) - 1;
  if (v < max) {
    out.push(first | v);
    return;
  }
  out.push(first | max);
  v -= max;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}

function writeString(out: number[], s: string): void {
  const bytes = Buffer.from(s, 'latin1');
  writeInt(out, 0, 7, bytes.length);
  for (const b of bytes) out.push(b);
}

/**
 * A header block of literals without indexing. A name given as a number is a static table
 * index (e.g. 4 for `:path`).
 */
export function encodeHeaders(fields: ReadonlyArray<readonly [string | number, string]>): Buffer {
  const out: number[] = [];
  for (const [name, value] of fields) {
    if (typeof name === 'number') {
      writeInt(out, 0, 4, name);
    } else {
      out.push(0);
      writeString(out, name);
    }
    writeString(out, value);
  }
  return Buffer.from(out);
}
