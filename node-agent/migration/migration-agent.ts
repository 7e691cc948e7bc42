// A host's part in Migrations (Nova's pre_live_migration / live_migration on the compute hosts):
// as the target it prepares for the instance (the driver's prepareMigrationTarget) and reports
// TargetReady with what the source needs (migrateData); as the source it runs the transfer
// (driver.migrate) in the background, reports Running, progress, and Transferred or Failed, and
// aborts it when the Migration is deleted or the instance is. After a failure the target
// removes what it prepared. The controller moves the binding; this never writes an Instance.
import type { Instance, Migration, MigrationStatus } from '../../api/kinds/index.js';
import { DEFAULT_COMPLETION_TIMEOUT_PER_GIB, DEFAULT_PROGRESS_TIMEOUT_SECONDS, MIGRATIONS, MigrationConditions, migrationFinished } from '../../api/kinds/index.js';
import { findCondition, setCondition } from '../../api/conditions.js';
import { parseQuantity } from '../../api/quantity.js';
import { updateStatusFrom } from '../../client/client.js';
import type { ApiClient } from '../../client/client.js';
import { OwnWrites } from '../../client/own-writes.js';
import { errorMessage } from '../../client/controller.js';
import type { Reconciler, Request, Result } from '../../client/controller.js';
import type { EventRecorder } from '../../client/events.js';
import { domainName, DomainNotFound, MigrationAborted } from '../driver.js';
import type { ComputeDriver, DomainSpec, MigrateData, MigratingVolume, MigrationOptions, MigrationProgress, MigrationTargetOptions } from '../driver.js';
import type { StorageView } from '../volume/storage.js';
import { backendOf, sizeBytes, volumeDisk } from '../volume/storage.js';
import type { Resolution, ResolveOptions } from '../instance/resolve.js';

const GiB = 2 ** 30;
/** A target waiting this long for its ports says so in TargetReady (shorter waits are not written). */
const WAITING_SHOWN_AFTER_MS = 2000;
/** Progress is written at most this often while a transfer runs. */
const PROGRESS_EVERY_MS = 1000;

export interface MigrationAgentOptions {
  client: ApiClient;
  hostName: string;
  driver: ComputeDriver;
  /** The Migrations cache (all namespaces). */
  migration(namespace: string, name: string): Migration | undefined;
  /** Every Instance (not only those bound here): a target prepares before the binding moves. */
  instance(namespace: string, name: string): Instance | undefined;
  /** The instance agent's resolver: the DomainSpec the instance would be spawned with here. */
  resolve(inst: Instance, o: ResolveOptions): Promise<Resolution>;
  /** The instance's volumes on local storage (they are copied with it). */
  localVolumes(inst: Instance): MigratingVolume[];
  /** The host that stores a Volume (its status.hostName). */
  volumeStoredOn(namespace: string, name: string): string | undefined;
  /** Bytes of the instance's root disk (its flavor's or spec.resources' disk); undefined when unknown. */
  rootDiskBytes(inst: Instance): Promise<number | undefined>;
  recorder: EventRecorder;
  log: (msg: string) => void;
}

interface Transfer {
  abort: AbortController;
  done: Promise<void>;
}

export class MigrationAgent implements Reconciler {
  readonly name: string;
  /** Transfers this process runs, by Migration key. */
  private readonly transfers = new Map<string, Transfer>();
  /** What this host prepared as a target, by Migration key (its uid checked), until it ends. */
  private readonly prepared = new Map<string, { uid: string; data: MigrateData }>();
  /** Targets already cleaned up after a failure, by Migration uid. */
  private readonly cleaned = new Set<string>();
  /** Failed Migrations from here whose leftover hypervisor job was aborted, by uid. */
  private readonly abortedLeftovers = new Set<string>();
  /** What this agent's last status write returned, per Migration key, until it ends. */
  private readonly written = new OwnWrites<Migration>();
  /** The agent is stopping: transfers aborted now are Interrupted, not Aborted by a user. */
  private stopping = false;

