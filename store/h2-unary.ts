// Unary gRPC calls over one HTTP/2 connection framed here (RFC 9113), for the store's hot path.
// Through node:http2 a call cost the API server more CPU than etcd spent serving it: every
// request builds a Duplex stream and, on Node 20, binds an AsyncResource with deprecation
// getters. Here a call is one HEADERS and one DATA frame out (header blocks are built once per
// method) and a few frames in. Flow control, SETTINGS, PING, RST_STREAM and GOAWAY are honored;
// there is no priority and no server push. Watches stay on node:http2 (long-lived streams).
import net from 'node:net';
import tls from 'node:tls';
import { encodeHeaders, HpackDecoder, HpackError, TABLE_SIZE } from './hpack.js';

/** The outcome of a call that reached the server: its gRPC status and the response payload. */
export interface UnaryReply {
  code: number;
  message: string;
  /** Concatenated DATA of the response (gRPC-framed messages). */
  body: Buffer;
}

/** The connection or stream failed before a gRPC status arrived (worth trying elsewhere). */
export class TransportError extends Error {}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const enum Type { DATA = 0, HEADERS = 1, PRIORITY = 2, RST_STREAM = 3, SETTINGS = 4, PUSH_PROMISE = 5, PING = 6, GOAWAY = 7, WINDOW_UPDATE = 8, CONTINUATION = 9 }
const enum Flag { END_STREAM = 0x1, ACK = 0x1, END_HEADERS = 0x4, PADDED = 0x8, PRIORITY = 0x20 }
const enum Setting { HEADER_TABLE_SIZE = 1, ENABLE_PUSH = 2, MAX_CONCURRENT_STREAMS = 3, INITIAL_WINDOW_SIZE = 4, MAX_FRAME_SIZE = 5 }
const CANCEL = 8;

/** Our receive windows: big enough that a reply (at most a few MiB) never waits for an update. */
const RECV_WINDOW = 1 << 30;
const DEFAULT_WINDOW = 65_535;
const MAX_STREAM_ID = 2 ** 31 - 1;

interface Stream {
  id: number;
  done: (err: Error | undefined, reply?: UnaryReply) => void;
  headers: Array<readonly [string, string]>;
  chunks: Buffer[];
  /** Request DATA not yet sent for lack of window. */
  pending?: Buffer;
  sendWindow: number;
}

/** A call, queued until the server's stream limit lets it open, then with its stream id. */
export interface CallHandle {
  id?: number;
}

interface Queued {
  handle: CallHandle;
  path: string;
  message: Buffer;
  done: Stream['done'];
}

