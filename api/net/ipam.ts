// Pure IPv4 address management helpers: parsing, default gateway, next free address, MACs.
import { createHash } from 'node:crypto';
import { intToIPv4, ipv4ToInt, parseIPv4CIDR, validCIDR, validIPv4, type IPv4Net } from './ipv4.js';

export type ParsedCIDR = IPv4Net;

/** A CIDR without host bits; throws NetworkValidationError naming `field` otherwise. */
export function parseCIDR(cidr: string, field = 'cidr'): ParsedCIDR {
  validCIDR(field, cidr);
  return parseIPv4CIDR(cidr)!;
}

export function netmask(c: ParsedCIDR): string {
  return intToIPv4(c.mask);
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
