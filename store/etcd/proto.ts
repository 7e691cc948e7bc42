// The few etcd protobuf messages kova sends and reads (etcd's api/etcdserverpb/rpc.proto and
// mvccpb/kv.proto), encoded and decoded by hand in the proto3 wire format. A generic protobuf
// runtime costs more CPU per call than the rest of an API create; these are a loop over bytes.
// store/etcd/proto.test.ts checks every message against protobufjs on etcd's own .proto files.

export enum CompareTarget { Version = 0, Create = 1, Mod = 2, Value = 3, Lease = 4 }
export enum CompareResult { Equal = 0, Greater = 1, Less = 2, NotEqual = 3 }

/** int64/uint64 fields are decimal strings (exact beyond 2^53: cluster and member IDs are random uint64s). */
export interface KeyValue { key: Buffer; value: Buffer; create_revision: string; mod_revision: string; version: string; lease: string }
export interface ResponseHeader { cluster_id: string; member_id: string; revision: string; raft_term: string }
export interface RangeRequest { key: Buffer; range_end?: Buffer; limit?: number; revision?: number; keys_only?: boolean; count_only?: boolean }
export interface RangeResponse { header: ResponseHeader; kvs: KeyValue[]; more: boolean; count: string }
export interface PutRequest { key: Buffer; value: Buffer; prev_kv?: boolean }
export interface PutResponse { header: ResponseHeader; prev_kv?: KeyValue }
export interface DeleteRangeRequest { key: Buffer; range_end?: Buffer; prev_kv?: boolean }
export interface DeleteRangeResponse { header: ResponseHeader; deleted: string; prev_kvs: KeyValue[] }
export type RequestOp = { request_range: RangeRequest } | { request_put: PutRequest } | { request_delete_range: DeleteRangeRequest };
export interface ResponseOp { response_range?: RangeResponse; response_put?: PutResponse; response_delete_range?: DeleteRangeResponse }
export interface Compare { key: Buffer; target: CompareTarget; result: CompareResult; version?: number; create_revision?: number; mod_revision?: number; value?: Buffer }
export interface TxnRequest { compare?: Compare[]; success?: RequestOp[]; failure?: RequestOp[] }
export interface TxnResponse { header: ResponseHeader; succeeded: boolean; responses: ResponseOp[] }
export interface CompactionRequest { revision: number; physical?: boolean }
export interface CompactionResponse { header: ResponseHeader }
export interface StatusResponse { header: ResponseHeader; version: string; db_size: string; leader: string; raft_index: string; raft_term: string; errors: string[] }

export interface WatchCreate { key: Buffer; range_end?: Buffer; start_revision?: number; prev_kv?: boolean }
export interface WatchEventKV { type: 'PUT' | 'DELETE'; kv: KeyValue; prev_kv?: KeyValue }
export interface WatchResponse {
  header: ResponseHeader;
  created: boolean;
  canceled: boolean;
  /** Set when the start revision was compacted: the oldest revision still available. */
  compact_revision: string;
  cancel_reason: string;
  events: WatchEventKV[];
}

// ---- encoding ----

