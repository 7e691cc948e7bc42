// The host controller: informers on Hosts, heartbeat Leases (kova-system) and Instances feed
// host names into a work queue; HostReconciler does the work. See docs/control-plane.md
// "Host lifecycle" and "Scheduling and accounting".
import { HOSTS, INSTANCES } from '../../api/kinds/index.js';
import type { Host, Instance } from '../../api/kinds/index.js';
import type { KObject } from '../../api/types.js';
import { LEASES } from '../../client/client.js';
import { controllerFor, withDefaults } from '../../client/controller.js';
import type { ControllerHandle, ControllerStartOptions, Request } from '../../client/controller.js';
import { DeletedUids } from '../../client/deleted-uids.js';
import { EventRecorder } from '../../client/events.js';
import { splitInstanceKey } from './allocations.js';
import type { HeartbeatLease } from './heartbeat.js';
import { HostReconciler, LEASE_NAMESPACE } from './host-reconciler.js';
import type { EventSink } from './host-reconciler.js';
import type { AllocationRatios } from './resources.js';

export interface HostControllerOptions extends ControllerStartOptions {
  /** Allocation ratios (default cpu 16, ram 1.5, disk 1). */
  ratios?: Partial<AllocationRatios>;
  /** A Host without any Lease is declared not ready this long after creation (default 40 s). */
  graceMs?: number;
  /** Re-check every host this often even without events (default 5 min). */
  resyncMs?: number;
  /** Where events go (default: an EventRecorder, component kova-host-controller). */
  events?: EventSink;
}

export interface HostControllerHandle extends ControllerHandle {
  reconciler: HostReconciler;
}

const instanceKey = (o: KObject) => `${o.metadata.namespace}/${o.metadata.name}`;
const hostRequest = (host: string | undefined): Request[] => (host ? [{ name: host }] : []);

/** Starts the informers and workers; resolves once the caches are synced and work begins. */
export async function startHostController(opts: HostControllerOptions): Promise<HostControllerHandle> {
  const { client, signal, log, informers } = withDefaults(opts);
  const hosts = informers.for<Host>(HOSTS);
  const leases = informers.for<KObject & HeartbeatLease>(LEASES, { namespace: LEASE_NAMESPACE });
  const instances = informers.for<Instance>(INSTANCES);

  // Indexes kept by the event handlers: instances per bound host, and hosts holding an
  // allocation for an instance key (so deleting or rebinding an instance wakes its old host).
  const boundTo = new Map<string, string>(); // instance key → status.hostName
  const byHost = new Map<string, Set<string>>(); // host → instance keys bound to it
  const allocatedOn = new Map<string, Set<string>>(); // instance key → hosts with an allocation
  const allocKeysOf = new Map<string, string[]>(); // host → instance keys in its allocations
  const deletedInstances = new DeletedUids();

  const reconciler = new HostReconciler({
    client,
    hosts,
    leases,
    instancesOn: (host) => [...(byHost.get(host) ?? [])].flatMap((k) => {
      const key = splitInstanceKey(k);
      const inst = key && instances.get(key.namespace, key.name);
      return inst ? [inst] : [];
    }),
    instance: (ns, name) => instances.get(ns, name),
    instanceDeleted: (uid) => deletedInstances.has(uid),
    events: opts.events ?? new EventRecorder(client, 'kova-host-controller', { log }),
    ratios: opts.ratios,
    graceMs: opts.graceMs,
    resyncMs: opts.resyncMs,
    log,
  });

  const indexHost = (h: Host, deleted: boolean) => {
    const name = h.metadata.name!;
    for (const k of allocKeysOf.get(name) ?? []) allocatedOn.get(k)?.delete(name);
    const keys = deleted ? [] : (h.status?.allocations ?? []).map((a) => a.instance);
    allocKeysOf.set(name, keys);
    if (deleted) allocKeysOf.delete(name);
    for (const k of keys) {
      if (!allocatedOn.has(k)) allocatedOn.set(k, new Set());
      allocatedOn.get(k)!.add(name);
    }
  };
  const onHost = (h: Host, deleted: boolean): Request[] => {
    indexHost(h, deleted);
    return deleted ? [] : hostRequest(h.metadata.name);
  };

  /** The hosts an instance change concerns: its old and new host, and hosts holding an allocation for it. */
  const onInstance = (inst: Instance, deleted: boolean): Request[] => {
    const key = instanceKey(inst);
    if (inst.metadata.uid) {
      if (deleted) deletedInstances.add(inst.metadata.uid);
      else deletedInstances.forget(inst.metadata.uid);
    }
    const wake: Request[] = [];
    const prev = boundTo.get(key);
    const next = deleted ? undefined : inst.status?.hostName || undefined;
    if (prev !== next) {
      if (prev) byHost.get(prev)?.delete(key);
      if (next) {
        if (!byHost.has(next)) byHost.set(next, new Set());
        byHost.get(next)!.add(key);
        boundTo.set(key, next);
      } else boundTo.delete(key);
      wake.push(...hostRequest(prev));
    }
    wake.push(...hostRequest(next));
    for (const h of allocatedOn.get(key) ?? []) if (h !== next) wake.push({ name: h });
    return wake;
  };

  const handle = await controllerFor(reconciler, { workers: opts.workers ?? 2, log })
    .watches(hosts, (h, ev) => onHost(h, ev === 'delete'))
    .watches(leases, (l) => hostRequest(l.metadata.name))
    .watches(instances, (i, ev) => onInstance(i, ev === 'delete'))
    .start(signal);
  return { ...handle, reconciler };
}
