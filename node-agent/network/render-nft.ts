// Renders the kova nftables ruleset from already validated plan data. Two tables, written in one
// `nft -f` transaction: `inet <table>` (security groups via br_netfilter's forward hook + NAT)
// and `bridge <table>` (port anti-spoofing, which needs the bridge port that only the bridge
// family sees). The table is named per cluster (nftTableName), so two kova clusters on one
// machine each replace only their own rules.
import { createHash } from 'node:crypto';
import type { SecurityGroupRule } from './types.js';

export interface NftPort {
  tap: string;
  bridge: string;
  ip: string;
  mac: string;
  /** Rules of all the port's security groups, in order. */
  rules: SecurityGroupRule[];
}

export interface NftNat {
  /** Floating IP → fixed IP (DNAT in, SNAT out). */
  floating: { floatingIP: string; fixedIP: string; cidr: string }[];
  /** Router SNAT of a network's traffic leaving its CIDR. */
  snat: { cidr: string; externalIP?: string }[];
}

export const NFT_COMMENT_PREFIX = 'kova-plan ';

/** The table of plans without a cluster id (standalone use), and of kova before per-cluster tables. */
export const LEGACY_NFT_TABLE = 'kova';
const TABLE_NAME = /^kova(_[0-9a-f]{12})?$/;

/**
 * The nftables table of a cluster: `kova_` and 12 hex digits of its id (the kube-system
 * namespace uid, a random UUID: 48 random bits), or of a hash of the id when it is not a UUID.
 * Always a valid nft identifier, far below its 256-character limit.
 */
export function nftTableName(clusterID?: string): string {
  if (clusterID === undefined) return LEGACY_NFT_TABLE;
  const hex = clusterID.replace(/-/g, '').toLowerCase();
  const short = /^[0-9a-f]{32}$/.test(hex) ? hex.slice(0, 12) : createHash('sha256').update(clusterID).digest('hex').slice(0, 12);
  return `kova_${short}`;
}

/** Throws unless `name` is a table name nftTableName makes (it is spliced into nft scripts). */
export function validNftTable(name: string): string {
  if (!TABLE_NAME.test(name)) throw new Error(`invalid kova nftables table name ${JSON.stringify(name)}`);
  return name;
}

function ruleMatch(r: SecurityGroupRule, remoteField: 'saddr' | 'daddr'): string {
  const parts: string[] = [];
  if (r.remoteCIDR && r.remoteCIDR !== '0.0.0.0/0') parts.push(`ip ${remoteField} ${r.remoteCIDR}`);
  if (r.protocol === 'icmp') parts.push('meta l4proto icmp');
  if (r.protocol === 'tcp' || r.protocol === 'udp') {
    parts.push(`meta l4proto ${r.protocol}`);
    if (r.portMin !== undefined) {
      const max = r.portMax ?? r.portMin;
      parts.push(`th dport ${max === r.portMin ? r.portMin : `${r.portMin}-${max}`}`);
    }
  }
  return parts.join(' ');
}

function line(indent: number, s: string): string {
  return '\t'.repeat(indent) + s.replace(/ +/g, ' ').trim() + '\n';
}

/** A named set or map; nft rejects an empty `elements = { }`, so it is left out then. */
function setDecl(kind: 'set' | 'map', name: string, type: string, elements: string[]): string {
  let s = line(1, `${kind} ${name} {`) + line(2, `type ${type}`);
  if (elements.length > 0) {
    s += line(2, 'elements = {');
    s += elements.map((e, i) => line(3, e + (i < elements.length - 1 ? ',' : ''))).join('');
    s += line(2, '}');
  }
  return s + line(1, '}');
}

/**
 * Ports with the same rules share one pair of chains (named by a hash of the rules); ports reach
 * them through verdict maps keyed by bridge and address, so per-packet cost and ruleset size
 * stay flat as ports grow.
 */
