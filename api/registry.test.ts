import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import YAML from 'yaml';
import { crdErrors, schemaAt, structuralErrors } from './crd-check.js';
import { NONNEGATIVE_QUANTITY_PATTERN } from './quantity.js';
import { Registry, defaultCrdDir, parseCrdFile } from './registry.js';
import type { JSONSchema, KObject } from './types.js';
import { DNS1123_LABEL_PATTERN, DNS1123_SUBDOMAIN_PATTERN } from './validation.js';

const KOVA_KINDS: Record<string, { plural: string; short: string[]; namespaced: boolean }> = {
  Flavor: { plural: 'flavors', short: ['fl'], namespaced: false },
  Image: { plural: 'images', short: ['img'], namespaced: true },
  Network: { plural: 'networks', short: ['net'], namespaced: true },
  Port: { plural: 'ports', short: ['port'], namespaced: true },
  KeyPair: { plural: 'keypairs', short: ['kp'], namespaced: true },
  Volume: { plural: 'volumes', short: ['vol'], namespaced: true },
  VolumeType: { plural: 'volumetypes', short: ['vt'], namespaced: false },
  VolumeSnapshot: { plural: 'volumesnapshots', short: ['vs'], namespaced: true },
  Migration: { plural: 'migrations', short: ['mig'], namespaced: true },
  Instance: { plural: 'instances', short: ['inst', 'vm'], namespaced: true },
  Host: { plural: 'hosts', short: ['hs'], namespaced: false },
  SecurityGroup: { plural: 'securitygroups', short: ['sg'], namespaced: true },
  FloatingIP: { plural: 'floatingips', short: ['fip'], namespaced: true },
  Router: { plural: 'routers', short: ['rt'], namespaced: true },
  AddressClaim: { plural: 'addressclaims', short: ['addr'], namespaced: true },
};

async function crdFiles(): Promise<Array<{ file: string; crd: KObject }>> {
  const dir = defaultCrdDir();
  const out = [];
  for (const f of (await readdir(dir)).filter((x) => x.endsWith('.yaml')).sort()) {
    out.push({ file: f, crd: YAML.parse(await readFile(join(dir, f), 'utf8')) as KObject });
  }
  return out;
}

type Visit = (node: JSONSchema, path: string) => void;

/** Every structural node (not inside allOf/anyOf/oneOf/not). */
function eachNode(s: JSONSchema, path: string, visit: Visit): void {
  visit(s, path);
  for (const [k, v] of Object.entries((s.properties as Record<string, JSONSchema> | undefined) ?? {})) eachNode(v, `${path}.${k}`, visit);
  if (s.items && typeof s.items === 'object') eachNode(s.items as JSONSchema, `${path}[]`, visit);
  if (s.additionalProperties && typeof s.additionalProperties === 'object') eachNode(s.additionalProperties as JSONSchema, `${path}{}`, visit);
}

test('defaultCrdDir finds crds/ next to package.json', () => {
  const dir = defaultCrdDir();
  assert.ok(dir.endsWith('crds'));
  assert.ok(existsSync(join(dir, '..', 'package.json')));
});

test('every CRD file passes the apiextensions checks and is structural', async () => {
  const files = await crdFiles();
  assert.equal(files.length, 16);
  for (const { file, crd } of files) assert.deepEqual(crdErrors(crd), [], file);
});

