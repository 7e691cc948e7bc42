import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { Registry } from './registry.js';
import type { FieldCause, KObject, ResourceInfo } from './types.js';
import { Validator, fieldPath, isDNS1123Label, isQualifiedName, keepDefaultedFields, nameFormat, validateUpdate } from './validation.js';

let reg: Registry;
let v: Validator;
const kova = (kind: string): ResourceInfo => reg.byKind('kova.dev', kind)!;

before(async () => {
  reg = await Registry.load();
  v = new Validator(reg);
  v.warm();
});

function instance(spec: Record<string, unknown>, extra: Partial<KObject> = {}): KObject {
  return { apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', metadata: { name: 'web-1', namespace: 'demo' }, spec, ...extra };
}

/** The write path of the API server: prune, default, validate. */
function admit(info: ResourceInfo, obj: KObject, subresource?: 'status'): FieldCause[] {
  v.prune(info, obj);
  v.applyDefaults(info, obj);
  return [...v.validateMetadata(info, obj), ...v.validate(info, obj, { subresource })];
}

const fields = (cs: FieldCause[]) => cs.map((c) => c.field).sort();

test('a valid Instance passes and gets its defaults', () => {
  const obj = instance({ flavor: 'm1.small', image: 'tiny', networks: [{ network: 'private' }] });
  assert.deepEqual(admit(kova('Instance'), obj), []);
  assert.equal((obj.spec as any).runStrategy, 'Always');
});

test('runStrategy "Sometimes" and vcpus -1 give two causes with the right fields, reasons and messages', () => {
  const obj = instance({ resources: { vcpus: -1, memory: '512Mi', disk: '2Gi' }, image: 'tiny', runStrategy: 'Sometimes' });
  const cs = admit(kova('Instance'), obj);
  assert.deepEqual(cs, [
    {
      reason: 'FieldValueInvalid',
      field: 'spec.resources.vcpus',
      message: 'Invalid value: -1: spec.resources.vcpus in body should be greater than or equal to 1',
    },
    {
      reason: 'FieldValueNotSupported',
      field: 'spec.runStrategy',
      message: 'Unsupported value: "Sometimes": supported values: "Always", "Halted", "Manual", "RerunOnFailure"',
    },
  ]);
});

test('exactly one of flavor/resources: one clear cause for none and for both', () => {
  const msg = 'Invalid value: "object": exactly one of spec.flavor or spec.resources must be set';
  for (const spec of [{ image: 'tiny' }, { image: 'tiny', flavor: 'm1.small', resources: { vcpus: 1, memory: '1Gi', disk: '1Gi' } }]) {
    const cs = admit(kova('Instance'), instance(spec));
    assert.deepEqual(cs, [{ reason: 'FieldValueInvalid', field: 'spec', message: msg }], JSON.stringify(spec));
  }
});

test('exactly one image source', () => {
  const image = (source: unknown): KObject => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'Image', metadata: { name: 'tiny', namespace: 'demo' }, spec: { source } });
  assert.deepEqual(admit(kova('Image'), image({ http: { url: 'http://127.0.0.1:8088/tiny.qcow2' } })), []);
  const both = admit(kova('Image'), image({ http: { url: 'http://x/y' }, file: { path: '/a' } }));
  assert.deepEqual(both.map((c) => [c.field, c.message]), [['spec.source', 'Invalid value: "object": exactly one of spec.source.http, spec.source.file, spec.source.volume or spec.source.snapshot must be set']]);
  const none = admit(kova('Image'), image({}));
  assert.deepEqual(fields(none), ['spec.source']);
  const obj = image({ file: { path: '/var/lib/kova/seed/tiny.qcow2' } });
  admit(kova('Image'), obj);
  assert.equal((obj.spec as any).visibility, 'Private');
});

test('image members: only with visibility Shared, project names, a set', () => {
  const image = (spec: Record<string, unknown>): KObject => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'Image', metadata: { name: 'tiny', namespace: 'demo' }, spec: { source: { file: { path: '/i.qcow2' } }, ...spec } });
  assert.deepEqual(admit(kova('Image'), image({ visibility: 'Shared', members: ['b', 'c'] })), []);
  assert.deepEqual(admit(kova('Image'), image({ visibility: 'Shared' })), []); // shared with nobody yet
  for (const [spec, vis] of [[{ visibility: 'Public', members: ['b'] }, 'Public'], [{ visibility: 'Private', members: [] }, 'Private'], [{ members: ['b'] }, 'Private']] as const) {
    assert.deepEqual(admit(kova('Image'), image(spec)), [{ reason: 'FieldValueForbidden', field: 'spec.members', message: `Forbidden: may only be set when spec.visibility is Shared, not ${vis}` }], JSON.stringify(spec));
  }
  assert.deepEqual(fields(admit(kova('Image'), image({ visibility: 'Shared', members: ['b', 'b'] }))), ['spec.members[1]']);
  assert.deepEqual(fields(admit(kova('Image'), image({ visibility: 'Shared', members: ['Not_A_Project'] }))), ['spec.members[0]']);
  assert.deepEqual(fields(admit(kova('Image'), image({ visibility: 'Shared', members: Array.from({ length: 257 }, (_, i) => `p${i}`) }))), ['spec.members']);
  assert.deepEqual(fields(admit(kova('Image'), image({ visibility: 'Community' }))), ['spec.visibility']);
});