  constructor(private readonly o: MigrationAgentOptions) {
    this.name = `migration-${o.hostName}`;
  }

  /** Whether a Migration concerns this host (its events are worth a reconcile). */
  concerns(m: Migration): boolean {
    return m.status?.sourceHost === this.o.hostName || m.status?.targetHost === this.o.hostName || this.transfers.has(keyOf(m.metadata.namespace!, m.metadata.name!));
  }

  async reconcile(req: Request): Promise<Result | void> {
    const key = keyOf(req.namespace!, req.name);
    const m = this.o.migration(req.namespace!, req.name);
    if (!m) {
      this.transfers.get(key)?.abort.abort();
      this.prepared.delete(key);
      this.written.forget(req.namespace, req.name);
      return;
    }
    const st = m.status ?? {};
    const r = st.sourceHost === this.o.hostName ? await this.asSource(key, m) : undefined;
    if (st.targetHost === this.o.hostName) return this.asTarget(m);
    return r;
  }

  /** Stops every transfer (the agent is stopping): each ends Failed, the guest stays here. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.transfers.values()) t.abort.abort();
    await Promise.all([...this.transfers.values()].map((t) => t.done));
  }

  // ---- source ----

  private async asSource(key: string, m: Migration): Promise<Result | void> {
    const running = this.transfers.get(key);
    const inst = this.o.instance(m.metadata.namespace!, m.spec.instance);
    if (m.metadata.deletionTimestamp || migrationFinished(m) || inst?.metadata.deletionTimestamp) {
      running?.abort.abort();
      if (m.status?.phase === 'Succeeded' && inst && !(await this.removeMovedVolumes(m, inst))) return { requeueAfterMs: 1000 };
      if (m.status?.phase === 'Failed' && !running && inst) await this.abortLeftover(m, inst);
      return;
    }
    if (running) return;
    const st = m.status!;
    const ready = findCondition(st.conditions, MigrationConditions.TargetReady)?.status === 'True';
    if (findCondition(st.conditions, MigrationConditions.Transferred)?.status === 'True') return;
    if (st.phase === 'Running') return this.adoptInterrupted(m, inst);
    if (st.phase !== 'PreparingTarget' || !ready || !st.migrateData || !inst) return;
    // PreparingTarget → Running by compare-and-swap: a Migration deleted meanwhile does not start.
    const started = await this.write(m, (s) => {
      if (s.phase !== 'PreparingTarget' || migrationFinished({ status: s })) return false;
      s.phase = 'Running';
      s.startTime = new Date().toISOString();
      s.progress = 0;
    });
    if (started?.status?.phase !== 'Running' || started.metadata.deletionTimestamp) return;
    const abort = new AbortController();
    const t: Transfer = { abort, done: Promise.resolve() };
    this.transfers.set(key, t);
    // A report that cannot be written (the API server unreachable) must not become an unhandled
    // rejection, which would kill the agent: the Migration stays Running, and the agent's next
    // start (adoptInterrupted) or the controller settles it.
    t.done = this.transfer(started, inst, abort.signal)
      .catch((e) => this.o.log(`${this.name}: ${key}: could not report the end of the transfer: ${errorMessage(e)}`))
      .finally(() => this.transfers.delete(key));
  }

  /** Runs the hypervisor's transfer and reports how it ended. */
  private async transfer(m: Migration, inst: Instance, signal: AbortSignal): Promise<void> {
    const ns = m.metadata.namespace!;
    const id = domainName(ns, inst.metadata.name!, inst.metadata.uid!);
    const st = m.status!;
    let lastWrite = 0;
    let pending: Promise<unknown> = Promise.resolve();
    const onProgress = (p: MigrationProgress) => {
      const now = Date.now();
      if (now - lastWrite < PROGRESS_EVERY_MS) return;
      lastWrite = now;
      pending = pending.then(() => this.write(m, (s) => {
        if (s.phase !== 'Running') return false;
        Object.assign(s, progressFields(p));
      })).catch((e) => this.o.log(`${this.name}: ${ns}/${m.metadata.name}: could not report progress: ${errorMessage(e)}`));
    };
    void this.o.recorder.normal(inst, 'Migrating', `${st.mode === 'Cold' ? 'cold' : 'live'} migration ${m.metadata.name} to host ${st.targetHost} started`);
    try {
      const [info, root] = await Promise.all([this.o.driver.getInfo(id), this.o.rootDiskBytes(inst)]);
      // Copied disk: the root disk of an image-backed instance and the local volumes.
      const copied = st.storage === 'BlockCopy' ? (inst.spec.image !== undefined ? root ?? GiB : 0) + this.o.localVolumes(inst).reduce((n, v) => n + v.sizeBytes, 0) : 0;
      const opts = this.options(m, info.memoryBytes, copied);
      const r = await this.o.driver.migrate(id, st.migrateData!, opts, onProgress, signal);
      await pending;
      await this.write(m, (s) => {
        s.progress = 100;
        if (r.downtimeMs !== undefined) s.downtimeMs = Math.round(r.downtimeMs);
        if (r.processedBytes !== undefined) s.dataProcessedBytes = r.processedBytes;
        if (r.totalBytes !== undefined) s.dataTotalBytes = r.totalBytes;
        s.dataRemainingBytes = 0;
        s.conditions = setCondition(s.conditions, { type: MigrationConditions.Transferred, status: 'True', reason: 'Transferred', message: `the guest runs on host ${st.targetHost} (${Math.round(r.elapsedMs)} ms${r.downtimeMs !== undefined ? `, ${Math.round(r.downtimeMs)} ms downtime` : ''})` });
      });
      this.o.log(`${this.name}: ${ns}/${m.metadata.name}: ${inst.metadata.name} transferred to ${st.targetHost} in ${Math.round(r.elapsedMs)} ms`);

    } catch (e) {
      await pending;
      const here = await this.o.driver.getInfo(id).then(() => true, (err) => (err instanceof DomainNotFound ? false : true));
      const aborted = e instanceof MigrationAborted;
      // Aborted by this agent stopping (not by a deleted Migration): the same end as a restart finds.
      const interrupted = aborted && signal.aborted && this.stopping;
      const reason = aborted ? (interrupted ? 'Interrupted' : signal.aborted ? 'Aborted' : 'TimedOut') : 'MigrationFailed';
      const where = here ? `the instance keeps running on host ${this.o.hostName}` : `the guest is no longer on host ${this.o.hostName}`;
      const message = interrupted ? `the agent of host ${this.o.hostName} stopped during the transfer and aborted it; ${where}` : `${errorMessage(e)}; ${where}`;
      this.o.log(`${this.name}: ${ns}/${m.metadata.name}: ${reason}: ${message}`);
      void this.o.recorder.warning(inst, 'MigrationFailed', `migration ${m.metadata.name} to host ${st.targetHost}: ${message}`);
      await this.fail(m, reason, message);
    }
  }

