// The ComputeDriver for libvirt/QEMU, through virsh (argument arrays, no shell). Per domain
// it keeps a directory <stateDir>/domains/<name>/ holding the qcow2 overlay of the image, the
// NoCloud seed ISO, the domain XML and the serial console log. Domains are persistent (defined)
// so they survive power-off; kova's are told apart by their <metadata>. Volumes and snapshots
// are files named by uid (volumes.ts: qcow2, or raw for multiAttach volumes; snapshots are
// qcow2), outside the domain directories: nothing that removes a domain ever removes them.
import { spawn as spawnProcess, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { access, chmod, constants, mkdir, mkdtemp, readdir, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, normalize } from 'node:path';
import { createInterface } from 'node:readline';
import { DomainNotFound, DriverError, InvalidSpec, PowerState } from '../driver.js';
import type {
  AttachedVolume, ComputeDriver, DiskFileInfo, DomainEvent, DomainEventReason, DomainInfo, DomainSize, DomainSpec, DriverCapabilities, HostInfo, InstanceStats,
  MigrateData, MigrationOptions, MigrationProgress, MigrationResult, MigrationTargetOptions, SnapshotDisk, VolumeAttachSpec, VolumeContent, VolumeDisk, VolumeFormat,
} from '../driver.js';
import type { ImageCache } from '../image-cache.js';
import { libvirtDomainOf, volumeXmlOf } from './domain-spec.js';
import { diskTarget, KOVA_METADATA_NS, MAX_DISKS, pushBackupXml, toDomainXml, volumeDiskXml, type DirectBootSpec, type DiskFormat } from './domain-xml.js';
import { buildNoCloudSeed } from './nocloud.js';
import { readDomainStats } from './domstats.js';
import { parseDomainDisks, parseDomState, parseEventLine, parseKeyValues, parseOwnerMetadata, Virsh, VirshError, type DomainDisk } from './virsh.js';
import { convertInto, createBlank, diskFilePath, ensureStorageDir, exists, fileInfo, isOverlayPath, overlayPath, qemuImg, qemuImgInfo, removeTemps, volumeFormat, writeAtomically } from './volumes.js';
import { dieWithParent } from '../../lib/parent-death.js';
import { defaultMigrationEndpoint, LibvirtMigration, type MigrationEndpoint } from './migration.js';
import { launch } from '../../lib/launcher.js';


export interface ResolvedImage {
  path: string;
  format: DiskFormat;
  /** Boot this kernel instead of the disk's boot loader (images without one). */
  directBoot?: DirectBootSpec;
  /** Guest-visible size when known (saves a `qemu-img info`). */
  virtualSize?: number;
}

export interface LibvirtDriverOptions {
  /** Domain directories live in <stateDir>/domains; qemu (libvirt-qemu) must be able to reach them. */
  stateDir: string;
  uri?: string;
  /** Use KVM; default: detectKvm(). */
  kvm?: boolean;
  /**
   * Finds the local base disk of DomainSpec.image. Default: an absolute path is used as is;
   * `namespace/name` is <stateDir>/images/<namespace>/<name>.qcow2.
   */
  resolveImage?: (image: string) => Promise<ResolvedImage>;
  /**
   * The host's image cache: paths it hands out (DomainSpec.image) resolve without probing the
   * file, and the agent fills DomainSpec.image from it.
   */
  imageCache?: ImageCache;
  /** Domain memory floor: libvirt guests need some RAM to boot at all. */
  minMemoryBytes?: number;
  /**
   * How other hosts reach this one for migrations: the libvirt URI their libvirtd dials (peer
   * to peer) and the address QEMU receives the stream on. Default `qemu+tcp://<hostname>/system`
   * (libvirtd must listen on TCP, like Nova's live_migration_uri) and libvirt's choice of address.
   */
  migration?: MigrationEndpoint;
}

const MiB = 1024 * 1024;
/** Domains not seen before whose owner one instanceStats call reads (the rest wait for the next call). */
const MAX_STATS_LOOKUPS = 16;
/** How long after an unplug request the guest is left to act on it before it is asked again. */
const DETACH_RETRY_MS = 15_000;

const EVENT_REASONS: Record<string, DomainEventReason | undefined> = {
  Started: 'Started',
  Resumed: 'Resumed',
  Suspended: 'Paused',
  Crashed: 'Crashed',
  Rebooted: 'Rebooted',
  Undefined: 'Destroyed',
};

export class LibvirtDriver implements ComputeDriver {
  readonly name = 'libvirt' as const;
  readonly capabilities: DriverCapabilities = { pause: true, reboot: true, gracefulShutdown: true, hostNics: true };

  readonly imageCache?: ImageCache;
  private readonly virsh: Virsh;
  private readonly domainsDir: string;
  private kvm: boolean | undefined;
  private readonly listeners = new Set<(e: DomainEvent) => void>();
  private events: ChildProcess | undefined;
  private closed = false;
  /** Last known identity per domain name, for events about domains that are already gone. */
  private readonly known = new Map<string, { uuid: string; instanceKey?: string; instanceUID?: string }>();
  /** When the last unplug request of each `domain\nserial` was sent (detachVolume). */
  private readonly detachRequested = new Map<string, number>();
  /** Per domain name, what getInfo read that does not change while it stays defined. */
  private readonly identity = new Map<string, Omit<DomainInfo, 'state'>>();
  /** What listVolumes last read per domain, for the attach that may follow at once (disksOf). */
  private readonly recentDisks = new Map<string, { at: number; disks: DomainDisks }>();
  /**
   * `domain\nalias` → serial of disks being detached whose alias is not kova's `ua-<serial>`
   * (attached by an older kova): device-removed events name devices by alias only.
   */
  private readonly aliases = new Map<string, string>();
  private readonly migration: LibvirtMigration;

  constructor(private readonly o: LibvirtDriverOptions) {
    // Quick commands go through long-lived virsh shells: a process start costs more than most commands.
    this.virsh = new Virsh(o.uri ?? 'qemu:///system', { shells: true });
    this.domainsDir = join(o.stateDir, 'domains');
    this.kvm = o.kvm;
    this.imageCache = o.imageCache;
    const driver = this;
    this.migration = new LibvirtMigration({
      virsh: this.virsh,
      stateDir: o.stateDir,
      domainsDir: this.domainsDir,
      endpoint: o.migration ?? defaultMigrationEndpoint(),
      get kvm() {
        return driver.kvm ?? false;
      },
      minMemoryBytes: o.minMemoryBytes ?? 64 * 1024 * 1024,
      resolveImage: (image) => (o.resolveImage ?? this.defaultImage)(image),
      exists: (name) => this.exists(name),
      forget: (name) => {
        this.identity.delete(name);
        this.recentDisks.delete(name);
      },
    });
  }

  /** The serial console log of a domain (virtlogd writes it; kept while the domain exists). */
  consoleLogPath(id: string): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(id)) throw new DriverError(`invalid domain name ${JSON.stringify(id)}`);
    return join(this.domainsDir, id, 'console.log');
  }

  async init(): Promise<void> {
    this.closed = false;
    await this.virsh.run('version').catch((err) => {
      throw new DriverError(`libvirt does not answer on ${this.virsh.uri} (is libvirtd running? see hack/install-host-deps.sh)`, { cause: err });
    });
    await mkdir(this.domainsDir, { recursive: true });
    // qemu runs as libvirt-qemu: it must traverse (not list) every directory down to the disks.
    // Kova's own directories (the data dir and below) are opened up; anything above is reported.
    const own = dirname(this.o.stateDir);
    for (let d = this.domainsDir; d !== dirname(d); d = dirname(d)) {
      const st = await stat(d);
      if ((st.mode & 0o001) !== 0) continue;
      if (d.length < own.length) throw new DriverError(`qemu cannot reach ${this.domainsDir}: ${d} is not searchable by others (chmod o+x ${d})`);
      await chmod(d, (st.mode & 0o7777) | 0o001);
    }
    this.kvm ??= await detectKvm();
  }

  async hostInfo(): Promise<HostInfo> {
    const node = parseKeyValues(await this.virsh.run('nodeinfo'));
    const version = /hypervisor: QEMU ([\d.]+)/i.exec(await this.virsh.run('version'))?.[1] ?? '?';
    const fs = await statfs(this.o.stateDir);
    return {
      vcpus: Number(node.get('CPU(s)') ?? 0),
      memoryBytes: parseInt(node.get('Memory size') ?? '0', 10) * 1024,
      diskBytes: fs.blocks * fs.bsize,
      hypervisor: `QEMU ${version} (${this.kvm ? 'kvm' : 'tcg'})`,
      architecture: node.get('CPU model') ?? 'x86_64',
    };
  }

  async listDomains(): Promise<DomainInfo[]> {
    const names = (await this.virsh.run('list', '--all', '--name')).split('\n').map((s) => s.trim()).filter(Boolean);
    const out: DomainInfo[] = [];
    for (const n of names) {
      try {
        out.push(await this.getInfo(n));
      } catch (err) {
        if (!(err instanceof DomainNotFound)) throw err; // undefined between list and info
      }
    }
    return out;
  }

  async getInfo(id: string): Promise<DomainInfo> {
    // What never changes while a domain stays defined (name, uuid, owner, size) is read once;
    // after that only its state: one virsh process per look instead of three (the agent looks
    // at every reconcile, and on a busy host each process costs tens of milliseconds).
    const fixed = this.identity.get(id);
    if (fixed) {
      try {
        return { ...fixed, state: parseDomState(await this.call(id, 'domstate', '--reason', id)) };
      } catch (e) {
        this.identity.delete(id);
        throw e;
      }
    }
    // Three independent virsh calls: run them together (each costs a process and a connection).
    const [infoOut, stateOut, metaOut] = await Promise.all([
      this.call(id, 'dominfo', id),
      this.call(id, 'domstate', '--reason', id),
      this.virsh.run('metadata', id, KOVA_METADATA_NS).catch(() => ''),
    ]);
    const info = parseKeyValues(infoOut);
    const state = parseDomState(stateOut);
    const owner = parseOwnerMetadata(metaOut);
    const uuid = info.get('UUID') ?? '';
    this.known.set(id, { uuid, instanceKey: owner?.instanceKey, instanceUID: owner?.instanceUID });
    const out: DomainInfo = {
      id,
      name: info.get('Name') ?? id,
      uuid,
      state,
      managedByKova: owner !== undefined,
      instanceKey: owner?.instanceKey,
      instanceUID: owner?.instanceUID,
      clusterID: owner?.clusterID,
      vcpus: Number(info.get('CPU(s)') ?? 0),
      memoryBytes: parseInt(info.get('Max memory') ?? '0', 10) * 1024,
    };
    const { state: _state, ...rest } = out;
    if (uuid) this.identity.set(id, rest);
    return out;
  }

  async instanceStats(): Promise<InstanceStats[]> {
    const records = await readDomainStats(this.virsh).catch((err) => {
      throw new DriverError(`domain stats: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    });
    const out: InstanceStats[] = [];
    let lookups = 0;
    for (const r of records) {
      // Who owns a domain is read once (getInfo) and kept while it stays defined: the agent's
      // adoption and spawns have read every kova domain already, so this is one process.
      let who: Pick<DomainInfo, 'instanceKey' | 'instanceUID'> | undefined = this.identity.get(r.name);
      if (!who && lookups < MAX_STATS_LOOKUPS) {
        lookups++;
        who = await this.getInfo(r.name).catch((err) => {
          if (err instanceof DomainNotFound) return undefined; // undefined since the stats were read
          throw err;
        });
        if (!who) continue;
      }
      out.push({ id: r.name, instanceKey: who?.instanceKey, instanceUID: who?.instanceUID, state: r.state, ...(r.counters ? { counters: r.counters } : {}) });
    }
    return out;
  }

  /**
   * Volumes (DomainSpec.volumes) must exist already; without an image the volume with
   * bootOrder 1 is the boot disk and no root overlay is made. A failed spawn removes the
   * domain and its own directory, never a volume file.
   */
  async spawn(spec: DomainSpec): Promise<DomainInfo> {
    this.identity.delete(spec.name);
    if (await this.exists(spec.name)) throw new DriverError(`domain ${spec.name} already exists on this host`);
    const dir = join(this.domainsDir, spec.name);
    let defined = false;
    try {
      const image = spec.image === undefined ? undefined : await (this.o.resolveImage ?? this.defaultImage)(spec.image);
      // Pure and validated: a spec that cannot work fails here, before anything is made.
      const plan = libvirtDomainOf(spec, {
        uuid: randomUUID(),
        kvm: this.kvm ?? false,
        dir,
        directBoot: image?.directBoot,
        minMemoryBytes: this.o.minMemoryBytes ?? 64 * 1024 * 1024,
        localStorageDir: this.o.stateDir,
      });
      for (const v of plan.domain.volumes ?? []) {
        if (!(await exists(v.path))) throw new DriverError(`volume ${v.serial ?? v.path} is not available on this host (no ${v.path})`);
      }
      await rm(dir, { recursive: true, force: true }); // leftovers of a spawn that crashed midway
      await mkdir(dir, { mode: 0o711 });
      if (image) {
        const size = Math.max(spec.diskBytes, image.virtualSize ?? (await virtualSize(image.path)));
        await launch('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', image.format, '-b', image.path, plan.domain.rootDisk!.path, String(size)]);
      }
      await buildNoCloudSeed(plan.domain.seedIsoPath!, plan.seed);
      const xml = toDomainXml(plan.domain);
      const xmlPath = join(dir, 'domain.xml');
      await writeFile(xmlPath, xml);
      await this.virsh.run('define', xmlPath);
      defined = true;
      await this.virsh.run('start', spec.name);
      return await this.getInfo(spec.name);
    } catch (err) {
      // Postcondition: nothing of a failed spawn is left behind; volumes are not spawn's (only
      // the domain's own directory goes, and undefine without --remove-all-storage).
      if (defined) {
        await this.virsh.run('destroy', spec.name).catch(() => {});
        await this.virsh.run('undefine', spec.name).catch(() => {});
      }
      await rm(dir, { recursive: true, force: true });
      throw err instanceof DriverError ? err : new DriverError(`spawn ${spec.name}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Removes the domain and its own directory; attached volume files stay (undefine keeps storage). */
  async destroy(id: string): Promise<void> {
    this.identity.delete(id);
    await this.virsh.run('destroy', id).catch((err: VirshError) => {
      if (!err.noDomain && !err.notRunning) throw new DriverError(err.message, { cause: err });
    });
    await this.virsh.run('undefine', id).catch((err: VirshError) => {
      if (!err.noDomain) throw new DriverError(err.message, { cause: err });
    });
    if (id.length > 0 && !id.includes('/') && id !== '.' && id !== '..') await rm(join(this.domainsDir, id), { recursive: true, force: true });
  }

  async powerOff(id: string, timeoutMs: number): Promise<void> {
    if (!isOn(await this.state(id))) return;
    await this.call(id, 'shutdown', id).catch((err) => {
      if (!(err instanceof VirshError && err.notRunning)) throw err;
    });
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!isOn(await this.state(id))) return;
      await sleep(200);
    }
    await this.call(id, 'destroy', id).catch((err) => {
      if (!(err instanceof VirshError && err.notRunning)) throw err;
    });
  }

  async powerOn(id: string): Promise<void> {
    const s = await this.state(id);
    if (s === PowerState.Paused) await this.call(id, 'resume', id);
    else if (!isOn(s)) await this.call(id, 'start', id);
  }

  async reboot(id: string): Promise<void> {
    // A hard reboot: it works from every state and does not depend on the guest's cooperation.
    if (isOn(await this.state(id))) await this.call(id, 'destroy', id);
    await this.call(id, 'start', id);
  }

  async pause(id: string): Promise<void> {
    const s = await this.state(id);
    if (s === PowerState.Paused) return;
    if (!isOn(s)) throw new DriverError(`domain ${id} is not running`);
    await this.call(id, 'suspend', id);
  }

  async unpause(id: string): Promise<void> {
    const s = await this.state(id);
    if (s === PowerState.Running) return;
    if (s !== PowerState.Paused) throw new DriverError(`domain ${id} is not running`);
    await this.call(id, 'resume', id);
  }

  /**
   * `virsh setvcpus`/`setmaxmem`/`setmem --config` on the defined domain (maximum first when
   * growing, current first when shrinking, so current never exceeds maximum), and `qemu-img
   * resize` of its root overlay (<domainsDir>/<name>/root.qcow2) when the new disk is larger.
   */
  async resize(id: string, size: DomainSize): Promise<DomainInfo> {
    if (!id || id.includes('/') || id === '.' || id === '..') throw new InvalidSpec(`invalid domain name ${JSON.stringify(id)}`);
    if (!Number.isInteger(size.vcpus) || size.vcpus < 1 || size.vcpus > 255) throw new InvalidSpec(`domain ${id}: vcpus must be an integer from 1 to 255, got ${size.vcpus}`);
    checkSize(id, size.memoryBytes);
    if (!Number.isSafeInteger(size.diskBytes) || size.diskBytes < 0) throw new InvalidSpec(`domain ${id}: disk size ${size.diskBytes} is not a number of bytes`);
    const s = await this.state(id);
    if (isOn(s)) throw new DriverError(`cannot resize domain ${id}: it is ${s}; power it off first`);
    this.identity.delete(id);
    const cur = await this.getInfo(id);
    const vcpus = String(size.vcpus);
    if (size.vcpus > cur.vcpus) {
      await this.call(id, 'setvcpus', id, vcpus, '--config', '--maximum');
      await this.call(id, 'setvcpus', id, vcpus, '--config');
    } else if (size.vcpus < cur.vcpus) {
      await this.call(id, 'setvcpus', id, vcpus, '--config');
      await this.call(id, 'setvcpus', id, vcpus, '--config', '--maximum');
    }
    // Rounded as spawn rounds it (libvirtDomainOf): whole MiB, at least minMemoryBytes.
    const kib = Math.max(this.o.minMemoryBytes ?? 64 * 1024 * 1024, Math.ceil(size.memoryBytes / 2 ** 20) * 2 ** 20) / 1024;
    const curKib = Math.round(cur.memoryBytes / 1024);
    if (kib > curKib) {
      await this.call(id, 'setmaxmem', id, `${kib}KiB`, '--config');
      await this.call(id, 'setmem', id, `${kib}KiB`, '--config');
    } else if (kib < curKib) {
      await this.call(id, 'setmem', id, `${kib}KiB`, '--config');
      await this.call(id, 'setmaxmem', id, `${kib}KiB`, '--config');
    }
    const root = join(this.domainsDir, id, 'root.qcow2');
    const disk = await fileInfo(root);
    // Never shrinks: a root disk larger than asked for (the image's own size) keeps its size.
    if (disk && size.diskBytes > disk.virtualBytes) await qemuImg('resize', '-q', '-f', 'qcow2', root, String(size.diskBytes));
    this.identity.delete(id);
    return this.getInfo(id);
  }

  // Volumes. Files: <stateDir>/{volumes,snapshots}/<uid>.<format> for the local backend,
  // <shared path>/{volumes,snapshots}/<uid>.<format> for a shared one (volumes.ts): a volume
  // is qcow2 or raw (VolumeDisk.format, raw for multiAttach), a snapshot qcow2. Every file is
  // written under a temporary name and renamed, so after a crash a file either is complete or
  // is absent, and repeating the call redoes the work.

  /**
   * Idempotent: an existing volume file is returned untouched. A crash midway leaves only a
   * `.tmp-*` file, removed by the next call. A clone of a volume that `content.domain` runs
   * with is copied online like snapshotVolume (and finishes a commit a crash left first).
   */
  async createVolume(disk: VolumeDisk, sizeBytes: number, content: VolumeContent): Promise<DiskFileInfo> {
    checkSize(disk.key, sizeBytes);
    const format = volumeFormat(disk);
    const path = this.volumePath(disk);
    const have = await fileInfo(path);
    if (have) return have;
    let src: { path: string; format: VolumeFormat; online?: { domain: string; target: string } };
    switch (content.type) {
      case 'blank':
        await ensureStorageDir(dirname(path));
        await writeAtomically(path, (tmp) => createBlank(tmp, format, sizeBytes));
        return (await fileInfo(path))!;
      case 'image':
        if (!isAbsolute(content.path) || normalize(content.path) !== content.path) throw new InvalidSpec(`${disk.key}: image path ${JSON.stringify(content.path)} is not absolute`);
        if (content.format !== 'qcow2' && content.format !== 'raw') throw new InvalidSpec(`${disk.key}: unsupported image format ${JSON.stringify(content.format)}`);
        src = { path: content.path, format: content.format };
        break;
      case 'snapshot':
        src = { path: this.snapshotPath(content.snapshot), format: 'qcow2' };
        // A local restore is a copy-on-write overlay on the snapshot (which never changes):
        // ready at once, whatever its size. Deleting the snapshot first gives each such volume
        // its own copy of the data (deleteSnapshot). Shared restores are full copies, since
        // a volume in use on another host could not be given its copy from here, and so are
        // raw ones (a raw file has no backing file).
        if (format === 'qcow2' && disk.backend.type === 'local' && content.snapshot.backend.type === 'local') return this.overlayOn(disk, path, src.path, sizeBytes);
        break;
      case 'volume': {
        const from = this.volumePath(content.volume);
        src = { path: from, format: volumeFormat(content.volume) };
        if (content.domain !== undefined) {
          await this.finishLeftoverCommit(content.domain, from);
          const att = await this.attachedDisk(content.domain, from);
          if (att && !att.readOnly) src.online = { domain: content.domain, target: att.target };
        }
        break;
      }
      default:
        throw new InvalidSpec(`${disk.key}: unknown volume content`);
    }
    if (!(await exists(src.path))) throw new DriverError(`${disk.key}: source ${src.path} does not exist`);
    const srcSize = (await qemuImgInfo(src.path))['virtual-size'];
    if (srcSize > sizeBytes) throw new InvalidSpec(`${disk.key}: the source holds ${srcSize} bytes, more than the volume's ${sizeBytes}`);
    await ensureStorageDir(dirname(path));
    const online = src.online;
    await writeAtomically(path, (tmp) =>
      online
        ? this.copyOnline(online.domain, online.target, src.path, src.format, tmp, format, disk.uid, sizeBytes)
        : convertInto(src.path, src.format, tmp, format, sizeBytes, content.type === 'volume'),
    );
    return (await fileInfo(path))!;
  }

  async volumeInfo(disk: VolumeDisk): Promise<DiskFileInfo | undefined> {
    return fileInfo(this.volumePath(disk));
  }

  /** Refuses while any domain on this host (running or defined) has the file in its disks. */
  async deleteVolume(disk: VolumeDisk): Promise<void> {
    const path = this.volumePath(disk);
    const users = await this.domainsUsing(path);
    if (users.length) throw new DriverError(`${disk.key}: volume is in use by domain ${users.join(', ')}`);
    await rm(path, { force: true });
    await removeTemps(path);
  }

  /**
   * Online (`virsh blockresize`) when `domain` runs with the volume, else `qemu-img resize`
   * (which fails while another process holds the file). Never shrinks; repeating is a no-op.
   * A shareable (raw) volume is grown through every running domain on this host that has it,
   * since each QEMU learns the new size only from its own block_resize (the file is already
   * that large for the second: a no-op but for the guest's notice).
   */
  async resizeVolume(disk: VolumeDisk, sizeBytes: number, domain?: string): Promise<DiskFileInfo> {
    checkSize(disk.key, sizeBytes);
    const path = this.volumePath(disk);
    if (domain !== undefined) await this.finishLeftoverCommit(domain, path);
    const info = await fileInfo(path);
    if (!info) throw new DriverError(`${disk.key}: volume file ${path} does not exist`);
    if (sizeBytes <= info.virtualBytes) return info;
    const att = domain === undefined ? undefined : await this.attachedDisk(domain, path);
    if (att) await this.call(domain!, 'blockresize', domain!, att.target, `${sizeBytes}B`);
    else await qemuImg('resize', '-q', '-f', volumeFormat(disk), path, String(sizeBytes));
    if (volumeFormat(disk) === 'raw') {
      for (const other of await this.domainsUsing(path)) {
        if (other === domain) continue;
        const o = await this.attachedDisk(other, path).catch(() => undefined);
        if (o) await this.call(other, 'blockresize', other, o.target, `${sizeBytes}B`);
      }
    }
    return (await fileInfo(path))!;
  }

  /**
   * Offline: `qemu-img convert` of the volume. Online (`domain` runs with it): an external
   * disk-only snapshot puts an overlay (<snap uid>.overlay.qcow2 next to the volume) on top,
   * the frozen volume file is copied, and `blockcommit --active --shallow --pivot` merges the
   * overlay back into the volume file only (never deeper, into a base another disk may share). Crash safety: the snapshot is written under a temporary name and renamed last; an
   * overlay a crash left in the domain's chain is committed first by the next call that names
   * the domain (finishLeftoverCommit), so the volume file is whole again before anything else.
   */
  async snapshotVolume(disk: VolumeDisk, snap: SnapshotDisk, domain?: string): Promise<DiskFileInfo> {
    const format = volumeFormat(disk);
    const volPath = this.volumePath(disk);
    const snapPath = this.snapshotPath(snap);
    if (domain !== undefined) await this.finishLeftoverCommit(domain, volPath);
    const have = await fileInfo(snapPath);
    if (have) return have;
    if (!(await exists(volPath))) throw new DriverError(`${disk.key}: volume file ${volPath} does not exist`);
    const att = domain === undefined ? undefined : await this.attachedDisk(domain, volPath);
    await ensureStorageDir(dirname(snapPath));
    await writeAtomically(snapPath, (tmp) =>
      // A read-only attachment never writes: its file can be copied as it is.
      att && !att.readOnly ? this.copyOnline(domain!, att.target, volPath, format, tmp, 'qcow2', snap.uid, 0) : convertInto(volPath, format, tmp, 'qcow2', 0, att !== undefined),
    );
    return (await fileInfo(snapPath))!;
  }

  async snapshotInfo(snap: SnapshotDisk): Promise<DiskFileInfo | undefined> {
    return fileInfo(this.snapshotPath(snap));
  }

  /**
   * Volumes restored from a local snapshot are overlays on it: each first gets its own copy of
   * the data (online through the running domain that uses it, `blockpull`; offline
   * `qemu-img rebase -b ''`, which copies before it drops the backing file, so a crash midway
   * leaves the volume whole and the next call finishes). Only then is the file removed.
   */
  async deleteSnapshot(snap: SnapshotDisk): Promise<void> {
    const path = this.snapshotPath(snap);
    if (snap.backend.type === 'local' && (await exists(path))) {
      for (const vol of await this.restoredFrom(path)) await this.flatten(vol);
    }
    await rm(path, { force: true });
    await removeTemps(path);
  }

  /** A new local volume of sizeBytes backed by the snapshot file `base`. */
  private async overlayOn(disk: VolumeDisk, path: string, base: string, sizeBytes: number): Promise<DiskFileInfo> {
    if (!(await exists(base))) throw new DriverError(`${disk.key}: source ${base} does not exist`);
    const baseSize = (await qemuImgInfo(base))['virtual-size'];
    if (baseSize > sizeBytes) throw new InvalidSpec(`${disk.key}: the source holds ${baseSize} bytes, more than the volume's ${sizeBytes}`);
    await ensureStorageDir(dirname(path));
    await writeAtomically(path, (tmp) => qemuImg('create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', base, tmp, String(sizeBytes)));
    return (await fileInfo(path))!;
  }

  /** The local volume files whose backing file is `base`. */
  private async restoredFrom(base: string): Promise<string[]> {
    const dir = join(this.o.stateDir, 'volumes');
    const out: string[] = [];
    for (const f of await readdir(dir).catch(() => [] as string[])) {
      if (!/^[0-9a-f-]{36}\.qcow2$/.test(f)) continue;
      const file = join(dir, f);
      const info = await qemuImgInfo(file).catch(() => undefined);
      if (info?.['backing-filename'] === base) out.push(file);
    }
    return out;
  }

  /** Copies a volume's backing data into it and drops the backing file. */
  private async flatten(vol: string): Promise<void> {
    for (const domain of await this.domainsUsing(vol)) {
      const att = await this.attachedDisk(domain, vol);
      if (!att) continue; // defined but off: the offline rebase below is safe
      // An overlay of a snapshot being taken sits on top: pulling into it would leave the volume
      // file behind. Wait until that commit is done (the agent retries).
      if (att.source !== vol) throw new DriverError(`volume ${vol} is being snapshotted through domain ${domain}; try again once that is done`);
      await this.call(domain, 'blockpull', domain, att.target, '--wait');
      return;
    }
    await qemuImg('rebase', '-f', 'qcow2', '-b', '', vol);
  }

  /**
   * Hot plug (`attach-device --live --config`) when the domain runs, persistent only when it
   * is off. Idempotent by serial: an attached volume returns its device; a half-done attach
   * (in the live domain but not its config, or the reverse) is completed on the same target.
   */
  async attachVolume(id: string, v: VolumeAttachSpec): Promise<AttachedVolume> {
    const { live, liveDisks, configDisks } = await this.disksOf(id, true);
    const spec = (() => {
      try {
        return volumeXmlOf(v, this.o.stateDir);
      } catch (e) {
        throw e instanceof InvalidSpec ? e : new InvalidSpec((e as Error).message, { cause: e });
      }
    })();
    const inLive = liveDisks.find((d) => d.serial === v.serial);
    const inConfig = configDisks.find((d) => d.serial === v.serial);
    if ((!live || inLive) && inConfig) return { serial: v.serial, device: (inLive ?? inConfig).target };
    if (!(await exists(spec.path))) throw new DriverError(`${v.disk.key}: volume file ${spec.path} does not exist`);
    let target = inLive?.target ?? inConfig?.target;
    if (target === undefined) {
      const used = new Set([...liveDisks, ...configDisks].map((d) => d.target));
      for (let i = 0; i < MAX_DISKS && target === undefined; i++) if (!used.has(diskTarget(i))) target = diskTarget(i);
      if (target === undefined) throw new DriverError(`domain ${id} has no free disk target`);
    }
    let xml: string;
    try {
      xml = volumeDiskXml(spec, target);
    } catch (e) {
      throw new InvalidSpec((e as Error).message, { cause: e });
    }
    const flags = [...(live && !inLive ? ['--live'] : []), ...(!inConfig ? ['--config'] : [])];
    const dir = await mkdtemp(join(tmpdir(), 'kova-attach-'));
    try {
      const file = join(dir, 'disk.xml');
      await writeFile(file, xml);
      await this.call(id, 'attach-device', id, file, ...flags);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    return { serial: v.serial, device: target };
  }

  /**
   * Asks the guest to release the disk (live, and from the persistent config). virsh waits
   * ~5 s for the guest and reports success either way, so the answer comes from the live XML
   * afterwards: still there → `pending` (the device-removed event, or a later call, tells).
   * A repeated call re-sends the live request (a guest that was booting may have ignored it).
   */
  async detachVolume(id: string, serial: string): Promise<'detached' | 'pending'> {
    const { live, liveDisks, configDisks } = await this.disksOf(id);
    const inLive = liveDisks.find((d) => d.serial === serial);
    const inConfig = configDisks.find((d) => d.serial === serial);
    if (!inLive && !inConfig) {
      this.detachRequested.delete(`${id}\n${serial}`);
      return 'detached';
    }
    if (inLive?.alias) this.aliases.set(`${id}\n${inLive.alias}`, serial);
    // A second unplug request while the guest is still acting on the first one cancels it
    // (Linux pciehp treats it as the attention button pressed again within its 5 s window):
    // ask again only when the last request is well past that.
    const key = `${id}\n${serial}`;
    const last = this.detachRequested.get(key);
    if (inLive && !inConfig && last !== undefined && Date.now() - last < DETACH_RETRY_MS) return 'pending';
    this.detachRequested.set(key, Date.now());
    const flags = [...(inLive ? ['--live'] : []), ...(inConfig ? ['--config'] : [])];
    await this.call(id, 'detach-disk', id, (inLive ?? inConfig)!.target, ...flags).catch((err) => {
      // QEMU refuses a second unplug request while the first is in flight.
      if (err instanceof VirshError && /in the process of unplug|already in the process|unplug.*pending/i.test(err.stderr)) return '';
      throw err;
    });
    if (!live) {
      this.detachRequested.delete(key);
      return 'detached';
    }
    const after = parseDomainDisks(await this.call(id, 'dumpxml', id));
    if (after.some((d) => d.serial === serial)) return 'pending';
    this.detachRequested.delete(key);
    return 'detached';
  }

  /** From the live XML when the domain runs (detaching: gone from the config only), else the config. */
  async listVolumes(id: string): Promise<AttachedVolume[]> {
    const read = await this.disksOf(id);
    this.recentDisks.set(id, { at: Date.now(), disks: read });
    const { live, liveDisks, configDisks } = read;
    const disks = live ? liveDisks : configDisks;
    return disks
      .filter((d) => d.device === 'disk' && d.serial !== undefined)
      .map((d) => ({ serial: d.serial!, device: d.target, ...(live && !configDisks.some((c) => c.serial === d.serial) ? { detaching: true } : {}) }));
  }

  // ---- migration (node-agent/libvirt/migration.ts) ----

  async prepareMigrationTarget(spec: DomainSpec, o: MigrationTargetOptions): Promise<MigrateData> {
    return this.migration.prepareTarget(spec, o);
  }

  async cleanupMigrationTarget(spec: DomainSpec, o: MigrationTargetOptions): Promise<void> {
    return this.migration.cleanupTarget(spec, o);
  }

  async migrate(id: string, target: MigrateData, o: MigrationOptions, onProgress?: (p: MigrationProgress) => void, signal?: AbortSignal): Promise<MigrationResult> {
    return this.migration.migrate(id, target, o, onProgress, signal);
  }

  async abortMigration(id: string): Promise<void> {
    return this.migration.abort(id);
  }

  private volumePath(disk: VolumeDisk): string {
    return diskFilePath(disk, 'volumes', this.o.stateDir);
  }

  private snapshotPath(snap: SnapshotDisk): string {
    return diskFilePath(snap, 'snapshots', this.o.stateDir);
  }

  /** Live disks (when the domain runs or is paused) and persistent-config disks. Throws DomainNotFound. */
  /**
   * The domain's disks, live and persistent: two dumpxml calls at once (a running or paused
   * domain's XML carries its id; a shut-off one's does not). `reuse` takes what listVolumes
   * read just before, once: the agent runs one operation per domain at a time, so a hot plug
   * right after the listing that found it missing skips reading the XML again.
   */
  private async disksOf(id: string, reuse = false): Promise<DomainDisks> {
    const recent = this.recentDisks.get(id);
    this.recentDisks.delete(id);
    if (reuse && recent && Date.now() - recent.at < 300) return recent.disks;
    const [liveXml, configXml] = await Promise.all([this.call(id, 'dumpxml', id), this.call(id, 'dumpxml', '--inactive', id)]);
    const live = /^<domain\b[^>]*\bid=['"]\d+['"]/m.test(liveXml);
    return { live, liveDisks: live ? parseDomainDisks(liveXml) : [], configDisks: parseDomainDisks(configXml) };
  }

  /** The live disk of a running domain that writes to `path` (directly or through an overlay). */
  private async attachedDisk(domain: string, path: string): Promise<DomainDisk | undefined> {
    const { live, liveDisks } = await this.disksOf(domain);
    if (!live) return undefined;
    return liveDisks.find((d) => d.source === path || d.backing.includes(path));
  }

  /** Domains (running or defined) whose disks include the file, anywhere in their chains. */
  private async domainsUsing(path: string): Promise<string[]> {
    const names = (await this.virsh.run('list', '--all', '--name')).split('\n').map((s) => s.trim()).filter(Boolean);
    const users: string[] = [];
    for (const n of names) {
      const xmls = await Promise.all([this.virsh.run('dumpxml', n).catch(() => ''), this.virsh.run('dumpxml', '--inactive', n).catch(() => '')]);
      if (xmls.some((x) => parseDomainDisks(x).some((d) => d.source === path || d.backing.includes(path)))) users.push(n);
    }
    return users;
  }

  /**
   * A crash during an online copy can leave the domain writing to an overlay on top of the
   * volume (the live chain is `<uid>.overlay.qcow2` → volume). Commit it back and pivot, then
   * remove the overlay, so the volume file holds everything again. Needs the domain running;
   * a no-op otherwise or when there is no such overlay.
   */
  private async finishLeftoverCommit(domain: string, volPath: string): Promise<void> {
    const d = await this.attachedDisk(domain, volPath);
    if (!d || d.source === volPath || d.source === undefined || !isOverlayPath(d.source) || d.backing[0] !== volPath) return;
    await this.commitOverlay(domain, d.target, d.source);
  }

  private async commitOverlay(domain: string, target: string, overlay: string): Promise<void> {
    try {
      await this.call(domain, 'blockcommit', domain, target, '--active', '--shallow', '--pivot', '--wait');
    } catch (err) {
      // The commit job of a crashed run is still there ("... already in active block job"):
      // pivot to it (an active commit is ready once the overlay is merged).
      if (!(err instanceof VirshError && /block job/i.test(err.stderr))) throw err;
      await this.call(domain, 'blockjob', domain, target, '--pivot');
    }
    await rm(overlay, { force: true });
  }

  /**
   * A crash-consistent copy of the volume at `target` of a running domain into `dest` (a new
   * file of destFormat, at least sizeBytes), without pausing the guest: external disk-only
   * snapshot of that disk alone, copy of the now frozen volume file, commit of the overlay
   * back. A raw volume is shareable, and libvirt puts no qcow2 overlay on a shareable disk: it
   * is copied by a push backup instead (copyByBackup).
   */
  private async copyOnline(domain: string, target: string, volPath: string, volFormat: VolumeFormat, dest: string, destFormat: VolumeFormat, destUid: string, sizeBytes: number): Promise<void> {
    if (volFormat === 'raw') return this.copyByBackup(domain, target, dest, destFormat, sizeBytes);
    const overlay = overlayPath(volPath, destUid);
    await rm(overlay, { force: true }); // not in the chain (finishLeftoverCommit ran): a stale file
    const { liveDisks } = await this.disksOf(domain);
    const specs = liveDisks.flatMap((d) => ['--diskspec', d.target === target ? `${d.target},snapshot=external,file=${overlay.replace(/,/g, ',,')}` : `${d.target},snapshot=no`]);
    await this.call(domain, 'snapshot-create-as', domain, '--disk-only', '--atomic', '--no-metadata', ...specs);
    try {
      await convertInto(volPath, 'qcow2', dest, destFormat, sizeBytes, true);
    } finally {
      await this.commitOverlay(domain, target, overlay);
    }
  }

  /**
   * `virsh backup-begin` of the disk at `target` alone into `dest` (pushBackupXml), waited for.
   * QEMU must keep others from writing the file meanwhile: with another running domain
   * writing the same shareable volume, the job cannot start (DriverError naming it; the agent
   * tries again), since a copy that another writer changes underneath is not point-in-time.
   * A backup job a crashed call left is aborted first (its file was a temporary one).
   */
  private async copyByBackup(domain: string, target: string, dest: string, destFormat: VolumeFormat, sizeBytes: number): Promise<void> {
    if (parseKeyValues(await this.call(domain, 'domjobinfo', domain)).get('Operation') === 'Backup') await this.call(domain, 'domjobabort', domain).catch(() => '');
    const { liveDisks } = await this.disksOf(domain);
    const xml = pushBackupXml(target, dest, destFormat, liveDisks.map((d) => d.target));
    const dir = await mkdtemp(join(tmpdir(), 'kova-backup-'));
    try {
      await writeFile(join(dir, 'backup.xml'), xml);
      await this.call(domain, 'backup-begin', domain, join(dir, 'backup.xml')).catch((err) => {
        if (err instanceof VirshError && /lock/i.test(err.stderr)) {
          throw new DriverError(`cannot copy ${target} of domain ${domain} at one point in time while another domain writes the same volume: ${err.stderr.trim()}`, { cause: err });
        }
        throw err;
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    for (;;) {
      const job = parseKeyValues(await this.call(domain, 'domjobinfo', domain));
      if (job.get('Operation') !== 'Backup' || job.get('Job type') === 'None') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const done = parseKeyValues(await this.call(domain, 'domjobinfo', '--completed', domain));
    if (done.get('Operation') !== 'Backup' || done.get('Job type') !== 'Completed') {
      throw new DriverError(`backup of ${target} of domain ${domain} did not complete: ${done.get('Job type') ?? 'unknown'}${done.get('Error message') ? `: ${done.get('Error message')}` : ''}`);
    }
    if ((await qemuImgInfo(dest))['virtual-size'] < sizeBytes) await qemuImg('resize', '-q', '-f', destFormat, dest, String(sizeBytes));
  }

  onEvent(cb: (e: DomainEvent) => void): () => void {
    this.listeners.add(cb);
    this.watchEvents();
    return () => {
      this.listeners.delete(cb);
      if (this.listeners.size === 0) this.stopEvents();
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
    this.stopEvents();
    this.virsh.close();
  }

  /** `virsh event --loop`, restarted if it dies while anyone listens. */
  private watchEvents(): void {
    if (this.events || this.closed || this.listeners.size === 0) return;
    // It would outlive a SIGKILLed agent (it only waits on libvirt): it dies with us instead.
    const [cmd, args] = dieWithParent('virsh', ['-c', this.virsh.uri, 'event', '--all', '--loop']);
    const child = spawnProcess(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    this.events = child;
    createInterface({ input: child.stdout! }).on('line', (line) => void this.onEventLine(line));
    child.on('exit', () => {
      if (this.events !== child) return;
      this.events = undefined;
      if (!this.closed && this.listeners.size > 0) setTimeout(() => this.watchEvents(), 1000).unref();
    });
    child.on('error', () => {});
  }

  private stopEvents(): void {
    const child = this.events;
    this.events = undefined;
    child?.kill();
  }

  private async onEventLine(line: string): Promise<void> {
    const ev = parseEventLine(line);
    if (!ev) return;
    // Defined again (maybe by someone else, with another uuid or owner) or gone: read it afresh.
    if (ev.event === 'Defined' || ev.event === 'Undefined') this.identity.delete(ev.domain);
    if (ev.event === 'device-removed' || ev.event === 'device-removal-failed') return this.onDeviceEvent(ev.domain, ev.event, ev.detail);
    let reason = EVENT_REASONS[ev.event];
    if (ev.event === 'Stopped') reason = ev.detail === 'Shutdown' ? 'GuestShutdown' : ev.detail === 'Crashed' ? 'Crashed' : 'Stopped';
    if (!reason) return;
    let state: PowerState = PowerState.NoState;
    if (reason !== 'Destroyed') state = await this.state(ev.domain).catch(() => PowerState.NoState);
    const who = this.known.get(ev.domain) ?? (await this.getInfo(ev.domain).catch(() => undefined));
    if (reason === 'Destroyed') this.known.delete(ev.domain);
    const event: DomainEvent = { id: ev.domain, uuid: who?.uuid ?? '', instanceKey: who?.instanceKey, instanceUID: who?.instanceUID, state, reason };
    for (const cb of this.listeners) cb(event);
  }

  /** device-removed / device-removal-failed of a volume (alias `ua-<serial>`): VolumeDetached / VolumeDetachFailed. */
  private async onDeviceEvent(domain: string, event: string, alias: string): Promise<void> {
    const key = `${domain}\n${alias}`;
    const serial = alias.startsWith('ua-') ? alias.slice(3) : this.aliases.get(key);
    if (serial === undefined) return;
    if (event === 'device-removed') this.aliases.delete(key);
    const state = await this.state(domain).catch(() => PowerState.NoState);
    const who = this.known.get(domain) ?? (await this.getInfo(domain).catch(() => undefined));
    const reason: DomainEventReason = event === 'device-removed' ? 'VolumeDetached' : 'VolumeDetachFailed';
    const e: DomainEvent = { id: domain, uuid: who?.uuid ?? '', instanceKey: who?.instanceKey, instanceUID: who?.instanceUID, state, reason, serial };
    for (const cb of this.listeners) cb(e);
  }

  private async state(id: string): Promise<PowerState> {
    return parseDomState(await this.call(id, 'domstate', '--reason', id));
  }

  private async exists(name: string): Promise<boolean> {
    return this.virsh.run('domuuid', name).then(
      () => true,
      (err: VirshError) => {
        if (err.noDomain) return false;
        throw new DriverError(err.message, { cause: err });
      },
    );
  }

  /** Runs virsh for domain id, mapping "no such domain" to DomainNotFound. */
  private async call(id: string, ...args: string[]): Promise<string> {
    try {
      return await this.virsh.run(...args);
    } catch (err) {
      if (err instanceof VirshError && err.noDomain) throw new DomainNotFound(id);
      throw err;
    }
  }

  private readonly defaultImage = async (image: string): Promise<ResolvedImage> => {
    const cached = this.imageCache?.describe(image);
    if (cached) return { path: image, ...cached };
    const path = isAbsolute(image) ? image : join(this.o.stateDir, 'images', ...image.split('/').map((p) => p.replace(/[^A-Za-z0-9_.-]/g, '_'))) + '.qcow2';
    await access(path, constants.R_OK).catch(() => {
      throw new DriverError(`image ${image} is not available on this host (looked for ${path})`);
    });
    const format = (await imageInfo(path)).format;
    if (format !== 'qcow2' && format !== 'raw') throw new DriverError(`image ${image} has unsupported format ${format}`);
    return { path, format };
  };
}

/**
 * Whether KVM can run ordinary guests: /dev/kvm must be usable and backed by hardware
 * virtualization (kvm_intel or kvm_amd). Some sandboxes expose /dev/kvm from another backend
 * (kvm_pvm) that cannot run a BIOS boot: guests stop at once with an emulation failure.
 */
export async function detectKvm(): Promise<boolean> {
  const ok = (p: string, mode = constants.F_OK) => access(p, mode).then(() => true, () => false);
  if (!(await ok('/dev/kvm', constants.R_OK | constants.W_OK))) return false;
  return (await ok('/sys/module/kvm_intel')) || (await ok('/sys/module/kvm_amd'));
}

function checkSize(key: string, sizeBytes: number): void {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) throw new InvalidSpec(`${key}: size ${sizeBytes} is not a positive number of bytes`);
}

interface DomainDisks {
  live: boolean;
  liveDisks: DomainDisk[];
  configDisks: DomainDisk[];
}

function isOn(s: PowerState): boolean {
  return s === PowerState.Running || s === PowerState.Paused;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function imageInfo(path: string): Promise<{ format: string; 'virtual-size': number }> {
  const { stdout } = await launch('qemu-img', ['info', '-U', '--output=json', path]);
  return JSON.parse(stdout) as { format: string; 'virtual-size': number };
}

async function virtualSize(path: string): Promise<number> {
  return (await imageInfo(path))['virtual-size'];
}

