// The pure mapping from the agent's DomainSpec (fully resolved: sizes, image, keys, NIC devices
// and addresses) plus this host's facts to what the libvirt driver builds: the domain for
// domain-xml.ts and the NoCloud seed for nocloud.ts. No I/O, so it is covered by golden files
// (testdata/spec-*.json); the driver only runs it, writes the results and calls virsh.
import { join } from 'node:path';
import { InvalidSpec } from '../driver.js';
import type { DomainSpec } from '../driver.js';
import { InvalidDomainSpec, validateDomainSpec } from './domain-xml.js';
import type { DirectBootSpec, LibvirtDomainSpec, NicXmlSpec, VolumeXmlSpec } from './domain-xml.js';
import type { VolumeAttachSpec } from '../driver.js';
import { diskFilePath, volumeFormat } from './volumes.js';
import { InvalidSeed, networkConfigForNics, renderSeedFiles } from './nocloud.js';
import type { NoCloudSeedSpec, SeedNic } from './nocloud.js';

const MiB = 1024 * 1024;

/** What the driver found out about this host and the new domain before mapping. */
export interface LibvirtHostFacts {
  /** The new domain's uuid. */
  uuid: string;
  kvm: boolean;
  /** The domain's own directory: root disk overlay, seed ISO, XML, console log. */
  dir: string;
  /** Boot this kernel instead of the disk's boot loader (images without one). */
  directBoot?: DirectBootSpec;
  /** Domain memory floor: libvirt guests need some RAM to boot at all. */
  minMemoryBytes: number;
  /** The driver's state directory: local volumes are <localStorageDir>/volumes/<uid>.<format>. */
  localStorageDir?: string;
}

/** The disk of a volume as a domain uses it; InvalidSpec for a bad uid or shared path. */
export function volumeXmlOf(v: VolumeAttachSpec, localStorageDir: string): VolumeXmlSpec {
  return {
    path: diskFilePath(v.disk, 'volumes', localStorageDir),
    format: volumeFormat(v.disk),
    serial: v.serial,
    ...(v.readOnly ? { readOnly: true } : {}),
    ...(v.shareable ? { shareable: true } : {}),
    // Another host may open a shared file next (migration), and another domain writes a
    // shareable one at the same time: no stale host page cache.
    ...(v.disk.backend.type === 'shared' || v.shareable ? { cacheNone: true } : {}),
    ...(v.bootOrder !== undefined ? { bootOrder: v.bootOrder } : {}),
  };
}

export interface LibvirtDomainPlan {
  domain: LibvirtDomainSpec;
  seed: NoCloudSeedSpec;
}

/**
 * The libvirt domain and NoCloud seed of `spec`, both validated: InvalidSpec when the spec
 * cannot be built (user-data or keys the seed refuses, a name or value the XML cannot carry,
 * a NIC without exactly one host device).
 */
export function libvirtDomainOf(spec: DomainSpec, host: LibvirtHostFacts): LibvirtDomainPlan {
  const nics: NicXmlSpec[] = [];
  const seedNics: SeedNic[] = [];
  for (const n of spec.networks) {
    const mac = n.mac.toLowerCase();
    // The tap's MTU is the network agent's (or the bridge's) business; the guest learns its
    // MTU from DHCP, or from the seed when it is configured statically.
    if (n.tap !== undefined && n.bridge === undefined) nics.push({ mac, targetDev: n.tap, source: { type: 'tap' } });
    else if (n.bridge !== undefined && n.tap === undefined) nics.push({ mac, source: { type: 'bridge', bridge: n.bridge } });
    else throw new InvalidSpec(`network ${n.network}: a NIC needs exactly one of a bridge or a tap on this host`);
    const seedNic: SeedNic = { mac };
    if (n.address !== undefined) {
      seedNic.address = n.address;
      if (n.gateway !== undefined) seedNic.gateway = n.gateway;
      if (n.mtu !== undefined) seedNic.mtu = n.mtu;
    }
    if (n.dns?.length) seedNic.dns = n.dns;
    seedNics.push(seedNic);
  }
  const seed: NoCloudSeedSpec = {
    instanceId: spec.instanceUID,
    hostname: spec.instanceKey.split('/').pop()!,
    ...(spec.userData !== undefined ? { userData: spec.userData } : {}),
    ...(spec.sshAuthorizedKeys ? { sshAuthorizedKeys: spec.sshAuthorizedKeys } : {}),
    ...(seedNics.length ? { networkConfig: networkConfigForNics(seedNics) } : {}),
  };
  // Without an image the domain boots from its volume with bootOrder 1, which becomes vda.
  const volumes = (spec.volumes ?? []).map((v) => {
    if (host.localStorageDir === undefined && v.disk.backend.type === 'local') throw new InvalidSpec('local volumes need the driver\'s storage directory');
    return volumeXmlOf(v, host.localStorageDir ?? '/');
  });
  if (spec.image === undefined) {
    const boot = volumes.findIndex((v) => v.bootOrder === 1);
    if (boot < 0) throw new InvalidSpec('an instance without an image needs a volume with bootOrder 1');
    volumes.unshift(...volumes.splice(boot, 1));
  } else if (volumes.some((v) => v.bootOrder !== undefined)) {
    throw new InvalidSpec('a boot volume (bootOrder) and an image exclude each other');
  }
  const domain: LibvirtDomainSpec = {
    name: spec.name,
    uuid: host.uuid,
    vcpus: spec.vcpus,
    // QEMU sizes RAM in whole MiB (libvirt rounds up likewise); ask for what the guest gets.
    memoryBytes: Math.max(host.minMemoryBytes, Math.ceil(spec.memoryBytes / MiB) * MiB),
    kvm: host.kvm,
    ...(spec.image !== undefined ? { rootDisk: { path: join(host.dir, 'root.qcow2'), format: 'qcow2' as const } } : {}),
    ...(volumes.length ? { volumes } : {}),
    seedIsoPath: join(host.dir, 'seed.iso'),
    nics,
    consoleLogPath: join(host.dir, 'console.log'),
    ...(host.directBoot ? { directBoot: host.directBoot } : {}),
    owner: { instanceKey: spec.instanceKey, instanceUID: spec.instanceUID, ...(spec.clusterID ? { clusterID: spec.clusterID } : {}) },
  };
  try {
    renderSeedFiles(seed);
    validateDomainSpec(domain);
  } catch (e) {
    if (e instanceof InvalidSeed || e instanceof InvalidDomainSpec) throw new InvalidSpec(e.message, { cause: e });
    throw e;
  }
  return { domain, seed };
}
