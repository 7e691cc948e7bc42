// Networks (VNI allocation, derived status, aggregate readiness from the per-host conditions the
// node agents write), the `default` SecurityGroup of every project that uses networking,
// FloatingIP allocation/attachment, and the small status of SecurityGroups and Routers.
import type { Condition } from '../../api/types.js';
import { defaultGateway } from '../../api/net/ipam.js';
import { networkDeviceName } from '../../api/net/names.js';
import { isAlreadyExists, isNotFound } from '../../client/client.js';
import type { KovaClient } from '../../client/client.js';
import type { Reconciler, Request, Result } from '../../client/controller.js';
import { setCondition } from '../../api/conditions.js';
import { allocateIP, cachedIPClaims, vniCandidates } from './allocate.js';
import { claim, release } from './claims.js';
import type { Cache } from './port-controller.js';
import { FLOATING_IPS, NETWORKS, ROUTERS, SECURITY_GROUPS } from '../../api/kinds/index.js';
import type { AddressClaim, FloatingIP, Instance, Network, Port, Router, SecurityGroup } from '../../api/kinds/index.js';
import { DEFAULT_SECURITY_GROUP, HOST_CONDITION_PREFIX, NETWORK_FINALIZER } from '../../api/net/rules.js';

export interface NetworkCaches {
  networks: Cache<Network>;
  ports: Cache<Port>;
  claims: Cache<AddressClaim>;
  instances: Cache<Instance>;
  securityGroups: Cache<SecurityGroup>;
  floatingIPs: Cache<FloatingIP>;
  routers: Cache<Router>;
}

type Log = (m: string) => void;

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

const sameStatus = (a: unknown, b: unknown) => JSON.stringify(stripTimes(a)) === JSON.stringify(stripTimes(b));
function stripTimes(s: unknown): unknown {
  return JSON.parse(JSON.stringify(s ?? {}, (k, v) => (k === 'lastTransitionTime' ? undefined : v)));
}

export class NetworkReconciler implements Reconciler {
  readonly name = 'network';
  constructor(private readonly client: KovaClient, private readonly c: NetworkCaches, private readonly log: Log) {}

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
        if ((await claim(this.client, { type: 'VNI', value: String(v), network: id, owner: net })) === 'claimed') {
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

/** The `default` group: egress anywhere, ingress from its own members (Neutron's default). */
export async function ensureDefaultSecurityGroup(client: KovaClient, cache: Cache<SecurityGroup>, namespace: string, log: Log): Promise<void> {
  if (cache.get(namespace, DEFAULT_SECURITY_GROUP)) return;
  try {
    await client.create(SECURITY_GROUPS, {
      apiVersion: 'kova.dev/v1alpha1',
      kind: 'SecurityGroup',
      metadata: { name: DEFAULT_SECURITY_GROUP, namespace },
      spec: {
        rules: [
          { direction: 'egress', protocol: 'any' },
          { direction: 'ingress', protocol: 'any', remoteGroup: DEFAULT_SECURITY_GROUP },
        ],
      },
    });
    log(`network: created security group ${namespace}/${DEFAULT_SECURITY_GROUP}`);
  } catch (e) {
    if (!isAlreadyExists(e) && !isNotFound(e)) throw e; // NotFound: the namespace is going away
  }
}

/** Projects with instances but no network yet get their default group too. */
export class NamespaceDefaultsReconciler implements Reconciler {
  readonly name = 'network-defaults';
  constructor(private readonly client: KovaClient, private readonly c: NetworkCaches, private readonly log: Log) {}
  async reconcile(req: Request): Promise<void> {
    await ensureDefaultSecurityGroup(this.client, this.c.securityGroups, req.name, this.log);
  }
}

export class SecurityGroupReconciler implements Reconciler {
  readonly name = 'securitygroup';
  constructor(private readonly client: KovaClient, private readonly c: NetworkCaches) {}
  async reconcile(req: Request): Promise<void> {
    const sg = this.c.securityGroups.get(req.namespace, req.name);
    if (!sg || sg.metadata.deletionTimestamp) return;
    const ruleCount = sg.spec?.rules?.length ?? 0;
    const ports = this.c.ports.list(req.namespace).filter((p) => (p.spec.securityGroups ?? [DEFAULT_SECURITY_GROUP]).includes(req.name)).length;
    const s = sg.status ?? {};
    if (s.ruleCount === ruleCount && s.ports === ports && s.observedGeneration === sg.metadata.generation) return;
    await this.client.updateStatus<SecurityGroup>(SECURITY_GROUPS, req.namespace, req.name, (fresh) => {
      fresh.status = { ...fresh.status, ruleCount: fresh.spec?.rules?.length ?? 0, ports, observedGeneration: fresh.metadata.generation };
    });
  }
}

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
  constructor(private readonly client: KovaClient, private readonly c: NetworkCaches, private readonly log: Log) {}

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
      const r = await allocateIP(this.client, { network, owner: fip, requested: fip.spec.ip, knownTaken: taken, owned });
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

export class RouterReconciler implements Reconciler {
  readonly name = 'router';
  constructor(private readonly client: KovaClient, private readonly c: NetworkCaches) {}
  async reconcile(req: Request): Promise<void> {
    const ns = req.namespace!;
    const r = this.c.routers.get(ns, req.name);
    if (!r || r.metadata.deletionTimestamp) return;
    const ext = this.c.networks.get(ns, r.spec.externalNetwork);
    const cond = !ext
      ? { status: 'False' as const, reason: 'NetworkNotFound', message: `network ${r.spec.externalNetwork} does not exist` }
      : !ext.spec.external
        ? { status: 'False' as const, reason: 'NotExternal', message: `network ${r.spec.externalNetwork} is not external` }
        : { status: 'True' as const, reason: 'Configured', message: 'outbound traffic is masqueraded on each instance host' };
    const mk = (prev: Router['status']): Router['status'] => ({
      ...prev,
      phase: cond.status === 'True' ? 'Ready' : 'Failed',
      observedGeneration: r.metadata.generation,
      conditions: setCondition(prev?.conditions, { type: 'Ready', ...cond, observedGeneration: r.metadata.generation }),
    });
    if (sameStatus(r.status, mk(r.status))) return;
    await this.client.updateStatus<Router>(ROUTERS, ns, req.name, (fresh) => {
      const next = mk(fresh.status);
      if (sameStatus(fresh.status, next)) return false;
      fresh.status = next;
    });
  }
}
