// The scheduler: places unbound Instances on Hosts. For each unbound instance it computes the
// request (Flavor or spec.resources), runs the filters and weighers over its cached Host views,
// counts the choice against the host at once (assume cache, so parallel workers do not pick the
// same last slot) and binds through the API server, which checks and claims the room in one
// transaction. A refusal is read from the binding's typed causes (api/binding.ts): a host that
// is full, fenced, not ready or gone is excluded and the instance placed again right away; an
// instance bound or deleted meanwhile is left alone. Instances that fit nowhere stay Pending
// with Scheduled=False and are retried when Hosts or Flavors change.
// Volumes (Kubernetes' volume binding, WaitForFirstConsumer): a local volume with a host pins
// the instance there; one without goes with the instance, which needs room for it, and gets the
// kova.dev/selected-host annotation before the instance is bound (its agent then creates it).
import { bindingFailure, BindingCauses } from '../../api/binding.js';
import type { BindingCauseReason } from '../../api/binding.js';
import { ANNOTATION_SELECTED_HOST, FLAVORS, HOSTS, INSTANCES, VOLUMES, VOLUME_TYPES } from '../../api/kinds/index.js';
import type { Flavor, Host, Instance, InstanceStatus, Volume, VolumeType } from '../../api/kinds/index.js';
import { formatResources, instanceRequest } from '../../api/resources.js';
import type { AllocationRatios, Resources } from '../../api/resources.js';
import type { Condition } from '../../api/types.js';
import { nowRFC3339 } from '../../api/types.js';
import { StatusError, KovaClient, isConflict, isNotFound } from '../../client/client.js';
import type { ApiClient } from '../../client/client.js';
import { controllerFor, errorMessage, keyOfObject, withDefaults } from '../../client/controller.js';
import type { Controller, ControllerStartOptions, Reconciler, Request } from '../../client/controller.js';
import { EventRecorder } from '../../client/events.js';
import type { InformerEvent } from '../../client/informer.js';
import { BestEffortLane } from './best-effort.js';
import { HostCache } from './host-cache.js';
import { observeAttempt } from './metrics.js';
import type { AttemptResult } from './metrics.js';
import { schedule } from './schedule.js';
import { weighersFor } from './weighers.js';
import { NO_VOLUMES, volumeCharge, volumeTopology } from './volume-topology.js';
import type { VolumeTopology } from './volume-topology.js';
import { volumeHost } from '../volume/placement.js';
import type { WeigherPolicy, Weigher } from './weighers.js';

export const COMPONENT = 'kova-scheduler';

export interface SchedulerStats {
  /** Successful bindings. */
  bound: number;
  /** Refusals for lack of room: placements lost to a stale view or another scheduler. */
  bindConflicts: number;
  /** Instances found bound or deleted by someone else when binding (e.g. another scheduler). */
  lostRaces: number;
  /** Scheduling attempts that found no host. */
  unschedulable: number;
  /** Binding calls and their summed latency (ms), for the mean round trip. */
  bindCalls: number;
  bindMs: number;
  /** Local volumes given a host with their first consumer (the selected-host annotation). */
  volumesSelected: number;
}

export interface SchedulerReconcilerDeps {
  client: Pick<ApiClient, 'bind' | 'updateStatus' | 'get' | 'mergePatch'>;
  instances: { get(namespace: string | undefined, name: string): Instance | undefined };
  flavors: { get(namespace: string | undefined, name: string): Flavor | undefined };
  /** Volumes and VolumeTypes (informers); without them spec.volumes is not looked at. */
  volumes?: { get(namespace: string | undefined, name: string): Volume | undefined; list(namespace?: string): readonly Volume[] };
  volumeTypes?: { get(namespace: string | undefined, name: string): VolumeType | undefined };
  /** Queues a reconcile of "namespace/name" (the controller's enqueueKey). */
  enqueue(key: string): void;
  /** Where Scheduled and FailedScheduling events go. */
  recorder: Pick<EventRecorder, 'normal' | 'warning'>;
  weighers: readonly Weigher[];
  /** Choose at random among the best N hosts (default 1: only among exact ties). */
  subsetSize?: number;
  /** Allocation ratios for hosts that have capacity but no allocatable yet (default: such hosts offer nothing). */
  ratios?: Partial<AllocationRatios>;
  /** Binding attempts per reconcile before backing off (default 10). */
  maxBindAttempts?: number;
}

/** Selecting a host for a volume: done, or someone placed it (or deleted it) meanwhile. */
type SelectOutcome = 'selected' | { changed: Volume | null };

