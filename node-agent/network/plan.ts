// The pure host network planner: Networks, Ports, SecurityGroups, FloatingIPs and Routers that
// concern one host → the devices, dnsmasq configs and nftables ruleset the host should have.
// Deterministic (sorted inputs, derived names) so its output can be compared with golden files.
// Invalid objects never reach rendered text: a bad Network becomes a Ready=False condition, a bad
// Port/SecurityGroup/FloatingIP/Router is left out and listed in `rejected`.
import { bridgeMAC, networkDeviceName, portDeviceName } from '../../api/net/names.js';
import { defaultGateway, isUsable, netmask, parseCIDR, type ParsedCIDR } from '../../api/net/ipam.js';
import { intToIPv4 } from '../../api/net/ipv4.js';
import { renderDnsmasq } from './render-dnsmasq.js';
import { nftTableName, renderNft, type NftNat, type NftPort } from './render-nft.js';
import type {
  BridgePlan, DnsmasqPlan, HostInput, HostPlan, NetworkCondition, NetworkInput, PortDevicePlan, SecurityGroupRule,
  UplinkPlan, VlanPlan, VxlanPlan,
} from './types.js';
import {
  NetworkValidationError, oneOf, validCIDR, validHostname, validIfName, validIPv4, validMAC, validNetnsName,
  validPortNumber, validProtocol, validStatePath, validVlanID, validVNI,
} from './validate.js';

export const VXLAN_PORT = 4789;
/** 1500 minus the VXLAN/UDP/IP/Ethernet overhead, offered to guests over DHCP. */
export const VXLAN_GUEST_MTU = 1450;
export const VLAN_UNSUPPORTED_MESSAGE = 'kernel has no 802.1Q support (8021q module missing)';

export interface Rejected {
  kind: 'Port' | 'SecurityGroup' | 'FloatingIP' | 'Router';
  namespace: string;
  name: string;
  message: string;
}

export interface HostPlanResult extends HostPlan {
  /** Objects left out of the plan, with the field at fault. */
  rejected: Rejected[];
  /** Planned with a caveat (e.g. a port naming a missing security group: fails closed). */
  warnings: Rejected[];
}

const key = (o: { namespace: string; name: string }) => `${o.namespace}/${o.name}`;
const byKey = <T extends { namespace: string; name: string }>(a: T, b: T) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);

interface ReadyNetwork {
  net: NetworkInput;
  cidr: ParsedCIDR;
  gateway: string;
  bridge: string;
  /** The bridge address dnsmasq answers from (absent: no DHCP on this host). */
  serverIP?: string;
}

/** Checks a Network's fields; throws NetworkValidationError naming the field. */
function validateNetwork(n: NetworkInput): { cidr: ParsedCIDR; gateway: string } {
  validHostname('metadata.namespace', n.namespace);
  oneOf('spec.type', n.type, ['flat', 'vlan', 'vxlan'] as const);
  const cidr = parseCIDR(validCIDR('spec.cidr', n.cidr), 'spec.cidr');
  const gateway = n.gateway === undefined ? defaultGateway(n.cidr) : validIPv4('spec.gateway', n.gateway);
  if (!isUsable(cidr, gateway)) throw new NetworkValidationError('spec.gateway', `${gateway} is not a usable address of ${n.cidr}`);
  (n.dns ?? []).forEach((d, i) => validIPv4(`spec.dns[${i}]`, d));
  if (typeof n.dhcp !== 'boolean') throw new NetworkValidationError('spec.dhcp', 'must be a boolean');
  if (n.type === 'vxlan') validVNI('spec.vni', n.vni);
  if (n.type === 'vlan') {
    validVlanID('spec.vlanID', n.vlanID);
    if (n.physicalInterface === undefined) throw new NetworkValidationError('spec.physicalInterface', 'required for vlan networks');
  }
  if (n.physicalInterface !== undefined) validIfName('spec.physicalInterface', n.physicalInterface);
  return { cidr, gateway };
}

