// Reconciles one Instance bound to this host against its domain: resolve → decide → act.
// decide.ts picks the next step from the instance, the observed domain and the work queue's
// back-off; this file acts on it through the driver and writes the status that reports it
// (status-writer.ts); a spawn first goes through the resolver (resolve.ts), the same for
// every driver. Level-triggered: it re-reads the instance (informer cache) and the domain
// (driver) each time, applies at most a few steps and asks decide() again after each.
// Failures: a failed spawn is reported (status, an aggregated Event) and retried with the work
// queue's back-off (one back-off: the controller's); a spec that cannot work (unsizable,
// InvalidSpec from the driver) is reported once and thrown as a TerminalError: not retried
// until the instance changes.
import { HOSTS } from '../../api/kinds/index.js';
import type { Host, Instance, InstanceNetworkUsage } from '../../api/kinds/index.js';
import { chargedSize, reclaim, restartRequired, sameSize } from '../../api/resize.js';
import { instanceRequest } from '../../api/resources.js';
import type { Resources } from '../../api/resources.js';
import { setCondition } from '../../api/conditions.js';
import { INSTANCE_FINALIZER } from '../../api/types.js';
import { errorMessage, TerminalError } from '../../client/controller.js';
import type { ReconcileContext, Reconciler, Request, Result } from '../../client/controller.js';
import { INSTANCES } from '../../client/client.js';
import type { ApiClient } from '../../client/client.js';
import type { EventRecorder } from '../../client/events.js';
import { realClock } from '../../client/workqueue.js';
import type { Clock } from '../../client/workqueue.js';
import { domainName, DomainNotFound, instanceKey, InvalidSpec } from '../driver.js';
import type { AttachedVolume, ComputeDriver, DomainInfo, DomainSize } from '../driver.js';
import { hasConditions, nextStatus, waitingStatus } from './agent-status.js';
import type { CondSpec, InstanceStatus, Observation } from './agent-status.js';
import { ANNOTATION_POWER, ANNOTATION_RESTARTED_AT, decide, factsOf } from './decide.js';
import type { InstanceFacts } from './decide.js';
import { resolveInstance } from './resolve.js';
import type { ResolveOptions, ResolverDeps } from './resolve.js';
import { afterBootCondition, bootPlan, moveRequiredCondition, resizeMayApply } from './resize.js';
import { AgentStatusWriter } from './status-writer.js';
import { hasVolumeWork, syncVolumes } from './volumes.js';

export interface InstanceAgentReconcilerOptions {
  client: ApiClient;
  hostName: string;
  driver: ComputeDriver;
  /** The informer cache of instances bound to this host. */
  getCached: (namespace: string, name: string) => Instance | undefined;
  recorder: EventRecorder;
  /** What the resolver reads (caches only); hostName and hostNics come from above and the driver. */
  resolve: Omit<ResolverDeps, 'hostName' | 'hostNics'>;
  log: (msg: string) => void;
  /** Grace for a clean shutdown before the guest is forced off (default 60 s). */
  stopTimeoutMs?: number;
  /** Report phase Starting when a spawn has not finished after this long (default 1 s). */
  startingAfterMs?: number;
  /** How often an instance waiting for its image or network is looked at again without events (default 30 s). */
  waitRequeueMs?: number;
  /**
   * How long an instance waits quietly for its ports' addresses before the agent reports the
   * wait itself (default 30 s). An instance is usually bound before its ports have addresses,
   * moments before, and a status write and event for every such short wait only add load; a
   * port that cannot get one says why in the instance's NetworksReady condition at once.
   */
  settleQuietMs?: number;
  /**
   * An instance's network totals read as it is deleted, before its domain goes
   * (NetworkUsageReporter.finalUsage); written with its Terminating status.
   */
  finalNetworkUsage?: (inst: Instance) => Promise<InstanceNetworkUsage | undefined>;
  /** For the Starting timer (tests); the work queue has its own. */
  clock?: Clock;
  /** Whether a domain here belongs to an instance a Migration is moving to this host (it is not an orphan). */
  migratingHere?: (dom: DomainInfo) => boolean;
}

