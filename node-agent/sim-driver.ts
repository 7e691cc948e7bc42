// An in-process fake hypervisor with real state, like Nova's fake driver: a map of domains,
// volume and snapshot files (sim-volumes.ts), real capacity accounting, the same errors and
// events as a real driver, configurable delays on an injectable clock, and faults injectable
// into every operation. Cheap enough that one process runs a hundred of them: timers only, no
// polling.
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseQuantity } from '../api/quantity.js';
import type { Clock } from '../client/workqueue.js';
import { DomainNotFound, DriverError, InvalidSpec, MigrationAborted, PowerState } from './driver.js';
import type { AttachedVolume, ComputeDriver, DiskFileInfo, InstanceStats, DomainEvent, DomainEventReason, DomainInfo, DomainSize, DomainSpec, DriverCapabilities, HostInfo, MigrateData, MigrationOptions, MigrationProgress, MigrationResult, MigrationTargetOptions, SnapshotDisk, StorageBackend, VolumeAttachSpec, VolumeContent, VolumeDisk } from './driver.js';
import { checkBackend, checkSerial, checkSharedPath, checkSize, checkUID, diskDevice, fingerprint, lockConflict, sharedStore, SimStore } from './sim-volumes.js';
import type { SimFile, SimFileKind, SimHolder } from './sim-volumes.js';

/** The driver operations; every one goes through SimDriver.operation, so faults can be injected into it. */
export const SIM_OPERATIONS = [
  'spawn', 'destroy', 'powerOn', 'powerOff', 'reboot', 'pause', 'unpause',
  'createVolume', 'volumeInfo', 'deleteVolume', 'resizeVolume', 'snapshotVolume', 'snapshotInfo', 'deleteSnapshot', 'attachVolume', 'detachVolume', 'listVolumes',
  'prepareMigrationTarget', 'cleanupMigrationTarget', 'migrate', 'abortMigration', 'resize', 'instanceStats',
] as const;
/** Operations a fault can be injected into: the known ones, and any added later (attach, migrate, ...). */
export type SimOperation = (typeof SIM_OPERATIONS)[number] | (string & {});

/** Real timers that keep the process alive while a domain boots (unlike the work queue's). */
const simClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface SimPreset {
  vcpus: number;
  memory: string | number;
  disk: string | number;
}

export const SIM_PRESETS = {
  small: { vcpus: 4, memory: '16Gi', disk: '200Gi' },
  default: { vcpus: 8, memory: '32Gi', disk: '500Gi' },
  large: { vcpus: 64, memory: '512Gi', disk: '4Ti' },
} satisfies Record<string, SimPreset>;

export interface SimDriverOptions {
  /** A preset name or explicit capacity (default: `default`, 8 vCPUs, 32Gi, 500Gi). */
  preset?: keyof typeof SIM_PRESETS | SimPreset;
  /** Time a spawn or power-on takes to reach Running (default 50 ms). */
  spawnMs?: number;
  /** Time a clean shutdown takes (default 20 ms). */
  stopMs?: number;
  /** Time a reboot takes (default 20 ms). */
  rebootMs?: number;
  /** Time creating, copying, snapshotting or growing a volume file takes (default 0). */
  volumeMs?: number;
  /** Time a hot plug takes (default 0). */
  attachMs?: number;
  /** Time a migration's transfer takes (default 100 ms); progress is reported halfway. */
  migrateMs?: number;
  /**
   * Time a running guest takes to release a volume it is asked to detach (default 0: detached
   * at once). Longer, detachVolume answers `pending` and VolumeDetached follows on onEvent.
   */
  detachDelayMs?: number;
  /** Random extra delay as a fraction of each delay, 0..1 (default 0). */
  jitter?: number;
  /**
   * Overcommit the sim allows before it refuses a spawn, per resource (default cpu 16, ram 1.5,
   * disk 1: kova's default allocation ratios), so scheduler overbooking surfaces as failures.
   */
  overcommit?: { cpu?: number; ram?: number; disk?: number };
  /** Shown as Host.status.hypervisor. */
  hypervisor?: string;
  architecture?: string;
  /** Times the delays above (tests pass a manual clock). */
  clock?: Clock;
  /**
   * A JSON file that keeps the domains across restarts of the process, as a real hypervisor
   * keeps its domains when the agent dies: read at construction, rewritten atomically after
   * every change. Without it the domains live in memory only.
   */
  stateFile?: string;
  /** Names this host's local files (`sim://<id>/volumes/<uid>.qcow2`); default: the state file's, or a new uuid. */
  id?: string;
}

/** One domain as the state file keeps it. */
export interface PersistedDomain {
  name: string;
  uuid: string;
  state: PowerState;
  spec: DomainSpec;
  /** Its volumes now (hot plugs included). */
  volumes?: PersistedAttachment[];
}

export interface PersistedAttachment {
  serial: string;
  device: string;
  disk: VolumeDisk;
  readOnly: boolean;
  shareable: boolean;
}

/** A local volume or snapshot file as the state file keeps it. */
export interface PersistedFile {
  kind: SimFileKind;
  uid: string;
  virtualBytes: number;
  allocatedBytes: number;
  content: string;
}

interface SimStateDoc {
  id?: string;
  domains: PersistedDomain[];
  files?: PersistedFile[];
}

/** Reads a sim state file (the domains a sim host holds); [] when there is none. */
export function readSimState(file: string): PersistedDomain[] {
  return readSimDoc(file).domains;
}

function readSimDoc(file: string): SimStateDoc {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { domains: [] };
    throw e;
  }
  const doc = JSON.parse(text) as Partial<SimStateDoc>;
  if (!Array.isArray(doc.domains)) throw new Error(`sim state file ${file} has no domains list`);
  return { id: doc.id, domains: doc.domains, files: doc.files };
}

interface SimDomain {
  spec: DomainSpec;
  uuid: string;
  state: PowerState;
  /** Bumped by every operation; a timer whose epoch is stale does nothing. */
  epoch: number;
  /** Attached volumes, in attach order. */
  volumes: SimAttachment[];
  /** Time it ran before runningSince (instanceStats' counters grow with running time). */
  runMs?: number;
  /** Since when it runs, on the driver's clock; absent while it does not. */
  runningSince?: number;
}

/**
 * The sim guest's usage per second of running: deterministic, so tests see counters grow. A
 * quarter of each vCPU, half its memory resident, a little disk and network traffic per NIC.
 */
