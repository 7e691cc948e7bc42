// A lean etcd client for the store's hot path: unary KV Range and Txn as gRPC over an HTTP/2
// connection framed by store/h2-unary.ts, watches over a node:http2 session, with the few
// protobuf messages they need encoded by hand. Through etcd3 and grpc-js, one call cost more
// CPU than the rest of an API create (interceptor chains, load balancing, per-call metadata);
// here it is a frame in and a frame out. Leases, compaction and maintenance stay on etcd3,
// which does them well.
import http2 from 'node:http2';
import { H2Connection, percentDecode } from './h2-unary.js';
import type { CallHandle, UnaryReply } from './h2-unary.js';

export enum CompareTarget { Version = 0, Create = 1, Mod = 2, Value = 3, Lease = 4 }
export enum CompareResult { Equal = 0, Greater = 1, Less = 2, NotEqual = 3 }

/** int64 fields are decimal strings, as etcd3 returns them (revisions outgrow nothing, but stay exact). */
export interface KeyValue { key: Buffer; value: Buffer; create_revision: string; mod_revision: string; version: string; lease: string }
export interface ResponseHeader { revision: string; raft_term: string }
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
export interface WatchStream {
  /** Cancels the watch; no callback runs after this. */
  close(): void;
}
export interface WatchCallbacks {
  response(res: WatchResponse): void;
  /** The stream ended without close(): etcd went away, restarted or refused the watch. */
  end(err: EtcdRpcError): void;
}

