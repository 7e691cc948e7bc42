// The hypervisor boundary of the node agent, in the spirit of Nova's ComputeDriver: one
// interface whose doc comments are the contract, implemented by the libvirt driver and by the
// in-process SimDriver. The agent is the only caller; hypervisor ids never reach the API except
// as status.domainUUID.
import { createHash } from 'node:crypto';
import type { InstancePowerState } from '../api/kinds/index.js';
import { isDNS1123Label } from '../api/validation.js';

/** What the hypervisor says about a domain; also written to Instance status.powerState. */
export const PowerState = {
  Running: 'Running',
  Paused: 'Paused',
  /** Off after a clean shutdown (from inside the guest, or powerOff). */
  Shutdown: 'Shutdown',
  /** Off (or stuck) because the guest crashed or its emulator died. */
  Crashed: 'Crashed',
  /** Being built, or a state the driver cannot map. */
  NoState: 'NoState',
} as const satisfies { [S in InstancePowerState]: S };
export type PowerState = InstancePowerState;

export interface HostInfo {
  vcpus: number;
  memoryBytes: number;
  diskBytes: number;
  /** Human-readable, e.g. `QEMU 7.2 (tcg)` or `sim`. */
  hypervisor: string;
  /** e.g. `x86_64`. */
  architecture: string;
}

export interface DomainInfo {
  /** Driver id; for every kova driver this is the domain name (see domainName). */
  id: string;
  name: string;
  uuid: string;
  state: PowerState;
  /** True when kova created the domain (it carries kova's metadata). */
  managedByKova: boolean;
  /** `namespace/name` of the owning Instance, from the domain's metadata. */
  instanceKey?: string;
  /** metadata.uid of the owning Instance, from the domain's metadata. */
  instanceUID?: string;
  /** The cluster that created the domain (DomainSpec.clusterID), when recorded. */
  clusterID?: string;
  vcpus: number;
  memoryBytes: number;
}

/**
 * One NIC, fully resolved by the agent from the instance's Port and Network: the driver needs
 * nothing else (it never reads the API). How it reaches the network on this host is a tap the
 * host network agent made (`tap`), or a bridge the hypervisor attaches a new tap to (`bridge`);
 * drivers that attach NICs to the host need exactly one, the sim needs neither.
 */
export interface NicSpec {
  network: string;
  port?: string;
  mac: string;
  ip?: string;
  tap?: string;
  bridge?: string;
  /** The guest's MTU when the network needs a smaller one (VXLAN). */
  mtu?: number;
  /**
   * Static guest configuration (`ip/prefix`, gateway), for networks without DHCP; with DHCP
   * the guest takes its Port address from the host's dnsmasq and this is absent.
   */
  address?: string;
  gateway?: string;
  dns?: string[];
}

/**
 * Where a volume's or a snapshot's file lives: the host's own storage directory (`local`), or
 * a directory mounted at the same path on every host (`shared`, an NFS export in production).
 */
export type StorageBackend = { type: 'local' } | { type: 'shared'; path: string };

/**
 * A Volume's disk as the agent resolved it. The driver derives the file from `uid` (an RFC 4122
 * uid, checked before it touches a path) and `backend`; callers never pass paths.
 */
export interface VolumeDisk {
  /** metadata.uid of the Volume. */
  uid: string;
  /** `namespace/name`, for messages. */
  key: string;
  backend: StorageBackend;
  /** The file's format, fixed by the VolumeType (volumeFormat in volume/storage.ts); absent: qcow2. */
  format?: VolumeFormat;
}

/**
 * qcow2 (the default: thin, overlays, restores that share the snapshot's data) or raw, for a
 * VolumeType with multiAttach: QEMU cannot let several processes write one qcow2 file (its
 * metadata is cached per process), so libvirt refuses `<shareable/>` on qcow2, as Cinder
 * refuses multiattach on qcow2-file backends. A raw volume is a sparse file.
 */
export type VolumeFormat = 'qcow2' | 'raw';

/** A VolumeSnapshot's file, named like a VolumeDisk. */
export interface SnapshotDisk {
  uid: string;
  key: string;
  backend: StorageBackend;
}

export interface DiskFileInfo {
  /** The file (the sim driver's own id). */
  path: string;
  /** Guest-visible size. */
  virtualBytes: number;
  /** Bytes used on the host. */
  allocatedBytes: number;
}

