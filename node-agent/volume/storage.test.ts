// The agent's pure volume rules: who owns a volume, the phase its attachments make (Cinder's
// state machine: never Available while a guest holds the disk), the attachments it reports,
// and when an instance may attach it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Instance, Volume, VolumeType } from '../../api/kinds/index.js';
import { ANNOTATION_SELECTED_HOST } from '../../api/kinds/index.js';
import { attachmentPhase, attachmentsOf, resolveAttachment, volumeDisk, volumeFormat, volumeUses } from './storage.js';
import { volumeHost } from '../../api/kinds/index.js';

const UID = '0123abcd-4567-89ab-cdef-0123456789ab';

function vol(over: Partial<Volume['status']> = {}, meta: Partial<Volume['metadata']> = {}, spec: Partial<Volume['spec']> = {}): Volume {
  return {
    apiVersion: 'kova.dev/v1alpha1', kind: 'Volume',
    metadata: { name: 'data', namespace: 'p', uid: UID, ...meta },
    spec: { size: '1Gi', volumeType: 'local', ...spec },
    status: { phase: 'Available', hostName: 'h1', capacity: '1Gi', ...over },
  };
}

const types: Record<string, VolumeType> = {
  local: { apiVersion: 'kova.dev/v1alpha1', kind: 'VolumeType', metadata: { name: 'local' }, spec: { backend: 'local' } },
  shared: { apiVersion: 'kova.dev/v1alpha1', kind: 'VolumeType', metadata: { name: 'shared' }, spec: { backend: 'shared', sharedPath: '/srv/vols', multiAttach: true } },
  broken: { apiVersion: 'kova.dev/v1alpha1', kind: 'VolumeType', metadata: { name: 'broken' }, spec: { backend: 'shared' } },
};

function inst(name: string, host: string | undefined, wanted: boolean, reported?: NonNullable<Instance['status']>['volumes']): Instance {
  return {
    apiVersion: 'kova.dev/v1alpha1', kind: 'Instance',
    metadata: { name, namespace: 'p', uid: `uid-${name}` },
    spec: { image: 'tiny', ...(wanted ? { volumes: [{ volume: 'data' }] } : {}) },
    status: { ...(host ? { hostName: host } : {}), ...(reported ? { volumes: reported } : {}) },
  };
}

test('the owner is the host that stores the volume, else the one selected for it', () => {
  assert.equal(volumeHost(vol()), 'h1');
  assert.equal(volumeHost(vol({ hostName: undefined }, { annotations: { [ANNOTATION_SELECTED_HOST]: 'h2' } })), 'h2');
  assert.equal(volumeHost(vol({ hostName: 'h1' }, { annotations: { [ANNOTATION_SELECTED_HOST]: 'h2' } })), 'h1');
  assert.equal(volumeHost(vol({ hostName: undefined })), undefined);
});

test('attachment phase: in-between states win, a disk held by a guest is never Available', () => {
  const table: Array<[Parameters<typeof attachmentPhase>[0], string]> = [
    [[], 'Available'],
    [['Attached'], 'InUse'],
    [['Attached', 'Attached'], 'InUse'],
    [['Attaching'], 'Attaching'],
    [[undefined], 'Attaching'],
    [['Attached', 'Attaching'], 'Attaching'],
    [['Detaching'], 'Detaching'],
    [['Attaching', 'Detaching'], 'Detaching'],
    [['Attached', 'Detaching'], 'Detaching'],
  ];
  for (const [states, want] of table) assert.equal(attachmentPhase(states), want, JSON.stringify(states));
});

test('uses and attachments come from what instances want and what their hosts report', () => {
  const instances = [
    inst('b', 'h1', true, [{ volume: 'data', device: 'vdb', serial: UID.slice(0, 20), state: 'Attached' }]),
    inst('a', 'h1', false, [{ volume: 'data', device: 'vdc', serial: UID.slice(0, 20), state: 'Detaching' }]),
    inst('c', undefined, true),
    inst('d', 'h2', false),
  ];
  const uses = volumeUses(vol(), { instances: () => instances });
  assert.deepEqual(uses.map((u) => [u.instance.metadata.name, u.wanted, u.reported?.state]), [['b', true, 'Attached'], ['a', false, 'Detaching'], ['c', true, undefined]]);
  assert.deepEqual(attachmentsOf(uses), [
    { instance: 'a', device: 'vdc', serial: UID.slice(0, 20), host: 'h1', state: 'Detaching' },
    { instance: 'b', device: 'vdb', serial: UID.slice(0, 20), host: 'h1', state: 'Attached' },
  ]);
});

