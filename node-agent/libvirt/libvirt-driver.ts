// The ComputeDriver for libvirt/QEMU, through virsh (argument arrays, no shell). Per domain
// it keeps a directory <stateDir>/domains/<name>/ holding the qcow2 overlay of the image, the
// NoCloud seed ISO, the domain XML and the serial console log. Domains are persistent (defined)
// so they survive power-off; kova's are told apart by their <metadata>.
import { execFile, spawn as spawnProcess, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { access, chmod, constants, mkdir, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { DomainNotFound, DriverError, PowerState } from '../driver.js';
import type { ComputeDriver, DomainEvent, DomainEventReason, DomainInfo, DomainSpec, DriverCapabilities, HostInfo } from '../driver.js';
import type { ImageCache } from '../image-cache.js';
import { libvirtDomainOf } from './domain-spec.js';
import { KOVA_METADATA_NS, toDomainXml, type DirectBootSpec, type DiskFormat } from './domain-xml.js';
import { buildNoCloudSeed } from './nocloud.js';
import { parseDomState, parseEventLine, parseKeyValues, parseOwnerMetadata, Virsh, VirshError } from './virsh.js';
import { dieWithParent } from '../../lib/parent-death.js';

const run = promisify(execFile);

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
}

const MiB = 1024 * 1024;

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

  constructor(private readonly o: LibvirtDriverOptions) {
    this.virsh = new Virsh(o.uri ?? 'qemu:///system');
    this.domainsDir = join(o.stateDir, 'domains');
    this.kvm = o.kvm;
    this.imageCache = o.imageCache;
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
    return {
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
  }

  async spawn(spec: DomainSpec): Promise<DomainInfo> {
    if (await this.exists(spec.name)) throw new DriverError(`domain ${spec.name} already exists on this host`);
    const dir = join(this.domainsDir, spec.name);
    let defined = false;
    try {
      const image = await (this.o.resolveImage ?? this.defaultImage)(spec.image ?? "");
      // Pure and validated: a spec that cannot work fails here, before anything is made.
      const plan = libvirtDomainOf(spec, { uuid: randomUUID(), kvm: this.kvm ?? false, dir, directBoot: image.directBoot, minMemoryBytes: this.o.minMemoryBytes ?? 64 * 1024 * 1024 });
      await rm(dir, { recursive: true, force: true }); // leftovers of a spawn that crashed midway
      await mkdir(dir, { mode: 0o711 });
      const size = Math.max(spec.diskBytes, image.virtualSize ?? (await virtualSize(image.path)));
      await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', image.format, '-b', image.path, plan.domain.rootDisk.path, String(size)]);
      await buildNoCloudSeed(plan.domain.seedIsoPath!, plan.seed);
      const xml = toDomainXml(plan.domain);
      const xmlPath = join(dir, 'domain.xml');
      await writeFile(xmlPath, xml);
      await this.virsh.run('define', xmlPath);
      defined = true;
      await this.virsh.run('start', spec.name);
      return await this.getInfo(spec.name);
    } catch (err) {
      // Postcondition: nothing of a failed spawn is left behind.
      if (defined) {
        await this.virsh.run('destroy', spec.name).catch(() => {});
        await this.virsh.run('undefine', spec.name).catch(() => {});
      }
      await rm(dir, { recursive: true, force: true });
      throw err instanceof DriverError ? err : new DriverError(`spawn ${spec.name}: ${(err as Error).message}`, { cause: err });
    }
  }

  async destroy(id: string): Promise<void> {
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

  // TEMPORARY (#16 in progress): replaced by the real implementation.
  createVolume(): Promise<never> { return notYet(); }
  volumeInfo(): Promise<never> { return notYet(); }
  deleteVolume(): Promise<never> { return notYet(); }
  resizeVolume(): Promise<never> { return notYet(); }
  snapshotVolume(): Promise<never> { return notYet(); }
  snapshotInfo(): Promise<never> { return notYet(); }
  deleteSnapshot(): Promise<never> { return notYet(); }
  attachVolume(): Promise<never> { return notYet(); }
  detachVolume(): Promise<never> { return notYet(); }
  listVolumes(): Promise<never> { return notYet(); }

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

function isOn(s: PowerState): boolean {
  return s === PowerState.Running || s === PowerState.Paused;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function imageInfo(path: string): Promise<{ format: string; 'virtual-size': number }> {
  const { stdout } = await run('qemu-img', ['info', '-U', '--output=json', path]);
  return JSON.parse(stdout) as { format: string; 'virtual-size': number };
}

async function virtualSize(path: string): Promise<number> {
  return (await imageInfo(path))['virtual-size'];
}

async function notYet(): Promise<never> {
  throw new DriverError('volumes are not implemented by this driver yet');
}
