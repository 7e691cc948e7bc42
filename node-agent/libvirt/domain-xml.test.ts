import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { InvalidDomainSpec, pushBackupXml, toDomainXml, volumeDiskXml, type LibvirtDomainSpec, type VolumeXmlSpec } from './domain-xml.js';
import { escapeAttr, escapeText, XmlValueError } from './xml.js';

// Golden files live in the source tree; UPDATE_GOLDEN=1 rewrites them from the current output.
const TESTDATA = fileURLToPath(new URL('../../../node-agent/libvirt/testdata/', import.meta.url));

function golden(name: string, actual: string): void {
  const path = `${TESTDATA}${name}`;
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(path, actual);
  assert.equal(actual, readFileSync(path, 'utf8'), `${name} differs from the golden file (UPDATE_GOLDEN=1 to accept)`);
}

const minimal: LibvirtDomainSpec = {
  name: 'kova-demo.web-1',
  uuid: '0b9c5a3e-6f0d-4c1e-9a7b-2d4e6f8a0c1e',
  vcpus: 1,
  memoryBytes: 256 * 1024 * 1024,
  kvm: false,
  rootDisk: { path: '/var/lib/kova/instances/kova-demo.web-1/root.qcow2', format: 'qcow2' },
  seedIsoPath: '/var/lib/kova/instances/kova-demo.web-1/seed.iso',
  nics: [{ mac: '52:54:00:12:34:56', targetDev: 'kt-0b9c5a3e-0', source: { type: 'bridge', bridge: 'kv-1f2e3d' } }],
  consoleLogPath: '/var/lib/kova/instances/kova-demo.web-1/console.log',
};

const full: LibvirtDomainSpec = {
  ...minimal,
  name: 'kova-prod.db-0',
  kvm: true,
  machine: 'pc-q35-7.2',
  vcpus: 4,
  memoryBytes: 4 * 1024 ** 3,
  volumes: [
    { path: '/var/lib/kova/volumes/data.qcow2', format: 'qcow2', serial: 'vol-data' },
    { path: '/var/lib/kova/volumes/raw.img', format: 'raw' },
  ],
  nics: [
    { mac: '52:54:00:00:00:01', source: { type: 'bridge', bridge: 'kv-1f2e3d' }, mtu: 1450 },
    { mac: '52:54:00:00:00:02', targetDev: 'kt-db0-1', source: { type: 'tap' } },
  ],
  guestAgentSocketPath: '/run/kova/qga/kova-prod.db-0.sock',
  directBoot: { kernelPath: '/var/lib/kova/images/k.vmlinuz', initrdPath: '/var/lib/kova/images/k.initrd', cmdline: 'console=ttyS0 quiet' },
  owner: { instanceKey: 'prod/db-0', instanceUID: '5f0e1d2c-3b4a-4958-8776-a5b4c3d2e1f0' },
};

// Values a user can influence (paths derive from names, the cmdline and metadata from specs):
// every XML metacharacter, a CDATA terminator, a comment, an entity and markup-looking text.
const hostile: LibvirtDomainSpec = {
  ...full,
  rootDisk: { path: `/var/lib/kova/x'"><disk type='block'><source dev='/dev/sda'/></disk><!--/root.qcow2`, format: 'qcow2' },
  seedIsoPath: '/tmp/a&amp;b/]]>/seed.iso',
  consoleLogPath: "/tmp/log'/><serial type='tcp'/>",
  directBoot: { kernelPath: '/k', initrdPath: '/i</initrd><kernel>/evil</kernel>', cmdline: `init=/bin/sh </cmdline></os><devices><hostdev mode='subsystem'/></devices> &lt; "x" 'y'` },
  owner: { instanceKey: 'ns/<name>&"\'', instanceUID: ']]><!ENTITY x SYSTEM "file:///etc/shadow">' },
};

/** The element structure without any values: escaping must never change it. */
function skeleton(xml: string): string[] {
  return xml.match(/<\/?[A-Za-z_:][^\s/>]*/g) ?? [];
}