function frameHeader(length: number, type: Type, flags: number, stream: number): Buffer {
  const h = Buffer.allocUnsafe(9);
  h.writeUIntBE(length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return h;
}

export class H2Connection {
  private readonly socket: net.Socket;
  private readonly decoder = new HpackDecoder();
  private readonly streams = new Map<number, Stream>();
  /** Calls waiting for the server's SETTINGS_MAX_CONCURRENT_STREAMS to allow them. */
  private readonly queued: Queued[] = [];
  private peerMaxStreams = Infinity;
  private readonly authority: string;
  private readonly scheme: string;
  private readonly blocks = new Map<string, Buffer>();
  private nextId = 1;
  private inbuf: Buffer = Buffer.alloc(0);
  /** A header block being continued: its stream, flags and fragments. */
  private continuing?: { stream: number; flags: number; parts: Buffer[] };
  private connSendWindow = DEFAULT_WINDOW;
  private peerInitialWindow = DEFAULT_WINDOW;
  private peerMaxFrame = 16_384;
  private recvConsumed = 0;
  private outq: Buffer[] = [];
  private outBytes = 0;
  private flushScheduled = false;
  private failed?: Error;
  /** GOAWAY received: no new streams. */
  private draining = false;

  constructor(url: URL, private readonly onGone: () => void) {
    this.authority = url.host;
    this.scheme = url.protocol === 'https:' ? 'https' : 'http';
    const port = Number(url.port || (this.scheme === 'https' ? 443 : 80));
    const host = url.hostname.replace(/^\[|\]$/g, '');
    this.socket = this.scheme === 'https'
      ? tls.connect({ host, port, ALPNProtocols: ['h2'], servername: net.isIP(host) ? undefined : host })
      : net.connect({ host, port });
    this.socket.setNoDelay(true);
    this.socket.unref(); // idle connections do not keep the process alive
    this.socket.on('data', (d: Buffer) => this.read(d));
    this.socket.on('error', (e) => this.fail(new TransportError(e.message, { cause: e })));
    this.socket.on('close', () => this.fail(new TransportError('connection closed')));
    const settings = Buffer.alloc(18);
    settings.writeUInt16BE(Setting.ENABLE_PUSH, 0);
    settings.writeUInt32BE(0, 2);
    settings.writeUInt16BE(Setting.INITIAL_WINDOW_SIZE, 6);
    settings.writeUInt32BE(RECV_WINDOW, 8);
    settings.writeUInt16BE(Setting.HEADER_TABLE_SIZE, 12);
    settings.writeUInt32BE(TABLE_SIZE, 14);
    const grow = Buffer.allocUnsafe(4);
    grow.writeUInt32BE(RECV_WINDOW - DEFAULT_WINDOW, 0);
    this.send([PREFACE, frameHeader(18, Type.SETTINGS, 0, 0), settings, frameHeader(4, Type.WINDOW_UPDATE, 0, 0), grow]);
  }

  /** Still dialling (a deadline then means the endpoint is unreachable). */
  get connecting(): boolean {
    return this.socket.connecting;
  }

  /** False once the connection failed, was closed, or the server is going away. */
  get usable(): boolean {
    return !this.failed && !this.draining;
  }

  /**
   * Starts a call: `message` is the gRPC-framed request. `done` runs once, with the reply, or
   * with a TransportError. Beyond the server's concurrent stream limit, calls wait their turn.
   */
  call(path: string, message: Buffer, done: (err: Error | undefined, reply?: UnaryReply) => void): CallHandle {
    if (!this.usable) throw new TransportError(this.failed?.message ?? 'connection is going away');
    const handle: CallHandle = {};
    if (this.streams.size >= this.peerMaxStreams) this.queued.push({ handle, path, message, done });
    else this.open(handle, path, message, done);
    return handle;
  }

  private open(handle: CallHandle, path: string, message: Buffer, done: Stream['done']): void {
    const id = this.nextId;
    this.nextId += 2;
    handle.id = id;
    // Out of stream ids: this connection finishes what it has and closes; calls go to a new one.
    if (this.nextId > MAX_STREAM_ID) this.draining = true;
    const s: Stream = { id, done, headers: [], chunks: [], sendWindow: this.peerInitialWindow };
    if (this.streams.size === 0) this.socket.ref();
    this.streams.set(id, s);
    const block = this.headerBlock(path);
    this.send([frameHeader(block.length, Type.HEADERS, Flag.END_HEADERS, id), block]);
    this.sendData(s, message);
  }

  /** Abandons a call (its deadline passed): RST_STREAM(CANCEL) if it was sent; `done` is not called. */
  cancel(handle: CallHandle): void {
    const q = this.queued.findIndex((c) => c.handle === handle);
    if (q >= 0) this.queued.splice(q, 1);
    const id = handle.id;
    if (id === undefined || !this.streams.has(id)) return;
    this.forget(id);
    const code = Buffer.allocUnsafe(4);
    code.writeUInt32BE(CANCEL, 0);
    this.send([frameHeader(4, Type.RST_STREAM, 0, id), code]);
  }

  /** Closes the connection; calls in flight fail with a TransportError. */
  destroy(reason = 'connection closed by the client'): void {
    this.fail(new TransportError(reason));
  }

  private headerBlock(path: string): Buffer {
    let b = this.blocks.get(path);
    if (!b) {
      // Names from the static table (2 :method, 6 :scheme, 4 :path, 1 :authority,
      // 31 content-type), values as literals.
      b = encodeHeaders([[2, 'POST'], [6, this.scheme], [4, path], [1, this.authority], [31, 'application/grpc'], ['te', 'trailers']]);
      this.blocks.set(path, b);
    }
    return b;
  }

  /** Sends as much of `data` as the windows allow (ending the stream with it); keeps the rest. */
  private sendData(s: Stream, data: Buffer): void {
    let rest = data;
    const out: Buffer[] = [];
    for (;;) {
      const n = Math.min(rest.length, s.sendWindow, this.connSendWindow, this.peerMaxFrame);
      if (n <= 0 && rest.length > 0) break;
      const last = n === rest.length;
      out.push(frameHeader(n, Type.DATA, last ? Flag.END_STREAM : 0, s.id), rest.subarray(0, n));
      s.sendWindow -= n;
      this.connSendWindow -= n;
      rest = rest.subarray(n);
      if (last) break;
    }
    s.pending = rest.length ? rest : undefined;
    if (out.length) this.send(out);
  }

  private flushPending(): void {
    for (const s of this.streams.values()) {
      if (this.connSendWindow <= 0) return;
      if (s.pending) this.sendData(s, s.pending);
    }
  }

  /**
   * Frames queued in one turn of the event loop leave in one write of one buffer: a write per
   * frame cost more than the frame. setImmediate, not nextTick, so that the calls of every
   * request that arrived in the same poll phase (each on its own socket) share the write.
   */
  private send(parts: Buffer[]): void {
    if (this.failed) return;
    for (const p of parts) {
      this.outq.push(p);
      this.outBytes += p.length;
    }
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      const buf = this.outq.length === 1 ? this.outq[0]! : Buffer.concat(this.outq, this.outBytes);
      this.outq = [];
      this.outBytes = 0;
      if (!this.failed) this.socket.write(buf);
    });
  }

  private read(d: Buffer): void {
    this.inbuf = this.inbuf.length ? Buffer.concat([this.inbuf, d]) : d;
    let pos = 0;
    try {
      while (!this.failed && this.inbuf.length - pos >= 9) {
        const len = this.inbuf.readUIntBE(pos, 3);
        if (this.inbuf.length - pos < 9 + len) break;
        const type = this.inbuf[pos + 3]!;
        const flags = this.inbuf[pos + 4]!;
        const id = this.inbuf.readUInt32BE(pos + 5) & 0x7fffffff;
        const payload = this.inbuf.subarray(pos + 9, pos + 9 + len);
        pos += 9 + len;
        this.frame(type, flags, id, payload);
      }
    } catch (e) {
      const why = e instanceof HpackError ? `bad header block: ${e.message}` : `protocol error: ${(e as Error).message}`;
      return this.fail(new TransportError(why));
    }
    this.inbuf = pos === this.inbuf.length ? Buffer.alloc(0) : this.inbuf.subarray(pos);
  }

  private frame(type: number, flags: number, id: number, payload: Buffer): void {
    if (this.continuing && type !== Type.CONTINUATION) throw new Error('header block interrupted');
    switch (type) {
      case Type.DATA: {
        this.recvConsumed += payload.length;
        if (this.recvConsumed >= RECV_WINDOW / 2) {
          const inc = Buffer.allocUnsafe(4);
          inc.writeUInt32BE(this.recvConsumed, 0);
          this.recvConsumed = 0;
          this.send([frameHeader(4, Type.WINDOW_UPDATE, 0, 0), inc]);
        }
        const s = this.streams.get(id);
        if (!s) return; // canceled
        s.chunks.push(Buffer.from(unpad(payload, flags)));
        if (flags & Flag.END_STREAM) this.finish(s);
        return;
      }
      case Type.HEADERS: {
        let block = unpad(payload, flags);
        if (flags & Flag.PRIORITY) block = block.subarray(5);
        if (flags & Flag.END_HEADERS) return this.headers(id, flags, block);
        this.continuing = { stream: id, flags, parts: [Buffer.from(block)] };
        return;
      }
      case Type.CONTINUATION: {
        const c = this.continuing;
        if (!c || c.stream !== id) throw new Error('unexpected CONTINUATION');
        c.parts.push(Buffer.from(payload));
        if (flags & Flag.END_HEADERS) {
          this.continuing = undefined;
          this.headers(id, c.flags, Buffer.concat(c.parts));
        }
        return;
      }
      case Type.RST_STREAM: {
        const s = this.streams.get(id);
        if (!s) return;
        this.forget(id);
        s.done(new TransportError(`etcd reset the stream (HTTP/2 error ${payload.readUInt32BE(0)})`));
        return;
      }
      case Type.SETTINGS:
        if (flags & Flag.ACK) return;
        this.settings(payload);
        this.send([frameHeader(0, Type.SETTINGS, Flag.ACK, 0)]);
        return;
      case Type.PING:
        if (!(flags & Flag.ACK)) this.send([frameHeader(8, Type.PING, Flag.ACK, 0), Buffer.from(payload)]);
        return;
      case Type.GOAWAY: {
        const last = payload.readUInt32BE(0) & 0x7fffffff;
        this.draining = true;
        this.onGone();
        for (const c of this.queued.splice(0)) c.done(new TransportError('etcd is going away (GOAWAY)'));
        // Streams the server will not process fail now (safe to retry); the others finish.
        for (const s of [...this.streams.values()]) {
          if (s.id > last) {
            this.forget(s.id);
            s.done(new TransportError('etcd is going away (GOAWAY)'));
          }
        }
        if (this.streams.size === 0) this.socket.end();
        return;
      }
      case Type.WINDOW_UPDATE: {
        const inc = payload.readUInt32BE(0) & 0x7fffffff;
        if (id === 0) this.connSendWindow += inc;
        else {
          const s = this.streams.get(id);
          if (s) s.sendWindow += inc;
        }
        this.flushPending();
        return;
      }
      case Type.PUSH_PROMISE:
        throw new Error('PUSH_PROMISE with push disabled');
      default:
        return; // PRIORITY and unknown types are ignored
    }
  }

  private settings(p: Buffer): void {
    for (let i = 0; i + 6 <= p.length; i += 6) {
      const id = p.readUInt16BE(i);
      const v = p.readUInt32BE(i + 2);
      if (id === Setting.INITIAL_WINDOW_SIZE) {
        const delta = v - this.peerInitialWindow;
        this.peerInitialWindow = v;
        for (const s of this.streams.values()) s.sendWindow += delta;
      } else if (id === Setting.MAX_FRAME_SIZE) {
        this.peerMaxFrame = v;
      } else if (id === Setting.MAX_CONCURRENT_STREAMS) {
        this.peerMaxStreams = v;
      }
    }
    this.openQueued();
    this.flushPending();
  }

  private headers(id: number, flags: number, block: Buffer): void {
    // The block is decoded even for a canceled stream: the table state is per connection.
    const fields = this.decoder.decode(block);
    const s = this.streams.get(id);
    if (!s) return;
    s.headers.push(...fields);
    if (flags & Flag.END_STREAM) this.finish(s);
  }

  private finish(s: Stream): void {
    this.forget(s.id);
    let code: number | undefined;
    let message = '';
    let httpStatus = '';
    for (const [n, v] of s.headers) {
      if (n === 'grpc-status') code = Number(v);
      else if (n === 'grpc-message') message = percentDecode(v);
      else if (n === ':status') httpStatus = v;
    }
    if (code === undefined) {
      s.done(new TransportError(`etcd ended the call without a gRPC status (HTTP ${httpStatus || 'no status'})`));
      return;
    }
    s.done(undefined, { code, message, body: s.chunks.length === 1 ? s.chunks[0]! : Buffer.concat(s.chunks) });
  }

  private openQueued(): void {
    while (this.queued.length && this.streams.size < this.peerMaxStreams) {
      const c = this.queued.shift()!;
      if (this.usable) this.open(c.handle, c.path, c.message, c.done);
      else c.done(new TransportError('connection is closing'));
    }
  }

  private forget(id: number): void {
    this.streams.delete(id);
    this.openQueued();
    if (this.streams.size === 0) {
      this.socket.unref();
      if (this.draining) this.socket.end();
    }
  }

  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = err;
    const streams: Array<Pick<Stream, 'done'>> = [...this.streams.values(), ...this.queued.splice(0)];
    this.streams.clear();
    this.socket.destroy();
    this.onGone();
    for (const s of streams) s.done(err);
  }
}

function unpad(payload: Buffer, flags: number): Buffer {
  if (!(flags & Flag.PADDED)) return payload;
  const pad = payload[0]!;
  if (pad >= payload.length) throw new Error('padding exceeds the frame');
  return payload.subarray(1, payload.length - pad);
}

/** A grpc-message header's text (percent-encoded on the wire; kept as is if malformed). */
export function percentDecode(v: string): string {
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}
