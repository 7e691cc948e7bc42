// The secure /metrics port of controllers and agents against a real API server (real etcd, TLS,
// the real RBAC bootstrap policy, kova user tokens): TokenReview and SubjectAccessReview asked
// with the controller-manager's own client certificate, 401/403/200 as kube-controller-manager's
// secure port answers them, decisions cached (counted on the API server), identical questions
// sharing one review, bounded caches, and a 503 (not a crash) while the API server is down.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { startTestResourceStore } from '../testing/resource-store.js';
import type { TestResourceStore } from '../testing/resource-store.js';
import { ensurePki, issueClientCert } from '../apiserver/pki.js';
import type { Pki } from '../apiserver/pki.js';
import { ApiServer } from '../apiserver/server.js';
import { startSecurity } from '../apiserver/auth/setup.js';
import type { Security } from '../apiserver/auth/setup.js';
import { Reviews } from '../apiserver/auth/reviews.js';
import type { ReviewHandler } from '../apiserver/auth/hooks.js';
import { adminTokenAuthenticator } from '../apiserver/auth/admin-token.js';
import { generateToken, tokenSecret, userSecret } from '../apiserver/auth/tokens.js';
import { CONTROLLER_MANAGER_USER, SYSTEM_AUTHENTICATED } from '../apiserver/auth/types.js';
import type { Authenticator } from '../apiserver/auth/types.js';
import { counter } from '../lib/metrics.js';
import { KovaClient } from './client.js';
import { DelegatedAuth } from './delegated-auth.js';
import type { DelegatedAuthOptions } from './delegated-auth.js';
import { parseBind, startMetricsServer } from './metrics-server.js';
import type { MetricsServer } from './metrics-server.js';

let env: TestResourceStore;
let dir: string;
let pki: Pki;
let security: Security;
let server: ApiServer;
let apiPort: number;
let controllerClient: KovaClient;
const stop = new AbortController();
/** Review POSTs the API server received, by resource (counted inside the server). */
const reviewsServed = new Map<string, number>();
const served = (resource: string) => reviewsServed.get(resource) ?? 0;

/** Prometheus: a static token of a user in group system:monitoring (kova user tokens cannot carry system: groups). */
const PROM_TOKEN = 'prometheus-static-token-0123456789';
const prometheus: Authenticator = adminTokenAuthenticator(PROM_TOKEN, { name: 'prometheus', groups: ['system:monitoring', SYSTEM_AUTHENTICATED] });
/** A kova user token (the real TokenAuthenticator) of bob, who has no right to /metrics. */
let bobToken: string;
let monitoringCert: { cert: string; key: string };

async function startApiServer(port: number): Promise<void> {
  // TokenReview asks the same token authenticators as the server itself (the wiring setup.ts gets).
  const inner = new Reviews({ rules: security.ruleResolver, tokenAuthenticators: [adminTokenAuthenticator(pki.token), prometheus, ...(security.options.authenticators ?? [])] });
  const counting: ReviewHandler = {
    handles: (path) => inner.handles(path),
    serve: (req, res, path, user, authorizer) => {
      const resource = path.split('/').pop()!;
      reviewsServed.set(resource, served(resource) + 1);
      return inner.serve(req, res, path, user, authorizer);
    },
  };
  server = new ApiServer({
    registry: env.registry, resources: env.resources, ...security.options,
    authenticators: [prometheus, ...(security.options.authenticators ?? [])], reviews: counting,
  });
  apiPort = (await server.listen('127.0.0.1', port, { cert: pki.cert, key: pki.key })).port;
}

function clientOf(cert: { cert: string; key: string } | { token: string }): KovaClient {
  const kc = new KubeConfig();
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  kc.loadFromOptions({
    clusters: [{ name: 'kova', server: `https://127.0.0.1:${apiPort}`, caData: b64(pki.caCert) }],
    users: [{ name: 'u', ...('token' in cert ? { token: cert.token } : { certData: b64(cert.cert), keyData: b64(cert.key) }) }],
    contexts: [{ name: 'kova', cluster: 'kova', user: 'u' }],
    currentContext: 'kova',
  });
  return new KovaClient(kc, { userAgent: 'metrics-server-test', maxRetries: 0 });
}

