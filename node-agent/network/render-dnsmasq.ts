// Renders one dnsmasq instance per network per host from validated plan data. Only this host's
// ports get host entries; `static` ranges make dnsmasq ignore every other MAC, so the DHCP
// servers of other hosts on the same L2 segment stay silent for ports that are not theirs.
import type { DnsmasqPlan } from './types.js';

export interface DnsmasqInput {
  network: string;
  bridge: string;
  stateDir: string;
  networkAddress: string;
  netmask: string;
  gateway: string;
  /** Offered DNS servers (the network's, or this host's dnsmasq address). */
  dns: string[];
  domain: string;
  mtu?: number;
  hosts: { mac: string; ip: string; hostname?: string }[];
  /** Names only (instances of the network on other hosts): DNS records, no DHCP. */
  names?: { ip: string; hostname: string }[];
}

export function renderDnsmasq(d: DnsmasqInput): DnsmasqPlan {
  const base = `${d.stateDir}/${d.bridge}`;
  const p = {
    confFile: `${base}.conf`,
    hostsFile: `${base}.dhcp-hosts`,
    addnHostsFile: `${base}.hosts`,
    pidFile: `${base}.pid`,
    leaseFile: `${base}.leases`,
  };
  const lines = [
    '# kova: generated, do not edit',
    `interface=${d.bridge}`,
    'bind-interfaces',
    'except-interface=lo',
    'no-resolv',
    'no-hosts',
    'no-poll',
    // Plain names (`web-1`) are answered here or not found, never refused for want of an upstream.
    'domain-needed',
    `domain=${d.domain}`,
    `local=/${d.domain}/`,
    `dhcp-range=${d.networkAddress},static,${d.netmask},12h`,
    `dhcp-option=option:router,${d.gateway}`,
    `dhcp-option=option:dns-server,${d.dns.join(',')}`,
    ...(d.mtu ? [`dhcp-option=option:mtu,${d.mtu}`] : []),
    `dhcp-hostsfile=${p.hostsFile}`,
    `addn-hosts=${p.addnHostsFile}`,
    `dhcp-leasefile=${p.leaseFile}`,
    `pid-file=${p.pidFile}`,
  ];
  const byIp = (a: { ip: string }, b: { ip: string }) => a.ip.localeCompare(b.ip, 'en', { numeric: true });
  const sorted = [...d.hosts].sort(byIp);
  const hosts = sorted.map((h) => [h.mac, h.ip, ...(h.hostname ? [h.hostname] : [])].join(',') + '\n').join('');
  const named = [...sorted.filter((h) => h.hostname), ...(d.names ?? [])] as { ip: string; hostname: string }[];
  named.sort(byIp);
  const addnHosts = named.map((h) => `${h.ip} ${h.hostname}.${d.domain} ${h.hostname}\n`).join('');
  return {
    network: d.network,
    bridge: d.bridge,
    confFile: p.confFile,
    hostsFile: p.hostsFile,
    addnHostsFile: p.addnHostsFile,
    pidFile: p.pidFile,
    conf: lines.join('\n') + '\n',
    hosts,
    addnHosts,
  };
}
