// The cluster side of a Migration (Nova's conductor live-migrate task as a reconciler): it
// checks the instance, picks a target with the scheduler's filters minus the source host,
// claims the target's resources (both hosts hold the instance's allocation until the end),
// marks the instance as migrating (status.migration), and at the end moves the binding to the
// target or clears the mark. The hosts do the rest: the target prepares (TargetReady), the
// source runs the transfer (Running, progress, Transferred or Failed). Level-triggered: every
// step re-reads the objects and writes with compare-and-swap, so a crash anywhere resumes.
import { FLAVORS, HOSTS, INSTANCES, MIGRATIONS, VOLUMES, VOLUME_TYPES, MIGRATION_ABORT_FINALIZER, MigrationConditions, migrationFinished } from '../../api/kinds/index.js';
import type { Flavor, Host, Instance, Migration, MigrationStatus, Volume, VolumeType } from '../../api/kinds/index.js';
import { insufficiency } from '../../api/binding.js';
import { chargedSize, isResizeMigration } from '../../api/resize.js';
import { findCondition, setCondition } from '../../api/conditions.js';
import { formatResources, instanceRequest } from '../../api/resources.js';
import type { Resources } from '../../api/resources.js';
import { updateStatusFrom } from '../../client/client.js';
import type { ApiClient } from '../../client/client.js';
import { OwnWrites } from '../../client/own-writes.js';
import { controllerFor, withDefaults } from '../../client/controller.js';
import type { ControllerHandle, ControllerStartOptions, Reconciler, Request, Result } from '../../client/controller.js';
import { hostView } from '../scheduler/host-view.js';
import { schedule } from '../scheduler/schedule.js';
import { effectiveMode, failedStatus, MigrationReasons, storagePlan, succeededStatus, TARGET_FILTERS, targetQuery } from './plan.js';

interface Cache<T> {
  get(namespace: string | undefined, name: string): T | undefined;
  list(namespace?: string): readonly T[];
}

export interface MigrationControllerDeps {
  client: ApiClient;
  migrations: Cache<Migration>;
  instances: Cache<Instance>;
  hosts: Cache<Host>;
  flavors: Cache<Flavor>;
  volumes: Cache<Volume>;
  volumeTypes: Cache<VolumeType>;
  log: (msg: string) => void;
  /** A target that has not prepared after this long fails the Migration (default 5 min). */
  prepareTimeoutMs?: number;
  /** A source host not Ready for this long fails a Migration it should run or is running (default 5 min). */
  sourceLostTimeoutMs?: number;
  now?: () => number;
}

/** Thrown inside a status mutation to stop it with a reason. */
class Refused extends Error {
  constructor(readonly reason: string, message: string) {
    super(message);
  }
}

export class MigrationReconciler implements Reconciler {
  readonly name = 'migration';
  private readonly now: () => number;
  /**
   * What this controller's status writes returned, newer than the informer until the watch
   * catches up: a pass woken meanwhile (by its own finalizer or instance mark) starts from it
   * instead of redoing the steps it already took.
   */
  readonly written = new OwnWrites<Migration>();

  constructor(private readonly d: MigrationControllerDeps) {
    this.now = d.now ?? Date.now;
  }

  async reconcile(req: Request): Promise<Result | void> {
    const m = this.written.newest(this.d.migrations.get(req.namespace, req.name), req.namespace, req.name);
    if (!m) return this.forgotten(req.namespace!, req.name);
    if (m.metadata.deletionTimestamp) return this.deleted(m);
    if (migrationFinished(m)) return this.release(m);
    const protect = m.metadata.finalizers?.includes(MIGRATION_ABORT_FINALIZER) ? undefined : this.d.client.addFinalizer(MIGRATIONS, m.metadata.namespace, m.metadata.name!, MIGRATION_ABORT_FINALIZER);
    const phase = m.status?.phase ?? 'Pending';
    // The finalizer is written alongside the first steps (one round trip fewer); a Migration
    // removed before it landed leaves a mark on its instance that forgotten() clears.
    if (phase === 'Pending' || phase === 'Scheduling') return (await Promise.all([this.start(m), protect]))[0];
    await protect;
    if (findCondition(m.status?.conditions, MigrationConditions.Transferred)?.status === 'True') return this.switchOver(m);
    return this.watchOver(m);
  }

