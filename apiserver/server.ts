// The HTTP(S) front of the API server: authentication, health, discovery, OpenAPI and the
// REST verbs on every registered resource. Object rules live in ResourceStore.
import http from 'node:http';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Registry } from '../api/registry.js';
import { writtenObjectJson } from '../store/codec.js';
import type { KObject, ResourceInfo } from '../api/types.js';
import { groupVersion } from '../api/types.js';
import { aggregatedDiscovery, AGGREGATED_CONTENT_TYPE, supportsDeleteCollection, apiGroupList, apiResourceList, apiVersions, SERVER_VERSION, wantsAggregated } from './discovery.js';
import { openapiV3Document, openapiV3Index } from './openapi.js';
import { BODY_TIMEOUT_MS, boolParam, requestTarget, checkObjectBody, listParams, parseJson, parseObjectBody, parseYaml, readBody, readBodyBytes, routeResource, writeQuery } from './request.js';
import type { ListParams, ResourceRoute } from './request.js';
import { PATCH_CONTENT_TYPES, ResourceStore } from './resource-store.js';
import type { DeleteOptions, WriteOptions } from './resource-store.js';
import { InflightLimiter } from './inflight.js';
import type { InflightLimits } from './inflight.js';
import { ApiError, badRequest, internal, methodNotAllowed, notFoundPath, unauthorized, unsupportedMediaType } from './status.js';
import { toTable } from './table.js';
import { Binder } from './binding.js';
import { serveWatch } from './watch.js';
import { asPartialObjectMetadata, asPartialObjectMetadataList, metadataTarget, watchPartial } from './partial-metadata.js';
import type { MetadataTarget } from './partial-metadata.js';
import { ADMIN_USER, ALLOW_ALL } from './auth/types.js';
import type { Authenticator, Authorizer, RequestAttributes, UserInfo } from './auth/types.js';
import { adminTokenAuthenticator } from './auth/admin-token.js';
import { nonResourceAttributes, resourceAttributes } from './auth/attributes.js';
import { forbiddenError } from './auth/forbidden.js';
import type { Admission, AuditSink, ReviewHandler } from './auth/hooks.js';
import { Reviews } from './auth/reviews.js';
import { ApiMetrics } from './metrics.js';
import type { RequestSeries, SeriesResource } from './metrics.js';
import { collectProcessMetrics, exposition } from '../lib/metrics.js';
import { componentLogger } from '../lib/log.js';
import type { Logger } from '../lib/log.js';
import { serveUsage, usageTarget } from './metering/usage-api.js';

export interface ApiServerOptions {
  registry: Registry;
  resources: ResourceStore;
  /** The admin's bearer token (user kova-admin in system:masters); see `authenticators`. */
  token?: string;
  /**
   * Who is asking, tried in order after the admin token; the first to name a user wins. With no
   * token and no authenticators every request is the admin (tests, `--insecure`).
   */
  authenticators?: Authenticator[];
  /** Turns the authenticated user into the impersonated one (Impersonate-* headers), checking the right to. */
  impersonate?: (req: IncomingMessage, user: UserInfo, authorizer: Authorizer) => UserInfo;
  /** Decides on every request after authentication; default allows everything. */
  authorizer?: Authorizer;
  /** Checks writes with their user before they are stored, in order (NodeRestriction and the like). */
  admission?: Admission[];
  /** Receives every mutating or denied request once it is answered. */
  audit?: AuditSink;
  /** Answers the authorization.k8s.io and authentication.k8s.io review POSTs. */
  reviews?: ReviewHandler;
  /** CA (PEM) whose client certificates TLS asks for (not requires); the authenticators read them. */
  clientCA?: string;
  /** Address advertised in /api serverAddressByClientCIDRs. */
  advertiseAddress?: string;
  log?: (msg: string) => void;
  /** Bookmark period of idle watches (tests shorten it). */
  bookmarkIntervalMs?: number;
  /** Unread bytes a watcher may leave buffered before its watch is closed (tests shorten it). */
  watchBufferBytes?: number;
  /** How long a request body may take to arrive before a 408 (tests shorten it). */
  bodyTimeoutMs?: number;
  /**
   * Requests this process serves at once before answering 429 (kube-apiserver's
   * --max-requests-inflight and --max-mutating-requests-inflight; defaults in inflight.ts).
   */
  inflight?: InflightLimits;
  /**
   * Prometheus metrics of the requests and of etcd (apiserver_request_total and the rest, see
   * metrics.ts) and GET /metrics. Default on; KOVA_API_METRICS=off in the environment turns the
   * default off (benchmarks measure their cost).
   */
  metrics?: boolean;
  /**
   * What GET /metrics answers: this process's registry by default; an API worker asks the
   * primary, which aggregates every worker (cli/api-workers.ts).
   */
  metricsSource?: () => Promise<{ contentType: string; body: string }>;
  /** One log line per answered request (kube-apiserver's --v=2 httplog), through pino. Default off. */
  requestLogging?: boolean;
}

