// `kubectl create quota` sends its ResourceQuota as protobuf: the body the real kubectl sends,
// captured by a throwaway HTTP server, decodes to the JSON kubectl would have sent; and the
// pure quota pieces (usage, names, validation, the table cells).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { decodeK8sProtobuf, isK8sProtobufContentType } from '../protobuf.js';
import { countName, formatUsage, isTrackedName, objectUsage, resourceQuotaCauses } from '../../api/quota-usage.js';
import { RESOURCE_QUOTA } from '../../api/builtin-kinds-quota.js';
import { toTable } from '../table.js';
import type { KObject } from '../../api/types.js';

const run = promisify(execFile);
const KUBECTL = '/usr/bin/kubectl';

describe('kubectl create quota (protobuf body)', { skip: !existsSync(KUBECTL) && `${KUBECTL} not installed` }, () => {
  let server: http.Server;
  let dir = '';
  let port = 0;
  const posts: Array<{ contentType?: string; body: Buffer }> = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kova-pbq-'));
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const json = (status: number, obj: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(obj));
        };
        const path = (req.url ?? '').split('?')[0];
        if (req.method === 'GET') {
          if (path === '/api') return json(200, { kind: 'APIVersions', versions: ['v1'] });
          if (path === '/apis') return json(200, { kind: 'APIGroupList', apiVersion: 'v1', groups: [] });
          if (path === '/api/v1') {
            return json(200, { kind: 'APIResourceList', groupVersion: 'v1', resources: [{ name: 'resourcequotas', singularName: '', namespaced: true, kind: 'ResourceQuota', verbs: ['create', 'get'], shortNames: ['quota'] }] });
          }
          return json(404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 });
        }
        const body = Buffer.concat(chunks);
        posts.push({ contentType: req.headers['content-type'], body });
        try {
          json(201, decodeK8sProtobuf(body).object);
        } catch (e) {
          json(415, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'UnsupportedMediaType', message: String(e), code: 415 });
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  after(async () => {
    await new Promise<void>((resolve) => server?.close(() => resolve()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('decodes spec.hard quantities and scopes', async () => {
    await run(KUBECTL, [
      '--server', `http://127.0.0.1:${port}`, '--cache-dir', join(dir, 'cache'), '-n', 'p',
      'create', 'quota', 'q', '--hard=count/instances.kova.dev=10,requests.vcpus=20,requests.memory=50Gi', '--scopes=BestEffort',
    ], { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir, KUBECONFIG: join(dir, 'none') }, timeout: 30_000 });
    assert.equal(posts.length, 1);
    assert.ok(isK8sProtobufContentType(posts[0]!.contentType), `kubectl sent ${posts[0]!.contentType}`);
    const { object } = decodeK8sProtobuf(posts[0]!.body);
    assert.deepEqual(object, {
      apiVersion: 'v1', kind: 'ResourceQuota',
      metadata: { name: 'q', namespace: 'p' },
      spec: { hard: { 'count/instances.kova.dev': '10', 'requests.vcpus': '20', 'requests.memory': '50Gi' }, scopes: ['BestEffort'] },
      status: {},
    });
  });
});

describe('quota usage and names', () => {
  const inst = { group: 'kova.dev', plural: 'instances' };
  const vol = { group: 'kova.dev', plural: 'volumes' };
  const o = (spec: unknown): KObject => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'X', metadata: { name: 'x' }, spec });

  it('charges counts, flavor or explicit sizes, and volume sizes', () => {
    assert.equal(countName(inst), 'count/instances.kova.dev');
    assert.equal(countName({ group: '', plural: 'configmaps' }), 'count/configmaps');
    assert.deepEqual(objectUsage(inst, o({ flavor: 'f' }), { vcpus: 2, memory: '2Gi' }), { 'count/instances.kova.dev': 1, 'requests.vcpus': 2, 'requests.memory': 2 * 1024 ** 3 });
    assert.deepEqual(objectUsage(inst, o({ resources: { vcpus: 1, memory: '512Mi', disk: '1Gi' } })), { 'count/instances.kova.dev': 1, 'requests.vcpus': 1, 'requests.memory': 512 * 1024 ** 2 });
    assert.deepEqual(objectUsage(inst, o({ flavor: 'missing' })), { 'count/instances.kova.dev': 1 });
    assert.deepEqual(objectUsage(vol, o({ size: '10Gi' })), { 'count/volumes.kova.dev': 1, 'requests.storage': 10 * 1024 ** 3 });
  });

  it('formats bytes with binary suffixes and counts plainly', () => {
    assert.equal(formatUsage('requests.memory', 2560 * 1024 ** 2), '2560Mi');
    assert.equal(formatUsage('requests.storage', 1000 * 1024 ** 3), '1000Gi');
    assert.equal(formatUsage('count/instances.kova.dev', 10), '10');
    assert.equal(formatUsage('requests.vcpus', 0), '0');
  });

  it('accepts the names kova tracks and refuses others and scopes, naming the field', () => {
    for (const n of ['count/instances.kova.dev', 'count/configmaps', 'requests.vcpus', 'requests.memory', 'requests.storage']) assert.ok(isTrackedName(n), n);
    for (const n of ['requests.cpu', 'pods', 'count/', 'count/Instances', 'limits.memory']) assert.ok(!isTrackedName(n), n);
    const causes = resourceQuotaCauses({ apiVersion: 'v1', kind: 'ResourceQuota', metadata: {}, spec: { hard: { pods: '1' }, scopeSelector: { matchExpressions: [{ scopeName: 'BestEffort', operator: 'Exists' }] } } });
    assert.deepEqual(causes.map((c) => c.field), ['spec.hard[pods]', 'spec.scopeSelector']);
  });

  it("renders kubectl's REQUEST and LIMIT columns as used/hard", () => {
    const q: KObject = { apiVersion: 'v1', kind: 'ResourceQuota', metadata: { name: 'q', creationTimestamp: '2026-01-01T00:00:00Z' }, spec: { hard: { 'requests.vcpus': '20', 'count/instances.kova.dev': '10' } }, status: { hard: { 'requests.vcpus': '20', 'count/instances.kova.dev': '10' }, used: { 'requests.vcpus': '3', 'count/instances.kova.dev': '2' } } };
    const t = toTable(RESOURCE_QUOTA, [q], { includeObject: 'None', now: new Date('2026-01-01T00:01:00Z') });
    assert.deepEqual(t.columnDefinitions.map((c) => c.name), ['Name', 'Age', 'Request', 'Limit']);
    assert.deepEqual(t.rows[0]!.cells, ['q', '60s', 'count/instances.kova.dev: 2/10, requests.vcpus: 3/20', '']);
  });
});