  /**
   * A Migration that is gone (removed before its finalizer landed, or by force): an instance
   * still marked with it is unmarked, and a target claim for it released.
   */
  private async forgotten(ns: string, name: string): Promise<void> {
    for (const inst of this.d.instances.list(ns)) {
      const mark = inst.status?.migration;
      if (mark?.name !== name || this.d.migrations.get(ns, name)) continue;
      const out = await this.d.client.updateStatus<Instance>(INSTANCES, ns, inst.metadata.name!, (fresh) => {
        if (!fresh.status || fresh.status.migration?.name !== name || fresh.status.migration.uid !== mark.uid) return false;
        delete fresh.status.migration;
      });
      await this.unclaim(mark.targetHost, out, inst.metadata.uid);
      this.d.log(`migration ${ns}/${name} is gone: unmarked instance ${inst.metadata.name}`);
    }
  }

  /** Checks the instance, picks and claims a target, marks the instance: PreparingTarget. */
  private async start(m: Migration): Promise<Result | void> {
    const ns = m.metadata.namespace!;
    const inst = this.d.instances.get(ns, m.spec.instance);
    if (!inst) return this.fail(m, MigrationReasons.InstanceNotFound, `instance "${m.spec.instance}" not found`);
    if (inst.metadata.deletionTimestamp) return this.fail(m, MigrationReasons.InstanceDeleted, `instance "${m.spec.instance}" is being deleted`);
    const source = inst.status?.hostName;
    if (!source) return this.fail(m, MigrationReasons.NotScheduled, `instance "${m.spec.instance}" is not running on any host`);
    const other = inst.status?.migration;
    if (other && other.name !== m.metadata.name) return this.fail(m, MigrationReasons.InFlight, `instance "${m.spec.instance}" is being moved by migration "${other.name}"`);
    const mode = effectiveMode(m, inst);
    if (mode === 'Live' && inst.status?.powerState !== 'Running' && inst.status?.powerState !== 'Paused') {
      return this.fail(m, MigrationReasons.NotRunning, `instance "${m.spec.instance}" is not running (power state ${inst.status?.powerState ?? 'unknown'}); use mode Cold`);
    }
    const plan = storagePlan(inst, mode, { volume: (n, v) => this.d.volumes.get(n, v), volumeType: (t) => this.d.volumeTypes.get(undefined, t) });
    if ('error' in plan) return this.fail(m, MigrationReasons.Unsupported, plan.error);
    const request = instanceRequest(inst, (f) => this.d.flavors.get(undefined, f));
    if (!('req' in request)) return this.fail(m, MigrationReasons.Unschedulable, 'flavorNotFound' in request ? `flavor "${request.flavorNotFound}" not found` : request.invalid);
    // The target is charged for the size the guest has (its source's charge), unless this move
    // is a resize (api/resize.ts): then the guest boots there with its spec's new size.
    const size = isResizeMigration(m) ? request.req : chargedSize(this.d.hosts.get(undefined, source), inst.metadata.uid!) ?? request.req;
    // A crash after the mark was written resumes with the target it names.
    let target = other && other.name === m.metadata.name ? other.targetHost : undefined;
    if (!target) {
      const views = this.d.hosts.list().map((h) => hostView(h));
      const r = schedule(targetQuery(inst, m), size, views, { filters: TARGET_FILTERS, excluded: new Map([[source, 'is the source host']]) });
      if ('unschedulable' in r) return this.fail(m, MigrationReasons.Unschedulable, r.unschedulable);
      target = r.host;
    }
    try {
      await this.markInstance(m, inst, source, target, mode);
      await this.claim(target, inst, size);
    } catch (e) {
      if (!(e instanceof Refused)) throw e;
      await this.unmarkInstance(m);
      return this.fail(m, e.reason, e.message);
    }
    await this.writeStatus(m, (st) => {
      if (migrationFinished({ status: st }) || (st.phase && st.phase !== 'Pending' && st.phase !== 'Scheduling')) return false;
      Object.assign(st, { phase: 'PreparingTarget', instanceUID: inst.metadata.uid, sourceHost: source, targetHost: target, mode, storage: plan.storage });
      st.conditions = setCondition(st.conditions, { type: MigrationConditions.TargetReady, status: 'False', reason: 'Preparing', message: `waiting for host ${target} to prepare` });
    });
    this.d.log(`migration ${ns}/${m.metadata.name}: ${m.spec.instance} ${mode.toLowerCase()} from ${source} to ${target} (${plan.storage})`);
  }