test('structural self-check: types everywhere, no properties+additionalProperties, junctors value-only', async () => {
  for (const { file, crd } of await crdFiles()) {
    const v = (crd.spec as { versions: Array<{ schema: { openAPIV3Schema: JSONSchema } }> }).versions[0];
    const root = v.schema.openAPIV3Schema;
    assert.equal(root.type, 'object', file);
    eachNode(root, file, (node, path) => {
      const intOrString = node['x-kubernetes-int-or-string'] === true;
      if (!intOrString && node['x-kubernetes-preserve-unknown-fields'] !== true) assert.ok(node.type, `${path}: type`);
      if (node.properties) assert.equal(node.type, 'object', `${path}: properties need type object`);
      if (node.items) assert.equal(node.type, 'array', `${path}: items need type array`);
      if (node.type === 'array') assert.ok(node.items, `${path}: arrays need items`);
      assert.ok(!(node.properties && node.additionalProperties !== undefined), `${path}: properties and additionalProperties`);
      for (const k of Object.keys(node)) {
        assert.ok(!k.startsWith('x-') || k.startsWith('x-kubernetes-'), `${path}: only x-kubernetes-* extensions (${k})`);
      }
      for (const j of ['allOf', 'anyOf', 'oneOf'] as const) {
        for (const branch of (node[j] as JSONSchema[] | undefined) ?? []) {
          if (intOrString && j === 'anyOf') continue;
          for (const forbidden of ['type', 'description', 'default', 'nullable', 'additionalProperties']) {
            assert.ok(!(forbidden in branch), `${path}.${j}: ${forbidden} in a junctor`);
          }
          for (const r of (branch.required as string[] | undefined) ?? []) {
            assert.ok((node.properties as Record<string, unknown>)[r], `${path}.${j}: ${r} must be a declared property`);
          }
        }
      }
      if (intOrString) {
        assert.equal(node.type, undefined, path);
        assert.deepEqual(node.anyOf, [{ type: 'integer' }, { type: 'string' }], path);
        assert.equal(node.pattern, NONNEGATIVE_QUANTITY_PATTERN, `${path}: the quantity pattern`);
      }
      if (node['x-kubernetes-list-type'] === 'map') {
        const items = node.items as JSONSchema;
        for (const k of node['x-kubernetes-list-map-keys'] as string[]) assert.ok((items.required as string[]).includes(k), `${path}: map key ${k} required`);
      }
      if (typeof node.pattern === 'string') new RegExp(node.pattern); // compiles
      if (node.description !== undefined) assert.ok(String(node.description).length > 3, `${path}: description`);
    });
    // Every spec and status field has a description (kubectl explain prints them).
    for (const top of ['spec', 'status']) {
      const s = (root.properties as Record<string, JSONSchema>)[top];
      if (!s) continue;
      eachNode(s, `${file}:${top}`, (node, path) => {
        if (!/\[\]$|\{\}$/.test(path)) assert.ok(node.description, `${path}: missing description`);
      });
    }
  }
});

