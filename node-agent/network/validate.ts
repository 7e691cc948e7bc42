// Validators for every value that reaches ip, bridge, nft or dnsmasq. Each accepts only a strict
// grammar (never escapes), so a value that passes cannot change the meaning of rendered text.

export class NetworkValidationError extends Error {
  constructor(readonly field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = 'NetworkValidationError';
  }
}

function fail(field: string, message: string): never {
  throw new NetworkValidationError(field, message);
}

function show(v: unknown): string {
  return JSON.stringify(v)?.slice(0, 64) ?? String(v);
}

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

const OCTET = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const IPV4 = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);

/** A dotted-quad IPv4 address without leading zeros. */
export function validIPv4(field: string, v: unknown): string {
  if (typeof v !== 'string' || !IPV4.test(v)) fail(field, `invalid IPv4 address ${show(v)}`);
  return v;
}

export function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

export function intToIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** An IPv4 CIDR whose host bits are zero, e.g. 10.20.0.0/24. */
export function validCIDR(field: string, v: unknown): string {
  if (typeof v !== 'string') fail(field, `invalid CIDR ${show(v)}`);
  const m = /^([0-9.]+)\/(3[0-2]|[12]?[0-9])$/.exec(v);
  if (!m || !IPV4.test(m[1]!)) fail(field, `invalid CIDR ${show(v)} (want a.b.c.d/prefix)`);
  const prefix = Number(m[2]);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  if (((ipv4ToInt(m[1]!) & ~mask) >>> 0) !== 0) fail(field, `CIDR ${show(v)} has host bits set`);
  return v;
}

/** A unicast MAC address, returned lower-case. */
export function validMAC(field: string, v: unknown): string {
  if (typeof v !== 'string' || !/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(v)) {
    fail(field, `invalid MAC address ${show(v)}`);
  }
  const mac = v.toLowerCase();
  if (parseInt(mac.slice(0, 2), 16) & 1) fail(field, `MAC address ${show(v)} is multicast`);
  if (mac === '00:00:00:00:00:00') fail(field, 'MAC address is all zeros');
  return mac;
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
  if (
    typeof v !== 'string' || v.length > 253 ||
    !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/.test(v)
  ) {
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
