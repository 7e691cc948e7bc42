// Reconciles one Host: allocatable from capacity, readiness from the heartbeat Lease, the
// HostReachable condition of its instances, evacuation when fenced and down, and release of
// stale allocations. Level-triggered: each pass reads the Host, its Lease and its instances and
// fixes whatever differs; every write is a compare-and-swap on the object it changes.
import { HOSTS, INSTANCES } from '../../api/kinds/index.js';
import type { Host, HostAllocation, Instance } from '../../api/kinds/index.js';
import type { KObject } from '../../api/types.js';
import { LEASES } from '../../client/client.js';
import type { ApiClient } from '../../client/client.js';
import type { Reconciler, Request, Result } from '../../client/controller.js';
import { splitInstanceKey, staleReason } from './allocations.js';
import type { Condition } from '../../api/conditions.js';
import { findCondition, hasCondition, setCondition } from '../../api/conditions.js';
import { INSTANCE_FINALIZER } from '../../api/types.js';
import { evacuatedMessage, evacuationAction, unboundStatus } from './evacuation.js';
import { heartbeatVerdict } from './heartbeat.js';
import type { HeartbeatLease } from './heartbeat.js';
import { allocatableFor, DEFAULT_RATIOS, sameResources, sumResources } from './resources.js';
import type { AllocationRatios } from './resources.js';

export const LEASE_NAMESPACE = 'kova-system';
export const HEARTBEAT_EXPIRED = 'HeartbeatExpired';

/** Read-only view of an informer cache. */
export interface ObjectCache<T> {
  get(namespace: string | undefined, name: string): T | undefined;
  list(): readonly T[];
}

/** The subset of the runtime's EventRecorder used here. */
export interface EventSink {
  event(obj: KObject, type: 'Normal' | 'Warning', reason: string, message: string): void | Promise<void>;
}

export interface HostReconcilerDeps {
  client: ApiClient;
  hosts: ObjectCache<Host>;
  leases: ObjectCache<KObject & HeartbeatLease>;
  /** Instances bound to a host, from the cache (`status.hostName`). */
  instancesOn: (host: string) => Instance[];
  /** Instance cache lookup by "ns/name". */
  instance: (namespace: string, name: string) => Instance | undefined;
  /** Whether the instance watch reported the deletion of the instance with this uid (gone for good). */
  instanceDeleted?: (uid: string) => boolean;
  events?: EventSink;
  ratios?: Partial<AllocationRatios>;
  /** How long a new Host may go without a Lease, and the Lease duration assumed when missing. */
  graceMs?: number;
  /** Full re-check interval even without events (allocation GC safety net). */
  resyncMs?: number;
  now?: () => number;
  log?: (msg: string) => void;
}

export class HostReconciler implements Reconciler {
  readonly name = 'host';
  private readonly ratios: Partial<AllocationRatios>;
  private readonly graceMs: number;
  private readonly resyncMs: number;
  private readonly now: () => number;
  private readonly log: (msg: string) => void;

  constructor(private readonly d: HostReconcilerDeps) {
    this.ratios = d.ratios ?? DEFAULT_RATIOS;
    this.graceMs = d.graceMs ?? 40_000;
    this.resyncMs = d.resyncMs ?? 300_000;
    this.now = d.now ?? Date.now;
    this.log = d.log ?? (() => undefined);
  }

  async reconcile(req: Request): Promise<Result | void> {
    let host = this.d.hosts.get(undefined, req.name);
    if (!host) return;
    host = (await this.ensureAllocatable(host)) ?? host;
    const beat = await this.checkHeartbeat(host);
    host = beat.host;
    if (!host) return;
    const ready = isReady(host);
    await this.markReachability(host, ready);
    if (host.spec?.fenced === true && !ready) await this.evacuate(host);
    await this.collectAllocations(req.name);
    const next = beat.expiresAtMs === undefined ? this.resyncMs : Math.min(this.resyncMs, Math.max(0, beat.expiresAtMs - this.now()) + 50);
    return { requeueAfterMs: next };
  }

