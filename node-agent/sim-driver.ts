// An in-process fake hypervisor with real state, like Nova's fake driver: a map of domains,
// real capacity accounting, the same errors and events as a real driver, configurable delays
// on an injectable clock, and faults injectable into every operation. Cheap enough that one
// process runs a hundred of them: timers only, no polling.
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseQuantity } from '../api/quantity.js';
import type { Clock } from '../client/workqueue.js';
import { DomainNotFound, DriverError, PowerState } from './driver.js';
import type { ComputeDriver, DomainEvent, DomainEventReason, DomainInfo, DomainSpec, DriverCapabilities, HostInfo } from './driver.js';

/** The driver operations; every one goes through SimDriver.operation, so faults can be injected into it. */
export const SIM_OPERATIONS = ['spawn', 'destroy', 'powerOn', 'powerOff', 'reboot', 'pause', 'unpause'] as const;
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
}

/** One domain as the state file keeps it. */
export interface PersistedDomain {
  name: string;
  uuid: string;
  state: PowerState;
  spec: DomainSpec;
}

/** Reads a sim state file (the domains a sim host holds); [] when there is none. */
export function readSimState(file: string): PersistedDomain[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const doc = JSON.parse(text) as { domains?: PersistedDomain[] };
  if (!Array.isArray(doc.domains)) throw new Error(`sim state file ${file} has no domains list`);
  return doc.domains;
}

interface SimDomain {
  spec: DomainSpec;
  uuid: string;
  state: PowerState;
  /** Bumped by every operation; a timer whose epoch is stale does nothing. */
  epoch: number;
}

export class SimDriver implements ComputeDriver {
  readonly name = 'sim' as const;
  readonly capabilities: DriverCapabilities = { pause: true, reboot: true, gracefulShutdown: true, hostNics: false };

  private readonly domains = new Map<string, SimDomain>();
  private readonly listeners = new Set<(e: DomainEvent) => void>();
  private readonly capacity: { vcpus: number; memoryBytes: number; diskBytes: number };
  private readonly spawnMs: number;
  private readonly stopMs: number;
  private readonly rebootMs: number;
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
  readonly calls: Record<SimOperation, number> = { spawn: 0, destroy: 0, powerOn: 0, powerOff: 0, reboot: 0, pause: 0, unpause: 0 };

  constructor(opts: SimDriverOptions = {}) {
    const preset = typeof opts.preset === 'string' || opts.preset === undefined ? SIM_PRESETS[opts.preset ?? 'default'] : opts.preset;
    if (!preset) throw new Error(`unknown sim preset ${JSON.stringify(opts.preset)}; known: ${Object.keys(SIM_PRESETS).join(', ')}`);
    this.capacity = { vcpus: preset.vcpus, memoryBytes: parseQuantity(preset.memory), diskBytes: parseQuantity(preset.disk) };
    this.spawnMs = opts.spawnMs ?? 50;
    this.stopMs = opts.stopMs ?? 20;
    this.rebootMs = opts.rebootMs ?? 20;
    this.jitter = opts.jitter ?? 0;
    this.overcommit = { cpu: 16, ram: 1.5, disk: 1, ...opts.overcommit };
    this.hypervisor = opts.hypervisor ?? 'sim';
    this.architecture = opts.architecture ?? 'x86_64';
    this.clock = opts.clock ?? simClock;
    this.stateFile = opts.stateFile;
    if (this.stateFile) {
      for (const d of readSimState(this.stateFile)) {
        // A spawn cut short by the process dying had started the guest: it runs on.
        const state = d.state === PowerState.NoState ? PowerState.Running : d.state;
        this.domains.set(d.name, { spec: d.spec, uuid: d.uuid, state, epoch: 0 });
      }
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

  async spawn(spec: DomainSpec): Promise<DomainInfo> {
    // A spawn fault fails after the delay (like a real spawn), leaving nothing behind.
    this.count('spawn');
    validateSpec(spec);
    if (this.domains.has(spec.name)) throw new DriverError(`a domain named ${spec.name} already exists on this host`);
    this.checkRoom(spec);
    const dom: SimDomain = { spec: structuredClone(spec), uuid: randomUUID(), state: PowerState.NoState, epoch: 0 };
    this.domains.set(spec.name, dom);
    this.persist();
    const failure = this.spawnFailures.shift() ?? this.faults.get('spawn');
    await this.delay(this.spawnMs);
    if (failure !== undefined || this.domains.get(spec.name) !== dom) {
      // Clean up fully, as the contract requires, whatever happened meanwhile.
      if (this.domains.get(spec.name) === dom) {
        this.domains.delete(spec.name);
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
    const epoch = ++dom.epoch;
    await this.delay(this.spawnMs);
    if (!this.current(id, dom, epoch)) throw new DriverError(`domain ${id} changed state while it was being started`);
    dom.state = PowerState.Running;
    this.emit(id, dom, 'Started');
  }

  async reboot(id: string): Promise<void> {
    this.operation('reboot');
    const dom = this.get(id);
    const epoch = ++dom.epoch;
    await this.delay(this.rebootMs);
    if (!this.current(id, dom, epoch)) throw new DriverError(`domain ${id} changed state while it was rebooting`);
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

  private resume(id: string, dom: SimDomain): void {
    if (dom.state === PowerState.Running) return;
    if (dom.state !== PowerState.Paused) throw new DriverError(`cannot unpause domain ${id}: it is ${dom.state}, not Paused`);
    dom.state = PowerState.Running;
    dom.epoch++;
    this.emit(id, dom, 'Resumed');
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
    const dom: SimDomain = { spec, uuid: randomUUID(), state: opts.state ?? PowerState.Running, epoch: 0 };
    this.domains.set(name, dom);
    this.persist();
    return this.info(name, dom);
  }

  /** Resources held by defined domains (off ones included: they keep their disk and claim). */
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
    if (u.diskBytes + spec.diskBytes > c.diskBytes * o.disk) throw new DriverError(`not enough disk on this host: ${u.diskBytes} of ${c.diskBytes * o.disk} bytes in use, ${spec.diskBytes} requested`);
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
    const domains: PersistedDomain[] = [...this.domains.entries()].map(([name, d]) => ({ name, uuid: d.uuid, state: d.state, spec: d.spec }));
    // Written whole to a temporary file and renamed: a process killed mid-write leaves the old file.
    const tmp = `${this.stateFile}.tmp`;
    mkdirSync(dirname(this.stateFile), { recursive: true });
    writeFileSync(tmp, JSON.stringify({ domains }));
    renameSync(tmp, this.stateFile);
  }

  private emit(id: string, d: SimDomain, reason: DomainEventReason, state: PowerState = d.state): void {
    // Every state change and destroy emits: the hypervisor's record is written before anyone hears of it.
    this.persist();
    const managed = d.spec.instanceKey !== '';
    const e: DomainEvent = { id, uuid: d.uuid, state, reason, instanceKey: managed ? d.spec.instanceKey : undefined, instanceUID: managed ? d.spec.instanceUID : undefined };
    for (const cb of this.listeners) {
      try {
        cb(e);
      } catch {
        // A listener's bug must not break the hypervisor.
      }
    }
  }

  private delay(ms: number): Promise<void> {
    const d = ms * (1 + this.jitter * Math.random());
    return d <= 0 ? Promise.resolve() : new Promise((r) => this.clock.setTimeout(r, d));
  }
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

async function notYet(): Promise<never> {
  throw new DriverError('volumes are not implemented by this driver yet');
}