/** What a new volume holds. */
export type VolumeContent =
  | { type: 'blank' }
  /** A local copy of an Image (the host's image cache), converted into the volume. */
  | { type: 'image'; path: string; format: 'qcow2' | 'raw' }
  /** A ready snapshot, restored into the volume. */
  | { type: 'snapshot'; snapshot: SnapshotDisk }
  /**
   * A clone of another volume: its contents now. `domain` names a running domain on this host
   * that uses it, so the copy is taken crash-consistently without stopping the guest.
   */
  | { type: 'volume'; volume: VolumeDisk; domain?: string };

/** A volume as a domain uses it. */
export interface VolumeAttachSpec {
  disk: VolumeDisk;
  /** What the guest sees (/sys/block/vdX/serial, /dev/disk/by-id/virtio-SERIAL): volumeSerial(uid). */
  serial: string;
  readOnly?: boolean;
  /** Several domains may use it at once (VolumeType multiAttach): no exclusive lock. Needs disk.format raw. */
  shareable?: boolean;
  /** 1: the boot disk (DomainSpec without an image). */
  bootOrder?: number;
}

/** A volume attached to a domain, as the hypervisor reports it. */
export interface AttachedVolume {
  serial: string;
  /** Target device in the domain, e.g. vdb. */
  device: string;
  /** The guest was asked to release it and has not yet. */
  detaching?: boolean;
}

/** Everything a driver needs to build a domain; the agent fills it from the Instance. */
export interface DomainSpec {
  /** `namespace/name` of the Instance, stored in the domain's metadata. */
  instanceKey: string;
  instanceUID: string;
  /**
   * Identity of the kova cluster (the uid of its kube-system namespace), stored with the owner
   * so an agent never mistakes another cluster's domains on a shared hypervisor for orphans.
   */
  clusterID?: string;
  /** From domainName(); also the driver id of the new domain. */
  name: string;
  vcpus: number;
  memoryBytes: number;
  diskBytes: number;
  /**
   * Image reference (`namespace/name`, or a path/URL once images are local). Absent when the
   * domain boots from the volume with bootOrder 1 (Nova's boot from volume).
   */
  image?: string;
  userData?: string;
  /** The KeyPair's public key(s), given to the guest (cloud-init ssh_authorized_keys). */
  sshAuthorizedKeys?: string[];
  networks: NicSpec[];
  /** Volumes attached when the domain is defined, in order, after the root disk (vdb, vdc, ...). */
  volumes?: VolumeAttachSpec[];
}

/** A domain's size (ComputeDriver.resize). */
export type DomainSize = Pick<DomainSpec, 'vcpus' | 'memoryBytes' | 'diskBytes'>;

/**
 * What the target host of a migration prepared, for the source host's driver to connect to:
 * the hypervisor URI, the inbound address, where disks go. Opaque to the agent, which carries
 * it from the target's driver to the source's through Migration.status.migrateData (Nova's
 * migrate_data).
 */
export type MigrateData = Record<string, string>;

/** A local volume that moves with its domain: the target pre-creates a file of this size for the copy. */
export interface MigratingVolume {
  disk: VolumeDisk;
  sizeBytes: number;
}

export interface MigrationTargetOptions {
  /** Local disks will be copied: make the root disk (an overlay on the same cached image) and each local volume's file, empty, for the copy to fill. */
  copyStorage: boolean;
  localVolumes?: MigratingVolume[];
}

export interface MigrationOptions {
  /** Live: the guest keeps running; Cold: the domain is off and only its definition and disks move. */
  mode: 'Live' | 'Cold';
  /** Copy the local disks while the guest runs (block copy): incrementally for the root disk, whole for local volumes. */
  copyStorage: boolean;
  allowPostCopy?: boolean;
  allowAutoConverge?: boolean;
  /** Transfer limit in bytes per second; unlimited when absent. */
  bandwidthBytesPerSec?: number;
  /** Abort when not finished after this long. */
  completionTimeoutMs: number;
  /** Abort when the remaining data has not shrunk for this long. */
  progressTimeoutMs: number;
}

/** How far a running migration is, as the hypervisor reports it. */
export interface MigrationProgress {
  elapsedMs: number;
  processedBytes?: number;
  totalBytes?: number;
  remainingBytes?: number;
}

export interface MigrationResult {
  elapsedMs: number;
  /** How long the guest was paused at switch-over (Live). */
  downtimeMs?: number;
  processedBytes?: number;
  totalBytes?: number;
}

/**
 * Why a domain changed state, as reported through onEvent. VolumeDetached: the guest released
 * a volume whose detach was pending; VolumeDetachFailed: it refused (the agent asks again).
 */
