// One HTTP/2 connection to one etcd member: TLS, the member's SETTINGS before any request, and
// keepalive PINGs that declare a silent member dead.
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
  private keepalive?: NodeJS.Timeout;
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
    this.keepalive = setInterval(() => this.ping(), opts.keepaliveTimeMs);
    this.keepalive.unref();
  }

  /** Runs `w.ready()` once the connection is usable (at once if it is). */
  wait(w: Waiter): void {
    if (this.closed) w.ready(this.failure ?? new Error('connection closed'));
    else if (this.ready) w.ready();
    else this.waiting.push(w);
  }

  /** Counts a user of the connection (keeps the process alive and the keepalive running). */
  hold(): void {
    if (this.active++ === 0) this.session.ref();
  }

  release(): void {
    if (--this.active === 0 && !this.session.destroyed) this.session.unref();
  }

  /** Tears the connection down: streams on it fail, waiters get `err`. */
  destroy(err: Error): void {
    this.fail(err);
    this.session.destroy();
  }

  /**
   * PINGs only while calls or watches use the connection, as gRPC clients do by default: etcd
   * (grpc-go) answers pings on an idle connection more often than every 2 h with GOAWAY.
   */
  private ping(): void {
    if (this.active === 0 || this.pingTimer || this.session.destroyed) return;
    const timeout = this.opts.keepaliveTimeoutMs;
    this.pingTimer = setTimeout(() => this.destroy(new Error(`no answer to a keepalive PING within ${timeout} ms`)), timeout);
    this.pingTimer.unref();
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
    clearTimeout(this.pingTimer);
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) w.ready(err);
    this.onClosed(this, err);
  }
}
