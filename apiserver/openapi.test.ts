import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import YAML from 'yaml';
import { Registry, defaultCrdDir } from '../api/registry.js';
import { gvPath, openapiV3Document, openapiV3Hash, openapiV3Index, schemaName } from './openapi.js';

type Doc = { paths: Record<string, any>; components: { schemas: Record<string, any> } };

let reg: Registry;
before(async () => {
  reg = await Registry.load();
});

const doc = (p: string) => openapiV3Document(reg, p) as Doc;

test('index lists every group-version with a content hash', () => {
  const idx = openapiV3Index(reg);
  assert.deepEqual(Object.keys(idx.paths).sort(), ['api/v1', 'apis/coordination.k8s.io/v1', 'apis/events.k8s.io/v1', 'apis/kova.dev/v1alpha1', 'apis/metering.kova.dev/v1alpha1', 'apis/rbac.authorization.k8s.io/v1']);
  for (const [p, { serverRelativeURL }] of Object.entries(idx.paths)) {
    assert.match(serverRelativeURL, new RegExp(`^/openapi/v3/${p.replace(/\./g, '\\.')}\\?hash=[0-9A-F]{128}$`));
    assert.equal(serverRelativeURL.split('hash=')[1], openapiV3Hash(reg, p));
  }
  assert.equal(openapiV3Document(reg, 'apis/nope.dev/v1'), undefined);
  assert.equal(openapiV3Document(reg, '/apis/kova.dev/v1alpha1?hash=abc'), openapiV3Document(reg, 'apis/kova.dev/v1alpha1'));
});

test('kova.dev: Instance PATCH has GVK, fieldValidation and no strategic merge patch', () => {
  const d = doc('apis/kova.dev/v1alpha1');
  const item = d.paths['/apis/kova.dev/v1alpha1/namespaces/{namespace}/instances/{name}'];
  assert.ok(item, 'item path');
  const patch = item.patch;
  assert.equal(patch['x-kubernetes-action'], 'patch');
  assert.deepEqual(patch['x-kubernetes-group-version-kind'], { group: 'kova.dev', version: 'v1alpha1', kind: 'Instance' });
  const params = (patch.parameters as Array<{ name: string; in: string }>).map((p) => p.name);
  for (const p of ['dryRun', 'fieldManager', 'fieldValidation', 'force']) assert.ok(params.includes(p), p);
  assert.deepEqual(Object.keys(patch.requestBody.content).sort(), ['application/apply-patch+yaml', 'application/json-patch+json', 'application/merge-patch+json']);
  assert.equal(patch.responses['200'].content['application/json'].schema.$ref, '#/components/schemas/dev.kova.v1alpha1.Instance');
  for (const verb of ['get', 'put', 'delete']) assert.equal(item[verb]['x-kubernetes-group-version-kind'].kind, 'Instance');
  assert.equal(item.put['x-kubernetes-action'], 'put');
  assert.ok((item.put.parameters as Array<{ name: string }>).some((p) => p.name === 'fieldValidation'));
});

test('paths: namespaced collection, item, status and all-namespaces list; cluster-scoped kinds have no namespace', () => {
  const d = doc('apis/kova.dev/v1alpha1');
  const base = '/apis/kova.dev/v1alpha1';
  for (const p of [`${base}/namespaces/{namespace}/instances`, `${base}/namespaces/{namespace}/instances/{name}`, `${base}/namespaces/{namespace}/instances/{name}/status`, `${base}/instances`]) {
    assert.ok(d.paths[p], p);
  }
  assert.equal(d.paths[`${base}/instances`].get['x-kubernetes-action'], 'list');
  assert.equal(d.paths[`${base}/namespaces/{namespace}/instances`].post['x-kubernetes-action'], 'post');
  assert.equal(d.paths[`${base}/namespaces/{namespace}/instances`].delete['x-kubernetes-action'], 'deletecollection');
  assert.ok(d.paths[`${base}/namespaces/{namespace}/instances/{name}/status`].patch);
  assert.ok(d.paths[`${base}/flavors/{name}`]);
  assert.ok(d.paths[`${base}/hosts/{name}/status`]);
  assert.ok(!Object.keys(d.paths).some((p) => p.includes('namespaces/{namespace}/flavors')));
  assert.equal(d.paths[`${base}/namespaces/{namespace}/instances/{name}`].get.operationId, 'readKovaDevV1alpha1NamespacedInstance');
  assert.equal(d.paths[`${base}/instances`].get.operationId, 'listKovaDevV1alpha1InstanceForAllNamespaces');
});

