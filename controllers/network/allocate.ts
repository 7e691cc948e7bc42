// Address allocation for Ports (and FloatingIPs): propose candidates from what the cache knows,
// let the store decide through claims. A stale cache only costs extra attempts, never duplicates.
import type { KObject } from '../../api/types.js';
import { defaultGateway, isUsable, macForPort, parseCIDR, usableAddresses } from '../../api/net/ipam.js';
import type { ApiClient } from '../../client/client.js';
import { claim } from './claims.js';
import type { ClaimResult } from './claims.js';
import type { RecentClaims } from './recent-claims.js';
import type { AddressClaim } from '../../api/kinds/index.js';

export interface AllocateIPRequest {
  network: { namespace: string; name: string; uid: string; cidr: string; gateway?: string };
  owner: KObject;
  /** A static address: claimed or refused, never replaced by another. */
  requested?: string;
  /** Addresses believed taken by others (claims in the cache); skipped without a request. */
  knownTaken: ReadonlySet<string>;
  /**
   * Addresses the cache shows claimed by `owner` itself, tried first: when the owner's own
   * cache entry is older than its claim, the address it already holds is the answer, not a
   * second one.
   */
  owned?: readonly string[];
  /** Cap on store round trips per call (a full /16 must not mean 65k creates). */
  maxAttempts?: number;
  /**
   * What this process's other allocations are claiming or have just claimed (shared by its
   * workers): proposals skip addresses held there by others and try the owner's own first.
   */
  recent?: RecentClaims;
}

export type AllocateResult =
  | { ok: true; value: string }
  | { ok: false; reason: 'AddressInUse' | 'AddressesExhausted' | 'InvalidAddress'; message: string };

export async function allocateIP(client: ApiClient, r: AllocateIPRequest): Promise<AllocateResult> {
  const net = r.network;
  const cidr = parseCIDR(net.cidr);
  const gateway = net.gateway ?? defaultGateway(net.cidr);
  const owner = r.owner.metadata.uid ?? '';
  const recent = r.recent;
  const claimIt = async (ip: string): Promise<ClaimResult> => {
    recent?.reserve(net.uid, ip, owner);
    let result: ClaimResult;
    try {
      result = await claim(client, { type: 'IP', value: ip, network: net, owner: r.owner });
    } catch (e) {
      recent?.forget(net.uid, ip);
      throw e;
    }
    if (result === 'taken') recent?.takenByOther(net.uid, ip);
    return result;
  };
  if (r.requested !== undefined) {
    if (!isUsable(cidr, r.requested) || r.requested === gateway) {
      return { ok: false, reason: 'InvalidAddress', message: `${r.requested} is not a usable address of ${net.cidr} (gateway ${gateway})` };
    }
    if ((await claimIt(r.requested)) === 'claimed') return { ok: true, value: r.requested };
    return { ok: false, reason: 'AddressInUse', message: `${r.requested} is already in use on network ${net.name}` };
  }
  const owned = new Set([...(r.owned ?? []), ...(recent?.ownedBy(net.uid, owner) ?? [])]);
  for (const ip of owned) {
    if ((await claimIt(ip)) === 'claimed') return { ok: true, value: ip };
  }
  let attempts = 0;
  const max = r.maxAttempts ?? 64;
  for (const ip of usableAddresses(net.cidr)) {
    if (ip === gateway || r.knownTaken.has(ip) || owned.has(ip)) continue;
    // Another worker of this process is claiming it (or just did): propose the next one.
    if (recent && !recent.reserve(net.uid, ip, owner)) continue;
    if (++attempts > max) return { ok: false, reason: 'AddressesExhausted', message: `no free address found in ${net.cidr} after ${max} attempts; retrying` };
    if ((await claimIt(ip)) === 'claimed') return { ok: true, value: ip };
  }
  return { ok: false, reason: 'AddressesExhausted', message: `no free address in ${net.cidr} (${r.knownTaken.size} in use)` };
}

/** The IP claims of a network in the cache, split into those of `ownerUID` and everybody else's. */
export function cachedIPClaims(claims: readonly AddressClaim[], networkUID: string, ownerUID: string): { taken: Set<string>; owned: string[] } {
  const taken = new Set<string>();
  const owned: string[] = [];
  for (const c of claims) {
    if (c.spec.type !== 'IP' || c.spec.networkUID !== networkUID) continue;
    if (c.metadata.ownerReferences?.some((o) => o.uid === ownerUID)) owned.push(c.spec.address);
    else taken.add(c.spec.address);
  }
  return { taken, owned: owned.sort() };
}

/** A MAC for a port: `requested`, or deterministic from its uid, retried with other values on a collision. */
export async function allocateMAC(client: ApiClient, network: { namespace: string; name: string; uid: string }, owner: KObject, requested?: string): Promise<AllocateResult> {
  if (requested !== undefined) {
    const mac = requested.toLowerCase();
    if ((await claim(client, { type: 'MAC', value: mac, network, owner })) === 'claimed') return { ok: true, value: mac };
    return { ok: false, reason: 'AddressInUse', message: `MAC ${mac} is already in use on network ${network.name}` };
  }
  for (let attempt = 0; attempt < 16; attempt++) {
    const mac = macForPort(owner.metadata.uid!, attempt);
    if ((await claim(client, { type: 'MAC', value: mac, network, owner })) === 'claimed') return { ok: true, value: mac };
  }
  return { ok: false, reason: 'AddressesExhausted', message: 'no free MAC address after 16 attempts' };
}

/** VNI candidates: spread by a hash of the network uid, so concurrent networks rarely collide. */
export function* vniCandidates(uid: string): Generator<number> {
  let h = 0;
  for (const ch of uid) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  const start = 4096 + (h % 1_000_000);
  for (let i = 0; i < 64; i++) yield start + i;
}