function inetBody(ports: NftPort[], nat: NftNat): string {
  const chains = new Map<string, SecurityGroupRule[]>();
  const egress: string[] = [];
  const ingress: string[] = [];
  for (const p of ports) {
    const id = createHash('sha256').update(JSON.stringify(p.rules)).digest('hex').slice(0, 10);
    chains.set(id, p.rules);
    egress.push(`"${p.bridge}" . ${p.ip} : jump sg_${id}_egress`);
    ingress.push(`"${p.bridge}" . ${p.ip} : jump sg_${id}_ingress`);
  }
  let s = '';
  // Egress allows `return` so that an allowed packet still meets the destination's ingress.
  for (const [id, rules] of [...chains].sort(([a], [b]) => (a < b ? -1 : 1))) {
    s += line(1, `chain sg_${id}_egress {`);
    for (const r of rules.filter((r) => r.direction === 'egress')) s += line(2, `${ruleMatch(r, 'daddr')} return`);
    s += line(2, 'drop');
    s += line(1, '}');
    s += line(1, `chain sg_${id}_ingress {`);
    for (const r of rules.filter((r) => r.direction === 'ingress')) s += line(2, `${ruleMatch(r, 'saddr')} accept`);
    s += line(2, 'drop');
    s += line(1, '}');
  }
  s += setDecl('map', 'port_egress', 'ifname . ipv4_addr : verdict', egress);
  s += setDecl('map', 'port_ingress', 'ifname . ipv4_addr : verdict', ingress);
  s += line(1, 'chain forward {');
  s += line(2, 'type filter hook forward priority filter; policy accept;');
  s += line(2, 'ct state established,related accept');
  s += line(2, 'iifname . ip saddr vmap @port_egress');
  s += line(2, 'oifname . ip daddr vmap @port_ingress');
  s += line(1, '}');
  if (nat.floating.length > 0 || nat.snat.length > 0) {
    s += line(1, 'chain nat_prerouting {');
    s += line(2, 'type nat hook prerouting priority dstnat; policy accept;');
    for (const f of nat.floating) s += line(2, `ip daddr ${f.floatingIP} dnat ip to ${f.fixedIP}`);
    s += line(1, '}');
    s += line(1, 'chain nat_output {');
    s += line(2, 'type nat hook output priority -100; policy accept;');
    for (const f of nat.floating) s += line(2, `ip daddr ${f.floatingIP} dnat ip to ${f.fixedIP}`);
    s += line(1, '}');
    s += line(1, 'chain nat_postrouting {');
    s += line(2, 'type nat hook postrouting priority srcnat; policy accept;');
    for (const f of nat.floating) s += line(2, `ip saddr ${f.fixedIP} ip daddr != ${f.cidr} snat ip to ${f.floatingIP}`);
    for (const r of nat.snat) {
      s += line(2, `ip saddr ${r.cidr} ip daddr != ${r.cidr} ${r.externalIP ? `snat ip to ${r.externalIP}` : 'masquerade'}`);
    }
    s += line(1, '}');
  }
  return s;
}

/** Anti-spoofing: a port may only send from its own MAC and IP (0.0.0.0 for DHCP). */
function bridgeBody(ports: NftPort[], dhcpUplinks: string[]): string {
  let s = '';
  s += setDecl('set', 'ports', 'ifname', ports.map((p) => `"${p.tap}"`));
  s += setDecl('set', 'port_macs', 'ifname . ether_addr', ports.map((p) => `"${p.tap}" . ${p.mac}`));
  s += setDecl('set', 'port_ips', 'ifname . ipv4_addr', ports.flatMap((p) => [`"${p.tap}" . 0.0.0.0`, `"${p.tap}" . ${p.ip}`]));
  s += line(1, 'chain port_security {');
  s += line(2, 'type filter hook prerouting priority -200; policy accept;');
  // Every host serves DHCP for its own ports with the same server address: keep DHCP off the
  // shared segment, or another host's dnsmasq NAKs requests for ports it does not know.
  if (dhcpUplinks.length > 0) s += line(2, `iifname { ${dhcpUplinks.map((d) => `"${d}"`).join(', ')} } udp dport { 67, 68 } drop`);
  s += line(2, 'iifname @ports iifname . ether saddr != @port_macs drop');
  s += line(2, 'iifname @ports ether type ip iifname . ip saddr != @port_ips drop');
  s += line(2, 'iifname @ports ether type arp iifname . arp saddr ip != @port_ips drop');
  s += line(1, '}');
  return s;
}

export interface RenderedNft {
  /** Hash of the rendered definitions, stored in the tables to detect changes cheaply. */
  hash: string;
  /** The definitions of both tables, with the hash marker. */
  text: string;
}

/**
 * dhcpUplinks: the devices joining DHCP-served bridges to other hosts (vxlan, vlan, uplinks).
 * table: this cluster's table name (nftTableName).
 */
export function renderNft(ports: NftPort[], nat: NftNat, dhcpUplinks: string[] = [], table = LEGACY_NFT_TABLE): RenderedNft {
  validNftTable(table);
  const inet = inetBody(ports, nat);
  const bridge = bridgeBody(ports, dhcpUplinks);
  const hash = createHash('sha256').update(inet).update('\0').update(bridge).digest('hex').slice(0, 16);
  // nft 1.0.x JSON omits table comments but keeps rule comments: the hash sits in a rule of a
  // chain no hook ever reaches, read back with `nft -j list chain <family> <table> kova_plan`.
  const marker = line(1, 'chain kova_plan {') + line(2, `return comment "${NFT_COMMENT_PREFIX}${hash}"`) + line(1, '}');
  const text = `table inet ${table} {\n${marker}${inet}}\ntable bridge ${table} {\n${marker}${bridge}}\n`;
  return { hash, text };
}

/** `nft -f` lines deleting both tables of that name; declaring them first makes this valid when they don't exist. */
export function nftDeleteTables(table: string): string {
  validNftTable(table);
  return `table inet ${table}\ndelete table inet ${table}\ntable bridge ${table}\ndelete table bridge ${table}\n`;
}

/**
 * One atomic transaction replacing both tables of `table` (and nothing else). Deleting (not
 * flushing) drops chains of removed ports too; conntrack state is not part of a table, so
 * established flows survive.
 */
export function nftTransaction(text: string, table = LEGACY_NFT_TABLE): string {
  return nftDeleteTables(table) + text;
}
