// How the libvirt driver attaches an instance's NICs on a host running kova networking: the
// host's network agent creates a tap per Port (named from the Port) on the network's bridge;
// libvirt only opens it. The guest takes its Port address by DHCP from the host's dnsmasq
// (static entries from the Ports), as Nova's FlatDHCP did.
import { NETWORKS, PORTS } from '../client/client.js';
import type { KovaClient } from '../client/client.js';
import type { NetworkObject, PortObject } from '../controllers/network/kinds.js';
import type { DomainSpec, NicSpec } from './driver.js';
import type { ResolvedNic } from './libvirt/libvirt-driver.js';
import { NetworkUnavailable } from './libvirt/libvirt-driver.js';
import { resolveNic } from './network-agent.js';
import { defaultGateway } from './network/ipam.js';

const POLL_MS = 250;

/** A LibvirtDriver `resolveNic` that waits (up to `timeoutMs`) for the network agent to configure the Port. */
export function libvirtNicResolver(client: KovaClient, timeoutMs = 30_000): (nic: NicSpec, spec: DomainSpec) => Promise<ResolvedNic> {
  return async (nic, spec) => {
    const ns = spec.instanceKey.slice(0, spec.instanceKey.indexOf('/'));
    if (!nic.port) throw new NetworkUnavailable(`network ${nic.network}: the instance has no port on it yet`);
    const until = Date.now() + timeoutMs;
    let port: PortObject | undefined;
    for (;;) {
      port = await client.get<PortObject>(PORTS, ns, nic.port);
      const configured = port?.status?.conditions?.some((c) => c.type === 'Configured' && c.status === 'True');
      if (configured) break;
      if (Date.now() > until) throw new NetworkUnavailable(`port ${ns}/${nic.port} is not configured on this host yet (its tap device does not exist)`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    const net = await client.get<NetworkObject>(NETWORKS, ns, nic.network);
    if (!net) throw new NetworkUnavailable(`network ${ns}/${nic.network} not found`);
    const r = resolveNic(port!, net);
    if (!r) throw new NetworkUnavailable(`port ${ns}/${nic.port} has no MAC address yet`);
    const cidr = net.spec.cidr;
    const prefix = cidr.split('/')[1];
    const status = net.status as { gateway?: string } | undefined;
    // Without DHCP on the network the address goes in cloud-init's network-config instead.
    const dhcp = net.spec.dhcp !== false;
    return {
      tap: r.device,
      ...(!dhcp && nic.ip ? { address: `${nic.ip}/${prefix}`, gateway: status?.gateway ?? net.spec.gateway ?? defaultGateway(cidr) } : {}),
      ...(net.spec.dns?.length ? { dns: net.spec.dns } : {}),
    };
  };
}
