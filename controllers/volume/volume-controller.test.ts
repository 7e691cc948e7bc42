// The cluster side of volumes against a real control plane (etcd + API server in process): the
// scheduler's volume topology, the volume controller and the snapshot controller. The node
// agents' part (creating volumes, taking snapshots) is played by hand where a test needs it.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ANNOTATION_SELECTED_HOST } from '../../api/kinds/index.js';
import type { Instance, Volume, VolumeSnapshot } from '../../api/kinds/index.js';
import { findCondition } from '../../api/conditions.js';
import { startControlPlane } from '../../cli/control-plane.js';
import type { ControlPlane } from '../../cli/control-plane.js';
import { FLAVORS, HOSTS, INSTANCES, KovaClient, NAMESPACES, VOLUMES, VOLUME_SNAPSHOTS, VOLUME_TYPES } from '../../client/client.js';
import { SharedInformers } from '../../client/shared-informers.js';
import { eventually } from '../../e2e/harness.js';
import { startScheduler } from '../scheduler/scheduler.js';
import { spreadHost } from './placement.js';
import { startSnapshotController } from './snapshot-controller.js';
import { startVolumeController } from './volume-controller.js';

const NS = 'vc';

describe('volume placement (scheduler, volume and snapshot controllers)', () => {
  let cp: ControlPlane;
  let dir: string;
  let client: KovaClient;
  const stop = new AbortController();

  const getVolume = async (name: string) => (await client.get<Volume>(VOLUMES, NS, name))!;
  const getInstance = async (name: string) => (await client.get<Instance>(INSTANCES, NS, name))!;
  const readyCond = async (name: string) => findCondition((await getVolume(name)).status?.conditions, 'Ready');
  const scheduledMessage = async (name: string) => {
    const c = findCondition((await getInstance(name)).status?.conditions, 'Scheduled');
    return c?.status === 'False' ? `${c.reason}: ${c.message}` : undefined;
  };
  const selected = async (name: string) => (await getVolume(name)).metadata.annotations?.[ANNOTATION_SELECTED_HOST];

  async function host(name: string, allocatable: Record<string, string | number>, labels: Record<string, string> = {}): Promise<void> {
    await client.create(HOSTS, { metadata: { name, labels }, spec: {} });
    await client.patchStatus(HOSTS, undefined, name, {
      status: { capacity: allocatable, allocatable, conditions: [{ type: 'Ready', status: 'True', reason: 'AgentReady', message: 'test', lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') }] },
    });
  }
  const volume = (name: string, spec: Record<string, unknown>, annotations?: Record<string, string>) =>
    client.create(VOLUMES, { metadata: { name, namespace: NS, ...(annotations ? { annotations } : {}) }, spec: { size: '1Gi', volumeType: 'local', ...spec } });
  const instance = (name: string, spec: Record<string, unknown>) =>
    client.create(INSTANCES, { metadata: { name, namespace: NS }, spec: { flavor: 'small', image: 'tiny', runStrategy: 'Halted', ...spec } });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kova-volctl-'));
    cp = await startControlPlane({ dataDir: dir, listen: '127.0.0.1:0' });
    client = KovaClient.fromFile(cp.kubeconfig);
    await client.create(NAMESPACES, { metadata: { name: NS } });
    await client.create(FLAVORS, { metadata: { name: 'small' }, spec: { vcpus: 1, memory: '512Mi', disk: '1Gi' } });
    await client.create(VOLUME_TYPES, { metadata: { name: 'local' }, spec: { backend: 'local' } });
    await client.create(VOLUME_TYPES, { metadata: { name: 'now' }, spec: { backend: 'local', volumeBindingMode: 'Immediate' } });
    await client.create(VOLUME_TYPES, { metadata: { name: 'shared' }, spec: { backend: 'shared', sharedPath: join(dir, 'shared') } });
    await host('h1', { vcpus: 8, memory: '4Gi', disk: '50Gi' });
    await host('h2', { vcpus: 8, memory: '4Gi', disk: '50Gi' });
    await host('h3', { vcpus: 8, memory: '4Gi', disk: '10Gi' }, { pool: 'small-disk' });
    const common = { client, signal: stop.signal, log: () => undefined, informers: new SharedInformers(client, () => undefined) };
    await Promise.all([startScheduler(common), startVolumeController(common), startSnapshotController(common)]);
  });
  after(async () => {
    stop.abort();
    client?.close();
    await cp?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('an instance waits for a missing volume, and is placed with it once it appears: the volume is selected for its host first', async () => {
    await instance('i1', { volumes: [{ volume: 'd1' }] });
    await eventually(async () => (await scheduledMessage('i1')) === 'Unschedulable: volume "d1" not found', 10_000, 'i1 unschedulable for its volume');
    assert.equal((await getInstance('i1')).status?.phase, 'Pending');
    await volume('d1', {});
    const hostName = await eventually(async () => (await getInstance('i1')).status?.hostName, 10_000, 'i1 bound');
    assert.equal(await selected('d1'), hostName);
  });

  it('a local volume on a host pins the instance there; when that host lacks room the message says why', async () => {
    await volume('d2', {}, { [ANNOTATION_SELECTED_HOST]: 'h2' });
    await instance('i2', { volumes: [{ volume: 'd2' }] });
    assert.equal(await eventually(async () => (await getInstance('i2')).status?.hostName, 10_000, 'i2 bound'), 'h2');
    await volume('d3', {}, { [ANNOTATION_SELECTED_HOST]: 'h1' });
    await instance('i3', { flavor: undefined, resources: { vcpus: 1, memory: '6Gi', disk: '1Gi' }, volumes: [{ volume: 'd3' }] });
    await eventually(async () => (await scheduledMessage('i3')) === 'Unschedulable: 0/3 hosts available: 2 volume node affinity conflict, 1 insufficient memory', 10_000, 'i3 unschedulable on h1');
  });

  it('local volumes use their host\'s disk: a new one must fit beside them, and a deleted one frees room', async () => {
    await volume('big', { size: '8Gi' }, { [ANNOTATION_SELECTED_HOST]: 'h3' });
    await volume('nv', { size: '2Gi' });
    // h3 has 10Gi: 8Gi of volume, so 1Gi root disk + 2Gi new volume do not fit.
    await instance('i4', { nodeSelector: { pool: 'small-disk' }, volumes: [{ volume: 'nv' }] });
    await eventually(async () => (await scheduledMessage('i4')) === "Unschedulable: 0/3 hosts available: 2 didn't match node selector, 1 insufficient disk", 10_000, 'i4 unschedulable for disk');
    assert.equal(await selected('nv'), undefined);
    await client.delete(VOLUMES, NS, 'big');
    assert.equal(await eventually(async () => (await getInstance('i4')).status?.hostName, 10_000, 'i4 bound after the volume went'), 'h3');
    assert.equal(await selected('nv'), 'h3');
  });

  it('volume controller: unknown type, first consumer, shared spread, restore from a snapshot on one host', async () => {
    await volume('notype', { volumeType: 'nope' });
    await volume('lonely', {});
    const sh = await volume('sh', { volumeType: 'shared' });
    const now = await volume('now', { volumeType: 'now' });
    await eventually(async () => (await readyCond('notype'))?.reason === 'VolumeTypeNotFound', 10_000, 'VolumeTypeNotFound');
    assert.match((await readyCond('notype'))!.message!, /VolumeType "nope" not found; create it/);
    assert.equal((await getVolume('notype')).status?.phase, 'Pending');
    await eventually(async () => (await readyCond('lonely'))?.reason === 'WaitingForFirstConsumer', 10_000, 'WaitingForFirstConsumer');
    assert.equal((await readyCond('lonely'))?.message, 'waiting for an instance that uses it to be scheduled');
    // Added to an instance that is bound already: the volume goes where the instance runs.
    await instance('bound', { hostName: 'h2' });
    await eventually(async () => (await getInstance('bound')).status?.hostName, 10_000, 'bound is bound');
    await client.mergePatch(INSTANCES, NS, 'bound', { spec: { volumes: [{ volume: 'lonely' }] } });
    assert.equal(await eventually(() => selected('lonely'), 10_000, 'lonely placed with its consumer'), 'h2');
    const hosts = (await client.list(HOSTS)).items as Parameters<typeof spreadHost>[1];
    assert.equal(await eventually(() => selected('sh'), 10_000, 'shared volume placed'), spreadHost(sh.metadata.uid!, hosts));
    assert.equal(await eventually(() => selected('now'), 10_000, 'Immediate local volume placed'), spreadHost(now.metadata.uid!, hosts));

    await client.create(VOLUME_SNAPSHOTS, { metadata: { name: 'snap1', namespace: NS }, spec: { source: { volume: 'd2' } } });
    await volume('rest', { source: { snapshot: 'snap1' } });
    await eventually(async () => (await readyCond('rest'))?.reason === 'WaitingForSnapshot', 10_000, 'WaitingForSnapshot');
    // The agent of h2 took it.
    await client.patchStatus(VOLUME_SNAPSHOTS, NS, 'snap1', { status: { readyToUse: true, hostName: 'h2', volumeType: 'local', restoreSize: '1Gi', snapshotHandle: '/var/lib/kova/snap.qcow2' } });
    assert.equal(await eventually(() => selected('rest'), 10_000, 'restore placed on the snapshot\'s host'), 'h2');
    // Once a host owns it, the controller leaves its status alone.
    await client.patchStatus(VOLUMES, NS, 'rest', { status: { hostName: 'h2', phase: 'Creating', conditions: [] } });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await getVolume('rest')).status?.phase, 'Creating');
  });

  it('deleteWithInstance: an ownerReference to the instance while the flag is set', async () => {
    await volume('dw', {});
    const inst = await instance('i5', { volumes: [{ volume: 'dw', deleteWithInstance: true }] });
    const refs = async () => (await getVolume('dw')).metadata.ownerReferences ?? [];
    await eventually(async () => (await refs()).length === 1, 10_000, 'owner reference added');
    assert.deepEqual(await refs(), [{ apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', name: 'i5', uid: inst.metadata.uid }]);
    await client.mergePatch(INSTANCES, NS, 'i5', { spec: { volumes: [{ volume: 'dw' }] } });
    await eventually(async () => (await refs()).length === 0, 10_000, 'owner reference removed');
  });

  it('snapshot controller: a missing source volume is reported until it exists', async () => {
    await client.create(VOLUME_SNAPSHOTS, { metadata: { name: 'orphan', namespace: NS }, spec: { source: { volume: 'ghost' } } });
    const cond = async () => findCondition((await client.get<VolumeSnapshot>(VOLUME_SNAPSHOTS, NS, 'orphan'))?.status?.conditions, 'Ready');
    await eventually(async () => (await cond())?.reason === 'VolumeNotFound', 10_000, 'VolumeNotFound');
    assert.equal((await cond())?.message, 'source volume "ghost" not found; create it, or delete this snapshot');
    await volume('ghost', {});
    await eventually(async () => (await cond())?.reason === 'WaitingForHost', 10_000, 'reason taken back');
  });
});