  /** status.allocatable = capacity × ratios, written only when the amounts differ. */
  private async ensureAllocatable(host: Host): Promise<Host | undefined> {
    if (!host.status?.capacity) return undefined;
    if (sameResources(host.status.allocatable, allocatableFor(host.status.capacity, this.ratios))) return undefined;
    return this.d.client.updateStatus<Host>(HOSTS, undefined, host.metadata.name!, (h) => {
      if (!h.status?.capacity) return false;
      const want = allocatableFor(h.status.capacity, this.ratios);
      if (sameResources(h.status.allocatable, want)) return false;
      h.status.allocatable = want;
    });
  }

  /**
   * Ready=Unknown/HeartbeatExpired once the Lease has run out (the node lifecycle controller's
   * NodeStatusUnknown: the controller cannot tell, it only knows the agent went silent).
   * The agent sets Ready=True again when it heartbeats; this side never does.
   */
  private async checkHeartbeat(host: Host): Promise<{ host: Host | undefined; expiresAtMs?: number }> {
    const name = host.metadata.name!;
    const verdict = this.verdict(host, this.d.leases.get(LEASE_NAMESPACE, name));
    if (verdict.alive) return { host, expiresAtMs: verdict.expiresAtMs };
    const want = { type: 'Ready', status: 'Unknown' as const, reason: HEARTBEAT_EXPIRED, message: verdict.message };
    if (hasCondition(host.status?.conditions, want)) return { host };
    // The cache may lag behind a renewal: confirm with the live Lease before declaring the host down.
    const live = await this.d.client.get<KObject & HeartbeatLease>(LEASES, LEASE_NAMESPACE, name);
    const confirmed = this.verdict(host, live);
    if (confirmed.alive) return { host, expiresAtMs: confirmed.expiresAtMs };
    const cond = { ...want, message: confirmed.message };
    let changed = false;
    const updated = await this.d.client.updateStatus<Host>(HOSTS, undefined, name, (h) => {
      if (hasCondition(h.status?.conditions, cond)) return false;
      h.status ??= {};
      h.status.conditions = setCondition(h.status.conditions, cond, new Date(this.now()));
      changed = true;
    });
    if (changed && updated) {
      this.log(`host ${name}: not ready: ${cond.message}`);
      void this.d.events?.event(updated, 'Warning', 'HostNotReady', cond.message);
    }
    return { host: updated };
  }

  private verdict(host: Host, lease: HeartbeatLease | undefined) {
    return heartbeatVerdict({ hostName: host.metadata.name!, hostCreated: host.metadata.creationTimestamp, lease, nowMs: this.now(), graceMs: this.graceMs });
  }

  /**
   * HostReachable=False on every instance of a host that is not Ready; back to True once it is.
   * Instances that never had the condition are left alone while their host is fine.
   */
  private async markReachability(host: Host, ready: boolean): Promise<void> {
    const name = host.metadata.name!;
    const readyCond = findCondition(host.status?.conditions, 'Ready');
    const want = (generation: number | undefined): Omit<Condition, 'lastTransitionTime'> => ready
      ? { type: 'HostReachable', status: 'True', reason: 'HostReady', message: `host ${name} is ready`, observedGeneration: generation }
      : { type: 'HostReachable', status: 'False', reason: 'HostNotReady', message: `host ${name} is not ready: ${readyCond?.message || readyCond?.reason || 'no Ready condition'}`, observedGeneration: generation };
    const needs = (inst: Instance): boolean => {
      if (inst.status?.hostName !== name) return false;
      const cur = findCondition(inst.status.conditions, 'HostReachable');
      if (ready && !cur) return false;
      return !hasCondition(inst.status.conditions, { ...want(undefined), observedGeneration: undefined });
    };
    for (const inst of this.d.instancesOn(name)) {
      if (!needs(inst)) continue;
      await this.d.client.updateStatus<Instance>(INSTANCES, inst.metadata.namespace, inst.metadata.name!, (i) => {
        if (!needs(i)) return false;
        i.status!.conditions = setCondition(i.status!.conditions, want(i.metadata.generation), new Date(this.now()));
      });
    }
  }

