// Migration for the libvirt driver (Nova's pre_live_migration / live_migration / rollback).
//
// Target: prepareMigrationTarget makes the domain's directory as spawn would (root overlay on
// this host's cached image, same virtual size; the NoCloud seed) and empty files for the
// local volumes (each in its own format: qcow2, or raw for multiAttach), then tells the source
// (MigrateData, strings only) how to reach this host and where those files are.
//
// Source: `virsh migrate --live --p2p --persistent --undefinesource` to the target's libvirtd,
// the memory stream to `tcp://<address>`, with a destination XML (`dumpxml --migratable`,
// same UUID) whose local paths are rewritten to the target's. Local disks are block-copied
// (NBD) into the files the target made: `--copy-storage-inc` (the root overlay sits on the
// same base image there; volumes are whole files, so their top is everything), or
// `--copy-storage-all` when a local volume is itself an overlay (restored from a local
// snapshot: the target has no copy of its base). `--migrate-disks` names exactly the local
// disks, so a disk on shared storage is never copied onto itself. A disk on shared storage
// that libvirt does not recognise as shared (a local directory standing in for NFS) needs
// `--unsafe`; local disks are never left uncopied.
//
// Cold (the domain is off): the domain is started with its vCPUs stopped (`start --paused`),
// migrated the same way with `--suspend` so it stays paused there, then destroyed on the
// target: it is left defined and off, its disks copied through libvirt's own channel, with no
// filesystem shared between the hosts. Without local disks only the definition moves
// (`--offline`).
//
// Progress: `domjobinfo --rawstats` every 500 ms; abort (`domjobabort`) on the signal, on
// abortMigration, past completionTimeoutMs, or when the remaining data has not shrunk for
// progressTimeoutMs (never once in post-copy: the guest runs on the target then and libvirt
// cannot abort). With post-copy allowed it switches when pre-copy stalls (Nova's rule).
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm, statfs, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { DomainNotFound, DriverError, InvalidSpec, MigrationAborted } from '../driver.js';
import type { DomainSpec, MigrateData, MigrationOptions, MigrationProgress, MigrationResult, MigrationTargetOptions } from '../driver.js';
import { launch, LaunchError } from '../../lib/launcher.js';
import { dieWithParent } from '../../lib/parent-death.js';
import { libvirtDomainOf } from './domain-spec.js';
import type { DiskFormat, DirectBootSpec } from './domain-xml.js';
import { buildNoCloudSeed } from './nocloud.js';
import { parseDomainDisks, parseKeyValues, unescapeXml, Virsh, VirshError } from './virsh.js';
import { createBlank, diskFilePath, ensureStorageDir, qemuImg, qemuImgInfo, removeTemps, volumeFormat, writeAtomically } from './volumes.js';
import { escapeAttr, escapeText } from './xml.js';

const MiB = 1024 * 1024;
/** How often a running migration's job is read. */
export const POLL_MS = 500;

/** How other hosts reach this one for migrations (LibvirtDriverOptions.migration). */
export interface MigrationEndpoint {
  /**
   * The libvirt URI the source host's libvirtd dials to reach this host's (peer to peer), e.g.
   * `qemu+tcp://host-2/system` (like Nova's live_migration_uri); default
   * `qemu+tcp://<hostname>/system`.
   */
  uri: string;
  /**
   * The address QEMU on this host receives the migration stream (and the NBD disk copy) on:
   * the source sends to `tcp://<address>`. Default: absent, and libvirt uses this host's name.
   */
  address?: string;
}

export function defaultMigrationEndpoint(): MigrationEndpoint {
  return { uri: `qemu+tcp://${hostname()}/system` };
}

/** What the target tells the source (MigrateData's keys). */
export interface LibvirtMigrateData {
  uri: string;
  address?: string;
  /** The domain's directory on the target (root overlay, seed, console log). */
  domainDir: string;
  /** The target's local volume directory. */
  volumesDir: string;
  /** The target's kernel and initrd for a directly booted image. */
  kernel?: string;
  initrd?: string;
}