test('required fields, types, patterns, formats and lengths', () => {
  const cs = admit(kova('Instance'), instance({
    resources: { vcpus: 'two', memory: true, disk: '-1Gi' },
    networks: [{ ip: '10.0.0.300' }, { network: 'Bad_Net' }],
    userData: 'x'.repeat(70000),
    keyPair: 'kp',
  }));
  const byField = Object.fromEntries(cs.map((c) => [c.field, c]));
  // spec.image is optional in the schema (boot from volume); the Instance rule requires a boot source.
  assert.deepEqual(Object.keys(byField).sort(), [
    'spec.image',
    'spec.networks[0].ip',
    'spec.networks[0].network',
    'spec.networks[1].network',
    'spec.resources.disk',
    'spec.resources.memory',
    'spec.resources.vcpus',
    'spec.userData',
  ]);
  assert.equal(byField['spec.resources.vcpus'].reason, 'FieldValueTypeInvalid');
  assert.equal(byField['spec.resources.vcpus'].message, 'Invalid value: "two": spec.resources.vcpus in body must be of type integer: "string"');
  assert.equal(byField['spec.resources.memory'].reason, 'FieldValueTypeInvalid');
  assert.equal(byField['spec.resources.disk'].message, 'Invalid value: "-1Gi": spec.resources.disk in body should be greater than or equal to 1Mi');
  assert.equal(byField['spec.networks[0].ip'].message, 'Invalid value: "10.0.0.300": spec.networks[0].ip in body must be of type ipv4: "10.0.0.300"');
  assert.match(byField['spec.networks[1].network'].message, /should match/);
  assert.deepEqual(byField['spec.userData'], { reason: 'FieldValueTooLong', field: 'spec.userData', message: 'Too long: may not be more than 65536 bytes' });
});

test('integer quantities and string quantities are both accepted', () => {
  assert.deepEqual(admit(kova('Instance'), instance({ image: 'tiny', resources: { vcpus: 2, memory: 1073741824, disk: '10Gi' } })), []);
  const f = { apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: { name: 'm1.small' }, spec: { vcpus: 1, memory: '512Mi', disk: 2147483648 } };
  assert.deepEqual(admit(kova('Flavor'), f), []);
});

test('maxItems gives a TooMany cause', () => {
  const cs = admit(kova('Network'), {
    apiVersion: 'kova.dev/v1alpha1', kind: 'Network', metadata: { name: 'n', namespace: 'demo' },
    spec: { type: 'flat', cidr: '10.0.0.0/24', dns: ['1.1.1.1', '1.1.1.2', '1.1.1.3', '1.1.1.4'] },
  });
  assert.deepEqual(cs, [{ reason: 'FieldValueTooMany', field: 'spec.dns', message: 'Too many: 4: must have at most 3 items' }]);
});

test('unknown fields are reported with paths and pruned', () => {
  const obj = instance({ flavor: 'm1.small', image: 'tiny', foo: 1, networks: [{ network: 'private', bar: { x: 1 } }], nodeSelector: { 'kova.dev/zone': 'a' } });
  obj.extra = true;
  (obj.metadata as any).bogus = 'x';
  (obj.metadata as any).ownerReferences = [{ apiVersion: 'v1', kind: 'Namespace', name: 'demo', uid: 'u', zzz: 1 }];
  obj.status = { phase: 'Running', nope: 1, conditions: [{ type: 'Ready', status: 'True', extra: 1 }] };
  const info = kova('Instance');
  assert.deepEqual(v.unknownFields(info, obj), [
    'metadata.bogus',
    'metadata.ownerReferences[0].zzz',
    'spec.foo',
    'spec.networks[0].bar',
    'extra',
    'status.nope',
    'status.conditions[0].extra',
  ]);
  v.prune(info, obj);
  assert.deepEqual(v.unknownFields(info, obj), []);
  assert.deepEqual(obj.spec, { flavor: 'm1.small', image: 'tiny', networks: [{ network: 'private' }], nodeSelector: { 'kova.dev/zone': 'a' } });
  assert.deepEqual(obj.status, { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] });
  assert.deepEqual(obj.metadata, { name: 'web-1', namespace: 'demo', ownerReferences: [{ apiVersion: 'v1', kind: 'Namespace', name: 'demo', uid: 'u' }] });
});

test('defaults: nested, objects defaulted then filled, nulls pruned or defaulted', () => {
  const host: KObject = { apiVersion: 'kova.dev/v1alpha1', kind: 'Host', metadata: { name: 'node-1', creationTimestamp: null as unknown as string } };
  v.applyDefaults(kova('Host'), host);
  assert.deepEqual(host.spec, { unschedulable: false, fenced: false, maintenance: false });
  assert.deepEqual(host.metadata, { name: 'node-1' });

  const net: KObject = { apiVersion: 'kova.dev/v1alpha1', kind: 'Network', metadata: { name: 'n', namespace: 'd' }, spec: { type: 'vxlan', cidr: '10.20.0.0/24', dhcp: null, gateway: null } };
  v.applyDefaults(kova('Network'), net);
  assert.deepEqual(net.spec, { type: 'vxlan', cidr: '10.20.0.0/24', dhcp: true, external: false });

  const inst = instance({ flavor: 'x', image: 'y', runStrategy: 'Manual' });
  v.applyDefaults(kova('Instance'), inst);
  assert.equal((inst.spec as any).runStrategy, 'Manual');
});

test('status subresource: only status causes count; duplicate condition types are rejected', () => {
  const info = kova('Instance');
  const obj = instance({ image: 'tiny' }, {
    status: { phase: 'Running', hostName: 'node-1', conditions: [{ type: 'Ready', status: 'True' }, { type: 'Ready', status: 'Maybe' }, { status: 'True' }] },
  });
  const cs = v.validate(info, obj, { subresource: 'status' });
  assert.deepEqual(fields(cs), ['status.conditions[1]', 'status.conditions[1].status', 'status.conditions[2].type']);
  assert.equal(cs.find((c) => c.reason === 'FieldValueDuplicate')?.message, 'Duplicate value: {"type":"Ready"}');
  // The same object through the main resource also reports the spec problem.
  assert.ok(fields(v.validate(info, obj)).includes('spec'));
  assert.deepEqual(v.validate(info, instance({ image: 'tiny', flavor: 'f' }, { status: { phase: 'Sometimes' } }), { subresource: 'status' }).map((c) => c.reason), ['FieldValueNotSupported']);
});