export type DomainEventReason = 'Started' | 'Stopped' | 'GuestShutdown' | 'Crashed' | 'Paused' | 'Resumed' | 'Rebooted' | 'Destroyed' | 'VolumeDetached' | 'VolumeDetachFailed';

export interface DomainEvent {
  id: string;
  uuid: string;
  instanceKey?: string;
  instanceUID?: string;
  /** State after the change (NoState for Destroyed). */
  state: PowerState;
  reason: DomainEventReason;
  /** The volume's serial, for VolumeDetached and VolumeDetachFailed. */
  serial?: string;
}

/**
 * What the emulator of a running (or paused) domain has used since it started: counters, except
 * memoryResidentBytes. They restart from zero with a new emulator process (a power-on).
 */
export interface DomainCounters {
  cpuTimeNs: number;
  /** Resident set of the emulator (libvirt balloon.rss); absent when the hypervisor does not say. */
  memoryResidentBytes?: number;
  /** Summed over the domain's disks. */
  blockReadBytes: number;
  blockWriteBytes: number;
  blockReadRequests: number;
  blockWriteRequests: number;
  /** Summed over the domain's interfaces, from the guest's side (rx: received by the guest). */
  netRxBytes: number;
  netTxBytes: number;
}

/** One domain's identity, state and usage (ComputeDriver.instanceStats). */
export interface InstanceStats {
  /** Driver id (the domain name). */
  id: string;
  /** The owning Instance, as in DomainInfo; absent for domains kova did not create. */
  instanceKey?: string;
  instanceUID?: string;
  state: PowerState;
  /** Absent while the domain has no emulator (off, crashed, being built). */
  counters?: DomainCounters;
}

export interface DriverCapabilities {
  pause: boolean;
  reboot: boolean;
  /** Graceful (ACPI) shutdown honours powerOff's timeout before forcing off. */
  gracefulShutdown: boolean;
  /**
   * NICs attach to host devices (NicSpec.tap or .bridge) that kova networking provides: on a
   * host without it, an instance with networks waits instead of spawning.
   */
  hostNics: boolean;
}

// Errors: every driver method throws only these (or lets a programming error through).
// DomainNotFound and DriverError are worth retrying later; InvalidSpec is not (the same spec
// fails the same way): the agent reports it as terminal. Tell them apart with instanceof.

/** The domain does not exist (any more). destroy() never throws it. */
export class DomainNotFound extends Error {
  constructor(readonly id: string) {
    super(`domain ${JSON.stringify(id)} not found on this host`);
    this.name = 'DomainNotFound';
  }
}

/** Any other driver failure; the message is meant for the user (it lands in conditions). Retryable. */
export class DriverError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DriverError';
  }
}

/**
 * The DomainSpec can never be built as given (user-data the seed builder refuses, a value the
 * domain XML cannot carry): retrying the same spec is pointless, a new spec may work.
 */
export class InvalidSpec extends DriverError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InvalidSpec';
  }
}

/** The migration was stopped (abortMigration, the signal, or a timeout): the domain still runs here. */
export class MigrationAborted extends DriverError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MigrationAborted';
  }
}

/**
 * A hypervisor on one host. All methods may be called concurrently for different domains;
 * the agent never runs two operations on the same domain at once. A driver only acts: the
 * agent hands it fully resolved specs and it never calls the API.
 *
 * The sim driver implements the same contract with an injectable clock for its delays and
 * fault injection for every operation (SimDriver.setFault: spawn, destroy, powerOn, powerOff,
 * reboot, pause, unpause, and any operation added later, e.g. attach or migrate, through the
 * same SimDriver.operation hook), so the agent's failure paths run in fast tests and scale runs.
 */
export interface ComputeDriver {
  /** `libvirt` or `sim`: what Host.status.driver shows. */
  readonly name: 'libvirt' | 'sim';
  readonly capabilities: DriverCapabilities;

  /** Connects to the hypervisor. Idempotent; called once before anything else (and again after close()). */
  init(): Promise<void>;

  /** Physical capacity of the host. */
  hostInfo(): Promise<HostInfo>;

  /** Every domain on the host, kova's and others', in any state. */
  listDomains(): Promise<DomainInfo[]>;

  /** The domain's current info. Throws DomainNotFound. */
  getInfo(id: string): Promise<DomainInfo>;