const MAX_ACTIONS = 6;

export class InstanceAgentReconciler implements Reconciler {
  readonly name: string;
  /** Domain id of each instance key the agent has spawned or adopted. */
  readonly domains = new Map<string, string>();
  /** Status writes (from the writer), spawns, destroys and invalid specs reported. */
  readonly stats: AgentStatusWriter['stats'] & { spawns: number; destroys: number; invalid: number };
  private readonly status: AgentStatusWriter;
  private readonly deps: ResolverDeps;
  private readonly clock: Clock;
  /** When each instance began waiting quietly for its ports (settling waits), by instance key. */
  private readonly settlingSince = new Map<string, number>();

  constructor(private readonly o: InstanceAgentReconcilerOptions) {
    this.name = `agent-${o.hostName}`;
    this.status = new AgentStatusWriter(o.client, o.hostName, o.getCached);
    // The writer counts its writes; stats shows them with the rest (one object).
    this.stats = Object.assign(this.status.stats, { spawns: 0, destroys: 0, invalid: 0 });
    this.deps = { ...o.resolve, hostName: o.hostName, hostNics: o.driver.capabilities.hostNics };
    this.clock = o.clock ?? realClock;
  }

  /**
   * The DomainSpec `inst` would be spawned with on this host; a migration target prepares it,
   * taking the local volumes on the source (`migratingFrom`) that move with the guest. A target
   * prepares the size the migration controller charged it for (api/resize.ts): the size the
   * guest has, or for a resize move the spec's new one.
   */
  async resolve(inst: Instance, o: ResolveOptions = {}): ReturnType<typeof resolveInstance> {
    const r = await resolveInstance(inst, this.deps, o);
    if (!o.migratingFrom || o.readinessOnly || !('spec' in r)) return r;
    const charged = chargedSize(await this.o.client.get<Host>(HOSTS, undefined, this.o.hostName), inst.metadata.uid!);
    if (charged) Object.assign(r.spec, { vcpus: charged.vcpus, memoryBytes: charged.memoryBytes, diskBytes: charged.diskBytes });
    return r;
  }

  /** Forget what our writes returned once the informer has delivered something at least as new. */
  observed(obj: Instance, deleted = false): void {
    this.status.observed(obj, deleted);
  }

  /** Whether `obj` is exactly what one of our own writes returned (its watch echo). */
  isOwnWrite(obj: Instance): boolean {
    return this.status.isOwnWrite(obj);
  }

