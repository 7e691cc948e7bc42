// Starts the networking controllers (ports/IPAM, networks, default security groups, floating
// IPs, security group and router status) on shared informers, and wires which change wakes what.
import type { KObject } from '../../api/types.js';
import type { KovaClient } from '../../client/client.js';
import { Controller } from '../../client/controller.js';
import { Informer } from '../../client/informer.js';
import { SharedInformers } from '../../client/shared-informers.js';
import {
  FloatingIPReconciler, NamespaceDefaultsReconciler, NetworkReconciler, RouterReconciler, SecurityGroupReconciler,
} from './network-controller.js';
import { attachedInstance, InstancePortsReconciler, PortReconciler } from './port-controller.js';
import { ADDRESS_CLAIMS, FLOATING_IPS, INSTANCES, NETWORKS, PORTS, ROUTERS, SECURITY_GROUPS } from '../../api/kinds/index.js';
import type { AddressClaim, FloatingIP, Instance, Network, Port, Router, SecurityGroup } from '../../api/kinds/index.js';

export interface NetworkControllersOptions {
  /** Informers shared with the other controllers of the process (default: its own). */
  informers?: SharedInformers;
  client: KovaClient;
  signal: AbortSignal;
  workers?: number;
  log?: (msg: string) => void;
}

export interface NetworkControllersHandle {
  controllers: Record<'ports' | 'instancePorts' | 'networks' | 'defaults' | 'securityGroups' | 'floatingIPs' | 'routers', Controller>;
  done: Promise<void>;
}

const req = (o: KObject) => ({ namespace: o.metadata.namespace, name: o.metadata.name! });

/** Starts informers and workers; resolves once the caches have synced. */
export async function startNetworkControllers(opts: NetworkControllersOptions): Promise<NetworkControllersHandle> {
  const { client, signal } = opts;
  const log = opts.log ?? ((m: string) => console.error(m));
  const shared = opts.informers ?? new SharedInformers(client, log);
  const instances = shared.for<Instance>(INSTANCES);
  const ports = shared.for<Port>(PORTS);
  const networks = shared.for<Network>(NETWORKS);
  const claims = shared.for<AddressClaim>(ADDRESS_CLAIMS);
  const securityGroups = shared.for<SecurityGroup>(SECURITY_GROUPS);
  const floatingIPs = shared.for<FloatingIP>(FLOATING_IPS);
  const routers = shared.for<Router>(ROUTERS);
  const caches = { instances, ports, networks, claims, securityGroups, floatingIPs, routers };
  const workers = opts.workers ?? 4;
  const c = {
    ports: new Controller(new PortReconciler(client, caches, log), { workers, log }),
    instancePorts: new Controller(new InstancePortsReconciler(client, caches, log), { workers, log }),
    networks: new Controller(new NetworkReconciler(client, caches, log), { workers: 2, log }),
    defaults: new Controller(new NamespaceDefaultsReconciler(client, caches, log), { workers: 1, log }),
    securityGroups: new Controller(new SecurityGroupReconciler(client, caches), { workers: 1, log }),
    floatingIPs: new Controller(new FloatingIPReconciler(client, caches, log), { workers: 2, log }),
    routers: new Controller(new RouterReconciler(client, caches), { workers: 1, log }),
  };
  const on = <T extends KObject>(inf: Informer<T>, fn: (o: T) => void) => {
    for (const ev of ['add', 'update', 'delete'] as const) inf.on(ev, fn);
  };
  const wakeFips = (ns: string) => floatingIPs.list(ns).forEach((f) => c.floatingIPs.enqueue(req(f)));

  on(instances, (i) => {
    c.instancePorts.enqueue(req(i));
    c.defaults.enqueue({ name: i.metadata.namespace! });
    const ns = i.metadata.namespace!;
    // Binding/unbinding changes the ports' status.hostName.
    for (const [idx, n] of (i.spec.networks ?? []).entries()) c.ports.enqueue({ namespace: ns, name: n.port ?? `${i.metadata.name}-${idx}` });
  });
  on(ports, (p) => {
    c.ports.enqueue(req(p));
    const inst = attachedInstance(p, instances);
    if (inst) c.instancePorts.enqueue(req(inst));
    for (const g of p.spec.securityGroups ?? []) c.securityGroups.enqueue({ namespace: p.metadata.namespace, name: g });
    wakeFips(p.metadata.namespace!);
  });
  on(networks, (n) => {
    c.networks.enqueue(req(n));
    for (const p of ports.list(n.metadata.namespace)) if (p.spec.network === n.metadata.name) c.ports.enqueue(req(p));
    wakeFips(n.metadata.namespace!);
    routers.list(n.metadata.namespace).forEach((r) => c.routers.enqueue(req(r)));
  });
  on(claims, (cl) => {
    const [ns, name] = cl.spec.network.split('/');
    if (cl.spec.type === 'IP' && ns && name) c.networks.enqueue({ namespace: ns, name });
  });
  // A released address wakes the ports waiting for one on that network.
  claims.on('delete', (cl) => {
    if (cl.spec.type !== 'IP') return;
    for (const p of ports.list(cl.metadata.namespace)) {
      if (p.status?.phase === 'Pending' && p.spec.network === cl.spec.network.split('/')[1]) c.ports.enqueue(req(p));
    }
  });
  on(securityGroups, (g) => {
    c.securityGroups.enqueue(req(g));
    if (g.metadata.name === 'default') c.defaults.enqueue({ name: g.metadata.namespace! });
  });
  on(floatingIPs, (f) => c.floatingIPs.enqueue(req(f)));
  on(routers, (r) => c.routers.enqueue(req(r)));

  const informers: Array<Pick<Informer<KObject>, 'start' | 'stop' | 'waitForSync'>> = Object.values(caches);
  for (const inf of informers) inf.start();
  signal.addEventListener('abort', () => informers.forEach((i) => i.stop()), { once: true });
  await Promise.all(informers.map((i) => i.waitForSync(signal)));
  const done = Promise.all(Object.values(c).map((ctl) => ctl.start(signal))).then(() => undefined);
  return { controllers: c, done };
}