  /** The instance's status.migration names this Migration (compare-and-swap on the instance). */
  private async markInstance(m: Migration, inst: Instance, source: string, target: string, mode: 'Live' | 'Cold'): Promise<void> {
    await updateStatusFrom<Instance>(this.d.client, INSTANCES, inst.metadata.namespace, inst.metadata.name!, inst, (fresh) => {
      if (fresh.metadata.uid !== inst.metadata.uid) throw new Refused(MigrationReasons.InstanceNotFound, `instance "${m.spec.instance}" was recreated`);
      if (fresh.metadata.deletionTimestamp) throw new Refused(MigrationReasons.InstanceDeleted, `instance "${m.spec.instance}" is being deleted`);
      if (fresh.status?.hostName !== source) throw new Refused(MigrationReasons.NotScheduled, `instance "${m.spec.instance}" moved to ${fresh.status?.hostName ?? 'no host'} meanwhile`);
      const cur = fresh.status?.migration;
      if (cur && cur.name !== m.metadata.name) throw new Refused(MigrationReasons.InFlight, `instance "${m.spec.instance}" is being moved by migration "${cur.name}"`);
      if (cur?.targetHost === target) return false;
      fresh.status = { ...fresh.status, migration: { name: m.metadata.name!, uid: m.metadata.uid, sourceHost: source, targetHost: target, mode } };
    });
  }

  /** Clears the instance's status.migration when it names this Migration. */
  private async unmarkInstance(m: Migration): Promise<Instance | undefined> {
    const ns = m.metadata.namespace!;
    if (this.d.instances.get(ns, m.spec.instance)?.status?.migration?.name !== m.metadata.name) return undefined;
    return this.d.client.updateStatus<Instance>(INSTANCES, ns, m.spec.instance, (fresh) => {
      if (!fresh.status || fresh.status.migration?.name !== m.metadata.name) return false;
      delete fresh.status.migration;
    });
  }

  /** Charges the instance to the target host, unless it lacks room (compare-and-swap on the host). */
  private async claim(target: string, inst: Instance, req: Resources): Promise<void> {
    const uid = inst.metadata.uid!;
    const h = await updateStatusFrom<Host>(this.d.client, HOSTS, undefined, target, this.d.hosts.get(undefined, target), (host) => {
      const allocs = host.status?.allocations ?? [];
      if (allocs.some((a) => a.uid === uid)) return false;
      const short = insufficiency(host, allocs, req, inst.spec.flavor);
      if (short) throw new Refused(MigrationReasons.Unschedulable, short.message);
      const next = [...allocs, { uid, instance: `${inst.metadata.namespace}/${inst.metadata.name}`, ...formatResources(req) }];
      host.status = { ...host.status, allocations: next, allocated: sumAllocations(next) };
    });
    if (!h) throw new Refused(MigrationReasons.Unschedulable, `host ${target} not found`);
  }