const SIM_USAGE = { cpuShare: 0.25, residentShare: 0.5, readBytesPerS: 64 * 1024, writeBytesPerS: 32 * 1024, requestBytes: 4096, rxBytesPerS: 2048, txBytesPerS: 1024 };

/** A volume attached to a domain; it holds its file (SimFile.holders) while attached. */
interface SimAttachment extends SimHolder {
  dom: SimDomain;
  serial: string;
  device: string;
  disk: VolumeDisk;
  /** Absent when the file is gone (a shared volume after a restart of the process). */
  file?: SimFile;
  /** The guest was asked to release it. */
  detaching?: boolean;
  /** A release (or refusal) is on its way: the token its timer checks. */
  releaseToken?: number;
}

/** How the guest answers the next detach request (failNextDetach). */
export type SimDetachFault = 'ignore' | 'refuse';

export class SimDriver implements ComputeDriver {
  readonly name = 'sim' as const;
  readonly capabilities: DriverCapabilities = { pause: true, reboot: true, gracefulShutdown: true, hostNics: false };

  private readonly domains = new Map<string, SimDomain>();
  private readonly listeners = new Set<(e: DomainEvent) => void>();
  private readonly capacity: { vcpus: number; memoryBytes: number; diskBytes: number };
  private readonly spawnMs: number;
  private readonly stopMs: number;
  private readonly rebootMs: number;
  private readonly volumeMs: number;
  private readonly attachMs: number;
  private readonly migrateMs: number;
  /** What prepareMigrationTarget made here, by domain name. */
  private readonly prepared = new Map<string, { spec: DomainSpec; volumes: VolumeDisk[] }>();
  /** Migrations running from here, by domain name: abortMigration stops them. */
  private readonly migrating = new Map<string, AbortController>();
  private detachDelayMs: number;
  /** This host's own files (its local backend). */
  private readonly localStore: SimStore;
  readonly id: string;
  private detachFaults: SimDetachFault[] = [];
  private releaseTokens = 0;
  private readonly jitter: number;
  private readonly overcommit: { cpu: number; ram: number; disk: number };
  private readonly hypervisor: string;
  private readonly architecture: string;
  private readonly clock: Clock;
  private readonly stateFile?: string;
  private spawnFailures: string[] = [];
  /** Operations that fail every time until cleared (setFault). */
  private readonly faults = new Map<SimOperation, string>();
  /** Calls per operation, failed ones included, for tests that count attempts. */
  readonly calls = Object.fromEntries(SIM_OPERATIONS.map((op) => [op, 0])) as Record<SimOperation, number>;

  constructor(opts: SimDriverOptions = {}) {
    const preset = typeof opts.preset === 'string' || opts.preset === undefined ? SIM_PRESETS[opts.preset ?? 'default'] : opts.preset;
    if (!preset) throw new Error(`unknown sim preset ${JSON.stringify(opts.preset)}; known: ${Object.keys(SIM_PRESETS).join(', ')}`);
    this.capacity = { vcpus: preset.vcpus, memoryBytes: parseQuantity(preset.memory), diskBytes: parseQuantity(preset.disk) };
    this.spawnMs = opts.spawnMs ?? 50;
    this.stopMs = opts.stopMs ?? 20;
    this.rebootMs = opts.rebootMs ?? 20;
    this.volumeMs = opts.volumeMs ?? 0;
    this.attachMs = opts.attachMs ?? 0;
    this.migrateMs = opts.migrateMs ?? 100;
    this.detachDelayMs = opts.detachDelayMs ?? 0;
    this.jitter = opts.jitter ?? 0;
    this.overcommit = { cpu: 16, ram: 1.5, disk: 1, ...opts.overcommit };
    this.hypervisor = opts.hypervisor ?? 'sim';
    this.architecture = opts.architecture ?? 'x86_64';
    this.clock = opts.clock ?? simClock;
    this.stateFile = opts.stateFile;
    const doc = this.stateFile ? readSimDoc(this.stateFile) : { domains: [] };
    this.id = opts.id ?? doc.id ?? randomUUID();
    this.localStore = new SimStore(`sim://${this.id}`);
    // The newest driver of a host id is the one migrations reach (a restarted agent makes a new one).
    SIM_HOSTS.set(this.id, new WeakRef(this));
    for (const f of doc.files ?? []) this.localStore.set(f.kind, f.uid, { virtualBytes: f.virtualBytes, allocatedBytes: f.allocatedBytes, content: f.content });
    for (const d of doc.domains) {
      // A spawn cut short by the process dying had started the guest: it runs on.
      const state = d.state === PowerState.NoState ? PowerState.Running : d.state;
      const dom: SimDomain = { spec: d.spec, uuid: d.uuid, state, epoch: 0, volumes: [], runningSince: state === PowerState.Running ? this.clock.now() : undefined };
      for (const a of d.volumes ?? []) this.hold(dom, { ...a, dom, file: this.storeOf(a.disk.backend).get('volumes', a.disk.uid) });
      this.domains.set(d.name, dom);
    }
  }

  async init(): Promise<void> {}

  async close(): Promise<void> {
    this.listeners.clear();
  }

  async hostInfo(): Promise<HostInfo> {
    return { ...this.capacity, hypervisor: this.hypervisor, architecture: this.architecture };
  }

  async listDomains(): Promise<DomainInfo[]> {
    return [...this.domains.entries()].map(([id, d]) => this.info(id, d));
  }

  async getInfo(id: string): Promise<DomainInfo> {
    return this.info(id, this.get(id));
  }

  async instanceStats(): Promise<InstanceStats[]> {
    this.operation('instanceStats');
    const now = this.clock.now();
    return [...this.domains.entries()].map(([id, d]) => {
      const { instanceKey, instanceUID, state } = this.info(id, d);
      if (state !== PowerState.Running && state !== PowerState.Paused) return { id, instanceKey, instanceUID, state };
      const s = ((d.runMs ?? 0) + (d.runningSince === undefined ? 0 : now - d.runningSince)) / 1000;
      const u = SIM_USAGE;
      const read = Math.floor(s * u.readBytesPerS);
      const write = Math.floor(s * u.writeBytesPerS);
      const nics = d.spec.networks.length;
      return {
        id, instanceKey, instanceUID, state,
        counters: {
          cpuTimeNs: Math.floor(s * d.spec.vcpus * u.cpuShare * 1e9),
          memoryResidentBytes: Math.floor(d.spec.memoryBytes * u.residentShare),
          blockReadBytes: read,
          blockWriteBytes: write,
          blockReadRequests: Math.floor(read / u.requestBytes),
          blockWriteRequests: Math.floor(write / u.requestBytes),
          netRxBytes: Math.floor(s * nics * u.rxBytesPerS),
          netTxBytes: Math.floor(s * nics * u.txBytesPerS),
        },
      };
    });
  }

