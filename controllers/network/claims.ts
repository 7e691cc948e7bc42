// Uniqueness through the store: a value (IP, MAC, VNI) is taken by creating an AddressClaim whose
// name is derived from the network's uid and the value. Creation is create-if-absent in one etcd
// transaction, so two writers can never both hold a value, whatever their caches say.
import type { KObject } from '../../api/types.js';
import { isAlreadyExists, isNotFound } from '../../client/client.js';
import type { ApiClient } from '../../client/client.js';
import { ADDRESS_CLAIMS } from '../../api/kinds/index.js';
import type { AddressClaim } from '../../api/kinds/index.js';
import { ownerRef, SYSTEM_NAMESPACE } from '../../api/net/rules.js';

export type ClaimType = 'IP' | 'MAC' | 'VNI';

/** Deterministic claim name: `ip-<uid>-10-0-0-5`, `mac-<uid>-525400aabbcc`, `vni-4242`. */
export function claimName(type: ClaimType, networkUID: string, value: string): string {
  switch (type) {
    case 'IP':
      return `ip-${networkUID}-${value.replaceAll('.', '-')}`;
    case 'MAC':
      return `mac-${networkUID}-${value.toLowerCase().replaceAll(':', '')}`;
    case 'VNI':
      return `vni-${value}`;
  }
}

export interface ClaimRequest {
  type: ClaimType;
  value: string;
  /** The network the value is unique in (VNI: the network holding it). */
  network: { namespace: string; name: string; uid: string };
  /** Holder: IP/MAC claims get an ownerReference to it (garbage-collected with it). */
  owner: KObject;
}

export type ClaimResult = 'claimed' | 'taken';

function holder(o: KObject): string {
  return `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}

/**
 * Claims `value` for `owner`. Returns `claimed` when the claim is (or already was) the owner's,
 * `taken` when another object holds it.
 */
export async function claim(client: ApiClient, r: ClaimRequest): Promise<ClaimResult> {
  const vni = r.type === 'VNI';
  const { namespace, name } = claimKey(r.type, r.network, r.value);
  const obj = {
    apiVersion: 'kova.dev/v1alpha1',
    kind: 'AddressClaim',
    metadata: {
      name,
      namespace,
      labels: { 'kova.dev/network-uid': r.network.uid, 'kova.dev/claim-type': r.type.toLowerCase() },
      // A VNI claim lives outside the network's namespace, where an ownerReference cannot
      // point; the network controller's finalizer releases it instead.
      ...(vni ? {} : { ownerReferences: [ownerRef(r.owner)] }),
    },
    spec: { type: r.type, address: r.value, network: `${r.network.namespace}/${r.network.name}`, networkUID: r.network.uid, owner: holder(r.owner) },
  };
  try {
    await client.create(ADDRESS_CLAIMS, obj);
    return 'claimed';
  } catch (e) {
    if (!isAlreadyExists(e)) throw e;
  }
  const cur = await client.get<AddressClaim>(ADDRESS_CLAIMS, namespace, name);
  if (!cur) return claim(client, r); // released in between: try again
  return heldFor(cur, r) ? 'claimed' : 'taken';
}

/** Whether `cur` (the stored claim of r's value, or a cached copy of it) is held by r's owner. */
export function heldFor(cur: AddressClaim | undefined, r: ClaimRequest): boolean {
  if (!cur) return false;
  if (cur.metadata.ownerReferences?.some((o) => o.uid === r.owner.metadata.uid)) return true;
  return r.type === 'VNI' && cur.spec.owner === holder(r.owner) && cur.spec.networkUID === r.network.uid;
}

/** Where the claim of `value` in `network` is stored (VNI claims: the system namespace). */
export function claimKey(type: ClaimType, network: { namespace: string; uid: string }, value: string): { namespace: string; name: string } {
  return { namespace: type === 'VNI' ? SYSTEM_NAMESPACE : network.namespace, name: claimName(type, network.uid, value) };
}

/** Deletes a claim if it is still held by `ownerUID` (VNI claims: by network uid). */
export async function release(client: ApiClient, type: ClaimType, network: { namespace: string; uid: string }, value: string): Promise<void> {
  const { namespace, name } = claimKey(type, network, value);
  const cur = await client.get<AddressClaim>(ADDRESS_CLAIMS, namespace, name);
  if (!cur || cur.spec.networkUID !== network.uid) return;
  try {
    await client.delete(ADDRESS_CLAIMS, namespace, name, { preconditions: { uid: cur.metadata.uid } });
  } catch (e) {
    if (!isNotFound(e) && !(e instanceof Error && /precondition|conflict/i.test(e.message))) throw e;
  }
}