  /**
   * After a move: this host's copies of the local volumes that went with the guest are stale
   * once the target stores them (Volume status.hostName moved), so they go.
   */
  private async removeMovedVolumes(m: Migration, inst: Instance): Promise<boolean> {
    const uid = m.metadata.uid!;
    if (this.cleaned.has(uid)) return true;
    // Moved on again since (or back here): later migrations own the copies.
    if (inst.metadata.uid !== m.status?.instanceUID || inst.status?.hostName !== m.status?.targetHost) return true;
    let left = false;
    for (const v of this.o.localVolumes(inst)) {
      const [ns, name] = v.disk.key.split('/') as [string, string];
      if (this.o.volumeStoredOn(ns, name) === this.o.hostName) {
        left = true; // not moved yet: the next event comes back here
        continue;
      }
      await this.o.driver.deleteVolume(v.disk).catch((e) => {
        left = true;
        this.o.log(`${this.name}: could not remove the old copy of volume ${v.disk.key}: ${errorMessage(e)}`);
      });
    }
    if (!left) this.cleaned.add(uid);
    return !left;
  }

  /**
   * A Migration this host was running when its agent stopped: the transfer died with it. If
   * the guest is still here, abort whatever is left and fail; if it is gone, the hypervisor
   * finished the move.
   */
  private async adoptInterrupted(m: Migration, inst: Instance | undefined): Promise<void> {
    if (!inst) return;
    const id = domainName(m.metadata.namespace!, inst.metadata.name!, inst.metadata.uid!);
    const isHere = () => this.o.driver.getInfo(id).then(() => true, (e) => (e instanceof DomainNotFound ? false : Promise.reject(e)));
    let here = await isHere();
    // A hypervisor job still running from the agent that went (libvirtd outlives it): stopped
    // here, unless it switched over just before; then the guest is gone and that is the truth.
    if (here) {
      await this.o.driver.abortMigration(id);
      here = await isHere();
    }
    if (!here) {
      await this.write(m, (s) => {
        if (s.phase !== 'Running') return false;
        s.conditions = setCondition(s.conditions, { type: MigrationConditions.Transferred, status: 'True', reason: 'Transferred', message: `the guest is no longer on host ${this.o.hostName}: the transfer finished while its agent was away` });
      });
      return;
    }
    await this.fail(m, 'Interrupted', `the agent of host ${this.o.hostName} restarted during the transfer; the instance keeps running there`);
  }

