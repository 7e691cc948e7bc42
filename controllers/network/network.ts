// The Network reconciler: VNI allocation (vxlan), derived status (bridge, gateway, addresses
// allocated) and aggregate readiness from the per-host conditions the node agents write; the
// finalizer releases the VNI.
import type { Condition } from '../../api/types.js';
import { defaultGateway } from '../../api/net/ipam.js';
import { networkDeviceName } from '../../api/net/names.js';
import { HOST_CONDITION_PREFIX, NETWORK_FINALIZER } from '../../api/net/rules.js';
import { NETWORKS } from '../../api/kinds/index.js';
import type { Network } from '../../api/kinds/index.js';
import { setCondition } from '../../api/conditions.js';
import type { ApiClient } from '../../client/client.js';
import type { Reconciler, Request, Result } from '../../client/controller.js';
import { vniCandidates } from './allocate.js';
import { sameStatus } from './caches.js';
import type { Log, NetworkCaches } from './caches.js';
import { claim, claimKey, heldFor, release } from './claims.js';
import { ensureDefaultSecurityGroup } from './default-security-group.js';

/** The status a network should have, given its VNI and the claims and host conditions seen. */
export function networkStatus(net: Network, vni: number | undefined, allocated: number, failure?: { reason: string; message: string }): NonNullable<Network['status']> {
  const hostConds = (net.status?.conditions ?? []).filter((c) => c.type.startsWith(HOST_CONDITION_PREFIX));
  const bad = hostConds.find((c) => c.status === 'False');
  let ready: Omit<Condition, 'lastTransitionTime'>;
  if (failure) ready = { type: 'Ready', status: 'False', ...failure };
  else if (bad) ready = { type: 'Ready', status: 'False', reason: bad.reason ?? 'HostFailed', message: `host ${bad.type.slice(HOST_CONDITION_PREFIX.length)}: ${bad.message ?? ''}` };
  else ready = { type: 'Ready', status: 'True', reason: 'Configured', message: hostConds.length ? `configured on ${hostConds.length} host(s)` : 'no host has ports on this network yet' };
  ready.observedGeneration = net.metadata.generation;
  let gateway: string | undefined;
  try {
    gateway = net.spec.gateway ?? defaultGateway(net.spec.cidr);
  } catch {
    gateway = undefined;
  }
  return {
    ...net.status,
    phase: failure ? 'Failed' : bad ? 'Failed' : 'Ready',
    ...(vni !== undefined ? { vni } : {}),
    bridge: networkDeviceName('bridge', { uid: net.metadata.uid!, namespace: net.metadata.namespace!, name: net.metadata.name! }),
    ...(gateway ? { gateway } : {}),
    allocated,
    observedGeneration: net.metadata.generation,
    conditions: setCondition(net.status?.conditions, ready),
  };
}

export class NetworkReconciler implements Reconciler {
  readonly name = 'network';
  constructor(private readonly client: ApiClient, private readonly c: NetworkCaches, private readonly log: Log) {}

  async reconcile(req: Request): Promise<Result | void> {
    const ns = req.namespace!;
    const net = this.c.networks.get(ns, req.name);
    if (!net) return;
    const id = { namespace: ns, name: req.name, uid: net.metadata.uid! };
    if (net.metadata.deletionTimestamp) {
      if (!net.metadata.finalizers?.includes(NETWORK_FINALIZER)) return;
      if (net.status?.vni !== undefined) await release(this.client, 'VNI', id, String(net.status.vni));
      await this.client.removeFinalizer(NETWORKS, ns, req.name, NETWORK_FINALIZER);
      return;
    }
    await ensureDefaultSecurityGroup(this.client, this.c.securityGroups, ns, this.log);
    let vni: number | undefined;
    let failure: { reason: string; message: string } | undefined;
    if (net.spec.type === 'vxlan') {
      if (!net.metadata.finalizers?.includes(NETWORK_FINALIZER)) await this.client.addFinalizer(NETWORKS, ns, req.name, NETWORK_FINALIZER);
      const want = net.spec.vni;
      const held = net.status?.vni;
      if (held !== undefined && want !== undefined && held !== want) await release(this.client, 'VNI', id, String(held));
      const candidates = want !== undefined ? [want] : held !== undefined ? [held, ...vniCandidates(id.uid)] : [...vniCandidates(id.uid)];
      for (const v of candidates) {
        const r = { type: 'VNI' as const, value: String(v), network: id, owner: net };
        // The VNI it holds, as the claims cache shows: no create (409) and read on every status
        // change (each port's address changes the allocated count).
        const k = claimKey('VNI', id, r.value);
        if (v === held && heldFor(this.c.claims.get(k.namespace, k.name), r)) {
          vni = v;
          break;
        }
        if ((await claim(this.client, r)) === 'claimed') {
          vni = v;
          break;
        }
      }
      if (vni === undefined) {
        failure = want !== undefined
          ? { reason: 'VNIInUse', message: `VNI ${want} is used by another network` }
          : { reason: 'VNIExhausted', message: 'no free VNI found' };
      }
    }
    const allocated = this.c.claims.list(ns).filter((c) => c.spec.type === 'IP' && c.spec.networkUID === id.uid).length;
    const want = networkStatus(net, vni, allocated, failure);
    if (sameStatus(net.status, want)) return;
    await this.client.updateStatus<Network>(NETWORKS, ns, req.name, (fresh) => {
      if (fresh.metadata.uid !== id.uid) return false;
      const next = networkStatus(fresh, vni, allocated, failure);
      if (sameStatus(fresh.status, next)) return false;
      fresh.status = next;
    });
  }
}