/** Attempts at one volume's annotation when its resourceVersion moves for other reasons. */
const SELECT_ATTEMPTS = 5;

/** What a refused binding means for this placement. */
type BindOutcome = 'bound' | 'gone' | { refused: string };

/**
 * The host a refusal rules out, in the filters' words (counted in the unschedulable message);
 * or 'gone' when there is nothing left to do for the instance.
 */
const REFUSALS: Partial<Record<BindingCauseReason, string>> = {
  [BindingCauses.InsufficientVCPUs]: 'insufficient vcpus',
  [BindingCauses.InsufficientMemory]: 'insufficient memory',
  [BindingCauses.InsufficientDisk]: 'insufficient disk',
  [BindingCauses.NoAllocatable]: 'insufficient resources',
  [BindingCauses.HostFenced]: 'unschedulable',
  [BindingCauses.HostNotReady]: 'not ready',
  [BindingCauses.HostNotFound]: 'not found',
};
const ROOM = new Set<BindingCauseReason>([BindingCauses.InsufficientVCPUs, BindingCauses.InsufficientMemory, BindingCauses.InsufficientDisk, BindingCauses.NoAllocatable]);
const GONE = new Set<BindingCauseReason>([BindingCauses.AlreadyBound, BindingCauses.InstanceTerminating, BindingCauses.InstanceNotFound]);

const isUnbound = (o: Instance) => !o.status?.hostName && !o.metadata.deletionTimestamp;

export class SchedulerReconciler implements Reconciler {
  readonly name = 'scheduler';
  readonly cache: HostCache;
  readonly stats: SchedulerStats = { bound: 0, bindConflicts: 0, lostRaces: 0, unschedulable: 0, bindCalls: 0, bindMs: 0, volumesSelected: 0 };
  /**
   * Event writes beside placements, never ahead of them, and at most ~100/s: a bulk placement
   * records its first events, not one per instance at the placements' expense.
   */
  readonly events = new BestEffortLane(8, 1000, { perSecond: 100, burst: 300 });
  /** Instances that fit nowhere (or wait for their Flavor), with the generation last tried. */
  private readonly waiting = new Map<string, number | undefined>();
  private readonly maxAttempts: number;
  /** Each volume's host and deletion state as last seen, to requeue only when they change. */
  private readonly volumePlacements = new Map<string, string>();

  constructor(private readonly d: SchedulerReconcilerDeps) {
    this.cache = new HostCache({ ratios: d.ratios });
    this.maxAttempts = d.maxBindAttempts ?? 10;
  }

  async reconcile(req: Request): Promise<void> {
    const key = `${req.namespace}/${req.name}`;
    const inst = this.d.instances.get(req.namespace, req.name);
    if (!inst || !isUnbound(inst) || this.cache.isBound(inst.metadata.uid ?? '')) {
      this.waiting.delete(key);
      return;
    }
    const t0 = performance.now();
    let result: AttemptResult = 'error';
    try {
      result = await this.attempt(key, inst);
    } finally {
      observeAttempt(result, t0);
    }
  }