  async reconcile(req: Request, signal: AbortSignal, ctx?: ReconcileContext): Promise<Result | void> {
    const ns = req.namespace!;
    const key = instanceKey(ns, req.name);
    let inst = this.status.current(ns, req.name);
    if (!inst || inst.status?.hostName !== this.o.hostName) return this.cleanUpGone(key);
    // A Migration moving it away owns the domain meanwhile: no power action, no respawn of a
    // domain that has just left (the migration agent runs the transfer, the controller rebinds).
    if (inst.status?.migration?.sourceHost === this.o.hostName) return;
    const id = domainName(ns, req.name, inst.metadata.uid!);
    // The domain's volumes are read alongside its state (both are reads): a hot plug then waits
    // for one round trip to the hypervisor before acting, not two.
    const volumesRead = hasVolumeWork(inst) ? this.o.driver.listVolumes(id).catch(() => undefined) : undefined;
    let dom = await this.info(id);
    const domBefore = dom;
    if (dom) this.domains.set(key, id);
    const f = factsOf(inst);
    const obs: Observation = { generation: inst.metadata.generation };
    const restartWanted = f.annotations[ANNOTATION_RESTARTED_AT];
    let result: Result | void = undefined;
    /** Conditions learnt while preparing a spawn (ImageReady=True, ...), written with the status. */
    const extraConds: CondSpec[] = [];

    for (let step = 0; step < MAX_ACTIONS && !signal.aborted; step++) {
      const d = decide(f, dom, step === 0 && ctx ? { retryAt: ctx.retryAt, now: ctx.now } : undefined);
      switch (d.kind) {
        case 'finalize':
          return this.finalize(inst, key, id, dom);
        case 'addFinalizer': {
          const withFin = await this.o.client.addFinalizer<Instance>(INSTANCES, ns, req.name, INSTANCE_FINALIZER, inst);
          if (!withFin) return;
          inst = this.status.remember(withFin);
          f.hasFinalizer = true;
          continue;
        }
        case 'destroyStale':
          this.o.log(`${this.name}: destroying stale domain ${id} of an earlier ${key} (uid ${dom?.instanceUID})`);
          await this.o.driver.destroy(id);
          dom = undefined;
          continue;
        case 'backoff':
          // Whatever woke us (our own status write, an unrelated update) must not retry early.
          return { backoff: 'pending' };
        case 'invalid':
          return; // reported already (status, Event); nothing to do until the spec changes
        case 'none':
          // Nothing to reboot (the guest is kept off or absent): acknowledge the request.
          if (restartWanted && restartWanted !== f.observedRestartedAt) obs.observedRestartedAt = restartWanted;
          break;
        case 'wait':
          result = { requeueAfterMs: 500 };
          break;
        case 'spawn': {
          const g = await this.resizeAtBoot(inst, id, dom, obs);
          if ('hold' in g) {
            extraConds.push(...g.hold);
            result = { requeueAfterMs: this.o.waitRequeueMs ?? 30_000 };
            break;
          }
          const r = await this.spawn(inst, key, id, f, obs, g.size);
          if ('done' in r) return r.done;
          inst = r.inst;
          dom = r.dom;
          extraConds.push(...r.conds);
          if (g.after) extraConds.push(g.after);
          break;
        }
        default: {
          const boots = d.kind === 'powerOn' || d.kind === 'reboot';
          const g = boots ? await this.resizeAtBoot(inst, id, dom, obs) : { dom };
          if ('hold' in g) {
            extraConds.push(...g.hold);
            dom = await this.info(id);
            result = { requeueAfterMs: this.o.waitRequeueMs ?? 30_000 };
            break;
          }
          dom = g.dom;
          inst = await this.power(inst, id, d, f, obs, dom);
          dom = await this.info(id);
          if (g.after) extraConds.push(g.after);
        }
      }
      if (d.kind === 'none' || d.kind === 'wait' || result) break;
      if (obs.started && restartWanted) {
        // A fresh boot satisfies a pending restart request.
        f.observedRestartedAt = restartWanted;
        obs.observedRestartedAt = restartWanted;
      }
      f.startedAt ??= obs.started ? 'now' : undefined;
    }

    // Say why a guest is off when kova keeps it off (not when the guest turned itself off).
    if (obs.stoppedWhy === undefined && (f.runStrategy === 'Halted' || (f.runStrategy === 'Manual' && f.annotations[ANNOTATION_POWER] === 'Off'))) {
      if (!dom || dom.state === 'Shutdown') obs.stoppedWhy = f.runStrategy === 'Halted' ? 'runStrategy is Halted' : `${ANNOTATION_POWER} is Off`;
    }
    obs.domain = dom ? { uuid: dom.uuid, state: dom.state } : undefined;
    if (dom && dom.state !== 'NoState' && !signal.aborted && hasVolumeWork(inst)) {
      // What was read at the start holds only if no action changed the domain since.
      const read = dom === domBefore ? await volumesRead : undefined;
      const r = await this.volumes(inst, id, obs, read);
      if (r && !result) result = r;
    } else if (volumesRead) await volumesRead;
    await this.writeStatus(inst, obs, extraConds);
    return result;
  }

