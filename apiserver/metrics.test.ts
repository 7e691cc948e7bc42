// The API server's Prometheus metrics against a real etcd: kube-apiserver's series move with the
// requests served, GET /metrics is authorized like kube's (401, 403, 200 by identity, RBAC's
// bootstrap policy), random URLs add no label values, and the per-request log line.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Writable } from 'node:stream';
import { defaultCrdDir, Registry } from '../api/registry.js';
import { Validator } from '../api/validation.js';
import { configureLogging } from '../lib/log.js';
import { Store } from '../store/store.js';
import { startTestEtcd, waitFor } from '../testing/etcd.js';
import type { TestEtcd } from '../testing/etcd.js';
import { startSecurity } from './auth/setup.js';
import type { Security } from './auth/setup.js';
import { REQUEST_DURATION_BUCKETS } from './metrics.js';
import { ResourceStore } from './resource-store.js';
import { ApiServer } from './server.js';

const TOKEN = 'metrics-test-admin-token';
let etcd: TestEtcd;
let store: Store;
let registry: Registry;
let resources: ResourceStore;
let security: Security;
let server: ApiServer;
let port: number;

interface Reply {
  code: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(method: string, path: string, opts: { body?: unknown; headers?: Record<string, string>; auth?: boolean; port?: number } = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...(opts.auth === false ? {} : { Authorization: `Bearer ${TOKEN}` }), ...opts.headers };
  const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  if (body) headers['Content-Type'] ??= 'application/json';
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: opts.port ?? port, method, path, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ code: res.statusCode!, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The samples of a Prometheus text exposition: `name{a="b",...}` (labels sorted) → value. */
function parseExposition(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const labels = [...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => `${l[1]}="${l[2]}"`).sort();
    out.set(`${m[1]}{${labels.join(',')}}`, Number(m[3]));
  }
  return out;
}

async function scrape(): Promise<Map<string, number>> {
  const r = await request('GET', '/metrics');
  assert.equal(r.code, 200, r.body);
  return parseExposition(r.body);
}

/** A sample's value by name and labels (given in any order); 0 when absent. */
function sample(m: Map<string, number>, name: string, labels: Record<string, string>): number {
  const key = `${name}{${Object.entries(labels).map(([k, v]) => `${k}="${v}"`).sort().join(',')}}`;
  return m.get(key) ?? 0;
}

const requestLabels = (verb: string, resource: string, scope: string, extra: Record<string, string> = {}) => ({
  verb, dry_run: '', group: '', version: 'v1', resource, subresource: '', scope, component: 'apiserver', ...extra,
});

before(async () => {
  etcd = await startTestEtcd();
  store = Store.connect(etcd.endpoints);
  registry = await Registry.load(defaultCrdDir());
  resources = new ResourceStore(store, registry, new Validator(registry));
  await resources.namespaces.start();
  await resources.create(registry.lookup('', 'v1', 'namespaces')!, undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } });
  await waitFor(async () => (await resources.namespaces.state('default')) !== 'missing', 'namespace cache');
  security = await startSecurity(resources, { token: TOKEN });
  server = new ApiServer({ registry, resources, ...security.options, metrics: true });
  port = (await server.listen('127.0.0.1', 0)).port;
});

after(async () => {
  await server?.close();
  await security?.stop();
  await resources?.namespaces.stop();
  await store?.close();
  await etcd?.cleanup();
});