  /**
   * Defines and boots a domain. Postcondition: the domain exists and is Running, or the call
   * throws (DriverError) and nothing of it is left behind (no domain, disks, tap devices).
   * Throws DriverError when a domain with that name already exists: the caller decides whether
   * to adopt or destroy it; InvalidSpec when the spec itself cannot work.
   */
  spawn(spec: DomainSpec): Promise<DomainInfo>;

  /** Forces the domain off and removes it with everything spawn created. Succeeds when it is already gone. */
  destroy(id: string): Promise<void>;

  /**
   * Shuts the guest down cleanly, forcing it off after timeoutMs. Ends Shutdown; no-op when
   * already off. Throws DomainNotFound.
   */
  powerOff(id: string, timeoutMs: number): Promise<void>;

  /** Boots a stopped or crashed domain (resumes a paused one). Ends Running. Throws DomainNotFound. */
  powerOn(id: string): Promise<void>;

  /** Restarts the guest from any state (running, paused, off, crashed). Ends Running. */
  reboot(id: string): Promise<void>;

  /** Suspends a running guest's vCPUs. Ends Paused; no-op when paused; DriverError when off. */
  pause(id: string): Promise<void>;

  /** Resumes a paused guest. Ends Running; no-op when running; DriverError when off. */
  unpause(id: string): Promise<void>;

  /**
   * Redefines a domain that is off (Shutdown or Crashed) with a new size for its next boot
   * (Nova's resize; the agent calls it at a restart, after the host's allocation holds the new
   * size): vCPUs and memory become `size`'s, and the root disk made from the image grows to
   * size.diskBytes when that is larger (a boot volume keeps its own size). Never shrinks a
   * disk: a root disk larger than size.diskBytes keeps its size (the agent refuses a smaller
   * flavor disk before it gets here). DriverError while the
   * domain runs or is paused (the caller powers it off first). Idempotent: a domain of that
   * size is left as it is. Throws DomainNotFound.
   */
  resize(id: string, size: DomainSize): Promise<DomainInfo>;

  // Volumes (Cinder's driver calls). Files are named by uid; every call is idempotent, and a
  // crash midway never leaves a half-made file that looks complete: files are written under a
  // temporary name and renamed into place.

  /**
   * Creates the volume's file holding `content`, of sizeBytes (InvalidSpec when the content is
   * larger). Idempotent: an existing volume is returned as it is, never overwritten.
   * DriverError when the source (image file, snapshot, volume) is missing.
   */
  createVolume(disk: VolumeDisk, sizeBytes: number, content: VolumeContent): Promise<DiskFileInfo>;

  /** The volume's file, or undefined when it does not exist. */
  volumeInfo(disk: VolumeDisk): Promise<DiskFileInfo | undefined>;

  /** Removes the volume's file; succeeds when it is gone already. DriverError while a domain on this host uses it. */
  deleteVolume(disk: VolumeDisk): Promise<void>;

  /**
   * Grows the volume to sizeBytes: online through `domain` (a running domain on this host that
   * uses it: the guest sees the new size at once), offline otherwise. Never shrinks: a no-op
   * when it is that large already.
   */
  resizeVolume(disk: VolumeDisk, sizeBytes: number, domain?: string): Promise<DiskFileInfo>;

  /**
   * Copies the volume into the snapshot's file. With `domain` (a running domain on this host
   * using it) the copy is crash-consistent and taken without pausing the guest (an external
   * disk-only snapshot, a copy of the frozen base, then a block commit back; for a raw volume a
   * push backup, since libvirt puts no qcow2 overlay on a shareable disk: DriverError while
   * another running domain writes it too). Snapshot files are qcow2 whatever the volume's
   * format. Idempotent: a complete snapshot is returned as it is. A crash midway leaves the
   * volume usable (the agent calls again, which finishes or redoes the commit) and no
   * complete-looking snapshot file.
   */
  snapshotVolume(disk: VolumeDisk, snap: SnapshotDisk, domain?: string): Promise<DiskFileInfo>;

  /** The snapshot's file, or undefined when it does not exist. */
  snapshotInfo(snap: SnapshotDisk): Promise<DiskFileInfo | undefined>;

  /** Removes the snapshot's file; succeeds when it is gone already. */
  deleteSnapshot(snap: SnapshotDisk): Promise<void>;

  /**
   * Attaches the volume to the domain: live and persistent when it runs (hot plug), persistent
   * only when it is off. Idempotent: a volume attached already (same serial) returns its
   * device. Throws DomainNotFound.
   */
  attachVolume(id: string, v: VolumeAttachSpec): Promise<AttachedVolume>;

