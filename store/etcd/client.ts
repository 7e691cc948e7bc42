// kova's etcd client: gRPC over node:http2 for every call the store makes (KV Range/Put/Txn,
// Watch, Compact, Maintenance.Status), failing over between the cluster's members.
//
// Failover. Each call runs on the preferred member; when a member cannot serve it, the member is
// skipped for a short back-off and the call may be retried on the next one. Retrying is always
// safe for reads and compaction (idempotent). A write (a Txn with puts or deletes) is retried only
// when it certainly did not apply:
//  - nothing was sent: the member's HTTP/2 SETTINGS had not arrived (connection refused, TLS
//    failure, a silent member, a dead connection found by the call deadline or keepalive), or it
//    refused the stream (REFUSED_STREAM);
//  - etcd rejected it before proposing it to raft: "etcdserver: no leader" (every call carries
//    gRPC metadata `hasleader: true`, etcd's RequireLeader, so a member without a leader answers
//    this at once instead of timing the proposal out) and "etcdserver: too many requests".
// Anything else after the request left (a connection lost mid-call, "request timed out", "leader
// changed", a deadline) may have applied: it fails with UNAVAILABLE/DEADLINE_EXCEEDED, which
// the Store reports as Unavailable; the caller decides (the API server answers 503 and a
// client's retry meets the precondition or AlreadyExists if it had applied).
//
// Keepalive: every connection in use PINGs its member every keepaliveTimeMs; no answer within
// keepaliveTimeoutMs destroys the connection, failing its calls and watches over. Calls that wait
// a second on a member that sends nothing get a PING at once, due within 2 s (connection.ts): a
// frozen member costs its calls about 3 s, not the call deadline.
// Watches require a leader too: a member cut off from quorum cancels them ("no leader"), and the
// store re-opens them on another member after the last revision delivered (store/watch.ts).
import http2 from 'node:http2';
import type { EtcdConnectionOptions, EtcdTls } from '../etcd-options.js';
import { MemberConnection, type Waiter } from './connection.js';
import { FrameDecoder } from './frames.js';
import {
  Reader, Writer, readCompaction, readDeleteRange, readPut, readRange, readStatus, readTxn, readWatch,
  writeCompaction, writeDeleteRange, writePut, writeRange, writeTxn, writeWatchCreate,
  type CompactionRequest, type CompactionResponse, type DeleteRangeRequest, type DeleteRangeResponse, type PutRequest,
  type PutResponse, type RangeRequest, type RangeResponse, type StatusResponse, type TxnRequest, type TxnResponse,
  type WatchCreate, type WatchResponse,
} from './proto.js';
import { Code, EtcdRpcError, percentDecode } from './rpc-error.js';

export { EtcdRpcError } from './rpc-error.js';

export interface WatchStream {
  /** Cancels the watch; no callback runs after this. */
  close(): void;
}

export interface WatchCallbacks {
  response(res: WatchResponse): void;
  /**
   * The stream ended without close(): the member went away, lost its leader, or etcd refused the
   * watch. Called at most once; the member is then skipped for a while, so opening the watch
   * again goes to another member.
   */
  end(err: EtcdRpcError): void;
}

export const DEFAULT_CALL_DEADLINE_MS = 10_000;
export const DEFAULT_KEEPALIVE_TIME_MS = 30_000;
export const DEFAULT_KEEPALIVE_TIMEOUT_MS = 10_000;
/** A failed member is skipped for 200 ms, doubling per consecutive failure up to 5 s. */
const BACKOFF_MIN_MS = 200;
const BACKOFF_MAX_MS = 5_000;

/** etcd rejected the request before proposing it: it did not apply anywhere. */
const NOT_APPLIED = /etcdserver: (no leader|too many requests)/;

const enum Retry { Always, IfNotApplied, Never }

interface Member {
  readonly url: string;
  readonly index: number;
  conn?: MemberConnection;
  failures: number;
  /** Skipped until then (ms since epoch). */
  downUntil: number;
}

