// Pure converter from a fully resolved domain description to libvirt domain XML. The agent
// resolves every host fact first (KVM or TCG, disk and socket paths, bridge names): nothing here
// touches the host, so the output is deterministic and covered by golden files in testdata/.
// Every value is validated, and all of them are escaped by xml.ts.
import { posix } from 'node:path';
import { el, renderXml, type XmlElement } from './xml.js';

/** The XML namespace of kova's <metadata> element; the driver finds its domains by it. */
export const KOVA_METADATA_NS = 'https://kova.dev/xmlns/libvirt/1';

export type DiskFormat = 'qcow2' | 'raw';

export interface DiskXmlSpec {
  path: string;
  format: DiskFormat;
}

export interface VolumeXmlSpec extends DiskXmlSpec {
  /**
   * Shown to the guest as /dev/disk/by-id/virtio-<serial>; [A-Za-z0-9_-], at most 20 chars.
   * Also the device's user alias `ua-<serial>`, so libvirt's device-removed event names it.
   */
  serial?: string;
  readOnly?: boolean;
  /** Several domains use it at once: no exclusive image lock. raw only (libvirt refuses qcow2). */
  shareable?: boolean;
  /** Bypass the host page cache (shared storage, where another host may open the file next). */
  cacheNone?: boolean;
  /** <boot order='N'/>: set on the boot volume of a domain without a root disk. */
  bootOrder?: number;
}

export type NicSource =
  /** libvirt creates a tap (named targetDev when given) and enslaves it to an existing bridge. */
  | { type: 'bridge'; bridge: string }
  /** The agent created the tap itself and wires it (type='ethernet', managed='no'); needs targetDev. */
  | { type: 'tap' };

export interface NicXmlSpec {
  /** Unicast MAC, lower-case, e.g. 52:54:00:12:34:56. */
  mac: string;
  /** Host-side tap name (<= 15 chars). */
  targetDev?: string;
  mtu?: number;
  source: NicSource;
}

export interface DirectBootSpec {
  kernelPath: string;
  initrdPath?: string;
  cmdline?: string;
}

export interface LibvirtDomainSpec {
  /** libvirt domain name, from domainName(): [A-Za-z0-9._-], at most 80 chars. */
  name: string;
  uuid: string;
  vcpus: number;
  /** Guest RAM; a whole number of KiB, at least 16 MiB. */
  memoryBytes: number;
  /** Host fact: /dev/kvm usable → type 'kvm'; otherwise QEMU TCG (type 'qemu'). */
  kvm: boolean;
  /** QEMU machine type; defaults to q35. */
  machine?: string;
  /**
   * The instance's own disk (normally a qcow2 overlay of the image), vda, boots first. Absent
   * when the domain boots from a volume (then the first volume is vda).
   */
  rootDisk?: DiskXmlSpec;
  /** Extra virtio disks after the root disk (vdb, vdc, ...), in order. */
  volumes?: VolumeXmlSpec[];
  /** NoCloud seed ISO, attached read-only as a CD-ROM on virtio-scsi. */
  seedIsoPath?: string;
  nics: NicXmlSpec[];
  /** The serial console (ttyS0) is a pty for `virsh console`, logged to this file by virtlogd. */
  consoleLogPath: string;
  /** Unix socket of the qemu-guest-agent channel (org.qemu.guest_agent.0). */
  guestAgentSocketPath?: string;
  /** Boot a kernel file directly instead of the root disk's boot loader. */
  directBoot?: DirectBootSpec;
  /** Stored in the domain's <metadata>, so the driver can map domains back to Instances. */
  owner?: { instanceKey: string; instanceUID: string; clusterID?: string };
}

export class InvalidDomainSpec extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidDomainSpec';
  }
}

const MAX_NAME = 80;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
// libvirt silently replaces target names with these prefixes by its own (vnetN, ...).
const RESERVED_IFNAME_PREFIXES = ['vnet', 'vif', 'macvtap', 'macvlan'];
const MACHINE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const SERIAL = /^[A-Za-z0-9_-]{1,20}$/;
/** Virtio disk targets: vda..vdz. */
export const MAX_DISKS = 26;
/**
 * Empty PCIe root ports left for hot plug. A q35 domain gets only as many root ports as its
 * devices need (plus at most one), and each hot-plugged virtio disk needs a port of its own;
 * Nova's [libvirt] num_pcie_ports plays the same role.
 */
export const HOTPLUG_PORTS = 8;
/** Devices besides disks and NICs that take a root port: virtio-scsi, USB, balloon, rng. */
const OTHER_PCI_DEVICES = 4;
// Control characters are never legitimate in paths or the kernel command line.
const CONTROL = /[\u0000-\u001F\u007F]/;

