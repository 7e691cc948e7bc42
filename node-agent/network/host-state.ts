// Reads the actual network state of a host (or of one network namespace) as plain data.
import { runOrThrow, type CommandRunner } from './exec.js';
import { LEGACY_NFT_TABLE, validNftTable } from './render-nft.js';

export interface LinkState {
  name: string;
  kind?: string; // bridge, vxlan, vlan, veth, tun, ... (undefined for plain devices)
  mac?: string;
  master?: string;
  up: boolean;
  vxlan?: { id?: number; local?: string; port?: number; learning?: boolean };
  vlan?: { id?: number; link?: string };
  /** veth: the peer lives in another namespace. */
  peerElsewhere: boolean;
  /** Only IPv4, as `ip/prefix`. */
  addresses: string[];
}

export interface FdbEntry {
  dev: string;
  mac: string;
  dst: string;
}

export interface HostState {
  links: Map<string, LinkState>;
  fdb: FdbEntry[];
  /** The plan marker comment of this cluster's nftables tables by family (absent: no table). */
  nftMarkers: Map<string, string>;
  sysctl: Map<string, string>;
}

export const SYSCTLS = ['net.bridge.bridge-nf-call-iptables', 'net.ipv4.ip_forward'] as const;

interface IpLink {
  ifname: string;
  ifindex: number;
  address?: string;
  master?: string;
  flags?: string[];
  link?: string;
  link_netnsid?: number;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

/** nftTable: the cluster's table whose plan markers are read (see nftTableName). */
export async function readHostState(r: CommandRunner, nftTable = LEGACY_NFT_TABLE): Promise<HostState> {
  validNftTable(nftTable);
  // `ip -d addr show` lists every link with its details and its addresses: one program for both.
  const [linksOut, fdbOut, inetMarker, bridgeMarker, sysctlOut] = await Promise.all([
    runOrThrow(r, 'ip', ['-d', '-j', 'addr', 'show']),
    runOrThrow(r, 'bridge', ['-j', 'fdb', 'show']),
    r.run('nft', ['-j', 'list', 'chain', 'inet', nftTable, 'kova_plan']),
    r.run('nft', ['-j', 'list', 'chain', 'bridge', nftTable, 'kova_plan']),
    r.run('sysctl', [...SYSCTLS]),
  ]);
  const links = new Map<string, LinkState>();
  for (const l of JSON.parse(linksOut || '[]') as IpLink[]) {
    const kind = l.linkinfo?.info_kind;
    const data = l.linkinfo?.info_data ?? {};
    links.set(l.ifname, {
      name: l.ifname,
      ...(kind ? { kind } : {}),
      ...(l.address ? { mac: l.address } : {}),
      ...(l.master ? { master: l.master } : {}),
      up: (l.flags ?? []).includes('UP'),
      ...(kind === 'vxlan'
        ? { vxlan: { id: data.id as number, local: data.local as string, port: data.port as number, learning: data.learning as boolean } }
        : {}),
      ...(kind === 'vlan' ? { vlan: { id: data.id as number, link: l.link } } : {}),
      peerElsewhere: l.link_netnsid !== undefined,
      addresses: (l.addr_info ?? []).filter((i) => i.family === 'inet').map((i) => `${i.local}/${i.prefixlen}`),
    });
  }
  const fdb: FdbEntry[] = [];
  for (const e of JSON.parse(fdbOut || '[]') as { mac: string; ifname: string; dst?: string }[]) {
    if (e.dst !== undefined) fdb.push({ dev: e.ifname, mac: e.mac, dst: e.dst });
  }
  const nftMarkers = new Map<string, string>();
  for (const [family, out] of [['inet', inetMarker], ['bridge', bridgeMarker]] as const) {
    if (out.code !== 0) continue; // no table or chain: treated as absent
    const items = (JSON.parse(out.stdout) as { nftables: { rule?: { comment?: string } }[] }).nftables;
    nftMarkers.set(family, items.find((i) => i.rule)?.rule?.comment ?? '');
  }
  // `key = value` lines; a key the kernel lacks (no br_netfilter) is simply absent.
  const sysctl = new Map<string, string>();
  for (const m of sysctlOut.stdout.matchAll(/^(\S+) = (.*)$/gm)) sysctl.set(m[1]!, m[2]!.trim());
  return { links, fdb, nftMarkers, sysctl };
}
