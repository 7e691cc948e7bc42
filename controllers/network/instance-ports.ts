// The Instance side of networking: one Port per Instance.spec.networks entry (owned by the
// Instance), and Instance.status.addresses and the NetworksReady condition mirroring them.
import { isAlreadyExists, updateStatusFrom } from '../../client/client.js';
import type { ApiClient } from '../../client/client.js';
import type { Reconciler, Request, Result } from '../../client/controller.js';
import { setCondition, hasCondition } from '../../api/conditions.js';
import { INSTANCES, PORTS } from '../../api/kinds/index.js';
import type { Instance, InstanceAddress, InstanceNetwork, Port } from '../../api/kinds/index.js';
import { DEFAULT_SECURITY_GROUP, ownerRef, portNameFor } from '../../api/net/rules.js';
import type { NetworkCaches } from './caches.js';

/** The caches the port reconcilers read. */
export type PortCaches = Pick<NetworkCaches, 'instances' | 'ports' | 'networks' | 'claims'>;

/** Instance → the Ports it needs exist, and its status.addresses mirror them. */
export class InstancePortsReconciler implements Reconciler {
  readonly name = 'instance-ports';
  constructor(private readonly client: ApiClient, private readonly c: PortCaches, private readonly log: (m: string) => void) {}

  async reconcile(req: Request): Promise<Result | void> {
    const ns = req.namespace!;
    const inst = this.c.instances.get(ns, req.name);
    if (!inst || inst.metadata.deletionTimestamp) return;
    const entries = inst.spec.networks ?? [];
    /** Ports this pass created: the cache shows them a moment later, and the status should not say "not created yet". */
    const created = new Map<string, Port>();
    for (const [i, entry] of entries.entries()) {
      if (entry.port) continue; // a user's Port: attached by the port reconciler
      const name = portNameFor(req.name, i, entry);
      if (this.c.ports.get(ns, name)) continue;
      try {
        const port = await this.client.create<Port>(PORTS, {
          apiVersion: 'kova.dev/v1alpha1',
          kind: 'Port',
          metadata: { name, namespace: ns, ownerReferences: [ownerRef(inst)], labels: { 'kova.dev/instance': req.name } },
          spec: {
            network: entry.network,
            ...(entry.ip ? { ip: entry.ip } : {}),
            securityGroups: entry.securityGroups ?? [DEFAULT_SECURITY_GROUP],
          },
        });
        created.set(name, port);
        this.log(`network: created port ${ns}/${name} for instance ${req.name}`);
      } catch (e) {
        if (!isAlreadyExists(e)) throw e;
      }
    }
    const portNamed = (name: string) => created.get(name) ?? this.c.ports.get(ns, name);
    const addresses: InstanceAddress[] = entries.map((entry, i) => {
      const port = portNameFor(req.name, i, entry);
      const p = portNamed(port);
      const ip = p?.status?.ip;
      const mac = p?.status?.mac;
      return { network: entry.network, port, ...(ip ? { ip } : {}), ...(mac ? { mac } : {}) };
    });
    const cond = networksReady(req.name, entries, portNamed);
    // Nothing allocated and nothing said yet: the ports' first addresses are moments away, and
    // a status saying so would be one more write per instance (each port's status change wakes
    // this reconciler again). A port that says why it has none (AddressesExhausted, ...) is
    // reported at once, and the node agent reports a wait that lasts.
    const pending = cond?.status === 'False' && cond.reason === 'PortPending';
    if (pending && !inst.status?.conditions?.some((c) => c.type === 'NetworksReady') && addresses.every((a) => !a.ip && !a.mac)) return;
    const current = (st: Instance['status']) =>
      JSON.stringify(st?.addresses ?? []) === JSON.stringify(addresses) && (!cond || hasCondition(st?.conditions, cond));
    if (current(inst.status)) return;
    await updateStatusFrom<Instance>(this.client, INSTANCES, ns, req.name, inst, (fresh) => {
      if (fresh.metadata.uid !== inst.metadata.uid || current(fresh.status)) return false;
      fresh.status = { ...fresh.status, addresses, ...(cond ? { conditions: setCondition(fresh.status?.conditions, cond) } : {}) };
    });
  }
}

/**
 * Instance condition `NetworksReady`: False while a NIC's port is missing or has no address
 * (e.g. the subnet is full: the instance waits, saying why), True once all are allocated.
 */
export function networksReady(instance: string, entries: readonly InstanceNetwork[], port: (name: string) => Port | undefined) {
  if (entries.length === 0) return undefined;
  for (const [i, e] of entries.entries()) {
    const name = portNameFor(instance, i, e);
    const p = port(name);
    if (p?.status?.ip) continue;
    const a = p?.status?.conditions?.find((c) => c.type === 'Allocated' && c.status === 'False');
    return { type: 'NetworksReady', status: 'False' as const, reason: a?.reason ?? 'PortPending', message: `port ${name}: ${a?.message ?? (p ? 'address not allocated yet' : 'not created yet')}` };
  }
  return { type: 'NetworksReady', status: 'True' as const, reason: 'PortsAllocated', message: '' };
}