  /**
   * A Migration from here the controller ended Failed (SourceLost) while this agent was away: a hypervisor job still running from
   * an earlier agent must not complete it behind the status's back. Once per Migration.
   */
  private async abortLeftover(m: Migration, inst: Instance): Promise<void> {
    const uid = m.metadata.uid!;
    if (this.abortedLeftovers.has(uid) || inst.metadata.uid !== m.status?.instanceUID || m.status?.phase !== 'Failed') return;
    if (findCondition(m.status.conditions, MigrationConditions.Failed)?.reason !== 'SourceLost') return;
    this.abortedLeftovers.add(uid);
    await this.o.driver.abortMigration(domainName(m.metadata.namespace!, inst.metadata.name!, inst.metadata.uid!)).catch((e) => {
      if (!(e instanceof DomainNotFound)) this.o.log(`${this.name}: ${m.metadata.namespace}/${m.metadata.name}: could not abort a leftover transfer: ${errorMessage(e)}`);
    });
  }

  /** The driver's options; the completion timeout scales with the memory and the disk bytes copied (KubeVirt's per-GiB rule). */
  private options(m: Migration, memory: number, copiedDisk: number): MigrationOptions {
    const st = m.status!;
    const copyStorage = st.storage === 'BlockCopy';
    const perGiB = m.spec.completionTimeoutPerGiB ?? DEFAULT_COMPLETION_TIMEOUT_PER_GIB;
    return {
      mode: st.mode ?? 'Live',
      copyStorage,
      allowPostCopy: m.spec.allowPostCopy,
      allowAutoConverge: m.spec.allowAutoConverge,
      ...(m.spec.bandwidth !== undefined ? { bandwidthBytesPerSec: parseQuantity(m.spec.bandwidth) } : {}),
      completionTimeoutMs: Math.max(60, perGiB * ((memory + copiedDisk) / GiB)) * 1000,
      progressTimeoutMs: (m.spec.progressTimeoutSeconds ?? DEFAULT_PROGRESS_TIMEOUT_SECONDS) * 1000,
    };
  }

  // ---- target ----

