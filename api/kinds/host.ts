// Host (cluster-scoped): a hypervisor machine, registered and reported by its node agent.
import type { KObject, ObjectMeta } from '../types.js';
import { resourceRef, type API_VERSION, type Quantity, type StatusBase } from './meta.js';

export const HOSTS = resourceRef('Host', 'hosts', false);

export type HostDriver = 'libvirt' | 'sim';

export interface HostSpec {
  /** Cordoned: no new instances are placed here. */
  unschedulable?: boolean;
  /** VXLAN tunnel endpoint. */
  tunnelIP?: string;
  /** Set by an operator once the host is known to be off; a fenced host that is not Ready is evacuated. */
  fenced?: boolean;
  /** Maintenance (kova drain): cordoned, and every instance is migrated off, a few at a time. */
  maintenance?: boolean;
}

export interface HostResources {
  vcpus?: number;
  memory?: Quantity;
  disk?: Quantity;
}

/** What one bound instance is charged; written with its binding by the API server. */
export interface HostAllocation extends HostResources {
  /** uid of the instance. */
  uid: string;
  /** namespace/name of the instance. */
  instance: string;
}

export interface HostStatus extends StatusBase {
  capacity?: HostResources;
  /** capacity × the allocation ratios. */
  allocatable?: HostResources;
  /** The sum of allocations. */
  allocated?: HostResources;
  allocations?: HostAllocation[];
  driver?: HostDriver;
  /** e.g. "QEMU 7.2 (tcg)". */
  hypervisor?: string;
  architecture?: string;
  agentVersion?: string;
}

export interface Host extends KObject {
  apiVersion: typeof API_VERSION;
  kind: 'Host';
  metadata: ObjectMeta;
  /** The API server defaults it to {}. */
  spec?: HostSpec;
  status?: HostStatus;
}