  /**
   * Brings the domain's volumes to spec.volumes and records them in `obs`. While something is
   * pending it looks again soon: a detach is asked again until the guest lets go (the driver's
   * VolumeDetached event usually comes first), a volume that is not ready wakes us when it changes.
   */
  private async volumes(inst: Instance, id: string, obs: Observation, read?: AttachedVolume[]): Promise<Result | undefined> {
    const r = await syncVolumes(inst, id, this.o.driver, this.deps.storage, this.o.hostName, read);
    obs.volumes = r.volumes;
    const waiting = r.volumes.filter((v) => v.state !== 'Attached').map((v) => `${v.volume}: ${v.message ?? v.state}`);
    if (waiting.length) obs.volumesPending = waiting.join('; ');
    for (const v of r.attached) void this.o.recorder.normal(inst, 'VolumeAttached', `attached volume ${v}`);
    for (const v of r.detached) void this.o.recorder.normal(inst, 'VolumeDetached', `detached volume ${v}`);
    if (!r.pending) return undefined;
    return { requeueAfterMs: r.volumes.some((v) => v.state === 'Detaching') ? 5_000 : this.o.waitRequeueMs ?? 30_000 };
  }

  /**
   * A resize at a boot (resize.ts): the guest boots with the size this host is charged for.
   * A new size in the spec is claimed here first; the domain is powered off and redefined when
   * its size changes. `hold`: keep it off (conditions to write) while a move is arranged.
   */
  private async resizeAtBoot(inst: Instance, id: string, dom: DomainInfo | undefined, obs: Observation): Promise<{ hold: CondSpec[] } | { size?: DomainSize; dom?: DomainInfo; after?: CondSpec }> {
    const wanted = await this.wantedSize(inst);
    const condition = restartRequired(inst);
    if (!resizeMayApply(wanted, condition, dom)) return { dom };
    const host = await this.o.client.get<Host>(HOSTS, undefined, this.o.hostName);
    const facts = { wanted, charged: chargedSize(host, inst.metadata.uid!), condition };
    const plan = bootPlan(facts);
    const gen = inst.metadata.generation;
    const off = async (why: string) => {
      if (dom?.state !== 'Running' && dom?.state !== 'Paused') return;
      void this.o.recorder.normal(inst, 'Stopping', `shutting the guest down: ${why}`);
      await this.o.driver.powerOff(id, this.o.stopTimeoutMs ?? 60_000);
      dom = await this.info(id);
    };
    if (plan.kind === 'hold') {
      await off(plan.why);
      obs.stoppedWhy = plan.why;
      return { hold: [] };
    }
    const size = plan.size;
    let claimed = false;
    if (plan.kind === 'claim') {
      await off('resizing to the new size at the restart');
      const refused = await this.claimHere(inst, plan.size);
      if (refused) {
        const cond = moveRequiredCondition(this.o.hostName, plan.size, refused, gen);
        obs.stoppedWhy = cond.message;
        void this.o.recorder.normal(inst, 'ResizeNeedsMove', cond.message!);
        this.o.log(`${this.name}: ${inst.metadata.namespace}/${inst.metadata.name}: ${cond.message}`);
        return { hold: [cond] };
      }
      claimed = true;
    }
    if (dom && size && (claimed || condition?.status === 'True' || dom.vcpus !== size.vcpus || dom.memoryBytes !== size.memoryBytes)) {
      await off('resizing to the new size at the restart');
      dom = await this.o.driver.resize(id, size);
      void this.o.recorder.normal(inst, 'Resized', `redefined the domain with ${size.vcpus} vCPUs and ${size.memoryBytes} bytes of memory`);
    }
    const after = afterBootCondition(this.o.hostName, plan.kind === 'claim' ? { kind: 'boot', size } : plan, facts, gen);
    return { size, dom, after };
  }

  /** The size the spec asks for, when it can be known. */
  private async wantedSize(inst: Instance): Promise<Resources | undefined> {
    const flavor = inst.spec.flavor ? await this.deps.flavor(inst.spec.flavor) : undefined;
    const r = instanceRequest(inst, () => flavor);
    return 'req' in r ? r.req : undefined;
  }

