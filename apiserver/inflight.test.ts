// Max requests in flight against a real API server on a real etcd: slots are held by requests
// that really are in flight (a body still arriving; a read waiting on a stopped etcd), the
// next one of the same class gets 429 with Retry-After and a Status, watches and health checks
// are exempt, and every slot comes back when its response ends or its client goes away.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import { defaultCrdDir, Registry } from '../api/registry.js';
import { Validator } from '../api/validation.js';
import { Store } from '../store/store.js';
import { startTestEtcd, stopProcess, waitFor } from '../testing/etcd.js';
import type { TestEtcd } from '../testing/etcd.js';
import { InflightLimiter } from './inflight.js';
import { ResourceStore } from './resource-store.js';
import { ApiServer } from './server.js';

interface Reply {
  code: number;
  headers: IncomingMessage['headers'];
  body: string;
}

let etcd: TestEtcd;
let store: Store;
let registry: Registry;
let resources: ResourceStore;
const servers: ApiServer[] = [];

before(async () => {
  etcd = await startTestEtcd();
  store = Store.connect(etcd.endpoints);
  registry = await Registry.load(defaultCrdDir());
  resources = new ResourceStore(store, registry, new Validator(registry));
  await resources.namespaces.start();
  await resources.create(registry.lookup('', 'v1', 'namespaces')!, undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } });
  await waitFor(async () => (await resources.namespaces.state('default')) !== 'missing', 'namespace cache');
});

after(async () => {
  for (const s of servers) await s.close();
  await resources?.namespaces.stop();
  await store?.close();
  await etcd?.cleanup();
});

/** A plain-HTTP server on the shared store with these limits; its port. */
async function serve(maxRequestsInflight: number, maxMutatingRequestsInflight: number): Promise<{ server: ApiServer; port: number }> {
  const server = new ApiServer({ registry, resources, inflight: { maxRequestsInflight, maxMutatingRequestsInflight } });
  servers.push(server);
  const { port } = await server.listen('127.0.0.1', 0);
  return { server, port };
}

function request(port: number, method: string, path: string, body?: string, agent: http.Agent | false = false): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent, headers: { 'Content-Type': 'application/json', 'Content-Length': String(body === undefined ? 0 : Buffer.byteLength(body)) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ code: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A POST whose body stops halfway: the request is in flight until finish() or abort(). */
function slowCreate(port: number, name: string) {
  const body = JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name } });
  const half = Math.floor(body.length / 2);
  const socket = net.connect(port, '127.0.0.1');
  socket.write(`POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body.slice(0, half)}`);
  let answer = '';
  socket.on('data', (c: Buffer) => (answer += c.toString()));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((r) => socket.on('close', () => r()));
  return {
    finish: async () => {
      // write, not end: a half-closed request is one its client gave up on (node aborts it).
      socket.write(body.slice(half));
      await closed;
      return answer;
    },
    abort: () => socket.destroy(),
  };
}

function assertTooMany(r: Reply): void {
  assert.equal(r.code, 429, r.body);
  assert.equal(r.headers['retry-after'], '1');
  const st = JSON.parse(r.body) as Record<string, unknown>;
  assert.equal(st.kind, 'Status');
  assert.equal(st.status, 'Failure');
  assert.equal(st.reason, 'TooManyRequests');
  assert.equal(st.message, 'Too many requests, please try again later.');
  assert.deepEqual(st.details, { retryAfterSeconds: 1 });
  assert.equal(st.code, 429);
}

const cm = (name: string) => JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name } });

