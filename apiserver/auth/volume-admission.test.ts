// Volume admission and the volume kinds' update rules through the real API server (HTTP) on a
// real etcd: the default VolumeType (POST, server-side apply, from a snapshot or clone), a
// Volume that cannot shrink or grow past its type, immutable fields, and single-attach volumes
// refused for a second instance by create, update, merge and JSON patch and apply, with the
// exact 422 a client gets and nothing stored.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { KObject } from '../../api/types.js';
import { waitFor } from '../../testing/etcd.js';
import { jsonRequest, startTestResourceStore } from '../../testing/resource-store.js';
import type { JsonReply, TestResourceStore } from '../../testing/resource-store.js';
import { ApiServer } from '../server.js';
import { defaultVolumeTypeName, VolumeAdmission } from './volume-admission.js';

let env: TestResourceStore;
let server: ApiServer;
let base: string;

type Reply = JsonReply;
const req = (method: string, path: string, body?: unknown, contentType?: string): Promise<Reply> => jsonRequest(base, method, path, body, contentType);

const API = '/apis/kova.dev/v1alpha1';
const ns = (plural: string, name = '') => `${API}/namespaces/demo/${plural}${name ? `/${name}` : ''}`;
const MERGE = 'application/merge-patch+json';
const JSON_PATCH = 'application/json-patch+json';
const APPLY = 'application/apply-patch+yaml';

const volumeType = (name: string, spec: Record<string, unknown>, isDefault = false) => ({
  apiVersion: 'kova.dev/v1alpha1', kind: 'VolumeType', metadata: { name, ...(isDefault ? { annotations: { 'kova.dev/is-default-volume-type': 'true' } } : {}) }, spec,
});
const volume = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'Volume', metadata: { name }, spec });
const instance = (name: string, volumes: unknown[] | undefined, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', metadata: { name }, spec: { flavor: 'm1.tiny', image: 'tiny', ...(volumes ? { volumes } : {}), ...extra },
});

async function created(path: string, body: unknown): Promise<Record<string, any>> {
  const r = await req('POST', path, body);
  assert.equal(r.code, 201, JSON.stringify(r.body));
  return r.body;
}

/** The 422 a write got: its message and causes. */
function refused(r: Reply, message: string, causes?: Array<{ field: string; message: string }>): void {
  assert.equal(r.code, 422, JSON.stringify(r.body));
  assert.equal(r.body.reason, 'Invalid');
  assert.equal(r.body.message, message);
  if (causes) assert.deepEqual(r.body.details.causes.map((c: { field: string; message: string }) => ({ field: c.field, message: c.message })), causes);
}

before(async () => {
  env = await startTestResourceStore(['demo']);
  await waitFor(async () => (await env.resources.namespaces.state('demo')) === 'active', 'namespace demo');
  server = new ApiServer({ registry: env.registry, resources: env.resources, admission: [new VolumeAdmission(env.resources)], log: () => undefined });
  base = `http://127.0.0.1:${(await server.listen('127.0.0.1', 0)).port}`;
});

after(async () => {
  await server?.close();
  await env?.stop();
});

describe('the default VolumeType (kube\'s GetDefaultClass, ported)', () => {
  const vt = (name: string, created: string, annotation?: string) => ({ metadata: { name, creationTimestamp: created, ...(annotation !== undefined ? { annotations: { 'kova.dev/is-default-volume-type': annotation } } : {}) } });
  // [case, classes, chosen] as upstream's setdefault admission tests: no default, one, several
  // (newest wins), equal times (the smaller name wins), and annotations that do not count.
  const T1 = '2026-01-01T00:00:00Z';
  const T2 = '2026-01-02T00:00:00Z';
  const cases: Array<[string, ReturnType<typeof vt>[], string | undefined]> = [
    ['no VolumeTypes', [], undefined],
    ['none is default', [vt('a', T1), vt('b', T2, 'false')], undefined],
    ['only the exact value "true" counts', [vt('a', T1, 'TRUE'), vt('b', T1, ''), vt('c', T1, 'yes')], undefined],
    ['one default', [vt('a', T1), vt('b', T1, 'true'), vt('c', T2)], 'b'],
    ['two defaults: the newest', [vt('old', T1, 'true'), vt('new', T2, 'true')], 'new'],
    ['two defaults, listed newest first', [vt('new', T2, 'true'), vt('old', T1, 'true')], 'new'],
    ['two defaults created together: the smaller name', [vt('zeta', T1, 'true'), vt('alpha', T1, 'true')], 'alpha'],
    ['three defaults', [vt('b', T1, 'true'), vt('c', T2, 'true'), vt('a', T2, 'true')], 'a'],
  ];
  for (const [what, types, want] of cases) test(what, () => assert.equal(defaultVolumeTypeName(types), want));
});

