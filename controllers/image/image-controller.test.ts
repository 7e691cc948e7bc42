// The image controller's VolumeSnapshot and Volume sources against a real control plane, with
// real qcow2 files made by qemu-img; the snapshots' status (what a host agent writes) by hand.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { Image, VolumeSnapshot } from '../../api/kinds/index.js';
import { findCondition } from '../../api/conditions.js';
import { startControlPlane } from '../../cli/control-plane.js';
import type { ControlPlane } from '../../cli/control-plane.js';
import { IMAGES, KovaClient, NAMESPACES, VOLUME_SNAPSHOTS } from '../../client/client.js';
import { eventually } from '../../e2e/harness.js';
import { imageSnapshotName, startImageController } from './image-controller.js';

const run = promisify(execFile);
const NS = 'imgs';

describe('image controller: snapshot and volume sources', () => {
  let cp: ControlPlane;
  let dir: string;
  let outside: string;
  let client: KovaClient;
  const stop = new AbortController();

  const getImage = async (name: string) => (await client.get<Image>(IMAGES, NS, name))!;
  const ready = async (name: string) => findCondition((await getImage(name)).status?.conditions, 'Ready');
  const image = (name: string, source: Record<string, unknown>) => client.create<Image>(IMAGES, { metadata: { name, namespace: NS }, spec: { source } });

  /** A qcow2 file named after the snapshot's uid, as a driver names it, under `base`. */
  async function snapshotFile(s: VolumeSnapshot, base = join(dir, 'libvirt', 'snapshots')): Promise<string> {
    await mkdir(base, { recursive: true });
    const path = join(base, `${s.metadata.uid}.qcow2`);
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', path, '64M']);
    return path;
  }
  /** What the agent of h1 writes once the snapshot is taken. */
  const snapshotTaken = (name: string, handle: string) =>
    client.patchStatus(VOLUME_SNAPSHOTS, NS, name, { status: { readyToUse: true, hostName: 'h1', volumeType: 'local', restoreSize: '64Mi', creationTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), snapshotHandle: handle } });
  const sha256 = async (path: string) => createHash('sha256').update(await readFile(path)).digest('hex');

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kova-imgctl-'));
    outside = await mkdtemp(join(tmpdir(), 'kova-imgctl-outside-'));
    cp = await startControlPlane({ dataDir: dir, listen: '127.0.0.1:0' });
    client = KovaClient.fromFile(cp.kubeconfig);
    await client.create(NAMESPACES, { metadata: { name: NS } });
    await startImageController({ client, signal: stop.signal, storeDir: join(dir, 'images'), waitRequeueMs: 500, log: () => undefined });
  });
  after(async () => {
    stop.abort();
    client?.close();
    await cp?.stop();
    await rm(dir, { recursive: true, force: true });
    await rm(outside, { recursive: true, force: true });
  });

  it('a snapshot source waits until the snapshot is ready, then imports its file', async () => {
    const snap = await client.create<VolumeSnapshot>(VOLUME_SNAPSHOTS, { metadata: { name: 'snap', namespace: NS }, spec: { source: { volume: 'data' } } });
    await image('from-snap', { snapshot: 'snap' });
    await eventually(async () => (await ready('from-snap'))?.reason === 'WaitingForSnapshot', 10_000, 'WaitingForSnapshot');
    assert.equal((await getImage('from-snap')).status?.phase, 'Pending');
    assert.match((await ready('from-snap'))!.message!, /waiting for VolumeSnapshot "snap" to be ready to use/);
    const file = await snapshotFile(snap);
    await snapshotTaken('snap', file);
    await eventually(async () => (await getImage('from-snap')).status?.phase === 'Ready', 20_000, 'image Ready');
    const st = (await getImage('from-snap')).status!;
    assert.equal(st.format, 'qcow2');
    assert.equal(st.sha256, await sha256(file));
    assert.equal(st.virtualSize, 64 * 1024 * 1024);
    assert.equal(st.progress, '100%');
  });

  it('refuses snapshot files the control plane must not or cannot read (Failed, SnapshotUnreachable)', async () => {
    const cases: Array<[string, (s: VolumeSnapshot) => Promise<string>, RegExp]> = [
      // A project admin may write snapshot status: a secret of the control plane is not a snapshot.
      ['secret', async () => join(dir, 'pki', 'ca.key'), /not named after the snapshot's uid/],
      ['elsewhere', (s) => snapshotFile(s, outside), /outside the volume storage directories/],
      ['remote', async (s) => `/nonexistent/kova/${s.metadata.uid}.qcow2`, /not reachable from the control plane \(ENOENT\).*use a shared VolumeType/],
    ];
    for (const [name, handle, why] of cases) {
      const s = await client.create<VolumeSnapshot>(VOLUME_SNAPSHOTS, { metadata: { name, namespace: NS }, spec: { source: { volume: 'data' } } });
      await snapshotTaken(name, await handle(s));
      await image(`img-${name}`, { snapshot: name });
      await eventually(async () => (await getImage(`img-${name}`)).status?.phase === 'Failed', 10_000, `img-${name} Failed`);
      const cond = await ready(`img-${name}`);
      assert.equal(cond?.reason, 'SnapshotUnreachable', name);
      assert.match(cond!.message!, why, name);
    }
  });

  it('a volume source takes a snapshot owned by the image, imports it, and deletes it', async () => {
    const img = await image('from-vol', { volume: 'data' });
    const name = imageSnapshotName(img);
    assert.equal(name, `from-vol-image-${img.metadata.uid!.slice(0, 8)}`);
    const snap = await eventually(() => client.get<VolumeSnapshot>(VOLUME_SNAPSHOTS, NS, name), 10_000, 'the image\'s snapshot');
    assert.deepEqual(snap.spec, { source: { volume: 'data' } });
    assert.deepEqual(snap.metadata.ownerReferences?.map((r) => [r.kind, r.name, r.uid, r.controller]), [['Image', 'from-vol', img.metadata.uid, true]]);
    await eventually(async () => (await ready('from-vol'))?.reason === 'WaitingForSnapshot', 10_000, 'WaitingForSnapshot');
    const file = await snapshotFile(snap);
    await snapshotTaken(name, file);
    await eventually(async () => (await getImage('from-vol')).status?.phase === 'Ready', 20_000, 'image Ready');
    assert.equal((await getImage('from-vol')).status?.sha256, await sha256(file));
    await eventually(async () => !(await client.get(VOLUME_SNAPSHOTS, NS, name)), 10_000, 'snapshot deleted');
    // Not taken again: the image is Ready for its generation.
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(await client.get(VOLUME_SNAPSHOTS, NS, name), undefined);
  });
});