  /** Charges this host for `size` instead of what it held (compare-and-swap, room re-checked); why not, when it lacks room. */
  private async claimHere(inst: Instance, size: Resources): Promise<string | undefined> {
    let refused: string | undefined;
    const out = await this.o.client.updateStatus<Host>(HOSTS, undefined, this.o.hostName, (h) => {
      refused = undefined;
      const cur = chargedSize(h, inst.metadata.uid!);
      if (cur && sameSize(cur, size)) return false;
      const r = reclaim(h, inst, size);
      if ('refused' in r) {
        refused = r.refused.message;
        return false;
      }
      h.status = { ...h.status, allocations: r.allocations, allocated: r.allocated };
    });
    if (!out) return `host ${this.o.hostName} not found`;
    if (!refused) this.o.log(`${this.name}: ${inst.metadata.namespace}/${inst.metadata.name}: host ${this.o.hostName} now charges it for the new size`);
    return refused;
  }

  /** Resolve, then spawn (with `size` instead of the spec's when given: the size this host is charged for). `done` ends the reconcile (waiting, failed, invalid). */
  private async spawn(inst: Instance, key: string, id: string, f: InstanceFacts, obs: Observation, size?: DomainSize): Promise<{ done: Result | void } | { inst: Instance; dom: DomainInfo; conds: CondSpec[] }> {
    const r = await resolveInstance(inst, this.deps);
    if ('invalid' in r) return { done: await this.invalid(inst, key, obs, r.invalid) };
    if ('wait' in r && r.settling) {
      const quietFor = this.quietFor(key);
      if (quietFor > 0) return { done: { requeueAfterMs: quietFor } };
    } else {
      this.settlingSince.delete(key);
    }
    if ('wait' in r) return { done: await this.waitFor(inst, key, r.wait, r.why) };
    if (size) Object.assign(r.spec, { vcpus: size.vcpus, memoryBytes: size.memoryBytes, diskBytes: size.diskBytes });
    // Starting is reported only when the spawn takes a while: a fast spawn goes from
    // Provisioning straight to Running, saving one write per instance.
    let starting: Promise<Instance> | undefined;
    const timer = this.clock.setTimeout(() => (starting = this.writeStatus(inst, { ...obs, phase: 'Starting' }).catch((e) => {
      this.o.log(`${this.name}: ${key}: could not report Starting: ${errorMessage(e)}`);
      return inst;
    })), this.o.startingAfterMs ?? 1000);
    let dom: DomainInfo | undefined;
    let failure: unknown;
    try {
      this.stats.spawns++;
      dom = await this.o.driver.spawn(r.spec);
    } catch (e) {
      failure = e;
    } finally {
      this.clock.clearTimeout(timer);
    }
    const current = starting ? await starting : inst;
    if (failure instanceof InvalidSpec) return { done: await this.invalid(current, key, obs, failure.message) };
    if (failure !== undefined || !dom) return { done: await this.spawnFailed(current, key, obs, failure) };
    this.domains.set(key, id);
    obs.started = true;
    f.readyReason = 'Running';
    void this.o.recorder.normal(current, 'Started', `started domain on host ${this.o.hostName}`);
    return { inst: current, dom, conds: r.conds };
  }

