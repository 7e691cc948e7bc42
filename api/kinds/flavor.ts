// Flavor (cluster-scoped): a named instance size.
import type { KObject, ObjectMeta } from '../types.js';
import { resourceRef, type API_VERSION, type Quantity, type StatusBase } from './meta.js';

export const FLAVORS = resourceRef('Flavor', 'flavors', false);

/** Also the shape of an Instance's explicit `spec.resources`. */
export interface FlavorSpec {
  vcpus: number;
  memory: Quantity;
  disk: Quantity;
}

/** No controller writes it today. */
export type FlavorStatus = StatusBase;

export interface Flavor extends KObject {
  apiVersion: typeof API_VERSION;
  kind: 'Flavor';
  metadata: ObjectMeta;
  spec: FlavorSpec;
  status?: FlavorStatus;
}
