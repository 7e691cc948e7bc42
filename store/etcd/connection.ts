// One HTTP/2 connection to one etcd member: TLS, the member's SETTINGS before any request, and
// PINGs that declare a silent member dead: keepalive PINGs while the connection is in use, and a
// PING as soon as calls wait on a member that has sent nothing for a second (a member frozen by
// SIGSTOP, or a peer gone without FIN, is left in seconds instead of at the call deadline).
import http2 from 'node:http2';
import type { EtcdTls } from '../etcd-options.js';

/** Something waiting for the connection to become usable (a call or a watch). */
export interface Waiter {
  /** The member's SETTINGS arrived (no error), or the connection failed first (nothing was sent). */
  ready(err?: Error): void;
}

export interface ConnectionOptions {
  tls?: EtcdTls;
  keepaliveTimeMs: number;
  keepaliveTimeoutMs: number;
}

/** How often a connection in use checks that its member still talks. */
const STALL_TICK_MS = 500;
/** Calls waiting and not a byte from the member for this long: PING it. */
const STALL_MS = 1_000;
/**
 * The answer to that PING is due within this. Go's HTTP/2 server (etcd) answers PINGs apart from
 * the requests it is serving, so a busy member still answers in milliseconds; one that does not
 * answer in 2 s is frozen or cut off.
 */
const STALL_PING_TIMEOUT_MS = 2_000;
/**
 * grpc-go servers (etcd, --grpc-keepalive-min-time 5 s) count a PING that follows the previous one
 * by less than this, with no data sent in between, as a strike, and close the connection after
 * three: stall PINGs keep to it unless the member sent something since the last PING.
 */
const MIN_PING_INTERVAL_MS = 5_000;

/** Big windows: a watch catching up gets many events per message, and 64 KiB would make it many round trips. */
const WINDOW = 16 << 20;

export class MemberConnection {
  readonly session: http2.ClientHttp2Session;
  /**
   * The member's SETTINGS arrived: requests are sent from now on. Until then nothing is written
   * for any call, so a call that fails before it can safely be retried elsewhere (like grpc-go,
   * which sends nothing on a transport before the server's preface).
   */
  ready = false;
  /** No new streams: failed, closed, or the member sent GOAWAY. */
  closed = false;
  /** The first failure, for error messages. */
  failure?: Error;
  private waiting: Waiter[] = [];
  /** Calls and watches using or waiting for this connection: referenced while any. */
  private active = 0;
  /** Unary calls among them: a silence while any waits is suspicious (a watch may be quiet). */
  private calls = 0;
  /** Counts headers and data received from the member, on any stream. */
  heard = 0;
  private heardAtTick = 0;
  private heardAtPing = 0;
  /** How long calls have waited with nothing heard, in ms (a multiple of STALL_TICK_MS). */
  private quietMs = 0;
  private lastPingAt = 0;
  private keepalive?: NodeJS.Timeout;
  private stallCheck?: NodeJS.Timeout;
  private pingTimer?: NodeJS.Timeout;

  constructor(
    readonly endpoint: string,
    private readonly opts: ConnectionOptions,
    private readonly onClosed: (conn: MemberConnection, err: Error | undefined) => void,
  ) {
    const url = new URL(endpoint);
    const tls = url.protocol === 'https:' && opts.tls ? { ca: opts.tls.ca, cert: opts.tls.cert, key: opts.tls.key } : {};
    const session = http2.connect(url.origin, { settings: { initialWindowSize: WINDOW }, ...tls });
    this.session = session;
    session.once('remoteSettings', () => {
      if (this.closed) return;
      this.ready = true;
      session.setLocalWindowSize(WINDOW);
      const waiting = this.waiting;
      this.waiting = [];
      for (const w of waiting) w.ready();
    });
    session.on('error', (e) => this.fail(e));
    // GOAWAY: streams already open finish; new ones go to a new connection.
    session.on('goaway', (code) => this.fail(new Error(`etcd sent GOAWAY (HTTP/2 error ${code})`)));
    session.on('close', () => this.fail(new Error('connection closed')));
    // A TLS alert after the handshake (etcd refusing the client certificate) reaches only the
    // socket: node destroys the session without an 'error' or 'close' event on it.
    session.socket.on('error', (e: Error) => this.fail(e));
    session.socket.on('close', () => this.fail(new Error('connection closed')));
    // Like grpc-js: an idle connection does not keep the process alive.
    session.unref();
    this.keepalive = setInterval(() => {
      if (this.active > 0) this.ping(opts.keepaliveTimeoutMs, 'keepalive PING');
    }, opts.keepaliveTimeMs);
    this.keepalive.unref();
    this.stallCheck = setInterval(() => this.checkStall(), STALL_TICK_MS);
    this.stallCheck.unref();
  }

  /** Runs `w.ready()` once the connection is usable (at once if it is). */
  wait(w: Waiter): void {
    if (this.closed) w.ready(this.failure ?? new Error('connection closed'));
    else if (this.ready) w.ready();
    else this.waiting.push(w);
  }

  /** Counts a user of the connection (keeps the process alive and the PINGs going); `call`: a unary call. */
  hold(call: boolean): void {
    if (call) this.calls++;
    if (this.active++ === 0) this.session.ref();
  }

  release(call: boolean): void {
    if (call) this.calls--;
    if (--this.active === 0 && !this.session.destroyed) this.session.unref();
  }

  /** Tears the connection down: streams on it fail, waiters get `err`. */
  destroy(err: Error): void {
    this.fail(err);
    this.session.destroy();
  }

  /** Every STALL_TICK_MS: PINGs a member that calls have waited on, hearing nothing, for STALL_MS. */
  private checkStall(): void {
    this.quietMs = this.calls > 0 && this.heard === this.heardAtTick ? this.quietMs + STALL_TICK_MS : 0;
    this.heardAtTick = this.heard;
    if (this.quietMs < STALL_MS || this.pingTimer) return;
    if (this.heard === this.heardAtPing && Date.now() - this.lastPingAt < MIN_PING_INTERVAL_MS) return;
    this.ping(STALL_PING_TIMEOUT_MS, `PING sent after calls waited ${this.quietMs} ms for a reply`);
  }

  /**
   * One PING at a time, and only while calls or watches use the connection, as gRPC clients do
   * by default: etcd (grpc-go) answers pings on an idle connection more often than every 2 h with
   * GOAWAY.
   */
  private ping(timeout: number, what: string): void {
    if (this.pingTimer || this.closed || this.session.destroyed) return;
    this.lastPingAt = Date.now();
    this.heardAtPing = this.heard;
    const timer = setTimeout(() => {
      // This process may have been busy past the timeout with the answer already read off the
      // socket: look once more after the I/O phase, which runs the PING's callback first.
      setImmediate(() => {
        if (this.pingTimer === timer) this.destroy(new Error(`no answer within ${timeout} ms to a ${what}`));
      });
    }, timeout);
    timer.unref();
    this.pingTimer = timer;
    try {
      this.session.ping((err) => {
        clearTimeout(this.pingTimer);
        this.pingTimer = undefined;
        if (err && !this.closed) this.destroy(err);
      });
    } catch {
      // Not connected yet: the timer above still declares the member dead if it stays silent.
    }
  }

  private fail(err: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.failure = err;
    clearInterval(this.keepalive);
    clearInterval(this.stallCheck);
    clearTimeout(this.pingTimer);
    this.pingTimer = undefined;
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) w.ready(err);
    this.onClosed(this, err);
  }
}
