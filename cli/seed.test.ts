// What `kova up` seeds, against a real control plane: the default VolumeTypes, once.
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isDefaultVolumeType } from '../api/kinds/index.js';
import type { VolumeType } from '../api/kinds/index.js';
import { KovaClient, VOLUME_TYPES } from '../client/client.js';
import { startControlPlane } from './control-plane.js';
import type { ControlPlane } from './control-plane.js';
import { seedVolumeTypes, sharedVolumesDir } from './seed.js';

describe('seed', () => {
  let cp: ControlPlane;
  let dir: string;
  let client: KovaClient;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kova-seed-'));
    cp = await startControlPlane({ dataDir: dir, listen: '127.0.0.1:0' });
    client = KovaClient.fromFile(cp.kubeconfig);
  });
  after(async () => {
    client?.close();
    await cp?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('seeds the VolumeTypes local (the default) and shared once, and leaves edited ones alone', async () => {
    assert.deepEqual(await seedVolumeTypes(client, dir), ['local', 'shared']);
    const local = (await client.get<VolumeType>(VOLUME_TYPES, undefined, 'local'))!;
    const shared = (await client.get<VolumeType>(VOLUME_TYPES, undefined, 'shared'))!;
    assert.deepEqual(local.spec, { backend: 'local', allowVolumeExpansion: true, multiAttach: false, volumeBindingMode: 'WaitForFirstConsumer' });
    assert.deepEqual(shared.spec, { backend: 'shared', sharedPath: join(dir, 'shared-volumes'), allowVolumeExpansion: true, multiAttach: true, volumeBindingMode: 'WaitForFirstConsumer' });
    assert.equal(isDefaultVolumeType(local), true);
    assert.equal(isDefaultVolumeType(shared), false);
    assert.ok((await stat(sharedVolumesDir(dir))).isDirectory());
    // An admin makes shared the default; a second `kova up` changes nothing.
    await client.mergePatch(VOLUME_TYPES, undefined, 'local', { metadata: { annotations: { 'kova.dev/is-default-volume-type': null } } });
    assert.deepEqual(await seedVolumeTypes(client, dir), []);
    assert.equal(isDefaultVolumeType((await client.get<VolumeType>(VOLUME_TYPES, undefined, 'local'))!), false);
  });
});