before(async () => {
  env = await startTestResourceStore(['kova-system']);
  dir = await mkdtemp(join(tmpdir(), 'kova-metrics-'));
  pki = await ensurePki(dir, []);
  security = await startSecurity(env.resources, { token: pki.token, caCert: pki.caCert });
  await startApiServer(0);
  // bob: a kova user with a token, in no group that may read /metrics.
  const secrets = env.registry.lookup('', 'v1', 'secrets')!;
  const bob = await env.resources.create(secrets, 'kova-system', userSecret('bob', ['devs']));
  const t = generateToken();
  await env.resources.create(secrets, 'kova-system', tokenSecret('bob', bob.metadata.uid!, t.id, t.secret));
  bobToken = t.token;
  controllerClient = clientOf(await issueClientCert(dir, CONTROLLER_MANAGER_USER));
  monitoringCert = await issueClientCert(dir, 'prometheus-cert', ['system:monitoring']);
  counter({ name: 'kova_metrics_server_test_total', help: 'A counter this test registers and looks for.' }).inc(3);
});

after(async () => {
  stop.abort();
  controllerClient?.close();
  await server?.close();
  await security?.stop();
  await env?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Reply {
  code: number;
  body: string;
  json?: Record<string, any>;
  headers: Record<string, unknown>;
}

function scrape(url: string, opts: { token?: string; path?: string; method?: string; cert?: { cert: string; key: string }; body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
    if (opts.body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(opts.body));
    const req = https.request(`${url}${opts.path ?? '/metrics'}`, { method: opts.method ?? 'GET', ca: pki.caCert, agent: false, headers, ...(opts.cert ?? {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let json: Record<string, any> | undefined;
        if (String(res.headers['content-type']).startsWith('application/json')) json = JSON.parse(body);
        resolve({ code: res.statusCode!, body, json, headers: res.headers });
      });
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

async function metricsServer(authOpts: DelegatedAuthOptions = {}, client = controllerClient): Promise<{ ms: MetricsServer; auth: DelegatedAuth }> {
  const auth = new DelegatedAuth(client, { clientCA: pki.caCert, ...authOpts });
  const ms = await startMetricsServer({ bind: '127.0.0.1:0', tls: { cert: pki.cert, key: pki.key }, auth, signal: stop.signal });
  return { ms, auth };
}

const tokenReview = (c: KovaClient, token: string) =>
  c.request<Record<string, any>>({ method: 'POST', path: '/apis/authentication.k8s.io/v1/tokenreviews', body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } } });

describe('TokenReview on a real API server with the bootstrap policy', () => {
  test('the controller-manager asks about a static token, a kova user token and a made-up one', async () => {
    const prom = await tokenReview(controllerClient, PROM_TOKEN);
    assert.deepEqual(prom.status, { authenticated: true, user: { username: 'prometheus', groups: ['system:monitoring', SYSTEM_AUTHENTICATED] } });
    const bob = await tokenReview(controllerClient, bobToken);
    assert.equal(bob.status.authenticated, true);
    assert.equal(bob.status.user.username, 'bob');
    assert.deepEqual(bob.status.user.groups, ['devs', SYSTEM_AUTHENTICATED]);
    assert.ok(bob.status.user.uid, 'a kova user has a uid');
    const wrong = await tokenReview(controllerClient, `${bobToken.slice(0, -4)}AAAA`);
    assert.deepEqual(wrong.status, { user: {} });
  });

  test('a user without create on tokenreviews gets 403', async () => {
    const bob = clientOf({ token: bobToken });
    try {
      await assert.rejects(tokenReview(bob, PROM_TOKEN), (e: any) => e.code === 403 && /cannot create resource "tokenreviews" in API group "authentication.k8s.io"/.test(e.message));
    } finally {
      bob.close();
    }
  });
});

describe('metrics server', () => {
  test('bind addresses: host:port, [v6]:port, nothing else', () => {
    assert.deepEqual(parseBind('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
    assert.deepEqual(parseBind('[::1]:9443'), { host: '::1', port: 9443 });
    assert.deepEqual(parseBind('localhost:10257'), { host: 'localhost', port: 10257 });
    for (const bad of ['127.0.0.1', ':80', '1.2.3.4:70000', 'a b:1', '::1:80']) assert.throws(() => parseBind(bad), /host:port/, bad);
  });

  test('without TLS or authentication it starts only when told it is insecure', async () => {
    await assert.rejects(startMetricsServer({ bind: '127.0.0.1:0', auth: undefined, tls: { cert: pki.cert, key: pki.key }, signal: stop.signal }), /insecure/);
    await assert.rejects(startMetricsServer({ bind: '127.0.0.1:0', auth: new DelegatedAuth(controllerClient), signal: stop.signal }), /insecure/);
    const ac = new AbortController();
    const ms = await startMetricsServer({ bind: '127.0.0.1:0', auth: undefined, insecure: true, signal: ac.signal });
    assert.match(ms.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const body = await fetch(`${ms.url}/metrics`).then((r) => r.text());
    assert.match(body, /kova_metrics_server_test_total 3/);
    ac.abort();
    await ms.close();
    await assert.rejects(fetch(`${ms.url}/healthz`));
  });

  test('no token 401, a user without /metrics 403, system:monitoring 200 with the metrics', async () => {
    const { ms } = await metricsServer();
    assert.match(ms.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const none = await scrape(ms.url);
    assert.equal(none.code, 401);
    assert.deepEqual(none.json, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
    assert.equal((await scrape(ms.url, { token: 'not-a-token' })).code, 401);
    const bob = await scrape(ms.url, { token: bobToken });
    assert.equal(bob.code, 403);
    assert.equal(bob.json!.reason, 'Forbidden');
    assert.match(bob.json!.message, /^forbidden: User "bob" cannot get path "\/metrics"/);
    const prom = await scrape(ms.url, { token: PROM_TOKEN });
    assert.equal(prom.code, 200, prom.body);
    assert.match(String(prom.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    assert.match(prom.body, /^kova_metrics_server_test_total 3$/m);
    assert.match(prom.body, /^process_cpu_seconds_total /m);
  });

  test('a client certificate of group system:monitoring from the kova CA is an identity too (no TokenReview)', async () => {
    const { ms, auth } = await metricsServer();
    const r = await scrape(ms.url, { cert: monitoringCert });
    assert.equal(r.code, 200, r.body);
    assert.equal(auth.stats.tokenReviews, 0);
    assert.equal(auth.stats.subjectAccessReviews, 1);
    // The controller-manager's certificate is no monitoring identity.
    const other = await issueClientCert(dir, 'someone', ['devs']);
    assert.equal((await scrape(ms.url, { cert: other })).code, 403);
  });

  test('/healthz needs no credentials; other paths 404, other methods 405, bodies 413', async () => {
    const { ms } = await metricsServer();
    const h = await scrape(ms.url, { path: '/healthz' });
    assert.equal(h.code, 200);
    assert.equal(h.body, 'ok');
    const nf = await scrape(ms.url, { path: '/debug/pprof', token: PROM_TOKEN });
    assert.equal(nf.code, 404);
    assert.equal(nf.json!.reason, 'NotFound');
    assert.equal((await scrape(ms.url, { path: '/metrics/../secrets' })).code, 404);
    assert.equal((await scrape(ms.url, { method: 'POST', token: PROM_TOKEN })).code, 405);
    assert.equal((await scrape(ms.url, { method: 'DELETE', path: '/healthz' })).code, 405);
    const withBody = await scrape(ms.url, { method: 'GET', token: PROM_TOKEN, body: 'x'.repeat(100) });
    assert.equal(withBody.code, 413);
  });

  test('a second scrape within the cache period sends no review to the API server', async () => {
    const { ms, auth } = await metricsServer();
    const before = { tr: served('tokenreviews'), sar: served('subjectaccessreviews') };
    assert.equal((await scrape(ms.url, { token: PROM_TOKEN })).code, 200);
    assert.equal(served('tokenreviews'), before.tr + 1);
    assert.equal(served('subjectaccessreviews'), before.sar + 1);
    assert.equal((await scrape(ms.url, { token: PROM_TOKEN })).code, 200);
    assert.equal((await scrape(ms.url, { token: bobToken })).code, 403);
    assert.equal((await scrape(ms.url, { token: bobToken })).code, 403);
    // prometheus once, bob once: the repeats were answered from the caches.
    assert.equal(served('tokenreviews'), before.tr + 2);
    assert.equal(served('subjectaccessreviews'), before.sar + 2);
    assert.deepEqual(auth.stats, { tokenReviews: 2, subjectAccessReviews: 2, tokenCacheHits: 2, decisionCacheHits: 2 });
  });

  test('identical questions asked at once share one review', async () => {
    const { ms } = await metricsServer();
    const before = { tr: served('tokenreviews'), sar: served('subjectaccessreviews') };
    const codes = await Promise.all(Array.from({ length: 20 }, () => scrape(ms.url, { token: PROM_TOKEN }).then((r) => r.code)));
    assert.deepEqual(new Set(codes), new Set([200]));
    assert.equal(served('tokenreviews'), before.tr + 1);
    assert.equal(served('subjectaccessreviews'), before.sar + 1);
  });

  test('answers expire after their TTL (kube delegated defaults: 10 s) and the caches stay bounded', async () => {
    let now = 1_000_000;
    const auth = new DelegatedAuth(controllerClient, { now: () => now, cacheSize: 2 });
    assert.equal((await auth.authenticate(PROM_TOKEN))?.username, 'prometheus');
    now += 9_999;
    await auth.authenticate(PROM_TOKEN);
    assert.equal(auth.stats.tokenReviews, 1);
    now += 2;
    await auth.authenticate(PROM_TOKEN);
    assert.equal(auth.stats.tokenReviews, 2, 'asked again after 10 s');
    // Unknown tokens are remembered too (kube caches failures for the same TTL), within the bound.
    assert.equal(await auth.authenticate('made-up-1'), undefined);
    assert.equal(await auth.authenticate('made-up-1'), undefined);
    assert.equal(auth.stats.tokenReviews, 3);
    await auth.authenticate(bobToken);
    assert.deepEqual(auth.cached.tokens, 2);
    // PROM_TOKEN was the least recently used: dropped for bob's, so asked again.
    await auth.authenticate(PROM_TOKEN);
    assert.equal(auth.stats.tokenReviews, 5);
    const user = (await auth.authenticate(PROM_TOKEN))!;
    assert.deepEqual(await auth.authorize(user, 'get', '/metrics'), { allowed: true, reason: 'RBAC: allowed by ClusterRoleBinding "system:monitoring" of ClusterRole "system:monitoring" to Group "system:monitoring"' });
    assert.equal((await auth.authorize(user, 'get', '/debug/pprof')).allowed, false);
    now += 10_001;
    await auth.authorize(user, 'get', '/metrics');
    assert.equal(auth.stats.subjectAccessReviews, 3);
  });

  test('API server down: 503 Status, no crash; back: 200', async () => {
    const { ms } = await metricsServer({ authenticatedTtlMs: 0, allowedTtlMs: 0, deniedTtlMs: 0, timeoutMs: 5000 });
    assert.equal((await scrape(ms.url, { token: PROM_TOKEN })).code, 200);
    const port = apiPort;
    await server.close();
    const down = await scrape(ms.url, { token: PROM_TOKEN });
    assert.equal(down.code, 503, down.body);
    assert.equal(down.json!.reason, 'ServiceUnavailable');
    assert.match(down.json!.message, /the API server could not review the request \(TokenReview\)/);
    assert.equal((await scrape(ms.url, { path: '/healthz' })).code, 200, 'health does not depend on the API server');
    await startApiServer(port);
    const back = await scrape(ms.url, { token: PROM_TOKEN });
    assert.equal(back.code, 200, back.body);
    assert.match(back.body, /kova_metrics_server_test_total 3/);
  });

  test('the server closes with its signal', async () => {
    const ac = new AbortController();
    const auth = new DelegatedAuth(controllerClient);
    const ms = await startMetricsServer({ bind: '127.0.0.1:0', tls: { cert: pki.cert, key: pki.key }, auth, signal: ac.signal });
    assert.equal((await scrape(ms.url, { path: '/healthz' })).code, 200);
    ac.abort();
    await ms.close();
    await assert.rejects(scrape(ms.url, { path: '/healthz' }), /ECONNREFUSED/);
  });
});