  /**
   * The host is fenced (known powered off) and not Ready: instances being deleted lose their
   * protection finalizer, the others are unbound so the scheduler places them again. The
   * instances are listed live: the cache may not have seen a binding that just happened.
   */
  private async evacuate(host: Host): Promise<void> {
    const name = host.metadata.name!;
    const { items } = await this.d.client.list<Instance>(INSTANCES, undefined, { fieldSelector: `status.hostName=${name}` });
    for (const inst of items) {
      const ns = inst.metadata.namespace!;
      const iname = inst.metadata.name!;
      const action = evacuationAction(inst, name);
      if (action === 'releaseFinalizer') {
        await this.d.client.removeFinalizer(INSTANCES, ns, iname, INSTANCE_FINALIZER);
        this.log(`host ${name}: released ${ns}/${iname} (being deleted on a fenced host)`);
      } else if (action === 'unbind') {
        let unbound = false;
        const updated = await this.d.client.updateStatus<Instance>(INSTANCES, ns, iname, (i) => {
          if (evacuationAction(i, name) !== 'unbind' || i.metadata.uid !== inst.metadata.uid) return false;
          i.status = unboundStatus(i.status, name, i.metadata.generation, new Date(this.now()));
          unbound = true;
        });
        if (unbound && updated) {
          this.log(`host ${name}: evacuated ${ns}/${iname}`);
          void this.d.events?.event(updated, 'Normal', 'Evacuated', evacuatedMessage(name));
        }
      }
    }
  }

  /**
   * Removes allocations whose instance is gone or bound elsewhere and recomputes
   * status.allocated. Candidates come from the cache, but an entry is only removed after a
   * live GET of its instance confirms it, and the host is written with its resourceVersion:
   * a binding that lands meanwhile changes the host, the write conflicts and the pass reruns.
   */
  private async collectAllocations(hostName: string): Promise<void> {
    const cached = this.d.hosts.get(undefined, hostName);
    const suspects = (h: Host): HostAllocation[] => (h.status?.allocations ?? []).filter((a) => {
      const key = splitInstanceKey(a.instance);
      const inst = key && this.d.instance(key.namespace, key.name);
      return staleReason(a, hostName, inst ? { uid: inst.metadata.uid, hostName: inst.status?.hostName, migrationTarget: inst.status?.migration?.targetHost } : undefined) !== undefined;
    });
    const allocatedOff = (h: Host) => !!h.status?.allocations && !sameResources(h.status.allocated, sumResources(h.status.allocations));
    if (cached && !suspects(cached).length && !allocatedOff(cached)) return;

    await this.d.client.retryOnConflict(async () => {
      const host = await this.d.client.get<Host>(HOSTS, undefined, hostName);
      if (!host?.status) return;
      const remove = new Map<string, string>();
      // Each suspect is confirmed on a live read, side by side, except an instance whose deletion
      // the watch reported: a deleted instance's allocation is released without one.
      await Promise.all(suspects(host).map(async (a) => {
        const key = splitInstanceKey(a.instance);
        const live = key && !this.d.instanceDeleted?.(a.uid) ? await this.d.client.get<Instance>(INSTANCES, key.namespace, key.name) : undefined;
        const why = staleReason(a, hostName, live ? { uid: live.metadata.uid, hostName: live.status?.hostName, migrationTarget: live.status?.migration?.targetHost } : undefined);
        if (why) remove.set(a.uid, why);
      }));
      if (!remove.size && !allocatedOff(host)) return;
      const keep = (host.status.allocations ?? []).filter((a) => !remove.has(a.uid));
      host.status.allocations = keep;
      host.status.allocated = sumResources(keep);
      await this.d.client.replaceStatus(HOSTS, host);
      for (const [uid, why] of remove) this.log(`host ${hostName}: released allocation ${uid}: ${why}`);
    });
  }
}

export function isReady(host: Host): boolean {
  return findCondition(host.status?.conditions, 'Ready')?.status === 'True';
}