test('Network rules a schema cannot express', () => {
  const net = (spec: Record<string, unknown>): KObject => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'Network', metadata: { name: 'n', namespace: 'd' }, spec });
  const info = kova('Network');
  assert.deepEqual(admit(info, net({ type: 'vxlan', cidr: '10.20.0.0/24', vni: 1020, gateway: '10.20.0.1' })), []);
  assert.deepEqual(admit(info, net({ type: 'vlan', cidr: '10.20.0.0/24', vlanID: 100, physicalInterface: 'eth1' })), []);
  assert.deepEqual(fields(admit(info, net({ type: 'vlan', cidr: '10.20.0.0/24' }))), ['spec.physicalInterface', 'spec.vlanID']);
  assert.deepEqual(fields(admit(info, net({ type: 'flat', cidr: '10.20.0.0/24', vlanID: 3, vni: 5 }))), ['spec.vlanID', 'spec.vni']);
  const gw = admit(info, net({ type: 'flat', cidr: '10.20.0.0/24', gateway: '10.21.0.1' }));
  assert.deepEqual(gw, [{ reason: 'FieldValueInvalid', field: 'spec.gateway', message: 'Invalid value: "10.21.0.1": must be inside spec.cidr 10.20.0.0/24' }]);
  assert.deepEqual(fields(admit(info, net({ type: 'flat', cidr: '10.20.0.0/33' }))), ['spec.cidr']);
  assert.deepEqual(fields(admit(info, net({ type: 'flat', cidr: '10.0.0.0/31' }))), ['spec.cidr']);
});

test('metadata: names per kind, generateName, namespace presence', () => {
  assert.equal(nameFormat(kova('Instance')), 'label');
  assert.equal(nameFormat(kova('Flavor')), 'subdomain');
  assert.equal(nameFormat(reg.byKind('', 'Namespace')!), 'label');
  assert.equal(nameFormat(reg.byKind('', 'Secret')!), 'subdomain');
  assert.equal(nameFormat(reg.byKind('coordination.k8s.io', 'Lease')!), 'subdomain');

  const flavor = (name: string): KObject => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: { name }, spec: {} });
  assert.deepEqual(v.validateMetadata(kova('Flavor'), flavor('m1.small')), []);
  assert.deepEqual(fields(v.validateMetadata(kova('Flavor'), flavor('M1.small'))), ['metadata.name']);

  const dotted = v.validateMetadata(kova('Instance'), instance({}, { metadata: { name: 'web.1', namespace: 'demo' } }));
  assert.deepEqual(dotted, [{ reason: 'FieldValueInvalid', field: 'metadata.name', message: 'Invalid value: "web.1": must not contain dots' }]);
  const bad = v.validateMetadata(kova('Instance'), instance({}, { metadata: { name: 'Web_1', namespace: 'demo' } }));
  assert.deepEqual(bad, [{
    reason: 'FieldValueInvalid',
    field: 'metadata.name',
    message: "Invalid value: \"Web_1\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
  }]);
  const long = v.validateMetadata(kova('Instance'), instance({}, { metadata: { name: 'a'.repeat(64), namespace: 'demo' } }));
  assert.deepEqual(long.map((c) => c.message), [`Invalid value: "${'a'.repeat(64)}": must be no more than 63 characters`]);

  assert.deepEqual(v.validateMetadata(kova('Instance'), instance({}, { metadata: { namespace: 'demo' } })), [
    { reason: 'FieldValueRequired', field: 'metadata.name', message: 'Required value: name or generateName is required' },
  ]);
  assert.deepEqual(v.validateMetadata(kova('Instance'), instance({}, { metadata: { generateName: 'web-', namespace: 'demo' } })), []);
  assert.deepEqual(fields(v.validateMetadata(kova('Instance'), instance({}, { metadata: { generateName: 'Web-', namespace: 'demo' } }))), ['metadata.generateName']);

  assert.deepEqual(v.validateMetadata(kova('Instance'), instance({}, { metadata: { name: 'web-1' } })), [
    { reason: 'FieldValueRequired', field: 'metadata.namespace', message: 'Required value' },
  ]);
  assert.deepEqual(v.validateMetadata(kova('Host'), { apiVersion: 'kova.dev/v1alpha1', kind: 'Host', metadata: { name: 'node-1', namespace: 'x' } }), [
    { reason: 'FieldValueForbidden', field: 'metadata.namespace', message: 'Forbidden: not allowed on this type' },
  ]);
  const nsObj: KObject = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'my.ns' } };
  assert.deepEqual(fields(v.validateMetadata(reg.byKind('', 'Namespace')!, nsObj)), ['metadata.name']);
  const lease: KObject = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'node-1.example.com', namespace: 'kova-system' } };
  assert.deepEqual(v.validateMetadata(reg.byKind('coordination.k8s.io', 'Lease')!, lease), []);
});