  /** One scheduling attempt: placement and binding, or the reason there is none. */
  private async attempt(key: string, inst: Instance): Promise<AttemptResult> {
    const r = instanceRequest(inst, (name) => this.d.flavors.get(undefined, name));
    if ('flavorNotFound' in r) return this.unschedulable(key, inst, 'FlavorNotFound', `flavor "${r.flavorNotFound}" not found`);
    if ('invalid' in r) return this.unschedulable(key, inst, 'InvalidResources', r.invalid);

    const uid = inst.metadata.uid!;
    const excluded = new Map<string, string>();
    /** Volumes read live during this reconcile (null: deleted), newer than the informer's. */
    const fresh = new Map<string, Volume | null>();
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      const volumes = this.volumeTopology(inst, fresh);
      if ('unschedulable' in volumes) return this.unschedulable(key, inst, 'Unschedulable', volumes.unschedulable);
      const choice = schedule(inst, r.req, this.cache.hosts(), { weighers: this.d.weighers, subsetSize: this.d.subsetSize, excluded, volumes });
      if ('unschedulable' in choice) {
        this.stats.unschedulable++;
        return this.unschedulable(key, inst, 'Unschedulable', choice.unschedulable);
      }
      const host = choice.host;
      this.cache.assume(uid, host, r.req);
      const changed = await this.selectHost(volumes, host);
      if (changed) {
        // Another scheduler or the volume controller placed a volume meanwhile: plan again with it.
        this.cache.forget(uid);
        fresh.set(changed.name, changed.volume);
        continue;
      }
      const outcome = await this.bind(inst, host, r.req);
      if (outcome === 'bound') {
        this.cache.finishBinding(uid);
        this.waiting.delete(key);
        this.stats.bound++;
        this.events.submit(() => this.d.recorder.normal(inst, 'Scheduled', `Successfully assigned ${key} to ${host}`));
        return 'scheduled';
      }
      this.cache.forget(uid);
      if (outcome === 'gone') {
        this.waiting.delete(key);
        // The claim held room on `host` that others may have been refused for. (Not after a
        // refusal: then the host really is full, and requeueing would only spin.)
        this.requeueWaiting();
        return 'error'; // as kube-scheduler counts a binding that failed because the pod went
      }
      excluded.set(host, outcome.refused);
    }
    throw new Error(`no binding after ${this.maxAttempts} attempts (hosts refused: ${[...excluded].map(([h, why]) => `${h}: ${why}`).join('; ')})`);
  }

  private volumeTopology(inst: Instance, fresh: ReadonlyMap<string, Volume | null>): VolumeTopology | { unschedulable: string } {
    const { volumes, volumeTypes } = this.d;
    if (!volumes || !volumeTypes || !inst.spec.volumes?.length) return NO_VOLUMES;
    return volumeTopology(inst, {
      volume: (ns, name) => (fresh.has(name) ? (fresh.get(name) ?? undefined) : volumes.get(ns, name)),
      volumeType: (name) => volumeTypes.get(undefined, name),
    });
  }

  /**
   * Writes `host` into the selected-host annotation of each local volume still without a host,
   * charging it to the host's disk at once. Returns the volume someone else placed or deleted
   * meanwhile (the caller plans again), or undefined when all are selected.
   */
  private async selectHost(t: VolumeTopology, host: string): Promise<{ name: string; volume: Volume | null } | undefined> {
    for (const v of t.unplaced) {
      const out = await this.selectVolumeHost(v, host);
      if (out !== 'selected') return { name: v.metadata.name!, volume: out.changed };
    }
    return undefined;
  }

  private async selectVolumeHost(v: Volume, host: string): Promise<SelectOutcome> {
    const { namespace, name, uid } = v.metadata;
    const types = this.d.volumeTypes!;
    this.cache.setVolume(uid!, volumeCharge({ ...v, metadata: { ...v.metadata, annotations: { ...v.metadata.annotations, [ANNOTATION_SELECTED_HOST]: host } } }, { volumeType: (n) => types.get(undefined, n) }));
    let cur = v;
    for (let i = 0; i < SELECT_ATTEMPTS; i++) {
      try {
        // The resourceVersion makes the patch conditional: no one placed it since we read it.
        await this.d.client.mergePatch(VOLUMES, namespace, name!, { metadata: { resourceVersion: cur.metadata.resourceVersion, annotations: { [ANNOTATION_SELECTED_HOST]: host } } });
        this.stats.volumesSelected++;
        return 'selected';
      } catch (e) {
        if (!isConflict(e) && !isNotFound(e)) {
          this.restoreVolumeCharge(v);
          throw e;
        }
      }
      const live = await this.d.client.get<Volume>(VOLUMES, namespace, name!);
      if (!live || live.metadata.uid !== uid || live.metadata.deletionTimestamp) {
        this.restoreVolumeCharge(v);
        return { changed: live ?? null };
      }
      const placed = volumeHost(live);
      if (placed === host) return 'selected';
      if (placed) {
        this.cache.setVolume(uid!, volumeCharge(live, { volumeType: (n) => types.get(undefined, n) }));
        return { changed: live };
      }
      cur = live; // changed for another reason (status, labels): try again on it
    }
    this.restoreVolumeCharge(v);
    throw new Error(`volume ${namespace}/${name}: could not select host ${host} after ${SELECT_ATTEMPTS} conflicts`);
  }

  /** Back to what the informer says about the volume. */
  private restoreVolumeCharge(v: Volume): void {
    const cached = this.d.volumes?.get(v.metadata.namespace, v.metadata.name!);
    this.cache.setVolume(v.metadata.uid!, cached && cached.metadata.uid === v.metadata.uid ? volumeCharge(cached, { volumeType: (n) => this.d.volumeTypes?.get(undefined, n) }) : undefined);
  }

  /** Binds; 'gone' when there is nothing left to do for this instance, or the host's refusal. */
  private async bind(inst: Instance, host: string, req: Resources): Promise<BindOutcome> {
    const { namespace, name } = inst.metadata;
    const t0 = performance.now();
    try {
      await this.d.client.bind(namespace!, name!, host, formatResources(req));
      return 'bound';
    } catch (e) {
      if (!(e instanceof StatusError)) throw e;
      // The first cause decides (the server lists short dimensions as vcpus, memory, disk).
      const cause = bindingFailure(e.code, e.status)[0];
      if (!cause) throw e; // not a refusal we know (flavor gone, invalid size, server error): back off
      // Bound meanwhile (by us before the cache caught up, or by another scheduler), or deleted.
      if (GONE.has(cause.reason)) {
        this.stats.lostRaces++;
        return 'gone';
      }
      const refused = REFUSALS[cause.reason];
      if (refused === undefined) throw e;
      if (ROOM.has(cause.reason)) this.stats.bindConflicts++;
      return { refused };
    } finally {
      this.stats.bindCalls++;
      this.stats.bindMs += performance.now() - t0;
    }
  }

  private async unschedulable(key: string, inst: Instance, reason: string, message: string): Promise<'unschedulable'> {
    this.waiting.set(key, inst.metadata.generation);
    const same = (st: InstanceStatus | undefined) => {
      const cond = st?.conditions?.find((c) => c.type === 'Scheduled');
      return st?.phase === 'Pending' && cond?.status === 'False' && cond.reason === reason && cond.message === message;
    };
    if (same(inst.status)) return 'unschedulable';
    const written = await this.d.client.updateStatus<Instance>(INSTANCES, inst.metadata.namespace, inst.metadata.name!, (obj) => {
      const st = (obj.status ??= {});
      if (st.hostName || obj.metadata.deletionTimestamp || same(st)) return false;
      const old = st.conditions?.find((c) => c.type === 'Scheduled');
      st.phase = 'Pending';
      const next: Condition = {
        type: 'Scheduled',
        status: 'False',
        reason,
        message,
        lastTransitionTime: old?.status === 'False' && old.lastTransitionTime ? old.lastTransitionTime : nowRFC3339(),
        ...(obj.metadata.generation !== undefined ? { observedGeneration: obj.metadata.generation } : {}),
      };
      st.conditions = [...(st.conditions ?? []).filter((c) => c.type !== 'Scheduled'), next];
    });
    if (written) this.events.submit(() => this.d.recorder.warning(inst, 'FailedScheduling', message));
    return 'unschedulable';
  }

  /** Retries every instance that found no room. */
  requeueWaiting(): void {
    for (const key of this.waiting.keys()) this.d.enqueue(key);
  }

  /** Whether `key` waits for a Host or Flavor change (tests, metrics). */
  isWaiting(key: string): boolean {
    return this.waiting.has(key);
  }

  // ---- informer events ----

  onInstance(o: Instance, event: InformerEvent): void {
    const key = keyOfObject(o);
    if (event === 'delete' || !isUnbound(o)) {
      this.waiting.delete(key);
      return;
    }
    // An instance we already found no room for waits for a Host or Flavor change, unless its
    // spec changed (our own status write comes back here too).
    if (this.waiting.has(key) && this.waiting.get(key) === o.metadata.generation) return;
    this.d.enqueue(key);
  }

  onHost(h: Host, event: InformerEvent): void {
    if (event === 'delete') this.cache.remove(h.metadata.name ?? '');
    else if (this.cache.upsert(h)) this.requeueWaiting();
  }

  /**
   * A Volume changed: its disk charge follows, and waiting instances are retried when one
   * appeared, was placed or moved, or freed room (not for status-only changes such as attachments).
   */
  onVolume(v: Volume, event: InformerEvent): void {
    const types = this.d.volumeTypes;
    const charge = event === 'delete' || !types ? undefined : volumeCharge(v, { volumeType: (n) => types.get(undefined, n) });
    const key = `${v.metadata.namespace}/${v.metadata.name}`;
    const placement = `${volumeHost(v) ?? ''}\0${v.metadata.deletionTimestamp ? 'deleting' : ''}`;
    const prev = this.volumePlacements.get(key);
    if (event === 'delete') this.volumePlacements.delete(key);
    else this.volumePlacements.set(key, placement);
    const freed = this.cache.setVolume(v.metadata.uid ?? key, charge);
    if (freed || event !== 'update' || prev !== placement) this.requeueWaiting();
  }

  /** A VolumeType changed: the charges of its volumes may change, and instances waiting for it may go. */
  onVolumeType(t: VolumeType): void {
    const types = this.d.volumeTypes;
    if (!types) return;
    for (const v of this.d.volumes?.list() ?? []) {
      if (v.spec.volumeType === t.metadata.name) this.cache.setVolume(v.metadata.uid!, volumeCharge(v, { volumeType: (n) => types.get(undefined, n) }));
    }
    this.requeueWaiting();
  }

  /** Claims of bindings whose host never showed them expire; waiting instances may fit then. */
  sweep(): void {
    if (this.cache.sweep()) this.requeueWaiting();
  }
}