function headers(path: string): http2.OutgoingHttpHeaders {
  return { ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', hasleader: 'true' };
}
const RANGE = headers('/etcdserverpb.KV/Range');
const PUT = headers('/etcdserverpb.KV/Put');
const DELETE_RANGE = headers('/etcdserverpb.KV/DeleteRange');
const TXN = headers('/etcdserverpb.KV/Txn');
const COMPACT = headers('/etcdserverpb.KV/Compact');
const STATUS = headers('/etcdserverpb.Maintenance/Status');
const WATCH = headers('/etcdserverpb.Watch/Watch');
const REQUEST_OPTIONS: http2.ClientSessionRequestOptions = { endStream: false };
const EMPTY_FRAME = Buffer.from([0, 0, 0, 0, 0]);

export interface EtcdMemberStatus {
  endpoint: string;
  /** Decimal uint64, as etcdctl prints them in hex: compare as strings. */
  memberId: string;
  version: string;
  leader: string;
  raftTerm: string;
}

export interface EtcdClusterInfo {
  clusterId: string;
  /** Members that answered. */
  members: EtcdMemberStatus[];
  /** Endpoints that did not answer (stopped, or no route); fatal only with requireAll. */
  unreachable: Array<{ endpoint: string; error: string }>;
}

/**
 * Why the members' etcd is slower than it should be, or undefined: etcd before 3.5 copies the
 * backend's buffer of uncommitted writes for every write transaction, and every kova write is
 * one (fixed in 3.5, etcd pull request 12896; docs/ha.md has the figures).
 */
export function etcdVersionAdvice(members: Array<Pick<EtcdMemberStatus, 'endpoint' | 'version'>>): string | undefined {
  const old = members.filter((m) => {
    const [major, minor] = m.version.split('.').map(Number);
    return major! < 3 || (major === 3 && minor! < 5);
  });
  if (!old.length) return undefined;
  const which = old.map((m) => `${m.endpoint} (${m.version})`).join(', ');
  return `etcd ${which} is older than 3.5: every write costs etcd about 1.6 times the CPU it does on 3.5. Upgrade it (on Debian 12, hack/install-host-deps.sh installs 3.5 for kova's own etcd)`;
}

export class EtcdClient {
  readonly endpoints: readonly string[];
  readonly callDeadlineMs: number;
  private readonly members: Member[];
  private preferred = 0;
  private closed = false;
  private readonly connOpts: { tls?: EtcdTls; keepaliveTimeMs: number; keepaliveTimeoutMs: number };
  /** Reused by every call to encode its request (calls copy the result out). */
  private readonly writer = new Writer(4096);

  constructor(opts: EtcdConnectionOptions | string[]) {
    const o: EtcdConnectionOptions = Array.isArray(opts) ? { endpoints: opts } : opts;
    if (o.endpoints.length === 0) throw new Error('etcd: no endpoints');
    if (o.endpoints.length > 31) throw new Error('etcd: at most 31 endpoints');
    for (const e of o.endpoints) {
      let url: URL;
      try {
        url = new URL(e);
      } catch {
        throw new Error(`etcd endpoint ${JSON.stringify(e)} is not a URL: give http://host:port or https://host:port`);
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`etcd endpoint ${e}: the scheme must be http or https`);
    }
    this.endpoints = [...o.endpoints];
    this.members = o.endpoints.map((url, index) => ({ url, index, failures: 0, downUntil: 0 }));
    this.callDeadlineMs = positive(o.callDeadlineMs, DEFAULT_CALL_DEADLINE_MS, 'callDeadlineMs');
    this.connOpts = {
      tls: o.tls,
      keepaliveTimeMs: positive(o.keepaliveTimeMs, DEFAULT_KEEPALIVE_TIME_MS, 'keepaliveTimeMs'),
      keepaliveTimeoutMs: positive(o.keepaliveTimeoutMs, DEFAULT_KEEPALIVE_TIMEOUT_MS, 'keepaliveTimeoutMs'),
    };
  }

  range(req: RangeRequest): Promise<RangeResponse> {
    writeRange(this.start(), req);
    return this.unary(RANGE, this.body(), readRange, Retry.Always);
  }

  put(req: PutRequest): Promise<PutResponse> {
    writePut(this.start(), req);
    return this.unary(PUT, this.body(), readPut, Retry.IfNotApplied);
  }

  deleteRange(req: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    writeDeleteRange(this.start(), req);
    return this.unary(DELETE_RANGE, this.body(), readDeleteRange, Retry.IfNotApplied);
  }

  txn(req: TxnRequest): Promise<TxnResponse> {
    writeTxn(this.start(), req);
    return this.unary(TXN, this.body(), readTxn, writes(req) ? Retry.IfNotApplied : Retry.Always);
  }

  /** Compaction is idempotent: a retry of an applied one fails "required revision has been compacted". */
  compact(req: CompactionRequest): Promise<CompactionResponse> {
    writeCompaction(this.start(), req);
    return this.unary(COMPACT, this.body(), readCompaction, Retry.Always);
  }

  /** Maintenance.Status of whichever member answers (or of `endpoint` only). */
  status(endpoint?: string): Promise<StatusResponse> {
    const only = endpoint === undefined ? undefined : this.members.find((m) => m.url === endpoint);
    if (endpoint !== undefined && !only) return Promise.reject(new Error(`etcd: ${endpoint} is not one of the endpoints`));
    return this.unary(STATUS, EMPTY_FRAME, readStatus, only ? Retry.Never : Retry.Always, only);
  }

  /**
   * Checks at start what would otherwise surface later as puzzling failures: each endpoint is
   * asked for its status within the call deadline; TLS problems (unknown CA, refused client
   * certificate, plain HTTP on a TLS port) and members of different clusters are errors that name
   * the endpoint and the flag to fix. An endpoint that does not answer is an error only when none
   * does or with `requireAll` (a restart must work while one member of three is down); it is
   * listed in `unreachable` for the caller to warn about.
   */
  async verify(opts: { requireAll?: boolean } = {}): Promise<EtcdClusterInfo> {
    const results = await Promise.all(this.members.map(async (m) => {
      try {
        return { m, status: await this.status(m.url) };
      } catch (err) {
        return { m, err: err as Error };
      }
    }));
    const problems: string[] = [];
    const unreachable: EtcdClusterInfo['unreachable'] = [];
    const members: EtcdMemberStatus[] = [];
    const byCluster = new Map<string, string[]>();
    for (const r of results) {
      if (r.status) {
        const h = r.status.header;
        members.push({ endpoint: r.m.url, memberId: h.member_id, version: r.status.version, leader: r.status.leader, raftTerm: r.status.raft_term });
        byCluster.set(h.cluster_id, [...(byCluster.get(h.cluster_id) ?? []), r.m.url]);
        continue;
      }
      const cause = (r.err as { cause?: unknown }).cause;
      if (isConfigError(cause)) problems.push(explain(r.m.url, cause as Error));
      else unreachable.push({ endpoint: r.m.url, error: r.err!.message });
    }
    if (byCluster.size > 1) {
      const groups = [...byCluster].map(([id, eps]) => `${eps.join(', ')} (cluster ${hex(id)})`);
      problems.push(`etcd endpoints belong to different clusters: ${groups.join(' vs ')}; every --etcd-endpoints URL must be a member of the same cluster`);
    }
    if (members.length === 0 || opts.requireAll) problems.push(...unreachable.map((u) => u.error));
    if (problems.length) throw new Error(problems.join('; '));
    return { clusterId: [...byCluster.keys()][0]!, members, unreachable };
  }

  /**
   * Opens one Watch stream with one watcher (a stream per watch keeps cancelation simple).
   * Until etcd confirms the watch, a member that fails is replaced by the next one; afterwards
   * a failure ends the watch (`end`) and the caller re-opens it from where it got to.
   */
  watch(req: WatchCreate, cb: WatchCallbacks): WatchStream {
    writeWatchCreate(this.start(), req);
    const w = new WatchCall(this, this.body(), cb);
    if (this.closed) queueMicrotask(() => w.end(new EtcdRpcError(Code.Cancelled, 'CANCELLED: etcd client closed')));
    else this.attemptWatch(w);
    return w;
  }

  /** Tears the connections down at once; calls still in flight fail. */
  close(): void {
    this.closed = true;
    for (const m of this.members) {
      m.conn?.destroy(new Error('etcd client closed'));
      m.conn = undefined;
    }
  }

  // ---- internals ----

  private start(): Writer {
    const w = this.writer;
    w.pos = 5; // room for the gRPC frame header
    return w;
  }

  /** The framed request, copied out of the shared writer. */
  private body(): Buffer {
    const w = this.writer;
    const out = Buffer.allocUnsafe(w.pos);
    w.buf.copy(out, 0, 0, w.pos);
    out[0] = 0;
    out.writeUInt32BE(w.pos - 5, 1);
    return out;
  }

  private unary<T>(hdrs: http2.OutgoingHttpHeaders, body: Buffer, decode: (r: Reader) => T, retry: Retry, only?: Member): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const c = new UnaryCall<T>(this, hdrs, body, decode, retry, resolve, reject);
      if (this.closed) return c.finish(new EtcdRpcError(Code.Cancelled, 'CANCELLED: etcd client closed'));
      if (only) c.tried = ~(1 << only.index);
      this.attempt(c);
    });
  }

  /** Runs `c` on the next member it has not tried; fails it with its last error when none is left. */
  attempt(c: UnaryCall<any>): void {
    const m = this.pick(c.tried);
    if (!m) return c.finish(c.lastError ?? new EtcdRpcError(Code.Unavailable, 'UNAVAILABLE: no etcd endpoint to try'));
    c.tried |= 1 << m.index;
    c.member = m;
    let conn: MemberConnection;
    try {
      conn = this.connection(m);
    } catch (e) {
      const err = unavailable(m.url, e as Error);
      this.memberFailed(m);
      c.lastError = err;
      return this.attempt(c);
    }
    c.conn = conn;
    c.sent = false;
    c.code = undefined;
    c.message = '';
    c.chunks = undefined;
    c.streamError = undefined;
    conn.hold(true);
    c.timer = setTimeout(onUnaryDeadline, this.callDeadlineMs, c);
    conn.wait(c);
  }

  /** The unary call's connection is usable (or failed before anything was sent). */
  issue(c: UnaryCall<any>): void {
    const stream = openStream(c, c.headers, UNARY_HANDLERS);
    if (stream instanceof Error) return this.attemptFailed(c, unavailable(c.conn!.endpoint, stream), true);
    stream.end(c.body);
  }

  /** The stream of `c` closed: a reply, a gRPC error, or a broken stream. */
  settle(c: UnaryCall<any>): void {
    const m = c.member!;
    if (c.code === 0) {
      clearTimeout(c.timer);
      c.conn!.release(true);
      c.stream = undefined;
      m.failures = 0;
      return c.decodeReply();
    }
    if (c.code !== undefined) {
      const err = new EtcdRpcError(c.code, c.message || `gRPC status ${c.code}`);
      // Unavailable (no leader, stopping, timed out) or overloaded: this member cannot serve it now.
      const memberTrouble = c.code === Code.Unavailable || (c.code === Code.ResourceExhausted && NOT_APPLIED.test(c.message));
      if (!memberTrouble) {
        clearTimeout(c.timer);
        c.conn!.release(true);
        c.stream = undefined;
        return c.finish(err);
      }
      return this.attemptFailed(c, err, NOT_APPLIED.test(c.message));
    }
    const refused = c.stream?.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM;
    const cause = c.streamError ?? c.conn!.failure;
    this.attemptFailed(c, unavailable(m.url, cause ?? new Error('the stream closed without a gRPC status')), refused);
  }

  /**
   * One member failed `c`: skip it for a while, and retry elsewhere when that is safe (see the
   * top of the file); `notApplied` says the request certainly did not take effect.
   */
  attemptFailed(c: UnaryCall<any>, err: EtcdRpcError, notApplied: boolean): void {
    clearTimeout(c.timer);
    c.conn!.release(true);
    c.stream = undefined;
    this.memberFailed(c.member!);
    c.lastError = err;
    const safe = c.retry === Retry.Always || (c.retry === Retry.IfNotApplied && (notApplied || !c.sent));
    if (safe && !this.closed) this.attempt(c);
    else c.finish(err);
  }

  attemptWatch(w: WatchCall): void {
    const m = this.pick(w.tried);
    if (!m) return w.end(w.lastError ?? new EtcdRpcError(Code.Unavailable, 'UNAVAILABLE: no etcd endpoint to try'));
    w.tried |= 1 << m.index;
    w.member = m;
    let conn: MemberConnection;
    try {
      conn = this.connection(m);
    } catch (e) {
      this.memberFailed(m);
      w.lastError = unavailable(m.url, e as Error);
      return this.attemptWatch(w);
    }
    w.conn = conn;
    w.sent = false;
    w.code = undefined;
    w.message = '';
    w.streamError = undefined;
    w.decoder = new FrameDecoder();
    conn.hold(false);
    w.held = true;
    w.timer = setTimeout(onWatchDeadline, this.callDeadlineMs, w);
    conn.wait(w);
  }

  issueWatch(w: WatchCall): void {
    const stream = openStream(w, WATCH, WATCH_HANDLERS);
    if (stream instanceof Error) return this.watchFailed(w, unavailable(w.conn!.endpoint, stream));
    stream.write(w.body);
  }

  /** The watch's stream or connection failed: before etcd confirmed it, try the next member. */
  watchFailed(w: WatchCall, err: EtcdRpcError): void {
    w.detach();
    if (w.done) return;
    const memberTrouble = err.code === Code.Unavailable || err.code === Code.DeadlineExceeded;
    if (memberTrouble) this.memberFailed(w.member!);
    if (!w.created && memberTrouble && !this.closed) {
      w.lastError = err;
      return this.attemptWatch(w);
    }
    w.end(err);
  }

  watchCreated(w: WatchCall): void {
    clearTimeout(w.timer);
    w.member!.failures = 0;
  }

  /** The preferred member unless tried or backing off; else the next one; else the one back soonest. */
  private pick(tried: number): Member | undefined {
    const n = this.members.length;
    const now = Date.now();
    let soonest: Member | undefined;
    for (let i = 0; i < n; i++) {
      const m = this.members[(this.preferred + i) % n]!;
      if (tried & (1 << m.index)) continue;
      if (m.downUntil <= now) {
        this.preferred = m.index;
        return m;
      }
      if (!soonest || m.downUntil < soonest.downUntil) soonest = m;
    }
    return soonest;
  }

  private memberFailed(m: Member): void {
    m.failures++;
    m.downUntil = Date.now() + Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (m.failures - 1));
    if (this.preferred === m.index) this.preferred = (m.index + 1) % this.members.length;
  }

  private connection(m: Member): MemberConnection {
    if (m.conn && !m.conn.closed) return m.conn;
    const conn = new MemberConnection(m.url, this.connOpts, (c, err) => {
      if (m.conn !== c) return;
      m.conn = undefined;
      // Failed before it ever worked, or died (keepalive, reset): skip the member for a while.
      // A GOAWAY alone is a member closing gracefully (restart, too many pings): just re-dial.
      if (!(err?.message.startsWith('etcd sent GOAWAY') && c.ready)) this.memberFailed(m);
    });
    m.conn = conn;
    return conn;
  }
}