const DOMAIN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const ADDRESS = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)$/;
const CONTROL = /[\u0000-\u001F\u007F]/;

export function checkDomainName(id: string): string {
  if (typeof id !== 'string' || !DOMAIN_NAME.test(id) || id.length > 200) throw new DriverError(`invalid domain name ${JSON.stringify(id)}`);
  return id;
}

function checkAbsPath(what: string, p: unknown): string {
  if (typeof p !== 'string' || !posix.isAbsolute(p) || posix.normalize(p) !== p || p.endsWith('/') || CONTROL.test(p)) {
    throw new DriverError(`migration data: ${what} ${JSON.stringify(p)} is not an absolute, normalized path`);
  }
  return p;
}

export function encodeMigrateData(d: LibvirtMigrateData): MigrateData {
  const out: MigrateData = { uri: d.uri, domainDir: d.domainDir, volumesDir: d.volumesDir };
  if (d.address !== undefined) out.address = d.address;
  if (d.kernel !== undefined) out.kernel = d.kernel;
  if (d.initrd !== undefined) out.initrd = d.initrd;
  return out;
}

/** Reads and validates what a target prepared; DriverError when anything is missing or malformed. */
export function decodeMigrateData(m: MigrateData): LibvirtMigrateData {
  const uri = m.uri;
  if (typeof uri !== 'string' || !/^[a-z0-9+]+:\/\//.test(uri) || CONTROL.test(uri)) throw new DriverError(`migration data: invalid target URI ${JSON.stringify(uri)}`);
  if (m.address !== undefined && (typeof m.address !== 'string' || !ADDRESS.test(m.address))) throw new DriverError(`migration data: invalid address ${JSON.stringify(m.address)}`);
  return {
    uri,
    ...(m.address !== undefined ? { address: m.address } : {}),
    domainDir: checkAbsPath('domain directory', m.domainDir),
    volumesDir: checkAbsPath('volume directory', m.volumesDir),
    ...(m.kernel !== undefined ? { kernel: checkAbsPath('kernel', m.kernel) } : {}),
    ...(m.initrd !== undefined ? { initrd: checkAbsPath('initrd', m.initrd) } : {}),
  };
}

/** `tcp://<address>` (IPv6 in brackets). */
export function migrateUri(address: string): string {
  return address.includes(':') && !address.startsWith('[') ? `tcp://[${address}]` : `tcp://${address}`;
}

// ---- destination XML ----

export interface PathRewrite {
  /** Directory prefixes: a path equal to `from` or below it moves below `to`. */
  dirs: Array<[from: string, to: string]>;
  kernel?: string;
  initrd?: string;
}

function movePath(p: string, dirs: PathRewrite['dirs']): string | undefined {
  for (const [from, to] of dirs) {
    if (p === from) return to;
    if (p.startsWith(`${from}/`)) return to + p.slice(from.length);
  }
  return undefined;
}

/**
 * The domain XML for the target: `xml` (from `dumpxml --migratable`, libvirt's own output) with
 * every file path (disk sources, the serial/console log, any `path`) below a source directory
 * moved to the target's, the kernel and initrd replaced by the target's, and disks' backing
 * chains dropped (the target's libvirt reads them from its own files: a root overlay there sits
 * on its own copy of the image). Everything else, the UUID first, stays as it is. Pure; new
 * values are escaped.
 */
export function destinationXml(xml: string, rw: PathRewrite): string {
  let out = xml;
  // Innermost first, so nested chains go whole; `<backingStore/>` (no backing) stays.
  for (let prev = ''; prev !== out; ) {
    prev = out;
    out = out.replace(/[ \t]*<backingStore(?:\s[^>]*)?(?<!\/)>(?:(?!<backingStore(?:\s[^>]*)?(?<!\/)>)[\s\S])*?<\/backingStore>\n?/g, '');
  }
  out = out.replace(/(\s(?:file|path)=)(['"])([^'"]*)\2/g, (all, attr: string, q: string, value: string) => {
    const moved = movePath(unescapeXml(value), rw.dirs);
    return moved === undefined ? all : `${attr}'${escapeAttr(moved)}'`;
  });
  for (const tag of ['kernel', 'initrd'] as const) {
    const to = rw[tag];
    out = out.replace(new RegExp(`(<${tag}>)([^<]*)(</${tag}>)`), (all, open: string, value: string, close: string) => {
      const moved = to ?? movePath(unescapeXml(value), rw.dirs);
      return moved === undefined ? all : `${open}${escapeText(moved)}${close}`;
    });
  }
  return out;
}

// ---- flags ----

export interface MigrateArgs {
  id: string;
  destUri: string;
  /** Where the memory stream goes (`--migrateuri tcp://…`); libvirt picks when absent. */
  address?: string;
  /** Running or paused domain (live); a shut-off one's definition only (offline). */
  offline?: boolean;
  xmlFile?: string;
  persistentXmlFile: string;
  copyStorage?: 'inc' | 'all';
  /** Disk targets to copy (with copyStorage). */
  migrateDisks?: string[];
  unsafe?: boolean;
  autoConverge?: boolean;
  postCopy?: boolean;
  bandwidthBytesPerSec?: number;
  /** Leave it paused on the target (cold migration). */
  suspend?: boolean;
}

/** `virsh migrate` arguments (after `virsh -c <source>`); pure. */
export function migrateArgs(a: MigrateArgs): string[] {
  const args = ['migrate'];
  if (a.offline) args.push('--offline', '--p2p', '--persistent', '--undefinesource');
  else args.push('--live', '--p2p', '--persistent', '--undefinesource');
  if (!a.offline && a.address !== undefined) args.push('--migrateuri', migrateUri(a.address));
  if (!a.offline && a.copyStorage) {
    args.push(a.copyStorage === 'all' ? '--copy-storage-all' : '--copy-storage-inc');
    if (a.migrateDisks?.length) args.push('--migrate-disks', a.migrateDisks.join(','));
  }
  if (a.unsafe) args.push('--unsafe');
  if (!a.offline && a.autoConverge) args.push('--auto-converge');
  if (!a.offline && a.postCopy) args.push('--postcopy');
  if (!a.offline && a.suspend) args.push('--suspend');
  if (!a.offline && a.bandwidthBytesPerSec !== undefined) {
    if (!Number.isFinite(a.bandwidthBytesPerSec) || a.bandwidthBytesPerSec <= 0) throw new InvalidSpec(`bandwidth ${a.bandwidthBytesPerSec} is not a positive number of bytes per second`);
    // virsh takes whole MiB/s; never round a small limit down to 0 (which means unlimited).
    args.push('--bandwidth', String(Math.max(1, Math.round(a.bandwidthBytesPerSec / MiB))));
  }
  if (!a.offline && a.xmlFile !== undefined) args.push('--xml', a.xmlFile);
  args.push('--persistent-xml', a.persistentXmlFile, '--domain', checkDomainName(a.id), '--desturi', a.destUri);
  return args;
}

// ---- job statistics ----

/** libvirt's virDomainJobType, as `domjobinfo --rawstats` prints it (`Job type: N`). */
const JOB_TYPES = ['none', 'bounded', 'unbounded', 'completed', 'failed', 'cancelled'] as const;
export type JobType = (typeof JOB_TYPES)[number] | 'unknown';

/** virDomainJobOperation: 5 is an outgoing migration. */
export const JOB_OPERATION_MIGRATION_OUT = 5;

export interface JobStats {
  type: JobType;
  /** The raw typed parameters (numbers), e.g. time_elapsed, data_remaining, downtime. */
  values: Map<string, number>;
}

/**
 * Parses `virsh domjobinfo --rawstats` (`Job type: 2` then `name: value` lines) and the body
 * of a `job-completed` event from `virsh event` (tab-indented `name: value` lines).
 */
export function parseJobStats(out: string): JobStats {
  const kv = parseKeyValues(out);
  const typeNum = kv.get('Job type');
  const type: JobType = typeNum === undefined ? 'unknown' : (JOB_TYPES[Number(typeNum)] ?? 'unknown');
  const values = new Map<string, number>();
  for (const [k, v] of kv) {
    if (k === 'Job type' || !/^[a-z_]+$/.test(k) || !/^-?\d+$/.test(v)) continue;
    values.set(k, Number(v));
  }
  return { type, values };
}

/** A running job as MigrationProgress; byte counts only once libvirt reports a total. */
export function progressOf(s: JobStats): MigrationProgress {
  const v = s.values;
  const total = v.get('data_total');
  const p: MigrationProgress = { elapsedMs: v.get('time_elapsed') ?? 0 };
  if (total) {
    p.totalBytes = total;
    if (v.has('data_processed')) p.processedBytes = v.get('data_processed');
    if (v.has('data_remaining')) p.remainingBytes = v.get('data_remaining');
  }
  return p;
}

/** A completed job (domjobinfo --completed, or the job-completed event) as MigrationResult. */
export function resultOf(s: JobStats, fallbackElapsedMs: number): MigrationResult {
  const v = s.values;
  const r: MigrationResult = { elapsedMs: v.get('time_elapsed') ?? fallbackElapsedMs };
  if (v.has('downtime')) r.downtimeMs = v.get('downtime');
  if (v.has('data_processed')) r.processedBytes = v.get('data_processed');
  if (v.has('data_total')) r.totalBytes = v.get('data_total');
  return r;
}

/**
 * Nova's should_switch_to_postcopy (nova/virt/libvirt/migration.py): after the first full pass
 * over memory, switch when an iteration shrank the remaining data by less than 10 %.
 */
export function shouldSwitchToPostCopy(memoryIteration: number, currentRemaining: number, previousRemaining: number, inPostCopy: boolean): boolean {
  if (inPostCopy || previousRemaining <= 0) return false;
  if (memoryIteration > 1) {
    const progressPercent = Math.round(((previousRemaining - currentRemaining) * 100) / previousRemaining);
    if (progressPercent < 10) return true;
  }
  return false;
}

/**
 * Watches a running migration's numbers: whether it progresses (Nova's progress watermark:
 * the lowest remaining so far, or, before libvirt reports a total, growing processed bytes),
 * and when to switch to post-copy (on a new memory iteration).
 */
export class ProgressWatch {
  private lowest = Infinity;
  private processed = 0;
  private lastProgressAt: number;
  private iteration = 0;
  private remainingAtIteration = 0;

  constructor(startedAt: number) {
    this.lastProgressAt = startedAt;
  }

  /** Feeds one reading at `now`; returns whether to switch to post-copy now. */
  observe(s: JobStats, now: number, postCopyAllowed: boolean, inPostCopy: boolean): boolean {
    const v = s.values;
    const total = v.get('data_total') ?? 0;
    const remaining = v.get('data_remaining');
    const processed = v.get('data_processed') ?? 0;
    if (total > 0 && remaining !== undefined) {
      if (remaining < this.lowest) {
        this.lowest = remaining;
        this.lastProgressAt = now;
      }
    } else if (processed > this.processed) {
      this.processed = processed;
      this.lastProgressAt = now;
    }
    const iteration = v.get('memory_iteration') ?? 0;
    let switchNow = false;
    if (iteration > this.iteration && remaining !== undefined) {
      switchNow = postCopyAllowed && shouldSwitchToPostCopy(iteration, remaining, this.remainingAtIteration, inPostCopy);
      this.iteration = iteration;
      this.remainingAtIteration = remaining;
    }
    return switchNow;
  }

  /** Milliseconds since the remaining data last shrank. */
  stalledFor(now: number): number {
    return now - this.lastProgressAt;
  }
}

// ---- what the driver lends (node-agent/libvirt/libvirt-driver.ts) ----

export interface MigrationHost {
  virsh: Virsh;
  stateDir: string;
  domainsDir: string;
  endpoint: MigrationEndpoint;
  kvm: boolean;
  minMemoryBytes: number;
  resolveImage(image: string): Promise<{ path: string; format: DiskFormat; directBoot?: DirectBootSpec; virtualSize?: number }>;
  /** Whether a domain of that name exists here. */
  exists(name: string): Promise<boolean>;
  /** The domain is gone from here: forget cached facts about it. */
  forget(name: string): void;
}

/** Shared-filesystem types libvirt trusts for migration without copying (statfs f_type). */
const SHARED_FS_TYPES = new Set([
  0x6969, // NFS
  0x01161970, // GFS2
  0x7461636f, // OCFS2
  0x5346414f, // AFS
  0x517b, // SMB
  0xff534d42, // CIFS
  0xfe534d42, // SMB2
  0x00c36400, // CephFS
  0x47504653, // GPFS
  0x51427567, // Quobyte
]);

/** What the source does, per disk. */
interface DiskPlan {
  migrateDisks: string[];
  copy?: 'inc' | 'all';
  unsafe: boolean;
}

export class LibvirtMigration {
  /** Domains whose running migration abortMigration was asked to stop. */
  private readonly aborting = new Set<string>();

  constructor(private readonly h: MigrationHost) {}

  private get volumesDir(): string {
    return join(this.h.stateDir, 'volumes');
  }

  async prepareTarget(spec: DomainSpec, o: MigrationTargetOptions): Promise<MigrateData> {
    const dir = join(this.h.domainsDir, checkDomainName(spec.name));
    const image = spec.image === undefined ? undefined : await this.h.resolveImage(spec.image);
    const plan = libvirtDomainOf(spec, {
      uuid: randomUUID(), // not used: the domain arrives with its own
      kvm: this.h.kvm,
      dir,
      directBoot: image?.directBoot,
      minMemoryBytes: this.h.minMemoryBytes,
      localStorageDir: this.h.stateDir,
    });
    const data = encodeMigrateData({
      uri: this.h.endpoint.uri,
      ...(this.h.endpoint.address !== undefined ? { address: this.h.endpoint.address } : {}),
      domainDir: dir,
      volumesDir: this.volumesDir,
      ...(image?.directBoot ? { kernel: image.directBoot.kernelPath, ...(image.directBoot.initrdPath ? { initrd: image.directBoot.initrdPath } : {}) } : {}),
    });
    // Arriving or arrived: its files are in use; leave them alone.
    if (await this.h.exists(spec.name)) return data;
    try {
      // Always made afresh: a copy fills only what the source has, so a file left by an
      // earlier attempt would keep that attempt's blocks wherever the source has none.
      await mkdir(dir, { recursive: true, mode: 0o711 });
      // The root overlay and the seed ISO are independent programs' work: side by side.
      const root = async () => {
        if (!image) return;
        const size = Math.max(spec.diskBytes, image.virtualSize ?? (await qemuImgInfo(image.path))['virtual-size']);
        await writeAtomically(plan.domain.rootDisk!.path, (tmp) => qemuImg('create', '-q', '-f', 'qcow2', '-F', image.format, '-b', image.path, tmp, String(size)));
      };
      await Promise.all([root(), buildNoCloudSeed(plan.domain.seedIsoPath!, plan.seed)]);
      if (o.copyStorage) {
        for (const v of o.localVolumes ?? []) {
          if (v.disk.backend.type !== 'local') continue;
          if (!Number.isSafeInteger(v.sizeBytes) || v.sizeBytes <= 0) throw new InvalidSpec(`${v.disk.key}: size ${v.sizeBytes} is not a positive number of bytes`);
          const path = diskFilePath(v.disk, 'volumes', this.h.stateDir);
          await ensureStorageDir(dirname(path));
          // The source's format (raw for a multiAttach volume): the copy writes into it as is.
          await writeAtomically(path, (tmp) => createBlank(tmp, volumeFormat(v.disk), v.sizeBytes));
        }
      }
    } catch (err) {
      if (err instanceof DriverError) throw err;
      throw new DriverError(`prepare ${spec.name} for migration: ${(err as Error).message}`, { cause: err });
    }
    return data;
  }

  async cleanupTarget(spec: DomainSpec, o: MigrationTargetOptions): Promise<void> {
    const dir = join(this.h.domainsDir, checkDomainName(spec.name));
    if (await this.h.exists(spec.name)) return;
    await rm(dir, { recursive: true, force: true });
    for (const v of o.localVolumes ?? []) {
      if (v.disk.backend.type !== 'local') continue;
      const path = diskFilePath(v.disk, 'volumes', this.h.stateDir);
      await rm(path, { force: true });
      await removeTemps(path);
    }
  }

  async abort(id: string): Promise<void> {
    checkDomainName(id);
    const job = await this.jobStats(id).catch(() => undefined);
    if (!job || job.type === 'none' || job.values.get('operation') !== JOB_OPERATION_MIGRATION_OUT) return;
    this.aborting.add(id);
    await this.h.virsh.run('domjobabort', id).catch(() => {}); // finished meanwhile, or past switch-over
  }

  async migrate(id: string, target: MigrateData, o: MigrationOptions, onProgress?: (p: MigrationProgress) => void, signal?: AbortSignal): Promise<MigrationResult> {
    checkDomainName(id);
    const t = decodeMigrateData(target);
    const srcDir = join(this.h.domainsDir, id);
    // The reads before the transfer go in parallel (each is a virsh process): the state, the
    // persistent definition (for the target, and for which disks are local), and the live one.
    const [state, inactive, liveXml] = await Promise.all([
      this.domState(id),
      this.call(id, 'dumpxml', '--inactive', '--migratable', id),
      o.mode === 'Live' ? this.call(id, 'dumpxml', '--migratable', id).catch(() => undefined) : undefined,
    ]);
    const off = state === 'shut off' || state === 'crashed';
    if (o.mode === 'Live' && off) throw new DriverError(`cannot live-migrate domain ${id}: it is ${state}`);
    if (o.mode === 'Cold' && !off) throw new DriverError(`cannot cold-migrate domain ${id}: it is ${state}; stop it first`);
    if (signal?.aborted) throw new MigrationAborted('the migration was aborted before it started');

    const rewrite: PathRewrite = {
      dirs: [[srcDir, t.domainDir], [this.volumesDir, t.volumesDir]],
      ...(t.kernel ? { kernel: t.kernel } : {}),
      ...(t.initrd ? { initrd: t.initrd } : {}),
    };
    const disks = await this.diskPlan(id, inactive, srcDir, o);
    const work = await mkdtemp(join(tmpdir(), 'kova-migrate-'));
    let startedPaused = false;
    try {
      const persistentXmlFile = join(work, 'persistent.xml');
      await writeFile(persistentXmlFile, destinationXml(inactive, rewrite), { mode: 0o600 });
      const base = { id, destUri: t.uri, persistentXmlFile, unsafe: disks.unsafe };
      let args: string[];
      if (o.mode === 'Cold' && disks.migrateDisks.length === 0) {
        args = migrateArgs({ ...base, offline: true });
      } else {
        if (o.mode === 'Cold') {
          // vCPUs never run: the paused domain only carries the disks over.
          await this.call(id, 'start', '--paused', id);
          startedPaused = true;
        }
        const xmlFile = join(work, 'domain.xml');
        const current = !startedPaused && liveXml !== undefined ? liveXml : await this.call(id, 'dumpxml', '--migratable', id);
        await writeFile(xmlFile, destinationXml(current, rewrite), { mode: 0o600 });
        args = migrateArgs({
          ...base,
          xmlFile,
          ...(t.address !== undefined ? { address: t.address } : {}),
          ...(disks.copy ? { copyStorage: disks.copy, migrateDisks: disks.migrateDisks } : {}),
          ...(o.mode === 'Live' ? { autoConverge: o.allowAutoConverge, postCopy: o.allowPostCopy } : { suspend: true }),
          ...(o.bandwidthBytesPerSec !== undefined ? { bandwidthBytesPerSec: o.bandwidthBytesPerSec } : {}),
        });
      }
      const result = await this.run(id, args, o, onProgress, signal);
      this.h.forget(id);
      if (o.mode === 'Cold' && startedPaused) {
        startedPaused = false;
        // Defined and off on the target, as it was here.
        await this.destroyOnTarget(t.uri, id);
      }
      // Gone from here: its own directory goes too (never a volume file).
      if (srcDir !== t.domainDir && !(await this.h.exists(id))) await rm(srcDir, { recursive: true, force: true });
      return result;
    } catch (err) {
      if (startedPaused) await this.h.virsh.run('destroy', id).catch(() => {});
      throw err;
    } finally {
      this.aborting.delete(id);
      await rm(work, { recursive: true, force: true });
    }
  }

  /** Which disks move how: local ones are copied (refused without copyStorage), shared ones stay. */
  private async diskPlan(id: string, xml: string, srcDir: string, o: MigrationOptions): Promise<DiskPlan> {
    const local: string[] = [];
    let needsAll = false;
    let unsafe = false;
    const isLocal = (p: string) => p === srcDir || p.startsWith(`${srcDir}/`) || p.startsWith(`${this.volumesDir}/`);
    // The live XML carries each disk's backing chain; a shut-off domain's is read from the files.
    for (const d of parseDomainDisks(xml)) {
      if (d.device !== 'disk' || d.source === undefined || d.readOnly) continue;
      if (isLocal(d.source)) {
        local.push(d.target);
        if (d.source.startsWith(`${this.volumesDir}/`)) {
          const info = await qemuImgInfo(d.source);
          if (info['backing-filename']) needsAll = true;
        }
        continue;
      }
      const fs = await statfs(d.source).catch(() => undefined);
      if (!fs || !SHARED_FS_TYPES.has(fs.type)) unsafe = true;
    }
    if (local.length && !o.copyStorage) throw new DriverError(`domain ${id} has local disks (${local.join(', ')}): it can only move with copyStorage`);
    return { migrateDisks: local, ...(local.length ? { copy: needsAll ? 'all' : 'inc' } : {}), unsafe };
  }

  private async destroyOnTarget(uri: string, id: string): Promise<void> {
    try {
      await new Virsh(uri).run('destroy', id);
    } catch (err) {
      if (err instanceof VirshError && err.notRunning) return;
      throw new DriverError(`cold migration of ${id}: the domain arrived on ${uri} but could not be stopped there: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Runs `virsh migrate`, watching, reporting and aborting; the result from the job-completed event. */
  private async run(id: string, args: string[], o: MigrationOptions, onProgress: ((p: MigrationProgress) => void) | undefined, signal: AbortSignal | undefined): Promise<MigrationResult> {
    const started = Date.now();
    const events = this.watchCompletion(id);
    // From the launcher (lib/launcher.ts), like the agent's other programs; setpriv still ties
    // it to its parent's life.
    const [cmd, argv] = dieWithParent('virsh', ['-q', '-c', this.h.virsh.uri, ...args]);
    const kill = new AbortController();
    let stderr = '';
    const exited = launch(cmd, argv, { signal: kill.signal, killSignal: 'SIGKILL' }).then(
      () => 0,
      (e: unknown) => {
        stderr = e instanceof LaunchError ? e.stderr || e.message : String(e);
        return e instanceof LaunchError && typeof e.code === 'number' ? e.code : -1;
      },
    );
    let done = false;
    void exited.then(() => (done = true));

    const watch = new ProgressWatch(started);
    let abortReason: string | undefined;
    let inPostCopy = false;
    let last: JobStats | undefined;
    const abort = async (reason: string) => {
      if (abortReason !== undefined || inPostCopy) return;
      abortReason = reason;
      await this.h.virsh.run('domjobabort', id).catch(() => {});
    };
    const onSignal = () => void abort('the migration was aborted');
    signal?.addEventListener('abort', onSignal, { once: true });
    try {
      while (!done) {
        await Promise.race([exited, sleep(POLL_MS)]);
        if (done) break;
        if (this.aborting.has(id)) abortReason ??= 'the migration was aborted';
        const stats = await this.jobStats(id).catch(() => undefined);
        const now = Date.now();
        if (stats && (stats.type === 'bounded' || stats.type === 'unbounded')) {
          last = stats;
          onProgress?.(progressOf(stats));
          if (watch.observe(stats, now, o.allowPostCopy === true && o.mode === 'Live', inPostCopy)) {
            await this.h.virsh.run('migrate-postcopy', id).then(() => (inPostCopy = true), () => {});
          }
        }
        if (now - started > o.completionTimeoutMs) await abort(`the migration did not finish within ${Math.round(o.completionTimeoutMs / 1000)} s and was aborted`);
        else if (watch.stalledFor(now) > o.progressTimeoutMs) await abort(`the migration made no progress for ${Math.round(o.progressTimeoutMs / 1000)} s and was aborted`);
      }
      const code = await exited;
      if (code !== 0) {
        const msg = stderr.trim().replace(/^error: /gm, '').replace(/\n+/g, '; ') || `virsh exited with ${code}`;
        if (abortReason !== undefined || this.aborting.has(id) || /canceled by client|operation aborted/i.test(msg)) {
          throw new MigrationAborted(`${abortReason ?? 'the migration was aborted'} (${msg})`);
        }
        if (/failed to get domain|Domain not found|no domain with matching/i.test(msg) && !(await this.h.exists(id))) throw new DomainNotFound(id);
        // libvirt's words for a missing destination disk do not say what to do about it.
        const hint = /pre-creation of storage targets|Unable to find storage pool|No such file or directory/i.test(msg) ? ' (the target host has not prepared this domain: prepareMigrationTarget)' : '';
        throw new DriverError(`migration of ${id} failed: ${msg}${hint}`);
      }
      // The event carries the figures; without it (missed), the last reading and the wall time.
      const completed = await events.result(2000);
      return completed ? resultOf(completed, Date.now() - started) : { ...(last ? resultOf(last, 0) : {}), elapsedMs: Date.now() - started };
    } finally {
      signal?.removeEventListener('abort', onSignal);
      events.stop();
      if (!done) kill.abort();
    }
  }

  /**
   * Listens for the domain's job-completed event (its statistics: time, downtime, data): once
   * the domain has left, `domjobinfo --completed` has nothing to read here.
   */
  private watchCompletion(id: string): { result(timeoutMs: number): Promise<JobStats | undefined>; stop(): void } {
    // virsh prints the event and exits: its output is read once it has.
    const [cmd, argv] = dieWithParent('virsh', ['-q', '-c', this.h.virsh.uri, 'event', '--domain', id, '--event', 'job-completed']);
    const kill = new AbortController();
    let out = '';
    let exited = false;
    const closed = launch(cmd, argv, { signal: kill.signal, killSignal: 'SIGKILL' })
      .then(
        (r) => {
          out = r.stdout;
        },
        (e: unknown) => {
          out = e instanceof LaunchError ? e.stdout : '';
        },
      )
      .finally(() => (exited = true));
    return {
      result: async (timeoutMs) => {
        if (!exited) await Promise.race([closed, sleep(timeoutMs)]);
        return /job-completed/.test(out) ? parseJobStats(out) : undefined;
      },
      stop: () => {
        if (!exited) kill.abort();
      },
    };
  }

  private async jobStats(id: string): Promise<JobStats> {
    return parseJobStats(await this.h.virsh.run('domjobinfo', '--rawstats', id));
  }

  private async domState(id: string): Promise<string> {
    return (await this.call(id, 'domstate', id)).trim();
  }

  private async call(id: string, ...args: string[]): Promise<string> {
    try {
      return await this.h.virsh.run(...args);
    } catch (err) {
      if (err instanceof VirshError && err.noDomain) throw new DomainNotFound(id);
      if (err instanceof VirshError) throw new DriverError(err.message, { cause: err });
      throw err;
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
