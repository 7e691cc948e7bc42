import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  ProtobufDecodeError,
  ProtobufUnsupportedError,
  decodeK8sProtobuf,
  isK8sProtobufContentType,
} from './protobuf.js';
import { KUBECTL, startKubectlCapture } from '../testing/kubectl-capture.js';
import type { KubectlCapture } from '../testing/kubectl-capture.js';

const run = promisify(execFile);

// ---------------------------------------------------------------------------------------------
// A tiny protobuf encoder for hand-built test messages.

type Part = Buffer;

function varint(n: bigint | number): Buffer {
  let v = BigInt.asUintN(64, BigInt(n));
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) b |= 0x80;
    out.push(b);
  } while (v !== 0n);
  return Buffer.from(out);
}
const key = (field: number, wire: number) => varint((field << 3) | wire);
const vint = (field: number, n: bigint | number): Part => Buffer.concat([key(field, 0), varint(n)]);
const len = (field: number, payload: Buffer | string): Part => {
  const b = typeof payload === 'string' ? Buffer.from(payload) : payload;
  return Buffer.concat([key(field, 2), varint(b.length), b]);
};
const msg = (field: number, ...parts: Part[]): Part => len(field, Buffer.concat(parts));
const fixed64 = (field: number): Part => Buffer.concat([key(field, 1), Buffer.alloc(8, 0xee)]);
const fixed32 = (field: number): Part => Buffer.concat([key(field, 5), Buffer.alloc(4, 0xee)]);
const group = (field: number, ...parts: Part[]): Part => Buffer.concat([key(field, 3), ...parts, key(field, 4)]);
const entry = (field: number, k: string, v: Buffer | string): Part => msg(field, len(1, k), len(2, v));

function envelope(apiVersion: string, kind: string, raw: Buffer, ...extra: Part[]): Buffer {
  return Buffer.concat([
    Buffer.from('k8s\0', 'latin1'),
    msg(1, len(1, apiVersion), len(2, kind)),
    len(2, raw),
    ...extra,
  ]);
}

const JAN_1_2026 = 1767225600; // 2026-01-01T00:00:00Z

// ---------------------------------------------------------------------------------------------