describe('request metrics', () => {
  test('create, get, list and watch move apiserver_request_total, the duration histogram and etcd_request_duration_seconds', async () => {
    const before = await scrape();
    const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'm1' }, data: { a: 'b' } };
    assert.equal((await request('POST', '/api/v1/namespaces/default/configmaps', { body: cm })).code, 201);
    assert.equal((await request('GET', '/api/v1/namespaces/default/configmaps/m1')).code, 200);
    assert.equal((await request('GET', '/api/v1/namespaces/default/configmaps/missing')).code, 404);
    assert.equal((await request('GET', '/api/v1/namespaces/default/configmaps')).code, 200);
    assert.equal((await request('PATCH', '/api/v1/namespaces/default/configmaps/m1', { body: { data: { c: 'd' } }, headers: { 'Content-Type': 'application/merge-patch+json' } })).code, 200);
    assert.equal((await request('POST', '/api/v1/namespaces/default/configmaps?dryRun=All', { body: { ...cm, metadata: { name: 'dry' } } })).code, 201);
    // A watch that ends by itself: recorded when it ends, with its whole duration.
    assert.equal((await request('GET', '/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1')).code, 200);
    const now = await scrape();

    const delta = (name: string, labels: Record<string, string>) => sample(now, name, labels) - sample(before, name, labels);
    const total = 'apiserver_request_total';
    assert.equal(delta(total, { ...requestLabels('CREATE', 'configmaps', 'resource'), code: '201' }), 1);
    assert.equal(delta(total, { ...requestLabels('CREATE', 'configmaps', 'resource', { dry_run: 'All' }), code: '201' }), 1);
    assert.equal(delta(total, { ...requestLabels('GET', 'configmaps', 'resource'), code: '200' }), 1);
    assert.equal(delta(total, { ...requestLabels('GET', 'configmaps', 'resource'), code: '404' }), 1);
    assert.equal(delta(total, { ...requestLabels('LIST', 'configmaps', 'namespace'), code: '200' }), 1);
    assert.equal(delta(total, { ...requestLabels('PATCH', 'configmaps', 'resource'), code: '200' }), 1);
    assert.equal(delta(total, { ...requestLabels('WATCH', 'configmaps', 'namespace'), code: '200' }), 1);
    // The histogram: kube's buckets, an observation per request, the watch's in the ≥ 1 s buckets.
    const hist = 'apiserver_request_duration_seconds';
    assert.equal(delta(`${hist}_count`, requestLabels('GET', 'configmaps', 'resource')), 2);
    assert.equal(delta(`${hist}_bucket`, { ...requestLabels('WATCH', 'configmaps', 'namespace'), le: '0.8' }), 0);
    assert.equal(delta(`${hist}_bucket`, { ...requestLabels('WATCH', 'configmaps', 'namespace'), le: '+Inf' }), 1);
    assert.ok(delta(`${hist}_sum`, requestLabels('WATCH', 'configmaps', 'namespace')) >= 1);
    const les = [...now.keys()].filter((k) => k.startsWith(`${hist}_bucket{`) && k.includes('verb="CREATE"') && k.includes('dry_run=""') && k.includes('resource="configmaps"'))
      .map((k) => /le="([^"]+)"/.exec(k)![1]);
    assert.deepEqual(les.filter((l) => l !== '+Inf').map(Number).sort((a, b) => a - b), REQUEST_DURATION_BUCKETS);
    // etcd calls made by those requests, by operation and resource.
    const etcdCount = (operation: string) => sample(now, 'etcd_request_duration_seconds_count', { operation, type: 'configmaps' }) - sample(before, 'etcd_request_duration_seconds_count', { operation, type: 'configmaps' });
    assert.ok(etcdCount('create') >= 1, 'etcd create');
    assert.ok(etcdCount('get') >= 2, 'etcd get');
    assert.ok(etcdCount('list') >= 2, 'etcd list (the list and the watch)');
    // Process metrics and the in-flight gauge are part of the answer.
    assert.ok(now.has('process_cpu_seconds_total{}'));
    assert.ok(now.has('apiserver_current_inflight_requests{request_kind="mutating"}'));
    assert.ok(now.has('apiserver_current_inflight_requests{request_kind="readOnly"}'));
  });

  test('an open watch is counted in apiserver_longrunning_requests and apiserver_registered_watchers until it ends', async () => {
    const watchers = { group: '', version: 'v1', kind: 'ConfigMap' };
    const longRunning = { verb: 'WATCH', group: '', version: 'v1', resource: 'configmaps', subresource: '', scope: 'namespace', component: 'apiserver' };
    const base = sample(await scrape(), 'apiserver_registered_watchers', watchers);
    const req = http.request({ host: '127.0.0.1', port, path: '/api/v1/namespaces/default/configmaps?watch=true', headers: { Authorization: `Bearer ${TOKEN}` }, agent: false });
    const started = new Promise<http.IncomingMessage>((resolve) => req.on('response', resolve));
    req.on('error', () => undefined);
    req.end();
    assert.equal((await started).statusCode, 200);
    const open = await scrape();
    assert.equal(sample(open, 'apiserver_registered_watchers', watchers), base + 1);
    assert.ok(sample(open, 'apiserver_longrunning_requests', longRunning) >= 1);
    req.destroy();
    await waitFor(async () => sample(await scrape(), 'apiserver_registered_watchers', watchers) === base, 'the watcher to be unregistered');
  });
});