type IncludeObject = 'None' | 'Metadata' | 'Object';

/** What the server learns about a request as it goes, for authorization and the audit log. */
interface RequestContext {
  received: Date;
  /** performance.now() at arrival, when metrics or the request log need durations. */
  start: number;
  user?: UserInfo;
  /** Who authenticated, when impersonation may have changed `user` (the audit log names both). */
  authenticatedUser?: UserInfo;
  attributes?: RequestAttributes;
  denied?: boolean;
  /** The request's metric series, once its route is known. */
  series?: RequestSeries;
  /** A watch streaming: its metrics and log line are written when it ends, not by handle(). */
  longRunning?: boolean;
}

function wantsTable(accept: string | undefined): boolean {
  return !!accept && /as=Table/.test(accept) && /g=meta\.k8s\.io/.test(accept);
}

function send(res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}) {
  const text = (typeof body === 'object' && body !== null && writtenObjectJson(body)) || JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** The admission checks from index `i` on, in order, once an asynchronous one has answered. */
async function admitFrom(checks: Admission[], i: number, attributes: RequestAttributes, object: KObject | undefined): Promise<void> {
  for (; i < checks.length; i++) await checks[i]!.admit(attributes, object);
}

function sendText(res: ServerResponse, code: number, text: string) {
  res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * Bounds on `Warning` headers: each escaped value at most 4 KiB (kube-apiserver's per-warning
 * limit), all of them at most 12 KiB, so the answer stays under the 16 KiB of headers that node
 * and many proxies accept (kube's own 128 KiB total would break such clients).
 */
const MAX_WARNING_CHARS = 4096;
const MAX_WARNINGS_CHARS = 12 * 1024;

/**
 * One warning as an RFC 7234 quoted string. A header value may only hold visible ASCII here
 * (node refuses the rest, after the object was written), so everything else is escaped as
 * \uXXXX, which kubectl's quoted-string parser reads back; a warning whose escaped form is too
 * long is cut (on a character boundary, before escaping) and ends with "...".
 */
function quoteWarning(w: string): string {
  const escape = (c: string) => {
    const j = JSON.stringify(c).slice(1, -1);
    return /^[\x20-\x7e]*$/.test(j) ? j : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  };
  let out = '';
  for (let i = 0; i < w.length; i++) {
    const e = escape(w[i]!);
    if (out.length + e.length > MAX_WARNING_CHARS - 5) return `"${out}..."`;
    out += e;
  }
  return `"${out}"`;
}

/** `Warning` header values as kube-apiserver sends them (`299 - "text"`), within the bounds above. */
function warningHeaders(warnings: string[]): Record<string, string> {
  if (!warnings.length) return {};
  const values: string[] = [];
  let total = 0;
  for (const w of warnings) {
    const v = `299 - ${quoteWarning(w)}`;
    total += v.length + 2;
    if (total > MAX_WARNINGS_CHARS) break;
    values.push(v);
  }
  return values.length ? { Warning: values.join(', ') } : {};
}

export class ApiServer {
  private server?: http.Server | https.Server;
  private readonly authenticators: Authenticator[];
  private readonly authorizer: Authorizer;
  private readonly log: (msg: string) => void;
  private readonly activeWatches = new Set<() => void>();
  /** Requests served, by verb: cheap introspection for tests and `kova` debugging. */
  readonly stats = { list: 0, watch: 0, watchExpired: 0, watchSlowClosed: 0, internalErrors: 0 };
  /** Slots of requests in flight (and refusals), counted per process as kube-apiserver does per instance. */
  readonly inflight: InflightLimiter;
  /** Undefined with metrics off: every instrumentation point checks this one field. */
  private readonly metrics?: ApiMetrics;
  private readonly unwatchInflight?: () => void;
  /** Undefined unless requestLogging: the per-request line costs nothing when off. */
  private readonly requestLog?: Logger;

  constructor(private readonly opts: ApiServerOptions) {
    this.inflight = new InflightLimiter(opts.inflight);
    this.authenticators = [...(opts.token ? [adminTokenAuthenticator(opts.token)] : []), ...(opts.authenticators ?? [])];
    this.authorizer = opts.authorizer ?? ALLOW_ALL;
    this.log = opts.log ?? (() => undefined);
    const metricsOn = opts.metrics ?? process.env.KOVA_API_METRICS !== 'off';
    if (metricsOn) {
      collectProcessMetrics();
      this.metrics = new ApiMetrics(opts.registry);
      this.unwatchInflight = this.metrics.watchInflight(this.inflight);
    }
    opts.resources.store.recordMetrics(metricsOn);
    if (opts.requestLogging) this.requestLog = componentLogger('apiserver');
  }

  get registry() {
    return this.opts.registry;
  }

  get resources() {
    return this.opts.resources;
  }

  private binderCache?: Binder;
  private defaultReviews?: ReviewHandler;
  private binder(): Binder {
    if (!this.binderCache) {
      const r = this.registry;
      const kinds = ['instances', 'hosts', 'flavors'].map((p) => r.lookup('kova.dev', 'v1alpha1', p)!);
      this.binderCache = new Binder(this.resources, kinds[0], kinds[1], kinds[2]);
    }
    return this.binderCache;
  }

  async listen(host: string, port: number, tls?: { cert: string; key: string }): Promise<AddressInfo> {
    // handle() answers every error itself; the catch is for a bug in that answer, so that no
    // request can leave a rejected promise behind.
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res).catch((e: unknown) => {
        this.log(`failed to answer ${req.method} ${JSON.stringify((req.url ?? '').slice(0, 200))}: ${(e as Error)?.stack ?? e}`);
        res.destroy();
      });
    };
    // A client certificate is requested but optional (token users have none); one the CA did not
    // sign leaves socket.authorized false and is no identity, instead of failing the handshake.
    const clientCerts = this.opts.clientCA ? { ca: this.opts.clientCA, requestCert: true, rejectUnauthorized: false } : {};
    const server = tls ? https.createServer({ cert: tls.cert, key: tls.key, ...clientCerts }, handler) : http.createServer(handler);
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => clientError(err, socket));
    server.keepAliveTimeout = 65_000;
    server.headersTimeout = 70_000;
    server.requestTimeout = 0; // watches are long-lived
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    return server.address() as AddressInfo;
  }

  /** Ends every open watch cleanly, as a server-side timeout would; clients re-watch. */
  closeWatches(): void {
    for (const finish of [...this.activeWatches]) finish();
  }

  async close(): Promise<void> {
    this.closeWatches();
    this.unwatchInflight?.();
    const s = this.server;
    if (!s) return;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }

  /** The request's user, or a 401; impersonation applied. */
  private identify(req: IncomingMessage, ctx?: RequestContext): UserInfo | Promise<UserInfo> {
    if (!this.authenticators.length) return ADMIN_USER;
    // Most requests carry the admin's or a cached token, answered at once: no promise for them.
    for (let i = 0; i < this.authenticators.length; i++) {
      const user = this.authenticators[i]!.authenticate(req);
      if (user instanceof Promise) return this.identifyFrom(req, ctx, i, user);
      if (user) return this.identified(req, ctx, user);
    }
    throw unauthorized();
  }

  /** identify() from authenticator `i` on, once one of them answers asynchronously. */
  private async identifyFrom(req: IncomingMessage, ctx: RequestContext | undefined, i: number, pending: Promise<UserInfo | undefined>): Promise<UserInfo> {
    let user = await pending;
    while (!user && ++i < this.authenticators.length) user = await this.authenticators[i]!.authenticate(req);
    if (!user) throw unauthorized();
    return this.identified(req, ctx, user);
  }

  private identified(req: IncomingMessage, ctx: RequestContext | undefined, user: UserInfo): UserInfo {
    if (ctx) ctx.authenticatedUser = user;
    return this.opts.impersonate ? this.opts.impersonate(req, user, this.authorizer) : user;
  }

  /** A 403 unless the authorizer allows these attributes. */
  private authorize(a: RequestAttributes): void {
    const d = this.authorizer.authorize(a);
    if (!d.allowed) throw forbiddenError(a, d.reason);
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const start = this.metrics || this.requestLog ? performance.now() : 0;
    const ctx: RequestContext = { received: new Date(), start };
    let path: string | undefined;
    let q: URLSearchParams | undefined;
    try {
      const url = requestTarget(req.url);
      path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname;
      if (path === '/healthz' || path === '/livez') return sendText(res, 200, 'ok');
      if (path === '/readyz') return await this.readyz(res);
      if (path === '/version') return send(res, 200, SERVER_VERSION);
      const user = this.identify(req, ctx);
      ctx.user = user instanceof Promise ? await user : user;
      q = url.searchParams;
      // Watches are long-running: exempt, as kube-apiserver's long-running request check.
      if (!(req.method === 'GET' && boolParam(q, 'watch')) && !this.inflight.admit(req, res)) return;
      await this.route(req, res, path, q, ctx);
    } catch (e) {
      if (e instanceof ApiError && e.code === 403) ctx.denied = true;
      this.fail(req, res, e);
    } finally {
      // A streaming watch is recorded when it ends (see watch()); every other request now, answered.
      if (!ctx.longRunning) {
        if (this.metrics) this.metrics.observe(ctx.series ?? this.seriesOf(req, path, q), res.statusCode, (performance.now() - start) / 1000);
        if (this.requestLog) this.logRequest(req, res, ctx, path, start);
        // Answered (or failed) by now: recorded with the code sent, even if the client already left.
        if (this.opts.audit) this.audited(req, res, ctx);
      } else if (this.opts.audit) {
        res.once('close', () => this.audited(req, res, ctx));
      }
    }
  }

  /** The series of a request answered before its route was looked at (health, 401, 429, 400). */
  private seriesOf(req: IncomingMessage, path: string | undefined, q: URLSearchParams | undefined): RequestSeries {
    const method = req.method ?? 'GET';
    const m = this.metrics!;
    if (path === undefined) return m.forNonResource(method, '');
    const route = routeResource(this.registry, path.split('/').filter(Boolean));
    if (!route || route === 'groupVersion') return m.forNonResource(method, path);
    const query = q ?? new URLSearchParams();
    return m.forResource(method, route.info, route, query, method === 'GET' && boolParam(query, 'watch'), req.headers['content-type']);
  }

  /** kube-apiserver's httplog line (--v=2): who did what to which object, the answer and how long it took. */
  private logRequest(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, path: string | undefined, start: number): void {
    const a = ctx.attributes;
    const line: Record<string, unknown> = {
      user: ctx.user?.name,
      verb: a?.verb ?? (req.method ?? '').toLowerCase(),
    };
    if (a?.resourceRequest) {
      line.resource = a.apiGroup ? `${a.resource}.${a.apiGroup}` : a.resource;
      if (a.subresource) line.subresource = a.subresource;
      if (a.namespace) line.namespace = a.namespace;
      if (a.name) line.name = a.name;
    } else {
      line.path = (path ?? req.url ?? '').slice(0, 256);
    }
    line.code = res.statusCode;
    line.latencyMs = Math.round((performance.now() - start) * 1000) / 1000;
    line.userAgent = (req.headers['user-agent'] ?? '').slice(0, 256);
    line.srcIP = req.socket.remoteAddress;
    this.requestLog!.info(line, 'HTTP');
  }

  /** Hands an answered request to the audit sink: every write and every denial. */
  private audited(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): void {
    const method = req.method ?? 'GET';
    if (!ctx.denied && !ctx.user) return; // health, version and 401s of no one
    if (!ctx.denied && (method === 'GET' || method === 'HEAD' || method === 'OPTIONS')) return;
    this.opts.audit!.record({
      requestURI: (req.url ?? '').slice(0, 4096),
      method,
      user: ctx.user,
      authenticatedUser: ctx.authenticatedUser !== ctx.user ? ctx.authenticatedUser : undefined,
      attributes: ctx.attributes,
      code: res.statusCode,
      sourceIPs: req.socket.remoteAddress ? [req.socket.remoteAddress] : [],
      userAgent: req.headers['user-agent'],
      received: ctx.received,
      completed: new Date(),
    });
  }

  /** Answers a failed request with a Status: 4xx as thrown, anything else a logged 500. */
  private fail(req: IncomingMessage, res: ServerResponse, e: unknown): void {
    const err = e instanceof ApiError ? e : internal(e instanceof Error ? e.message : String(e));
    if (err.code === 500) {
      // A server bug (or an unexpected etcd failure): the stack says where.
      this.stats.internalErrors++;
      const origin = e instanceof ApiError ? (e.cause ?? e) : e;
      this.log(`internal error on ${req.method} ${JSON.stringify((req.url ?? '').slice(0, 200))}: ${(origin as Error)?.stack ?? origin}`);
    }
    if (res.headersSent || res.destroyed) {
      if (!res.writableEnded) res.end();
      return;
    }
    // The rest of a body that timed out may never come: the connection cannot be reused.
    if (err.code === 408) res.setHeader('Connection', 'close');
    send(res, err.code, err.toStatus());
  }

  private body(req: IncomingMessage): Buffer | Promise<Buffer> {
    return readBodyBytes(req, this.opts.bodyTimeoutMs ?? BODY_TIMEOUT_MS);
  }

  private bodyText(req: IncomingMessage): Promise<string> {
    return readBody(req, this.opts.bodyTimeoutMs ?? BODY_TIMEOUT_MS);
  }

  private async readyz(res: ServerResponse) {
    try {
      await Promise.race([
        this.resources.store.currentRevision(),
        new Promise((_, reject) => setTimeout(() => reject(new Error('timed out')), 2000)),
      ]);
      sendText(res, 200, 'ok');
    } catch (e) {
      sendText(res, 500, `[-]etcd failed: ${(e as Error).message}\nreadyz check failed`);
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse, path: string, q: URLSearchParams, ctx: RequestContext) {
    const method = req.method ?? 'GET';
    const accept = req.headers.accept;
    const registry = this.registry;
    const user = ctx.user!;
    const segs = path.split('/').filter(Boolean);
    const usage = usageTarget(segs); // metering.kova.dev usage: computed from the ledgers (apiserver/metering)
    if (usage) return send(res, 200, await serveUsage(usage, method, path, q, user, (a) => this.authorize((ctx.attributes = a)), this.resources));
    const route = routeResource(registry, segs);
    if (route && route !== 'groupVersion') {
      const watch = method === 'GET' && boolParam(q, 'watch');
      if (this.metrics) ctx.series = this.metrics.forResource(method, route.info, route, q, watch, req.headers['content-type']);
      ctx.attributes = resourceAttributes(user, method, path, route, watch);
      this.authorize(ctx.attributes);
      return this.serveResource(req, res, route, q, ctx.attributes, ctx);
    }
    ctx.attributes = nonResourceAttributes(user, method, path);
    // Without a configured handler (tests, --insecure) the reviews still answer, on this authorizer.
    const reviews = this.opts.reviews ?? (this.defaultReviews ??= new Reviews({ bodyTimeoutMs: this.opts.bodyTimeoutMs }));
    if (method === 'POST' && reviews.handles(path)) {
      if (this.metrics) ctx.series = this.metrics.forResource(method, reviewResource(path), {}, q, false, undefined);
      // Reviews are resources of their own group (create selfsubjectaccessreviews, ...), authorized there.
      return reviews.serve(req, res, path, user, this.authorizer);
    }
    if (this.metrics) ctx.series = this.metrics.forNonResource(method, path);
    this.authorize(ctx.attributes);
    if (method === 'GET') {
      if (path === '/metrics' && this.metrics) return this.serveMetrics(res);
      if (path === '/api') {
        if (wantsAggregated(accept)) return send(res, 200, aggregatedDiscovery(registry, true), { 'Content-Type': AGGREGATED_CONTENT_TYPE });
        return send(res, 200, apiVersions(this.opts.advertiseAddress ?? '127.0.0.1:6443'));
      }
      if (path === '/apis') {
        if (wantsAggregated(accept)) return send(res, 200, aggregatedDiscovery(registry, false), { 'Content-Type': AGGREGATED_CONTENT_TYPE });
        return send(res, 200, apiGroupList(registry));
      }
      if (path === '/openapi/v2') throw notFoundPath();
      if (path === '/openapi/v3') return send(res, 200, openapiV3Index(registry));
      if (path.startsWith('/openapi/v3/')) {
        const doc = openapiV3Document(registry, path.slice('/openapi/v3/'.length));
        if (!doc) throw notFoundPath();
        return send(res, 200, doc, { 'Cache-Control': q.get('hash') ? 'public, immutable' : 'no-cache, private' });
      }
    }
    if (segs[0] === 'apis' && segs.length === 2 && method === 'GET') {
      const group = apiGroupList(registry).groups.find((g) => g.name === segs[1]);
      if (!group) throw notFoundPath();
      return send(res, 200, { kind: 'APIGroup', apiVersion: 'v1', ...group });
    }
    if (route === 'groupVersion') {
      const gv = segs[0] === 'api' ? 'v1' : `${segs[1]}/${segs[2]}`;
      const list = apiResourceList(registry, gv);
      if (!list || method !== 'GET') throw notFoundPath();
      return send(res, 200, list);
    }
    throw notFoundPath();
  }

  /** GET /metrics: the Prometheus text of this process, or of every API worker (metricsSource). */
  private async serveMetrics(res: ServerResponse): Promise<void> {
    let m: { contentType: string; body: string };
    try {
      m = await (this.opts.metricsSource ?? exposition)();
    } catch (e) {
      throw new ApiError(503, 'ServiceUnavailable', `metrics are unavailable: ${e instanceof Error ? e.message : String(e)}`);
    }
    res.writeHead(200, { 'Content-Type': m.contentType, 'Content-Length': Buffer.byteLength(m.body) });
    res.end(m.body);
  }

  private render(info: ResourceInfo, accept: string | undefined, q: URLSearchParams) {
    if (!wantsTable(accept)) return undefined;
    const io = (q.get('includeObject') ?? 'Metadata') as IncludeObject;
    if (!['None', 'Metadata', 'Object'].includes(io)) throw badRequest(`invalid includeObject: ${io}`);
    return io;
  }

  /** Runs the admission checks on a write, in order, before anything is stored; checks that answer at once cost no promise. */
  private admit(attributes: RequestAttributes, object: KObject | undefined): void | Promise<void> {
    const checks = this.opts.admission ?? [];
    for (let i = 0; i < checks.length; i++) {
      const r = checks[i]!.admit(attributes, object);
      if (r) return r.then(() => admitFrom(checks, i + 1, attributes, object));
    }
  }

  /** Runs the admission checks on an update's, patch's or apply's result, before it is stored. */
  private async admitResult(attributes: RequestAttributes, object: KObject, old: KObject | undefined): Promise<void> {
    for (const a of this.opts.admission ?? []) await a.admitResult?.(attributes, object, old);
  }

  private async serveResource(req: IncomingMessage, res: ServerResponse, route: ResourceRoute, q: URLSearchParams, attributes: RequestAttributes, ctx: RequestContext) {
    const { info, namespace, name, subresource } = route;
    const method = req.method ?? 'GET';
    const rs = this.resources;
    if (subresource === 'binding' && info.group === 'kova.dev' && info.plural === 'instances' && name) {
      if (method !== 'POST') throw methodNotAllowed(method);
      const body = parseObjectBody(req.headers['content-type'], await this.body(req));
      checkObjectBody(body);
      await this.admit(attributes, body as KObject);
      const { object, created } = await this.binder().bind(namespace!, name, body, writeQuery(q));
      return send(res, created ? 201 : 200, object);
    }
    if (subresource && !(subresource === 'status' && info.statusSubresource) && !(subresource === 'finalize' && info.kind === 'Namespace' && info.group === '')) {
      throw notFoundPath();
    }
    const sub = subresource === 'status' ? 'status' : undefined;
    const tableMode = this.render(info, req.headers.accept, q);
    // Metadata-only answers (what the garbage collector lists and watches), checked before any work.
    const meta = tableMode ? undefined : metadataTarget(req.headers.accept);
    const written = (o: KObject) => (meta ? asPartialObjectMetadata(o, meta) : o);
    const toOut = (o: KObject) => (tableMode ? toTable(info, [o], { includeObject: tableMode }) : written(o));

    if (!name) {
      if (info.namespaced && !namespace && method !== 'GET') throw methodNotAllowed(method);
      switch (method) {
        case 'GET':
          if (boolParam(q, 'watch')) return this.watch(req, res, info, namespace, q, tableMode, meta, ctx);
          return this.list(res, info, namespace, q, tableMode, meta);
        case 'POST': {
          const warnings: string[] = [];
          // Creates are the hot path: no await where the answer is already there.
          const bytes = this.body(req);
          const body = parseObjectBody(req.headers['content-type'], bytes instanceof Promise ? await bytes : bytes) as KObject;
          checkObjectBody(body);
          const admitted = this.admit(attributes, body);
          if (admitted) await admitted;
          const created = await rs.create(info, namespace, body, { ...writeQuery(q), userAgent: req.headers['user-agent'], warnings, ownsBody: true });
          return send(res, 201, written(created), warningHeaders(warnings));
        }
        case 'DELETE': {
          if (!supportsDeleteCollection(info)) throw methodNotAllowed(method);
          const opts = await this.deleteOptions(req, q);
          if (meta) asPartialObjectMetadataList([], {}, meta); // a 406 before anything is deleted
          await this.admit(attributes, undefined);
          const items = await rs.deleteCollection(info, namespace, listParams(q, false), opts);
          if (meta) return send(res, 200, asPartialObjectMetadataList(items, {}, meta));
          return send(res, 200, { apiVersion: groupVersion(info), kind: info.listKind, metadata: {}, items });
        }
        default:
          throw methodNotAllowed(method);
      }
    }

    switch (method) {
      case 'GET':
        return send(res, 200, toOut(await rs.get(info, namespace, name)));
      case 'PUT': {
        const warnings: string[] = [];
        const body = parseObjectBody(req.headers['content-type'], await this.body(req)) as KObject;
        checkObjectBody(body);
        await this.admit(attributes, body);
        const admitResult = (obj: KObject, old: KObject | undefined) => this.admitResult(attributes, obj, old);
        const wopts: WriteOptions = { ...writeQuery(q), userAgent: req.headers['user-agent'], warnings, subresource: sub, admitResult };
        if (meta) asPartialObjectMetadata(body, meta); // a 406 before anything is written
        if (subresource === 'finalize') return send(res, 200, written(await this.finalizeNamespace(info, name, body, wopts)));
        return send(res, 200, written(await rs.update(info, namespace, name, body, wopts)), warningHeaders(warnings));
      }
      case 'PATCH': {
        const ct = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
        const type = PATCH_CONTENT_TYPES[ct];
        if (!type) {
          const accepted = ['application/json-patch+json', 'application/merge-patch+json', 'application/apply-patch+yaml'];
          if (!info.custom) accepted.push('application/strategic-merge-patch+json');
          throw unsupportedMediaType(accepted);
        }
        const text = await this.bodyText(req);
        const patch = type === 'apply' ? parseYaml(text) : parseJson(text);
        if (type === 'apply') checkObjectBody(patch);
        const warnings: string[] = [];
        const w = writeQuery(q);
        const existed = type === 'apply' ? await rs.get(info, namespace, name).then(() => true, () => false) : true;
        if (meta) asPartialObjectMetadata({ metadata: {} } as KObject, meta); // a 406 before anything is written
        await this.admit(attributes, undefined);
        const admitResult = (obj: KObject, old: KObject | undefined) => this.admitResult(attributes, obj, old);
        const out = await rs.patch(info, namespace, name, type, patch, { ...w, userAgent: req.headers['user-agent'], warnings, subresource: sub, admitResult });
        return send(res, existed ? 200 : 201, written(out), warningHeaders(warnings));
      }
      case 'DELETE': {
        const opts = await this.deleteOptions(req, q);
        if (meta) asPartialObjectMetadata({ metadata: {} } as KObject, meta); // a 406 before anything is deleted
        await this.admit(attributes, undefined);
        const { object, deleted } = await rs.delete(info, namespace, name, opts);
        return send(res, deleted ? 200 : 202, written(object));
      }
      default:
        throw methodNotAllowed(method);
    }
  }

  /** PUT namespaces/<name>/finalize: replaces spec.finalizers (how namespace finalizers are removed). */
  private async finalizeNamespace(info: ResourceInfo, name: string, body: KObject, opts: WriteOptions) {
    const rs = this.resources;
    const current = await rs.get(info, undefined, name);
    const next = structuredClone(current);
    next.spec = { ...(next.spec as object), finalizers: (body.spec as { finalizers?: string[] } | undefined)?.finalizers ?? [] };
    return rs.update(info, undefined, name, next, { ...opts, subresource: undefined });
  }

  private async list(res: ServerResponse, info: ResourceInfo, namespace: string | undefined, q: URLSearchParams, tableMode: IncludeObject | undefined, meta: MetadataTarget | undefined) {
    this.stats.list++;
    if (meta) asPartialObjectMetadataList([], {}, meta); // a 406 before the list is read
    const r = await this.resources.list(info, namespace, listParams(q, false));
    if (tableMode) {
      return send(res, 200, toTable(info, r.items, {
        includeObject: tableMode, resourceVersion: r.resourceVersion, continue: r.continue, remainingItemCount: r.remainingItemCount,
      }));
    }
    const metadata: Record<string, unknown> = { resourceVersion: r.resourceVersion };
    if (r.continue) metadata.continue = r.continue;
    if (r.remainingItemCount !== undefined) metadata.remainingItemCount = r.remainingItemCount;
    if (meta) return send(res, 200, asPartialObjectMetadataList(r.items, metadata, meta));
    return send(res, 200, { apiVersion: groupVersion(info), kind: info.listKind, metadata, items: r.items });
  }

  private async watch(req: IncomingMessage, res: ServerResponse, info: ResourceInfo, namespace: string | undefined, q: URLSearchParams, tableMode: IncludeObject | undefined, meta: MetadataTarget | undefined, ctx: RequestContext) {
    // Every parameter is checked before the 200 goes out: afterwards only ERROR events remain.
    const p: ListParams = listParams(q, true);
    this.stats.watch++;
    await serveWatch(this.resources, {
      info,
      namespace,
      labelSelector: p.labelSelector,
      fieldSelector: p.fieldSelector,
      resourceVersion: p.resourceVersion,
      timeoutSeconds: p.timeoutSeconds,
      allowBookmarks: boolParam(q, 'allowWatchBookmarks'),
      sendInitialEvents: boolParam(q, 'sendInitialEvents'),
      bookmarkIntervalMs: this.opts.bookmarkIntervalMs,
      // A watch sends single objects, so either metadata form means PartialObjectMetadata events.
      render: (o, first) => (tableMode ? toTable(info, [o], { includeObject: tableMode, withColumnDefinitions: first }) : meta ? watchPartial(o, { ...meta, kind: 'PartialObjectMetadata' }) : o),
      sharedRender: !!meta,
      register: (finish) => {
        this.activeWatches.add(finish);
        return () => this.activeWatches.delete(finish);
      },
      onExpired: () => this.stats.watchExpired++,
      // From the 200 on, the watch is long-running: counted while open, recorded when it ends.
      onStart: () => this.watchStarted(req, res, ctx),
      maxBufferedBytes: this.opts.watchBufferBytes,
      onSlowClose: (buffered) => {
        this.stats.watchSlowClosed++;
        const peer = req.socket.remoteAddress ? `${req.socket.remoteAddress}:${req.socket.remotePort}` : 'unknown';
        this.log(`closed a slow watch of ${info.plural} from ${peer} (${req.headers['user-agent'] ?? 'no user agent'}): ${buffered} bytes unread`);
      },
    }, res);
  }

  private watchStarted(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): void {
    if (!this.metrics && !this.requestLog) return;
    ctx.longRunning = true;
    const start = ctx.start;
    const series = ctx.series;
    if (this.metrics && series) this.metrics.watchStarted(series);
    res.once('close', () => {
      if (this.metrics && series) {
        this.metrics.watchEnded(series);
        this.metrics.observe(series, res.statusCode, (performance.now() - start) / 1000);
      }
      if (this.requestLog) this.logRequest(req, res, ctx, undefined, start);
    });
  }

  private async deleteOptions(req: IncomingMessage, q: URLSearchParams): Promise<DeleteOptions> {
    const text = await this.bodyText(req);
    const body = (text.trim() ? parseJson(text) : {}) as {
      propagationPolicy?: string; dryRun?: string[]; preconditions?: { uid?: string; resourceVersion?: string }; orphanDependents?: boolean;
    };
    checkDeleteOptions(body);
    const policy = body.propagationPolicy ?? q.get('propagationPolicy') ?? (body.orphanDependents === true ? 'Orphan' : undefined);
    if (policy && !['Background', 'Foreground', 'Orphan'].includes(policy)) {
      throw badRequest(`propagationPolicy: Unsupported value: "${policy}": supported values: "Foreground", "Background", "Orphan"`);
    }
    const dry = [...(body.dryRun ?? []), ...q.getAll('dryRun')];
    for (const v of dry) if (v !== 'All') throw badRequest(`Invalid dryRun value: ${JSON.stringify(v)}: supported values: "All"`);
    return { propagationPolicy: policy as DeleteOptions['propagationPolicy'], dryRun: dry.length > 0, preconditions: body.preconditions };
  }
}

/** Review resources as metric series: one object per path, so their label objects are cached. */
const reviewResources = new Map<string, SeriesResource>();
function reviewResource(path: string): SeriesResource {
  let r = reviewResources.get(path);
  if (!r) {
    // Only paths Reviews.handles() accepted get here: /apis/<group>/<version>/<resource>, a fixed set.
    const [, , group, version, plural] = path.split('/');
    reviewResources.set(path, (r = { group: group!, version: version!, plural: plural!, kind: '' }));
  }
  return r;
}

/** DeleteOptions fields have types: a wrong one is a decode error (400), not a TypeError. */
function checkDeleteOptions(body: unknown): void {
  const bad = (field: string, want: string) => badRequest(`the request body could not be decoded: ${field}: expected ${want}`);
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw bad('DeleteOptions', 'a JSON object');
  const b = body as Record<string, unknown>;
  if (b.propagationPolicy != null && typeof b.propagationPolicy !== 'string') throw bad('propagationPolicy', 'string');
  if (b.orphanDependents != null && typeof b.orphanDependents !== 'boolean') throw bad('orphanDependents', 'boolean');
  if (b.dryRun != null && !(Array.isArray(b.dryRun) && b.dryRun.every((x) => typeof x === 'string'))) throw bad('dryRun', 'array of strings');
  if (b.preconditions != null) {
    const p = b.preconditions as Record<string, unknown>;
    if (typeof p !== 'object' || Array.isArray(p)) throw bad('preconditions', 'object');
    for (const f of ['uid', 'resourceVersion']) if (p[f] != null && typeof p[f] !== 'string') throw bad(`preconditions.${f}`, 'string');
  }
}

/** HTTP status lines for the parser errors clientError sees, each with a Status body. */
function clientErrorStatus(err: NodeJS.ErrnoException): [number, string, string] {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return [431, 'Request Header Fields Too Large', 'the request headers are too large'];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [408, 'Request Timeout', 'the request did not arrive in time'];
    default:
      return [400, 'Bad Request', `malformed HTTP request: ${err.message}`];
  }
}

/** Sockets whose parser error has been answered: see clientError. */
const answeredSockets = new WeakSet<Socket>();

/**
 * A request node's HTTP parser rejected (bad request line, header oddities, timeouts): answer
 * it with a Status when nothing else is being written on the socket, then close. Node's default
 * does the same without a body; a listener is needed so the handling is ours and explicit.
 */
function clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  const s = socket as Socket & { _httpMessage?: ServerResponse };
  // The parser stays in its error state and reports again for every later chunk (the rest of a
  // large body): the first answer stands, and the socket keeps reading until the client is done
  // or the timer below closes it. Destroying it now would reset the connection while the client
  // is still writing, before it has read the answer.
  if (answeredSockets.has(s)) return;
  if (err.code === 'ECONNRESET' || !s.writable || (s._httpMessage && s._httpMessage.headersSent)) {
    s.destroy();
    return;
  }
  answeredSockets.add(s);
  const [code, text, message] = clientErrorStatus(err);
  const body = JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: code === 408 ? 'Timeout' : 'BadRequest', code });
  s.end(`HTTP/1.1 ${code} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  // end() flushes; a peer that never reads must not keep the socket forever.
  setTimeout(() => s.destroy(), 5_000).unref();
}