describe('decodeK8sProtobuf: hand-built messages', () => {
  it('decodes ObjectMeta: maps, ownerReferences, finalizers, timestamps, int64s', () => {
    const meta = Buffer.concat([
      len(1, 'web'),
      len(2, ''),
      len(3, 'prod'),
      len(5, '1234-uid'),
      len(6, '42'),
      vint(7, 3),
      msg(8, vint(1, JAN_1_2026), vint(2, 5)),
      msg(9, vint(1, JAN_1_2026 + 61)),
      vint(10, 0),
      entry(11, 'app', 'web'),
      entry(11, 'tier', 'front'),
      entry(12, 'note', 'hello'),
      msg(13, len(1, 'Deployment'), len(3, 'web'), len(4, 'owner-uid'), len(5, 'apps/v1'), vint(6, 1), vint(7, 0)),
      msg(13, len(1, 'Thing'), len(3, 'other'), len(4, 'u2'), len(5, 'x.dev/v1')),
      len(14, 'kova.dev/a'),
      len(14, 'kova.dev/b'),
      msg(17, len(1, 'kubectl'), len(2, 'Update'), len(3, 'v1'), msg(4, vint(1, JAN_1_2026)), len(6, 'FieldsV1'),
        msg(7, len(1, '{"f:data":{}}'))),
    ]);
    const raw = Buffer.concat([msg(1, meta), entry(2, 'k', 'v')]);
    const { apiVersion, kind, object } = decodeK8sProtobuf(envelope('v1', 'ConfigMap', raw));
    assert.equal(apiVersion, 'v1');
    assert.equal(kind, 'ConfigMap');
    assert.deepEqual(object, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: 'web',
        namespace: 'prod',
        uid: '1234-uid',
        resourceVersion: '42',
        generation: 3,
        creationTimestamp: '2026-01-01T00:00:00Z',
        deletionTimestamp: '2026-01-01T00:01:01Z',
        deletionGracePeriodSeconds: 0,
        labels: { app: 'web', tier: 'front' },
        annotations: { note: 'hello' },
        ownerReferences: [
          { kind: 'Deployment', name: 'web', uid: 'owner-uid', apiVersion: 'apps/v1', controller: true, blockOwnerDeletion: false },
          { kind: 'Thing', name: 'other', uid: 'u2', apiVersion: 'x.dev/v1' },
        ],
        finalizers: ['kova.dev/a', 'kova.dev/b'],
        managedFields: [
          { manager: 'kubectl', operation: 'Update', apiVersion: 'v1', time: '2026-01-01T00:00:00Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:data': {} } },
        ],
      },
      data: { k: 'v' },
    });
  });

  it('omits zero values the way Go JSON omitempty does, including a zero creationTimestamp', () => {
    const meta = Buffer.concat([
      len(1, 'demo'), len(2, ''), len(3, ''), len(4, ''), len(5, ''), len(6, ''), vint(7, 0),
      msg(8), // zero Time, as Go writes it
      msg(8, vint(1, 0), vint(2, 0)),
    ]);
    const raw = Buffer.concat([msg(1, meta), msg(2), msg(3, len(1, ''))]);
    const { object } = decodeK8sProtobuf(envelope('v1', 'Namespace', raw));
    assert.deepEqual(object, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo' }, spec: {}, status: {} });
  });

  it('decodes Namespace spec.finalizers and status.phase', () => {
    const raw = Buffer.concat([msg(1, len(1, 'n')), msg(2, len(1, 'kubernetes'), len(1, 'x/y')), msg(3, len(1, 'Terminating'))]);
    const { object } = decodeK8sProtobuf(envelope('v1', 'Namespace', raw));
    assert.deepEqual(object['spec'], { finalizers: ['kubernetes', 'x/y'] });
    assert.deepEqual(object['status'], { phase: 'Terminating' });
  });

  it('decodes ConfigMap binaryData and immutable, Secret data/stringData/type/immutable', () => {
    const bin = Buffer.from([0, 1, 2, 0xff, 0xfe]);
    const cm = decodeK8sProtobuf(envelope('v1', 'ConfigMap',
      Buffer.concat([msg(1, len(1, 'c')), entry(3, 'blob', bin), entry(3, 'empty', ''), vint(4, 0)]))).object;
    assert.deepEqual(cm, {
      apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' },
      binaryData: { blob: bin.toString('base64'), empty: '' },
      immutable: false, // *bool: present on the wire means set
    });

    const sec = decodeK8sProtobuf(envelope('v1', 'Secret', Buffer.concat([
      msg(1, len(1, 's'), len(3, 'ns')),
      entry(2, 'pw', 'hunter2'),
      entry(2, 'raw', bin),
      len(3, 'kubernetes.io/basic-auth'),
      entry(4, 'user', 'admin'),
      vint(5, 1),
    ]))).object;
    assert.deepEqual(sec, {
      apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'ns' },
      data: { pw: Buffer.from('hunter2').toString('base64'), raw: bin.toString('base64') },
      type: 'kubernetes.io/basic-auth',
      stringData: { user: 'admin' },
      immutable: true,
    });
  });

  it('decodes a coordination.k8s.io/v1 Lease with MicroTime and int32 (zero and negative)', () => {
    const raw = Buffer.concat([
      msg(1, len(1, 'node-1'), len(3, 'kube-node-lease')),
      msg(2,
        len(1, 'node-1'),
        vint(2, 40),
        msg(3, vint(1, JAN_1_2026), vint(2, 123_456_789)),
        msg(4, vint(1, JAN_1_2026 + 10)),
        vint(5, 0)),
    ]);
    const { apiVersion, kind, object } = decodeK8sProtobuf(envelope('coordination.k8s.io/v1', 'Lease', raw));
    assert.equal(apiVersion, 'coordination.k8s.io/v1');
    assert.equal(kind, 'Lease');
    assert.deepEqual(object, {
      apiVersion: 'coordination.k8s.io/v1', kind: 'Lease',
      metadata: { name: 'node-1', namespace: 'kube-node-lease' },
      spec: {
        holderIdentity: 'node-1',
        leaseDurationSeconds: 40,
        acquireTime: '2026-01-01T00:00:00.123456Z',
        renewTime: '2026-01-01T00:00:10.000000Z',
        leaseTransitions: 0,
      },
    });
    // int32 -1 is sign-extended to a 10-byte varint on the wire.
    const neg = decodeK8sProtobuf(envelope('coordination.k8s.io/v1', 'Lease', msg(2, vint(2, -1)))).object;
    assert.deepEqual(neg['spec'], { leaseDurationSeconds: -1 });
  });

  it('decodes a v1 Event', () => {
    const raw = Buffer.concat([
      msg(1, len(1, 'web.17'), len(3, 'default')),
      msg(2, len(1, 'Instance'), len(2, 'default'), len(3, 'web'), len(4, 'uid-1'), len(5, 'kova.dev/v1alpha1'), len(6, '7'), len(7, 'spec')),
      len(3, 'Started'),
      len(4, 'instance started'),
      msg(5, len(1, 'node-agent'), len(2, 'host-a')),
      msg(6, vint(1, JAN_1_2026)),
      msg(7, vint(1, JAN_1_2026 + 3600)),
      vint(8, 2),
      len(9, 'Normal'),
      msg(10), // zero eventTime
    ]);
    const { object } = decodeK8sProtobuf(envelope('v1', 'Event', raw));
    assert.deepEqual(object, {
      apiVersion: 'v1', kind: 'Event',
      metadata: { name: 'web.17', namespace: 'default' },
      involvedObject: { kind: 'Instance', namespace: 'default', name: 'web', uid: 'uid-1', apiVersion: 'kova.dev/v1alpha1', resourceVersion: '7', fieldPath: 'spec' },
      reason: 'Started',
      message: 'instance started',
      source: { component: 'node-agent', host: 'host-a' },
      firstTimestamp: '2026-01-01T00:00:00Z',
      lastTimestamp: '2026-01-01T01:00:00Z',
      count: 2,
      type: 'Normal',
    });
  });

  it('skips unknown fields of every wire type, in the envelope and in nested messages', () => {
    const meta = Buffer.concat([
      vint(99, 123456789012345n), fixed64(98), fixed32(97), len(96, 'junk'), group(95, vint(1, 1), group(2, len(3, 'x'))),
      len(1, 'demo'),
      len(15, 'unknown-string'), // unassigned ObjectMeta field
    ]);
    const raw = Buffer.concat([fixed32(50), msg(1, meta), fixed64(51), entry(2, 'a', 'b'), len(200, 'zzz')]);
    const body = envelope('v1', 'ConfigMap', raw, len(4, ''), vint(9, 5), fixed64(10), fixed32(11), len(12, 'x'));
    const { object } = decodeK8sProtobuf(body);
    assert.deepEqual(object, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'demo' }, data: { a: 'b' } });
  });

  it('treats a known field with the wrong wire type as unknown', () => {
    const raw = Buffer.concat([msg(1, vint(1, 7), len(1, 'ok')), vint(2, 1)]);
    const { object } = decodeK8sProtobuf(envelope('v1', 'ConfigMap', raw));
    assert.deepEqual(object, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ok' } });
  });

  it('rejects unsupported kinds with a 415-style error naming the supported ones', () => {
    const body = envelope('apps/v1', 'Deployment', msg(1, len(1, 'd')));
    assert.throws(() => decodeK8sProtobuf(body), (e: unknown) => {
      assert.ok(e instanceof ProtobufUnsupportedError);
      assert.equal(e.statusCode, 415);
      assert.match(e.message, /^protobuf is supported only for .*v1 Namespace.*coordination\.k8s\.io\/v1 Lease.*apps\/v1 Deployment; send JSON$/);
      return true;
    });
    assert.throws(() => decodeK8sProtobuf(envelope('v1', 'Secret', Buffer.alloc(0), len(3, 'gzip'))), ProtobufUnsupportedError);
  });

  it('rejects malformed bodies with a 400-style error', () => {
    const good = envelope('v1', 'Namespace', msg(1, len(1, 'demo')));
    const cases: Buffer[] = [
      Buffer.from('{"kind":"Namespace"}'), // JSON, no magic
      Buffer.from('k8s'),
      good.subarray(0, good.length - 2), // truncated
      Buffer.concat([Buffer.from('k8s\0', 'latin1'), Buffer.alloc(11, 0xff)]), // overlong varint
      Buffer.concat([Buffer.from('k8s\0', 'latin1'), key(1, 7)]), // bad wire type
      Buffer.concat([Buffer.from('k8s\0', 'latin1'), key(1, 3)]), // unterminated group
      envelope('v1', 'Namespace', msg(1, len(1, Buffer.from([0xc3, 0x28])))), // invalid UTF-8
    ];
    for (const body of cases) {
      assert.throws(() => decodeK8sProtobuf(body), (e: unknown) => e instanceof ProtobufDecodeError && e.statusCode === 400,
        body.toString('hex'));
    }
  });

  it('recognises the protobuf content type', () => {
    assert.equal(isK8sProtobufContentType('application/vnd.kubernetes.protobuf'), true);
    assert.equal(isK8sProtobufContentType('application/vnd.kubernetes.protobuf; charset=utf-8'), true);
    assert.equal(isK8sProtobufContentType('application/json'), false);
    assert.equal(isK8sProtobufContentType('application/vnd.kubernetes.protobuf;stream=watch'), true);
    assert.equal(isK8sProtobufContentType(undefined), false);
  });
});