describe('toDomainXml', () => {
  it('renders a minimal TCG domain (golden)', () => golden('minimal-tcg.xml', toDomainXml(minimal)));
  it('renders a KVM domain with every device (golden)', () => golden('full-kvm.xml', toDomainXml(full)));

  it('escapes hostile values without changing the document structure (golden)', () => {
    const xml = toDomainXml(hostile);
    golden('hostile.xml', xml);
    assert.deepEqual(skeleton(xml), skeleton(toDomainXml(full)));
    assert.ok(!xml.includes('<disk type=\'block\''), 'injected element must not appear');
    assert.ok(!xml.includes('<!ENTITY'));
    assert.ok(!xml.includes(']]>'));
    assert.ok(xml.includes('&lt;/cmdline&gt;'));
  });

  it('is deterministic', () => assert.equal(toDomainXml(full), toDomainXml(structuredClone(full))));

  it('uses type qemu without host CPU passthrough under TCG, and kvm with it', () => {
    const tcg = toDomainXml(minimal);
    assert.match(tcg, /^<domain type='qemu'>/);
    assert.doesNotMatch(tcg, /host-passthrough/);
    assert.match(toDomainXml(full), /^<domain type='kvm'>[\s\S]*<cpu mode='host-passthrough'/);
  });

  const bad: [string, Partial<LibvirtDomainSpec>, RegExp][] = [
    ['name with a space', { name: 'a b' }, /domain name/],
    ['name with a slash', { name: 'a/b' }, /domain name/],
    ['name with markup', { name: '<evil>' }, /domain name/],
    ['empty name', { name: '' }, /domain name/],
    ['over-long name', { name: 'a'.repeat(81) }, /domain name/],
    ['upper-case uuid', { uuid: '0B9C5A3E-6F0D-4C1E-9A7B-2D4E6F8A0C1E' }, /uuid/],
    ['zero vcpus', { vcpus: 0 }, /vcpus/],
    ['fractional vcpus', { vcpus: 1.5 }, /vcpus/],
    ['memory not in KiB', { memoryBytes: 256 * 1024 * 1024 + 1 }, /KiB/],
    ['tiny memory', { memoryBytes: 1024 * 1024 }, /memoryBytes/],
    ['relative disk path', { rootDisk: { path: 'root.qcow2', format: 'qcow2' } }, /not absolute/],
    ['disk path with ..', { rootDisk: { path: '/var/lib/../../etc/shadow', format: 'raw' } }, /not normalized/],
    ['disk path with a newline', { rootDisk: { path: '/a\n/b', format: 'raw' } }, /control/],
    ['unknown disk format', { rootDisk: { path: '/a', format: 'vmdk' as 'raw' } }, /format/],
    ['upper-case MAC', { nics: [{ mac: '52:54:00:AA:00:01', source: { type: 'bridge', bridge: 'br0' } }] }, /MAC/],
    ['multicast MAC', { nics: [{ mac: '01:00:5e:00:00:01', source: { type: 'bridge', bridge: 'br0' } }] }, /multicast/],
    [
      'duplicate MAC',
      { nics: [{ mac: '52:54:00:00:00:01', source: { type: 'bridge', bridge: 'br0' } }, { mac: '52:54:00:00:00:01', source: { type: 'bridge', bridge: 'br0' } }] },
      /duplicate/,
    ],
    ['reserved tap name', { nics: [{ mac: '52:54:00:00:00:01', targetDev: 'vnet0', source: { type: 'bridge', bridge: 'br0' } }] }, /reserves/],
    ['bridge name with markup', { nics: [{ mac: '52:54:00:00:00:01', source: { type: 'bridge', bridge: "br0'/>" } }] }, /interface name/],
    ['tap without a name', { nics: [{ mac: '52:54:00:00:00:01', source: { type: 'tap' } }] }, /targetDev/],
    ['cmdline with a newline', { directBoot: { kernelPath: '/k', cmdline: 'a\nb' } }, /command line/],
    ['socket path over 107 bytes', { guestAgentSocketPath: `/run/${'s'.repeat(110)}` }, /unix socket/],
    ['bad machine type', { machine: "q35'/>" }, /machine/],
    ['bad volume serial', { volumes: [{ path: '/v', format: 'raw', serial: 'a b' }] }, /serial/],
  ];
  for (const [what, patch, msg] of bad) {
    it(`rejects ${what}`, () => {
      assert.throws(() => toDomainXml({ ...minimal, ...patch }), (err: unknown) => err instanceof InvalidDomainSpec && msg.test(err.message));
    });
  }
});

