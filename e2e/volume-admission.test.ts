// Volume rules as a cloud user meets them (#16): a whole sim cloud (`kova up --driver sim
// --no-seed`, so the VolumeTypes are the test's own) driven with the real kubectl by a project
// member made with `kova user create` and by the cloud admin:
// - VolumeTypes are the admin's: a member reads them and gets a 403 writing one;
// - a Volume applied without spec.volumeType gets the default one (client-side and server-side
//   apply), and re-applying the same manifest is "unchanged";
// - a volume cannot shrink, nor grow when its VolumeType forbids expansion, nor change its type
//   (kubectl patch and apply print the 422 naming the field);
// - an instance boots from an image or a volume with bootOrder 1;
// - a single-attach volume used by one instance is refused for another (naming both), a
//   multi-attach one is not, and editing the first instance is never refused.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createUser, startKova } from './harness.js';
import type { Kova, KovaUser } from './harness.js';

const NS = 'vol-e2e';

const volumeType = (name: string, spec: string, isDefault = false) => `
apiVersion: kova.dev/v1alpha1
kind: VolumeType
metadata:
  name: ${name}
${isDefault ? '  annotations: {kova.dev/is-default-volume-type: "true"}\n' : ''}spec:
${spec}`;

const volume = (name: string, size: string, extra = '') => `
apiVersion: kova.dev/v1alpha1
kind: Volume
metadata: {name: ${name}, namespace: ${NS}}
spec:
  size: ${size}
${extra}`;

const instance = (name: string, volumes: string, image = '  image: tiny\n') => `
apiVersion: kova.dev/v1alpha1
kind: Instance
metadata: {name: ${name}, namespace: ${NS}}
spec:
  flavor: e2e.tiny
${image}  volumes:
${volumes}`;

