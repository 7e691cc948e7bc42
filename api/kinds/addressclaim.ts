// AddressClaim: one IP, MAC or VNI held by one object, unique per network (VNIs cluster-wide,
// in kova-system). The claim's name makes the value unique; creating it is the allocation.
import type { KObject, ObjectMeta } from '../types.js';
import { resourceRef, type API_VERSION, type StatusBase } from './meta.js';

export const ADDRESS_CLAIMS = resourceRef('AddressClaim', 'addressclaims', true);

export type AddressClaimType = 'IP' | 'MAC' | 'VNI';

export interface AddressClaimSpec {
  type: AddressClaimType;
  /** Canonical form: dotted quad, lowercase MAC or decimal VNI. */
  address: string;
  /** namespace/name of the Network. */
  network: string;
  networkUID?: string;
  /** Kind/namespace/name of the holder. */
  owner?: string;
}

export type AddressClaimStatus = StatusBase;

export interface AddressClaim extends KObject {
  apiVersion: typeof API_VERSION;
  kind: 'AddressClaim';
  metadata: ObjectMeta;
  spec: AddressClaimSpec;
  status?: AddressClaimStatus;
}