  /** Removes the instance's allocation from `host` when it is not bound there. */
  private async unclaim(host: string | undefined, inst: Pick<Instance, 'metadata' | 'status'> | undefined, uid: string | undefined): Promise<void> {
    if (!host || !uid || inst?.status?.hostName === host) return;
    if (!this.d.hosts.get(undefined, host)?.status?.allocations?.some((a) => a.uid === uid)) return;
    await updateStatusFrom<Host>(this.d.client, HOSTS, undefined, host, this.d.hosts.get(undefined, host), (h) => {
      const allocs = h.status?.allocations ?? [];
      if (!allocs.some((a) => a.uid === uid)) return false;
      const next = allocs.filter((a) => a.uid !== uid);
      h.status = { ...h.status, allocations: next, allocated: sumAllocations(next) };
    });
  }

  /** The hypervisor moved the guest: bind the instance to the target, then Succeeded. */
  private async switchOver(m: Migration): Promise<void> {
    const ns = m.metadata.namespace!;
    const st = m.status!;
    // Local volumes were copied with the guest: the target stores them now (before the binding
    // moves, so the target never finds its instance's volumes "stored elsewhere").
    const cached = this.d.instances.get(ns, m.spec.instance);
    const plan = cached && cached.metadata.uid === st.instanceUID ? storagePlan(cached, st.mode ?? 'Live', { volume: (n, v) => this.d.volumes.get(n, v), volumeType: (t) => this.d.volumeTypes.get(undefined, t) }) : undefined;
    for (const v of plan && 'localVolumes' in plan ? plan.localVolumes : []) {
      await this.d.client.updateStatus<Volume>(VOLUMES, ns, v.metadata.name!, (fresh) => {
        if (fresh.metadata.uid !== v.metadata.uid || fresh.status?.hostName !== st.sourceHost) return false;
        fresh.status = { ...fresh.status, hostName: st.targetHost };
      });
    }
    const inst = await updateStatusFrom<Instance>(this.d.client, INSTANCES, ns, m.spec.instance, cached, (fresh) => {
      if (fresh.metadata.uid !== st.instanceUID || fresh.status?.migration?.name !== m.metadata.name) return false;
      fresh.status = { ...fresh.status, hostName: st.targetHost };
      delete fresh.status.migration;
      fresh.status.conditions = setCondition(fresh.status.conditions, { type: 'Scheduled', status: 'True', reason: 'Migrated', message: `moved to host ${st.targetHost} by migration ${m.metadata.name}` });
    });
    // The source's claim goes and the Migration ends, together: both only follow the binding.
    await Promise.all([
      this.unclaim(st.sourceHost, inst, st.instanceUID),
      this.writeStatus(m, (s) => {
        if (migrationFinished({ status: s })) return false;
        Object.assign(s, succeededStatus(s));
      }),
    ]);
    this.d.log(`migration ${ns}/${m.metadata.name}: ${m.spec.instance} runs on ${st.targetHost}`);
  }

  /** While the hosts work: fail a target that never prepares, or an instance that is gone. */
  private async watchOver(m: Migration): Promise<Result | void> {
    const st = m.status ?? {};
    const inst = this.d.instances.get(m.metadata.namespace, m.spec.instance);
    if (!inst || inst.metadata.uid !== st.instanceUID) return this.fail(m, MigrationReasons.InstanceNotFound, `instance "${m.spec.instance}" is gone`);
    const ready = findCondition(st.conditions, MigrationConditions.TargetReady);
    if (st.phase === 'Running' || (st.phase === 'PreparingTarget' && ready?.status === 'True')) return this.watchSource(m);
    if (st.phase !== 'PreparingTarget') return;
    if (ready?.status === 'True') return;
    const since = Date.parse(ready?.lastTransitionTime ?? m.metadata.creationTimestamp ?? '');
    const limit = this.d.prepareTimeoutMs ?? 300_000;
    const left = Number.isFinite(since) ? since + limit - this.now() : limit;
    if (left > 0) return { requeueAfterMs: left };
    return this.fail(m, 'TargetNotReady', `host ${st.targetHost} did not prepare within ${Math.round(limit / 1000)} s${ready?.message ? `: ${ready.message}` : ''}`, ['PreparingTarget']);
  }