/** A growable output buffer; nested messages are written in place (no sub-buffers). */
export class Writer {
  buf: Buffer;
  pos = 0;
  constructor(size = 256) {
    this.buf = Buffer.allocUnsafe(size);
  }
  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
  varint(n: number): void {
    if (n < 0) return this.negative(n);
    this.room(10);
    while (n > 127) {
      this.buf[this.pos++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    this.buf[this.pos++] = n;
  }
  /** A negative int64 is its 64-bit two's complement: always 10 bytes. */
  private negative(n: number): void {
    let v = BigInt.asUintN(64, BigInt(n));
    this.room(10);
    while (v > 127n) {
      this.buf[this.pos++] = Number(v & 127n) | 0x80;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
  }
  /** A varint field; proto3 leaves zero values out. */
  uint(field: number, n: number | undefined): void {
    if (!n) return;
    this.varint(field << 3);
    this.varint(n);
  }
  bool(field: number, b: boolean | undefined): void {
    if (b) this.uint(field, 1);
  }
  bytes(field: number, b: Buffer | undefined, always = false): void {
    if (!b || (b.length === 0 && !always)) return;
    this.varint((field << 3) | 2);
    this.varint(b.length);
    this.room(b.length);
    b.copy(this.buf, this.pos);
    this.pos += b.length;
  }
  /** Starts a nested message: writes its tag and reserves one byte for its length. */
  begin(field: number): number {
    this.varint((field << 3) | 2);
    this.room(1);
    return this.pos++;
  }
  /** Ends the message begun at `mark`, moving it right if its length needs more than one byte. */
  end(mark: number): void {
    const len = this.pos - mark - 1;
    if (len < 128) {
      this.buf[mark] = len;
      return;
    }
    let extra = 0;
    for (let n = len >>> 7; n > 0; n >>>= 7) extra++;
    this.room(extra);
    this.buf.copyWithin(mark + 1 + extra, mark + 1, this.pos);
    this.pos += extra;
    let n = len;
    let at = mark;
    while (n > 127) {
      this.buf[at++] = (n & 127) | 0x80;
      n >>>= 7;
    }
    this.buf[at] = n;
  }
  done(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

export function writeRange(w: Writer, r: RangeRequest): void {
  w.bytes(1, r.key);
  w.bytes(2, r.range_end);
  w.uint(3, r.limit);
  w.uint(4, r.revision);
  w.bool(8, r.keys_only);
  w.bool(9, r.count_only);
}

export function writePut(w: Writer, p: PutRequest): void {
  w.bytes(1, p.key);
  w.bytes(2, p.value);
  w.bool(4, p.prev_kv);
}

export function writeDeleteRange(w: Writer, d: DeleteRangeRequest): void {
  w.bytes(1, d.key);
  w.bytes(2, d.range_end);
  w.bool(3, d.prev_kv);
}

function writeOp(w: Writer, field: number, op: RequestOp): void {
  const m = w.begin(field);
  let inner: number;
  if ('request_range' in op) {
    inner = w.begin(1);
    writeRange(w, op.request_range);
  } else if ('request_put' in op) {
    inner = w.begin(2);
    writePut(w, op.request_put);
  } else {
    inner = w.begin(3);
    writeDeleteRange(w, op.request_delete_range);
  }
  w.end(inner);
  w.end(m);
}

export function writeCompare(w: Writer, c: Compare): void {
  w.uint(1, c.result);
  w.uint(2, c.target);
  w.bytes(3, c.key);
  // The target_union oneof: a set member is sent even when zero ("create_revision = 0").
  if (c.version !== undefined) (w.varint(4 << 3), w.varint(c.version));
  if (c.create_revision !== undefined) (w.varint(5 << 3), w.varint(c.create_revision));
  if (c.mod_revision !== undefined) (w.varint(6 << 3), w.varint(c.mod_revision));
  if (c.value !== undefined) w.bytes(7, c.value, true);
}

export function writeTxn(w: Writer, t: TxnRequest): void {
  if (t.compare) {
    for (const c of t.compare) {
      const m = w.begin(1);
      writeCompare(w, c);
      w.end(m);
    }
  }
  if (t.success) for (const op of t.success) writeOp(w, 2, op);
  if (t.failure) for (const op of t.failure) writeOp(w, 3, op);
}

export function writeCompaction(w: Writer, c: CompactionRequest): void {
  w.uint(1, c.revision);
  w.bool(2, c.physical);
}

/** A WatchRequest carrying a create_request. */
export function writeWatchCreate(w: Writer, c: WatchCreate): void {
  const m = w.begin(1);
  w.bytes(1, c.key);
  w.bytes(2, c.range_end);
  w.uint(3, c.start_revision);
  w.bool(6, c.prev_kv);
  w.end(m);
}

/** Encodes one message with `write` (for tests and one-off calls; the client reuses a Writer). */
export function encode<T>(write: (w: Writer, m: T) => void, m: T): Buffer {
  const w = new Writer();
  write(w, m);
  return w.done();
}

// ---- decoding ----

export class Reader {
  pos: number;
  constructor(readonly buf: Buffer, start = 0, readonly end = buf.length) {
    this.pos = start;
  }
  more(): boolean {
    return this.pos < this.end;
  }
  /** A varint as a JS number: exact for tags, lengths, enums and bools (never past 2^53). */
  varint(): number {
    let n = 0;
    let mul = 1;
    for (;;) {
      if (this.pos >= this.end) throw new Error('etcd: truncated varint');
      const b = this.buf[this.pos++]!;
      n += (b & 0x7f) * mul;
      if (b < 0x80) return n;
      mul *= 128;
    }
  }
  /** An int64 (signed) or uint64 field as an exact decimal string. */
  int64(signed = true): string {
    const start = this.pos;
    // Up to 7 bytes (49 bits) a double is exact: the common case (revisions, versions).
    let n = 0;
    let mul = 1;
    for (let i = 0; i < 7; i++) {
      if (this.pos >= this.end) throw new Error('etcd: truncated varint');
      const b = this.buf[this.pos++]!;
      n += (b & 0x7f) * mul;
      if (b < 0x80) return String(n);
      mul *= 128;
    }
    this.pos = start;
    let v = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (this.pos >= this.end || shift > 63n) throw new Error('etcd: malformed varint');
      const b = this.buf[this.pos++]!;
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) break;
    }
    return String(signed ? BigInt.asIntN(64, v) : BigInt.asUintN(64, v));
  }
  uint64(): string {
    return this.int64(false);
  }
  /** The bounds of a length-delimited field's payload; moves past it. */
  span(): number {
    const len = this.varint();
    const start = this.pos;
    this.pos += len;
    if (this.pos > this.end) throw new Error('etcd: truncated message');
    return start;
  }
  bytes(): Buffer {
    const s = this.span();
    return this.buf.subarray(s, this.pos);
  }
  sub(): Reader {
    const s = this.span();
    return new Reader(this.buf, s, this.pos);
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.span();
    else if (wire === 5) this.pos += 4;
    else throw new Error(`etcd: unsupported wire type ${wire}`);
    if (this.pos > this.end) throw new Error('etcd: truncated message');
  }
}

const EMPTY = Buffer.alloc(0);

function readHeader(r: Reader): ResponseHeader {
  const h: ResponseHeader = { cluster_id: '0', member_id: '0', revision: '0', raft_term: '0' };
  while (r.more()) {
    const tag = r.varint();
    if (tag === 3 << 3) h.revision = r.int64();
    else if (tag === 4 << 3) h.raft_term = r.uint64();
    else if (tag === 1 << 3) h.cluster_id = r.uint64();
    else if (tag === 2 << 3) h.member_id = r.uint64();
    else r.skip(tag & 7);
  }
  return h;
}

function readKV(r: Reader): KeyValue {
  const kv: KeyValue = { key: EMPTY, value: EMPTY, create_revision: '0', mod_revision: '0', version: '0', lease: '0' };
  while (r.more()) {
    const tag = r.varint();
    switch (tag) {
      case (1 << 3) | 2: kv.key = r.bytes(); break;
      case 2 << 3: kv.create_revision = r.int64(); break;
      case 3 << 3: kv.mod_revision = r.int64(); break;
      case 4 << 3: kv.version = r.int64(); break;
      case (5 << 3) | 2: kv.value = r.bytes(); break;
      case 6 << 3: kv.lease = r.int64(); break;
      default: r.skip(tag & 7);
    }
  }
  return kv;
}

const NO_HEADER: ResponseHeader = Object.freeze({ cluster_id: '0', member_id: '0', revision: '0', raft_term: '0' });

export function readRange(r: Reader): RangeResponse {
  const res: RangeResponse = { header: NO_HEADER, kvs: [], more: false, count: '0' };
  while (r.more()) {
    const tag = r.varint();
    switch (tag) {
      case (1 << 3) | 2: res.header = readHeader(r.sub()); break;
      case (2 << 3) | 2: res.kvs.push(readKV(r.sub())); break;
      case 3 << 3: res.more = r.varint() !== 0; break;
      case 4 << 3: res.count = r.int64(); break;
      default: r.skip(tag & 7);
    }
  }
  return res;
}

export function readPut(r: Reader): PutResponse {
  const res: PutResponse = { header: NO_HEADER };
  while (r.more()) {
    const tag = r.varint();
    if (tag === ((1 << 3) | 2)) res.header = readHeader(r.sub());
    else if (tag === ((2 << 3) | 2)) res.prev_kv = readKV(r.sub());
    else r.skip(tag & 7);
  }
  return res;
}

export function readDeleteRange(r: Reader): DeleteRangeResponse {
  const res: DeleteRangeResponse = { header: NO_HEADER, deleted: '0', prev_kvs: [] };
  while (r.more()) {
    const tag = r.varint();
    if (tag === ((1 << 3) | 2)) res.header = readHeader(r.sub());
    else if (tag === 2 << 3) res.deleted = r.int64();
    else if (tag === ((3 << 3) | 2)) res.prev_kvs.push(readKV(r.sub()));
    else r.skip(tag & 7);
  }
  return res;
}

export function readTxn(r: Reader): TxnResponse {
  const res: TxnResponse = { header: NO_HEADER, succeeded: false, responses: [] };
  while (r.more()) {
    const tag = r.varint();
    if (tag === ((1 << 3) | 2)) res.header = readHeader(r.sub());
    else if (tag === 2 << 3) res.succeeded = r.varint() !== 0;
    else if (tag === ((3 << 3) | 2)) {
      const op = r.sub();
      const out: ResponseOp = {};
      while (op.more()) {
        const t = op.varint();
        if (t === ((1 << 3) | 2)) out.response_range = readRange(op.sub());
        else if (t === ((2 << 3) | 2)) out.response_put = readPut(op.sub());
        else if (t === ((3 << 3) | 2)) out.response_delete_range = readDeleteRange(op.sub());
        else op.skip(t & 7);
      }
      res.responses.push(out);
    } else r.skip(tag & 7);
  }
  return res;
}

export function readCompaction(r: Reader): CompactionResponse {
  const res: CompactionResponse = { header: NO_HEADER };
  while (r.more()) {
    const tag = r.varint();
    if (tag === ((1 << 3) | 2)) res.header = readHeader(r.sub());
    else r.skip(tag & 7);
  }
  return res;
}

export function readStatus(r: Reader): StatusResponse {
  const res: StatusResponse = { header: NO_HEADER, version: '', db_size: '0', leader: '0', raft_index: '0', raft_term: '0', errors: [] };
  while (r.more()) {
    const tag = r.varint();
    switch (tag) {
      case (1 << 3) | 2: res.header = readHeader(r.sub()); break;
      case (2 << 3) | 2: res.version = r.bytes().toString('utf8'); break;
      case 3 << 3: res.db_size = r.int64(); break;
      case 4 << 3: res.leader = r.uint64(); break;
      case 5 << 3: res.raft_index = r.uint64(); break;
      case 6 << 3: res.raft_term = r.uint64(); break;
      case (8 << 3) | 2: res.errors.push(r.bytes().toString('utf8')); break;
      default: r.skip(tag & 7);
    }
  }
  return res;
}

export function readWatch(r: Reader): WatchResponse {
  const res: WatchResponse = { header: NO_HEADER, created: false, canceled: false, compact_revision: '0', cancel_reason: '', events: [] };
  while (r.more()) {
    const tag = r.varint();
    switch (tag) {
      case (1 << 3) | 2: res.header = readHeader(r.sub()); break;
      case 3 << 3: res.created = r.varint() !== 0; break;
      case 4 << 3: res.canceled = r.varint() !== 0; break;
      case 5 << 3: res.compact_revision = r.int64(); break;
      case (6 << 3) | 2: res.cancel_reason = r.bytes().toString('utf8'); break;
      case (11 << 3) | 2: {
        const e = r.sub();
        const ev: WatchEventKV = { type: 'PUT', kv: EMPTY_KV };
        while (e.more()) {
          const t = e.varint();
          if (t === 1 << 3) ev.type = e.varint() === 1 ? 'DELETE' : 'PUT';
          else if (t === ((2 << 3) | 2)) ev.kv = readKV(e.sub());
          else if (t === ((3 << 3) | 2)) ev.prev_kv = readKV(e.sub());
          else e.skip(t & 7);
        }
        res.events.push(ev);
        break;
      }
      default: r.skip(tag & 7);
    }
  }
  return res;
}

const EMPTY_KV: KeyValue = Object.freeze({ key: EMPTY, value: EMPTY, create_revision: '0', mod_revision: '0', version: '0', lease: '0' });

/** Decodes a whole buffer with `read` (for tests; the client decodes gRPC frames in place). */
export function decode<T>(read: (r: Reader) => T, buf: Buffer): T {
  return read(new Reader(buf));
}