export interface SchedulerOptions extends Omit<ControllerStartOptions, 'client'> {
  /** A client, or a kubeconfig path to make one from (closed on stop). */
  client?: ApiClient;
  kubeconfig?: string;
  /** spread (default: most free memory first) or pack; or explicit weighers. */
  weigher?: WeigherPolicy | readonly Weigher[];
  /**
   * Parallel placements (default 128); keys are never worked on concurrently. Each one mostly
   * waits for its binding: like kube-scheduler's asynchronous binding cycles, many in flight
   * let etcd commit them in larger batches (the assume cache keeps them from overbooking).
   */
  workers?: number;
  subsetSize?: number;
  ratios?: Partial<AllocationRatios>;
  maxBindAttempts?: number;
}

export interface Scheduler {
  readonly reconciler: SchedulerReconciler;
  readonly cache: HostCache;
  readonly controller: Controller;
  readonly stats: SchedulerStats;
  /** Event writes: run, dropped (queue full). */
  readonly events: BestEffortLane;
  /** Resolves when the scheduler has stopped (after `signal` aborted). */
  readonly done: Promise<void>;
}

/**
 * Starts the scheduler: informers on Instances, Hosts and Flavors, then `workers` placement
 * workers. Resolves once the caches are filled and the workers run.
 */