describe('GET /metrics authorization', () => {
  test('no credentials: 401; a user without the right: 403 as a Status; system:monitoring and the admin: 200 in the text format', async () => {
    const anonymous = await request('GET', '/metrics', { auth: false });
    assert.equal(anonymous.code, 401);
    assert.equal(JSON.parse(anonymous.body).kind, 'Status');

    const nobody = await request('GET', '/metrics', { headers: { 'Impersonate-User': 'nobody' } });
    assert.equal(nobody.code, 403, nobody.body);
    const status = JSON.parse(nobody.body);
    assert.equal(status.kind, 'Status');
    assert.equal(status.reason, 'Forbidden');
    assert.match(status.message, /"\/metrics"/);

    // kube's bootstrap policy: the ClusterRole system:monitoring bound to the group of that name.
    const prometheus = await request('GET', '/metrics', { headers: { 'Impersonate-User': 'prometheus', 'Impersonate-Group': 'system:monitoring' } });
    assert.equal(prometheus.code, 200, prometheus.body);
    assert.equal(prometheus.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    assert.match(prometheus.body, /^# HELP apiserver_request_total /m);

    const admin = await request('GET', '/metrics');
    assert.equal(admin.code, 200);
    // Each answer is counted as kube does: non-resource, the path in subresource.
    const m = parseExposition(admin.body);
    for (const code of ['401', '403', '200']) {
      assert.ok(sample(m, 'apiserver_request_total', { verb: 'GET', dry_run: '', group: '', version: '', resource: '', subresource: '/metrics', scope: '', component: 'apiserver', code }) >= 1, code);
    }
  });
});

describe('label cardinality', () => {
  /** A deterministic stream of random URLs, methods and bodies (xorshift). */
  function* garbage(seed: number, n: number): Generator<{ method: string; path: string; body?: unknown; contentType?: string }> {
    let x = seed;
    const rnd = (k: number) => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) % k;
    };
    const word = () => Array.from({ length: 1 + rnd(12) }, () => 'abcdefghijklmnopqrstuvwxyz0123456789-._~%'[rnd(41)]).join('');
    const shapes = [
      () => `/${word()}`,
      () => `/${word()}/${word()}/${word()}`,
      () => `/apis/${word()}/${word()}/${word()}`,
      () => `/apis/kova.dev/${word()}/instances`,
      () => `/apis/kova.dev/v1alpha1/namespaces/default/${word()}/${word()}`,
      () => `/api/v1/namespaces/${word()}/configmaps/${word()}/${word()}`,
      () => `/api/v1/namespaces/default/configmaps/${word()}?dryRun=${word()}&watch=${word()}`,
      () => `/api/v1/${word()}?${word()}=${word()}`,
      () => `/openapi/${word()}/${word()}`,
      () => `/healthz/${word()}`,
      () => `/apis/${word()}`,
      () => `/metrics/${word()}`,
    ];
    const methods = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD', 'PROPFIND'];
    for (let i = 0; i < n; i++) {
      const method = methods[rnd(methods.length)]!;
      const body = method !== 'GET' && method !== 'HEAD' && rnd(2) ? { kind: word(), metadata: { name: word() } } : undefined;
      yield { method, path: shapes[rnd(shapes.length)]!(), body, contentType: rnd(2) ? 'application/apply-patch+yaml' : undefined };
    }
  }

  /** Every value each label of the API server's series takes. */
  function labelValues(m: Map<string, number>): Map<string, Set<string>> {
    const out = new Map<string, Set<string>>();
    for (const key of m.keys()) {
      if (!/^(apiserver_|etcd_request)/.test(key)) continue;
      for (const [, k, v] of key.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
        if (k === 'le' || k === 'code') continue;
        if (!out.has(k!)) out.set(k!, new Set());
        out.get(k!)!.add(v!);
      }
    }
    return out;
  }

  async function send(seed: number) {
    for (const g of garbage(seed, 300)) {
      const r = await request(g.method, g.path, { body: g.body, headers: g.contentType ? { 'Content-Type': g.contentType } : {} }).catch((e: Error) => {
        throw new Error(`${g.method} ${g.path}: ${e.message}`);
      });
      assert.ok(r.code < 500, `${g.method} ${g.path}: ${r.code} ${r.body}`);
    }
  }

  test('random URLs add no label values: resource, group and version are the registry\'s, paths a fixed set', async () => {
    await send(0x2545f491);
    await send(0x9e3779b9);
    const second = await scrape();
    // Every value any label took is one the registry or the fixed sets give: no URL text.
    const values = labelValues(second);
    const plurals = new Set(['', ...registry.all().map((r) => r.plural), 'selfsubjectaccessreviews', 'selfsubjectrulesreviews', 'subjectaccessreviews', 'selfsubjectreviews', 'tokenreviews']);
    const groups = new Set(['', ...registry.all().map((r) => r.group), 'authorization.k8s.io', 'authentication.k8s.io']);
    const versions = new Set(['', ...registry.all().map((r) => r.version)]);
    for (const v of values.get('resource') ?? []) assert.ok(plurals.has(v), `resource="${v}"`);
    for (const v of values.get('group') ?? []) assert.ok(groups.has(v), `group="${v}"`);
    for (const v of values.get('version') ?? []) assert.ok(versions.has(v), `version="${v}"`);
    for (const v of values.get('kind') ?? []) assert.ok(registry.all().some((r) => r.kind === v), `kind="${v}"`);
    for (const v of values.get('type') ?? []) assert.ok(v === '' || groups.has(v) || registry.all().some((r) => v === (r.group ? `${r.plural}.${r.group}` : r.plural)), `type="${v}"`);
    for (const v of values.get('verb') ?? []) assert.ok(['GET', 'LIST', 'WATCH', 'CREATE', 'UPDATE', 'PATCH', 'APPLY', 'DELETE', 'DELETECOLLECTION', 'POST', 'PUT', 'other'].includes(v), `verb="${v}"`);
    for (const v of values.get('dry_run') ?? []) assert.ok(['', 'All', 'invalid'].includes(v), `dry_run="${v}"`);
    const paths = new Set(['', 'status', 'binding', 'finalize', 'other', '/', '/api', '/apis', '/version', '/healthz', '/livez', '/readyz', '/metrics', '/openapi/v2', '/openapi/v3', '/openapi/v3/*', '/api/v1']);
    for (const gv of registry.groupVersions()) if (gv !== 'v1') paths.add(`/apis/${gv}`).add(`/apis/${gv.split('/')[0]}`);
    for (const v of values.get('subresource') ?? []) assert.ok(paths.has(v), `subresource="${v}"`);
  });
});