const CALL = Symbol('etcd call');
type CallStream = http2.ClientHttp2Stream & { [CALL]: UnaryCall<any> | WatchCall };

interface StreamHandlers {
  headers(this: CallStream, h: http2.IncomingHttpHeaders): void;
  data(this: CallStream, chunk: Buffer): void;
  error(this: CallStream, e: Error): void;
  close(this: CallStream): void;
}

/** Opens the call's stream on its connection (or returns why it could not) and wires its events. */
function openStream(call: UnaryCall<any> | WatchCall, hdrs: http2.OutgoingHttpHeaders, h: StreamHandlers): http2.ClientHttp2Stream | Error {
  let stream: http2.ClientHttp2Stream;
  try {
    stream = call.conn!.session.request(hdrs, REQUEST_OPTIONS);
  } catch (e) {
    return e as Error;
  }
  call.sent = true;
  call.stream = stream;
  (stream as CallStream)[CALL] = call;
  stream.on('response', h.headers);
  stream.on('trailers', h.headers);
  stream.on('data', h.data);
  stream.on('error', h.error);
  stream.on('close', h.close);
  return stream;
}

/** One unary call across its attempts. Handlers are shared functions (no closures per call). */
class UnaryCall<T> implements Waiter {
  tried = 0;
  member?: Member;
  conn?: MemberConnection;
  stream?: http2.ClientHttp2Stream;
  /** The request left for the member (it may have applied). */
  sent = false;
  code?: number;
  message = '';
  chunks?: Buffer | Buffer[];
  streamError?: Error;
  timer?: NodeJS.Timeout;
  lastError?: EtcdRpcError;
  private settled = false;

