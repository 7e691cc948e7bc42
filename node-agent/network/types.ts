// Inputs of the host network planner (already resolved by the agent from API objects) and the
// desired host state it produces. Plain data: the planner is pure, the applier owns side effects.
import type { NetworkSpec, RuleDirection, RuleProtocol } from '../../api/kinds/index.js';

/** A Network's spec with its identity, defaults resolved (dhcp) and vni from spec or status. */
export interface NetworkInput extends Omit<NetworkSpec, 'dhcp'> {
  uid: string;
  namespace: string;
  name: string;
  dhcp: boolean;
}

/** How the instance side of a port is realised: a tap for QEMU, or a veth pair for sim compute. */
export type PortDevice = 'tap' | 'veth';

export interface PortInput {
  uid: string;
  namespace: string;
  name: string;
  /** Network name in the port's namespace. */
  network: string;
  ip: string;
  mac: string;
  /** DNS/DHCP host name of the instance (optional). */
  hostname?: string;
  securityGroups?: string[];
  device?: PortDevice;
  /** veth only: network namespace that receives the peer end (the simulated instance). */
  peerNetns?: string;
}

export interface SecurityGroupRule {
  direction: RuleDirection;
  protocol: RuleProtocol;
  /** tcp/udp only; both absent means every port. */
  portMin?: number;
  portMax?: number;
  /** Remote address range; absent means 0.0.0.0/0. */
  remoteCIDR?: string;
}

export interface SecurityGroupInput {
  namespace: string;
  name: string;
  rules: SecurityGroupRule[];
}

export interface FloatingIPInput {
  namespace: string;
  name: string;
  /** The public address (from an external network). */
  ip: string;
  /** Port name in the same namespace; NAT is planned only on the host of that port. */
  port: string;
}

export interface RouterInput {
  namespace: string;
  name: string;
  /** Networks (names in the router's namespace) whose traffic leaving the CIDR is SNATed. */
  networks: string[];
  /** SNAT source; masquerade (address of the outgoing device) when absent. */
  externalIP?: string;
}

export interface PeerHost {
  hostName: string;
  tunnelIP: string;
}

export interface HostInput {
  hostName: string;
  tunnelIP?: string;
  networks: NetworkInput[];
  ports: PortInput[];
  peers: PeerHost[];
  securityGroups: SecurityGroupInput[];
  floatingIPs: FloatingIPInput[];
  routers?: RouterInput[];
  kernel: { vlan: boolean };
  /**
   * This host's DHCP server address per uplinked network (`namespace/name` → IP; flat with
   * physicalInterface, vlan), allocated like a Port. Without one the host serves no DHCP there:
   * the network's gateway address belongs to the physical network, not to every host.
   */
  dhcpAddresses?: Record<string, string>;
  /**
   * DNS names of the networks' instances on other hosts (Ports with an address and an
   * instance): this host's dnsmasq answers for them too, but hands them no DHCP lease.
   */
  remoteNames?: RemoteNameInput[];
  /** Directory for dnsmasq configs, pid and lease files. */
  stateDir: string;
  /** The cluster's id (kube-system namespace uid): names this cluster's nftables tables. */
  clusterID?: string;
}

export interface RemoteNameInput {
  namespace: string;
  /** The Port's network (name in `namespace`). */
  network: string;
  ip: string;
  hostname: string;
}

// ---- desired host state ----

export interface BridgePlan {
  name: string;
  network: string; // namespace/name
  /**
   * Overlay/host-only networks: deterministic per network, so the gateway answers with one MAC
   * on every host. Absent for networks with a physical uplink (the kernel picks it).
   */
  mac?: string;
  /** `ip/prefix` on the bridge when this host serves DHCP/gateway for the network. */
  address?: string;
}

export interface VxlanPlan {
  name: string;
  vni: number;
  local: string;
  dstport: number;
  master: string;
  /** Peer tunnel IPs for head-end replication (all-zero MAC FDB entries). */
  remotes: string[];
}

export interface VlanPlan {
  name: string;
  link: string;
  vlanID: number;
  master: string;
}

/** An existing uplink enslaved to a bridge (flat with physicalInterface). */
export interface UplinkPlan {
  name: string;
  master: string;
}

export interface PortDevicePlan {
  name: string;
  kind: PortDevice;
  master: string;
  /** Host-side MAC (tap: fe:… like libvirt; veth: host end). */
  mac: string;
  /** veth only. */
  peerName?: string;
  peerNetns?: string;
  /** Guest MAC (veth: set on the peer end). */
  guestMac: string;
}

export interface DnsmasqPlan {
  network: string;
  bridge: string;
  confFile: string;
  hostsFile: string;
  addnHostsFile: string;
  pidFile: string;
  /** Full text of the main config; a change means restart. */
  conf: string;
  /** dhcp-hostsfile and addn-hosts contents; a change means SIGHUP. */
  hosts: string;
  addnHosts: string;
}

export interface NetworkCondition {
  network: string;
  ready: boolean;
  reason: string;
  message: string;
}

export interface HostPlan {
  bridges: BridgePlan[];
  vxlans: VxlanPlan[];
  vlans: VlanPlan[];
  uplinks: UplinkPlan[];
  ports: PortDevicePlan[];
  dnsmasq: DnsmasqPlan[];
  /** Whole nftables text: the kova tables, replaced in one transaction. */
  nft: string;
  /** Name of this cluster's nftables tables (inet and bridge) that `nft` defines. */
  nftTable: string;
  /** Whether routed traffic is needed (NAT present): the applier enables ip_forward. */
  forwarding: boolean;
  conditions: NetworkCondition[];
}