function fail(message: string): never {
  throw new InvalidDomainSpec(message);
}

function checkPath(what: string, p: string): string {
  if (typeof p !== 'string' || !posix.isAbsolute(p)) fail(`${what}: path ${JSON.stringify(p)} is not absolute`);
  if (CONTROL.test(p)) fail(`${what}: path ${JSON.stringify(p)} contains control characters`);
  if (posix.normalize(p) !== p || p.endsWith('/')) fail(`${what}: path ${JSON.stringify(p)} is not normalized`);
  if (p.length > 4096) fail(`${what}: path is too long`);
  return p;
}

function checkIfName(what: string, name: string): string {
  if (!IFNAME.test(name)) fail(`${what}: ${JSON.stringify(name)} is not a valid interface name`);
  if (RESERVED_IFNAME_PREFIXES.some((p) => name.startsWith(p))) fail(`${what}: ${JSON.stringify(name)} uses a prefix libvirt reserves`);
  return name;
}

function checkInt(what: string, n: number, min: number, max: number): number {
  if (!Number.isSafeInteger(n) || n < min || n > max) fail(`${what}: ${n} is not an integer in [${min}, ${max}]`);
  return n;
}

function checkVolume(v: VolumeXmlSpec): void {
  if (v.serial !== undefined && !SERIAL.test(v.serial)) fail(`invalid volume serial ${JSON.stringify(v.serial)}`);
  if (v.bootOrder !== undefined) checkInt('volume boot order', v.bootOrder, 1, 26);
  // libvirt: "shared access for disk ... requires use of supported storage format": several
  // QEMU processes cannot share one qcow2 file (each caches its metadata).
  if (v.shareable && v.format !== 'raw') fail(`a shareable volume must be raw, not ${v.format}`);
}

export function validateDomainSpec(spec: LibvirtDomainSpec): void {
  if (!NAME.test(spec.name) || spec.name.length > MAX_NAME) fail(`invalid domain name ${JSON.stringify(spec.name)}`);
  if (!UUID.test(spec.uuid)) fail(`invalid uuid ${JSON.stringify(spec.uuid)} (lower-case RFC 4122 form expected)`);
  checkInt('vcpus', spec.vcpus, 1, 255);
  checkInt('memoryBytes', spec.memoryBytes, 16 * 1024 * 1024, Number.MAX_SAFE_INTEGER);
  if (spec.memoryBytes % 1024 !== 0) fail(`memoryBytes ${spec.memoryBytes} is not a whole number of KiB`);
  if (typeof spec.kvm !== 'boolean') fail('kvm must be a boolean');
  if (spec.machine !== undefined && !MACHINE.test(spec.machine)) fail(`invalid machine type ${JSON.stringify(spec.machine)}`);
  const disks = [...(spec.rootDisk ? [spec.rootDisk] : []), ...(spec.volumes ?? [])];
  if (disks.length === 0) fail('a domain needs a root disk or a volume');
  if (disks.length > MAX_DISKS) fail('too many disks');
  disks.forEach((d, i) => {
    checkPath(`disk ${i}`, d.path);
    if (d.format !== 'qcow2' && d.format !== 'raw') fail(`disk ${i}: unsupported format ${JSON.stringify(d.format)}`);
  });
  const serials = new Set<string>();
  for (const v of spec.volumes ?? []) {
    checkVolume(v);
    if (v.serial !== undefined && serials.has(v.serial)) fail(`duplicate volume serial ${v.serial}`);
    if (v.serial !== undefined) serials.add(v.serial);
    if (spec.rootDisk && v.bootOrder !== undefined) fail('a volume cannot have a boot order next to a root disk');
  }
  if (spec.seedIsoPath !== undefined) checkPath('seed ISO', spec.seedIsoPath);
  const macs = new Set<string>();
  spec.nics.forEach((n, i) => {
    if (!MAC.test(n.mac)) fail(`nic ${i}: invalid MAC ${JSON.stringify(n.mac)} (lower-case aa:bb:cc:dd:ee:ff expected)`);
    if (parseInt(n.mac.slice(0, 2), 16) & 1) fail(`nic ${i}: MAC ${n.mac} is multicast`);
    if (macs.has(n.mac)) fail(`nic ${i}: duplicate MAC ${n.mac}`);
    macs.add(n.mac);
    if (n.targetDev !== undefined) checkIfName(`nic ${i} target`, n.targetDev);
    if (n.mtu !== undefined) checkInt(`nic ${i} mtu`, n.mtu, 68, 65535);
    if (n.source.type === 'bridge') checkIfName(`nic ${i} bridge`, n.source.bridge);
    else if (n.source.type === 'tap') {
      if (n.targetDev === undefined) fail(`nic ${i}: a tap NIC needs targetDev`);
    } else fail(`nic ${i}: unknown source type`);
  });
  checkPath('console log', spec.consoleLogPath);
  if (spec.guestAgentSocketPath !== undefined) {
    checkPath('guest agent socket', spec.guestAgentSocketPath);
    // sun_path holds 108 bytes including the terminating NUL.
    if (Buffer.byteLength(spec.guestAgentSocketPath) > 107) fail('guest agent socket path is longer than a unix socket allows');
  }
  if (spec.directBoot) {
    checkPath('kernel', spec.directBoot.kernelPath);
    if (spec.directBoot.initrdPath !== undefined) checkPath('initrd', spec.directBoot.initrdPath);
    const cmd = spec.directBoot.cmdline;
    if (cmd !== undefined && (CONTROL.test(cmd) || cmd.length > 2048)) fail('kernel command line contains control characters or is too long');
  }
  if (spec.owner) {
    if (CONTROL.test(spec.owner.instanceKey) || CONTROL.test(spec.owner.instanceUID) || CONTROL.test(spec.owner.clusterID ?? '')) fail('owner metadata contains control characters');
  }
}

