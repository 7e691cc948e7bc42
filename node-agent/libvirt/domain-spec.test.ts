import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { InvalidSpec } from '../driver.js';
import type { DomainSpec, VolumeAttachSpec } from '../driver.js';
import { volumeSerial } from '../../api/kinds/volume.js';
import { libvirtDomainOf } from './domain-spec.js';
import type { LibvirtHostFacts } from './domain-spec.js';
import { toDomainXml } from './domain-xml.js';
import { renderSeedFiles } from './nocloud.js';

// Golden files live in the source tree; UPDATE_GOLDEN=1 rewrites them from the current output.
const TESTDATA = fileURLToPath(new URL('../../../node-agent/libvirt/testdata/', import.meta.url));

/** The plan, the seed files it renders and the XML it becomes, as one reviewable JSON document. */
function golden(name: string, spec: DomainSpec, host: LibvirtHostFacts): void {
  const plan = libvirtDomainOf(spec, host);
  const actual = `${JSON.stringify({ spec, host, plan, seedFiles: renderSeedFiles(plan.seed), xml: toDomainXml(plan.domain).split('\n') }, null, 2)}\n`;
  const path = `${TESTDATA}${name}`;
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(path, actual);
  assert.equal(actual, readFileSync(path, 'utf8'), `${name} differs from the golden file (UPDATE_GOLDEN=1 to accept)`);
}

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq8L3tE0rXkq8J0cUj8dY0Vb2xk9p6c1wq7y3m4n5o6 user@host';
const host: LibvirtHostFacts = { uuid: '0b9c5a3e-6f0d-4c1e-9a7b-2d4e6f8a0c1e', kvm: false, dir: '/var/lib/kova/libvirt/domains/kova-demo.web-1', minMemoryBytes: 64 * 1024 * 1024 };
const base: DomainSpec = {
  instanceKey: 'demo/web-1',
  instanceUID: '5f0e1d2c-3b4a-4958-8776-a5b4c3d2e1f0',
  name: 'kova-demo.web-1',
  vcpus: 1,
  memoryBytes: 200 * 1024 * 1024 + 1,
  diskBytes: 1024 ** 3,
  image: '/var/lib/kova/libvirt/image-cache/ab/cd.qcow2',
  networks: [],
};