  private async asTarget(m: Migration): Promise<Result | void> {
    const st = m.status!;
    const inst = this.o.instance(m.metadata.namespace!, m.spec.instance);
    if (migrationFinished(m)) {
      this.prepared.delete(keyOf(m.metadata.namespace!, m.metadata.name!));
      if (st.phase === 'Failed' && inst?.status?.hostName !== this.o.hostName) await this.cleanup(m, inst);
      return;
    }
    if (st.phase !== 'PreparingTarget' || m.metadata.deletionTimestamp) return;
    if (findCondition(st.conditions, MigrationConditions.TargetReady)?.status === 'True') return;
    if (!inst || inst.metadata.uid !== st.instanceUID || inst.status?.migration?.targetHost !== this.o.hostName) return;
    const key = keyOf(m.metadata.namespace!, m.metadata.name!);
    let data = this.prepared.get(key)?.uid === m.metadata.uid ? this.prepared.get(key)!.data : undefined;
    if (!data) {
      // Disks and seed first, while the network agent plugs the ports (Port status.migratingTo).
      const r = await this.o.resolve(inst, { migratingFrom: st.sourceHost, portsUnconfigured: true });
      if ('invalid' in r) return this.notReady(m, 'InvalidSpec', r.invalid);
      if ('wait' in r) {
        await this.notReady(m, 'Waiting', r.why);
        return { requeueAfterMs: 250 };
      }
      try {
        data = await this.o.driver.prepareMigrationTarget(r.spec, this.targetOptions(m, inst));
        this.prepared.set(key, { uid: m.metadata.uid!, data });
      } catch (e) {
        // Nova's pre_live_migration failing: the migration ends, the instance stays where it is.
        const message = `host ${this.o.hostName} could not prepare: ${errorMessage(e)}`;
        this.o.log(`${this.name}: ${m.metadata.namespace}/${m.metadata.name}: ${message}`);
        return this.fail(m, 'TargetPrepareFailed', message);
      }
    }
    // The ports must be plugged here before the guest arrives (QEMU opens its taps when it
    // starts); a port plugged here wakes this (onIncomingPortReady), the requeue is a safety net.
    const ports = await this.o.resolve(inst, { migratingFrom: st.sourceHost, readinessOnly: true });
    if ('wait' in ports) {
      // The network agent plugs the port alongside, usually within milliseconds: the status
      // says so only when it lasts (a write here would queue ahead of TargetReady).
      const since = Date.parse(findCondition(st.conditions, MigrationConditions.TargetReady)?.lastTransitionTime ?? '');
      if (!Number.isFinite(since) || Date.now() - since > WAITING_SHOWN_AFTER_MS) await this.notReady(m, 'Waiting', ports.why);
      return { requeueAfterMs: 1000 };
    }
    const migrateData = data;
    await this.write(m, (s) => {
      if (s.phase !== 'PreparingTarget') return false;
      s.migrateData = migrateData;
      s.conditions = setCondition(s.conditions, { type: MigrationConditions.TargetReady, status: 'True', reason: 'Prepared', message: `host ${this.o.hostName} is ready to receive the instance` });
    });
  }

  private targetOptions(m: Migration, inst: Instance | undefined): MigrationTargetOptions {
    return { copyStorage: m.status?.storage === 'BlockCopy', localVolumes: inst && inst.metadata.uid === m.status?.instanceUID ? this.o.localVolumes(inst) : [] };
  }

  /** Removes what was prepared for a Migration that did not land here. */
  private async cleanup(m: Migration, inst: Instance | undefined): Promise<void> {
    const uid = m.metadata.uid!;
    if (this.cleaned.has(uid)) return;
    const spec = await this.specFor(m, inst);
    await this.o.driver.cleanupMigrationTarget(spec, this.targetOptions(m, inst));
    this.cleaned.add(uid);
  }