test('metadata: labels, annotations, finalizers and owner references', () => {
  const meta = (m: Record<string, unknown>) => v.validateMetadata(kova('Instance'), instance({}, { metadata: { name: 'web-1', namespace: 'demo', ...m } }));
  assert.deepEqual(meta({ labels: { 'kova.dev/zone': 'a', app: 'web', empty: '' }, annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}' }, finalizers: ['kova.dev/cleanup'] }), []);
  const badKey = meta({ labels: { 'bad key': 'x' } });
  assert.equal(badKey.length, 1);
  assert.equal(badKey[0].field, 'metadata.labels');
  assert.match(badKey[0].message, /^Invalid value: "bad key": name part must consist of alphanumeric characters/);
  const badValue = meta({ labels: { app: 'has space' } });
  assert.match(badValue[0].message, /^Invalid value: "has space": a valid label must be an empty string or consist of/);
  assert.match(meta({ labels: { app: 'x'.repeat(64) } })[0].message, /must be no more than 63 characters/);
  assert.match(meta({ labels: { 'Bad_Prefix/x': 'y' } })[0].message, /prefix part a lowercase RFC 1123 subdomain/);
  assert.equal(meta({ labels: { a: 1 } })[0].reason, 'FieldValueTypeInvalid');
  assert.deepEqual(meta({ annotations: { big: 'x'.repeat(300 * 1024) } }), [{ reason: 'FieldValueTooLong', field: 'metadata.annotations', message: 'Too long: may not be more than 262144 bytes' }]);
  assert.deepEqual(fields(meta({ finalizers: ['ok', 'no good'] })), ['metadata.finalizers[1]']);
  assert.deepEqual(fields(meta({ ownerReferences: [{ apiVersion: 'v1', kind: 'X', name: 'a' }] })), ['metadata.ownerReferences[0].uid']);
});

test('built-in kinds validate, default and prune too', () => {
  const ev = reg.byKind('', 'Event')!;
  const event: KObject = {
    apiVersion: 'v1', kind: 'Event', metadata: { name: 'web-1.abc', namespace: 'demo' },
    involvedObject: { apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', name: 'web-1', namespace: 'demo', uid: 'u' },
    reason: 'Scheduled', message: 'Assigned demo/web-1 to node-1', type: 'Normal', source: { component: 'kova-scheduler' },
    firstTimestamp: '2025-01-01T00:00:00Z', lastTimestamp: '2025-01-01T00:00:00Z', count: 1, eventTime: null, reportingComponent: '',
  };
  assert.deepEqual(admit(ev, event), []);
  assert.equal('eventTime' in event, false);
  assert.deepEqual(fields(admit(ev, { apiVersion: 'v1', kind: 'Event', metadata: { name: 'x', namespace: 'demo' } })), ['involvedObject']);

  const lease = reg.byKind('coordination.k8s.io', 'Lease')!;
  const l: KObject = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'node-1', namespace: 'kova-system' }, spec: { holderIdentity: 'node-1', leaseDurationSeconds: 40, renewTime: '2025-01-01T00:00:00.000000Z' } };
  assert.deepEqual(admit(lease, l), []);
  assert.deepEqual(fields(admit(lease, { ...l, spec: { renewTime: 'yesterday', leaseDurationSeconds: 2 ** 40 } })), ['spec.leaseDurationSeconds', 'spec.renewTime']);

  const ns = reg.byKind('', 'Namespace')!;
  assert.deepEqual(admit(ns, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo' }, status: { phase: 'Active' } }), []);
  assert.deepEqual(fields(admit(ns, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo' }, status: { phase: 'Gone' } })), ['status.phase']);

  const secret = reg.byKind('', 'Secret')!;
  assert.deepEqual(admit(secret, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'd' }, data: { token: 'aGVsbG8=' }, type: 'Opaque' }), []);
  assert.deepEqual(fields(admit(secret, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'd' }, data: { token: 'not base64!' } })), ['data.token']);
  const cm: KObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'd' }, data: { 'a.conf': 'x' }, junk: 1 };
  assert.deepEqual(v.unknownFields(reg.byKind('', 'ConfigMap')!, cm), ['junk']);
});

test('fieldPath and name helpers', () => {
  assert.equal(fieldPath(['spec', 'networks', 0, 'ip']), 'spec.networks[0].ip');
  assert.equal(fieldPath(['spec', 'nodeSelector', 'kova.dev/zone']), 'spec.nodeSelector[kova.dev/zone]');
  assert.equal(fieldPath([]), '');
  assert.deepEqual(isDNS1123Label('ok-1'), []);
  assert.deepEqual(isQualifiedName('kova.dev/zone'), []);
  assert.equal(isQualifiedName('a/b/c').length, 1);
});

// ---- Issue #12: values that used to pass admission and fail (or corrupt accounting) later ----

const QUANTITY_FIELDS: Array<{ kind: string; field: string; make: (q: unknown) => KObject; min: string; max: string }> = [
  { kind: 'Instance', field: 'spec.resources.memory', make: (q) => instance({ image: 'tiny', resources: { vcpus: 1, memory: q, disk: '1Gi' } }), min: '16Mi', max: '16Ti' },
  { kind: 'Instance', field: 'spec.resources.disk', make: (q) => instance({ image: 'tiny', resources: { vcpus: 1, memory: '1Gi', disk: q } }), min: '1Mi', max: '1Pi' },
  { kind: 'Flavor', field: 'spec.memory', make: (q) => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: { name: 'f' }, spec: { vcpus: 1, memory: q, disk: '1Gi' } }), min: '16Mi', max: '16Ti' },
  { kind: 'Flavor', field: 'spec.disk', make: (q) => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: { name: 'f' }, spec: { vcpus: 1, memory: '1Gi', disk: q } }), min: '1Mi', max: '1Pi' },
  { kind: 'Volume', field: 'spec.size', make: (q) => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'Volume', metadata: { name: 'v', namespace: 'demo' }, spec: { size: q } }), min: '1Mi', max: '1Pi' },
];