  async spawn(spec: DomainSpec): Promise<DomainInfo> {
    // A spawn fault fails after the delay (like a real spawn), leaving nothing behind.
    this.count('spawn');
    validateSpec(spec);
    if (this.domains.has(spec.name)) throw new DriverError(`a domain named ${spec.name} already exists on this host`);
    this.checkRoom(spec);
    const dom: SimDomain = { spec: structuredClone(spec), uuid: randomUUID(), state: PowerState.NoState, epoch: 0, volumes: [] };
    const atts = this.spawnAttachments(dom);
    this.domains.set(spec.name, dom);
    for (const a of atts) this.hold(dom, a);
    this.persist();
    const failure = this.spawnFailures.shift() ?? this.faults.get('spawn');
    await this.delay(this.spawnMs);
    if (failure !== undefined || this.domains.get(spec.name) !== dom) {
      // Clean up fully, as the contract requires, whatever happened meanwhile.
      if (this.domains.get(spec.name) === dom) {
        this.domains.delete(spec.name);
        this.releaseAll(dom);
        this.persist();
      }
      throw new DriverError(failure ?? `domain ${spec.name} was destroyed while it was being spawned`);
    }
    dom.state = PowerState.Running;
    dom.epoch++;
    this.emit(spec.name, dom, 'Started');
    return this.info(spec.name, dom);
  }

  async destroy(id: string): Promise<void> {
    this.operation('destroy');
    const dom = this.domains.get(id);
    if (!dom) return;
    this.domains.delete(id);
    // Its volumes stay: they are the user's; only the domain's hold on them ends.
    this.releaseAll(dom);
    dom.epoch++;
    this.emit(id, dom, 'Destroyed', PowerState.NoState);
  }

  async powerOff(id: string, timeoutMs: number): Promise<void> {
    this.operation('powerOff');
    const dom = this.get(id);
    if (isOff(dom.state)) return;
    const epoch = ++dom.epoch;
    // A guest that does not finish its clean shutdown in time is forced off.
    await this.delay(Math.min(this.stopMs, Math.max(0, timeoutMs)));
    if (!this.current(id, dom, epoch)) return;
    dom.state = PowerState.Shutdown;
    this.emit(id, dom, 'Stopped');
  }

  async powerOn(id: string): Promise<void> {
    this.operation('powerOn');
    const dom = this.get(id);
    if (dom.state === PowerState.Running) return;
    if (dom.state === PowerState.Paused) return this.resume(id, dom);
    this.checkLocks(dom);
    const epoch = ++dom.epoch;
    await this.delay(this.spawnMs);
    if (!this.current(id, dom, epoch)) throw new DriverError(`domain ${id} changed state while it was being started`);
    // A new emulator process: its counters start from zero (as libvirt's after a power-on).
    dom.runMs = 0;
    dom.state = PowerState.Running;
    this.emit(id, dom, 'Started');
  }

  async reboot(id: string): Promise<void> {
    this.operation('reboot');
    const dom = this.get(id);
    if (isOff(dom.state)) this.checkLocks(dom);
    const epoch = ++dom.epoch;
    await this.delay(this.rebootMs);
    if (!this.current(id, dom, epoch)) throw new DriverError(`domain ${id} changed state while it was rebooting`);
    if (isOff(dom.state)) dom.runMs = 0; // a reboot of a stopped domain starts a new emulator
    dom.state = PowerState.Running;
    this.emit(id, dom, 'Rebooted');
  }

  async pause(id: string): Promise<void> {
    this.operation('pause');
    const dom = this.get(id);
    if (dom.state === PowerState.Paused) return;
    if (dom.state !== PowerState.Running) throw new DriverError(`cannot pause domain ${id}: it is ${dom.state}, not Running`);
    dom.state = PowerState.Paused;
    dom.epoch++;
    this.emit(id, dom, 'Paused');
  }

  async unpause(id: string): Promise<void> {
    this.operation('unpause');
    return this.resume(id, this.get(id));
  }

  async resize(id: string, size: DomainSize): Promise<DomainInfo> {
    this.operation('resize');
    const dom = this.get(id);
    if (!isOff(dom.state)) throw new DriverError(`cannot resize domain ${id}: it is ${dom.state}; power it off first`);
    // Never shrinks: a larger root disk keeps its size.
    const diskBytes = dom.spec.image !== undefined ? Math.max(dom.spec.diskBytes, size.diskBytes) : size.diskBytes;
    const next: DomainSpec = { ...dom.spec, vcpus: size.vcpus, memoryBytes: size.memoryBytes, diskBytes };
    validateSpec(next);
    // Room for what grows: the domain's current size is counted already.
    const more = (a: number, b: number) => Math.max(0, a - b);
    this.checkRoom({ ...next, vcpus: more(next.vcpus, dom.spec.vcpus), memoryBytes: more(next.memoryBytes, dom.spec.memoryBytes), diskBytes: more(next.diskBytes, dom.spec.diskBytes) });
    dom.spec = next;
    dom.epoch++;
    this.persist();
    return this.info(id, dom);
  }

  private resume(id: string, dom: SimDomain): void {
    if (dom.state === PowerState.Running) return;
    if (dom.state !== PowerState.Paused) throw new DriverError(`cannot unpause domain ${id}: it is ${dom.state}, not Paused`);
    dom.state = PowerState.Running;
    dom.epoch++;
    this.emit(id, dom, 'Resumed');
  }

  // ---- volumes ----

  async createVolume(disk: VolumeDisk, sizeBytes: number, content: VolumeContent): Promise<DiskFileInfo> {
    this.operation('createVolume');
    const store = this.storeOf(checkDisk(disk, 'volume'));
    checkSize(sizeBytes, `volume ${disk.key}`);
    const have = store.get('volumes', disk.uid);
    if (have) return store.info('volumes', disk.uid, have);
    const made = this.contentOf(disk, sizeBytes, content);
    this.checkFileRoom(store, made.allocatedBytes, `volume ${disk.key}`);
    await this.delay(this.volumeMs);
    // Written under a temporary name and renamed into place: a create that finished meanwhile wins.
    const now = store.get('volumes', disk.uid);
    if (now) return store.info('volumes', disk.uid, now);
    store.set('volumes', disk.uid, made);
    this.persistFiles(store);
    return store.info('volumes', disk.uid, made);
  }

