// Hostile and malformed requests against a real API server (TLS, real etcd): none may crash
// the process, hang, or answer 500; each gets a Kubernetes Status naming what was wrong.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { defaultCrdDir, Registry } from '../api/registry.js';
import { Validator } from '../api/validation.js';
import { Store } from '../store/store.js';
import { startTestEtcd, waitFor } from '../testing/etcd.js';
import type { TestEtcd } from '../testing/etcd.js';
import { ensurePki } from './pki.js';
import type { Pki } from './pki.js';
import { ResourceStore } from './resource-store.js';
import { ApiServer } from './server.js';

interface Reply {
  code: number;
  headers: IncomingMessage['headers'];
  body: string;
  json: () => Record<string, unknown>;
}

let etcd: TestEtcd;
let store: Store;
let server: ApiServer;
let pki: Pki;
let pkiDir: string;
let port: number;
const logs: string[] = [];
const WATCH_BUFFER = 1024 * 1024;
const BODY_TIMEOUT_MS = 300;

before(async () => {
  etcd = await startTestEtcd();
  store = Store.connect(etcd.endpoints);
  pkiDir = await mkdtemp(join(tmpdir(), 'kova-pki-'));
  pki = await ensurePki(pkiDir, []);
  const registry = await Registry.load(defaultCrdDir());
  const resources = new ResourceStore(store, registry, new Validator(registry));
  await resources.namespaces.start();
  await resources.create(registry.lookup('', 'v1', 'namespaces')!, undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } });
  await waitFor(async () => (await resources.namespaces.state('default')) !== 'missing', 'namespace cache');
  server = new ApiServer({ registry, resources, token: pki.token, log: (m) => logs.push(m), watchBufferBytes: WATCH_BUFFER, bodyTimeoutMs: BODY_TIMEOUT_MS });
  port = (await server.listen('127.0.0.1', 0, { cert: pki.cert, key: pki.key })).port;
});

after(async () => {
  await server?.close();
  await server?.resources.namespaces.stop();
  await store?.close();
  await etcd?.cleanup();
  await rm(pkiDir, { recursive: true, force: true });
});

function request(method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1', port, method, path, ca: pki.caCert, agent: false,
      // Content-Length always: node sends a GET or DELETE body unframed otherwise.
      headers: { Authorization: `Bearer ${pki.token}`, 'Content-Type': 'application/json', 'Content-Length': String(body === undefined ? 0 : Buffer.byteLength(body)), ...headers },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ code: res.statusCode!, headers: res.headers, body: text, json: () => JSON.parse(text) });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Sends raw bytes over TLS and returns everything the server answers before it closes. */