test('quantities are bounded in both their integer and string forms, with kube-style messages', () => {
  for (const { kind, field, make, min, max } of QUANTITY_FIELDS) {
    const check = (q: unknown, want: string | undefined) => {
      const cs = admit(kova(kind), make(q));
      const shown = typeof q === 'string' ? JSON.stringify(q) : String(q);
      if (want === undefined) assert.deepEqual(cs, [], `${kind} ${field}=${shown}`);
      else assert.deepEqual(cs, [{ reason: 'FieldValueInvalid', field, message: `Invalid value: ${shown}: ${field} in body ${want}` }], `${kind} ${field}=${shown}`);
    };
    const below = `should be greater than or equal to ${min}`;
    const above = `should be less than or equal to ${max}`;
    // The reported case: -48Gi as a plain integer, then the same as strings in every notation.
    check(-51539607552, below);
    check(-1, below);
    check(0, below);
    check('-1Gi', below);
    check('-48Gi', below);
    check('-1e3', below);
    check('0', below);
    check('100m', below);
    check('1e-3', below);
    check('+1Gi', undefined);
    check(min, undefined);
    check(max, undefined);
    check('1e100', above);
    check(1e100, above);
    check('9'.repeat(400), above); // parses to Infinity
    check('1Ei', above);
    for (const bad of ['NaN', 'Infinity', '-Infinity', '1 Gi', '1GB', '', '0x10']) {
      const cs = admit(kova(kind), make(bad));
      assert.equal(cs.length, 1, `${kind} ${field}=${JSON.stringify(bad)}: ${JSON.stringify(cs)}`);
      assert.equal(cs[0].field, field);
      assert.match(cs[0].message, new RegExp(`^Invalid value: ${JSON.stringify(bad)}: ${field.replace(/\./g, '\\.')} in body should match '\\^`));
    }
    assert.deepEqual(admit(kova(kind), make('1e1.5')).map((c) => c.field), [field], 'a quantity the pattern admits but apimachinery cannot parse');
    assert.deepEqual(admit(kova(kind), make(1.5)).map((c) => c.reason), ['FieldValueTypeInvalid'], 'a fractional JSON number');
  }
});

test('Host status quantities: zero is fine, negative or absurd is not (status subresource)', () => {
  const info = kova('Host');
  const host = (status: Record<string, unknown>): KObject => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'Host', metadata: { name: 'node-1' }, spec: {}, status });
  const ok = { vcpus: 0, memory: '0', disk: 0 };
  assert.deepEqual(v.validate(info, host({ capacity: { vcpus: 8, memory: '48Gi', disk: '500Gi' }, allocatable: { vcpus: 128, memory: '72Gi', disk: '500Gi' }, allocated: ok, allocations: [{ uid: 'u', instance: 'd/a', vcpus: 1, memory: '512Mi', disk: '1Gi' }] }), { subresource: 'status' }), []);
  const cs = v.validate(info, host({
    capacity: { vcpus: -1, memory: '-1Gi', disk: 2 ** 61 },
    allocatable: { vcpus: 2 ** 21, memory: '2Pi', disk: '-1' },
    allocated: { vcpus: 0, memory: -51539607552, disk: '0' },
    allocations: [{ uid: 'u', instance: 'd/a', vcpus: 1, memory: '-48Gi', disk: '1Gi' }],
  }), { subresource: 'status' });
  assert.deepEqual(fields(cs), [
    'status.allocatable.disk', 'status.allocatable.memory', 'status.allocatable.vcpus',
    'status.allocated.memory',
    'status.allocations[0].memory',
    'status.capacity.disk', 'status.capacity.memory', 'status.capacity.vcpus',
  ]);
  assert.equal(cs.find((c) => c.field === 'status.allocated.memory')!.message, 'Invalid value: -51539607552: status.allocated.memory in body should be greater than or equal to 0');
  assert.equal(cs.find((c) => c.field === 'status.capacity.disk')!.message, `Invalid value: ${2 ** 61}: status.capacity.disk in body should be less than or equal to 1Ei`);
});

test('integer bounds: vcpus, VLAN id, VNI, port numbers', () => {
  const net = (spec: Record<string, unknown>): KObject => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'Network', metadata: { name: 'n', namespace: 'd' }, spec });
  const cases: Array<[ResourceInfo, KObject, string[]]> = [
    [kova('Instance'), instance({ image: 'tiny', resources: { vcpus: 0, memory: '1Gi', disk: '1Gi' } }), ['spec.resources.vcpus']],
    [kova('Instance'), instance({ image: 'tiny', resources: { vcpus: 1025, memory: '1Gi', disk: '1Gi' } }), ['spec.resources.vcpus']],
    [kova('Network'), net({ type: 'vlan', cidr: '10.0.0.0/24', vlanID: 0, physicalInterface: 'eth1' }), ['spec.vlanID']],
    [kova('Network'), net({ type: 'vlan', cidr: '10.0.0.0/24', vlanID: 4095, physicalInterface: 'eth1' }), ['spec.vlanID']],
    [kova('Network'), net({ type: 'vxlan', cidr: '10.0.0.0/24', vni: 0 }), ['spec.vni']],
    [kova('Network'), net({ type: 'vxlan', cidr: '10.0.0.0/24', vni: 16777216 }), ['spec.vni']],
    [kova('SecurityGroup'), sg([{ direction: 'ingress', protocol: 'tcp', portRange: { min: 0 } }]), ['spec.rules[0].portRange.min']],
    [kova('SecurityGroup'), sg([{ direction: 'ingress', protocol: 'tcp', portRange: { min: 1, max: 65536 } }]), ['spec.rules[0].portRange.max']],
  ];
  for (const [info, obj, want] of cases) assert.deepEqual(fields(admit(info, obj)), want, JSON.stringify(obj.spec));
});

function sg(rules: unknown[]): KObject {
  return { apiVersion: 'kova.dev/v1alpha1', kind: 'SecurityGroup', metadata: { name: 'web', namespace: 'demo' }, spec: { rules } };
}

