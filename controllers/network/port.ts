// The Port reconciler: address and MAC allocation through claims (written back to spec), and the
// Port's status (attachment, host, device). Level-triggered: every reconcile recomputes from the
// caches and the store, and a repeated reconcile writes nothing.
import { portDeviceName } from '../../api/net/names.js';
import { isNotFound, updateStatusFrom } from '../../client/client.js';
import type { ApiClient } from '../../client/client.js';
import type { Reconciler, Request, Result } from '../../client/controller.js';
import { setCondition, hasCondition } from '../../api/conditions.js';
import { allocateIP, cachedIPClaims, allocateMAC } from './allocate.js';
import type { AllocateResult } from './allocate.js';
import { release } from './claims.js';
import { RecentClaims } from './recent-claims.js';
import { PORTS } from '../../api/kinds/index.js';
import type { Instance, Port } from '../../api/kinds/index.js';
import type { Cache } from './caches.js';
import type { PortCaches } from './instance-ports.js';

/** The Instance that owns the port (one the port controller created for it), if any. */
const instanceOwner = (port: Port) => port.metadata.ownerReferences?.find((o) => o.kind === 'Instance');

/** The instance a port is attached to: its owner, or an instance naming it in spec.networks. */
export function attachedInstance(port: Port, instances: Cache<Instance>): Instance | undefined {
  const ns = port.metadata.namespace!;
  const owner = instanceOwner(port);
  if (owner) {
    const i = instances.get(ns, owner.name);
    return i && i.metadata.uid === owner.uid ? i : undefined;
  }
  return instances.list(ns).find((i) => !i.metadata.deletionTimestamp && (i.spec.networks ?? []).some((n) => n.port === port.metadata.name));
}

type PortStatus = NonNullable<Port['status']>;

/** Port → claimed IP and MAC, written back to spec, and its status. */
export class PortReconciler implements Reconciler {
  readonly name = 'port';
  constructor(
    private readonly client: ApiClient,
    private readonly c: PortCaches,
    private readonly log: (m: string) => void,
    /** Shared by the workers (and the floating IPs'): see allocateIP. */
    private readonly recent = new RecentClaims(),
  ) {}