test('CRD names, scopes, short names, categories and conventions', async () => {
  const files = await crdFiles();
  const seen = new Set<string>();
  for (const { file, crd } of files) {
    const spec = crd.spec as Record<string, any>;
    const kind = spec.names.kind as string;
    if (spec.group === 'metering.kova.dev') {
      // The usage ledger: the metering controller's own records, outside `kubectl get kova`.
      assert.equal(kind, 'UsageRecord', file);
      assert.equal(crd.metadata.name, 'usagerecords.metering.kova.dev');
      assert.equal(spec.scope, 'Namespaced');
      assert.equal(spec.names.categories, undefined, `${file}: not in category kova`);
      continue;
    }
    const want = KOVA_KINDS[kind];
    assert.ok(want, `${file}: unexpected kind ${kind}`);
    seen.add(kind);
    assert.equal(spec.group, 'kova.dev');
    assert.equal(crd.metadata.name, `${want.plural}.kova.dev`);
    assert.equal(spec.names.plural, want.plural);
    assert.deepEqual(spec.names.shortNames, want.short);
    assert.deepEqual(spec.names.categories, ['kova']);
    assert.equal(spec.scope, want.namespaced ? 'Namespaced' : 'Cluster');
    assert.equal(spec.versions.length, 1);
    const v = spec.versions[0];
    assert.equal(v.name, 'v1alpha1');
    assert.equal(v.served, true);
    assert.equal(v.storage, true);
    assert.deepEqual(v.subresources, { status: {} });
    const cols = v.additionalPrinterColumns as Array<{ name: string; jsonPath: string; priority?: number }>;
    assert.ok(cols.some((c) => c.name === 'Age' && c.jsonPath === '.metadata.creationTimestamp'), `${file}: Age column`);
    const status = v.schema.openAPIV3Schema.properties.status;
    assert.equal(status.properties.observedGeneration.type, 'integer', `${file}: observedGeneration`);
    assert.equal(status.properties.conditions['x-kubernetes-list-type'], 'map', `${file}: conditions list-map`);
    assert.deepEqual(status.properties.conditions['x-kubernetes-list-map-keys'], ['type']);
    const name = v.schema.openAPIV3Schema.properties.metadata.properties.name;
    assert.equal(name.pattern, kind === 'Flavor' ? DNS1123_SUBDOMAIN_PATTERN : DNS1123_LABEL_PATTERN, `${file}: name pattern`);
    // Printer columns resolve to fields of the schema.
    for (const c of cols) {
      if (c.jsonPath.startsWith('.metadata.')) continue;
      const simple = c.jsonPath.replace(/\[.*$/, '');
      assert.ok(schemaAt(v.schema.openAPIV3Schema, simple), `${file}: column ${c.name} → ${c.jsonPath}`);
    }
  }
  assert.deepEqual([...seen].sort(), Object.keys(KOVA_KINDS).sort());
});

test('API doc printer columns are present (priority 0) in order', async () => {
  const reg = await Registry.load();
  const names = (kind: string) => reg.byKind('kova.dev', kind)!.printerColumns.filter((c) => !c.priority).map((c) => c.name);
  assert.deepEqual(names('Flavor'), ['VCPUs', 'Memory', 'Disk', 'Age']);
  assert.deepEqual(names('Image'), ['Phase', 'Size', 'Visibility', 'Age']);
  assert.deepEqual(names('Network'), ['Type', 'CIDR', 'Phase', 'Age']);
  assert.deepEqual(names('Instance'), ['Phase', 'Host', 'IP', 'Flavor', 'Age']);
});

test('Registry.load: built-ins plus CRDs, lookups by resource and kind', async () => {
  const reg = await Registry.load(defaultCrdDir());
  assert.deepEqual(reg.groupVersions(), ['v1', 'coordination.k8s.io/v1', 'events.k8s.io/v1', 'kova.dev/v1alpha1', 'metering.kova.dev/v1alpha1', 'rbac.authorization.k8s.io/v1']);
  assert.deepEqual(reg.byGroupVersion('rbac.authorization.k8s.io/v1').map((r) => `${r.kind}:${r.namespaced}`).sort(), [
    'ClusterRole:false', 'ClusterRoleBinding:false', 'Role:true', 'RoleBinding:true',
  ]);
  assert.deepEqual(reg.byKind('rbac.authorization.k8s.io', 'RoleBinding')!.printerColumns.map((c) => `${c.name}:${c.priority ?? 0}`), [
    'Role:0', 'Age:0', 'Users:1', 'Groups:1', 'ServiceAccounts:1',
  ]);
  assert.deepEqual(reg.byKind('rbac.authorization.k8s.io', 'ClusterRole')!.printerColumns.map((c) => c.name), ['Created At']);
  assert.deepEqual(reg.byGroupVersion('v1').map((r) => r.plural).sort(), ['configmaps', 'events', 'namespaces', 'resourcequotas', 'secrets']);
  assert.equal(reg.byGroupVersion('kova.dev/v1alpha1').length, 15);
  assert.equal(reg.crds().length, 16);

  const inst = reg.lookup('kova.dev', 'v1alpha1', 'instances')!;
  assert.equal(inst.kind, 'Instance');
  assert.equal(inst.listKind, 'InstanceList');
  assert.equal(inst.singular, 'instance');
  assert.equal(inst.namespaced, true);
  assert.equal(inst.custom, true);
  assert.equal(inst.statusSubresource, true);
  assert.deepEqual(inst.shortNames, ['inst', 'vm']);
  assert.deepEqual(inst.categories, ['kova']);
  assert.deepEqual(inst.selectableFields, ['status.hostName', 'status.phase']);
  assert.ok(inst.schema);
  assert.equal(reg.byKind('kova.dev', 'Instance'), inst);
  assert.equal(reg.lookup('kova.dev', 'v1alpha1', 'nope'), undefined);
  assert.equal(reg.lookup('kova.dev', 'v1', 'instances'), undefined);

  const flavor = reg.byKind('kova.dev', 'Flavor')!;
  assert.equal(flavor.namespaced, false);
  const host = reg.lookup('kova.dev', 'v1alpha1', 'hosts')!;
  assert.equal(host.namespaced, false);
  assert.deepEqual(host.shortNames, ['hs']);

  const ns = reg.lookup('', 'v1', 'namespaces')!;
  assert.equal(ns.custom, false);
  assert.equal(ns.statusSubresource, true);
  assert.equal(ns.namespaced, false);
  assert.deepEqual(ns.shortNames, ['ns']);
  assert.deepEqual(ns.printerColumns.map((c) => c.name), ['Status', 'Age']);

  const ev = reg.lookup('', 'v1', 'events')!;
  assert.equal(ev.statusSubresource, false);
  for (const f of ['involvedObject.kind', 'involvedObject.name', 'involvedObject.namespace', 'involvedObject.uid', 'involvedObject.apiVersion', 'involvedObject.fieldPath', 'reason', 'type', 'source']) {
    assert.ok(ev.selectableFields.includes(f), f);
  }
  assert.deepEqual(ev.selectableFieldPaths, { source: 'source.component' });
  assert.ok(reg.lookup('events.k8s.io', 'v1', 'events'));
  const lease = reg.byKind('coordination.k8s.io', 'Lease')!;
  assert.deepEqual(lease.printerColumns.map((c) => c.name), ['Holder', 'Age']);
  assert.equal(lease.statusSubresource, false);
  assert.equal(reg.byKind('', 'Secret')!.printerColumns[0].name, 'Type');
  assert.ok(reg.byKind('', 'ConfigMap'));
  for (const r of reg.all()) if (!r.custom) assert.equal(r.statusSubresource, r.kind === 'Namespace' || r.kind === 'ResourceQuota', r.kind);
});

test('Registry refuses broken or duplicate CRDs', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kova-crds-'));
  try {
    const good = await readFile(join(defaultCrdDir(), 'flavor.yaml'), 'utf8');
    await writeFile(join(dir, 'a.yaml'), good);
    await writeFile(join(dir, 'b.yaml'), good);
    await assert.rejects(Registry.load(dir), /defined twice/);

    const bad = YAML.parse(good);
    bad.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.vcpus.type = undefined;
    await writeFile(join(dir, 'b.yaml'), YAML.stringify(bad));
    await assert.rejects(Registry.load(dir), /properties\[vcpus\]\.type: Required value/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('crdErrors catches what a real API server rejects', () => {
  const base = (): JSONSchema => ({ type: 'object', properties: { spec: { type: 'object', properties: { a: { type: 'string' } } } } });
  const errs = (mut: (s: any) => void, opts = {}) => {
    const s = base() as any;
    mut(s);
    return structuralErrors(s, opts).join('\n');
  };
  assert.equal(errs(() => {}), '');
  assert.match(errs((s) => delete s.properties.spec.properties.a.type), /\[a\]\.type: Required value/);
  assert.match(errs((s) => (s.properties.spec.additionalProperties = { type: 'string' })), /mutual exclusive/);
  assert.match(errs((s) => (s.properties.spec.oneOf = [{ required: ['a'], type: 'object' }])), /oneOf\[0\]\.type: Forbidden/);
  assert.match(errs((s) => (s.properties.spec.oneOf = [{ required: ['a'], description: 'x' }])), /oneOf\[0\]\.description: Forbidden/);
  assert.match(errs((s) => (s.properties.spec.oneOf = [{ properties: { b: { minLength: 1 } } }])), /properties\[b\]: Required/);
  assert.match(errs((s) => (s.properties.spec['x-kova-hint'] = 'x')), /x-kova-hint: unknown field/);
  assert.match(errs((s) => (s.properties.spec.properties.a.uniqueItems = true)), /uniqueItems/);
  assert.match(errs((s) => (s.properties.spec.properties.a.pattern = '^(?!x)')), /RE2/);
  assert.match(errs((s) => (s.properties.spec.properties.a.format = 'ip')), /format/);
  assert.match(errs((s) => (s.properties.metadata = { type: 'object', properties: { labels: { type: 'object' } } })), /metadata.*Forbidden/);
  assert.match(errs((s) => (s.properties.spec.properties.l = { type: 'array', items: { type: 'object', properties: { k: { type: 'string' } } }, 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['k'] })), /must have a default or be a required property/);
  assert.match(errs((s) => (s.oneOf = [{ required: ['spec'] }]), { statusSubresource: true }), /allowed at the root/);
  assert.match(errs((s) => (s.properties.spec.properties.q = { 'x-kubernetes-int-or-string': true, type: 'string' })), /int-or-string/);
  assert.equal(errs((s) => (s.properties.spec.properties.q = { 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'integer' }, { type: 'string' }] })), '');
  assert.throws(() => parseCrdFile('apiVersion: v1\nkind: ConfigMap\n', 'x.yaml'), /x\.yaml: invalid CustomResourceDefinition/);
});
