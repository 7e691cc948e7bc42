// FloatingIP: an address on an external network translated to a port's fixed address.
import type { KObject, ObjectMeta } from '../types.js';
import { resourceRef, type API_VERSION, type StatusBase } from './meta.js';

export const FLOATING_IPS = resourceRef('FloatingIP', 'floatingips', true);

export type FloatingIPPhase = 'Pending' | 'Available' | 'Bound' | 'Failed';

export interface FloatingIPSpec {
  /** An external Network. */
  network: string;
  /** Allocated when omitted. */
  ip?: string;
  /** Exclusive with instance. */
  port?: string;
  /** Maps the instance's first port; exclusive with port. */
  instance?: string;
}

export interface FloatingIPStatus extends StatusBase {
  phase?: FloatingIPPhase;
  ip?: string;
  port?: string;
  /** The port's fixed address. */
  fixedIP?: string;
  /** The host that translates. */
  hostName?: string;
}

export interface FloatingIP extends KObject {
  apiVersion: typeof API_VERSION;
  kind: 'FloatingIP';
  metadata: ObjectMeta;
  spec: FloatingIPSpec;
  status?: FloatingIPStatus;
}