  constructor(
    readonly client: EtcdClient,
    readonly headers: http2.OutgoingHttpHeaders,
    readonly body: Buffer,
    private readonly decode: (r: Reader) => T,
    readonly retry: Retry,
    private readonly resolve: (v: T) => void,
    private readonly reject: (e: Error) => void,
  ) {}

  ready(err?: Error): void {
    if (this.settled || this.stream) return;
    if (err) return this.client.attemptFailed(this, unavailable(this.conn!.endpoint, err), true);
    this.client.issue(this);
  }

  finish(err: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.reject(err);
  }

  decodeReply(): void {
    if (this.settled) return;
    this.settled = true;
    const c = this.chunks;
    const body = c === undefined ? EMPTY : Array.isArray(c) ? Buffer.concat(c) : c;
    const path = this.headers[':path'];
    if (body.length < 5 || body[0] !== 0) return this.reject(new EtcdRpcError(Code.Internal, `INTERNAL: malformed gRPC reply to ${path}`));
    const len = body.readUInt32BE(1);
    if (body.length < 5 + len) return this.reject(new EtcdRpcError(Code.Internal, `INTERNAL: truncated gRPC reply to ${path}`));
    let value: T;
    try {
      value = this.decode(new Reader(body, 5, 5 + len));
    } catch (e) {
      return this.reject(new EtcdRpcError(Code.Internal, `INTERNAL: ${(e as Error).message}`));
    }
    this.resolve(value);
  }
}