// ---------------------------------------------------------------------------------------------
// Real bodies from the real kubectl, captured by a throwaway HTTP server.

describe('decodeK8sProtobuf: bodies sent by kubectl', { skip: !existsSync(KUBECTL) && `${KUBECTL} not installed` }, () => {
  let capture: KubectlCapture;
  let dir = '';
  const kubectl = (args: string[]) => capture.kubectl(args);

  before(async () => {
    capture = await startKubectlCapture([
      { name: 'namespaces', kind: 'Namespace', namespaced: false },
      { name: 'secrets', kind: 'Secret', namespaced: true },
      { name: 'configmaps', kind: 'ConfigMap', namespaced: true },
    ]);
    dir = capture.dir;
  });

  after(async () => {
    await capture?.stop();
  });

  it('kubectl create namespace demo', async () => {
    const { stdout, post } = await kubectl(['create', 'namespace', 'demo']);
    assert.match(post.url, /^\/api\/v1\/namespaces\?/);
    const d = decodeK8sProtobuf(post.body);
    assert.equal(d.apiVersion, 'v1');
    assert.equal(d.kind, 'Namespace');
    assert.deepEqual(d.object, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo' }, spec: {}, status: {} });
    assert.equal(stdout.trim(), 'namespace/demo created');
  });

  it('kubectl create namespace --dry-run=server', async () => {
    const { stdout, post } = await kubectl(['create', 'namespace', 'dry', '--dry-run=server']);
    assert.match(post.url, /[?&]dryRun=All(&|$)/);
    assert.deepEqual(decodeK8sProtobuf(post.body).object['metadata'], { name: 'dry' });
    assert.equal(stdout.trim(), 'namespace/dry created (server dry run)');
  });

  it('kubectl create configmap --from-literal', async () => {
    const { stdout, post } = await kubectl(['create', 'configmap', 'cm1', '--from-literal=a=1', '--from-literal=b=two', '-n', 'x']);
    assert.match(post.url, /^\/api\/v1\/namespaces\/x\/configmaps\?/);
    const d = decodeK8sProtobuf(post.body);
    assert.equal(d.kind, 'ConfigMap');
    assert.deepEqual(d.object, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm1', namespace: 'x' }, data: { a: '1', b: 'two' } });
    assert.equal(stdout.trim(), 'configmap/cm1 created');
  });

  it('kubectl create configmap --from-file with binary content → binaryData', async () => {
    const bin = Buffer.from([0x00, 0xff, 0xfe, 0x80, 0x01]);
    await writeFile(join(dir, 'blob.bin'), bin);
    await writeFile(join(dir, 'text.txt'), 'héllo\n');
    const { post } = await kubectl(['create', 'configmap', 'cm2', `--from-file=${join(dir, 'blob.bin')}`,
      `--from-file=${join(dir, 'text.txt')}`, '-n', 'x', '--dry-run=server']);
    assert.match(post.url, /[?&]dryRun=All(&|$)/);
    const { object } = decodeK8sProtobuf(post.body);
    assert.deepEqual(object['data'], { 'text.txt': 'héllo\n' });
    assert.deepEqual(object['binaryData'], { 'blob.bin': bin.toString('base64') });
  });

  it('kubectl create secret generic --from-literal', async () => {
    const { stdout, post } = await kubectl(['create', 'secret', 'generic', 's1', '--from-literal=pw=hunter2', '-n', 'x']);
    assert.match(post.url, /^\/api\/v1\/namespaces\/x\/secrets\?/);
    const d = decodeK8sProtobuf(post.body);
    assert.equal(d.kind, 'Secret');
    // kubectl leaves type empty (the server defaults it to Opaque), exactly as its JSON would.
    assert.deepEqual(d.object, {
      apiVersion: 'v1', kind: 'Secret', metadata: { name: 's1', namespace: 'x' },
      data: { pw: Buffer.from('hunter2').toString('base64') },
    });
    assert.equal(stdout.trim(), 'secret/s1 created');
  });

  it('kubectl create secret generic --type=Opaque --dry-run=server', async () => {
    const { post } = await kubectl(['create', 'secret', 'generic', 's2', '--type=Opaque', '--from-literal=pw=hunter2', '-n', 'x', '--dry-run=server']);
    assert.match(post.url, /[?&]dryRun=All(&|$)/);
    const { object } = decodeK8sProtobuf(post.body);
    assert.equal(object['type'], 'Opaque');
    assert.deepEqual(object['data'], { pw: Buffer.from('hunter2').toString('base64') });
  });

  it('kubectl create secret docker-registry', async () => {
    const { post } = await kubectl(['create', 'secret', 'docker-registry', 'reg', '--docker-server=registry.example',
      '--docker-username=u', '--docker-password=p', '-n', 'x']);
    const { object } = decodeK8sProtobuf(post.body);
    assert.equal(object['type'], 'kubernetes.io/dockerconfigjson');
    assert.deepEqual(object['metadata'], { name: 'reg', namespace: 'x' });
    const data = object['data'] as Record<string, string>;
    const cfg = JSON.parse(Buffer.from(data['.dockerconfigjson']!, 'base64').toString('utf8'));
    assert.equal(cfg.auths['registry.example'].username, 'u');
    assert.equal(cfg.auths['registry.example'].password, 'p');
    assert.equal(cfg.auths['registry.example'].auth, Buffer.from('u:p').toString('base64'));
  });

  it('kubectl create secret tls', async (t) => {
    const crt = join(dir, 'tls.crt');
    const keyFile = join(dir, 'tls.key');
    try {
      await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-keyout', keyFile, '-out', crt, '-days', '1', '-subj', '/CN=kova-test']);
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') return t.skip('openssl not installed');
      throw e;
    }
    const { post } = await kubectl(['create', 'secret', 'tls', 'tls1', `--cert=${crt}`, `--key=${keyFile}`, '-n', 'x']);
    const { object } = decodeK8sProtobuf(post.body);
    assert.equal(object['type'], 'kubernetes.io/tls');
    const data = object['data'] as Record<string, string>;
    assert.deepEqual(Object.keys(data).sort(), ['tls.crt', 'tls.key']);
    assert.match(Buffer.from(data['tls.crt']!, 'base64').toString('utf8'), /^-----BEGIN CERTIFICATE-----/);
    assert.match(Buffer.from(data['tls.key']!, 'base64').toString('utf8'), /-----BEGIN PRIVATE KEY-----/);
  });

  it('kubectl create --save-config: annotations map, zero creationTimestamp omitted', async () => {
    // --save-config adds the last-applied annotation to the typed object.
    const { post } = await kubectl(['create', 'configmap', 'cm3', '--from-literal=k=v', '-n', 'x', '--save-config']);
    const meta = decodeK8sProtobuf(post.body).object['metadata'] as Record<string, unknown>;
    const ann = meta['annotations'] as Record<string, string>;
    const lastApplied = JSON.parse(ann['kubectl.kubernetes.io/last-applied-configuration']!);
    assert.equal(lastApplied.kind, 'ConfigMap');
    assert.deepEqual(lastApplied.data, { k: 'v' });
    assert.equal(meta['creationTimestamp'], undefined);
  });
});