test('schemas carry CRD descriptions, GVK arrays and ObjectMeta', () => {
  const d = doc('apis/kova.dev/v1alpha1');
  const inst = d.components.schemas['dev.kova.v1alpha1.Instance'];
  assert.deepEqual(inst['x-kubernetes-group-version-kind'], [{ group: 'kova.dev', kind: 'Instance', version: 'v1alpha1' }]);
  assert.equal(inst.type, 'object');
  assert.match(inst.properties.spec.properties.runStrategy.description, /RerunOnFailure/);
  assert.deepEqual(inst.properties.spec.properties.runStrategy.enum, ['Always', 'Halted', 'Manual', 'RerunOnFailure']);
  assert.deepEqual(inst.properties.metadata.allOf, [{ $ref: '#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta' }]);
  assert.equal(inst.properties.apiVersion.type, 'string');
  assert.equal(inst.properties.kind.type, 'string');
  const meta = d.components.schemas['io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta'];
  for (const f of ['name', 'namespace', 'labels', 'annotations', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'finalizers', 'ownerReferences', 'managedFields']) {
    assert.ok(meta.properties[f]?.description, f);
  }
  const list = d.components.schemas['dev.kova.v1alpha1.InstanceList'];
  assert.deepEqual(list['x-kubernetes-group-version-kind'], [{ group: 'kova.dev', kind: 'InstanceList', version: 'v1alpha1' }]);
  // Every $ref resolves.
  const refs = JSON.stringify(d).match(/"\$ref":"#\/components\/schemas\/[^"]+"/g) ?? [];
  for (const r of new Set(refs)) assert.ok(d.components.schemas[r.slice('"$ref":"#/components/schemas/'.length, -1)], r);
  // The registry's own schema is not modified by publishing.
  assert.equal((reg.byKind('kova.dev', 'Instance')!.schema as any)['x-kubernetes-group-version-kind'], undefined);
});

test('built-in kinds: Lease and Namespace list strategic merge patch; schema names follow Kubernetes', () => {
  const lease = doc('apis/coordination.k8s.io/v1');
  const patch = lease.paths['/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}'].patch;
  assert.ok(patch.requestBody.content['application/strategic-merge-patch+json']);
  assert.ok((patch.parameters as Array<{ name: string }>).some((p) => p.name === 'fieldValidation'));
  assert.deepEqual(lease.components.schemas['io.k8s.api.coordination.v1.Lease']['x-kubernetes-group-version-kind'], [{ group: 'coordination.k8s.io', kind: 'Lease', version: 'v1' }]);

  const core = doc('api/v1');
  const nsPatch = core.paths['/api/v1/namespaces/{name}'].patch;
  assert.ok(nsPatch.requestBody.content['application/strategic-merge-patch+json']);
  assert.deepEqual(nsPatch['x-kubernetes-group-version-kind'], { group: '', version: 'v1', kind: 'Namespace' });
  assert.ok(core.paths['/api/v1/namespaces/{name}/status']);
  assert.ok(core.paths['/api/v1/namespaces/{namespace}/events']);
  assert.ok(core.paths['/api/v1/events']);
  assert.ok(core.components.schemas['io.k8s.api.core.v1.Namespace']);
  assert.ok(core.components.schemas['io.k8s.api.core.v1.Event']);
  assert.ok(doc('apis/events.k8s.io/v1').components.schemas['io.k8s.api.events.v1.Event']);

  assert.equal(schemaName({ group: 'kova.dev', version: 'v1alpha1' }, 'Flavor'), 'dev.kova.v1alpha1.Flavor');
  assert.equal(gvPath({ group: '', version: 'v1' }), 'api/v1');
});

test('hashes change when a schema changes', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kova-openapi-'));
  try {
    const text = await readFile(join(defaultCrdDir(), 'flavor.yaml'), 'utf8');
    await writeFile(join(dir, 'flavor.yaml'), text);
    const a = await Registry.load(dir);
    const crd = YAML.parse(text);
    crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.vcpus.description = 'Changed.';
    await writeFile(join(dir, 'flavor.yaml'), YAML.stringify(crd));
    const b = await Registry.load(dir);
    const c = await Registry.load(dir);
    const h = (r: Registry) => openapiV3Index(r).paths['apis/kova.dev/v1alpha1'].serverRelativeURL;
    assert.notEqual(h(a), h(b));
    assert.equal(h(b), h(c));
    assert.equal(openapiV3Index(a).paths['api/v1'].serverRelativeURL, openapiV3Index(b).paths['api/v1'].serverRelativeURL);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
