// Pure IPv4 address management helpers: parsing, default gateway, next free address, MACs.
import { createHash } from 'node:crypto';
import { intToIPv4, ipv4ToInt, validCIDR, validIPv4 } from './validate.js';

export interface ParsedCIDR {
  cidr: string;
  network: number;
  prefix: number;
  mask: number;
  broadcast: number;
  /** First and last addresses usable by hosts (network/broadcast excluded unless /31, /32). */
  first: number;
  last: number;
}

export function parseCIDR(cidr: string, field = 'cidr'): ParsedCIDR {
  validCIDR(field, cidr);
  const [ip, p] = cidr.split('/') as [string, string];
  const prefix = Number(p);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  const network = ipv4ToInt(ip);
  const broadcast = (network | (~mask >>> 0)) >>> 0;
  const small = prefix >= 31;
  return { cidr, network, prefix, mask, broadcast, first: small ? network : network + 1, last: small ? broadcast : broadcast - 1 };
}

export function netmask(c: ParsedCIDR): string {
  return intToIPv4(c.mask);
}

export function cidrContains(c: ParsedCIDR, ip: string): boolean {
  return ((ipv4ToInt(ip) & c.mask) >>> 0) === c.network;
}

/** Whether ip can be given to a host: inside the range and not network or broadcast address. */
export function isUsable(c: ParsedCIDR, ip: string): boolean {
  const n = ipv4ToInt(validIPv4('ip', ip));
  return n >= c.first && n <= c.last;
}

/** The default gateway: the first usable address. */
export function defaultGateway(cidr: string): string {
  return intToIPv4(parseCIDR(cidr).first);
}

export function* usableAddresses(cidr: string): Generator<string> {
  const c = parseCIDR(cidr);
  for (let n = c.first; n <= c.last; n++) yield intToIPv4(n);
}

/**
 * The lowest usable address not in `used` (which should include the gateway), or undefined when
 * the range is full. Uniqueness across writers is the store's job; this only proposes.
 */
export function nextFreeAddress(cidr: string, used: ReadonlySet<string>): string | undefined {
  for (const ip of usableAddresses(cidr)) if (!used.has(ip)) return ip;
  return undefined;
}

/**
 * A deterministic QEMU-style MAC (52:54:00:xx:xx:xx) for a port. On a collision the caller
 * retries with attempt+1, which yields an unrelated address.
 */
export function macForPort(portUID: string, attempt = 0): string {
  const h = createHash('sha256').update(`${portUID}\0${attempt}`).digest('hex');
  return `52:54:00:${h.slice(0, 2)}:${h.slice(2, 4)}:${h.slice(4, 6)}`;
}
