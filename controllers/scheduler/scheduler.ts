// The scheduler: places unbound Instances on Hosts. For each unbound instance it computes the
// request (Flavor or spec.resources), runs the filters and weighers over its cached Host views,
// counts the choice against the host at once (assume cache, so parallel workers do not pick the
// same last slot) and binds through the API server, which checks and claims the room in one
// transaction. A refusal is read from the binding's typed causes (api/binding.ts): a host that
// is full, fenced, not ready or gone is excluded and the instance placed again right away; an
// instance bound or deleted meanwhile is left alone. Instances that fit nowhere stay Pending
// with Scheduled=False and are retried when Hosts or Flavors change.
import { bindingFailure, BindingCauses } from '../../api/binding.js';
import type { BindingCauseReason } from '../../api/binding.js';
import { FLAVORS, HOSTS, INSTANCES } from '../../api/kinds/index.js';
import type { Flavor, Host, Instance, InstanceStatus } from '../../api/kinds/index.js';
import { formatResources, instanceRequest } from '../../api/resources.js';
import type { AllocationRatios, Resources } from '../../api/resources.js';
import type { Condition } from '../../api/types.js';
import { nowRFC3339 } from '../../api/types.js';
import { StatusError, KovaClient } from '../../client/client.js';
import type { ApiClient } from '../../client/client.js';
import { controllerFor, errorMessage, keyOfObject, withDefaults } from '../../client/controller.js';
import type { Controller, ControllerStartOptions, Reconciler, Request } from '../../client/controller.js';
import { EventRecorder } from '../../client/events.js';
import type { InformerEvent } from '../../client/informer.js';
import { BestEffortLane } from './best-effort.js';
import { HostCache } from './host-cache.js';
import { schedule } from './schedule.js';
import { weighersFor } from './weighers.js';
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
}

export interface SchedulerReconcilerDeps {
  client: Pick<ApiClient, 'bind' | 'updateStatus'>;
  instances: { get(namespace: string | undefined, name: string): Instance | undefined };
  flavors: { get(namespace: string | undefined, name: string): Flavor | undefined };
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
  readonly stats: SchedulerStats = { bound: 0, bindConflicts: 0, lostRaces: 0, unschedulable: 0, bindCalls: 0, bindMs: 0 };
  /**
   * Event writes beside placements, never ahead of them, and at most ~100/s: a bulk placement
   * records its first events, not one per instance at the placements' expense.
   */
  readonly events = new BestEffortLane(8, 1000, { perSecond: 100, burst: 300 });
  /** Instances that fit nowhere (or wait for their Flavor), with the generation last tried. */
  private readonly waiting = new Map<string, number | undefined>();
  private readonly maxAttempts: number;

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
    const r = instanceRequest(inst, (name) => this.d.flavors.get(undefined, name));
    if ('flavorNotFound' in r) return this.unschedulable(key, inst, 'FlavorNotFound', `flavor "${r.flavorNotFound}" not found`);
    if ('invalid' in r) return this.unschedulable(key, inst, 'InvalidResources', r.invalid);

    const uid = inst.metadata.uid!;
    const excluded = new Map<string, string>();
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      const choice = schedule(inst, r.req, this.cache.hosts(), { weighers: this.d.weighers, subsetSize: this.d.subsetSize, excluded });
      if ('unschedulable' in choice) {
        this.stats.unschedulable++;
        return this.unschedulable(key, inst, 'Unschedulable', choice.unschedulable);
      }
      const host = choice.host;
      this.cache.assume(uid, host, r.req);
      const outcome = await this.bind(inst, host, r.req);
      if (outcome === 'bound') {
        this.cache.finishBinding(uid);
        this.waiting.delete(key);
        this.stats.bound++;
        this.events.submit(() => this.d.recorder.normal(inst, 'Scheduled', `Successfully assigned ${key} to ${host}`));
        return;
      }
      this.cache.forget(uid);
      if (outcome === 'gone') {
        this.waiting.delete(key);
        // The claim held room on `host` that others may have been refused for. (Not after a
        // refusal: then the host really is full, and requeueing would only spin.)
        this.requeueWaiting();
        return;
      }
      excluded.set(host, outcome.refused);
    }
    throw new Error(`no binding after ${this.maxAttempts} attempts (hosts refused: ${[...excluded].map(([h, why]) => `${h}: ${why}`).join('; ')})`);
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

  private async unschedulable(key: string, inst: Instance, reason: string, message: string): Promise<void> {
    this.waiting.set(key, inst.metadata.generation);
    const same = (st: InstanceStatus | undefined) => {
      const cond = st?.conditions?.find((c) => c.type === 'Scheduled');
      return st?.phase === 'Pending' && cond?.status === 'False' && cond.reason === reason && cond.message === message;
    };
    if (same(inst.status)) return;
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
  let controller: Controller | undefined;
  const reconciler = new SchedulerReconciler({
    client,
    instances,
    flavors,
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