  /**
   * Asks the domain to release the volume with this serial. `detached` once it is gone from the
   * domain (live and persistent); `pending` while the guest has not released it: the driver
   * reports VolumeDetached (or VolumeDetachFailed) through onEvent, and the caller calls again
   * until `detached` (a request sent while the guest boots can be ignored by it). Idempotent:
   * `detached` when it is not attached. Throws DomainNotFound.
   */
  detachVolume(id: string, serial: string): Promise<'detached' | 'pending'>;

  /** The volumes attached to the domain (the live ones when it runs). Throws DomainNotFound. */
  listVolumes(id: string): Promise<AttachedVolume[]>;

  // Migration (Nova's pre_live_migration / live_migration / rollback). The agent of the target
  // host calls prepareMigrationTarget, the agent of the source host migrate; they never run
  // on the same host for one domain.

  /**
   * On the target host: makes everything spawn would make for `spec` except the domain itself
   * (root disk on this host's cached image, the guest's seed, and with copyStorage empty
   * files for the local disks to be copied into), and returns what the source's driver needs
   * to reach this host. Idempotent. DriverError when it cannot (image missing, disk full).
   */
  prepareMigrationTarget(spec: DomainSpec, o: MigrationTargetOptions): Promise<MigrateData>;

  /**
   * On the target host, after a migration that did not end here (failed, aborted): removes
   * what prepareMigrationTarget made for `spec`. Does nothing when a domain of that name
   * exists here (the migration did land) and when nothing was prepared.
   */
  cleanupMigrationTarget(spec: DomainSpec, o: MigrationTargetOptions): Promise<void>;

  /**
   * On the source host: moves domain `id` to the target `target` describes. Live: the guest
   * keeps running until the switch-over; resolves once it runs there, defined persistently,
   * and is gone from here. Cold: the domain is off; its definition and disks move. Reports
   * progress through onProgress while it runs. Aborts (MigrationAborted) when `signal` aborts,
   * on abortMigration, or when a timeout in `o` passes. On any failure the domain still
   * exists here in the state it had (the hypervisor rolls back); a failure after switch-over
   * (post-copy) leaves it on the target, which the caller finds by looking. Throws
   * DomainNotFound, DriverError.
   */
  migrate(id: string, target: MigrateData, o: MigrationOptions, onProgress?: (p: MigrationProgress) => void, signal?: AbortSignal): Promise<MigrationResult>;

  /** Stops the running migration of domain `id`; a no-op when none runs (from this process or an earlier one). */
  abortMigration(id: string): Promise<void>;

  /**
   * Subscribes to domain state changes, including those the agent did not cause (guest
   * crashed, shut down from inside). Returns the unsubscribe function. Events are hints: a
   * listener should re-read state, as they may be coalesced or arrive late.
   */
  onEvent(cb: (e: DomainEvent) => void): () => void;

  /**
   * State and usage counters of every domain on the host, in one look at the hypervisor (the
   * metrics scrape calls it; it never makes one hypervisor call per domain). Domains that go
   * away meanwhile are simply missing.
   */
  instanceStats(): Promise<InstanceStats[]>;

  /** Drops listeners and the hypervisor connection. Domains keep running. */
  close(): Promise<void>;
}

/** Longest domain name kova makes; libvirt itself has no small limit, but paths and logs do. */
export const MAX_DOMAIN_NAME = 80;

/**
 * The domain name of an Instance: `kova-<namespace>.<name>`. Namespaces and Instance names are
 * DNS-1123 labels, which never contain a dot, so the dot makes the mapping injective (with a
 * dash, `a-b`/`c` and `a`/`b-c` would collide). Names that would exceed MAX_DOMAIN_NAME are
 * truncated and end with a hash of the uid, so they stay distinct. The result only has
 * [a-z0-9.-], which is safe in libvirt XML, file names and command arguments.
 */
export function domainName(namespace: string, name: string, uid: string): string {
  if (isDNS1123Label(namespace).length) throw new InvalidSpec(`invalid namespace ${JSON.stringify(namespace)} for a domain name`);
  if (isDNS1123Label(name).length) throw new InvalidSpec(`invalid instance name ${JSON.stringify(name)} for a domain name`);
  const full = `kova-${namespace}.${name}`;
  if (full.length <= MAX_DOMAIN_NAME) return full;
  const hash = createHash('sha256').update(uid).digest('hex').slice(0, 12);
  return `${full.slice(0, MAX_DOMAIN_NAME - hash.length - 1)}-${hash}`;
}

/** `namespace/name`, the key the agent, its queue and domain metadata use. */
export function instanceKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}
