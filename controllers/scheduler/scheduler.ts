// The scheduler controller: places unbound Instances on Hosts. For each unbound instance it
// computes the request (Flavor or spec.resources), runs the filters and weighers over its cached
// Host views, counts the choice against the host at once (assume cache, so parallel workers do
// not pick the same last slot) and binds through the API server, which checks and claims the
// room in one transaction. A 409 "insufficient …" means our view was stale (another scheduler
// got there first): the host is excluded and the instance is placed again right away.
// Instances that fit nowhere stay Pending with Scheduled=False and are retried when Hosts or
// Flavors change.
import type { Condition, KObject } from '../../api/types.js';
import { nowRFC3339 } from '../../api/types.js';
import { ApiError, FLAVORS, HOSTS, INSTANCES, isNotFound, KovaClient } from '../../client/client.js';
import { Controller, errorMessage, keyOfObject } from '../../client/controller.js';
import type { Request } from '../../client/controller.js';
import { EventRecorder } from '../../client/events.js';
import { SharedInformers } from '../../client/shared-informers.js';
import { BestEffortLane } from './best-effort.js';
import { HostCache } from './host-cache.js';
import { formatResources, instanceRequest } from '../../api/resources.js';
import type { AllocationRatios, Resources } from '../../api/resources.js';
import { schedule } from './schedule.js';
import { weighersFor } from './weighers.js';
import type { WeigherPolicy, Weigher } from './weighers.js';

export const COMPONENT = 'kova-scheduler';

export interface SchedulerOptions {
  /** Informers shared with the other controllers of the process (default: its own). */
  informers?: SharedInformers;
  /** A client, or a kubeconfig path to make one from (closed on stop). */
  client?: KovaClient;
  kubeconfig?: string;
  /** Stops the scheduler when aborted. */
  signal: AbortSignal;
  /** spread (default: most free memory first) or pack; or explicit weighers. */
  weigher?: WeigherPolicy | readonly Weigher[];
  /**
   * Parallel placements (default 128); keys are never worked on concurrently. Each one mostly
   * waits for its binding: like kube-scheduler's asynchronous binding cycles, many in flight
   * let etcd commit them in larger batches (the assume cache keeps them from overbooking).
   */
  workers?: number;
  /** Choose at random among the best N hosts (default 1: only among exact ties). */
  subsetSize?: number;
  /** Allocation ratios for hosts that have capacity but no allocatable yet (default: such hosts offer nothing). */
  ratios?: Partial<AllocationRatios>;
  /** Binding attempts per reconcile before backing off (default 10). */
  maxBindAttempts?: number;
  log?: (msg: string) => void;
}

export interface Scheduler {
  readonly cache: HostCache;
  readonly controller: Controller;
  readonly stats: SchedulerStats;
  /** Event writes: run, dropped (queue full). */
  readonly events: BestEffortLane;
  /** Resolves when the scheduler has stopped (after `signal` aborted). */
  readonly done: Promise<void>;
}

export interface SchedulerStats {
  /** Successful bindings. */
  bound: number;
  /** 409 "insufficient" answers: placements lost to a stale view or another scheduler. */
  bindConflicts: number;
  /** Instances found bound or deleted by someone else when binding (e.g. another scheduler). */
  lostRaces: number;
  /** Scheduling attempts that found no host. */
  unschedulable: number;
  /** Binding calls and their summed latency (ms), for the mean round trip. */
  bindCalls: number;
  bindMs: number;
}

interface InstanceStatus {
  phase?: string;
  hostName?: string;
  conditions?: Condition[];
}

const statusOf = (o: KObject) => (o.status ?? {}) as InstanceStatus;
const isUnbound = (o: KObject) => !statusOf(o).hostName && !o.metadata.deletionTimestamp;

/** The reason a host refused a binding, in the filters' words, from the server's 409 message. */
function refusalReason(message: string): string {
  const m = /^insufficient (vcpus|memory|disk)/.exec(message);
  return m ? `insufficient ${m[1]}` : 'insufficient resources';
}

/**
 * Starts the scheduler: informers on Instances, Hosts and Flavors, then `workers` placement
 * workers. Resolves once the caches are filled and the workers run.
 */