  /**
   * The source host runs the transfer and reports its end; if it stops heartbeating (Ready not
   * True, as the host controller sets once its Lease expires) nobody would. Like KubeVirt
   * failing a migration whose source handler is gone, a source lost for sourceLostTimeoutMs
   * ends the Migration Failed (SourceLost): the binding stays on the source, the target gives
   * its claim back and removes what it prepared. A transfer the hypervisor finished meanwhile
   * is reported by the source's agent before that (adoptInterrupted), when it comes back in time.
   */
  private async watchSource(m: Migration): Promise<Result | void> {
    const st = m.status!;
    const ready = findCondition(this.d.hosts.get(undefined, st.sourceHost ?? '')?.status?.conditions, 'Ready');
    if (ready?.status === 'True') return;
    const since = Date.parse(ready?.lastTransitionTime ?? '');
    const limit = this.d.sourceLostTimeoutMs ?? 300_000;
    const left = Number.isFinite(since) ? since + limit - this.now() : limit;
    if (left > 0) return { requeueAfterMs: left };
    const why = ready ? `${ready.reason ?? ready.status}${ready.message ? `: ${ready.message}` : ''}` : 'no Ready condition';
    const during = st.phase === 'Running' ? 'during the transfer' : 'before the transfer started';
    const message = `host ${st.sourceHost} has not been ready for ${Math.round(limit / 1000)} s ${during} (${why}); the instance stays bound to it`;
    // Compare-and-swap: a source that came back and reported Transferred meanwhile wins.
    const out = await this.writeStatus(m, (s) => {
      if (s.phase !== st.phase || findCondition(s.conditions, MigrationConditions.Transferred)?.status === 'True') return false;
      Object.assign(s, failedStatus(s, 'SourceLost', message));
    });
    if (out?.status?.phase !== 'Failed') return;
    this.d.log(`migration ${m.metadata.namespace}/${m.metadata.name}: failed: ${message}`);
    await this.release(out);
  }

  /**
   * A deleted Migration: one not transferring yet ends Failed (Aborted) here; a running one is
   * aborted by its source host, which reports Failed; then the finalizer goes.
   */
  private async deleted(m: Migration): Promise<void> {
    if (!m.metadata.finalizers?.includes(MIGRATION_ABORT_FINALIZER)) return;
    if (!migrationFinished(m)) {
      if (m.status?.phase === 'Running') return; // the source host aborts and reports
      const ended = await this.end(m, MigrationReasons.Aborted, 'the migration was deleted before its transfer started', ['Pending', 'Scheduling', 'PreparingTarget', undefined]);
      if (!ended || !migrationFinished(ended)) return;
      m = ended;
    }
    await this.release(m);
    await this.d.client.removeFinalizer(MIGRATIONS, m.metadata.namespace, m.metadata.name!, MIGRATION_ABORT_FINALIZER);
  }

  /** After the end: the instance no longer names this Migration, and a failed target gives its claim back. */
  private async release(m: Migration): Promise<void> {
    const inst = (await this.unmarkInstance(m)) ?? this.d.instances.get(m.metadata.namespace, m.spec.instance);
    if (m.status?.phase === 'Failed') await this.unclaim(m.status.targetHost, inst, m.status.instanceUID);
  }

  /**
   * Ends the Migration Failed (only from one of `from`, default any unfinished phase but
   * Running, which belongs to the source host), then releases what it held.
   */
  private async fail(m: Migration, reason: string, message: string, from?: ReadonlyArray<string | undefined>): Promise<void> {
    await this.end(m, reason, message, from);
  }

  private async end(m: Migration, reason: string, message: string, from: ReadonlyArray<string | undefined> = ['Pending', 'Scheduling', 'PreparingTarget', undefined]): Promise<Migration | undefined> {
    const out = await this.writeStatus(m, (st) => {
      if (!from.includes(st.phase)) return false;
      Object.assign(st, failedStatus(st, reason, message));
    });
    if (out?.status?.phase === 'Failed') {
      this.d.log(`migration ${m.metadata.namespace}/${m.metadata.name}: failed: ${message}`);
      await this.release(out);
    }
    return out;
  }