function raw(bytes: string | Buffer, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: pki.caCert, servername: 'localhost' }, () => s.write(bytes));
    let out = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no close after ${timeoutMs} ms; got ${JSON.stringify(out)}`));
    }, timeoutMs);
    s.on('data', (d: Buffer) => (out += d.toString('latin1')));
    s.on('error', () => undefined); // a reset after the answer is fine; the answer is what counts
    s.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

const statusLine = (answer: string) => answer.split('\r\n')[0];
const statusBody = (answer: string) => JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { kind: string; code: number; message: string };

async function assertHealthy() {
  const r = await request('GET', '/api/v1/namespaces/default');
  assert.equal(r.code, 200, r.body);
}

describe('malformed HTTP requests', () => {
  test('GET //[ (the request that killed the server) is answered, unauthenticated and authenticated', async () => {
    const anonymous = await raw('GET //[ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match(statusLine(anonymous), /^HTTP\/1\.1 401 /, anonymous);
    const admin = await raw(`GET //[ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${pki.token}\r\nConnection: close\r\n\r\n`);
    assert.match(statusLine(admin), /^HTTP\/1\.1 404 /, admin);
    assert.equal(statusBody(admin).kind, 'Status');
    await assertHealthy();
  });

  test('an unparseable request target is a 400 Status, and the server keeps serving', async () => {
    for (const target of ['http://[', 'http://x:99999/', '*', 'x']) {
      const answer = await raw(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      assert.match(statusLine(answer), /^HTTP\/1\.1 400 /, `${target}: ${answer}`);
      const status = statusBody(answer);
      assert.equal(status.kind, 'Status');
      assert.equal(status.code, 400);
      assert.match(status.message, /invalid request target|malformed HTTP request/);
    }
    await assertHealthy();
    assert.equal(server.stats.internalErrors, 0);
  });

  test('parser errors (bad header line, oversized headers) get a Status and a closed socket', async () => {
    const bad = await raw('GET /version HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n');
    assert.match(statusLine(bad), /^HTTP\/1\.1 400 /, bad);
    assert.equal(statusBody(bad).kind, 'Status');
    const big = await raw(`GET /version HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`);
    assert.match(statusLine(big), /^HTTP\/1\.1 431 /, big);
    const garbage = await raw(Buffer.from([0, 1, 2, 3, 13, 10, 13, 10]));
    assert.match(statusLine(garbage), /^HTTP\/1\.1 400 /);
    await assertHealthy();
  });

  test('a request whose headers overflow still gets its 431 while it is sending a large body', async () => {
    // The fuzzer's case: a 64 KiB query and a 4 MiB body. The socket is read to the end after the
    // answer (within a time bound), so the client sees the 431 instead of a reset mid-write.
    const outcome = await new Promise<{ code?: number; body: string; error?: string }>((resolve) => {
      const body = Buffer.alloc(4 * 1024 * 1024, 0x20);
      const got: { code?: number; body: string; error?: string } = { body: '' };
      const req = https.request({
        host: '127.0.0.1', port, method: 'PATCH', path: `/api/v1/namespaces/default/configmaps/x?fieldManager=${'a'.repeat(64 * 1024)}`, ca: pki.caCert, agent: false,
        headers: { Authorization: `Bearer ${pki.token}`, 'Content-Type': 'application/json', 'Content-Length': String(body.length) },
      }, (res) => {
        got.code = res.statusCode;
        res.on('data', (c: Buffer) => (got.body += c.toString('utf8')));
      });
      // Any error, even one after the answer arrived, is what the fuzzer saw as a reset.
      req.on('error', (e) => (got.error ??= e.message));
      req.on('close', () => resolve(got));
      // Written in pieces, as a client streaming a body does, so later chunks reach the server after its answer.
      for (let i = 0; i < body.length; i += 64 * 1024) req.write(body.subarray(i, i + 64 * 1024));
      req.end();
    });
    assert.equal(outcome.error, undefined, `the request failed: ${outcome.error}`);
    assert.equal(outcome.code, 431, outcome.body);
    assert.equal(JSON.parse(outcome.body).kind, 'Status');
    await assertHealthy();
  });

  test('dot segments, plain or percent-encoded, are refused instead of resolved', async () => {
    // `events/%2e%2e` used to resolve to the namespace `default` itself (a 200 with the wrong object).
    for (const path of ['/api/v1/namespaces/default/configmaps/%2e%2e', '/api/v1/namespaces/default/configmaps/..', '/api/v1/namespaces/default/configmaps/%2E', '/api/v1/namespaces/default/./configmaps']) {
      const r = await request('GET', path);
      assert.equal(r.code, 400, `${path} -> ${r.code} ${r.body}`);
      assert.equal(r.json().kind, 'Status');
      assert.match(String(r.json().message), /may not be '\.\.?'/);
    }
    const ok = await request('GET', '/api/v1/namespaces/default/configmaps/..x');
    assert.equal(ok.code, 404, ok.body);
  });

  test('namespaces have no deletecollection: DELETE /api/v1/namespaces is 405 and discovery does not offer it', async () => {
    const r = await request('DELETE', '/api/v1/namespaces');
    assert.equal(r.code, 405, r.body);
    assert.equal(r.json().kind, 'Status');
    assert.equal((await request('GET', '/api/v1/namespaces/default')).code, 200);
    const list = (await request('GET', '/api/v1')).json() as { resources: Array<{ name: string; verbs: string[] }> };
    assert.ok(!list.resources.find((x) => x.name === 'namespaces')!.verbs.includes('deletecollection'));
    assert.ok(list.resources.find((x) => x.name === 'configmaps')!.verbs.includes('deletecollection'));
  });

  test('an absolute-form request target is served like its path', async () => {
    const answer = await raw(`GET https://127.0.0.1:${port}/version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.match(statusLine(answer), /^HTTP\/1\.1 200 /, answer);
  });

  test('a GET with a body is served normally', async () => {
    const r = await request('GET', '/api/v1/namespaces/default', '{"ignored": true}');
    assert.equal(r.code, 200, r.body);
  });

  test('a request body that never ends gets 408 and the connection is closed; watches are not affected', async () => {
    const watch = openWatch('/api/v1/namespaces/default/configmaps?watch=true');
    await waitFor(() => watch.lines().length >= 0 && watch.open(), 'watch open');
    const answer = await raw(`POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${pki.token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"metadata":`);
    assert.match(statusLine(answer), /^HTTP\/1\.1 408 /, answer);
    assert.equal(statusBody(answer).code, 408);
    await new Promise((r) => setTimeout(r, BODY_TIMEOUT_MS * 2));
    const c = await request('POST', '/api/v1/namespaces/default/configmaps', JSON.stringify({ metadata: { name: 'after-408' } }));
    assert.equal(c.code, 201, c.body);
    await waitFor(() => watch.lines().some((l) => l.includes('after-408')), 'the watch to see an event after the body timeout');
    watch.close();
  });
});

describe('wrong-typed and hostile bodies', () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['string metadata', { metadata: 'x' }, /metadata: expected object, got string/],
    ['number name', { metadata: { name: 5 } }, /metadata\.name: expected string, got integer/],
    ['string labels', { metadata: { name: 'a', labels: 'x' } }, /metadata\.labels: expected object, got string/],
    ['non-string label value', { metadata: { name: 'a', labels: { a: 1 } } }, /metadata\.labels\[a\]: expected string/],
    ['string finalizers', { metadata: { name: 'a', finalizers: 'x' } }, /metadata\.finalizers: expected array/],
    ['object ownerReferences', { metadata: { name: 'a', ownerReferences: {} } }, /metadata\.ownerReferences: expected array/],
    ['number kind', { kind: 5, metadata: { name: 'a' } }, /kind: expected string/],
    ['array body', [], /expected a JSON object, got array/],
    ['null body', null, /expected a JSON object, got null/],
    ['string body', 'x', /expected a JSON object, got string/],
  ];
  for (const [what, body, message] of cases) {
    test(`create with ${what} is a 400 naming the field`, async () => {
      const r = await request('POST', '/api/v1/namespaces/default/configmaps', JSON.stringify(body));
      assert.equal(r.code, 400, r.body);
      assert.equal(r.json().kind, 'Status');
      assert.match(r.json().message as string, message);
    });
  }

  test('wrong-typed spec and metadata on a custom resource: 4xx, never 500', async () => {
    for (const body of [
      { apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: { name: 'f1' }, spec: 5 },
      { apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: 'x' },
      { apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: { name: 'f2', annotations: [] } },
    ]) {
      const r = await request('POST', '/apis/kova.dev/v1alpha1/flavors', JSON.stringify(body));
      assert.ok(r.code >= 400 && r.code < 500, `${JSON.stringify(body)} -> ${r.code} ${r.body}`);
    }
    const put = await request('PUT', '/api/v1/namespaces/default/configmaps/x', JSON.stringify({ metadata: 'x' }));
    assert.equal(put.code, 400, put.body);
    const apply = await request('PATCH', '/api/v1/namespaces/default/configmaps/x?fieldManager=t', 'metadata: x\n', { 'Content-Type': 'application/apply-patch+yaml' });
    assert.equal(apply.code, 400, apply.body);
    assert.equal(server.stats.internalErrors, 0);
  });

  test('an unknown field named outside Latin-1 is created with an escaped Warning, not a 500 after the write', async () => {
    // Node refuses header values above U+00FF; before the fix the object was stored and the
    // client got a 500, so a retry met 409 AlreadyExists.
    const body = { apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: { name: 'warn-1' }, spec: { vcpus: 1, memory: '64Mi', disk: '1Gi' }, '\u202e\u0633\u0644\u0627\u0645\u007f': {} };
    const created = await new Promise<IncomingMessage & { text: string }>((resolve, reject) => {
      const text = JSON.stringify(body);
      const req = https.request({
        host: '127.0.0.1', port, method: 'POST', path: '/apis/kova.dev/v1alpha1/flavors', ca: pki.caCert, agent: false,
        headers: { Authorization: `Bearer ${pki.token}`, 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(text)) },
      }, (res) => {
        let t = '';
        res.on('data', (c) => (t += c));
        res.on('end', () => resolve(Object.assign(res, { text: t })));
      });
      req.on('error', reject);
      req.end(text);
    });
    assert.equal(created.statusCode, 201, created.text);
    const warning = String(created.headers.warning);
    assert.match(warning, /^299 - "unknown field/);
    assert.ok(warning.includes('\\u202e\\u0633') && warning.includes('\\u007f'), warning);
    // The quoted string reads back as the original field name, as kubectl's parser reads it.
    assert.ok(JSON.parse(warning.slice('299 - '.length)).includes('\u202e\u0633\u0644\u0627\u0645\u007f'));
    assert.equal(server.stats.internalErrors, 0);
  });

  test('a very long non-ASCII unknown field name keeps the Warning header within node clients\' 16 KiB', async () => {
    // Cut before escaping, 3,000 such characters became 18 KiB of header: the object was
    // created but node clients failed with HPE_HEADER_OVERFLOW.
    const field = '\u0633'.repeat(3000);
    const r = await request('POST', '/apis/kova.dev/v1alpha1/flavors', JSON.stringify({ apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: { name: 'warn-2' }, spec: { vcpus: 1, memory: '64Mi', disk: '1Gi' }, [field]: {}, [`${field}x`]: {}, [`${field}y`]: {}, [`${field}z`]: {} }));
    assert.equal(r.code, 201, r.body);
    const warning = String(r.headers.warning);
    assert.ok(warning.length <= 12 * 1024, `Warning header of ${warning.length} characters`);
    const first = warning.split(', 299 - ')[0]!;
    assert.ok(first.length <= 4096 + 6 && first.endsWith('..."'), first.slice(-40));
    assert.ok(JSON.parse(first.slice('299 - '.length)).startsWith('unknown field'));
  });

  test('patches that leave metadata wrong-typed are 4xx, never 500', async () => {
    const made = await request('POST', '/api/v1/namespaces/default/configmaps', JSON.stringify({ metadata: { name: 'patched' } }));
    assert.equal(made.code, 201, made.body);
    const merge = { 'Content-Type': 'application/merge-patch+json' };
    const json = { 'Content-Type': 'application/json-patch+json' };
    const cases: Array<[Record<string, string>, unknown]> = [
      [merge, { metadata: 'x' }],
      [merge, { metadata: { labels: 'x' } }],
      [merge, { metadata: { labels: { a: 5 } } }],
      [merge, { metadata: { finalizers: 'x' } }],
      [merge, { metadata: { ownerReferences: 'x' } }],
      [merge, { metadata: { annotations: [1] } }],
      [merge, { data: 5 }],
      [merge, 'x'],
      [merge, null],
      [json, [{ op: 'replace', path: '/metadata', value: 'x' }]],
      [json, [{ op: 'add', path: '/metadata/labels', value: 5 }]],
      [json, { op: 'add' }],
      [json, [5]],
    ];
    for (const [headers, body] of cases) {
      const r = await request('PATCH', '/api/v1/namespaces/default/configmaps/patched', JSON.stringify(body), headers);
      assert.ok(r.code >= 400 && r.code < 500, `${JSON.stringify(body)} -> ${r.code} ${r.body}`);
    }
    assert.equal(server.stats.internalErrors, 0, logs.join('\n'));
  });

  test('a strategic merge patch that leaves finalizers wrong-typed on an object being deleted is a 400, not a 500', async () => {
    // Found by the fuzz test: the deletion rule read metadata.finalizers before any type check.
    const cm = await request('POST', '/api/v1/namespaces/default/configmaps', JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'held', finalizers: ['example.com/hold'] } }));
    assert.equal(cm.code, 201, cm.body);
    assert.equal((await request('DELETE', '/api/v1/namespaces/default/configmaps/held')).code, 202, 'held by its finalizer');
    for (const [type, body] of [
      ['application/strategic-merge-patch+json', { metadata: { finalizers: false } }],
      ['application/merge-patch+json', { metadata: { finalizers: 7 } }],
    ] as const) {
      const r = await request('PATCH', '/api/v1/namespaces/default/configmaps/held', JSON.stringify(body), { 'Content-Type': type });
      assert.equal(r.code, 400, `${type}: ${r.code} ${r.body}`);
      assert.match(String(r.json().message), /metadata\.finalizers/);
    }
    // Let it go.
    const done = await request('PATCH', '/api/v1/namespaces/default/configmaps/held', JSON.stringify({ metadata: { finalizers: null } }), { 'Content-Type': 'application/merge-patch+json' });
    assert.equal(done.code, 200, done.body);
    assert.equal(server.stats.internalErrors, 0);
  });

  test('DeleteOptions of the wrong type are 400', async () => {
    for (const body of ['null', '[]', '{"dryRun": 5}', '{"propagationPolicy": 1}', '{"preconditions": "x"}']) {
      const r = await request('DELETE', '/api/v1/namespaces/default/configmaps/nope', body);
      assert.equal(r.code, 400, `${body}: ${r.body}`);
    }
  });

  test('a body nested deeper than 1000 levels is a 400, JSON or YAML, without overflowing the stack', async () => {
    const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
    const ssar = await request('POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', `{"spec": ${deep(100_000)}}`);
    assert.equal(ssar.code, 400, ssar.body.slice(0, 300));
    assert.match(ssar.json().message as string, /nested too deeply/);
    const create = await request('POST', '/api/v1/namespaces/default/configmaps', `{"metadata": {"name": "deep"}, "data": ${deep(1_001)}}`);
    assert.equal(create.code, 400);
    assert.match(create.json().message as string, /nested too deeply/);
    for (const n of [1_001, 100_000]) {
      const yaml = await request('PATCH', '/api/v1/namespaces/default/configmaps/deep?fieldManager=t', `apiVersion: v1\nkind: ConfigMap\ndata: ${deep(n)}\n`, { 'Content-Type': 'application/apply-patch+yaml' });
      assert.equal(yaml.code, 400, yaml.body.slice(0, 300));
      assert.match(yaml.json().message as string, /nested too deeply/);
    }
    // A real review (spec is an object) carrying a 50-deep field it ignores.
    const ok = await request('POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', `{"spec": {"resourceAttributes": {"verb": "get"}}, "x": ${deep(50)}}`);
    assert.equal(ok.code, 201, ok.body);
    // At the limit itself the body is decoded; what the object rules make of it is a 4xx.
    const nearLimit: Array<[string, string, string]> = [
      ['POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', `{"spec": ${deep(999)}}`],
      ['POST', '/apis/kova.dev/v1alpha1/flavors', `{"apiVersion": "kova.dev/v1alpha1", "kind": "Flavor", "metadata": {"name": "deep"}, "spec": {"x": ${deep(990)}}}`],
      ['POST', '/api/v1/namespaces/default/configmaps', `{"metadata": {"name": "deep", "annotations": {"a": ${deep(990)}}}}`],
      ['POST', '/api/v1/namespaces/default/configmaps', `{"metadata": {"name": "deep2"}, "x": ${deep(990)}}`],
      ['PATCH', '/api/v1/namespaces/default/configmaps/deep2', `{"x": ${deep(990)}}`],
    ];
    for (const [method, path, body] of nearLimit) {
      const r = await request(method, path, body, method === 'PATCH' ? { 'Content-Type': 'application/merge-patch+json' } : {});
      assert.ok(r.code < 500, `${method} ${path}: ${r.code} ${r.body.slice(0, 300)}`);
    }
    assert.equal(server.stats.internalErrors, 0);
  });
});

describe('list and watch parameters', () => {
  test('a watch with a malformed resourceVersion is a 400 before the stream starts', async () => {
    const r = await request('GET', '/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=abc');
    assert.equal(r.code, 400, r.body);
    assert.equal(r.json().kind, 'Status');
    assert.match(r.json().message as string, /resourceVersion: Invalid value: "abc"/);
  });

  test('malformed list parameters are 4xx naming the parameter', async () => {
    const cases: Array<[string, number, RegExp]> = [
      ['resourceVersion=abc', 400, /resourceVersion: Invalid value: "abc"/],
      ['resourceVersion=-1', 400, /resourceVersion: Invalid value/],
      ['resourceVersion=1e3', 400, /resourceVersion: Invalid value/],
      ['limit=-1', 400, /limit/],
      ['limit=abc', 400, /limit/],
      ['limit=100000000000000000000', 400, /limit/],
      ['limit=1.5', 400, /limit/],
      ['continue=abc', 400, /continue/],
      ['limit=1&continue=abc&resourceVersion=5', 400, /specifying resource version is not allowed when using continue/],
      ['labelSelector=a%20in%20(', 400, /./],
      ['fieldSelector=spec.nope%3D1', 400, /spec\.nope/],
      ['timeoutSeconds=abc', 400, /timeoutSeconds/],
      ['resourceVersionMatch=Bogus&resourceVersion=1', 422, /resourceVersionMatch: Unsupported value: "Bogus"/],
      ['resourceVersionMatch=Exact', 422, /resourceVersionMatch is forbidden unless resourceVersion is provided/],
      ['resourceVersionMatch=Exact&resourceVersion=0', 422, /resourceVersionMatch "exact" is forbidden for resourceVersion "0"/],
    ];
    for (const [query, code, message] of cases) {
      const r = await request('GET', `/api/v1/namespaces/default/configmaps?${query}`);
      assert.equal(r.code, code, `${query}: ${r.body}`);
      assert.match(r.json().message as string, message, query);
    }
    const w = await request('GET', '/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=abc');
    assert.equal(w.code, 400, w.body);
  });

  test('an exact list at a compacted revision is 410 with the list message; an expired continue token keeps the continue message', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await request('POST', '/api/v1/namespaces/default/configmaps', JSON.stringify({ metadata: { name: `page-${i}` } }));
      assert.equal(r.code, 201, r.body);
    }
    const first = (await request('GET', '/api/v1/namespaces/default/configmaps?limit=1')).json() as { metadata: { resourceVersion: string; continue: string } };
    const old = first.metadata.resourceVersion;
    await request('POST', '/api/v1/namespaces/default/configmaps', JSON.stringify({ metadata: { name: 'page-later' } }));
    await store.compact(await store.currentRevision());
    for (const q of [`resourceVersion=${old}&resourceVersionMatch=Exact`, `resourceVersion=${old}&limit=1`]) {
      const r = await request('GET', `/api/v1/namespaces/default/configmaps?${q}`);
      assert.equal(r.code, 410, `${q}: ${r.body}`);
      assert.equal(r.json().reason, 'Expired');
      assert.equal(r.json().message, 'The resourceVersion for the provided list is too old.');
    }
    const cont = await request('GET', `/api/v1/namespaces/default/configmaps?limit=1&continue=${encodeURIComponent(first.metadata.continue)}`);
    assert.equal(cont.code, 410, cont.body);
    assert.match(cont.json().message as string, /continue parameter is too old/);
    // Not older than a past revision is still fine (the latest state is not older).
    const notOlder = await request('GET', `/api/v1/namespaces/default/configmaps?resourceVersion=${old}`);
    assert.equal(notOlder.code, 200, notOlder.body);
  });
});

interface OpenWatch {
  lines: () => string[];
  open: () => boolean;
  res: () => IncomingMessage | undefined;
  close: () => void;
}

function openWatch(path: string): OpenWatch {
  let buf = '';
  const lines: string[] = [];
  let response: IncomingMessage | undefined;
  let isOpen = false;
  const req = https.request({ host: '127.0.0.1', port, path, ca: pki.caCert, agent: false, headers: { Authorization: `Bearer ${pki.token}` } }, (res) => {
    response = res;
    isOpen = true;
    res.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
    res.on('close', () => (isOpen = false));
  });
  req.on('error', () => undefined);
  req.end();
  return { lines: () => lines, open: () => isOpen, res: () => response, close: () => req.destroy() };
}

describe('slow watchers', () => {
  test('a watcher that stops reading is closed past its buffer bound; other watchers keep receiving', async () => {
    const path = '/api/v1/namespaces/default/configmaps?watch=true&labelSelector=slow%3Dtest';
    const slow = openWatch(path);
    const fast = openWatch(path);
    await waitFor(() => !!slow.res() && !!fast.res(), 'both watches open');
    // The slow client stops reading: its socket buffers fill, then the server's.
    slow.res()!.pause();
    (slow.res()!.socket as { pause?: () => void }).pause?.();
    const value = 'x'.repeat(200 * 1024);
    const n = 60; // 12 MB of events: more than the kernel's socket buffers plus the bound
    for (let i = 0; i < n; i++) {
      const r = await request('POST', '/api/v1/namespaces/default/configmaps', JSON.stringify({ metadata: { name: `slow-${i}`, labels: { slow: 'test' } }, data: { v: value } }));
      assert.equal(r.code, 201, r.body);
    }
    await waitFor(() => server.stats.watchSlowClosed === 1, 'the slow watch to be closed', 30_000);
    await waitFor(() => fast.lines().length === n, `the fast watcher to get all ${n} events`, 30_000);
    assert.ok(logs.some((l) => /closed a slow watch of configmaps/.test(l)), logs.join('\n'));
    // The closed watch ends: a client that resumes reading gets a tail and then the end.
    slow.res()!.resume();
    (slow.res()!.socket as { resume?: () => void }).resume?.();
    await waitFor(() => !slow.open(), 'the slow watch stream to end', 30_000);
    assert.ok(slow.lines().length < n, `the slow watcher got ${slow.lines().length} of ${n} events`);
    assert.equal(server.stats.watchSlowClosed, 1);
    fast.close();
  });
});

describe('process guards of API server processes', () => {
  const guarded = (body: string) => new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const mod = new URL('../cli/api-workers.js', import.meta.url).href;
    const script = `const m = await import(${JSON.stringify(mod)}); m.installProcessGuards('probe'); ${body}`;
    const child = execFile(process.execPath, ['--input-type=module', '-e', script], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
    child.stdin?.end();
  });

  test('an unhandled rejection is logged with its stack and the process keeps running', async () => {
    const r = await guarded(`Promise.reject(new Error('boom')); setTimeout(() => process.stdout.write('alive'), 20);`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'alive');
    assert.match(r.stderr, /probe: unhandled promise rejection \(a bug; still serving\): Error: boom\n\s+at /);
  });

  test('an uncaught exception is logged with its stack and exits nonzero', async () => {
    const r = await guarded(`setTimeout(() => { throw new Error('kaboom'); }, 0); setTimeout(() => process.stdout.write('alive'), 200);`);
    assert.equal(r.code, 70, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /probe: uncaught exception \(a bug; exiting\): Error: kaboom\n\s+at /);
  });
});

describe('clients that go away', () => {
  test('a client that disconnects in the middle of a large list or watch costs nothing but the response', async () => {
    const before = server.stats.internalErrors;
    for (const path of ['/api/v1/namespaces/default/configmaps', '/api/v1/namespaces/default/configmaps?watch=true']) {
      await new Promise<void>((resolve, reject) => {
        const req = https.request({ host: '127.0.0.1', port, path, ca: pki.caCert, agent: false, headers: { Authorization: `Bearer ${pki.token}` } }, (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', (e) => (e.message.includes('socket hang up') ? undefined : reject(e)));
        req.end();
      });
    }
    await assertHealthy();
    const list = await request('GET', '/api/v1/namespaces/default/configmaps?limit=1');
    assert.equal(list.code, 200);
    assert.equal(server.stats.internalErrors, before);
    assert.ok(!logs.some((l) => /failed to answer/.test(l)), logs.join('\n'));
  });
});
