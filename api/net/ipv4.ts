// IPv4 addresses, CIDRs and MACs: the one grammar and arithmetic the API validation, the network
// controllers and the host side (nft, dnsmasq, ip, cloud-init) share. Pure, no I/O.
//
// The grammar is strict and has no escapes: dotted quads without leading zeros, prefixes 0..32
// without leading zeros, MACs as six colon-separated hex pairs. A value that passes cannot change
// the meaning of the text it is rendered into.

/** Thrown by the `validX(field, v)` checks; the message starts with the field. */
export class NetworkValidationError extends Error {
  constructor(readonly field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = 'NetworkValidationError';
  }
}

export function fail(field: string, message: string): never {
  throw new NetworkValidationError(field, message);
}

/** A value as error messages quote it (JSON, at most 64 characters). */
export function show(v: unknown): string {
  return JSON.stringify(v)?.slice(0, 64) ?? String(v);
}

const OCTET = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const IPV4_FMT = `${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}`;
const IPV4 = new RegExp(`^${IPV4_FMT}$`);
const CIDR = new RegExp(`^(${IPV4_FMT})/(3[0-2]|[12]?[0-9])$`);
const MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/** A dotted-quad IPv4 address without leading zeros. */
export function isIPv4(v: string): boolean {
  return IPV4.test(v);
}

/** The address as an unsigned 32-bit number; `ip` must be a valid dotted quad. */
export function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

export function intToIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** The netmask of a prefix length (0..32) as an unsigned 32-bit number. */
export function prefixMask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export interface IPv4Net {
  cidr: string;
  /** The address as written (host bits possibly set: an interface address like 10.0.0.5/24). */
  ip: number;
  /** The network address (host bits cleared). */
  network: number;
  prefix: number;
  mask: number;
  broadcast: number;
  /** First and last addresses usable by hosts (network/broadcast excluded unless /31, /32). */
  first: number;
  last: number;
}

/** `a.b.c.d/n`, host bits allowed, or undefined for anything else (IPv6 included). */
export function parseIPv4CIDR(v: unknown): IPv4Net | undefined {
  const m = typeof v === 'string' ? CIDR.exec(v) : null;
  if (!m) return undefined;
  const prefix = Number(m[m.length - 1]);
  const mask = prefixMask(prefix);
  const ip = ipv4ToInt(m[1]!);
  const network = (ip & mask) >>> 0;
  const broadcast = (network | (~mask >>> 0)) >>> 0;
  const small = prefix >= 31;
  return { cidr: v as string, ip, network, prefix, mask, broadcast, first: small ? network : network + 1, last: small ? broadcast : broadcast - 1 };
}

export function hasHostBits(c: IPv4Net): boolean {
  return c.ip !== c.network;
}

/** Whether a valid dotted quad lies inside the CIDR (network and broadcast included). */
export function cidrContains(c: IPv4Net, ip: string): boolean {
  return ((ipv4ToInt(ip) & c.mask) >>> 0) === c.network;
}

/** What is wrong with a MAC for a NIC, or undefined when it is a fine unicast address (any case). */
export function macProblem(v: unknown): 'format' | 'broadcast' | 'multicast' | 'zero' | undefined {
  if (typeof v !== 'string' || !MAC.test(v)) return 'format';
  const mac = v.toLowerCase();
  if (mac === 'ff:ff:ff:ff:ff:ff') return 'broadcast';
  if (parseInt(mac.slice(0, 2), 16) & 1) return 'multicast';
  if (mac === '00:00:00:00:00:00') return 'zero';
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// The throwing forms, for host-side checks that name the field (node-agent/network/validate.ts).

/** A dotted-quad IPv4 address without leading zeros. */
export function validIPv4(field: string, v: unknown): string {
  if (typeof v !== 'string' || !isIPv4(v)) fail(field, `invalid IPv4 address ${show(v)}`);
  return v;
}

/** An IPv4 CIDR whose host bits are zero, e.g. 10.20.0.0/24. */
export function validCIDR(field: string, v: unknown): string {
  if (typeof v !== 'string') fail(field, `invalid CIDR ${show(v)}`);
  const c = parseIPv4CIDR(v);
  if (!c) fail(field, `invalid CIDR ${show(v)} (want a.b.c.d/prefix)`);
  if (hasHostBits(c)) fail(field, `CIDR ${show(v)} has host bits set`);
  return v;
}

/** A unicast MAC address, returned lower-case. */
export function validMAC(field: string, v: unknown): string {
  const p = macProblem(v);
  if (p === 'format') fail(field, `invalid MAC address ${show(v)}`);
  if (p === 'broadcast' || p === 'multicast') fail(field, `MAC address ${show(v)} is multicast`);
  if (p === 'zero') fail(field, 'MAC address is all zeros');
  return (v as string).toLowerCase();
}