  async reconcile(req: Request): Promise<Result | void> {
    const ns = req.namespace!;
    const port = this.c.ports.get(ns, req.name);
    if (!port || port.metadata.deletionTimestamp) return;
    const net = this.c.networks.get(ns, port.spec.network);
    const inst = attachedInstance(port, this.c.instances);
    // An instance's own port whose instance is gone is the garbage collector's to delete:
    // rewriting it as Available first would be one more write per deleted instance, and a
    // moment in which its address looks free for the taking.
    if (!inst && instanceOwner(port)) return;
    const base: PortStatus = {
      ...(port.status ?? {}),
      device: portDeviceName('tap', { uid: port.metadata.uid!, namespace: ns, name: req.name }),
      observedGeneration: port.metadata.generation,
    };
    if (inst) {
      base.instance = inst.metadata.name;
      if (inst.status?.hostName) base.hostName = inst.status.hostName;
      else delete base.hostName;
      const target = inst.status?.hostName ? inst.status.migration?.targetHost : undefined;
      if (target) base.migratingTo = target;
      else delete base.migratingTo;
    } else {
      delete base.instance;
      delete base.hostName;
      delete base.migratingTo;
    }
    if (!net || net.metadata.deletionTimestamp) {
      return this.writeStatus(port, { ...base, phase: 'Pending' }, { status: 'False', reason: 'NetworkNotFound', message: `network ${port.spec.network} does not exist` });
    }
    const network = { namespace: ns, name: net.metadata.name!, uid: net.metadata.uid!, cidr: net.spec.cidr, gateway: net.spec.gateway };
    const sameNet = port.status?.networkUID === network.uid;
    // IP and MAC: keep what is claimed unless spec asks for another. The two claims are made
    // side by side (one round trip less per port): each is idempotent for this port, so a MAC
    // claimed while no address is free is this port's and is claimed again as its own next time.
    const { taken, owned } = cachedIPClaims(this.c.claims.list(ns), network.uid, port.metadata.uid!);
    const claimIP = async (): Promise<AllocateResult> => {
      if (sameNet && port.status?.ip && (!port.spec.ip || port.spec.ip === port.status.ip)) return { ok: true, value: port.status.ip };
      if (sameNet && port.status?.ip && port.spec.ip && port.spec.ip !== port.status.ip) await release(this.client, 'IP', network, port.status.ip);
      return allocateIP(this.client, { network, owner: port, requested: port.spec.ip, knownTaken: taken, owned, recent: this.recent });
    };
    const claimMAC = async (): Promise<AllocateResult> => {
      if (sameNet && port.status?.mac && (!port.spec.mac || port.spec.mac.toLowerCase() === port.status.mac)) return { ok: true, value: port.status.mac };
      return allocateMAC(this.client, network, port, port.spec.mac);
    };
    const [ip, mac] = await Promise.all([claimIP(), claimMAC()]);
    if (!ip.ok) {
      const phase = ip.reason === 'AddressesExhausted' ? 'Pending' : 'Failed';
      const { ip: _ip, mac: _mac, networkUID: _uid, ...rest } = base;
      await this.writeStatus(port, { ...rest, phase }, { status: 'False', reason: ip.reason, message: ip.message });
      // Exhausted: a released claim wakes us; retry slowly anyway (another writer may free one).
      return ip.reason === 'AddressesExhausted' ? { requeueAfterMs: 30_000 } : undefined;
    }
    if (!mac.ok) {
      return this.writeStatus(port, { ...base, phase: 'Failed' }, { status: 'False', reason: mac.reason, message: mac.message });
    }
    /** The port as last stored: the status write starts from it (a current copy saves a read). */
    let stored = port;
    if (port.spec.ip !== ip.value || port.spec.mac?.toLowerCase() !== mac.value) {
      const patch: Record<string, string> = {};
      if (!port.spec.ip) patch.ip = ip.value;
      if (!port.spec.mac) patch.mac = mac.value;
      // Guarded by the resourceVersion the decision was made on: a stale cache conflicts and
      // retries instead of overwriting an address written meanwhile.
      if (Object.keys(patch).length) stored = await this.client.mergePatch<Port>(PORTS, ns, req.name, { metadata: { resourceVersion: port.metadata.resourceVersion }, spec: patch });
    }
    // Claims this port holds besides its address (an earlier spec.ip) go back to the pool.
    for (const old of owned) if (old !== ip.value) await release(this.client, 'IP', network, old);
    const phase = inst ? 'Bound' : 'Available';
    // Writing the addresses into spec made a new generation: the status observes that one (from
    // the generation before, it would be written again once the cache caught up).
    const generation = stored.metadata.generation;
    await this.writeStatus(port, { ...base, observedGeneration: generation, phase, ip: ip.value, mac: mac.value, networkUID: network.uid }, { status: 'True', reason: 'Allocated', message: '' }, stored);
  }

  private async writeStatus(port: Port, want: PortStatus, cond: { status: 'True' | 'False'; reason: string; message: string }, from: Port = port): Promise<void> {
    const c = { type: 'Allocated', ...cond, observedGeneration: want.observedGeneration };
    const same = (s: PortStatus | undefined) => {
      if (!s || !hasCondition(s.conditions, c)) return false;
      const { conditions: _a, ...x } = s;
      const { conditions: _b, ...y } = want;
      return JSON.stringify(sorted(x)) === JSON.stringify(sorted(y));
    };
    if (same(port.status)) return;
    try {
      await updateStatusFrom<Port>(this.client, PORTS, port.metadata.namespace, port.metadata.name!, from, (fresh) => {
        if (fresh.metadata.uid !== port.metadata.uid || same(fresh.status)) return false;
        fresh.status = { ...want, conditions: setCondition(fresh.status?.conditions, c) };
      });
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    if (cond.status === 'False' && port.status?.conditions?.find((x) => x.type === 'Allocated')?.reason !== cond.reason) {
      this.log(`network: port ${port.metadata.namespace}/${port.metadata.name}: ${cond.reason}: ${cond.message}`);
    }
  }
}

function sorted(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : 1)));
}