const EMPTY = Buffer.alloc(0);

function onUnaryHeaders(this: CallStream, h: http2.IncomingHttpHeaders): void {
  const c = this[CALL] as UnaryCall<any>;
  if (c.stream !== this) return;
  c.conn!.heard++;
  const code = h['grpc-status'];
  if (code === undefined) return;
  c.code = Number(code);
  const m = h['grpc-message'];
  if (typeof m === 'string') c.message = percentDecode(m);
  // The status ends the call: settle now rather than a tick later on 'close' (latency at
  // concurrency 1 is throughput). A reply whose data is not all in yet waits for 'close'.
  if (c.code !== 0 || replyComplete(c.chunks)) c.client.settle(c);
}

function replyComplete(chunks: Buffer | Buffer[] | undefined): boolean {
  if (chunks === undefined) return false;
  let n = 0;
  let first: Buffer;
  if (Array.isArray(chunks)) {
    for (const x of chunks) n += x.length;
    first = chunks[0]!.length >= 5 ? chunks[0]! : Buffer.concat(chunks);
  } else {
    n = chunks.length;
    first = chunks;
  }
  return first.length >= 5 && n >= 5 + first.readUInt32BE(1);
}

function onUnaryData(this: CallStream, chunk: Buffer): void {
  const c = this[CALL] as UnaryCall<any>;
  if (c.stream !== this) return;
  c.conn!.heard++;
  const have = c.chunks;
  if (have === undefined) c.chunks = chunk;
  else if (Array.isArray(have)) have.push(chunk);
  else c.chunks = [have, chunk];
}