/** A gRPC failure: `code` is the gRPC status (14 UNAVAILABLE, 4 DEADLINE_EXCEEDED, ...). */
export class EtcdRpcError extends Error {
  override readonly name = 'EtcdRpcError';
  constructor(readonly code: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
  /** Could not talk to etcd (as opposed to etcd refusing the request). */
  get unavailable(): boolean {
    return this.code === 14 || this.code === 4 || this.code === 1;
  }
}

// ---- protobuf encoding (proto3 wire format) ----

class Writer {
  buf = Buffer.allocUnsafe(256);
  pos = 0;
  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
  varint(n: number): void {
    this.room(10);
    while (n > 127) {
      this.buf[this.pos++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    this.buf[this.pos++] = n;
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
  message(field: number, fill: (w: Writer) => void): void {
    const sub = new Writer();
    fill(sub);
    this.bytes(field, sub.done(), true);
  }
  done(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

function writeRange(w: Writer, r: RangeRequest): void {
  w.bytes(1, r.key);
  w.bytes(2, r.range_end);
  w.uint(3, r.limit);
  w.uint(4, r.revision);
  w.bool(8, r.keys_only);
  w.bool(9, r.count_only);
}

function writePut(w: Writer, p: PutRequest): void {
  w.bytes(1, p.key);
  w.bytes(2, p.value);
  w.bool(4, p.prev_kv);
}

function writeOp(w: Writer, op: RequestOp): void {
  if ('request_range' in op) w.message(1, (m) => writeRange(m, op.request_range));
  else if ('request_put' in op) w.message(2, (m) => writePut(m, op.request_put));
  else {
    const d = op.request_delete_range;
    w.message(3, (m) => {
      m.bytes(1, d.key);
      m.bytes(2, d.range_end);
      m.bool(3, d.prev_kv);
    });
  }
}

export function encodeRange(r: RangeRequest): Buffer {
  const w = new Writer();
  writeRange(w, r);
  return w.done();
}

export function encodeTxn(t: TxnRequest): Buffer {
  const w = new Writer();
  for (const c of t.compare ?? []) {
    w.message(1, (m) => {
      m.uint(1, c.result);
      m.uint(2, c.target);
      m.bytes(3, c.key);
      // The target_union oneof: a set member is sent even when zero ("create_revision = 0").
      const union: Array<[number, number | undefined]> = [[4, c.version], [5, c.create_revision], [6, c.mod_revision]];
      for (const [field, v] of union) {
        if (v === undefined) continue;
        m.varint(field << 3);
        m.varint(v);
      }
      if (c.value !== undefined) m.bytes(7, c.value, true);
    });
  }
  for (const op of t.success ?? []) w.message(2, (m) => writeOp(m, op));
  for (const op of t.failure ?? []) w.message(3, (m) => writeOp(m, op));
  return w.done();
}

// ---- protobuf decoding ----

class Reader {
  pos: number;
  constructor(readonly buf: Buffer, start = 0, readonly end = buf.length) {
    this.pos = start;
  }
  more(): boolean {
    return this.pos < this.end;
  }
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
  /** The bounds of a length-delimited field's payload; moves past it. */
  span(): [number, number] {
    const len = this.varint();
    const start = this.pos;
    this.pos += len;
    if (this.pos > this.end) throw new Error('etcd: truncated message');
    return [start, this.pos];
  }
  bytes(): Buffer {
    const [s, e] = this.span();
    return this.buf.subarray(s, e);
  }
  sub(): Reader {
    const [s, e] = this.span();
    return new Reader(this.buf, s, e);
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.span();
    else if (wire === 5) this.pos += 4;
    else throw new Error(`etcd: unsupported wire type ${wire}`);
  }
}

const EMPTY = Buffer.alloc(0);

function readHeader(r: Reader): ResponseHeader {
  const h: ResponseHeader = { revision: '0', raft_term: '0' };
  while (r.more()) {
    const tag = r.varint();
    if (tag === 3 << 3) h.revision = String(r.varint());
    else if (tag === 4 << 3) h.raft_term = String(r.varint());
    else r.skip(tag & 7); // cluster_id and member_id are uint64 beyond 2^53: not needed
  }
  return h;
}

function readKV(r: Reader): KeyValue {
  const kv: KeyValue = { key: EMPTY, value: EMPTY, create_revision: '0', mod_revision: '0', version: '0', lease: '0' };
  while (r.more()) {
    const tag = r.varint();
    switch (tag) {
      case (1 << 3) | 2: kv.key = r.bytes(); break;
      case 2 << 3: kv.create_revision = String(r.varint()); break;
      case 3 << 3: kv.mod_revision = String(r.varint()); break;
      case 4 << 3: kv.version = String(r.varint()); break;
      case (5 << 3) | 2: kv.value = r.bytes(); break;
      case 6 << 3: kv.lease = String(r.varint()); break;
      default: r.skip(tag & 7);
    }
  }
  return kv;
}

const NO_HEADER: ResponseHeader = { revision: '0', raft_term: '0' };

function decodeRange(r: Reader): RangeResponse {
  const res: RangeResponse = { header: NO_HEADER, kvs: [], more: false, count: '0' };
  while (r.more()) {
    const tag = r.varint();
    switch (tag) {
      case (1 << 3) | 2: res.header = readHeader(r.sub()); break;
      case (2 << 3) | 2: res.kvs.push(readKV(r.sub())); break;
      case 3 << 3: res.more = r.varint() !== 0; break;
      case 4 << 3: res.count = String(r.varint()); break;
      default: r.skip(tag & 7);
    }
  }
  return res;
}

function decodePut(r: Reader): PutResponse {
  const res: PutResponse = { header: NO_HEADER };
  while (r.more()) {
    const tag = r.varint();
    if (tag === ((1 << 3) | 2)) res.header = readHeader(r.sub());
    else if (tag === ((2 << 3) | 2)) res.prev_kv = readKV(r.sub());
    else r.skip(tag & 7);
  }
  return res;
}

function decodeDelete(r: Reader): DeleteRangeResponse {
  const res: DeleteRangeResponse = { header: NO_HEADER, deleted: '0', prev_kvs: [] };
  while (r.more()) {
    const tag = r.varint();
    if (tag === ((1 << 3) | 2)) res.header = readHeader(r.sub());
    else if (tag === 2 << 3) res.deleted = String(r.varint());
    else if (tag === ((3 << 3) | 2)) res.prev_kvs.push(readKV(r.sub()));
    else r.skip(tag & 7);
  }
  return res;
}

function decodeTxn(r: Reader): TxnResponse {
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
        if (t === ((1 << 3) | 2)) out.response_range = decodeRange(op.sub());
        else if (t === ((2 << 3) | 2)) out.response_put = decodePut(op.sub());
        else if (t === ((3 << 3) | 2)) out.response_delete_range = decodeDelete(op.sub());
        else op.skip(t & 7);
      }
      res.responses.push(out);
    } else r.skip(tag & 7);
  }
  return res;
}

function decodeWatch(r: Reader): WatchResponse {
  const res: WatchResponse = { header: NO_HEADER, created: false, canceled: false, compact_revision: '0', cancel_reason: '', events: [] };
  while (r.more()) {
    const tag = r.varint();
    switch (tag) {
      case (1 << 3) | 2: res.header = readHeader(r.sub()); break;
      case 3 << 3: res.created = r.varint() !== 0; break;
      case 4 << 3: res.canceled = r.varint() !== 0; break;
      case 5 << 3: res.compact_revision = String(r.varint()); break;
      case (6 << 3) | 2: res.cancel_reason = r.bytes().toString('utf8'); break;
      case (11 << 3) | 2: {
        const e = r.sub();
        const ev: WatchEventKV = { type: 'PUT', kv: readKV(new Reader(EMPTY)) };
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

// ---- gRPC over HTTP/2 ----

export interface EtcdKVOptions {
  /** Deadline per call; a hung etcd surfaces as DEADLINE_EXCEEDED, not a hang. */
  deadlineMs?: number;
}

/** gRPC framing: 1 byte "compressed" flag, 4 bytes big-endian length, the message. */
function frame(msg: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + msg.length);
  out[0] = 0;
  out.writeUInt32BE(msg.length, 1);
  msg.copy(out, 5);
  return out;
}

/**
 * The gRPC status of a stream, filled in from its trailers, or from its response headers for a
 * "trailers-only" reply. `code` stays undefined until one arrives.
 */
function grpcStatus(stream: http2.ClientHttp2Stream): { code?: number; message: string } {
  const st: { code?: number; message: string } = { message: '' };
  const read = (h: http2.IncomingHttpHeaders) => {
    const code = h['grpc-status'];
    if (code === undefined) return;
    st.code = Number(code);
    const m = h['grpc-message'];
    if (typeof m === 'string') st.message = percentDecode(m);
  };
  stream.on('response', read);
  stream.on('trailers', read);
  return st;
}

/** Big windows: a watch catching up gets many events per message, and the default 64 KiB window would make it many round trips. */
const WINDOW = 16 << 20;

export class EtcdKV {
  /** Unary calls. */
  private conn?: H2Connection;
  /** Watch streams. */
  private session?: http2.ClientHttp2Session;
  private endpoint = 0;
  private closed = false;
  /** Streams open on the current session. */
  private active = 0;
  private readonly deadlineMs: number;

  constructor(private readonly endpoints: string[], opts: EtcdKVOptions = {}) {
    if (endpoints.length === 0) throw new Error('etcd: no endpoints');
    this.deadlineMs = opts.deadlineMs ?? 10_000;
  }

  range(req: RangeRequest): Promise<RangeResponse> {
    return this.call('/etcdserverpb.KV/Range', encodeRange(req), decodeRange);
  }

  put(req: PutRequest): Promise<PutResponse> {
    const w = new Writer();
    writePut(w, req);
    return this.call('/etcdserverpb.KV/Put', w.done(), decodePut);
  }

  txn(req: TxnRequest): Promise<TxnResponse> {
    return this.call('/etcdserverpb.KV/Txn', encodeTxn(req), decodeTxn);
  }

  /**
   * Opens one Watch stream with one watcher (a stream per watch keeps cancelation simple:
   * closing the stream cancels it). Responses arrive in order; `end` reports the stream's end.
   */
  watch(req: WatchCreate, cb: WatchCallbacks): WatchStream {
    let done = false;
    const end = (err: EtcdRpcError) => {
      if (done) return;
      done = true;
      cb.end(err);
    };
    let stream: http2.ClientHttp2Stream;
    try {
      stream = this.open('/etcdserverpb.Watch/Watch');
    } catch (e) {
      queueMicrotask(() => end(e as EtcdRpcError));
      return { close: () => void (done = true) };
    }
    let pending: Buffer = EMPTY;
    const status = grpcStatus(stream);
    stream.on('data', (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      while (!done && pending.length >= 5) {
        const len = pending.readUInt32BE(1);
        if (pending.length < 5 + len) break;
        let res: WatchResponse;
        try {
          res = decodeWatch(new Reader(pending, 5, 5 + len));
        } catch (e) {
          stream.close(http2.constants.NGHTTP2_CANCEL);
          return end(new EtcdRpcError(13, `INTERNAL: ${(e as Error).message}`));
        }
        pending = pending.subarray(5 + len);
        cb.response(res);
      }
    });
    stream.on('error', (e) => end(new EtcdRpcError(14, `UNAVAILABLE: ${e.message}`, { cause: e })));
    stream.on('close', () => end(status.code ? new EtcdRpcError(status.code, status.message || `gRPC status ${status.code}`) : new EtcdRpcError(14, 'UNAVAILABLE: etcd ended the watch stream')));
    const w = new Writer();
    w.message(1, (m) => {
      m.bytes(1, req.key);
      m.bytes(2, req.range_end);
      m.uint(3, req.start_revision);
      m.bool(6, req.prev_kv);
    });
    stream.write(frame(w.done()));
    return {
      close: () => {
        if (done) return;
        done = true;
        stream.close(http2.constants.NGHTTP2_CANCEL);
      },
    };
  }

  /** Tears the connection down at once; calls still in flight fail with CANCELLED/UNAVAILABLE. */
  close(): void {
    this.closed = true;
    this.session?.destroy();
    this.session = undefined;
    this.conn?.destroy('etcd client closed');
    this.conn = undefined;
  }

  /** The unary connection, dialled to the current endpoint if there is none usable. */
  private unary(): H2Connection {
    if (this.conn?.usable) return this.conn;
    const url = new URL(this.endpoints[this.endpoint % this.endpoints.length]!);
    const conn = new H2Connection(url, () => {
      // Failed or going away: the next call dials the next endpoint.
      if (this.conn !== conn) return;
      this.conn = undefined;
      this.endpoint++;
    });
    this.conn = conn;
    return conn;
  }

  private connect(): http2.ClientHttp2Session {
    const s = this.session;
    if (s && !s.closed && !s.destroyed) return s;
    const url = this.endpoints[this.endpoint % this.endpoints.length]!;
    const session = http2.connect(url, { settings: { initialWindowSize: WINDOW } });
    session.on('connect', () => session.setLocalWindowSize(WINDOW));
    // A broken session fails its streams; the next call dials the next endpoint.
    const drop = () => this.dropSession(session);
    session.on('error', drop);
    session.on('goaway', drop);
    session.on('close', drop);
    // Like grpc-js: an idle connection does not keep the process alive, one with calls or
    // watches in flight does.
    session.unref();
    this.active = 0;
    this.session = session;
    return session;
  }

  /** Forgets `session` if it is the current one, so the next call dials the next endpoint. */
  private dropSession(session: http2.ClientHttp2Session): void {
    if (this.session !== session) return;
    this.session = undefined;
    this.endpoint++;
  }

  /** A gRPC stream on the current session (dialled if needed); throws UNAVAILABLE if that fails. */
  private open(path: string): http2.ClientHttp2Stream {
    try {
      if (this.closed) throw new Error('etcd client closed');
      const stream = this.connect().request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
      this.track(stream);
      return stream;
    } catch (e) {
      // Dialling or opening failed: whatever session there was is unusable, try the next endpoint.
      this.session?.destroy();
      this.session = undefined;
      this.endpoint++;
      throw new EtcdRpcError(14, `UNAVAILABLE: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Counts a stream on the current session: referenced while any is open. */
  private track(stream: http2.ClientHttp2Stream): void {
    const session = this.session;
    if (!session) return;
    if (this.active++ === 0) session.ref();
    stream.once('close', () => {
      if (this.session !== session) return;
      if (--this.active === 0) session.unref();
    });
  }

  private call<T>(path: string, msg: Buffer, decode: (r: Reader) => T): Promise<T> {
    if (this.closed) return Promise.reject(new EtcdRpcError(1, 'CANCELLED: etcd client closed'));
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (err: Error | undefined, value?: T) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(value as T);
      };
      let conn: H2Connection;
      let handle: CallHandle;
      const onReply = (err: Error | undefined, reply?: UnaryReply) => {
        if (err) return finish(new EtcdRpcError(14, `UNAVAILABLE: ${err.message}`, { cause: err }));
        const { code, message, body } = reply!;
        if (code !== 0) return finish(new EtcdRpcError(code, message || `gRPC status ${code}`));
        if (body.length < 5 || body[0] !== 0) return finish(new EtcdRpcError(13, `INTERNAL: malformed gRPC reply to ${path}`));
        const len = body.readUInt32BE(1);
        if (body.length < 5 + len) return finish(new EtcdRpcError(13, `INTERNAL: truncated gRPC reply to ${path}`));
        try {
          finish(undefined, decode(new Reader(body, 5, 5 + len)));
        } catch (e) {
          finish(new EtcdRpcError(13, `INTERNAL: ${(e as Error).message}`));
        }
      };
      try {
        conn = this.unary();
        handle = conn.call(path, frame(msg), onReply);
      } catch (e) {
        return finish(new EtcdRpcError(14, `UNAVAILABLE: ${(e as Error).message}`, { cause: e }));
      }
      timer = setTimeout(() => {
        conn.cancel(handle);
        // A connection that never finished dialling is dead: drop it, its calls with it.
        if (conn.connecting) conn.destroy(`could not connect within ${this.deadlineMs} ms`);
        finish(new EtcdRpcError(4, `DEADLINE_EXCEEDED: etcd did not answer ${path} within ${this.deadlineMs} ms`));
      }, this.deadlineMs);
    });
  }
}
