// Starts the networking reconcilers (one per kind, each in its own file) on shared informers,
// and says which change wakes what.
import type { KObject } from '../../api/types.js';
import { ADDRESS_CLAIMS, FLOATING_IPS, INSTANCES, NETWORKS, PORTS, ROUTERS, SECURITY_GROUPS } from '../../api/kinds/index.js';
import type { AddressClaim, FloatingIP, Instance, Network, Port, Router, SecurityGroup } from '../../api/kinds/index.js';
import { controllerFor, onSpecChange, withDefaults } from '../../client/controller.js';
import type { Controller, ControllerStartOptions, Request } from '../../client/controller.js';
import type { NetworkCaches } from './caches.js';
import { NamespaceDefaultsReconciler } from './default-security-group.js';
import { FloatingIPReconciler } from './floating-ip.js';
import { InstancePortsReconciler } from './instance-ports.js';
import { NetworkReconciler } from './network.js';
import { attachedInstance, PortReconciler } from './port.js';
import { RecentClaims } from './recent-claims.js';
import { RouterReconciler } from './router.js';
import { SecurityGroupReconciler } from './security-group.js';

export type NetworkControllersOptions = ControllerStartOptions;

export interface NetworkControllersHandle {
  controllers: Record<'ports' | 'instancePorts' | 'networks' | 'defaults' | 'securityGroups' | 'floatingIPs' | 'routers', Controller>;
  done: Promise<void>;
}

const req = (o: KObject): Request => ({ namespace: o.metadata.namespace, name: o.metadata.name! });

/** Starts informers and workers; resolves once the caches have synced. */
export async function startNetworkControllers(opts: NetworkControllersOptions): Promise<NetworkControllersHandle> {
  const { client, signal, log, informers } = withDefaults(opts);
  const instances = informers.for<Instance>(INSTANCES);
  const ports = informers.for<Port>(PORTS);
  const networks = informers.for<Network>(NETWORKS);
  const claims = informers.for<AddressClaim>(ADDRESS_CLAIMS);
  const securityGroups = informers.for<SecurityGroup>(SECURITY_GROUPS);
  const floatingIPs = informers.for<FloatingIP>(FLOATING_IPS);
  const routers = informers.for<Router>(ROUTERS);
  const caches: NetworkCaches = { instances, ports, networks, claims, securityGroups, floatingIPs, routers };
  // A port takes three round trips in a row (its IP and MAC claims side by side, spec, status):
  // under load the workers wait on the API server far more than they compute, so many run at once.
  const workers = opts.workers ?? 12;
  const inNamespace = <T extends KObject>(list: (ns?: string) => readonly T[]) => (o: KObject) => list(o.metadata.namespace).map(req);
  // The ports' and floating IPs' workers propose addresses around each other's claims until the
  // claims cache shows them (then it decides) or shows them released.
  const recent = new RecentClaims();
  const cached = (cl: AddressClaim) => cl.spec.type === 'IP' && cl.spec.networkUID && recent.forget(cl.spec.networkUID, cl.spec.address);
  claims.on('add', cached);
  claims.on('delete', cached);

  const handles = await Promise.all([
    controllerFor(new PortReconciler(client, caches, log, recent), { workers, log })
      .watches(ports)
      // Binding/unbinding changes the ports' status.hostName.
      .watches(instances, (i) => (i.spec.networks ?? []).map((n, idx) => ({ namespace: i.metadata.namespace, name: n.port ?? `${i.metadata.name}-${idx}` })))
      // Ports read their network's spec (cidr, gateway) and deletion, not its status.
      .watches(networks, onSpecChange((n) => ports.list(n.metadata.namespace).filter((p) => p.spec.network === n.metadata.name).map(req)))
      // A released address wakes the ports waiting for one on that network.
      .watches(claims, (cl) => cl.spec.type !== 'IP' ? [] : ports.list(cl.metadata.namespace)
        .filter((p) => p.status?.phase === 'Pending' && p.spec.network === cl.spec.network.split('/')[1]).map(req), ['delete'])
      .start(signal),
    controllerFor(new InstancePortsReconciler(client, caches, log), { workers, log })
      .watches(instances)
      .watches(ports, (p) => {
        const inst = attachedInstance(p, instances);
        return inst && req(inst);
      })
      .start(signal),
    controllerFor(new NetworkReconciler(client, caches, log), { workers: 2, log })
      .watches(networks)
      .watches(claims, (cl) => {
        const [namespace, name] = cl.spec.network.split('/');
        return cl.spec.type === 'IP' && namespace && name ? { namespace, name } : undefined;
      })
      .reads(securityGroups)
      .start(signal),
    controllerFor(new NamespaceDefaultsReconciler(client, caches, log), { workers: 1, log })
      .watches(instances, (i) => ({ name: i.metadata.namespace! }))
      .watches(securityGroups, (g) => (g.metadata.name === 'default' ? { name: g.metadata.namespace! } : undefined))
      .start(signal),
    controllerFor(new SecurityGroupReconciler(client, caches), { workers: 1, log })
      .watches(securityGroups)
      .watches(ports, (p) => (p.spec.securityGroups ?? []).map((g) => ({ namespace: p.metadata.namespace, name: g })))
      .start(signal),
    controllerFor(new FloatingIPReconciler(client, caches, log, recent), { workers: 2, log })
      .watches(floatingIPs)
      .watches(ports, inNamespace((ns) => floatingIPs.list(ns)))
      .watches(networks, onSpecChange(inNamespace((ns) => floatingIPs.list(ns))))
      .reads(claims, instances)
      .start(signal),
    controllerFor(new RouterReconciler(client, caches), { workers: 1, log })
      .watches(routers)
      .watches(networks, onSpecChange(inNamespace((ns) => routers.list(ns))))
      .start(signal),
  ]);
  const [portsH, instancePorts, networksH, defaults, securityGroupsH, floatingIPsH, routersH] = handles;
  return {
    controllers: {
      ports: portsH.controller, instancePorts: instancePorts.controller, networks: networksH.controller, defaults: defaults.controller,
      securityGroups: securityGroupsH.controller, floatingIPs: floatingIPsH.controller, routers: routersH.controller,
    },
    done: Promise.all(handles.map((h) => h.done)).then(() => undefined),
  };
}