test('Port MACs must be unicast and not all zeros', () => {
  const port = (mac: string): KObject => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'Port', metadata: { name: 'p', namespace: 'demo' }, spec: { network: 'private', mac } });
  for (const ok of ['52:54:00:12:34:56', 'fa:16:3e:00:00:01', '02:00:00:00:00:00', 'FE:FF:FF:FF:FF:FF']) assert.deepEqual(admit(kova('Port'), port(ok)), [], ok);
  const cases: Array<[string, string]> = [
    ['01:00:5e:00:00:01', 'must be a unicast MAC address (the least significant bit of the first octet is set: a multicast address)'],
    ['33:33:00:00:00:01', 'must be a unicast MAC address (the least significant bit of the first octet is set: a multicast address)'],
    ['ff:ff:ff:ff:ff:ff', 'must be a unicast MAC address, not the broadcast address'],
    ['FF:FF:FF:FF:FF:FF', 'must be a unicast MAC address, not the broadcast address'],
    ['00:00:00:00:00:00', 'must not be all zeros'],
  ];
  for (const [mac, detail] of cases) {
    assert.deepEqual(admit(kova('Port'), port(mac)), [{ reason: 'FieldValueInvalid', field: 'spec.mac', message: `Invalid value: "${mac}": ${detail}` }], mac);
  }
  assert.deepEqual(fields(admit(kova('Port'), port('52-54-00-12-34-56'))), ['spec.mac'], 'the schema pattern still applies');
});

test('SecurityGroup rules: port ranges, protocols and remote CIDRs, named by rule index', () => {
  const info = kova('SecurityGroup');
  assert.deepEqual(admit(info, sg([
    { direction: 'ingress', protocol: 'tcp', portRange: { min: 80, max: 443 }, remoteCIDR: '0.0.0.0/0' },
    { direction: 'ingress', protocol: 'udp', portRange: { min: 53 } },
    { direction: 'ingress', protocol: 'tcp', portRange: { min: 22, max: 22 }, remoteCIDR: '10.0.0.0/8' },
    { direction: 'ingress', protocol: 'icmp', remoteCIDR: '192.168.1.7/32' },
    { direction: 'egress' },
    { direction: 'ingress', protocol: 'any', remoteGroup: 'web' },
  ])), []);
  const ok = { direction: 'egress', protocol: 'any' };
  const cs = admit(info, sg([
    ok,
    ok,
    { direction: 'ingress', protocol: 'tcp', portRange: { min: 443, max: 80 } },
    { direction: 'ingress', protocol: 'icmp', portRange: { min: 1 } },
    { direction: 'ingress', portRange: { min: 22 } },
    { direction: 'ingress', protocol: 'tcp', remoteCIDR: '10.0.0.1/24' },
    { direction: 'ingress', protocol: 'tcp', remoteCIDR: '10.0.0.0/8', remoteGroup: 'web' },
  ]));
  assert.deepEqual(cs, [
    { reason: 'FieldValueInvalid', field: 'spec.rules[2].portRange.max', message: 'Invalid value: 80: must be greater than or equal to spec.rules[2].portRange.min (443)' },
    { reason: 'FieldValueForbidden', field: 'spec.rules[3].portRange', message: 'Forbidden: may only be set when protocol is tcp or udp, not icmp' },
    { reason: 'FieldValueForbidden', field: 'spec.rules[4].portRange', message: 'Forbidden: may only be set when protocol is tcp or udp, not any' },
    { reason: 'FieldValueInvalid', field: 'spec.rules[5].remoteCIDR', message: 'Invalid value: "10.0.0.1/24": must be a network address with no host bits set (did you mean 10.0.0.0/24?)' },
    { reason: 'FieldValueForbidden', field: 'spec.rules[6].remoteGroup', message: 'Forbidden: may not be set together with spec.rules[6].remoteCIDR' },
  ]);
});

test('SecurityGroup remoteCIDR: IPv4 in the host side\'s grammar only', () => {
  const sg = (remoteCIDR: string): KObject => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'SecurityGroup', metadata: { name: 'g', namespace: 'd' }, spec: { rules: [{ direction: 'ingress', remoteCIDR }] } });
  // The schema's pattern and cidr format let a zero-padded prefix through; the agent refuses it.
  assert.deepEqual(admit(kova('SecurityGroup'), sg('10.0.0.0/08')), [
    { reason: 'FieldValueInvalid', field: 'spec.rules[0].remoteCIDR', message: 'Invalid value: "10.0.0.0/08": must be an IPv4 range in CIDR notation, for example 10.0.0.0/8' },
  ]);
  for (const bad of ['fd00::/64', 'not-a-cidr']) {
    const cs = admit(kova('SecurityGroup'), sg(bad));
    assert.ok(cs.length > 0 && cs.every((c) => c.message.includes('in body')), `${bad}: the schema reports it, the rule does not repeat it: ${JSON.stringify(cs)}`);
  }
});

test('Network subnets: IPv4 only, no host bits, prefix 8..30, usable gateway', () => {
  const info = kova('Network');
  const net = (cidr: string, extra: Record<string, unknown> = {}): KObject => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'Network', metadata: { name: 'n', namespace: 'd' }, spec: { type: 'flat', cidr, ...extra } });
  for (const ok of ['10.0.0.0/8', '10.20.0.0/24', '192.168.7.4/30', '172.16.0.0/12']) assert.deepEqual(admit(info, net(ok)), [], ok);
  const one = (cidr: string, extra: Record<string, unknown> = {}) => {
    const cs = admit(info, net(cidr, extra));
    assert.equal(cs.length, 1, `${cidr}: ${JSON.stringify(cs)}`);
    return cs[0];
  };
  assert.equal(one('::/0').field, 'spec.cidr');
  assert.equal(one('fd00::/64').field, 'spec.cidr');
  // The host side's grammar: no leading zeros in the prefix either (the agent would refuse it).
  assert.deepEqual(one('10.0.0.0/08'), { reason: 'FieldValueInvalid', field: 'spec.cidr', message: 'Invalid value: "10.0.0.0/08": must be an IPv4 subnet in CIDR notation, for example 10.20.0.0/24' });
  assert.deepEqual(one('10.0.0.1/24'), { reason: 'FieldValueInvalid', field: 'spec.cidr', message: 'Invalid value: "10.0.0.1/24": must be a network address with no host bits set (did you mean 10.0.0.0/24?)' });
  for (const bad of ['0.0.0.0/0', '10.0.0.0/7', '10.0.0.0/31', '10.0.0.1/32']) {
    assert.deepEqual(one(bad), { reason: 'FieldValueInvalid', field: 'spec.cidr', message: `Invalid value: "${bad}": prefix length must be between 8 and 30` });
  }
  assert.equal(one('10.20.0.0/24', { gateway: '10.20.0.0' }).message, 'Invalid value: "10.20.0.0": must be a usable address of spec.cidr 10.20.0.0/24, not its network or broadcast address');
  assert.equal(one('10.20.0.0/24', { gateway: '10.20.0.255' }).field, 'spec.gateway');
  assert.deepEqual(admit(info, net('10.20.0.0/24', { gateway: '10.20.0.254' })), []);
});