  /** The DomainSpec cleanup needs: the resolved one when it still resolves, else its identity. */
  private async specFor(m: Migration, inst: Instance | undefined): Promise<DomainSpec> {
    if (inst && inst.metadata.uid === m.status?.instanceUID) {
      const r = await this.o.resolve(inst, { migratingFrom: m.status?.sourceHost, portsUnconfigured: true }).catch(() => undefined);
      if (r && 'spec' in r) return r.spec;
    }
    const ns = m.metadata.namespace!;
    const uid = m.status?.instanceUID ?? '';
    return { instanceKey: `${ns}/${m.spec.instance}`, instanceUID: uid, name: domainName(ns, m.spec.instance, uid), vcpus: 1, memoryBytes: 0, diskBytes: 0, networks: [] };
  }

  private async notReady(m: Migration, reason: string, message: string): Promise<void> {
    const cond = { type: MigrationConditions.TargetReady, status: 'False' as const, reason, message: `host ${this.o.hostName}: ${message}` };
    const c = findCondition(m.status?.conditions, cond.type);
    if (c?.reason === reason && c.message === cond.message) return;
    await this.write(m, (s) => {
      if (s.phase !== 'PreparingTarget') return false;
      s.conditions = setCondition(s.conditions, cond);
    });
  }

  // ---- status ----

  private async fail(m: Migration, reason: string, message: string): Promise<void> {
    await this.write(m, (s) => {
      if (migrationFinished({ status: s })) return false;
      const now = new Date();
      s.phase = 'Failed';
      s.endTime = now.toISOString();
      s.conditions = setCondition(s.conditions, { type: MigrationConditions.Failed, status: 'True', reason, message }, now);
      s.conditions = setCondition(s.conditions, { type: MigrationConditions.Succeeded, status: 'False', reason, message }, now);
    });
  }

  /**
   * Writes from the newest copy held (the informer's, or what this agent's last write returned,
   * which the watch may not have delivered yet): no read before a write unless it conflicts.
   */
  private async write(m: Migration, mutate: (st: MigrationStatus) => boolean | void): Promise<Migration | undefined> {
    const ns = m.metadata.namespace!;
    const from = this.written.newest(this.o.migration(ns, m.metadata.name!), ns, m.metadata.name!);
    const out = await updateStatusFrom<Migration>(this.o.client, MIGRATIONS, ns, m.metadata.name!, from, (fresh) => {
      if (fresh.metadata.uid !== m.metadata.uid) return false;
      const st: MigrationStatus = structuredClone(fresh.status ?? {});
      if (mutate(st) === false) return false;
      fresh.status = st;
    });
    if (out && !migrationFinished(out)) this.written.remember(out);
    else this.written.forget(ns, m.metadata.name!);
    return out;
  }
}

/** The local volumes of an instance, as the driver copies them. */
export function localVolumesOf(inst: Instance, storage: Pick<StorageView, 'volume' | 'volumeType'>): MigratingVolume[] {
  const out: MigratingVolume[] = [];
  for (const e of inst.spec.volumes ?? []) {
    const v = storage.volume(inst.metadata.namespace!, e.volume);
    const type = v?.spec.volumeType ? storage.volumeType(v.spec.volumeType) : undefined;
    if (!v || !type) continue;
    const backend = backendOf(type);
    if ('invalid' in backend || backend.type !== 'local') continue;
    out.push({ disk: volumeDisk(v, type, backend), sizeBytes: sizeBytes(v) });
  }
  return out;
}

function keyOf(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

function progressFields(p: MigrationProgress): Partial<MigrationStatus> {
  const out: Partial<MigrationStatus> = {};
  if (p.processedBytes !== undefined) out.dataProcessedBytes = Math.max(0, Math.round(p.processedBytes));
  if (p.totalBytes !== undefined) out.dataTotalBytes = Math.max(0, Math.round(p.totalBytes));
  if (p.remainingBytes !== undefined) out.dataRemainingBytes = Math.max(0, Math.round(p.remainingBytes));
  if (p.totalBytes && p.remainingBytes !== undefined) out.progress = Math.min(99, Math.max(0, Math.floor((100 * (p.totalBytes - p.remainingBytes)) / p.totalBytes)));
  return out;
}
