// The node agent's volume work against a real `kova up` (etcd, API server, no controllers: the
// test plays the scheduler by binding and by setting kova.dev/selected-host) with an in-process
// SimDriver: provisioning, attach before boot and hot plug, detach that waits for the guest,
// Cinder's phases, protection of a volume in use, extension offline and online, snapshots and
// restores that carry the data, and boot from a volume.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Instance, Volume, VolumeSnapshot } from '../../api/kinds/index.js';
import { ANNOTATION_SELECTED_HOST, VOLUME_SNAPSHOTS, VOLUMES, volumeSerial } from '../../api/kinds/index.js';
import { INSTANCES, KovaClient } from '../../client/client.js';
import { eventually, startKova } from '../../e2e/harness.js';
import type { Kova } from '../../e2e/harness.js';
import { NodeAgent } from '../agent.js';
import { domainName } from '../driver.js';
import type { VolumeDisk } from '../driver.js';
import { SimDriver } from '../sim-driver.js';
import { createReadySimImage } from '../sim-image.js';

const HOST = 'vol-agent-a';
const NS = 'vol-agent';
let kova: Kova;
let client: KovaClient;
let driver: SimDriver;
let agent: NodeAgent;
const stop = new AbortController();
let imageDir: string;

before(async () => {
  kova = await startKova(['--no-agents', '--no-controllers']);
  client = KovaClient.fromFile(kova.kubeconfig, { fieldManager: 'vol-agent-test' });
  driver = new SimDriver({ spawnMs: 5, stopMs: 5, rebootMs: 5 });
  agent = new NodeAgent({ client, hostName: HOST, driver, heartbeatS: 1, stopTimeoutMs: 500, startingAfterMs: 5, log: () => {} });
  await agent.start(stop.signal);
  await kova.k(['create', 'namespace', NS]);
  await apply({ apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: { name: 'vol.small' }, spec: { vcpus: 1, memory: '256Mi', disk: '1Gi' } });
  await apply({ apiVersion: 'kova.dev/v1alpha1', kind: 'VolumeType', metadata: { name: 'vt-local' }, spec: { backend: 'local', allowVolumeExpansion: true } });
  imageDir = await mkdtemp(join(tmpdir(), 'kova-vol-agent-'));
  await createReadySimImage(client, NS, 'tiny', imageDir);
});

after(async () => {
  stop.abort();
  await agent.done();
  client.close();
  await kova?.stop();
  if (imageDir) await rm(imageDir, { recursive: true, force: true });
});

function apply(obj: unknown): Promise<string> {
  return kova.k(['apply', '-f', '-'], { input: JSON.stringify(obj) });
}

/** A Volume this host owns (the scheduler's or volume controller's choice, made by the test). */
async function volume(name: string, size: string, source?: Record<string, string>, phases = ['Available']): Promise<Volume> {
  await apply({ apiVersion: 'kova.dev/v1alpha1', kind: 'Volume', metadata: { name, namespace: NS, annotations: { [ANNOTATION_SELECTED_HOST]: HOST } }, spec: { size, volumeType: 'vt-local', ...(source ? { source } : {}) } });
  return waitVolume(name, (v) => phases.includes(v.status?.phase ?? ''), phases.join(' or '));
}

async function waitVolume(name: string, ok: (v: Volume) => boolean, what = 'the expected state'): Promise<Volume> {
  return eventually(async () => {
    const v = await client.get<Volume>(VOLUMES, NS, name);
    return v && ok(v) ? v : undefined;
  }, 15_000, `volume ${name} reaches ${what}`).catch(async (e) => {
    throw new Error(`${(e as Error).message}; it is ${JSON.stringify((await client.get<Volume>(VOLUMES, NS, name))?.status)}`);
  });
}