function onUnaryError(this: CallStream, e: Error): void {
  const c = this[CALL] as UnaryCall<any>;
  if (c.stream === this) c.streamError ??= e;
}

function onUnaryClose(this: CallStream): void {
  const c = this[CALL] as UnaryCall<any>;
  if (c.stream !== this) return; // an attempt given up on (deadline)
  c.client.settle(c);
}

function onUnaryDeadline(c: UnaryCall<any>): void {
  const ms = c.client.callDeadlineMs;
  const path = c.headers[':path'];
  const err = new EtcdRpcError(Code.DeadlineExceeded, `DEADLINE_EXCEEDED: etcd ${c.member!.url} did not answer ${path} within ${ms} ms`);
  if (!c.sent) {
    // Not even the member's SETTINGS within the deadline: the connection is useless; its
    // waiters (this call among them) move on with nothing sent.
    c.conn!.destroy(err);
    return;
  }
  // attemptFailed forgets the stream first, so its late 'close' is ignored.
  const stream = c.stream;
  c.client.attemptFailed(c, err, false);
  stream?.close(http2.constants.NGHTTP2_CANCEL);
}

/** One watch across the members tried until etcd confirms it. */
class WatchCall implements Waiter, WatchStream {
  tried = 0;
  member?: Member;
  conn?: MemberConnection;
  stream?: http2.ClientHttp2Stream;
  sent = false;
  held = false;
  created = false;
  done = false;
  code?: number;
  message = '';
  streamError?: Error;
  timer?: NodeJS.Timeout;
  lastError?: EtcdRpcError;
  decoder = new FrameDecoder();