test('KeyPair public keys are one line without carriage returns or control characters', () => {
  const info = kova('KeyPair');
  const kp = (publicKey: string): KObject => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'KeyPair', metadata: { name: 'k', namespace: 'demo' }, spec: { publicKey } });
  const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl';
  for (const ok of [key, `${key} user@host`, `${key} user@host\n`, `${key}\n`, `${key} a comment with spaces`]) assert.deepEqual(admit(info, kp(ok)), [], JSON.stringify(ok));
  for (const bad of [`${key} user@host\r`, `${key} user@host\r\n`, `${key}\r\n`, `${key} us\rer`, `${key} user\t@host`, `${key} x\n${key}`, `${key} a\u0000b`]) {
    assert.deepEqual(fields(admit(info, kp(bad))), ['spec.publicKey'], JSON.stringify(bad));
  }
});

test('Instance boot source: an image, or exactly one volume with bootOrder 1, never both', () => {
  const info = kova('Instance');
  const vm = (spec: Record<string, unknown>) => admit(info, instance({ flavor: 'm1.small', ...spec }));
  assert.deepEqual(vm({ image: 'tiny' }), []);
  assert.deepEqual(vm({ image: 'tiny', volumes: [{ volume: 'data' }, { volume: 'logs', bootOrder: 2 }] }), []);
  assert.deepEqual(vm({ volumes: [{ volume: 'data' }, { volume: 'root', bootOrder: 1 }] }), []);
  assert.deepEqual(vm({}), [{ reason: 'FieldValueRequired', field: 'spec.image', message: 'Required value: an instance boots from an image, or from a volume with bootOrder 1' }]);
  assert.deepEqual(vm({ volumes: [{ volume: 'data', bootOrder: 2 }] }), [
    { reason: 'FieldValueRequired', field: 'spec.image', message: 'Required value: an instance boots from an image, or from a volume with bootOrder 1' },
  ]);
  assert.deepEqual(vm({ image: 'tiny', volumes: [{ volume: 'data' }, { volume: 'root', bootOrder: 1 }] }), [{
    reason: 'FieldValueForbidden', field: 'spec.volumes[1].bootOrder',
    message: 'Forbidden: the instance boots from spec.image (its root disk is boot device 1); bootOrder 1 is for an instance without an image, use 2 or more',
  }]);
  assert.deepEqual(vm({ volumes: [{ volume: 'a', bootOrder: 1 }, { volume: 'b', bootOrder: 1 }] }), [
    { reason: 'FieldValueInvalid', field: 'spec.volumes[1].bootOrder', message: 'Invalid value: 1: must be unique: spec.volumes[0] has bootOrder 1 too' },
  ]);
  assert.deepEqual(vm({ volumes: [{ volume: 'a', bootOrder: 1 }, { volume: 'b', bootOrder: 3 }, { volume: 'c', bootOrder: 3 }] }), [
    { reason: 'FieldValueInvalid', field: 'spec.volumes[2].bootOrder', message: 'Invalid value: 3: must be unique: spec.volumes[1] has bootOrder 3 too' },
  ]);
  assert.deepEqual(vm({ image: 'tiny', volumes: [{ volume: 'data' }, { volume: 'logs' }, { volume: 'data', readOnly: true }] }), [
    { reason: 'FieldValueDuplicate', field: 'spec.volumes[2].volume', message: 'Duplicate value: "data"' },
  ]);
  // The status subresource does not judge the spec (it is the stored one).
  assert.deepEqual(admit(info, instance({ flavor: 'm1.small' }, { status: { phase: 'Running' } }), 'status'), []);
});

test('VolumeType: sharedPath exactly for the shared backend', () => {
  const info = kova('VolumeType');
  const vt = (spec: Record<string, unknown>): KObject => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'VolumeType', metadata: { name: 'vt' }, spec });
  const local = vt({ backend: 'local' });
  assert.deepEqual(admit(info, local), []);
  const { allowVolumeExpansion, multiAttach } = local.spec as Record<string, unknown>;
  assert.deepEqual({ allowVolumeExpansion, multiAttach }, { allowVolumeExpansion: true, multiAttach: false }, 'schema defaults');
  assert.deepEqual(admit(info, vt({ backend: 'shared', sharedPath: '/srv/nfs/kova' })), []);
  assert.deepEqual(admit(info, vt({ backend: 'shared' })), [{ reason: 'FieldValueRequired', field: 'spec.sharedPath', message: 'Required value: required when spec.backend is shared' }]);
  assert.deepEqual(admit(info, vt({ backend: 'local', sharedPath: '/srv' })), [{ reason: 'FieldValueForbidden', field: 'spec.sharedPath', message: 'Forbidden: may only be set when spec.backend is shared' }]);
});