  async volumeInfo(disk: VolumeDisk): Promise<DiskFileInfo | undefined> {
    this.operation('volumeInfo');
    const store = this.storeOf(checkDisk(disk, 'volume'));
    const f = store.get('volumes', disk.uid);
    return f && store.info('volumes', disk.uid, f);
  }

  async deleteVolume(disk: VolumeDisk): Promise<void> {
    this.operation('deleteVolume');
    const store = this.storeOf(checkDisk(disk, 'volume'));
    const f = store.get('volumes', disk.uid);
    if (!f) return;
    const user = [...(f.holders ?? [])].find((h) => this.domains.get(h.dom.spec.name) === h.dom);
    if (user) throw new DriverError(`cannot delete volume ${disk.key}: domain ${user.dom.spec.name} on this host uses it`);
    store.delete('volumes', disk.uid);
    this.persistFiles(store);
  }

  async resizeVolume(disk: VolumeDisk, sizeBytes: number, domain?: string): Promise<DiskFileInfo> {
    this.operation('resizeVolume');
    const store = this.storeOf(checkDisk(disk, 'volume'));
    checkSize(sizeBytes, `volume ${disk.key}`);
    const f = this.existing(store, 'volumes', disk);
    if (domain !== undefined) {
      const dom = this.get(domain);
      if (!dom.volumes.some((a) => a.file === f)) throw new DriverError(`cannot grow volume ${disk.key} online: domain ${domain} does not use it`);
      if (isOff(dom.state)) throw new DriverError(`cannot grow volume ${disk.key} online: domain ${domain} is ${dom.state}`);
    }
    if (f.virtualBytes >= sizeBytes) return store.info('volumes', disk.uid, f);
    await this.delay(this.volumeMs);
    f.virtualBytes = Math.max(f.virtualBytes, sizeBytes);
    this.persistFiles(store);
    return store.info('volumes', disk.uid, f);
  }

  async snapshotVolume(disk: VolumeDisk, snap: SnapshotDisk, domain?: string): Promise<DiskFileInfo> {
    this.operation('snapshotVolume');
    const vstore = this.storeOf(checkDisk(disk, 'volume'));
    const sstore = this.storeOf(checkDisk(snap, 'snapshot'));
    const have = sstore.get('snapshots', snap.uid);
    if (have) return sstore.info('snapshots', snap.uid, have);
    const f = this.existing(vstore, 'volumes', disk);
    if (domain !== undefined) {
      const dom = this.get(domain);
      if (!dom.volumes.some((a) => a.file === f)) throw new DriverError(`cannot snapshot volume ${disk.key} through domain ${domain}: it does not use it`);
    }
    // The copy is of the contents at this instant (crash-consistent); later writes are not in it.
    const copy: SimFile = { virtualBytes: f.virtualBytes, allocatedBytes: f.allocatedBytes, content: f.content };
    this.checkFileRoom(sstore, copy.allocatedBytes, `snapshot ${snap.key}`);
    await this.delay(this.volumeMs);
    const now = sstore.get('snapshots', snap.uid);
    if (now) return sstore.info('snapshots', snap.uid, now);
    sstore.set('snapshots', snap.uid, copy);
    this.persistFiles(sstore);
    return sstore.info('snapshots', snap.uid, copy);
  }

  async snapshotInfo(snap: SnapshotDisk): Promise<DiskFileInfo | undefined> {
    this.operation('snapshotInfo');
    const store = this.storeOf(checkDisk(snap, 'snapshot'));
    const f = store.get('snapshots', snap.uid);
    return f && store.info('snapshots', snap.uid, f);
  }

  async deleteSnapshot(snap: SnapshotDisk): Promise<void> {
    this.operation('deleteSnapshot');
    const store = this.storeOf(checkDisk(snap, 'snapshot'));
    if (!store.get('snapshots', snap.uid)) return;
    store.delete('snapshots', snap.uid);
    this.persistFiles(store);
  }

  async attachVolume(id: string, v: VolumeAttachSpec): Promise<AttachedVolume> {
    this.operation('attachVolume');
    checkAttach(v);
    const dom = this.get(id);
    await this.delay(this.attachMs);
    if (this.domains.get(id) !== dom) throw new DomainNotFound(id);
    const have = dom.volumes.find((a) => a.serial === v.serial);
    if (have) return attachedView(have);
    const file = this.existing(this.storeOf(v.disk.backend), 'volumes', v.disk);
    const twin = dom.volumes.find((a) => a.file === file);
    if (twin) throw new DriverError(`volume ${v.disk.key} is attached to domain ${id} already, with serial ${twin.serial}`);
    const att: SimAttachment = { dom, serial: v.serial, device: firstFreeDevice(dom), disk: structuredClone(v.disk), file, readOnly: !!v.readOnly, shareable: !!v.shareable };
    // Hot plug opens the file in the running emulator; an off domain only records it.
    const conflict = isOff(dom.state) ? undefined : lockConflict(file, att);
    if (conflict) throw new DriverError(`cannot attach volume ${v.disk.key} to domain ${id}: ${conflict}`);
    this.hold(dom, att);
    this.persist();
    return attachedView(att);
  }

  async detachVolume(id: string, serial: string): Promise<'detached' | 'pending'> {
    this.operation('detachVolume');
    const dom = this.get(id);
    const att = dom.volumes.find((a) => a.serial === serial);
    if (!att) return 'detached';
    // An off domain has no guest to ask: the disk leaves its definition at once.
    if (isOff(dom.state)) {
      this.unplug(dom, att);
      return 'detached';
    }
    if (att.releaseToken !== undefined) return 'pending';
    const fault = this.detachFaults.shift();
    if (fault === undefined && this.detachDelayMs <= 0) {
      this.unplug(dom, att);
      return 'detached';
    }
    att.detaching = true;
    // Ignored: nothing happens until the request is sent again.
    if (fault === 'ignore') return 'pending';
    const token = (att.releaseToken = ++this.releaseTokens);
    this.clock.setTimeout(() => {
      if (this.domains.get(id) !== dom || att.releaseToken !== token || !dom.volumes.includes(att)) return;
      if (fault === 'refuse') {
        att.detaching = false;
        att.releaseToken = undefined;
        this.emit(id, dom, 'VolumeDetachFailed', dom.state, serial);
        return;
      }
      this.unplug(dom, att);
      this.emit(id, dom, 'VolumeDetached', dom.state, serial);
    }, this.jittered(this.detachDelayMs));
    return 'pending';
  }