  /** Runs one power action; returns the newest Instance (a slow stop writes phase Stopping). */
  private async power(inst: Instance, id: string, d: ReturnType<typeof decide>, f: InstanceFacts, obs: Observation, dom: DomainInfo | undefined): Promise<Instance> {
    const { driver, recorder } = this.o;
    switch (d.kind) {
      case 'powerOn':
        await driver.powerOn(id);
        obs.started = true;
        if (d.restart) {
          obs.restarted = true;
          const what = dom?.state === 'Crashed' ? 'the guest crashed' : 'the guest shut down';
          void recorder.warning(inst, 'Restarted', `${what}; restarted it (runStrategy ${f.runStrategy})`);
        } else {
          void recorder.normal(inst, 'Started', `started domain on host ${this.o.hostName}`);
        }
        f.readyReason = 'Running';
        return inst;
      case 'powerOff': {
        void recorder.normal(inst, 'Stopping', `shutting the guest down: ${d.why}`);
        // Like Starting, phase Stopping is written only when the shutdown takes a while (a
        // guest that ignores ACPI is forced off after stopTimeoutMs).
        let stopping: Promise<Instance> | undefined;
        const domain = dom ? { uuid: dom.uuid, state: dom.state } : undefined;
        const timer = this.clock.setTimeout(() => (stopping = this.writeStatus(inst, { ...obs, domain, phase: 'Stopping' }).catch((e) => {
          this.o.log(`${this.name}: could not report Stopping for ${inst.metadata.namespace}/${inst.metadata.name}: ${errorMessage(e)}`);
          return inst;
        })), this.o.startingAfterMs ?? 1000);
        try {
          await driver.powerOff(id, this.o.stopTimeoutMs ?? 60_000);
        } finally {
          this.clock.clearTimeout(timer);
        }
        obs.stoppedWhy = d.why;
        f.readyReason = 'Stopped';
        void recorder.normal(inst, 'Stopped', `guest stopped: ${d.why}`);
        return stopping ? await stopping : inst;
      }
      case 'reboot':
        await driver.reboot(id);
        obs.started = true;
        void recorder.normal(inst, 'Rebooted', `rebooted the guest (${ANNOTATION_RESTARTED_AT} ${f.annotations[ANNOTATION_RESTARTED_AT]})`);
        return inst;
      case 'pause':
        await driver.pause(id);
        void recorder.normal(inst, 'Paused', 'paused the guest');
        return inst;
      case 'unpause':
        await driver.unpause(id);
        void recorder.normal(inst, 'Unpaused', 'resumed the guest');
        return inst;
      default:
        return inst;
    }
  }

  /**
   * How much longer a settling wait stays quiet (0: report it now). Its start is this agent's own
   * clock, not a timestamp another host wrote; a restarted agent starts counting again.
   */
  private quietFor(key: string): number {
    const now = this.clock.now();
    const since = this.settlingSince.get(key) ?? now;
    this.settlingSince.set(key, since);
    return Math.max(0, since + (this.o.settleQuietMs ?? 30_000) - now);
  }

  /**
   * The instance cannot be spawned yet (image, key pair or network not ready): say so in its
   * conditions (phase stays Provisioning, Ready=False) and look again later; Image, KeyPair
   * and Port changes wake it earlier. Not a failure: no back-off, no Failed phase.
   */
  private async waitFor(inst: Instance, key: string, conds: CondSpec[], why: string): Promise<Result> {
    const fresh = !hasConditions(inst.status?.conditions, conds);
    const out = await this.status.write(inst, (prev) => waitingStatus(prev, conds, why, inst.metadata.generation));
    if (fresh) {
      this.o.log(`${this.name}: ${key}: waiting: ${why}`);
      void this.o.recorder.normal(out, 'Waiting', why);
    }
    return { requeueAfterMs: this.o.waitRequeueMs ?? 30_000 };
  }

  /**
   * Reports a failed spawn and hands the retry to the controller's back-off. The message is
   * the same for identical attempts (the count is status.spawnAttempts), so the Warning Event
   * is one Event whose count grows, and a retry changes nothing but the count.
   */
  private async spawnFailed(inst: Instance, key: string, obs: Observation, e: unknown): Promise<Result> {
    const msg = `could not start the guest on host ${this.o.hostName}: ${errorMessage(e)}`;
    const out = await this.writeStatus(inst, { ...obs, failure: msg, domain: undefined });
    const n = out.status?.spawnAttempts ?? 1;
    this.o.log(`${this.name}: ${key}: ${msg} (attempt ${n}; retrying with back-off)`);
    void this.o.recorder.warning(out, 'Failed', msg);
    return { backoff: 'failed' };
  }