describe('update rules of the volume kinds (validateUpdate)', () => {
  const volume = (spec: Record<string, unknown>): KObject => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'Volume', metadata: { name: 'data', namespace: 'demo' }, spec });
  const upd = (kind: string, old: KObject, next: KObject) => validateUpdate(kova(kind), old, next);

  test('a Volume grows but never shrinks, in any quantity spelling', () => {
    const old = volume({ size: '2Gi', volumeType: 'local' });
    assert.deepEqual(upd('Volume', old, volume({ size: '3Gi', volumeType: 'local' })), []);
    assert.deepEqual(upd('Volume', old, volume({ size: 2147483648, volumeType: 'local' })), [], 'the same size as an integer');
    assert.deepEqual(upd('Volume', old, volume({ size: '2048Mi', volumeType: 'local' })), []);
    assert.deepEqual(upd('Volume', old, volume({ size: '1Gi', volumeType: 'local' })), [
      { reason: 'FieldValueForbidden', field: 'spec.size', message: 'Forbidden: a volume cannot shrink (from 2Gi to 1Gi)' },
    ]);
    assert.deepEqual(fields(upd('Volume', old, volume({ size: 2147483647, volumeType: 'local' }))), ['spec.size'], 'one byte less');
    assert.deepEqual(upd('Volume', old, volume({ size: 'lots', volumeType: 'local' })), [], 'a malformed size is the schema\'s to report');
  });

  test('a Volume\'s volumeType and source are fixed at creation', () => {
    const old = volume({ size: '1Gi', volumeType: 'local', source: { image: 'tiny' } });
    assert.deepEqual(upd('Volume', old, volume({ size: '1Gi', volumeType: 'local', source: { image: 'tiny' } })), []);
    assert.deepEqual(upd('Volume', old, volume({ size: '1Gi', volumeType: 'fast', source: { image: 'tiny' } })), [
      { reason: 'FieldValueInvalid', field: 'spec.volumeType', message: 'Invalid value: "fast": field is immutable' },
    ]);
    assert.deepEqual(upd('Volume', old, volume({ size: '1Gi', volumeType: 'local', source: { snapshot: 's1' } })), [
      { reason: 'FieldValueInvalid', field: 'spec.source', message: 'Invalid value: "object": field is immutable' },
    ]);
    assert.deepEqual(fields(upd('Volume', old, volume({ size: '1Gi', volumeType: 'local' }))), ['spec.source'], 'removing the source');
    const untyped = volume({ size: '1Gi' });
    assert.deepEqual(fields(upd('Volume', untyped, volume({ size: '1Gi', volumeType: 'fast' }))), ['spec.volumeType'], 'unset to set after creation');
    assert.deepEqual(fields(upd('Volume', volume({ size: '1Gi' }), volume({ size: '1Gi', source: { image: 'tiny' } }))), ['spec.source']);
  });

  test('an update that leaves out the defaulted volumeType keeps it (kubectl replace of the original manifest)', () => {
    const old = volume({ size: '1Gi', volumeType: 'local' });
    const next = volume({ size: '2Gi' });
    keepDefaultedFields(kova('Volume'), old, next);
    assert.deepEqual(next.spec, { size: '2Gi', volumeType: 'local' });
    assert.deepEqual(upd('Volume', old, next), []);
    const other = { ...next, kind: 'Instance', spec: { image: 'x' } } as KObject;
    keepDefaultedFields(kova('Instance'), old, other);
    assert.deepEqual(other.spec, { image: 'x' }, 'other kinds untouched');
  });

  test('a VolumeSnapshot\'s spec is immutable', () => {
    const snap = (volume: string): KObject => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'VolumeSnapshot', metadata: { name: 's', namespace: 'demo' }, spec: { source: { volume } } });
    assert.deepEqual(upd('VolumeSnapshot', snap('a'), snap('a')), []);
    assert.deepEqual(upd('VolumeSnapshot', snap('a'), snap('b')), [{ reason: 'FieldValueInvalid', field: 'spec.source.volume', message: 'Invalid value: "b": field is immutable' }]);
  });

  test('a VolumeType\'s backend, sharedPath and multiAttach (the files\' format) are immutable; expansion is not', () => {
    const vt = (spec: Record<string, unknown>): KObject => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'VolumeType', metadata: { name: 'vt' }, spec });
    const old = vt({ backend: 'shared', sharedPath: '/srv/a', allowVolumeExpansion: true, multiAttach: false });
    assert.deepEqual(upd('VolumeType', old, vt({ backend: 'shared', sharedPath: '/srv/a', allowVolumeExpansion: false, multiAttach: false })), []);
    assert.deepEqual(upd('VolumeType', old, vt({ backend: 'shared', sharedPath: '/srv/a' })), [], 'absent is false');
    assert.deepEqual(upd('VolumeType', old, vt({ backend: 'shared', sharedPath: '/srv/a', multiAttach: true })), [
      { reason: 'FieldValueInvalid', field: 'spec.multiAttach', message: 'Invalid value: true: field is immutable' },
    ]);
    assert.deepEqual(fields(upd('VolumeType', vt({ backend: 'local', multiAttach: true }), vt({ backend: 'local', multiAttach: false }))), ['spec.multiAttach']);
    assert.deepEqual(upd('VolumeType', old, vt({ backend: 'shared', sharedPath: '/srv/b' })), [
      { reason: 'FieldValueInvalid', field: 'spec.sharedPath', message: 'Invalid value: "/srv/b": field is immutable' },
    ]);
    assert.deepEqual(fields(upd('VolumeType', old, vt({ backend: 'local' }))), ['spec.backend', 'spec.sharedPath']);
  });

  test('other kinds have no update rules here', () => {
    assert.deepEqual(validateUpdate(kova('Instance'), instance({ image: 'a' }), instance({ image: 'b' })), []);
  });
});
