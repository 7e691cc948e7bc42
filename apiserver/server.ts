// The HTTP(S) front of the API server: authentication, health, discovery, OpenAPI and the
// REST verbs on every registered resource. Object rules live in ResourceStore.
import { timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from '../api/registry.js';
import type { KObject, ResourceInfo } from '../api/types.js';
import { groupVersion } from '../api/types.js';
import { aggregatedDiscovery, AGGREGATED_CONTENT_TYPE, apiGroupList, apiResourceList, apiVersions, SERVER_VERSION, wantsAggregated } from './discovery.js';
import { openapiV3Document, openapiV3Index } from './openapi.js';
import { boolParam, intParam, parseJson, parseObjectBody, parseYaml, readBody, readBodyBytes, routeResource, writeQuery } from './request.js';
import type { ResourceRoute } from './request.js';
import { PATCH_CONTENT_TYPES, ResourceStore } from './resource-store.js';
import type { DeleteOptions, WriteOptions } from './resource-store.js';
import { ApiError, badRequest, internal, methodNotAllowed, notFoundPath, unauthorized, unsupportedMediaType } from './status.js';
import { toTable } from './table.js';
import { Binder } from './binding.js';
import { serveWatch } from './watch.js';

export interface ApiServerOptions {
  registry: Registry;
  resources: ResourceStore;
  /** Bearer token required on every request except health and version; undefined disables auth. */
  token?: string;
  /** Address advertised in /api serverAddressByClientCIDRs. */
  advertiseAddress?: string;
  log?: (msg: string) => void;
  /** Bookmark period of idle watches (tests shorten it). */
  bookmarkIntervalMs?: number;
}

type IncludeObject = 'None' | 'Metadata' | 'Object';

function wantsTable(accept: string | undefined): boolean {
  return !!accept && /as=Table/.test(accept) && /g=meta\.k8s\.io/.test(accept);
}

function send(res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}) {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function sendText(res: ServerResponse, code: number, text: string) {
  res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/** `Warning` header values, RFC 7234 style as kube-apiserver sends them. */
function warningHeaders(warnings: string[]): Record<string, string> {
  if (!warnings.length) return {};
  return { Warning: warnings.map((w) => `299 - ${JSON.stringify(w)}`).join(', ') };
}

export class ApiServer {
  private server?: http.Server | https.Server;
  private readonly tokenBuf?: Buffer;
  private readonly log: (msg: string) => void;
  private readonly activeWatches = new Set<() => void>();
  /** Requests served, by verb: cheap introspection for tests and `kova` debugging. */
  readonly stats = { list: 0, watch: 0, watchExpired: 0 };

  constructor(private readonly opts: ApiServerOptions) {
    this.tokenBuf = opts.token ? Buffer.from(opts.token) : undefined;
    this.log = opts.log ?? (() => undefined);
  }

  get registry() {
    return this.opts.registry;
  }

  get resources() {
    return this.opts.resources;
  }

  private binderCache?: Binder;
  private binder(): Binder {
    if (!this.binderCache) {
      const r = this.registry;
      const kinds = ['instances', 'hosts', 'flavors'].map((p) => r.lookup('kova.dev', 'v1alpha1', p)!);
      this.binderCache = new Binder(this.resources, kinds[0], kinds[1], kinds[2]);
    }
    return this.binderCache;
  }

  async listen(host: string, port: number, tls?: { cert: string; key: string }): Promise<AddressInfo> {
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res);
    const server = tls ? https.createServer({ cert: tls.cert, key: tls.key }, handler) : http.createServer(handler);
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
    const s = this.server;
    if (!s) return;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }

  private authorized(req: IncomingMessage): boolean {
    if (!this.tokenBuf) return true;
    const h = req.headers.authorization ?? '';
    const m = /^Bearer\s+(.+)$/i.exec(h);
    if (!m) return false;
    const got = Buffer.from(m[1].trim());
    return got.length === this.tokenBuf.length && timingSafeEqual(got, this.tokenBuf);
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://kova');
    const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname;
    try {
      if (path === '/healthz' || path === '/livez') return sendText(res, 200, 'ok');
      if (path === '/readyz') return await this.readyz(res);
      if (path === '/version') return send(res, 200, SERVER_VERSION);
      if (!this.authorized(req)) throw unauthorized();
      await this.route(req, res, path, url.searchParams);
    } catch (e) {
      const err = e instanceof ApiError ? e : internal(e instanceof Error ? e.message : String(e));
      if (!(e instanceof ApiError)) this.log(`internal error on ${req.method} ${req.url}: ${(e as Error)?.stack ?? e}`);
      if (res.headersSent) {
        res.end();
        return;
      }
      send(res, err.code, err.toStatus());
    }
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

  private async route(req: IncomingMessage, res: ServerResponse, path: string, q: URLSearchParams) {
    const method = req.method ?? 'GET';
    const accept = req.headers.accept;
    const registry = this.registry;
    if (method === 'GET') {
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
    const segs = path.split('/').filter(Boolean);
    if (segs[0] === 'apis' && segs.length === 2 && method === 'GET') {
      const group = apiGroupList(registry).groups.find((g) => g.name === segs[1]);
      if (!group) throw notFoundPath();
      return send(res, 200, { kind: 'APIGroup', apiVersion: 'v1', ...group });
    }
    if (path === '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews' && method === 'POST') {
      // Single-user cluster: the admin token may do everything. kubectl sends this one as
      // protobuf; the answer does not depend on the question, so only JSON bodies are echoed.
      const text = await readBody(req);
      const isJson = (req.headers['content-type'] ?? 'application/json').startsWith('application/json');
      const review = (isJson && text.trim() ? parseJson(text) : { spec: {} }) as Record<string, unknown>;
      return send(res, 201, { ...review, apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', status: { allowed: true, reason: 'kova admin token' } });
    }
    const route = routeResource(registry, segs);
    if (route === 'groupVersion') {
      const gv = segs[0] === 'api' ? 'v1' : `${segs[1]}/${segs[2]}`;
      const list = apiResourceList(registry, gv);
      if (!list || method !== 'GET') throw notFoundPath();
      return send(res, 200, list);
    }
    if (!route) throw notFoundPath();
    return this.serveResource(req, res, route, q);
  }

  private render(info: ResourceInfo, accept: string | undefined, q: URLSearchParams) {
    if (!wantsTable(accept)) return undefined;
    const io = (q.get('includeObject') ?? 'Metadata') as IncludeObject;
    if (!['None', 'Metadata', 'Object'].includes(io)) throw badRequest(`invalid includeObject: ${io}`);
    return io;
  }

  private async serveResource(req: IncomingMessage, res: ServerResponse, route: ResourceRoute, q: URLSearchParams) {
    const { info, namespace, name, subresource } = route;
    const method = req.method ?? 'GET';
    const rs = this.resources;
    if (subresource === 'binding' && info.group === 'kova.dev' && info.plural === 'instances' && name) {
      if (method !== 'POST') throw methodNotAllowed(method);
      const body = parseObjectBody(req.headers['content-type'], await readBodyBytes(req));
      const { object, created } = await this.binder().bind(namespace!, name, body, writeQuery(q));
      return send(res, created ? 201 : 200, object);
    }
    if (subresource && !(subresource === 'status' && info.statusSubresource) && !(subresource === 'finalize' && info.kind === 'Namespace' && info.group === '')) {
      throw notFoundPath();
    }
    const sub = subresource === 'status' ? 'status' : undefined;
    const tableMode = this.render(info, req.headers.accept, q);
    const toOut = (o: KObject) => (tableMode ? toTable(info, [o], { includeObject: tableMode }) : o);

    if (!name) {
      if (info.namespaced && !namespace && method !== 'GET') throw methodNotAllowed(method);
      switch (method) {
        case 'GET':
          if (boolParam(q, 'watch')) return this.watch(req, res, info, namespace, q, tableMode);
          return this.list(res, info, namespace, q, tableMode);
        case 'POST': {
          const warnings: string[] = [];
          const body = parseObjectBody(req.headers['content-type'], await readBodyBytes(req)) as KObject;
          const created = await rs.create(info, namespace, body, { ...writeQuery(q), userAgent: req.headers['user-agent'], warnings, ownsBody: true });
          return send(res, 201, created, warningHeaders(warnings));
        }
        case 'DELETE': {
          const opts = await this.deleteOptions(req, q);
          const items = await rs.deleteCollection(info, namespace, this.listOptions(q), opts);
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
        const body = parseObjectBody(req.headers['content-type'], await readBodyBytes(req)) as KObject;
        const wopts: WriteOptions = { ...writeQuery(q), userAgent: req.headers['user-agent'], warnings, subresource: sub };
        if (subresource === 'finalize') return send(res, 200, await this.finalizeNamespace(info, name, body, wopts));
        return send(res, 200, await rs.update(info, namespace, name, body, wopts), warningHeaders(warnings));
      }
      case 'PATCH': {
        const ct = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
        const type = PATCH_CONTENT_TYPES[ct];
        if (!type) {
          const accepted = ['application/json-patch+json', 'application/merge-patch+json', 'application/apply-patch+yaml'];
          if (!info.custom) accepted.push('application/strategic-merge-patch+json');
          throw unsupportedMediaType(accepted);
        }
        const text = await readBody(req);
        const patch = type === 'apply' ? parseYaml(text) : parseJson(text);
        const warnings: string[] = [];
        const w = writeQuery(q);
        const existed = type === 'apply' ? await rs.get(info, namespace, name).then(() => true, () => false) : true;
        const out = await rs.patch(info, namespace, name, type, patch, { ...w, userAgent: req.headers['user-agent'], warnings, subresource: sub });
        return send(res, existed ? 200 : 201, out, warningHeaders(warnings));
      }
      case 'DELETE': {
        const opts = await this.deleteOptions(req, q);
        const { object, deleted } = await rs.delete(info, namespace, name, opts);
        return send(res, deleted ? 200 : 202, object);
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

  private listOptions(q: URLSearchParams) {
    return {
      labelSelector: q.get('labelSelector') ?? undefined,
      fieldSelector: q.get('fieldSelector') ?? undefined,
      limit: intParam(q, 'limit'),
      continue: q.get('continue') ?? undefined,
      resourceVersion: q.get('resourceVersion') ?? undefined,
      resourceVersionMatch: q.get('resourceVersionMatch') ?? undefined,
    };
  }

  private async list(res: ServerResponse, info: ResourceInfo, namespace: string | undefined, q: URLSearchParams, tableMode: IncludeObject | undefined) {
    this.stats.list++;
    const r = await this.resources.list(info, namespace, this.listOptions(q));
    if (tableMode) {
      return send(res, 200, toTable(info, r.items, {
        includeObject: tableMode, resourceVersion: r.resourceVersion, continue: r.continue, remainingItemCount: r.remainingItemCount,
      }));
    }
    const metadata: Record<string, unknown> = { resourceVersion: r.resourceVersion };
    if (r.continue) metadata.continue = r.continue;
    if (r.remainingItemCount !== undefined) metadata.remainingItemCount = r.remainingItemCount;
    return send(res, 200, { apiVersion: groupVersion(info), kind: info.listKind, metadata, items: r.items });
  }

  private async watch(req: IncomingMessage, res: ServerResponse, info: ResourceInfo, namespace: string | undefined, q: URLSearchParams, tableMode: IncludeObject | undefined) {
    this.stats.watch++;
    await serveWatch(this.resources, {
      info,
      namespace,
      labelSelector: q.get('labelSelector') ?? undefined,
      fieldSelector: q.get('fieldSelector') ?? undefined,
      resourceVersion: q.get('resourceVersion') ?? undefined,
      timeoutSeconds: intParam(q, 'timeoutSeconds'),
      allowBookmarks: boolParam(q, 'allowWatchBookmarks'),
      sendInitialEvents: boolParam(q, 'sendInitialEvents'),
      bookmarkIntervalMs: this.opts.bookmarkIntervalMs,
      render: (o, first) => (tableMode ? toTable(info, [o], { includeObject: tableMode, withColumnDefinitions: first }) : o),
      register: (finish) => {
        this.activeWatches.add(finish);
        return () => this.activeWatches.delete(finish);
      },
      onExpired: () => this.stats.watchExpired++,
    }, res);
  }

  private async deleteOptions(req: IncomingMessage, q: URLSearchParams): Promise<DeleteOptions> {
    const text = await readBody(req);
    const body = (text.trim() ? parseJson(text) : {}) as {
      propagationPolicy?: string; dryRun?: string[]; preconditions?: { uid?: string; resourceVersion?: string }; orphanDependents?: boolean;
    };
    const policy = body.propagationPolicy ?? q.get('propagationPolicy') ?? (body.orphanDependents === true ? 'Orphan' : undefined);
    if (policy && !['Background', 'Foreground', 'Orphan'].includes(policy)) {
      throw badRequest(`propagationPolicy: Unsupported value: "${policy}": supported values: "Foreground", "Background", "Orphan"`);
    }
    const dry = [...(body.dryRun ?? []), ...q.getAll('dryRun')];
    for (const v of dry) if (v !== 'All') throw badRequest(`Invalid dryRun value: ${JSON.stringify(v)}: supported values: "All"`);
    return { propagationPolicy: policy as DeleteOptions['propagationPolicy'], dryRun: dry.length > 0, preconditions: body.preconditions };
  }
}
