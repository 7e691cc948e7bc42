// The FloatingIP reconciler: an address on an external network, allocated through a claim, and
// its attachment to a port (spec.port, or the first NIC of spec.instance).
import type { ApiClient } from '../../client/client.js';
import type { Reconciler, Request, Result } from '../../client/controller.js';
import { setCondition } from '../../api/conditions.js';
import { FLOATING_IPS } from '../../api/kinds/index.js';
import type { FloatingIP, Port } from '../../api/kinds/index.js';
import { allocateIP, cachedIPClaims } from './allocate.js';
import { sameStatus } from './caches.js';
import type { Log, NetworkCaches } from './caches.js';
import { release } from './claims.js';
import { RecentClaims } from './recent-claims.js';

/** Resolves the port a FloatingIP maps to: spec.port, or the first NIC of spec.instance. */
export function floatingTarget(fip: FloatingIP, c: Pick<NetworkCaches, 'ports' | 'instances'>): Port | undefined {
  const ns = fip.metadata.namespace!;
  if (fip.spec.port) return c.ports.get(ns, fip.spec.port);
  if (!fip.spec.instance) return undefined;
  const inst = c.instances.get(ns, fip.spec.instance);
  const first = inst?.spec.networks?.[0];
  if (!inst || !first) return undefined;
  return c.ports.get(ns, first.port ?? `${fip.spec.instance}-0`);
}

export class FloatingIPReconciler implements Reconciler {
  readonly name = 'floatingip';
  constructor(
    private readonly client: ApiClient,
    private readonly c: NetworkCaches,
    private readonly log: Log,
    /** Shared with the ports' workers: see allocateIP. */
    private readonly recent = new RecentClaims(),
  ) {}

  async reconcile(req: Request): Promise<Result | void> {
    const ns = req.namespace!;
    const fip = this.c.floatingIPs.get(ns, req.name);
    if (!fip || fip.metadata.deletionTimestamp) return;
    const net = this.c.networks.get(ns, fip.spec.network);
    const fail = (phase: 'Pending' | 'Failed', reason: string, message: string) => this.write(fip, { phase }, { status: 'False', reason, message });
    if (!net) return fail('Pending', 'NetworkNotFound', `network ${fip.spec.network} does not exist`);
    if (!net.spec.external) return fail('Failed', 'NotExternal', `network ${fip.spec.network} is not external (spec.external: true)`);
    if (fip.spec.port && fip.spec.instance) return fail('Failed', 'InvalidSpec', 'spec.port and spec.instance are exclusive');
    const network = { namespace: ns, name: net.metadata.name!, uid: net.metadata.uid!, cidr: net.spec.cidr, gateway: net.spec.gateway };
    let ip = fip.status?.ip;
    const { taken, owned } = cachedIPClaims(this.c.claims.list(ns), network.uid, fip.metadata.uid!);
    if (!ip || (fip.spec.ip && fip.spec.ip !== ip)) {
      const r = await allocateIP(this.client, { network, owner: fip, requested: fip.spec.ip, knownTaken: taken, owned, recent: this.recent });
      if (!r.ok) return fail(r.reason === 'AddressesExhausted' ? 'Pending' : 'Failed', r.reason, r.message);
      ip = r.value;
    }
    // Claims of an earlier address (spec.ip changed) go back to the pool.
    for (const old of owned) if (old !== ip) await release(this.client, 'IP', network, old);
    const port = floatingTarget(fip, this.c);
    if (!port || !port.status?.ip) {
      return this.write(fip, { phase: 'Available', ip }, { status: 'False', reason: 'PortNotReady', message: 'the target port does not exist or has no address yet' });
    }
    const hostName = port.status.hostName;
    return this.write(fip, { phase: 'Bound', ip, port: port.metadata.name, fixedIP: port.status.ip, ...(hostName ? { hostName } : {}) }, { status: 'True', reason: 'Bound', message: '' });
  }

  private async write(fip: FloatingIP, s: NonNullable<FloatingIP['status']>, cond: { status: 'True' | 'False'; reason: string; message: string }): Promise<void> {
    const mk = (prev: FloatingIP['status']) => ({
      ...s,
      ...(s.ip === undefined && prev?.ip ? { ip: prev.ip } : {}),
      observedGeneration: fip.metadata.generation,
      conditions: setCondition(prev?.conditions, { type: 'Ready', ...cond, observedGeneration: fip.metadata.generation }),
    });
    if (sameStatus(fip.status, mk(fip.status))) return;
    await this.client.updateStatus<FloatingIP>(FLOATING_IPS, fip.metadata.namespace, fip.metadata.name!, (fresh) => {
      // Never replace an address another pass wrote meanwhile: requeue and decide on fresh state.
      if (s.ip && fresh.status?.ip && fresh.status.ip !== s.ip && fresh.metadata.generation === fip.metadata.generation) throw new Error(`stale cache: floating IP ${fip.metadata.name} already has ${fresh.status.ip}`);
      const next = mk(fresh.status);
      if (sameStatus(fresh.status, next)) return false;
      fresh.status = next;
    });
  }
}
