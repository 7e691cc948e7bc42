// The host controller: informers on Hosts, heartbeat Leases (kova-system) and Instances feed
// host names into a work queue; HostReconciler does the work. See docs/control-plane.md
// "Host lifecycle" and "Scheduling and accounting".
import type { KObject } from '../../api/types.js';
import { HOSTS, INSTANCES, LEASES } from '../../client/client.js';
import type { KovaClient } from '../../client/client.js';
import { Controller } from '../../client/controller.js';
import { EventRecorder } from '../../client/events.js';
import { SharedInformers } from '../../client/shared-informers.js';
import { splitInstanceKey } from './allocations.js';
import type { HeartbeatLease } from './heartbeat.js';
import { HostReconciler, LEASE_NAMESPACE } from './host-reconciler.js';
import type { EventSink, HostObject, InstanceObject } from './host-reconciler.js';
import type { AllocationRatios } from './resources.js';

export interface HostControllerOptions {
  /** Informers shared with the other controllers of the process (default: its own). */
  informers?: SharedInformers;
  client: KovaClient;
  signal: AbortSignal;
  /** Allocation ratios (default cpu 16, ram 1.5, disk 1). */
  ratios?: Partial<AllocationRatios>;
  /** A Host without any Lease is declared not ready this long after creation (default 40 s). */
  graceMs?: number;
  /** Re-check every host this often even without events (default 5 min). */
  resyncMs?: number;
  workers?: number;
  /** Where events go (default: an EventRecorder, component kova-host-controller). */
  events?: EventSink;
  log?: (msg: string) => void;
}

export interface HostControllerHandle {
  controller: Controller;
  reconciler: HostReconciler;
  /** Resolves when the controller has stopped (after `signal` aborted). */
  done: Promise<void>;
}

const instanceKey = (o: KObject) => `${o.metadata.namespace}/${o.metadata.name}`;

/** Starts the informers and workers; resolves once the caches are synced and work begins. */
export async function startHostController(opts: HostControllerOptions): Promise<HostControllerHandle> {
  const { client, signal } = opts;
  const log = opts.log ?? ((m: string) => console.error(m));
  const shared = opts.informers ?? new SharedInformers(client, log);
  const hosts = shared.for<HostObject>(HOSTS);
  const leases = shared.for<KObject & HeartbeatLease>(LEASES, { namespace: LEASE_NAMESPACE });
  const instances = shared.for<InstanceObject>(INSTANCES);

  // Indexes kept by the event handlers: instances per bound host, and hosts holding an
  // allocation for an instance key (so deleting or rebinding an instance wakes its old host).
  const boundTo = new Map<string, string>(); // instance key → status.hostName
  const byHost = new Map<string, Set<string>>(); // host → instance keys bound to it
  const allocatedOn = new Map<string, Set<string>>(); // instance key → hosts with an allocation
  const allocKeysOf = new Map<string, string[]>(); // host → instance keys in its allocations

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
    events: opts.events ?? new EventRecorder(client, 'kova-host-controller', { log }),
    ratios: opts.ratios,
    graceMs: opts.graceMs,
    resyncMs: opts.resyncMs,
    log,
  });
  const controller = new Controller(reconciler, { workers: opts.workers ?? 2, log });
  const wake = (host: string | undefined) => host && controller.enqueue({ name: host });

  const indexHost = (h: HostObject, deleted = false) => {
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
  const onHost = (h: HostObject) => {
    indexHost(h);
    wake(h.metadata.name);
  };
  hosts.on('add', onHost);
  hosts.on('update', onHost);
  hosts.on('delete', (h) => indexHost(h, true));

  const onLease = (l: KObject) => wake(l.metadata.name);
  leases.on('add', onLease);
  leases.on('update', onLease);
  leases.on('delete', onLease);

  const onInstance = (inst: InstanceObject, deleted = false) => {
    const key = instanceKey(inst);
    const prev = boundTo.get(key);
    const next = deleted ? undefined : inst.status?.hostName || undefined;
    if (prev !== next) {
      if (prev) byHost.get(prev)?.delete(key);
      if (next) {
        if (!byHost.has(next)) byHost.set(next, new Set());
        byHost.get(next)!.add(key);
        boundTo.set(key, next);
      } else boundTo.delete(key);
      wake(prev);
    }
    wake(next);
    for (const h of allocatedOn.get(key) ?? []) if (h !== next) wake(h);
  };
  instances.on('add', (i) => onInstance(i));
  instances.on('update', (i) => onInstance(i));
  instances.on('delete', (i) => onInstance(i, true));

  const informers = [hosts, leases, instances];
  for (const inf of informers) inf.start();
  signal.addEventListener('abort', () => informers.forEach((i) => i.stop()), { once: true });
  await Promise.all(informers.map((i) => i.waitForSync(signal)));
  const done = controller.start(signal);
  return { controller, reconciler, done };
}