/** Renders the domain XML; throws InvalidDomainSpec before producing anything for a bad spec. */
export function toDomainXml(spec: LibvirtDomainSpec): string {
  validateDomainSpec(spec);
  return renderXml(domainElement(spec));
}

function domainElement(spec: LibvirtDomainSpec): XmlElement {
  return el(
    'domain',
    { type: spec.kvm ? 'kvm' : 'qemu' },
    el('name', {}, spec.name),
    el('uuid', {}, spec.uuid),
    spec.owner && metadataElement(spec.owner),
    el('memory', { unit: 'KiB' }, String(spec.memoryBytes / 1024)),
    el('vcpu', { placement: 'static' }, String(spec.vcpus)),
    osElement(spec),
    el('features', {}, el('acpi'), el('apic')),
    // TCG cannot pass the host CPU through; its default model boots every x86_64 guest.
    spec.kvm && el('cpu', { mode: 'host-passthrough', check: 'none' }),
    el('clock', { offset: 'utc' }),
    el('on_poweroff', {}, 'destroy'),
    el('on_reboot', {}, 'restart'),
    el('on_crash', {}, 'destroy'),
    devicesElement(spec),
  );
}

function metadataElement(owner: { instanceKey: string; instanceUID: string; clusterID?: string }): XmlElement {
  const cluster = owner.clusterID === undefined ? [] : [el('kova:cluster', {}, owner.clusterID)];
  return el(
    'metadata',
    {},
    el('kova:instance', { 'xmlns:kova': KOVA_METADATA_NS }, el('kova:key', {}, owner.instanceKey), el('kova:uid', {}, owner.instanceUID), ...cluster),
  );
}

function osElement(spec: LibvirtDomainSpec): XmlElement {
  const boot = spec.directBoot;
  return el(
    'os',
    {},
    el('type', { arch: 'x86_64', machine: spec.machine ?? 'q35' }, 'hvm'),
    boot && el('kernel', {}, boot.kernelPath),
    boot?.initrdPath !== undefined && el('initrd', {}, boot.initrdPath),
    boot?.cmdline !== undefined && el('cmdline', {}, boot.cmdline),
  );
}

/** The target of the n-th virtio disk (0: vda). */
export function diskTarget(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n >= MAX_DISKS) throw new InvalidDomainSpec(`no disk target for index ${n}`);
  return `vd${String.fromCharCode(97 + n)}`;
}

/**
 * The <disk> element of a volume at target `dev` (vdb, ...), for hot plug (`virsh
 * attach-device`); toDomainXml renders DomainSpec volumes with the same function.
 */
export function volumeDiskXml(v: VolumeXmlSpec, dev: string): string {
  checkPath('volume', v.path);
  if (v.format !== 'qcow2' && v.format !== 'raw') fail(`volume: unsupported format ${JSON.stringify(v.format)}`);
  checkVolume(v);
  if (!/^vd[a-z]$/.test(dev)) fail(`invalid disk target ${JSON.stringify(dev)}`);
  return renderXml(volumeElement(v, dev));
}

