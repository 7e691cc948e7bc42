// Validators for every value that reaches ip, bridge, nft or dnsmasq. Each accepts only a strict
// grammar (never escapes), so a value that passes cannot change the meaning of rendered text.

import { isDNS1123LabelOK, isDNS1123SubdomainOK } from '../../api/name-validation.js';
import { fail, show } from '../../api/net/ipv4.js';

// The address checks are the API's (one grammar for admission and the host).
export { NetworkValidationError, validCIDR, validIPv4, validMAC } from '../../api/net/ipv4.js';

/** A host interface name: 1..15 chars of [A-Za-z0-9_.-], not "." or "..". */
export function validIfName(field: string, v: unknown): string {
  if (typeof v !== 'string' || !/^[A-Za-z0-9_.-]{1,15}$/.test(v) || v === '.' || v === '..') {
    fail(field, `invalid interface name ${show(v)} (1-15 characters of A-Z a-z 0-9 _ . -)`);
  }
  return v;
}

/** A network namespace name as `ip netns` accepts it, without path characters. */
export function validNetnsName(field: string, v: unknown): string {
  if (typeof v !== 'string' || !/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/.test(v)) {
    fail(field, `invalid network namespace name ${show(v)}`);
  }
  return v;
}

function validInt(field: string, v: unknown, min: number, max: number, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    fail(field, `invalid ${what} ${show(v)} (${min}..${max})`);
  }
  return v;
}

export const validVNI = (field: string, v: unknown) => validInt(field, v, 1, 16777215, 'VNI');
export const validVlanID = (field: string, v: unknown) => validInt(field, v, 1, 4094, 'VLAN ID');
export const validPortNumber = (field: string, v: unknown) => validInt(field, v, 1, 65535, 'port');

export const PROTOCOLS = ['tcp', 'udp', 'icmp', 'any'] as const;
export function validProtocol(field: string, v: unknown): (typeof PROTOCOLS)[number] {
  if (!PROTOCOLS.includes(v as never)) fail(field, `invalid protocol ${show(v)} (tcp, udp, icmp or any)`);
  return v as (typeof PROTOCOLS)[number];
}

/** A DNS host name (RFC 1123 labels, lower-case), as written into dnsmasq host entries. */
export function validHostname(field: string, v: unknown): string {
  if (typeof v !== 'string' || !isDNS1123SubdomainOK(v) || !v.split('.').every(isDNS1123LabelOK)) {
    fail(field, `invalid host name ${show(v)}`);
  }
  return v;
}

/** An absolute path of safe characters (written into dnsmasq configs and arguments). */
export function validStatePath(field: string, v: unknown): string {
  if (typeof v !== 'string' || !/^\/[A-Za-z0-9_.\/-]*$/.test(v) || v.split('/').includes('..')) {
    fail(field, `invalid path ${show(v)} (absolute, characters A-Z a-z 0-9 _ . / -)`);
  }
  return v;
}

export function oneOf<T extends string>(field: string, v: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(v as T)) fail(field, `invalid value ${show(v)} (one of ${allowed.join(', ')})`);
  return v as T;
}