  constructor(readonly client: EtcdClient, readonly body: Buffer, private readonly cb: WatchCallbacks) {}

  ready(err?: Error): void {
    if (this.done || this.stream) return;
    if (err) return this.client.watchFailed(this, unavailable(this.conn!.endpoint, err));
    this.client.issueWatch(this);
  }

  response(res: WatchResponse): void {
    if (res.created && !this.created) {
      this.created = true;
      this.client.watchCreated(this);
    }
    this.cb.response(res);
  }

  /** Lets go of the current attempt's stream, timer and connection. */
  detach(): void {
    clearTimeout(this.timer);
    const s = this.stream;
    this.stream = undefined;
    if (s && !s.closed) s.close(http2.constants.NGHTTP2_CANCEL);
    if (this.held) {
      this.held = false;
      this.conn!.release(false);
    }
  }

  end(err: EtcdRpcError): void {
    if (this.done) return;
    this.done = true;
    this.detach();
    this.cb.end(err);
  }

  close(): void {
    if (this.done) return;
    this.done = true;
    this.detach();
  }
}

function onWatchHeaders(this: CallStream, h: http2.IncomingHttpHeaders): void {
  const w = this[CALL] as WatchCall;
  if (w.stream !== this) return;
  w.conn!.heard++;
  const code = h['grpc-status'];
  if (code === undefined) return;
  w.code = Number(code);
  const m = h['grpc-message'];
  if (typeof m === 'string') w.message = percentDecode(m);
}

function onWatchData(this: CallStream, chunk: Buffer): void {
  const w = this[CALL] as WatchCall;
  if (w.stream !== this || w.done) return;
  w.conn!.heard++;
  w.decoder.push(chunk);
  for (;;) {
    let res: WatchResponse;
    try {
      const msg = w.decoder.next();
      if (!msg) return;
      res = readWatch(new Reader(msg));
    } catch (e) {
      return w.end(new EtcdRpcError(Code.Internal, `INTERNAL: ${(e as Error).message}`));
    }
    w.response(res);
    if (w.done || w.stream !== this) return;
  }
}

function onWatchError(this: CallStream, e: Error): void {
  const w = this[CALL] as WatchCall;
  if (w.stream === this) w.streamError ??= e;
}