describe('request log', () => {
  test('off by default; with requestLogging one JSON line per request: user, verb, resource, object, code, latency, user agent', async () => {
    const lines: string[] = [];
    configureLogging({ level: 'info', destination: new Writable({ write(chunk, _enc, cb) { lines.push(...String(chunk).split('\n').filter(Boolean)); cb(); } }) });
    try {
      const logged = new ApiServer({ registry, resources, ...security.options, requestLogging: true });
      const loggedPort = (await logged.listen('127.0.0.1', 0)).port;
      try {
        // The server without requestLogging writes nothing.
        assert.equal((await request('GET', '/api/v1/namespaces/default/configmaps')).code, 200);
        assert.deepEqual(lines, []);
        const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'logged' } };
        const r = await request('POST', '/api/v1/namespaces/default/configmaps', { body: cm, port: loggedPort, headers: { 'User-Agent': 'metrics-test/1.0' } });
        assert.equal(r.code, 201, r.body);
        assert.equal((await request('GET', '/api/v1/namespaces/default/configmaps/logged', { port: loggedPort, headers: { 'Impersonate-User': 'nobody' } })).code, 403);
        assert.equal(lines.length, 2, lines.join('\n'));
        const create = JSON.parse(lines[0]!);
        assert.equal(create.component, 'apiserver');
        assert.equal(create.msg, 'HTTP');
        assert.equal(create.user, 'kova-admin');
        assert.equal(create.verb, 'create');
        assert.equal(create.resource, 'configmaps');
        assert.equal(create.namespace, 'default');
        assert.equal(create.code, 201);
        assert.equal(typeof create.latencyMs, 'number');
        assert.equal(create.userAgent, 'metrics-test/1.0');
        const denied = JSON.parse(lines[1]!);
        assert.equal(denied.user, 'nobody');
        assert.equal(denied.verb, 'get');
        assert.equal(denied.name, 'logged');
        assert.equal(denied.code, 403);
      } finally {
        await logged.close();
      }
    } finally {
      configureLogging({ level: 'info' });
    }
  });
});
