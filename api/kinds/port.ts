// Port: an address and MAC on a Network, attached to at most one instance.
import type { KObject, ObjectMeta } from '../types.js';
import { resourceRef, type API_VERSION, type StatusBase } from './meta.js';

export const PORTS = resourceRef('Port', 'ports', true);

export type PortPhase = 'Pending' | 'Available' | 'Bound' | 'Failed';

export interface PortSpec {
  network: string;
  /** Allocated when omitted and written back. */
  ip?: string;
  /** Generated when omitted and written back. */
  mac?: string;
  securityGroups?: string[];
}

export interface PortStatus extends StatusBase {
  phase?: PortPhase;
  instance?: string;
  hostName?: string;
  /** The host a Migration is moving the instance to: it plugs the port too meanwhile. */
  migratingTo?: string;
  /** The tap device on the host. */
  device?: string;
  ip?: string;
  mac?: string;
  /** uid of the Network the address was claimed on. */
  networkUID?: string;
}

export interface Port extends KObject {
  apiVersion: typeof API_VERSION;
  kind: 'Port';
  metadata: ObjectMeta;
  spec: PortSpec;
  status?: PortStatus;
}