  /**
   * The spec cannot work as it is (unsizable, or a spec the driver refuses): Failed with
   * Ready reason InvalidSpec, one Warning, and a TerminalError so the controller does not
   * retry; decide() leaves it alone until the spec (its generation) changes.
   */
  private async invalid(inst: Instance, key: string, obs: Observation, why: string): Promise<never> {
    const msg = `cannot start the guest: ${why}`;
    this.stats.invalid++;
    const out = await this.writeStatus(inst, { ...obs, failure: msg, terminal: true, domain: undefined });
    void this.o.recorder.warning(out, 'InvalidSpec', msg);
    throw new TerminalError(`${key}: ${msg}`);
  }

  private async finalize(inst: Instance, key: string, id: string, dom: DomainInfo | undefined): Promise<void> {
    this.settlingSince.delete(key);
    const ns = inst.metadata.namespace!;
    const name = inst.metadata.name!;
    const ours = (inst.metadata.finalizers ?? []).includes(INSTANCE_FINALIZER);
    /** The instance as last written: the finalizer's removal starts from it instead of a read. */
    let current = inst;
    if (ours) {
      // The last network counts go in the same write, read while the domain still runs.
      const usage = dom ? await this.o.finalNetworkUsage?.(inst) : undefined;
      current = await this.status.write(inst, (prev) => withFinalUsage(nextStatus(prev, { generation: inst.metadata.generation, phase: 'Terminating' }), usage));
      if (dom) void this.o.recorder.normal(current, 'Killing', `destroying the domain on host ${this.o.hostName}`);
    }
    await this.o.driver.destroy(id);
    const known = this.domains.get(key);
    if (known && known !== id) await this.o.driver.destroy(known);
    this.domains.delete(key);
    this.stats.destroys++;
    // What the removal returned (other finalizers may hold the instance a while) is kept like a
    // status write: a pass on an older cached copy, which still shows our finalizer, would
    // otherwise write Terminating and remove the finalizer again, only to be refused (409, 422).
    const left = ours ? await this.o.client.removeFinalizer<Instance>(INSTANCES, ns, name, INSTANCE_FINALIZER, current) : undefined;
    if (left) this.status.remember(left);
    else if (ours) this.status.forget(key);
  }

  /** The instance is gone or bound elsewhere: its domain here must go too. */
  private async cleanUpGone(key: string): Promise<void> {
    this.status.forget(key);
    this.settlingSince.delete(key);
    const id = this.domains.get(key);
    if (!id) return;
    const dom = await this.info(id);
    if (dom && dom.instanceKey === key && !this.o.migratingHere?.(dom)) {
      this.o.log(`${this.name}: ${key} is no longer bound to this host; destroying domain ${id}`);
      await this.o.driver.destroy(id);
      this.stats.destroys++;
    }
    this.domains.delete(key);
  }

  private async info(id: string): Promise<DomainInfo | undefined> {
    try {
      return await this.o.driver.getInfo(id);
    } catch (e) {
      if (e instanceof DomainNotFound) return undefined;
      throw e;
    }
  }

  /** Writes the status `obs` leads to (plus `extraConds`), unless it equals the current one. */
  private writeStatus(inst: Instance, obs: Observation, extraConds: CondSpec[] = []): Promise<Instance> {
    return this.status.write(inst, (prev) => {
      const next = nextStatus(prev, obs);
      for (const c of extraConds) next.conditions = setCondition(next.conditions, c, obs.now);
      return next;
    });
  }
}

/** `next` with the last network counts, unless the status already has higher ones (the other side of a migration published more). */
function withFinalUsage(next: InstanceStatus, usage: InstanceNetworkUsage | undefined): InstanceStatus {
  const had = next.networkUsage;
  if (!usage || (had && (had.receiveBytes > usage.receiveBytes || had.transmitBytes > usage.transmitBytes))) return next;
  return { ...next, networkUsage: usage };
}