function validateRule(r: SecurityGroupRule, f: string): SecurityGroupRule {
  oneOf(`${f}.direction`, r.direction, ['ingress', 'egress'] as const);
  const protocol = validProtocol(`${f}.protocol`, r.protocol);
  if (r.remoteCIDR !== undefined) validCIDR(`${f}.remoteCIDR`, r.remoteCIDR);
  if (r.portMin !== undefined || r.portMax !== undefined) {
    if (protocol !== 'tcp' && protocol !== 'udp') throw new NetworkValidationError(`${f}.portMin`, 'ports need protocol tcp or udp');
    const min = validPortNumber(`${f}.portMin`, r.portMin);
    const max = r.portMax === undefined ? min : validPortNumber(`${f}.portMax`, r.portMax);
    if (max < min) throw new NetworkValidationError(`${f}.portMax`, `${max} is below portMin ${min}`);
    return { direction: r.direction, protocol, portMin: min, portMax: max, remoteCIDR: r.remoteCIDR };
  }
  return { direction: r.direction, protocol, remoteCIDR: r.remoteCIDR };
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function dhcpUplinks(bridges: BridgePlan[], vxlans: VxlanPlan[], vlans: VlanPlan[], uplinks: UplinkPlan[]): string[] {
  const served = new Set(bridges.filter((b) => b.address).map((b) => b.name));
  return [...vxlans, ...vlans, ...uplinks].filter((d) => served.has(d.master)).map((d) => d.name);
}

/** Floating IPs of this host's ports (DNAT in, SNAT out) and router SNAT of ready networks. */
function planNat(
  input: HostInput,
  ready: Map<string, ReadyNetwork>,
  portByKey: Map<string, { ip: string; net: ReadyNetwork }>,
  rejected: Rejected[],
): NftNat {
  const nat: NftNat = { floating: [], snat: [] };
  const floatingSeen = new Set<string>();
  for (const fip of [...input.floatingIPs].sort(byKey)) {
    try {
      const ip = validIPv4('spec.ip', fip.ip);
      const p = portByKey.get(`${fip.namespace}/${fip.port}`);
      if (!p) continue; // the port lives on another host (or was rejected)
      if (floatingSeen.has(ip)) throw new NetworkValidationError('spec.ip', `${ip} is used by another floating IP`);
      floatingSeen.add(ip);
      nat.floating.push({ floatingIP: ip, fixedIP: p.ip, cidr: p.net.net.cidr });
    } catch (e) {
      rejected.push({ kind: 'FloatingIP', namespace: fip.namespace, name: fip.name, message: message(e) });
    }
  }
  for (const r of [...(input.routers ?? [])].sort(byKey)) {
    try {
      const externalIP = r.externalIP === undefined ? undefined : validIPv4('spec.externalIP', r.externalIP);
      for (const n of [...r.networks].sort()) {
        const rn = ready.get(`${r.namespace}/${n}`);
        if (rn) nat.snat.push({ cidr: rn.net.cidr, ...(externalIP ? { externalIP } : {}) });
      }
    } catch (e) {
      rejected.push({ kind: 'Router', namespace: r.namespace, name: r.name, message: message(e) });
    }
  }
  return nat;
}

function planDnsmasq(
  ready: Map<string, ReadyNetwork>,
  hostsByNet: Map<string, { mac: string; ip: string; hostname?: string }[]>,
  namesByNet: Map<string, { ip: string; hostname: string }[]>,
  stateDir: string,
): DnsmasqPlan[] {
  const dnsmasq: DnsmasqPlan[] = [];
  for (const rn of ready.values()) {
    if (!rn.net.dhcp || !rn.serverIP) continue;
    dnsmasq.push(renderDnsmasq({
      network: key(rn.net),
      bridge: rn.bridge,
      stateDir,
      networkAddress: intToIPv4(rn.cidr.network),
      netmask: netmask(rn.cidr),
      gateway: rn.gateway,
      dns: rn.net.dns?.length ? rn.net.dns : [rn.serverIP],
      domain: `${rn.net.namespace}.kova`,
      ...(rn.net.type === 'vxlan' ? { mtu: VXLAN_GUEST_MTU } : {}),
      hosts: hostsByNet.get(key(rn.net)) ?? [],
      names: namesByNet.get(key(rn.net)) ?? [],
    }));
  }
  return dnsmasq;
}

function overlaps(a: ParsedCIDR, b: ParsedCIDR): boolean {
  const mask = a.prefix < b.prefix ? a.mask : b.mask;
  return ((a.network & mask) >>> 0) === ((b.network & mask) >>> 0);
}

/** Plans one host's networking; throws only for invalid host-level fields (stateDir, tunnelIP, peers). */
export function planHost(input: HostInput): HostPlanResult {
  const stateDir = validStatePath('stateDir', input.stateDir);
  const tunnelIP = input.tunnelIP === undefined ? undefined : validIPv4('tunnelIP', input.tunnelIP);
  const rejected: Rejected[] = [];
  const warnings: Rejected[] = [];
  const conditions: NetworkCondition[] = [];
  const bridges: BridgePlan[] = [];
  const vxlans: VxlanPlan[] = [];
  const vlans: VlanPlan[] = [];
  const uplinks: UplinkPlan[] = [];
  const ready = new Map<string, ReadyNetwork>();
  const addressed: Array<{ key: string; cidr: ParsedCIDR }> = [];
  const usedNames = new Map<string, string>();
  const claimName = (name: string, owner: string) => {
    const prev = usedNames.get(name);
    if (prev !== undefined && prev !== owner) throw new Error(`device name collision: ${name} for ${prev} and ${owner}`);
    usedNames.set(name, owner);
    return name;
  };

  const peers = input.peers
    .map((p, i) => validIPv4(`peers[${i}].tunnelIP`, p.tunnelIP))
    .filter((ip) => ip !== tunnelIP);
  const remotes = [...new Set(peers)].sort();

  for (const net of [...input.networks].sort(byKey)) {
    const k = key(net);
    const notReady = (reason: string, msg: string) => conditions.push({ network: k, ready: false, reason, message: msg });
    let v: { cidr: ParsedCIDR; gateway: string };
    try {
      v = validateNetwork(net);
    } catch (e) {
      notReady('InvalidSpec', message(e));
      continue;
    }
    if (net.type === 'vlan' && !input.kernel.vlan) {
      notReady('VLANUnsupported', VLAN_UNSUPPORTED_MESSAGE);
      continue;
    }
    // A single host needs no tunnel: its instances meet on the bridge (kova up on one machine).
    // With peers, VXLAN needs this host's endpoint address.
    const localOnly = net.type === 'vxlan' && tunnelIP === undefined;
    if (localOnly && remotes.length) {
      notReady('NoTunnelIP', 'this host has no tunnelIP for VXLAN (set Host spec.tunnelIP or kova agent --tunnel-ip)');
      continue;
    }
    // On an overlay or a host-only bridge this host is the network's gateway (the same address
    // and MAC on every host, like a distributed router). With a physical uplink the gateway
    // belongs to the physical network, so the host serves DHCP from its own address, if given.
    const uplinked = net.type === 'vlan' || net.physicalInterface !== undefined;
    let serverIP: string | undefined;
    if (!uplinked) serverIP = v.gateway;
    else if (net.dhcp && input.dhcpAddresses?.[k] !== undefined) {
      const field = `dhcpAddresses[${JSON.stringify(k)}]`;
      try {
        serverIP = validIPv4(field, input.dhcpAddresses[k]);
        if (!isUsable(v.cidr, serverIP) || serverIP === v.gateway) throw new NetworkValidationError(field, `${serverIP} is not a usable non-gateway address of ${net.cidr}`);
      } catch (e) {
        notReady('InvalidSpec', message(e));
        continue;
      }
    }
    // Two addressed bridges with overlapping subnets in one namespace would share the gateway
    // address (dnsmasq cannot bind it twice, routes are ambiguous): refuse the later one.
    if (net.dhcp && serverIP) {
      const clash = addressed.find((o) => overlaps(o.cidr, v.cidr));
      if (clash) {
        notReady('OverlappingSubnet', `${net.cidr} overlaps network ${clash.key} (${clash.cidr.cidr}) on this host; networks with DHCP that share a host need distinct subnets`);
        continue;
      }
      addressed.push({ key: k, cidr: v.cidr });
    }
    const bridge = claimName(networkDeviceName('bridge', net), k);
    bridges.push({
      name: bridge,
      network: k,
      ...(uplinked ? {} : { mac: bridgeMAC(net) }),
      ...(net.dhcp && serverIP ? { address: `${serverIP}/${v.cidr.prefix}` } : {}),
    });
    if (net.type === 'vxlan' && !localOnly) {
      vxlans.push({
        name: claimName(networkDeviceName('vxlan', net), k),
        vni: net.vni!, local: tunnelIP!, dstport: VXLAN_PORT, master: bridge, remotes,
      });
    } else if (net.type === 'vlan') {
      vlans.push({ name: claimName(networkDeviceName('vlan', net), k), link: net.physicalInterface!, vlanID: net.vlanID!, master: bridge });
    } else if (net.physicalInterface !== undefined) {
      uplinks.push({ name: net.physicalInterface, master: bridge });
    }
    ready.set(k, { net, cidr: v.cidr, gateway: v.gateway, bridge, ...(serverIP ? { serverIP } : {}) });
    const noDHCP = net.dhcp && !serverIP ? 'DHCP is not served on this host: no DHCP server address for this uplinked network' : '';
    const note = localOnly ? 'no tunnelIP on this host: VXLAN to other hosts is off, local instances share the bridge' : '';
    conditions.push({ network: k, ready: true, reason: 'Configured', message: [noDHCP, note].filter(Boolean).join('; ') });
  }

  // Security groups: a group with one bad rule is left out whole (its ports then fail closed).
  const groups = new Map<string, SecurityGroupRule[]>();
  for (const sg of [...input.securityGroups].sort(byKey)) {
    try {
      groups.set(key(sg), sg.rules.map((r, i) => validateRule(r, `spec.rules[${i}]`)));
    } catch (e) {
      rejected.push({ kind: 'SecurityGroup', namespace: sg.namespace, name: sg.name, message: message(e) });
    }
  }

  const portPlans: PortDevicePlan[] = [];
  const nftPorts: NftPort[] = [];
  const hostsByNet = new Map<string, { mac: string; ip: string; hostname?: string }[]>();
  const portByKey = new Map<string, { ip: string; net: ReadyNetwork }>();
  const seen = new Set<string>();
  for (const port of [...input.ports].sort(byKey)) {
    try {
      const netKey = `${port.namespace}/${port.network}`;
      const rn = ready.get(netKey);
      if (!rn) throw new NetworkValidationError('spec.network', `network ${netKey} is not ready on this host`);
      const ip = validIPv4('spec.ip', port.ip);
      if (!isUsable(rn.cidr, ip) || ip === rn.gateway || ip === rn.serverIP) throw new NetworkValidationError('spec.ip', `${ip} is not a usable address of ${rn.net.cidr}`);
      const mac = validMAC('spec.mac', port.mac);
      const hostname = port.hostname === undefined ? undefined : validHostname('hostname', port.hostname);
      const device = oneOf('device', port.device ?? 'tap', ['tap', 'veth'] as const);
      const peerNetns = device === 'veth' ? validNetnsName('peerNetns', port.peerNetns) : undefined;
      for (const dup of [`ip:${netKey}:${ip}`, `mac:${netKey}:${mac}`]) {
        if (seen.has(dup)) throw new NetworkValidationError(dup.startsWith('ip') ? 'spec.ip' : 'spec.mac', `duplicate in network ${netKey}`);
      }
      const rules: SecurityGroupRule[] = [];
      for (const [i, g] of (port.securityGroups ?? []).entries()) {
        const rs = groups.get(`${port.namespace}/${g}`);
        if (rs) rules.push(...rs);
        else warnings.push({ kind: 'Port', namespace: port.namespace, name: port.name, message: `spec.securityGroups[${i}]: security group ${JSON.stringify(g)} not found; its rules are not applied` });
      }
      seen.add(`ip:${netKey}:${ip}`).add(`mac:${netKey}:${mac}`);
      const tap = claimName(portDeviceName('tap', port), key(port));
      portPlans.push({
        name: tap,
        kind: device,
        master: rn.bridge,
        // Like libvirt: the host end differs from the guest MAC only in its first octet.
        mac: 'fe' + mac.slice(2),
        guestMac: mac,
        ...(device === 'veth' ? { peerName: portDeviceName('vethPeer', port), peerNetns } : {}),
      });
      nftPorts.push({ tap, bridge: rn.bridge, ip, mac, rules });
      const hosts = hostsByNet.get(netKey) ?? [];
      hosts.push({ mac, ip, ...(hostname ? { hostname } : {}) });
      hostsByNet.set(netKey, hosts);
      portByKey.set(key(port), { ip, net: rn });
    } catch (e) {
      rejected.push({ kind: 'Port', namespace: port.namespace, name: port.name, message: message(e) });
    }
  }

  // Names of the networks' instances elsewhere: validated like local ones; a bad one is left out.
  const namesByNet = new Map<string, { ip: string; hostname: string }[]>();
  for (const r of input.remoteNames ?? []) {
    const netKey = `${r.namespace}/${r.network}`;
    const rn = ready.get(netKey);
    if (!rn) continue;
    try {
      const ip = validIPv4('ip', r.ip);
      if (!isUsable(rn.cidr, ip) || seen.has(`ip:${netKey}:${ip}`)) continue;
      const names = namesByNet.get(netKey) ?? [];
      names.push({ ip, hostname: validHostname('hostname', r.hostname) });
      namesByNet.set(netKey, names);
    } catch (e) {
      warnings.push({ kind: 'Port', namespace: r.namespace, name: r.hostname, message: `DNS name left out: ${message(e)}` });
    }
  }

  const nat = planNat(input, ready, portByKey, rejected);
  const dnsmasq = planDnsmasq(ready, hostsByNet, namesByNet, stateDir);
  const nftTable = nftTableName(input.clusterID);

  return {
    bridges, vxlans, vlans, uplinks,
    ports: portPlans,
    dnsmasq,
    nft: renderNft(nftPorts, nat, dhcpUplinks(bridges, vxlans, vlans, uplinks), nftTable).text,
    nftTable,
    forwarding: nat.floating.length > 0 || nat.snat.length > 0,
    conditions,
    rejected,
    warnings,
  };
}