describe('libvirtDomainOf', () => {
  it('maps a spec without NICs: paths in the domain dir, memory rounded up to whole MiB (golden)', () => golden('spec-minimal.json', base, host));

  it('maps a DHCP NIC on a tap the network agent made, keys and user-data, cluster id (golden)', () =>
    golden('spec-tap-dhcp.json', {
      ...base,
      clusterID: 'c0ffee00-0000-4000-8000-000000000001',
      userData: '#cloud-config\nruncmd:\n  - echo hello\n',
      sshAuthorizedKeys: [KEY],
      networks: [{ network: 'private', port: 'web-1-0', mac: '52:54:00:AA:00:01', ip: '10.20.0.10', tap: 'kt-1a2b3c4d5e', mtu: 1450, dns: ['10.20.0.1'] }],
    }, host));

  it('maps a static NIC (no DHCP) with gateway and MTU, a bridge NIC, KVM and direct boot (golden)', () =>
    golden('spec-static-bridge-kvm.json', {
      ...base,
      vcpus: 4,
      memoryBytes: 4 * 1024 ** 3,
      networks: [
        { network: 'static', port: 'p0', mac: '52:54:00:00:00:01', ip: '10.30.0.5', tap: 'kt-00aa11bb22', address: '10.30.0.5/24', gateway: '10.30.0.1', mtu: 1450 },
        { network: 'legacy', mac: '52:54:00:00:00:02', bridge: 'kv-1f2e3d' },
      ],
    }, { ...host, kvm: true, directBoot: { kernelPath: '/var/lib/kova/images/k.vmlinuz', cmdline: 'console=ttyS0' } }));

  const volume = (uid: string, over: Partial<VolumeAttachSpec> = {}): VolumeAttachSpec => ({
    disk: { uid, key: `demo/${uid.slice(0, 4)}`, backend: { type: 'local' } },
    serial: volumeSerial(uid),
    ...over,
  });
  const V1 = '7f3e2d1c-0b9a-4876-a5b4-c3d2e1f00a1b';
  const V2 = '1a2b3c4d-5e6f-4a0b-8c1d-2e3f4a5b6c7d';
  const V3 = '9e8d7c6b-5a4f-4e3d-9c2b-1a0f9e8d7c6b';
  const withStorage = { ...host, localStorageDir: '/var/lib/kova/libvirt' };

  it('maps volumes after the root disk: local and shared files by uid and format, read-only, shareable raw (golden)', () =>
    golden('spec-volumes.json', {
      ...base,
      volumes: [
        volume(V1),
        volume(V2, { disk: { uid: V2, key: 'demo/shared', backend: { type: 'shared', path: '/srv/kova-shared' }, format: 'raw' }, readOnly: true, shareable: true }),
        volume(V3, { disk: { uid: V3, key: 'demo/local-multi', backend: { type: 'local' }, format: 'raw' }, shareable: true }),
      ],
    }, withStorage));

  it('names a volume file after its format, so no file is opened as the other format', () => {
    const plan = libvirtDomainOf({ ...base, volumes: [volume(V1, { disk: { uid: V1, key: 'k', backend: { type: 'local' }, format: 'qcow2' } }), volume(V2, { disk: { uid: V2, key: 'k2', backend: { type: 'local' }, format: 'raw' } })] }, withStorage);
    assert.deepEqual(plan.domain.volumes?.map((v) => [v.path, v.format]), [
      [`/var/lib/kova/libvirt/volumes/${V1}.qcow2`, 'qcow2'],
      [`/var/lib/kova/libvirt/volumes/${V2}.raw`, 'raw'],
    ]);
    assert.equal(libvirtDomainOf({ ...base, volumes: [volume(V1)] }, withStorage).domain.volumes?.[0]?.path, `/var/lib/kova/libvirt/volumes/${V1}.qcow2`, 'no format: qcow2, as before');
  });

  it('boots from the volume with bootOrder 1 when there is no image: it is vda, no root overlay (golden)', () => {
    const { image: _, ...noImage } = base;
    golden('spec-boot-volume.json', { ...noImage, volumes: [volume(V2), volume(V1, { bootOrder: 1 })] }, withStorage);
    const plan = libvirtDomainOf({ ...noImage, volumes: [volume(V2), volume(V1, { bootOrder: 1 })] }, withStorage);
    assert.equal(plan.domain.rootDisk, undefined);
    assert.deepEqual(plan.domain.volumes?.map((v) => v.serial), [volumeSerial(V1), volumeSerial(V2)]);
  });

  it('is pure: same input, same output; the input is not changed', () => {
    const spec = structuredClone({ ...base, networks: [{ network: 'n', mac: '52:54:00:00:00:01', tap: 'kt-x' }] });
    const before = structuredClone(spec);
    assert.deepEqual(libvirtDomainOf(spec, host), libvirtDomainOf(spec, host));
    assert.deepEqual(spec, before);
  });

  const invalid: Array<[string, Partial<DomainSpec>, RegExp]> = [
    ['a NIC without a host device', { networks: [{ network: 'n', mac: '52:54:00:00:00:01' }] }, /exactly one of a bridge or a tap/],
    ['a NIC with both', { networks: [{ network: 'n', mac: '52:54:00:00:00:01', tap: 'kt-a', bridge: 'br0' }] }, /exactly one/],
    ['user-data over 64 KiB', { userData: 'x'.repeat(64 * 1024 + 1) }, /user-data is larger/],
    ['a key that is not one', { sshAuthorizedKeys: ['not a key'] }, /key/],
    ['cloud-config that is not YAML', { userData: '#cloud-config\n: : [\n', sshAuthorizedKeys: [KEY] }, /not valid YAML/],
    ['a multicast MAC', { networks: [{ network: 'n', mac: '53:54:00:00:00:01', tap: 'kt-a' }] }, /multicast/],
    ['a static address that is not CIDR', { networks: [{ network: 'n', mac: '52:54:00:00:00:01', tap: 'kt-a', address: '10.0.0.5' }] }, /CIDR/],
    ['no vCPUs', { vcpus: 0 }, /vcpus/],
    ['no image and no boot volume', { image: undefined, volumes: [volume(V1)] }, /bootOrder 1/],
    ['an image and a boot volume', { volumes: [volume(V1, { bootOrder: 1 })] }, /exclude/],
    ['a volume uid that is not a uuid', { volumes: [volume('../../etc/passwd')] }, /RFC 4122/],
    ['an upper-case volume uid', { volumes: [volume(V1.toUpperCase())] }, /RFC 4122/],
    ['a relative shared path', { volumes: [volume(V1, { disk: { uid: V1, key: 'k', backend: { type: 'shared', path: 'srv/x' } } })] }, /absolute/],
    ['a shared path with ..', { volumes: [volume(V1, { disk: { uid: V1, key: 'k', backend: { type: 'shared', path: '/srv/../etc' } } })] }, /normalized/],
    ['a bad serial', { volumes: [volume(V1, { serial: 'a b' })] }, /serial/],
    ['an unknown volume format', { volumes: [volume(V1, { disk: { uid: V1, key: 'k', backend: { type: 'local' }, format: 'vmdk' as 'raw' } })] }, /unsupported volume format "vmdk"/],
    ['a shareable qcow2 volume (libvirt refuses shared access to qcow2)', { volumes: [volume(V1, { shareable: true })] }, /shareable volume must be raw/],
  ];
  for (const [what, over, msg] of invalid) {
    it(`refuses ${what} with InvalidSpec (terminal)`, () => {
      assert.throws(() => libvirtDomainOf({ ...base, ...over }, { ...host, localStorageDir: '/var/lib/kova/libvirt' }), (e: unknown) => e instanceof InvalidSpec && msg.test((e as Error).message));
    });
  }
});
