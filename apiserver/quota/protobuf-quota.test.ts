// `kubectl create quota` sends its ResourceQuota as protobuf: the body the real kubectl sends,
// captured by a throwaway HTTP server, decodes to the JSON kubectl would have sent; and the
// pure quota pieces (usage, names, validation, the table cells).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { decodeK8sProtobuf } from '../protobuf.js';
import { KUBECTL, startKubectlCapture } from '../../testing/kubectl-capture.js';
import type { KubectlCapture } from '../../testing/kubectl-capture.js';
import { countName, formatUsage, isTrackedName, objectUsage, resourceQuotaCauses } from '../../api/quota-usage.js';
import { RESOURCE_QUOTA } from '../../api/builtin-kinds-quota.js';
import { toTable } from '../table.js';
import type { KObject } from '../../api/types.js';

describe('kubectl create quota (protobuf body)', { skip: !existsSync(KUBECTL) && `${KUBECTL} not installed` }, () => {
  let capture: KubectlCapture;

  before(async () => {
    capture = await startKubectlCapture([{ name: 'resourcequotas', kind: 'ResourceQuota', namespaced: true, shortNames: ['quota'] }]);
  });

  after(async () => {
    await capture?.stop();
  });

  it('decodes spec.hard quantities and scopes', async () => {
    const { post } = await capture.kubectl([
      '-n', 'p', 'create', 'quota', 'q', '--hard=count/instances.kova.dev=10,requests.vcpus=20,requests.memory=50Gi', '--scopes=BestEffort',
    ]);
    const { object } = decodeK8sProtobuf(post.body);
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