describe('volume admission through the API server (real etcd)', () => {
  test('without any default VolumeType a volume stays untyped; a named one that does not exist yet is kept', async () => {
    assert.equal((await created(ns('volumes'), volume('untyped', { size: '1Gi' }))).spec.volumeType, undefined);
    assert.equal((await created(ns('volumes'), volume('ahead', { size: '1Gi', volumeType: 'not-yet' }))).spec.volumeType, 'not-yet');
  });

  test('a volume without a type gets the default one, by POST and by server-side apply', async () => {
    await created(`${API}/volumetypes`, volumeType('local', { backend: 'local', allowVolumeExpansion: false }, true));
    await created(`${API}/volumetypes`, volumeType('nfs', { backend: 'shared', sharedPath: '/srv/kova', multiAttach: true }));
    assert.equal((await created(ns('volumes'), volume('data', { size: '2Gi' }))).spec.volumeType, 'local');
    assert.equal((await created(ns('volumes'), volume('files', { size: '1Gi', volumeType: 'nfs' }))).spec.volumeType, 'nfs', 'a named type is kept');
    const applied = await req('PATCH', `${ns('volumes', 'applied')}?fieldManager=gitops`, volume('applied', { size: '1Gi' }), APPLY);
    assert.equal(applied.code, 201, JSON.stringify(applied.body));
    assert.equal(applied.body.spec.volumeType, 'local');
    // The applier does not own the defaulted field: applying the same manifest again keeps it.
    const again = await req('PATCH', `${ns('volumes', 'applied')}?fieldManager=gitops`, volume('applied', { size: '1Gi' }), APPLY);
    assert.equal(again.code, 200, JSON.stringify(again.body));
    assert.equal(again.body.spec.volumeType, 'local');
  });

  test('a restored snapshot or a clone takes its source\'s type, as Cinder does', async () => {
    const snap = await created(ns('volumesnapshots'), { apiVersion: 'kova.dev/v1alpha1', kind: 'VolumeSnapshot', metadata: { name: 'snap' }, spec: { source: { volume: 'files' } } });
    const st = await req('PUT', `${ns('volumesnapshots', 'snap')}/status`, { ...snap, status: { volumeType: 'nfs', hostName: 'host-a' } });
    assert.equal(st.code, 200, JSON.stringify(st.body));
    assert.equal((await created(ns('volumes'), volume('restored', { size: '1Gi', source: { snapshot: 'snap' } }))).spec.volumeType, 'nfs');
    assert.equal((await created(ns('volumes'), volume('clone', { size: '1Gi', source: { volume: 'files' } }))).spec.volumeType, 'nfs');
    assert.equal((await created(ns('volumes'), volume('from-missing', { size: '1Gi', source: { snapshot: 'nope' } }))).spec.volumeType, 'local', 'the default when the source is not there');
  });

  test('kubectl replace of the original manifest keeps the defaulted type; changing it or the source is a 422', async () => {
    const cur = (await req('GET', ns('volumes', 'data'))).body;
    const put = await req('PUT', ns('volumes', 'data'), { ...volume('data', { size: '2Gi' }), metadata: { name: 'data', resourceVersion: cur.metadata.resourceVersion } });
    assert.equal(put.code, 200, JSON.stringify(put.body));
    assert.equal(put.body.spec.volumeType, 'local');
    assert.equal(put.body.metadata.resourceVersion, cur.metadata.resourceVersion, 'nothing changed, nothing written');
    refused(await req('PATCH', ns('volumes', 'data'), { spec: { volumeType: 'nfs' } }, MERGE),
      'Volume.kova.dev "data" is invalid: spec.volumeType: Invalid value: "nfs": field is immutable');
    refused(await req('PATCH', ns('volumes', 'untyped'), { spec: { volumeType: 'local' } }, MERGE),
      'Volume.kova.dev "untyped" is invalid: spec.volumeType: Invalid value: "local": field is immutable');
    refused(await req('PATCH', ns('volumes', 'clone'), [{ op: 'replace', path: '/spec/source', value: { image: 'tiny' } }], JSON_PATCH),
      'Volume.kova.dev "clone" is invalid: spec.source: Invalid value: "object": field is immutable');
  });

  test('a volume never shrinks, and grows only when its VolumeType allows expansion', async () => {
    const shrink = 'Volume.kova.dev "files" is invalid: spec.size: Forbidden: a volume cannot shrink (from 1Gi to 512Mi)';
    refused(await req('PATCH', ns('volumes', 'files'), { spec: { size: '512Mi' } }, MERGE), shrink);
    refused(await req('PATCH', ns('volumes', 'files'), [{ op: 'replace', path: '/spec/size', value: 536870912 }], JSON_PATCH),
      'Volume.kova.dev "files" is invalid: spec.size: Forbidden: a volume cannot shrink (from 1Gi to 512Mi)');
    refused(await req('PATCH', `${ns('volumes', 'files')}?fieldManager=gitops&force=true`, volume('files', { size: '512Mi', volumeType: 'nfs' }), APPLY), shrink);
    const grown = await req('PATCH', ns('volumes', 'files'), { spec: { size: '3Gi' } }, MERGE);
    assert.equal(grown.code, 200, JSON.stringify(grown.body));
    assert.equal(grown.body.spec.size, '3Gi');

    const fixed = 'Volume.kova.dev "data" is invalid: spec.size: Forbidden: its VolumeType "local" does not allow expansion (allowVolumeExpansion is false): the volume stays at 2Gi';
    refused(await req('PATCH', ns('volumes', 'data'), { spec: { size: '4Gi' } }, MERGE), fixed);
    const cur = (await req('GET', ns('volumes', 'data'))).body;
    refused(await req('PUT', ns('volumes', 'data'), { ...cur, spec: { ...cur.spec, size: '4Gi' } }), fixed);
    refused(await req('PATCH', `${ns('volumes', 'data')}?fieldManager=gitops&force=true`, volume('data', { size: '4Gi' }), APPLY), fixed);
    assert.equal((await req('GET', ns('volumes', 'data'))).body.metadata.resourceVersion, cur.metadata.resourceVersion, 'nothing stored');
    // Once the cloud admin allows it, the same patch passes.
    assert.equal((await req('PATCH', `${API}/volumetypes/local`, { spec: { allowVolumeExpansion: true } }, MERGE)).code, 200);
    assert.equal((await req('PATCH', ns('volumes', 'data'), { spec: { size: '4Gi' } }, MERGE)).code, 200);
    assert.equal((await req('PATCH', `${API}/volumetypes/local`, { spec: { allowVolumeExpansion: false } }, MERGE)).code, 200);
  });

  test('VolumeType and VolumeSnapshot rules: sharedPath with shared only, backend and snapshot source immutable', async () => {
    refused(await req('POST', `${API}/volumetypes`, volumeType('bad', { backend: 'shared' })),
      'VolumeType.kova.dev "bad" is invalid: spec.sharedPath: Required value: required when spec.backend is shared');
    refused(await req('PATCH', `${API}/volumetypes/nfs`, { spec: { sharedPath: '/srv/other' } }, MERGE),
      'VolumeType.kova.dev "nfs" is invalid: spec.sharedPath: Invalid value: "/srv/other": field is immutable');
    refused(await req('PATCH', ns('volumesnapshots', 'snap'), { spec: { source: { volume: 'data' } } }, MERGE),
      'VolumeSnapshot.kova.dev "snap" is invalid: spec.source.volume: Invalid value: "data": field is immutable');
  });

  test('an instance boots from an image or a volume with bootOrder 1', async () => {
    refused(await req('POST', ns('instances'), instance('no-boot', [{ volume: 'data' }], { image: undefined })),
      'Instance.kova.dev "no-boot" is invalid: spec.image: Required value: an instance boots from an image, or from a volume with bootOrder 1');
    refused(await req('POST', ns('instances'), instance('both', [{ volume: 'files', bootOrder: 1 }])),
      'Instance.kova.dev "both" is invalid: spec.volumes[0].bootOrder: Forbidden: the instance boots from spec.image (its root disk is boot device 1); bootOrder 1 is for an instance without an image, use 2 or more');
    await created(ns('instances'), instance('from-volume', [{ volume: 'restored', bootOrder: 1 }], { image: undefined }));
  });

  test('a single-attach volume used by one instance is refused for another, by every write verb', async () => {
    await created(ns('instances'), instance('web-1', [{ volume: 'data' }]));
    const msg = 'Instance.kova.dev "web-2" is invalid: spec.volumes[0].volume: Forbidden: volume "data" is attached to instance "web-1"; its VolumeType "local" does not allow multiAttach';
    refused(await req('POST', ns('instances'), instance('web-2', [{ volume: 'data' }])), msg);
    refused(await req('PATCH', `${ns('instances', 'web-2')}?fieldManager=gitops`, instance('web-2', [{ volume: 'data' }]), APPLY), msg);
    assert.equal((await req('GET', ns('instances', 'web-2'))).code, 404, 'nothing created');
    await created(ns('instances'), instance('web-2', undefined));
    refused(await req('PATCH', ns('instances', 'web-2'), { spec: { volumes: [{ volume: 'data' }] } }, MERGE), msg);
    refused(await req('PATCH', ns('instances', 'web-2'), [{ op: 'add', path: '/spec/volumes', value: [{ volume: 'data' }] }], JSON_PATCH), msg);
    const cur = (await req('GET', ns('instances', 'web-2'))).body;
    refused(await req('PUT', ns('instances', 'web-2'), { ...cur, spec: { ...cur.spec, volumes: [{ volume: 'data' }] } }), msg);
    refused(await req('PATCH', `${ns('instances', 'web-2')}?fieldManager=gitops&force=true`, instance('web-2', [{ volume: 'data' }]), APPLY), msg);
    assert.equal((await req('GET', ns('instances', 'web-2'))).body.metadata.resourceVersion, cur.metadata.resourceVersion, 'nothing stored');
    // Its own volume again, another instance's shareable one, and an unrelated edit all pass.
    assert.equal((await req('PATCH', ns('instances', 'web-1'), { metadata: { labels: { tier: 'web' } } }, MERGE)).code, 200);
    assert.equal((await req('PATCH', ns('instances', 'web-2'), { spec: { volumes: [{ volume: 'files' }] } }, MERGE)).code, 200);
    await created(ns('instances'), instance('web-3', [{ volume: 'files', readOnly: true }]));
  });

  test('several refused volumes are named together; a read-only attachment does not make a volume shareable', async () => {
    await created(ns('volumes'), volume('logs', { size: '1Gi' }));
    await created(ns('instances'), instance('db-1', [{ volume: 'logs', readOnly: true }]));
    refused(await req('POST', ns('instances'), instance('db-2', [{ volume: 'files' }, { volume: 'data' }, { volume: 'logs' }])),
      'Instance.kova.dev "db-2" is invalid: [spec.volumes[1].volume: Forbidden: volume "data" is attached to instance "web-1"; its VolumeType "local" does not allow multiAttach, ' +
      'spec.volumes[2].volume: Forbidden: volume "logs" is attached to instance "db-1"; its VolumeType "local" does not allow multiAttach]');
  });

  test('a volume the hosts report attached elsewhere (status.attachments) is refused too', async () => {
    const v = await created(ns('volumes'), volume('scratch', { size: '1Gi' }));
    const st = await req('PUT', `${ns('volumes', 'scratch')}/status`, { ...v, status: { phase: 'InUse', attachments: [{ instance: 'gone', host: 'host-a', state: 'Detaching' }] } });
    assert.equal(st.code, 200, JSON.stringify(st.body));
    refused(await req('POST', ns('instances'), instance('batch', [{ volume: 'scratch' }])),
      'Instance.kova.dev "batch" is invalid: spec.volumes[0].volume: Forbidden: volume "scratch" is attached to instance "gone"; its VolumeType "local" does not allow multiAttach');
    // Its own attachment is not a conflict.
    const now = (await req('GET', ns('volumes', 'scratch'))).body;
    const own = await req('PUT', `${ns('volumes', 'scratch')}/status`, { ...now, status: { phase: 'InUse', attachments: [{ instance: 'batch', host: 'host-a', state: 'Attached' }] } });
    assert.equal(own.code, 200, JSON.stringify(own.body));
    await created(ns('instances'), instance('batch', [{ volume: 'scratch' }]));
  });

  test('entries an instance already had are not judged again: unrelated edits never fail', async () => {
    // Both list "late" before it exists (GitOps order): nothing is attached yet, both pass.
    await created(ns('instances'), instance('early-1', [{ volume: 'late' }]));
    await created(ns('instances'), instance('early-2', [{ volume: 'late' }]));
    await created(ns('volumes'), volume('late', { size: '1Gi' }));
    const relabel = await req('PATCH', ns('instances', 'early-2'), { metadata: { labels: { edited: 'yes' } } }, MERGE);
    assert.equal(relabel.code, 200, JSON.stringify(relabel.body));
    const halt = await req('PATCH', `${ns('instances', 'early-2')}?fieldManager=gitops&force=true`, instance('early-2', [{ volume: 'late' }], { runStrategy: 'Halted' }), APPLY);
    assert.equal(halt.code, 200, JSON.stringify(halt.body));
    // A third instance adding it now is refused, naming the first that lists it.
    await created(ns('instances'), instance('early-3', undefined));
    refused(await req('PATCH', ns('instances', 'early-3'), { spec: { volumes: [{ volume: 'late' }] } }, MERGE),
      'Instance.kova.dev "early-3" is invalid: spec.volumes[0].volume: Forbidden: volume "late" is attached to instance "early-1"; its VolumeType "local" does not allow multiAttach');
  });

  test('malformed bodies reach validation (a 422 from the schema), never a 500 or a read of an odd key', async () => {
    const bodies: unknown[] = [
      volume('odd-1', { size: '1Gi', source: 'snap' }),
      volume('odd-2', { size: '1Gi', source: { snapshot: '../../secrets/demo/x' } }),
      volume('odd-3', { size: '1Gi', volumeType: null, source: { volume: 7 } }),
      { apiVersion: 'kova.dev/v1alpha1', kind: 'Volume', metadata: { name: 'odd-4' }, spec: 'big' },
      instance('odd-5', 'data' as unknown as unknown[]),
      instance('odd-6', [null, 7, { volume: { name: 'data' } }, { volume: 'Data/../x' }]),
    ];
    for (const b of bodies) {
      const path = (b as { kind: string }).kind === 'Volume' ? ns('volumes') : ns('instances');
      const r = await req('POST', path, b);
      assert.equal(r.code, 422, `${JSON.stringify(b)}: ${JSON.stringify(r.body)}`);
    }
  });

  test('status writes and other kinds are not judged here', async () => {
    const cur = (await req('GET', ns('instances', 'web-2'))).body as KObject;
    const r = await req('PUT', `${ns('instances', 'web-2')}/status`, { ...cur, status: { phase: 'Running' } });
    assert.equal(r.code, 200, JSON.stringify(r.body));
  });
});