export async function startScheduler(opts: SchedulerOptions): Promise<Scheduler> {
  const log = opts.log ?? ((m) => console.error(m));
  const ownClient = !opts.client;
  const client = opts.client ?? (opts.kubeconfig ? KovaClient.fromFile(opts.kubeconfig, { userAgent: COMPONENT, fieldManager: COMPONENT }) : undefined);
  if (!client) throw new Error('startScheduler needs a client or a kubeconfig');
  const weighers = typeof opts.weigher === 'string' || opts.weigher === undefined ? weighersFor(opts.weigher ?? 'spread') : opts.weigher;
  const maxAttempts = opts.maxBindAttempts ?? 10;
  const cache = new HostCache({ ratios: opts.ratios });
  const recorder = new EventRecorder(client, COMPONENT, { log });
  // Events are written beside placements, never ahead of them, and at most ~100/s: a bulk
  // placement records its first events, not one per instance at the placements' expense.
  const events = new BestEffortLane(8, 1000, { perSecond: 100, burst: 300 });
  const stats: SchedulerStats = { bound: 0, bindConflicts: 0, lostRaces: 0, unschedulable: 0, bindCalls: 0, bindMs: 0 };

  const shared = opts.informers ?? new SharedInformers(client, log);
  const instances = shared.for(INSTANCES);
  const hosts = shared.for(HOSTS);
  const flavors = shared.for(FLAVORS);

  /** Instances that fit nowhere (or wait for their Flavor), with the generation last tried. */
  const waiting = new Map<string, number | undefined>();

  const reconciler = {
    name: 'scheduler',
    reconcile: (req: Request) => place(req),
  };
  const controller = new Controller(reconciler, { workers: opts.workers ?? 128, log });
  const requeueWaiting = () => {
    for (const key of waiting.keys()) controller.enqueueKey(key);
  };

  async function place(req: Request): Promise<void> {
    const key = `${req.namespace}/${req.name}`;
    const inst = instances.get(req.namespace, req.name);
    if (!inst || !isUnbound(inst) || cache.isBound(inst.metadata.uid ?? '')) {
      waiting.delete(key);
      return;
    }
    const r = instanceRequest(inst, (name) => flavors.get(undefined, name));
    if ('flavorNotFound' in r) return unschedulable(key, inst, 'FlavorNotFound', `flavor "${r.flavorNotFound}" not found`);
    if ('invalid' in r) return unschedulable(key, inst, 'InvalidResources', r.invalid);

    const uid = inst.metadata.uid!;
    const excluded = new Map<string, string>();
    for (let attempt = 0; attempt < maxAttempts; attempt++) {
      const choice = schedule(inst, r.req, cache.hosts(), { weighers, subsetSize: opts.subsetSize, excluded });
      if ('unschedulable' in choice) {
        stats.unschedulable++;
        return unschedulable(key, inst, 'Unschedulable', choice.unschedulable);
      }
      const host = choice.host;
      cache.assume(uid, host, r.req);
      const outcome = await bind(inst, host, r.req);
      if (outcome === 'bound') {
        cache.finishBinding(uid);
        waiting.delete(key);
        stats.bound++;
        events.submit(() => recorder.normal(inst, 'Scheduled', `Successfully assigned ${key} to ${host}`));
        return;
      }
      cache.forget(uid);
      if (outcome === 'gone') {
        waiting.delete(key);
        // The claim held room on `host` that others may have been refused for. (Not after a
        // refusal: then the host really is full, and requeueing would only spin.)
        requeueWaiting();
        return;
      }
      excluded.set(host, outcome.refused);
    }
    throw new Error(`no binding after ${maxAttempts} attempts (hosts refused: ${[...excluded].map(([h, why]) => `${h}: ${why}`).join('; ')})`);
  }

  /** Binds; 'gone' when there is nothing left to do for this instance, or the host's refusal. */
  async function bind(inst: KObject, host: string, req: Resources): Promise<'bound' | 'gone' | { refused: string }> {
    const { namespace, name } = inst.metadata;
    const t0 = performance.now();
    try {
      await client!.bind(namespace!, name!, host, formatResources(req));
      return 'bound';
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      if (e.code === 409 && e.message.startsWith('insufficient')) {
        stats.bindConflicts++;
        return { refused: refusalReason(e.message) };
      }
      // Bound meanwhile (by us before the cache caught up, or by another scheduler), or deleted.
      if (e.code === 409 && /already bound|being deleted/.test(e.message)) {
        stats.lostRaces++;
        return 'gone';
      }
      if (e.code === 409 && /fenced/.test(e.message)) return { refused: 'unschedulable' };
      if (isNotFound(e)) {
        // The host vanished under us; or the instance did.
        if (e.message.startsWith(`hosts.kova.dev "${host}"`)) return { refused: 'not found' };
        return 'gone';
      }
      throw e;
    } finally {
      stats.bindCalls++;
      stats.bindMs += performance.now() - t0;
    }
  }

  async function unschedulable(key: string, inst: KObject, reason: string, message: string): Promise<void> {
    waiting.set(key, inst.metadata.generation);
    const cond = statusOf(inst).conditions?.find((c) => c.type === 'Scheduled');
    if (statusOf(inst).phase === 'Pending' && cond?.status === 'False' && cond.reason === reason && cond.message === message) return;
    const written = await client!.updateStatus(INSTANCES, inst.metadata.namespace, inst.metadata.name!, (obj) => {
      const st = (obj.status ??= {}) as InstanceStatus;
      if (st.hostName || obj.metadata.deletionTimestamp) return false;
      const old = st.conditions?.find((c) => c.type === 'Scheduled');
      if (st.phase === 'Pending' && old?.status === 'False' && old.reason === reason && old.message === message) return false;
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
    if (written) events.submit(() => recorder.warning(inst, 'FailedScheduling', message));
  }

  // ---- event wiring ----

  const onInstance = (o: KObject) => {
    const key = keyOfObject(o);
    if (!isUnbound(o)) {
      waiting.delete(key);
      return;
    }
    // An instance we already found no room for waits for a Host or Flavor change, unless its
    // spec changed (our own status write comes back here too).
    if (waiting.has(key) && waiting.get(key) === o.metadata.generation) return;
    controller.enqueueKey(key);
  };
  instances.on('add', onInstance);
  instances.on('update', onInstance);
  instances.on('delete', (o) => waiting.delete(keyOfObject(o)));
  const onHost = (o: KObject) => {
    if (cache.upsert(o)) requeueWaiting();
  };
  hosts.on('add', onHost);
  hosts.on('update', onHost);
  hosts.on('delete', (o) => cache.remove(o.metadata.name ?? ''));
  flavors.on('add', requeueWaiting);
  flavors.on('update', requeueWaiting);

  const signal = opts.signal;
  let informersStopped = false;
  const stopInformers = () => {
    // Once: the informers may be shared, and each stop() releases one use.
    if (informersStopped) return;
    informersStopped = true;
    for (const inf of [instances, hosts, flavors]) inf.stop();
    events.clear();
  };
  signal.addEventListener('abort', stopInformers, { once: true });
  // Host and Flavor caches first: an instance placed against an empty host cache would be
  // reported unschedulable for no reason.
  hosts.start();
  flavors.start();
  try {
    await Promise.all([hosts.waitForSync(signal), flavors.waitForSync(signal)]);
    instances.start();
    await instances.waitForSync(signal);
  } catch (e) {
    stopInformers();
    if (ownClient) client.close();
    throw e;
  }
  // Claims of bindings whose host never showed them expire; retry waiting instances then, and
  // now and then anyway, as kube-scheduler flushes its unschedulable queue.
  const sweeper = setInterval(() => {
    if (cache.sweep()) requeueWaiting();
  }, 5_000);
  const flusher = setInterval(requeueWaiting, 60_000);
  sweeper.unref();
  flusher.unref();

  const done = controller.start(signal).then(() => {
    clearInterval(sweeper);
    clearInterval(flusher);
    stopInformers();
    if (ownClient) client.close();
  });
  done.catch((e) => log(`scheduler: ${errorMessage(e)}`));
  return { cache, controller, stats, events, done };
}