describe('volume admission as a user sees it (kubectl, sim cloud)', () => {
  let k: Kova;
  let dana: KovaUser;
  /** kubectl as dana that must fail: returns what kubectl printed on stderr. */
  const fails = async (args: string[], input?: string): Promise<string> => {
    const r = await dana.kubectl(args, { input });
    assert.notEqual(r.code, 0, `kubectl ${args.join(' ')} succeeded:\n${r.stdout}`);
    return r.stderr.trim();
  };
  const field = async (kind: string, name: string, path: string) => (await dana.k(['get', kind, name, '-n', NS, '-o', `jsonpath={${path}}`])).trim();

  before(async () => {
    k = await startKova(['--driver', 'sim', '--sim-hosts', '1', '--no-seed']);
    await k.k(['create', 'namespace', NS]);
    await k.k(['apply', '-f', '-'], { input: `
apiVersion: kova.dev/v1alpha1
kind: Flavor
metadata: {name: e2e.tiny}
spec: {vcpus: 1, memory: 64Mi, disk: 1Gi}
---${volumeType('standard', '  backend: local\n  allowVolumeExpansion: false', true)}
---${volumeType('nfs', `  backend: shared\n  sharedPath: ${join(k.dataDir, 'nfs')}\n  multiAttach: true`)}` });
    dana = await createUser(k, 'dana', ['--project', NS, '--role', 'member']);
  });

  after(async () => {
    await k?.stop();
  });

  it('a member reads the VolumeTypes and may not write one', async () => {
    const list = await dana.k(['get', 'volumetypes', '-o', 'custom-columns=NAME:.metadata.name,BACKEND:.spec.backend,EXPANSION:.spec.allowVolumeExpansion,MULTI:.spec.multiAttach', '--no-headers']);
    assert.deepEqual(list.trim().split('\n').map((l) => l.split(/\s+/).join(' ')), ['nfs shared true true', 'standard local false false']);
    const err = await fails(['apply', '-f', '-'], volumeType('mine', '  backend: local'));
    assert.equal(err, 'Error from server (Forbidden): error when creating "STDIN": volumetypes.kova.dev is forbidden: User "dana" cannot create resource "volumetypes" in API group "kova.dev" at the cluster scope');
  });

  it('a volume applied without a type gets the default one; applying it again changes nothing', async () => {
    const out = await dana.k(['apply', '-f', '-'], { input: volume('data', '1Gi') });
    assert.equal(out.trim(), 'volume.kova.dev/data created');
    assert.equal(await field('volume', 'data', '.spec.volumeType'), 'standard');
    assert.equal((await dana.k(['apply', '-f', '-'], { input: volume('data', '1Gi') })).trim(), 'volume.kova.dev/data unchanged');
    assert.equal((await dana.k(['apply', '--server-side', '-f', '-'], { input: volume('logs', '1Gi') })).trim(), 'volume.kova.dev/logs serverside-applied');
    assert.equal(await field('volume', 'logs', '.spec.volumeType'), 'standard');
    assert.equal((await dana.k(['apply', '--server-side', '-f', '-'], { input: volume('logs', '1Gi') })).trim(), 'volume.kova.dev/logs serverside-applied');
    assert.equal(await field('volume', 'logs', '.spec.volumeType'), 'standard', 'the defaulted type is not the applier\'s to drop');
    assert.equal((await dana.k(['apply', '-f', '-'], { input: volume('files', '1Gi', '  volumeType: nfs') })).trim(), 'volume.kova.dev/files created');
    // The printer column shows it too.
    assert.match(await dana.k(['get', 'volumes', '-n', NS]), /\ndata\s+1Gi\s+standard\s/);
  });

  it('a volume never shrinks, grows only if its type allows, and keeps its type', async () => {
    assert.equal(await fails(['patch', 'volume', 'data', '-n', NS, '--type=merge', '-p', '{"spec":{"size":"512Mi"}}']),
      'The Volume "data" is invalid: spec.size: Forbidden: a volume cannot shrink (from 1Gi to 512Mi)');
    assert.equal(await fails(['patch', 'volume', 'data', '-n', NS, '--type=merge', '-p', '{"spec":{"size":"2Gi"}}']),
      'The Volume "data" is invalid: spec.size: Forbidden: its VolumeType "standard" does not allow expansion (allowVolumeExpansion is false): the volume stays at 1Gi');
    assert.equal(await fails(['apply', '-f', '-'], volume('data', '1Gi', '  volumeType: nfs')),
      'The Volume "data" is invalid: spec.volumeType: Invalid value: "nfs": field is immutable');
    assert.equal(await field('volume', 'data', '.spec.size'), '1Gi');
    // A multi-attach shared type allows expansion by default (the schema's default).
    assert.equal((await dana.k(['patch', 'volume', 'files', '-n', NS, '--type=merge', '-p', '{"spec":{"size":"3Gi"}}'])).trim(), 'volume.kova.dev/files patched');
  });

  it('an instance boots from an image or from one volume with bootOrder 1', async () => {
    assert.equal(await fails(['apply', '-f', '-'], instance('no-boot', '  - volume: data\n', '')),
      'The Instance "no-boot" is invalid: spec.image: Required value: an instance boots from an image, or from a volume with bootOrder 1');
    assert.equal(await fails(['apply', '-f', '-'], instance('two-boots', '  - volume: data\n    bootOrder: 1\n')),
      'The Instance "two-boots" is invalid: spec.volumes[0].bootOrder: Forbidden: the instance boots from spec.image (its root disk is boot device 1); bootOrder 1 is for an instance without an image, use 2 or more');
  });

  it('a single-attach volume of one instance is refused for another; a shared one is not', async () => {
    assert.equal((await dana.k(['apply', '-f', '-'], { input: instance('web-1', '  - volume: data\n  - volume: files\n') })).trim(), 'instance.kova.dev/web-1 created');
    const err = await fails(['apply', '-f', '-'], instance('web-2', '  - volume: files\n    readOnly: true\n  - volume: data\n'));
    assert.equal(err, 'The Instance "web-2" is invalid: spec.volumes[1].volume: Forbidden: volume "data" is attached to instance "web-1"; its VolumeType "standard" does not allow multiAttach');
    assert.match(await fails(['get', 'instance', 'web-2', '-n', NS]), /NotFound/, 'nothing was created');
    // Without the single-attach volume it goes through: "files" is multiAttach.
    assert.equal((await dana.k(['apply', '-f', '-'], { input: instance('web-2', '  - volume: files\n    readOnly: true\n') })).trim(), 'instance.kova.dev/web-2 created');
    assert.equal(await fails(['patch', 'instance', 'web-2', '-n', NS, '--type=json', '-p', '[{"op":"add","path":"/spec/volumes/-","value":{"volume":"data"}}]']),
      'The Instance "web-2" is invalid: spec.volumes[1].volume: Forbidden: volume "data" is attached to instance "web-1"; its VolumeType "standard" does not allow multiAttach');
    // Editing the instance that has it is never refused for it.
    assert.equal((await dana.k(['label', 'instance', 'web-1', '-n', NS, 'tier=web'])).trim(), 'instance.kova.dev/web-1 labeled');
    assert.equal((await dana.k(['patch', 'instance', 'web-1', '-n', NS, '--type=merge', '-p', '{"spec":{"runStrategy":"Halted"}}'])).trim(), 'instance.kova.dev/web-1 patched');
  });
});