  async listVolumes(id: string): Promise<AttachedVolume[]> {
    this.operation('listVolumes');
    return this.get(id).volumes.map(attachedView);
  }

  // ---- migration: between sim hosts of this process ----

  async prepareMigrationTarget(spec: DomainSpec, o: MigrationTargetOptions): Promise<MigrateData> {
    this.operation('prepareMigrationTarget');
    validateSpec(spec);
    if (!this.domains.has(spec.name)) {
      this.checkRoom(spec);
      const volumes: VolumeDisk[] = [];
      for (const v of o.localVolumes ?? []) {
        checkDisk(v.disk, 'volume');
        if (v.disk.backend.type !== 'local') continue;
        // An empty file of the volume's size for the copy to fill.
        if (!this.localStore.get('volumes', v.disk.uid)) {
          this.checkFileRoom(this.localStore, 0, `volume ${v.disk.key}`);
          this.localStore.set('volumes', v.disk.uid, { virtualBytes: v.sizeBytes, allocatedBytes: 0, content: '' });
          volumes.push(v.disk);
        }
      }
      this.persistFiles(this.localStore);
      this.prepared.set(spec.name, { spec: structuredClone(spec), volumes: [...(this.prepared.get(spec.name)?.volumes ?? []), ...volumes] });
    }
    return { simHost: this.id, domain: spec.name };
  }

  async cleanupMigrationTarget(spec: DomainSpec, _o: MigrationTargetOptions): Promise<void> {
    this.operation('cleanupMigrationTarget');
    const p = this.prepared.get(spec.name);
    this.prepared.delete(spec.name);
    if (!p || this.domains.has(spec.name)) return;
    for (const d of p.volumes) if (!this.localStore.get('volumes', d.uid)?.holders?.size) this.localStore.delete('volumes', d.uid);
    this.persistFiles(this.localStore);
  }

  async migrate(id: string, target: MigrateData, o: MigrationOptions, onProgress?: (p: MigrationProgress) => void, signal?: AbortSignal): Promise<MigrationResult> {
    this.operation('migrate');
    const dom = this.get(id);
    const to = target.simHost ? SIM_HOSTS.get(target.simHost)?.deref() : undefined;
    if (!to) throw new DriverError(`cannot reach the target: sim host ${JSON.stringify(target.simHost)} is not in this process`);
    if (to === this) throw new DriverError('cannot migrate a domain to the host it runs on');
    const prepared = to.prepared.get(id);
    if (!prepared) throw new DriverError(`the target sim host ${to.id} has not prepared domain ${id}`);
    if (o.mode === 'Live' && isOff(dom.state)) throw new DriverError(`cannot live-migrate domain ${id}: it is ${dom.state}`);
    if (o.mode === 'Cold' && !isOff(dom.state)) throw new DriverError(`cannot cold-migrate domain ${id}: it is ${dom.state}; stop it first`);
    if (this.migrating.has(id)) throw new DriverError(`domain ${id} is being migrated already`);
    const ac = new AbortController();
    this.migrating.set(id, ac);
    const stop = () => ac.abort();
    signal?.addEventListener('abort', stop, { once: true });
    if (signal?.aborted) ac.abort();
    const started = this.clock.now();
    const total = dom.spec.memoryBytes + (o.copyStorage ? dom.volumes.filter((a) => a.disk.backend.type === 'local').reduce((n, a) => n + (a.file?.allocatedBytes ?? 0), 0) : 0);
    // As long as the data takes at the bandwidth asked for (a throttled migration can be aborted midway).
    const duration = Math.max(this.jittered(this.migrateMs), o.bandwidthBytesPerSec ? (1000 * total) / o.bandwidthBytesPerSec : 0);
    // The sim always makes progress: only the completion timeout can stop it.
    const deadline = started + o.completionTimeoutMs;
    const epoch = dom.epoch;
    try {
      for (let elapsed = 0; elapsed < duration;) {
        const step = Math.min(250, duration - elapsed);
        await this.abortable(step, ac.signal, deadline - this.clock.now());
        elapsed += step;
        if (this.domains.get(id) !== dom || dom.epoch !== epoch) throw new DriverError(`domain ${id} changed while it was being migrated`);
        const done = Math.round((total * elapsed) / duration);
        if (elapsed < duration) onProgress?.({ elapsedMs: this.clock.now() - started, processedBytes: done, totalBytes: total, remainingBytes: total - done });
      }
    } finally {
      signal?.removeEventListener('abort', stop);
      this.migrating.delete(id);
    }
    // The switch-over: the target defines and (Live) resumes the guest; this host forgets it.
    to.checkRoom(dom.spec);
    const moved: SimDomain = { spec: structuredClone(dom.spec), uuid: dom.uuid, state: dom.state, epoch: 0, volumes: [] };
    for (const a of dom.volumes) {
      const local = a.disk.backend.type === 'local';
      const file = local ? to.localStore.get('volumes', a.disk.uid) : a.file;
      if (local && file && a.file) Object.assign(file, { virtualBytes: a.file.virtualBytes, allocatedBytes: a.file.allocatedBytes, content: a.file.content });
      to.hold(moved, { ...a, dom: moved, file, releaseToken: undefined, detaching: undefined });
    }
    this.domains.delete(id);
    this.releaseAll(dom);
    dom.epoch++;
    to.prepared.delete(id);
    to.domains.set(id, moved);
    this.emit(id, dom, 'Destroyed', PowerState.NoState);
    to.persistFiles(to.localStore);
    to.emit(id, moved, moved.state === PowerState.Running ? 'Resumed' : 'Stopped');
    return { elapsedMs: this.clock.now() - started, downtimeMs: o.mode === 'Live' ? 1 : undefined, processedBytes: total, totalBytes: total };
  }

  async abortMigration(id: string): Promise<void> {
    this.operation('abortMigration');
    this.migrating.get(id)?.abort();
  }