function onWatchClose(this: CallStream): void {
  const w = this[CALL] as WatchCall;
  if (w.stream !== this || w.done) return;
  const err = w.code
    ? new EtcdRpcError(w.code, w.message || `gRPC status ${w.code}`)
    : unavailable(w.member!.url, w.streamError ?? w.conn!.failure ?? new Error('etcd ended the watch stream'));
  w.client.watchFailed(w, err);
}

function onWatchDeadline(w: WatchCall): void {
  const err = new EtcdRpcError(Code.DeadlineExceeded, `DEADLINE_EXCEEDED: etcd ${w.member!.url} did not confirm a watch within ${w.client.callDeadlineMs} ms`);
  if (!w.sent) return w.conn!.destroy(err);
  w.client.watchFailed(w, err);
}

/** A Txn with writes must not be repeated blindly; one with only reads can. */
function writes(t: TxnRequest): boolean {
  const has = (ops?: TxnRequest['success']) => !!ops?.some((op) => !('request_range' in op));
  return has(t.success) || has(t.failure);
}

function positive(v: number | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`etcd ${name} must be a positive number of milliseconds, got ${v}`);
  // Node timers take at most 2^31-1 ms (larger ones fire after 1 ms).
  return Math.min(v, 2 ** 31 - 1);
}

function unavailable(endpoint: string, cause: Error): EtcdRpcError {
  if (cause instanceof EtcdRpcError) return cause;
  return new EtcdRpcError(Code.Unavailable, `UNAVAILABLE: ${explain(endpoint, cause)}`, { cause });
}

const UNKNOWN_CA = new Set(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_SIGNATURE_FAILURE']);

/** TLS and identity problems: fixed by configuration, not by waiting. */
function isConfigError(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const code = (e as NodeJS.ErrnoException).code ?? '';
  return UNKNOWN_CA.has(code) || code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS') || code.startsWith('CERT_') || /alert|wrong version number|certificate/i.test(e.message);
}

/** A connection failure in words that say what to check. */
export function explain(endpoint: string, err: Error): string {
  let e = err;
  const code = (err as NodeJS.ErrnoException).code ?? '';
  const at = `etcd ${endpoint}`;
  // OpenSSL's messages carry its source location: keep the alert's name.
  const tlsAlert = /alert ([a-z ]+)/.exec(e.message)?.[1]?.trim();
  if (tlsAlert) e = new Error(`TLS alert: ${tlsAlert}`);
  if (UNKNOWN_CA.has(code)) return `${at}: certificate signed by unknown authority (${e.message}): check --etcd-cafile`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `${at}: its certificate is not valid for this address (${e.message}): the certificate's SANs must include the endpoint's host`;
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return `${at}: ${e.message}: renew etcd's serving certificate`;
  if (/wrong version number|packet length too long|http request/i.test(e.message)) return `${at}: does not speak TLS (${e.message}): use http:// for this endpoint`;
  if (tlsAlert || /certificate/i.test(e.message) || code.startsWith('ERR_SSL')) return `${at} refused the TLS handshake (${e.message}): check --etcd-certfile and --etcd-keyfile (a client certificate signed by a CA etcd trusts) and --etcd-cafile`;
  if (code === 'ECONNREFUSED') return `${at}: connection refused (is etcd running there?)`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `${at}: host not found`;
  if (endpoint.startsWith('http:') && /protocol error|ERR_HTTP2_ERROR|closed/i.test(`${code} ${e.message}`)) return `${at}: ${e.message} (an https endpoint given as http://?)`;
  return `${at}: ${e.message}`;
}

function hex(dec: string): string {
  try {
    return BigInt(dec).toString(16);
  } catch {
    return dec;
  }
}

const UNARY_HANDLERS: StreamHandlers = { headers: onUnaryHeaders, data: onUnaryData, error: onUnaryError, close: onUnaryClose };
const WATCH_HANDLERS: StreamHandlers = { headers: onWatchHeaders, data: onWatchData, error: onWatchError, close: onWatchClose };