describe('volume disks', () => {
  const vol: VolumeXmlSpec = { path: '/var/lib/kova/libvirt/volumes/7f3e2d1c-0b9a-4876-a5b4-c3d2e1f00a1b.qcow2', format: 'qcow2', serial: '7f3e2d1c-0b9a-4876-a' };

  it('renders a hot-plug disk: virtio, serial, user alias (golden)', () => golden('volume-disk.xml', volumeDiskXml(vol, 'vdb')));
  it('renders a read-only shareable raw disk on shared storage (golden)', () =>
    golden('volume-disk-shared-ro.xml', volumeDiskXml({ ...vol, path: '/srv/kova-shared/volumes/7f3e2d1c-0b9a-4876-a5b4-c3d2e1f00a1b.raw', format: 'raw', readOnly: true, shareable: true, cacheNone: true }, 'vdf')));

  it('renders a domain with volumes after the root disk, the same disks as hot plug, and spare root ports (golden)', () => {
    const spec: LibvirtDomainSpec = { ...minimal, volumes: [vol, { ...vol, path: '/var/lib/kova/libvirt/volumes/b.qcow2', serial: 'second', readOnly: true }] };
    const xml = toDomainXml(spec);
    golden('with-volumes-tcg.xml', xml);
    const indent = (s: string) => s.split('\n').map((l) => (l ? `    ${l}` : l)).join('\n');
    assert.ok(xml.includes(indent(volumeDiskXml(vol, 'vdb'))), 'toDomainXml and volumeDiskXml render the same disk');
    assert.equal((xml.match(/model='pcie-root-port'/g) ?? []).length, 3 + 1 + 4 + 8);
  });

  it('renders a domain booting from a volume: vda with boot order 1, no root disk (golden)', () => {
    const { rootDisk: _, ...noRoot } = minimal;
    const xml = toDomainXml({ ...noRoot, volumes: [{ ...vol, bootOrder: 1 }, { ...vol, path: '/var/lib/kova/libvirt/volumes/b.qcow2', serial: 'data' }] });
    golden('boot-volume-tcg.xml', xml);
    assert.match(xml, /<target dev='vda' bus='virtio'\/>\s*<serial>7f3e2d1c-0b9a-4876-a<\/serial>\s*<boot order='1'\/>/);
    assert.match(xml, /<target dev='vdb' bus='virtio'\/>\s*<serial>data<\/serial>\s*<alias/);
    assert.doesNotMatch(xml, /root\.qcow2/);
  });

  const badVolumes: [string, () => unknown, RegExp][] = [
    ['no disks at all', () => toDomainXml({ ...minimal, rootDisk: undefined }), /root disk or a volume/],
    ['a boot order next to a root disk', () => toDomainXml({ ...minimal, volumes: [{ ...vol, bootOrder: 1 }] }), /boot order/],
    ['duplicate serials', () => toDomainXml({ ...minimal, volumes: [vol, { ...vol, path: '/b' }] }), /duplicate volume serial/],
    ['27 disks', () => toDomainXml({ ...minimal, volumes: Array.from({ length: 26 }, (_, i) => ({ ...vol, serial: `s${i}` })) }), /too many disks/],
    ['a hot-plug target that is not vdX', () => volumeDiskXml(vol, "vdb'/><x"), /disk target/],
    ['a relative hot-plug path', () => volumeDiskXml({ ...vol, path: 'v.qcow2' }, 'vdb'), /not absolute/],
    ['a serial with markup', () => volumeDiskXml({ ...vol, serial: "a'/>" }, 'vdb'), /serial/],
    ['a shareable qcow2 disk (libvirt refuses shared access to it)', () => volumeDiskXml({ ...vol, shareable: true }, 'vdb'), /shareable volume must be raw, not qcow2/],
    ['a shareable qcow2 disk in a domain', () => toDomainXml({ ...minimal, volumes: [{ ...vol, shareable: true }] }), /shareable volume must be raw/],
  ];
  for (const [what, f, msg] of badVolumes) {
    it(`rejects ${what}`, () => assert.throws(f, (err: unknown) => err instanceof InvalidDomainSpec && msg.test(err.message)));
  }
});

describe('push backup (online copy of a raw volume)', () => {
  it('backs up one disk into a qcow2 file and leaves the others out (golden)', () =>
    golden('backup-push.xml', pushBackupXml('vdb', "/srv/kova-shared/snapshots/o'brien & co.qcow2.tmp-ab", 'qcow2', ['vda', 'vdb', 'sda'])));
  it('refuses a bad target, a relative file and an unknown format', () => {
    assert.throws(() => pushBackupXml("vdb'/><x", '/a.qcow2', 'qcow2', []), /disk target/);
    assert.throws(() => pushBackupXml('vdb', 'a.qcow2', 'qcow2', []), /not absolute/);
    assert.throws(() => pushBackupXml('vdb', '/a.vmdk', 'vmdk' as 'raw', []), /unsupported format/);
  });
});

describe('xml escaping', () => {
  it('escapes markup in text and attributes', () => {
    assert.equal(escapeText(`<a>&"'`), `&lt;a&gt;&amp;"'`);
    assert.equal(escapeAttr(`<a>&"'\t\n\r`), '&lt;a&gt;&amp;&quot;&apos;&#9;&#10;&#13;');
  });
  it('refuses characters XML 1.0 cannot carry', () => {
    for (const s of ['\u0000', '\u0001', '\u001b[31m', '\uFFFE', '\uD800']) assert.throws(() => escapeText(`a${s}b`), XmlValueError);
    assert.equal(escapeText('emoji 😀 ok'), 'emoji 😀 ok');
  });
});