  /** Waits `ms`; MigrationAborted when `signal` aborts first or `limitMs` is shorter. */
  private abortable(ms: number, signal: AbortSignal, limitMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(new MigrationAborted('the migration was aborted'));
      const timedOut = limitMs < ms;
      const h = this.clock.setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        if (timedOut) reject(new MigrationAborted('the migration did not finish in time and was aborted'));
        else resolve();
      }, Math.max(0, Math.min(ms, limitMs)));
      const onAbort = () => {
        this.clock.clearTimeout(h);
        reject(new MigrationAborted('the migration was aborted'));
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  onEvent(cb: (e: DomainEvent) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  // ---- fault injection and inspection (tests, scale runs) ----

  /** Makes the next spawn fail with this message, after its delay, leaving nothing behind. */
  failNextSpawn(message = 'simulated spawn failure'): void {
    this.spawnFailures.push(message);
  }

  /**
   * Makes every call of `op` fail with DriverError(`message`) until cleared with `undefined`
   * (a host that is full, an image the hypervisor refuses, a destroy that hangs up). A failed
   * spawn leaves nothing behind; any other failed operation changes nothing.
   */
  setFault(op: SimOperation, message: string | undefined): void {
    if (message === undefined) this.faults.delete(op);
    else this.faults.set(op, message);
  }

  /**
   * The hook every operation starts with (and operations added later, e.g. attach or migrate,
   * must too): counts the call and throws the fault set for it, if any.
   */
  protected operation(op: SimOperation): void {
    this.count(op);
    const message = this.faults.get(op);
    if (message !== undefined) throw new DriverError(message);
  }

  private count(op: SimOperation): void {
    this.calls[op] = (this.calls[op] ?? 0) + 1;
  }

  /** Changes detachDelayMs from now on (requests already sent keep theirs). */
  setDetachDelay(ms: number): void {
    this.detachDelayMs = ms;
  }

  /**
   * How the guest answers the next detach request sent to it (one per call, in order):
   * `ignore`, it never releases the disk until asked again (a guest still booting), or `refuse`,
   * it keeps the disk and VolumeDetachFailed follows after detachDelayMs.
   */
  failNextDetach(fault: SimDetachFault = 'ignore', times = 1): void {
    for (let i = 0; i < times; i++) this.detachFaults.push(fault);
  }

  /**
   * The guest writes `data` over a volume (any volume this host can reach, attached or not):
   * simRead returns `data` from now on, and `bytes` (default data.length) more are allocated.
   */
  simWrite(disk: VolumeDisk, data: string, bytes = data.length): void {
    const store = this.storeOf(checkDisk(disk, 'volume'));
    const f = this.existing(store, 'volumes', disk);
    f.content = fingerprint(data);
    f.allocatedBytes = Math.min(f.virtualBytes, f.allocatedBytes + bytes);
    this.persistFiles(store);
  }

  /** A volume's content fingerprint ('' when blank), or undefined when it does not exist. */
  simRead(disk: VolumeDisk): string | undefined {
    return this.storeOf(checkDisk(disk, 'volume')).get('volumes', disk.uid)?.content;
  }

  /** A snapshot's content fingerprint, or undefined when it does not exist. */
  simReadSnapshot(snap: SnapshotDisk): string | undefined {
    return this.storeOf(checkDisk(snap, 'snapshot')).get('snapshots', snap.uid)?.content;
  }

  /** This host's local files: how many, and the bytes they take (shared ones are not the host's). */
  volumeUsage(): { volumes: number; snapshots: number; allocatedBytes: number } {
    const out = { volumes: 0, snapshots: 0, allocatedBytes: 0 };
    for (const e of this.localStore.entries()) {
      out[e.kind]++;
      out.allocatedBytes += e.file.allocatedBytes;
    }
    return out;
  }

  /** The guest crashes: the domain ends Crashed, as a libvirt domain shut off with reason crashed. */
  crash(id: string): void {
    const dom = this.get(id);
    if (isOff(dom.state)) throw new DriverError(`cannot crash domain ${id}: it is ${dom.state}`);
    dom.state = PowerState.Crashed;
    dom.epoch++;
    this.emit(id, dom, 'Crashed');
  }

  /** The guest powers itself off cleanly (e.g. `poweroff` inside it). */
  shutdownFromGuest(id: string): void {
    const dom = this.get(id);
    if (isOff(dom.state)) throw new DriverError(`cannot shut down domain ${id}: it is ${dom.state}`);
    dom.state = PowerState.Shutdown;
    dom.epoch++;
    this.emit(id, dom, 'GuestShutdown');
  }

  /**
   * Defines a running domain outside of spawn: one kova did not create (no instanceKey) or one
   * left over from an earlier instance (instanceKey and instanceUID), for adoption tests.
   */
  addForeignDomain(name: string, opts: { state?: PowerState; instanceKey?: string; instanceUID?: string; clusterID?: string } = {}): DomainInfo {
    if (this.domains.has(name)) throw new DriverError(`a domain named ${name} already exists on this host`);
    const spec: DomainSpec = { instanceKey: opts.instanceKey ?? '', instanceUID: opts.instanceUID ?? '', clusterID: opts.clusterID, name, vcpus: 1, memoryBytes: 256 * 2 ** 20, diskBytes: 0, image: '', networks: [] };
    const dom: SimDomain = { spec, uuid: randomUUID(), state: opts.state ?? PowerState.Running, epoch: 0, volumes: [] };
    this.domains.set(name, dom);
    this.persist();
    return this.info(name, dom);
  }

  /** Resources held by defined domains (off ones included: they keep their disk and claim). */
  /** The size a domain is defined with (root disk included), for tests; undefined when there is no such domain. */
  simSize(id: string): DomainSize | undefined {
    const d = this.domains.get(id);
    return d && { vcpus: d.spec.vcpus, memoryBytes: d.spec.memoryBytes, diskBytes: d.spec.diskBytes };
  }

  usage(): { domains: number; vcpus: number; memoryBytes: number; diskBytes: number } {
    let vcpus = 0;
    let memoryBytes = 0;
    let diskBytes = 0;
    for (const d of this.domains.values()) {
      vcpus += d.spec.vcpus;
      memoryBytes += d.spec.memoryBytes;
      diskBytes += d.spec.diskBytes;
    }
    return { domains: this.domains.size, vcpus, memoryBytes, diskBytes };
  }

  private checkRoom(spec: DomainSpec): void {
    const u = this.usage();
    const c = this.capacity;
    const o = this.overcommit;
    if (u.vcpus + spec.vcpus > c.vcpus * o.cpu) throw new DriverError(`not enough vCPUs on this host: ${u.vcpus} of ${c.vcpus * o.cpu} in use, ${spec.vcpus} requested`);
    if (u.memoryBytes + spec.memoryBytes > c.memoryBytes * o.ram) throw new DriverError(`not enough memory on this host: ${u.memoryBytes} of ${c.memoryBytes * o.ram} bytes in use, ${spec.memoryBytes} requested`);
    const disk = u.diskBytes + this.localStore.allocatedBytes();
    if (disk + spec.diskBytes > c.diskBytes * o.disk) throw new DriverError(`not enough disk on this host: ${disk} of ${c.diskBytes * o.disk} bytes in use, ${spec.diskBytes} requested`);
  }

  /** Room on the host's disk for a new local file (root disks and local files share it; shared storage is elsewhere). */
  private checkFileRoom(store: SimStore, bytes: number, what: string): void {
    if (store !== this.localStore) return;
    const used = this.usage().diskBytes + this.localStore.allocatedBytes();
    const limit = this.capacity.diskBytes * this.overcommit.disk;
    if (used + bytes > limit) throw new DriverError(`not enough disk on this host for ${what}: ${used} of ${limit} bytes in use, ${bytes} needed`);
  }

  /** The store a disk's backend names: this host's own, or the process's shared one for the path. */
  private storeOf(b: StorageBackend): SimStore {
    return b.type === 'local' ? this.localStore : sharedStore(checkSharedPath(b.path));
  }

  /** The file, or DriverError (qemu-img cannot open it). */
  private existing(store: SimStore, kind: SimFileKind, d: VolumeDisk | SnapshotDisk): SimFile {
    const f = store.get(kind, d.uid);
    if (!f) throw new DriverError(`${kind === 'volumes' ? 'volume' : 'snapshot'} ${d.key} has no file on this host (${store.path(kind, d.uid)})`);
    return f;
  }

  /** A new volume's file holding `content`; checks the source now. */
  private contentOf(disk: VolumeDisk, sizeBytes: number, content: VolumeContent): SimFile {
    switch (content?.type) {
      case 'blank':
        return { virtualBytes: sizeBytes, allocatedBytes: 0, content: '' };
      case 'image':
        if (typeof content.path !== 'string' || content.path === '') throw new InvalidSpec(`volume ${disk.key}: the image content has no path`);
        if (content.format !== 'qcow2' && content.format !== 'raw') throw new InvalidSpec(`volume ${disk.key}: unknown image format ${JSON.stringify(content.format)}`);
        // The sim's images are small raw files (sim-image.ts): a MiB of them is written.
        return { virtualBytes: sizeBytes, allocatedBytes: Math.min(sizeBytes, SIM_IMAGE_BYTES), content: `image:${content.path}` };
      case 'snapshot':
      case 'volume': {
        const [src, kind] = content.type === 'snapshot' ? [content.snapshot, 'snapshots' as const] : [content.volume, 'volumes' as const];
        const f = this.existing(this.storeOf(checkDisk(src, content.type)), kind, src);
        if (f.virtualBytes > sizeBytes) throw new InvalidSpec(`volume ${disk.key} of ${sizeBytes} bytes cannot hold ${content.type} ${src.key} of ${f.virtualBytes} bytes`);
        return { virtualBytes: sizeBytes, allocatedBytes: f.allocatedBytes, content: f.content };
      }
      default:
        throw new InvalidSpec(`volume ${disk.key}: unknown content type ${JSON.stringify((content as { type?: unknown } | undefined)?.type)}`);
    }
  }

  /**
   * The volumes a new domain starts with (not yet holding their files). Without an image it
   * boots from the bootOrder 1 volume, its vda; the others follow from vdb in order.
   */
  private spawnAttachments(dom: SimDomain): SimAttachment[] {
    const spec = dom.spec;
    const list = spec.volumes ?? [];
    // What can never work comes first (InvalidSpec), then what may work later (DriverError).
    const serials = new Set<string>();
    const files = new Set<string>();
    for (const v of list) {
      checkAttach(v);
      if (serials.has(v.serial)) throw new InvalidSpec(`domain ${spec.name} has two volumes with serial ${v.serial}`);
      const file = this.storeOf(v.disk.backend).path('volumes', v.disk.uid);
      if (files.has(file)) throw new InvalidSpec(`domain ${spec.name} lists volume ${v.disk.key} twice`);
      serials.add(v.serial);
      files.add(file);
    }
    // As the libvirt driver: the boot volume and an image exclude each other.
    if (spec.image !== undefined && list.some((v) => v.bootOrder !== undefined)) throw new InvalidSpec(`domain ${spec.name}: a boot volume (bootOrder) and an image exclude each other`);
    const boot = spec.image !== undefined ? undefined : list.filter((v) => v.bootOrder === 1);
    if (boot && boot.length !== 1) throw new InvalidSpec(`domain ${spec.name} has no image and ${boot.length === 0 ? 'no' : 'more than one'} boot volume (bootOrder 1)`);
    const out: SimAttachment[] = [];
    let next = 1;
    for (const v of list) {
      const isBoot = boot?.[0] === v;
      const store = this.storeOf(v.disk.backend);
      const file = store.get('volumes', v.disk.uid);
      if (!file) {
        const msg = `volume ${v.disk.key} of domain ${spec.name} has no file on this host (${store.path('volumes', v.disk.uid)})`;
        throw isBoot ? new InvalidSpec(`boot ${msg}`) : new DriverError(msg);
      }
      const att: SimAttachment = { dom, serial: v.serial, device: isBoot ? diskDevice(0) : diskDevice(next++), disk: v.disk, file, readOnly: !!v.readOnly, shareable: !!v.shareable };
      const conflict = lockConflict(file, att);
      if (conflict) throw new DriverError(`cannot start domain ${spec.name} with volume ${v.disk.key}: ${conflict}`);
      out.push(att);
    }
    return out;
  }

  /** Starting an off domain opens its volumes: each must be free to open (QEMU's lock). */
  private checkLocks(dom: SimDomain): void {
    for (const a of dom.volumes) {
      const conflict = a.file && lockConflict(a.file, a);
      if (conflict) throw new DriverError(`cannot start domain ${dom.spec.name} with volume ${a.disk.key}: ${conflict}`);
    }
  }

  private hold(dom: SimDomain, att: SimAttachment): void {
    dom.volumes.push(att);
    if (att.file) (att.file.holders ??= new Set()).add(att);
  }

  /** Takes the volume off the domain (without persisting). */
  private release(dom: SimDomain, att: SimAttachment): void {
    dom.volumes = dom.volumes.filter((a) => a !== att);
    att.releaseToken = undefined;
    att.file?.holders?.delete(att);
    if (att.file?.holders?.size === 0) delete att.file.holders;
  }

  private unplug(dom: SimDomain, att: SimAttachment): void {
    this.release(dom, att);
    this.persist();
  }

  private releaseAll(dom: SimDomain): void {
    for (const a of dom.volumes) this.release(dom, a);
  }

  private get(id: string): SimDomain {
    const dom = this.domains.get(id);
    if (!dom) throw new DomainNotFound(id);
    return dom;
  }

  private current(id: string, dom: SimDomain, epoch: number): boolean {
    return this.domains.get(id) === dom && dom.epoch === epoch;
  }

  private info(id: string, d: SimDomain): DomainInfo {
    const managed = d.spec.instanceKey !== '';
    return {
      id,
      name: id,
      uuid: d.uuid,
      state: d.state,
      managedByKova: managed,
      instanceKey: managed ? d.spec.instanceKey : undefined,
      instanceUID: managed ? d.spec.instanceUID : undefined,
      clusterID: managed ? d.spec.clusterID : undefined,
      vcpus: d.spec.vcpus,
      memoryBytes: d.spec.memoryBytes,
    };
  }

  /** Writes the state file (if any): every change of a domain's existence or state comes here. */
  private persist(): void {
    if (!this.stateFile) return;
    const domains: PersistedDomain[] = [...this.domains.entries()].map(([name, d]) => ({
      name, uuid: d.uuid, state: d.state, spec: d.spec,
      ...(d.volumes.length ? { volumes: d.volumes.map((a) => ({ serial: a.serial, device: a.device, disk: a.disk, readOnly: a.readOnly, shareable: a.shareable })) } : {}),
    }));
    // The host's own files are kept with its domains; the shared store is the process's only.
    const files: PersistedFile[] = this.localStore.entries().map(({ kind, uid, file }) => ({ kind, uid, virtualBytes: file.virtualBytes, allocatedBytes: file.allocatedBytes, content: file.content }));
    const doc: SimStateDoc = { id: this.id, domains, files };
    // Written whole to a temporary file and renamed: a process killed mid-write leaves the old file.
    const tmp = `${this.stateFile}.tmp`;
    mkdirSync(dirname(this.stateFile), { recursive: true });
    writeFileSync(tmp, JSON.stringify(doc));
    renameSync(tmp, this.stateFile);
  }

  /** After a change of a file in `store`: only the host's own files are in the state file. */
  private persistFiles(store: SimStore): void {
    if (store === this.localStore) this.persist();
  }

  private emit(id: string, d: SimDomain, reason: DomainEventReason, state: PowerState = d.state, serial?: string): void {
    // Every state change comes here: the running time behind instanceStats' counters.
    const now = this.clock.now();
    if (d.runningSince !== undefined) d.runMs = (d.runMs ?? 0) + now - d.runningSince;
    d.runningSince = state === PowerState.Running ? now : undefined;
    // A domain that stops loses the disks it was releasing: they were gone from its definition already.
    if (isOff(state)) for (const a of d.volumes.filter((x) => x.detaching)) this.release(d, a);
    // Every state change and destroy emits: the hypervisor's record is written before anyone hears of it.
    this.persist();
    const managed = d.spec.instanceKey !== '';
    const e: DomainEvent = { id, uuid: d.uuid, state, reason, instanceKey: managed ? d.spec.instanceKey : undefined, instanceUID: managed ? d.spec.instanceUID : undefined, ...(serial !== undefined ? { serial } : {}) };
    for (const cb of this.listeners) {
      try {
        cb(e);
      } catch {
        // A listener's bug must not break the hypervisor.
      }
    }
  }

  private delay(ms: number): Promise<void> {
    const d = this.jittered(ms);
    return d <= 0 ? Promise.resolve() : new Promise((r) => this.clock.setTimeout(r, d));
  }

  private jittered(ms: number): number {
    return ms * (1 + this.jitter * Math.random());
  }
}

/** The sim hosts of this process by id, for migrations between them. */
const SIM_HOSTS = new Map<string, WeakRef<SimDriver>>();

/** The size of the sim's image files (sim-image.ts), what a volume made from an image allocates. */
const SIM_IMAGE_BYTES = 1 << 20;

/** Checks a disk's uid and backend before they name a file; returns its backend. */
function checkDisk(d: VolumeDisk | SnapshotDisk, what: 'volume' | 'snapshot'): StorageBackend {
  if (!d || typeof d !== 'object') throw new InvalidSpec(`no ${what} given`);
  checkUID(d.uid, `${what} ${d.key}`);
  checkBackend(d.backend, `${what} ${d.key}`);
  const format = (d as VolumeDisk).format;
  if (what === 'volume' && format !== undefined && format !== 'qcow2' && format !== 'raw') throw new InvalidSpec(`volume ${d.key}: unsupported volume format ${JSON.stringify(format)}`);
  return d.backend;
}

function checkAttach(v: VolumeAttachSpec): void {
  checkDisk(v.disk, 'volume');
  checkSerial(v.serial, `volume ${v.disk.key}`);
  // libvirt's rule: "shared access for disk ... requires use of supported storage format".
  if (v.shareable && v.disk.format !== 'raw') throw new InvalidSpec(`volume ${v.disk.key}: a shareable volume must be raw, not ${v.disk.format ?? 'qcow2'}`);
}

function attachedView(a: SimAttachment): AttachedVolume {
  return { serial: a.serial, device: a.device, ...(a.detaching ? { detaching: true } : {}) };
}

/** The first device a hot plug can take: vda is the root (or boot) disk. */
function firstFreeDevice(dom: SimDomain): string {
  const used = new Set(dom.volumes.map((a) => a.device));
  for (let n = 1; ; n++) if (!used.has(diskDevice(n))) return diskDevice(n);
}

function isOff(s: PowerState): boolean {
  return s === PowerState.Shutdown || s === PowerState.Crashed;
}

function validateSpec(spec: DomainSpec): void {
  if (!spec.name) throw new DriverError('domain spec has no name');
  if (!spec.instanceKey || !spec.instanceUID) throw new DriverError(`domain spec ${spec.name} has no instance key or uid`);
  if (!Number.isInteger(spec.vcpus) || spec.vcpus < 1) throw new DriverError(`domain ${spec.name}: vcpus must be a positive integer, got ${spec.vcpus}`);
  if (!(spec.memoryBytes > 0)) throw new DriverError(`domain ${spec.name}: memory must be positive, got ${spec.memoryBytes}`);
  if (!(spec.diskBytes >= 0)) throw new DriverError(`domain ${spec.name}: disk size must not be negative, got ${spec.diskBytes}`);
}