function devicesElement(spec: LibvirtDomainSpec): XmlElement {
  const first = spec.rootDisk ? 1 : 0;
  const volumes = spec.volumes ?? [];
  const ports = first + volumes.length + spec.nics.length + OTHER_PCI_DEVICES + HOTPLUG_PORTS;
  const pcie = spec.machine === undefined || spec.machine.includes('q35');
  return el(
    'devices',
    {},
    spec.rootDisk && diskElement(spec.rootDisk, 'vda', 1),
    ...volumes.map((v, i) => volumeElement(v, diskTarget(first + i))),
    spec.seedIsoPath !== undefined && el('controller', { type: 'scsi', index: 0, model: 'virtio-scsi' }),
    spec.seedIsoPath !== undefined && seedElement(spec.seedIsoPath),
    ...spec.nics.map(nicElement),
    el('serial', { type: 'pty' }, el('log', { file: spec.consoleLogPath, append: 'off' }), el('target', { port: 0 })),
    el('console', { type: 'pty' }, el('target', { type: 'serial', port: 0 })),
    spec.guestAgentSocketPath !== undefined &&
      el(
        'channel',
        { type: 'unix' },
        el('source', { mode: 'bind', path: spec.guestAgentSocketPath }),
        el('target', { type: 'virtio', name: 'org.qemu.guest_agent.0' }),
      ),
    // Explicit indexes: libvirt only numbers root ports it adds itself. PCIe is q35's.
    pcie && el('controller', { type: 'pci', index: 0, model: 'pcie-root' }),
    ...(pcie ? Array.from({ length: ports }, (_, i) => el('controller', { type: 'pci', index: i + 1, model: 'pcie-root-port' })) : []),
    el('memballoon', { model: 'virtio' }),
    // Cloud images block on entropy at first boot (SSH host keys) without it.
    el('rng', { model: 'virtio' }, el('backend', { model: 'random' }, '/dev/urandom')),
  );
}

function diskElement(d: DiskXmlSpec, dev: string, bootOrder?: number): XmlElement {
  return el(
    'disk',
    { type: 'file', device: 'disk' },
    el('driver', { name: 'qemu', type: d.format, discard: 'unmap' }),
    el('source', { file: d.path }),
    el('target', { dev, bus: 'virtio' }),
    bootOrder !== undefined && el('boot', { order: bootOrder }),
  );
}

function volumeElement(v: VolumeXmlSpec, dev: string): XmlElement {
  return el(
    'disk',
    { type: 'file', device: 'disk' },
    el('driver', { name: 'qemu', type: v.format, cache: v.cacheNone ? 'none' : undefined, discard: 'unmap' }),
    el('source', { file: v.path }),
    el('target', { dev, bus: 'virtio' }),
    v.serial !== undefined && el('serial', {}, v.serial),
    v.readOnly && el('readonly'),
    v.shareable && el('shareable'),
    v.bootOrder !== undefined && el('boot', { order: v.bootOrder }),
    // A user alias (ua-) survives in device-removed events, which name the device by alias.
    v.serial !== undefined && el('alias', { name: `ua-${v.serial}` }),
  );
}

function seedElement(path: string): XmlElement {
  return el(
    'disk',
    { type: 'file', device: 'cdrom' },
    el('driver', { name: 'qemu', type: 'raw' }),
    el('source', { file: path }),
    el('target', { dev: 'sda', bus: 'scsi' }),
    el('readonly'),
  );
}

function nicElement(n: NicXmlSpec): XmlElement {
  const bridged = n.source.type === 'bridge';
  return el(
    'interface',
    { type: bridged ? 'bridge' : 'ethernet' },
    el('mac', { address: n.mac }),
    n.source.type === 'bridge' && el('source', { bridge: n.source.bridge }),
    n.targetDev !== undefined && el('target', { dev: n.targetDev, managed: bridged ? undefined : 'no' }),
    el('model', { type: 'virtio' }),
    n.mtu !== undefined && el('mtu', { size: n.mtu }),
  );
}

/**
 * A push backup (`virsh backup-begin`) of the disk at `target` alone into a new file of
 * `format`: QEMU copies each block before the guest overwrites it, so the file is the disk as
 * it was when the job began (crash-consistent), without pausing the guest. The online copy of
 * a raw volume: libvirt refuses the qcow2 overlay of an external snapshot on a shareable disk.
 * `others` are the domain's other disk targets, left out explicitly.
 */
export function pushBackupXml(target: string, file: string, format: DiskFormat, others: readonly string[]): string {
  checkPath('backup target', file);
  if (format !== 'qcow2' && format !== 'raw') fail(`backup: unsupported format ${JSON.stringify(format)}`);
  for (const d of [target, ...others]) if (!/^(vd|sd|hd)[a-z]{1,2}$/.test(d)) fail(`invalid disk target ${JSON.stringify(d)}`);
  return renderXml(
    el(
      'domainbackup',
      { mode: 'push' },
      el(
        'disks',
        {},
        ...others.filter((d) => d !== target).map((d) => el('disk', { name: d, backup: 'no' })),
        el('disk', { name: target, backup: 'yes', type: 'file' }, el('target', { file }), el('driver', { type: format })),
      ),
    ),
  );
}
