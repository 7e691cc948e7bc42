// The secure /metrics port of a kova process other than the API server (controllers, agents),
// as kube-controller-manager's --secure-port: HTTPS, every scrape authenticated and authorized
// through the API server (DelegatedAuth: TokenReview + SubjectAccessReview `get /metrics`, both
// cached), /healthz open to anyone, nothing else served. It accepts no request body, bounds
// how long headers may take and how many connections stay open, and answers refusals with
// Kubernetes Status JSON as kube does.
import http from 'node:http';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { collectProcessMetrics, exposition } from '../lib/metrics.js';
import type { DelegatedAuth } from './delegated-auth.js';

export interface MetricsServerOptions {
  /** `host:port` to listen on (`[::1]:9443` for IPv6); port 0 picks a free one. */
  bind: string;
  /** Serving certificate and key (PEM). Required unless `insecure`. */
  tls?: { cert: string; key: string };
  /** Who may scrape. Required unless `insecure`: then anyone may (tests, a private port). */
  auth: DelegatedAuth | undefined;
  /** Serve without TLS when `tls` is absent, and without authentication when `auth` is: said out loud. */
  insecure?: boolean;
  /** Closes the server when aborted. */
  signal: AbortSignal;
  log?: (msg: string) => void;
}

export interface MetricsServer {
  /** `https://host:port` (http when insecure without TLS). */
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Open connections at most: scrapers are few, so more is a flood. */
const MAX_CONNECTIONS = 128;
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;
const KEEP_ALIVE_TIMEOUT_MS = 65_000;
const MAX_HEADER_BYTES = 16 * 1024;
/** One log line about the API server being unreachable per this period, not one per scrape. */
const UNAVAILABLE_LOG_EVERY_MS = 10_000;

/** Splits `host:port` (`[v6]:port`); throws on anything else. */
export function parseBind(bind: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(bind);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`metrics bind address ${JSON.stringify(bind)}: want host:port (port 0-65535)`);
  return { host: (m[1] ?? m[2])!, port };
}

function status(res: ServerResponse, code: number, reason: string, message: string, headers: Record<string, string> = {}): void {
  const text = JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function text(res: ServerResponse, code: number, body: string, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(code, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

const hasBody = (req: IncomingMessage) =>
  req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');

export async function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  if (!opts.insecure && !opts.tls) throw new Error('metrics server: a serving certificate is required (or insecure: true)');
  if (!opts.insecure && !opts.auth) throw new Error('metrics server: delegated authentication is required (or insecure: true)');
  if (opts.signal.aborted) throw new Error('metrics server: aborted before it started');
  const { host, port } = parseBind(opts.bind);
  const log = opts.log ?? (() => undefined);
  const auth = opts.auth;
  collectProcessMetrics();
  let lastUnavailableLog = 0;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path !== '/metrics' && path !== '/healthz') return status(res, 404, 'NotFound', 'the server could not find the requested resource');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return status(res, 405, 'MethodNotAllowed', `the server does not allow this method on the requested resource (${req.method})`, { Allow: 'GET, HEAD' });
    }
    // A GET carries no body: one that claims to would be read by no one.
    if (hasBody(req)) {
      res.setHeader('Connection', 'close');
      return status(res, 413, 'RequestEntityTooLarge', 'this endpoint accepts no request body');
    }
    if (path === '/healthz') return text(res, 200, 'ok');
    if (auth) {
      const d = await auth.check(req, 'get', path);
      if (d.code === 503) {
        if (Date.now() - lastUnavailableLog >= UNAVAILABLE_LOG_EVERY_MS) {
          lastUnavailableLog = Date.now();
          log(`metrics: answering 503: ${d.message}`);
        }
        return status(res, 503, 'ServiceUnavailable', d.message, { 'Retry-After': '1' });
      }
      if (d.code === 401) return status(res, 401, 'Unauthorized', d.message);
      if (d.code === 403) return status(res, 403, 'Forbidden', d.message);
    }
    const { contentType, body } = await exposition();
    text(res, 200, body, contentType);
  }

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((e: unknown) => {
      log(`metrics: failed to answer ${req.method} ${JSON.stringify((req.url ?? '').slice(0, 200))}: ${(e as Error)?.stack ?? e}`);
      if (!res.headersSent) status(res, 500, 'InternalError', 'an error on the server prevented the request from succeeding');
      else res.destroy();
    });
  };
  // Client certificates are asked for (not required) when the auth accepts them; one from another
  // CA just leaves socket.authorized false and is no identity.
  const clientCerts = auth?.clientCA ? { ca: auth.clientCA, requestCert: true, rejectUnauthorized: false } : {};
  const server = opts.tls
    ? https.createServer({ cert: opts.tls.cert, key: opts.tls.key, maxHeaderSize: MAX_HEADER_BYTES, ...clientCerts }, handler)
    : http.createServer({ maxHeaderSize: MAX_HEADER_BYTES }, handler);
  server.maxConnections = MAX_CONNECTIONS;
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.maxRequestsPerSocket = 1000;
  server.on('clientError', (_err: Error, socket: Socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });
  // TLS handshakes that fail (a plain-HTTP scraper, a port scan) are not worth a log line each.
  server.on('tlsClientError', () => undefined);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (e) => log(`metrics: server error: ${e.message}`));

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= new Promise<void>((resolve) => {
      opts.signal.removeEventListener('abort', close);
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return closing;
  };
  opts.signal.addEventListener('abort', close, { once: true });

  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `${opts.tls ? 'https' : 'http'}://${shownHost}:${addr.port}`;
  log(`metrics: serving ${url}/metrics${auth ? '' : ' WITHOUT authentication'}`);
  return { url, port: addr.port, close };
}
