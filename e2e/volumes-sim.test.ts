// Volumes on a simulated cloud (`kova up --driver sim --sim-hosts 3`), as a project member drives
// them with kubectl: the default VolumeType, WaitForFirstConsumer then scheduling with the
// instance, the 422 for a second attachment, shared multi-attach volumes across hosts,
// deleteWithInstance through the garbage collector, snapshots and restores on the volume's host,
// and the printer columns.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { writeSimImageFile } from '../node-agent/sim-image.js';
import { createUser, eventually, startKova } from './harness.js';
import type { Kova, KovaUser } from './harness.js';

const NS = 'vols';

describe('volumes on a sim cloud with kubectl', () => {
  let k: Kova;
  let u: KovaUser;
  const json = async (args: string[]) => JSON.parse(await u.k([...args, '-n', NS, '-o', 'json']));
  const apply = (yaml: string) => u.k(['apply', '-n', NS, '-f', '-'], { input: yaml });
  const wait = (what: string, cond: string) => u.k(['wait', what, '-n', NS, `--for=${cond}`, '--timeout=60s'], { timeoutMs: 70_000 });
  const inst = (name: string, extra: string) => `apiVersion: kova.dev/v1alpha1
kind: Instance
metadata: {name: ${name}}
spec:
  flavor: vol.small
  image: tiny
${extra}`;

  before(async () => {
    k = await startKova(['--driver', 'sim', '--sim-hosts', '3']);
    await k.k(['apply', '-f', '-'], { input: `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${NS}}\n` });
    const img = await writeSimImageFile(k.dataDir, 'vols.raw');
    await k.k(['apply', '-f', '-'], {
      input: `apiVersion: kova.dev/v1alpha1
kind: Flavor
metadata: {name: vol.small}
spec: {vcpus: 1, memory: 256Mi, disk: 1Gi}
---
apiVersion: kova.dev/v1alpha1
kind: Image
metadata: {name: tiny, namespace: ${NS}}
spec: {source: {file: {path: ${img.path}}}, format: raw}
`,
    });
    u = await createUser(k, 'vera', ['--project', NS, '--role', 'member']);
    await eventually(async () => (await k.k(['get', 'hosts', '-o', 'jsonpath={.items[*].status.allocatable.memory}'])).trim().split(' ').filter(Boolean).length === 3, 20_000, 'three hosts');
  });
  after(async () => {
    await k?.stop();
  });

  it('places a local volume with its first instance, refuses a second attachment, and keeps it after the instance', async () => {
    const types = await k.k(['get', 'volumetypes']);
    assert.match(types, /local\s+local\s+true\s+false/);
    assert.match(types, /shared\s+shared\s+true\s+true/);
    await apply('apiVersion: kova.dev/v1alpha1\nkind: Volume\nmetadata: {name: data}\nspec: {size: 2Gi}\n');
    await eventually(async () => (await json(['get', 'volume', 'data'])).status?.conditions?.[0]?.reason === 'WaitingForFirstConsumer', 20_000, 'data waits for its consumer');
    assert.equal((await json(['get', 'volume', 'data'])).spec.volumeType, 'local');

    await apply(inst('vm1', '  volumes: [{volume: data}]'));
    await wait('instance/vm1', 'condition=Ready');
    await wait('volume/data', 'jsonpath={.status.phase}=InUse');
    const vm1 = await json(['get', 'instance', 'vm1']);
    const data = await json(['get', 'volume', 'data']);
    assert.equal(data.status.hostName, vm1.status.hostName, 'the volume lives where its first instance runs');
    assert.equal(data.status.capacity, '2Gi');
    assert.deepEqual(data.status.attachments.map((a: { instance: string; state: string }) => [a.instance, a.state]), [['vm1', 'Attached']]);
    assert.equal(vm1.status.volumes[0].serial, data.metadata.uid.slice(0, 20));
    assert.match(await u.k(['get', 'volumes', '-n', NS]), /data\s+2Gi\s+local\s+InUse\s+vm1/);

    // A second instance may not take a volume that is attached elsewhere.
    await assert.rejects(apply(inst('vm2', '  volumes: [{volume: data}]')), /volume "data" is attached to instance "vm1"/);

    // Detached by deleting its instance, the volume stays, Available.
    await u.k(['delete', 'instance', 'vm1', '-n', NS, '--timeout=60s'], { timeoutMs: 70_000 });
    await wait('volume/data', 'jsonpath={.status.phase}=Available');

    // A snapshot, and a restore that lands on the same host (local storage).
    await apply('apiVersion: kova.dev/v1alpha1\nkind: VolumeSnapshot\nmetadata: {name: snap}\nspec: {source: {volume: data}}\n');
    await wait('volumesnapshot/snap', 'jsonpath={.status.readyToUse}=true');
    await apply('apiVersion: kova.dev/v1alpha1\nkind: Volume\nmetadata: {name: restored}\nspec: {size: 3Gi, source: {snapshot: snap}}\n');
    await wait('volume/restored', 'jsonpath={.status.phase}=Available');
    const restored = await json(['get', 'volume', 'restored']);
    assert.equal(restored.status.hostName, data.status.hostName);
    assert.equal(restored.status.capacity, '3Gi');
    // Shrinking is refused.
    await assert.rejects(u.k(['patch', 'volume', 'restored', '-n', NS, '--type=merge', '-p', '{"spec":{"size":"1Gi"}}']), /spec\.size/);
  });

  it('attaches a shared multi-attach volume to instances on different hosts', async () => {
    await apply('apiVersion: kova.dev/v1alpha1\nkind: Volume\nmetadata: {name: sh}\nspec: {size: 1Gi, volumeType: shared}\n');
    await wait('volume/sh', 'jsonpath={.status.phase}=Available');
    await apply([inst('s1', '  hostName: sim-0\n  volumes: [{volume: sh}]'), inst('s2', '  hostName: sim-1\n  volumes: [{volume: sh, readOnly: true}]')].join('\n---\n'));
    await wait('instance/s1', 'condition=Ready');
    await wait('instance/s2', 'condition=Ready');
    const sh = await eventually(async () => {
      const v = await json(['get', 'volume', 'sh']);
      return v.status?.attachments?.length === 2 && v.status.phase === 'InUse' ? v : undefined;
    }, 20_000, 'sh attached twice');
    assert.deepEqual(sh.status.attachments.map((a: { instance: string; host: string }) => [a.instance, a.host]), [['s1', 'sim-0'], ['s2', 'sim-1']]);
    // The sim driver refuses a shareable disk that is not raw, as libvirt does: both attachments
    // above mean the agents gave the multiAttach volume the raw format. The format follows
    // multiAttach, so it cannot change under existing volumes.
    await assert.rejects(k.k(['patch', 'volumetype', 'shared', '--type=merge', '-p', '{"spec":{"multiAttach":false}}']), /spec\.multiAttach.*field is immutable/);
  });

  it('deletes a volume with its instance when asked (deleteWithInstance)', async () => {
    await apply('apiVersion: kova.dev/v1alpha1\nkind: Volume\nmetadata: {name: scratch}\nspec: {size: 1Gi}\n');
    await apply(inst('tmp', '  volumes: [{volume: scratch, deleteWithInstance: true}]'));
    await wait('instance/tmp', 'condition=Ready');
    await wait('volume/scratch', 'jsonpath={.status.phase}=InUse');
    await eventually(async () => (await json(['get', 'volume', 'scratch'])).metadata.ownerReferences?.[0]?.name === 'tmp', 20_000, 'scratch owned by tmp');
    await u.k(['delete', 'instance', 'tmp', '-n', NS, '--timeout=60s'], { timeoutMs: 70_000 });
    await eventually(async () => !(await u.k(['get', 'volumes', '-n', NS, '-o', 'name'])).includes('volume.kova.dev/scratch'), 30_000, 'scratch deleted with its instance');
  });

  it('the walkthrough manifests apply as the README says (manifests/ and manifests/volumes/ 01-04)', async () => {
    const dir = fileURLToPath(new URL('../../manifests/', import.meta.url));
    // kova up --driver sim seeds no test image: register a Public kova-system/tiny like libvirt's.
    const img = await writeSimImageFile(k.dataDir, 'tiny.raw');
    await k.k(['apply', '-f', '-'], { input: `apiVersion: kova.dev/v1alpha1\nkind: Image\nmetadata: {name: tiny, namespace: kova-system}\nspec: {source: {file: {path: ${img.path}}}, format: raw, visibility: Public}\n` });
    await k.k(['apply', '-f', dir]);
    await k.k(['wait', 'instance/web-1', '-n', 'demo', '--for=condition=Ready', '--timeout=60s'], { timeoutMs: 70_000 });
    await k.k(['apply', '-f', `${dir}volumes/01-volume.yaml`]);
    await k.k(['patch', 'instance', 'web-1', '-n', 'demo', '--type=merge', '-p', '{"spec":{"volumes":[{"volume":"data"}]}}']);
    await k.k(['wait', 'volume/data', '-n', 'demo', '--for=jsonpath={.status.phase}=InUse', '--timeout=60s'], { timeoutMs: 70_000 });
    for (const f of ['02-snapshot.yaml', '03-restore.yaml', '04-boot-from-volume.yaml']) await k.k(['apply', '-f', `${dir}volumes/${f}`]);
    await k.k(['wait', 'volumesnapshot/data-snap', '-n', 'demo', '--for=jsonpath={.status.readyToUse}=true', '--timeout=60s'], { timeoutMs: 70_000 });
    await k.k(['wait', 'volume/data-copy', '-n', 'demo', '--for=jsonpath={.status.phase}=Available', '--timeout=60s'], { timeoutMs: 70_000 });
    await k.k(['wait', 'instance/from-volume', '-n', 'demo', '--for=condition=Ready', '--timeout=60s'], { timeoutMs: 70_000 });
    assert.match(await k.k(['get', 'volumes', '-n', 'demo']), /root-1\s+2Gi\s+local\s+InUse\s+from-volume/);
  });
});