export async function startScheduler(opts: SchedulerOptions): Promise<Scheduler> {
  const ownClient = !opts.client;
  const c = opts.client ?? (opts.kubeconfig ? KovaClient.fromFile(opts.kubeconfig, { userAgent: COMPONENT, fieldManager: COMPONENT }) : undefined);
  if (!c) throw new Error('startScheduler needs a client or a kubeconfig');
  const { client, signal, log, informers } = withDefaults({ ...opts, client: c });
  const instances = informers.for<Instance>(INSTANCES);
  const hosts = informers.for<Host>(HOSTS);
  const flavors = informers.for<Flavor>(FLAVORS);
  const volumes = informers.for<Volume>(VOLUMES);
  const volumeTypes = informers.for<VolumeType>(VOLUME_TYPES);
  let controller: Controller | undefined;
  const reconciler = new SchedulerReconciler({
    client,
    instances,
    flavors,
    volumes,
    volumeTypes,
    enqueue: (key) => controller!.enqueueKey(key),
    recorder: new EventRecorder(client, COMPONENT, { log }),
    weighers: typeof opts.weigher === 'string' || opts.weigher === undefined ? weighersFor(opts.weigher ?? 'spread') : opts.weigher,
    subsetSize: opts.subsetSize,
    ratios: opts.ratios,
    maxBindAttempts: opts.maxBindAttempts,
  });
  const builder = controllerFor(reconciler, { workers: opts.workers ?? 128, log })
    .watches(hosts, (h, ev) => reconciler.onHost(h, ev))
    .watches(flavors, () => reconciler.requeueWaiting(), ['add', 'update'])
    // Types first: a volume's charge depends on its type's backend.
    .watches(volumeTypes, (t) => reconciler.onVolumeType(t), ['add', 'update'])
    .watches(volumes, (v, ev) => reconciler.onVolume(v, ev))
    .watches(instances, (i, ev) => reconciler.onInstance(i, ev));
  controller = builder.controller;
  signal.addEventListener('abort', () => reconciler.events.clear(), { once: true });
  let handle;
  try {
    handle = await builder.start(signal);
  } catch (e) {
    if (ownClient) client.close();
    throw e;
  }
  // Retry waiting instances when claims expire, and now and then anyway, as kube-scheduler
  // flushes its unschedulable queue.
  const sweeper = setInterval(() => reconciler.sweep(), 5_000);
  const flusher = setInterval(() => reconciler.requeueWaiting(), 60_000);
  sweeper.unref();
  flusher.unref();
  const done = handle.done.then(() => {
    clearInterval(sweeper);
    clearInterval(flusher);
    if (ownClient) client.close();
  });
  done.catch((e) => log(`scheduler: ${errorMessage(e)}`));
  return { reconciler, cache: reconciler.cache, controller: handle.controller, stats: reconciler.stats, events: reconciler.events, done };
}