async function instance(name: string, spec: Record<string, unknown>): Promise<Instance> {
  await apply({ apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', metadata: { name, namespace: NS }, spec: { flavor: 'vol.small', hostName: HOST, ...spec } });
  await client.bind(NS, name, HOST, { vcpus: 1, memory: '256Mi', disk: '1Gi' });
  return waitInstance(name, (i) => i.status?.phase === 'Running');
}

async function waitInstance(name: string, ok: (i: Instance) => boolean, what = 'the expected state'): Promise<Instance> {
  return eventually(async () => {
    const i = await client.get<Instance>(INSTANCES, NS, name);
    return i && ok(i) ? i : undefined;
  }, 15_000, `instance ${name} reaches ${what}`);
}

const disk = (v: Volume): VolumeDisk => ({ uid: v.metadata.uid!, key: `${NS}/${v.metadata.name}`, backend: { type: 'local' } });
const domOf = (i: Instance) => domainName(NS, i.metadata.name!, i.metadata.uid!);
const patch = (kind: string, name: string, p: unknown) => kova.k(['patch', kind, name, '-n', NS, '--type=merge', '-p', JSON.stringify(p)]);
const cond = (o: { status?: { conditions?: Array<{ type: string }> } }, type: string) => o.status?.conditions?.find((c) => c.type === type) as { status: string; reason?: string; message?: string } | undefined;

test('a volume is provisioned on its host, attached before the first boot, and reported InUse', async () => {
  const v = await volume('data1', '64Mi');
  assert.equal(v.status?.hostName, HOST);
  assert.equal(v.status?.capacity, '64Mi');
  assert.ok(v.metadata.finalizers?.includes('kova.dev/volume-protection'));
  assert.equal((await driver.volumeInfo(disk(v)))?.virtualBytes, 64 * 1024 * 1024);

  const i = await instance('vm1', { image: 'tiny', volumes: [{ volume: 'data1' }] });
  const attached = await waitInstance('vm1', (x) => x.status?.volumes?.[0]?.state === 'Attached', 'data1 attached');
  assert.equal(attached.status!.volumes![0]!.serial, volumeSerial(v.metadata.uid!));
  assert.equal(cond(attached, 'VolumesReady')?.status, 'True');
  assert.deepEqual((await driver.listVolumes(domOf(i))).map((a) => a.serial), [volumeSerial(v.metadata.uid!)]);
  const inUse = await waitVolume('data1', (x) => x.status?.phase === 'InUse', 'InUse');
  assert.deepEqual(inUse.status?.attachments?.map((a) => [a.instance, a.host, a.state]), [['vm1', HOST, 'Attached']]);
});

test('hot plug and unplug follow spec.volumes; the volume is Detaching until the guest lets go', async () => {
  const v = await volume('data2', '32Mi');
  const i = await instance('vm2', { image: 'tiny' });
  await patch('instance', 'vm2', { spec: { volumes: [{ volume: 'data2' }] } });
  await waitInstance('vm2', (x) => x.status?.volumes?.[0]?.state === 'Attached', 'data2 hot-plugged');
  await waitVolume('data2', (x) => x.status?.phase === 'InUse', 'InUse');

  // A guest that takes its time: the unplug is pending, and the volume says so.
  driver.setDetachDelay(1500);
  await patch('instance', 'vm2', { spec: { volumes: null } });
  const detaching = await waitVolume('data2', (x) => x.status?.phase === 'Detaching', 'Detaching');
  assert.equal(detaching.status?.attachments?.[0]?.state, 'Detaching');
  const available = await waitVolume('data2', (x) => x.status?.phase === 'Available', 'Available after the guest released it');
  assert.equal(available.status?.attachments, undefined);
  driver.setDetachDelay(0);
  assert.deepEqual(await driver.listVolumes(domOf(i)), []);
  const after = await waitInstance('vm2', (x) => !x.status?.volumes, 'no volumes in status');
  assert.equal(cond(after, 'VolumesReady')?.status, 'True');
  void v;
});

test('a volume in use is protected: its delete waits until no instance uses it', async () => {
  await volume('data3', '16Mi');
  await instance('vm3', { image: 'tiny', volumes: [{ volume: 'data3' }] });
  await waitVolume('data3', (x) => x.status?.phase === 'InUse', 'InUse');
  await kova.k(['delete', 'volume', 'data3', '-n', NS, '--wait=false']);
  const deleting = await waitVolume('data3', (x) => x.status?.phase === 'Deleting', 'Deleting');
  assert.equal(cond(deleting, 'Ready')?.reason, 'VolumeInUse');
  assert.match(cond(deleting, 'Ready')?.message ?? '', /vm3/);
  const still = await driver.volumeInfo(disk(deleting));
  assert.ok(still, 'the disk is kept while the volume is in use');
  // The instance goes (its domain with it); the volume's delete completes, and its disk is removed.
  await kova.k(['delete', 'instance', 'vm3', '-n', NS]);
  await eventually(async () => !(await client.get(VOLUMES, NS, 'data3')), 15_000, 'data3 deleted');
  assert.equal(await driver.volumeInfo(disk(deleting)), undefined);
});

test('deleting an instance keeps its volumes, which become Available', async () => {
  await volume('data4', '16Mi');
  await instance('vm4', { image: 'tiny', volumes: [{ volume: 'data4' }] });
  await waitVolume('data4', (x) => x.status?.phase === 'InUse', 'InUse');
  await kova.k(['delete', 'instance', 'vm4', '-n', NS]);
  const v = await waitVolume('data4', (x) => x.status?.phase === 'Available', 'Available');
  assert.ok(await driver.volumeInfo(disk(v)));
});

test('extend: offline when detached, online through the running domain when attached', async () => {
  await volume('data5', '16Mi');
  await patch('volume', 'data5', { spec: { size: '24Mi' } });
  await waitVolume('data5', (x) => x.status?.capacity === '24Mi' && x.status.phase === 'Available', '24Mi');
  await instance('vm5', { image: 'tiny', volumes: [{ volume: 'data5' }] });
  await waitVolume('data5', (x) => x.status?.phase === 'InUse', 'InUse');
  await patch('volume', 'data5', { spec: { size: '40Mi' } });
  const v = await waitVolume('data5', (x) => x.status?.capacity === '40Mi' && x.status.phase === 'InUse', '40Mi, still InUse');
  assert.equal((await driver.volumeInfo(disk(v)))?.virtualBytes, 40 * 1024 * 1024);
});

test('a snapshot of a volume in use carries its data at that time; a restore and a clone carry it too', async () => {
  const v = await volume('data6', '16Mi');
  await instance('vm6', { image: 'tiny', volumes: [{ volume: 'data6' }] });
  await waitVolume('data6', (x) => x.status?.phase === 'InUse', 'InUse');
  driver.simWrite(disk(v), 'pattern-A');
  await apply({ apiVersion: 'kova.dev/v1alpha1', kind: 'VolumeSnapshot', metadata: { name: 'snap6', namespace: NS }, spec: { source: { volume: 'data6' } } });
  const snap = await eventually(async () => {
    const s = await client.get<VolumeSnapshot>(VOLUME_SNAPSHOTS, NS, 'snap6');
    return s?.status?.readyToUse ? s : undefined;
  }, 15_000, 'snap6 ready');
  assert.equal(snap.status?.hostName, HOST);
  assert.equal(snap.status?.restoreSize, '16Mi');
  assert.equal(snap.status?.volumeType, 'vt-local');
  assert.ok(snap.status?.creationTime);
  driver.simWrite(disk(v), 'pattern-B');

  const restored = await volume('restored6', '32Mi', { snapshot: 'snap6' });
  assert.equal(driver.simRead(disk(restored)), 'pattern-A', 'the restore holds the data of snapshot time, not what was written after');
  assert.equal(restored.status?.capacity, '32Mi');
  const clone = await volume('clone6', '16Mi', { volume: 'data6' });
  assert.equal(driver.simRead(disk(clone)), 'pattern-B');

  // The snapshot outlives its volume.
  await kova.k(['delete', 'instance', 'vm6', '-n', NS]);
  await kova.k(['delete', 'volume', 'data6', '-n', NS]);
  const kept = await client.get<VolumeSnapshot>(VOLUME_SNAPSHOTS, NS, 'snap6');
  assert.equal(kept?.status?.readyToUse, true);
  assert.ok(await driver.snapshotInfo({ uid: kept!.metadata.uid!, key: `${NS}/snap6`, backend: { type: 'local' } }));
  // Deleting the snapshot removes its file.
  await kova.k(['delete', 'volumesnapshot', 'snap6', '-n', NS]);
  assert.equal(await driver.snapshotInfo({ uid: kept!.metadata.uid!, key: `${NS}/snap6`, backend: { type: 'local' } }), undefined);
});

test('an instance without an image boots from its volume with bootOrder 1', async () => {
  await volume('root7', '64Mi', { image: 'tiny' });
  const i = await instance('vm7', { volumes: [{ volume: 'root7', bootOrder: 1 }] });
  assert.equal(i.spec.image, undefined);
  await waitInstance('vm7', (x) => x.status?.volumes?.[0]?.state === 'Attached', 'root7 attached');
  await waitVolume('root7', (x) => x.status?.phase === 'InUse', 'InUse');
});

test('a volume that does not exist yet makes the instance wait, then it boots', async () => {
  await apply({ apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', metadata: { name: 'vm8', namespace: NS }, spec: { flavor: 'vol.small', image: 'tiny', hostName: HOST, volumes: [{ volume: 'late8' }] } });
  await client.bind(NS, 'vm8', HOST, { vcpus: 1, memory: '256Mi', disk: '1Gi' });
  const waiting = await waitInstance('vm8', (x) => cond(x, 'VolumesReady')?.status === 'False', 'VolumesReady=False');
  assert.equal(waiting.status?.phase, 'Provisioning');
  assert.match(cond(waiting, 'VolumesReady')?.message ?? '', /late8/);
  await volume('late8', '16Mi', undefined, ['Available', 'InUse']);
  await waitInstance('vm8', (x) => x.status?.phase === 'Running' && x.status.volumes?.[0]?.state === 'Attached', 'Running with late8');
});