  /** From the newest copy the informer holds (a write returned by an earlier step may be newer: then a 409 and a read). */
  private async writeStatus(m: Migration, mutate: (st: MigrationStatus) => boolean | void): Promise<Migration | undefined> {
    const ns = m.metadata.namespace;
    const from = this.written.newest(this.d.migrations.get(ns, m.metadata.name!), ns, m.metadata.name!);
    const out = await updateStatusFrom<Migration>(this.d.client, MIGRATIONS, ns, m.metadata.name!, from, (fresh) => {
      if (fresh.metadata.uid !== m.metadata.uid) return false;
      const st: MigrationStatus = structuredClone(fresh.status ?? {});
      if (mutate(st) === false) return false;
      if (fresh.metadata.generation !== undefined) st.observedGeneration = fresh.metadata.generation;
      fresh.status = st;
    });
    if (out) this.written.remember(out);
    return out;
  }
}

function sumAllocations(allocs: ReadonlyArray<{ vcpus?: number; memory?: string | number; disk?: string | number }>) {
  let vcpus = 0;
  let memoryBytes = 0;
  let diskBytes = 0;
  for (const a of allocs) {
    const r = instanceRequest({ spec: { resources: { vcpus: a.vcpus ?? 0, memory: a.memory ?? 0, disk: a.disk ?? 0 } } }, () => undefined);
    if (!('req' in r)) continue;
    vcpus += r.req.vcpus;
    memoryBytes += r.req.memoryBytes;
    diskBytes += r.req.diskBytes;
  }
  return formatResources({ vcpus, memoryBytes, diskBytes });
}

/** Starts the migration controller: Migrations, and the Instances, Hosts and storage they depend on. */
export async function startMigrationController(opts: ControllerStartOptions & { prepareTimeoutMs?: number; sourceLostTimeoutMs?: number }): Promise<ControllerHandle> {
  const { client, signal, log, informers } = withDefaults(opts);
  const migrations = informers.for<Migration>(MIGRATIONS);
  const instances = informers.for<Instance>(INSTANCES);
  const hosts = informers.for<Host>(HOSTS);
  const flavors = informers.for<Flavor>(FLAVORS);
  const volumes = informers.for<Volume>(VOLUMES);
  const volumeTypes = informers.for<VolumeType>(VOLUME_TYPES);
  // An instance's change matters to its unfinished Migrations (and to one it still names).
  const ofInstance = (i: Instance) => {
    const ns = i.metadata.namespace;
    const out = migrations.list(ns).filter((m) => m.spec.instance === i.metadata.name && !migrationFinished(m)).map((m) => ({ namespace: ns, name: m.metadata.name! }));
    if (i.status?.migration) out.push({ namespace: ns, name: i.status.migration.name });
    return out;
  };
  // A host's Ready changing matters to the unfinished Migrations out of it (SourceLost).
  const ofHost = (h: Host) => migrations.list().filter((m) => m.status?.sourceHost === h.metadata.name && !migrationFinished(m)).map((m) => ({ namespace: m.metadata.namespace, name: m.metadata.name! }));
  const r = new MigrationReconciler({ client, migrations, instances, hosts, flavors, volumes, volumeTypes, log, prepareTimeoutMs: opts.prepareTimeoutMs, sourceLostTimeoutMs: opts.sourceLostTimeoutMs });
  migrations.on('update', (m) => r.written.observed(m));
  migrations.on('delete', (m) => r.written.observed(m, true));
  return controllerFor(r, { workers: opts.workers ?? 2, log })
    .watches(migrations)
    .watches(instances, ofInstance)
    .watches(hosts, ofHost)
    .watches(flavors, () => undefined)
    .watches(volumes, () => undefined)
    .watches(volumeTypes, () => undefined)
    .start(signal);
}