test('an instance attaches a volume only once it exists, is created, lives on its host and is free', () => {
  const storage = (v: Volume | undefined) => ({ volume: () => v, volumeType: (n: string) => types[n] });
  const at = (v: Volume | undefined, entry: { volume: string; readOnly?: boolean; bootOrder?: number } = { volume: 'data' }, host = 'h1') => resolveAttachment(storage(v), 'p', entry, host, 'me');
  const waits: Array<[Volume | undefined, RegExp, string?]> = [
    [undefined, /volume data not found/],
    [vol({}, { deletionTimestamp: '2026-01-01T00:00:00Z' }), /being deleted/],
    [vol({}, {}, { volumeType: undefined }), /has no VolumeType/],
    [vol({}, {}, { volumeType: 'gone' }), /VolumeType gone of volume data not found/],
    [vol({}, {}, { volumeType: 'broken' }), /without a usable sharedPath/],
    [vol({ phase: 'Creating' }), /is Creating, not created yet/],
    [vol({ phase: 'Pending', hostName: undefined }), /is Pending/],
    [vol({ hostName: 'h2' }), /stored on host h2, not on h1/],
    [vol({ phase: 'InUse', attachments: [{ instance: 'other', state: 'Attached' }] }), /attached to instance other, and VolumeType local does not allow multiAttach/],
  ];
  for (const [v, re] of waits) {
    const r = at(v);
    assert.ok('wait' in r && re.test(r.wait), `${JSON.stringify(v?.status)} → ${JSON.stringify(r)}`);
  }
  // Its own attachment is no conflict; a shared, multi-attach volume lives nowhere in particular.
  const own = at(vol({ phase: 'InUse', attachments: [{ instance: 'me', state: 'Attached' }] }));
  assert.deepEqual(own, { attach: { disk: { uid: UID, key: 'p/data', backend: { type: 'local' }, format: 'qcow2' }, serial: UID.slice(0, 20) } });
  const shared = at(vol({ phase: 'InUse', hostName: 'h9', attachments: [{ instance: 'other', state: 'Attached' }] }, {}, { volumeType: 'shared' }), { volume: 'data', readOnly: true, bootOrder: 1 });
  assert.deepEqual(shared, { attach: { disk: { uid: UID, key: 'p/data', backend: { type: 'shared', path: '/srv/vols' }, format: 'raw' }, serial: UID.slice(0, 20), readOnly: true, shareable: true, bootOrder: 1 } });
});

test('a multiAttach VolumeType stores raw files (libvirt shares no qcow2 file), any other qcow2', () => {
  const t = (spec: VolumeType['spec']): VolumeType => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'VolumeType', metadata: { name: 't' }, spec });
  const cases: Array<[VolumeType['spec'], 'qcow2' | 'raw']> = [
    [{ backend: 'local' }, 'qcow2'],
    [{ backend: 'local', multiAttach: false }, 'qcow2'],
    [{ backend: 'local', multiAttach: true }, 'raw'],
    [{ backend: 'shared', sharedPath: '/srv/vols' }, 'qcow2'],
    [{ backend: 'shared', sharedPath: '/srv/vols', multiAttach: true }, 'raw'],
  ];
  for (const [spec, want] of cases) {
    assert.equal(volumeFormat(t(spec)), want, JSON.stringify(spec));
    assert.equal(volumeDisk(vol(), t(spec), { type: 'local' }).format, want);
  }
  // Every attach of a shareable volume carries raw: what libvirt requires of <shareable/>.
  for (const name of Object.keys(types).filter((n) => n !== 'broken')) {
    const r = resolveAttachment({ volume: () => vol({}, {}, { volumeType: name }), volumeType: (n: string) => types[n] }, 'p', { volume: 'data' }, 'h1', 'me');
    assert.ok('attach' in r);
    assert.equal(r.attach.shareable === true, r.attach.disk.format === 'raw', name);
  }
});