describe('max requests in flight', () => {
  test('mutating: a third write gets 429 while two are in flight; reads are a separate class; slots come back on finish and on abort', async () => {
    const { server, port } = await serve(2, 2);
    const a = slowCreate(port, 'slow-a');
    const b = slowCreate(port, 'slow-b');
    await waitFor(() => server.inflight.mutating === 2, 'two writes in flight');

    assertTooMany(await request(port, 'POST', '/api/v1/namespaces/default/configmaps', cm('third')));
    assertTooMany(await request(port, 'DELETE', '/api/v1/namespaces/default/configmaps/slow-a'));
    assert.equal(server.inflight.rejected.mutating, 2);
    assert.equal((await request(port, 'GET', '/api/v1/namespaces/default/configmaps')).code, 200, 'reads have their own limit');
    assert.equal((await request(port, 'GET', '/api/v1/namespaces/default/configmaps/third')).code, 404, 'the refused create did nothing');

    // One finishes normally, the other's client goes away mid-body: both slots come back.
    assert.match(await a.finish(), /^HTTP\/1\.1 201 /);
    b.abort();
    await waitFor(() => server.inflight.mutating === 0, 'slots released');
    assert.equal((await request(port, 'POST', '/api/v1/namespaces/default/configmaps', cm('third'))).code, 201);
    assert.equal((await request(port, 'GET', '/api/v1/namespaces/default/configmaps/slow-b')).code, 404, 'the aborted create wrote nothing');
    assert.equal(server.inflight.mutating, 0);
  });

  test('read-only: with etcd stopped two reads hold the slots, the third gets 429; watches and health checks are exempt', async () => {
    const { server, port } = await serve(2, 2);
    // Three watches with a limit of two: none takes a slot.
    const watches: http.ClientRequest[] = [];
    for (let i = 0; i < 3; i++) {
      const code = await new Promise<number>((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port, path: '/api/v1/namespaces/default/configmaps?watch=true', agent: false }, (res) => resolve(res.statusCode!));
        req.on('error', reject);
        watches.push(req);
      });
      assert.equal(code, 200);
    }
    assert.equal(server.inflight.readOnly, 0);

    let reads: Promise<Reply>[] = [];
    try {
      await stopProcess(etcd.etcd.pid);
      reads = [request(port, 'GET', '/api/v1/namespaces/default/configmaps'), request(port, 'GET', '/api/v1/namespaces/default')];
      await waitFor(() => server.inflight.readOnly === 2, 'two reads waiting on etcd');
      assertTooMany(await request(port, 'GET', '/api/v1/namespaces/default/configmaps'));
      assertTooMany(await request(port, 'GET', '/apis'));
      assert.equal(server.inflight.rejected.readOnly, 2);
      for (const p of ['/healthz', '/livez', '/version']) assert.equal((await request(port, 'GET', p)).code, 200, p);
    } finally {
      process.kill(etcd.etcd.pid, 'SIGCONT');
    }
    assert.deepEqual((await Promise.all(reads)).map((r) => r.code), [200, 200]);
    await waitFor(() => server.inflight.readOnly === 0, 'read slots released');
    assert.equal((await request(port, 'GET', '/api/v1/namespaces/default/configmaps')).code, 200);
    for (const w of watches) w.destroy();
  });

  test('a slot is released when its response ends on a kept-alive connection', async () => {
    const { server, port } = await serve(1, 1);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      // With one slot, each of these fails unless the previous response gave its slot back.
      for (let i = 0; i < 20; i++) {
        assert.equal((await request(port, 'POST', '/api/v1/namespaces/default/configmaps', cm(`ka-${i}`), agent)).code, 201);
        assert.equal((await request(port, 'GET', `/api/v1/namespaces/default/configmaps/ka-${i}`, undefined, agent)).code, 200);
      }
      assert.deepEqual(server.inflight.rejected, { readOnly: 0, mutating: 0 });
    } finally {
      agent.destroy();
    }
  });

  test('0 means no limit; a negative or fractional limit is refused at construction', async () => {
    const l = new InflightLimiter({ maxRequestsInflight: 0, maxMutatingRequestsInflight: 0 });
    assert.equal(l.maxReadOnly, 0);
    const d = new InflightLimiter();
    assert.deepEqual([d.maxReadOnly, d.maxMutating], [400, 600]);
    assert.throws(() => new InflightLimiter({ maxRequestsInflight: -1 }), /maxRequestsInflight must be a non-negative integer/);
    assert.throws(() => new InflightLimiter({ maxMutatingRequestsInflight: 1.5 }), /maxMutatingRequestsInflight/);
    const { server, port } = await serve(0, 0);
    const held = [slowCreate(port, 'nl-a'), slowCreate(port, 'nl-b'), slowCreate(port, 'nl-c')];
    assert.equal((await request(port, 'POST', '/api/v1/namespaces/default/configmaps', cm('nl-d'))).code, 201);
    for (const h of held) h.abort();
    assert.deepEqual(server.inflight.rejected, { readOnly: 0, mutating: 0 });
  });
});
