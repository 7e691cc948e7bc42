// Host device names derived from object identity: a fixed prefix per device kind plus a short
// hash, so names fit IFNAMSIZ (15 chars), use only [a-z0-9-], and never depend on user text.
import { createHash } from 'node:crypto';

export const DEVICE_PREFIXES = {
  bridge: 'kvb-',
  vxlan: 'kvx-',
  vlan: 'kvv-',
  tap: 'kvt-',
  /** The instance end of a sim-compute veth pair. */
  vethPeer: 'kvp-',
} as const;

export type DeviceKind = keyof typeof DEVICE_PREFIXES;

/** 10 hex chars = 40 bits: collisions are negligible, and the planner still checks for them. */
export function shortHash(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 10);
}

export interface NetworkIdentity {
  uid: string;
  namespace: string;
  name: string;
}

export function networkDeviceName(kind: 'bridge' | 'vxlan' | 'vlan', net: NetworkIdentity): string {
  return DEVICE_PREFIXES[kind] + shortHash('network', net.uid, net.namespace, net.name);
}

export function portDeviceName(kind: 'tap' | 'vethPeer', port: NetworkIdentity): string {
  return DEVICE_PREFIXES[kind] + shortHash('port', port.uid, port.namespace, port.name);
}

/** Whether a host device name belongs to kova (and may be deleted when not planned). */
export function isKovaDevice(name: string): boolean {
  return /^kv[bxvt]-[0-9a-f]{10}$/.test(name);
}

/** Deterministic locally administered unicast MAC for a network's bridge (the gateway MAC). */
export function bridgeMAC(net: NetworkIdentity): string {
  const h = shortHash('bridge-mac', net.uid, net.namespace, net.name);
  return ['02', h.slice(0, 2), h.slice(2, 4), h.slice(4, 6), h.slice(6, 8), h.slice(8, 10)].join(':');
}
