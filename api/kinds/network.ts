// Network: an IPv4 subnet carried between hosts as flat, vlan or vxlan.
import type { KObject, ObjectMeta } from '../types.js';
import { resourceRef, type API_VERSION, type StatusBase } from './meta.js';

export const NETWORKS = resourceRef('Network', 'networks', true);

export type NetworkType = 'flat' | 'vlan' | 'vxlan';
export type NetworkPhase = 'Pending' | 'Ready' | 'Failed';

export interface NetworkSpec {
  type: NetworkType;
  cidr: string;
  /** Defaults to the first usable address of the subnet. */
  gateway?: string;
  /** Defaults to true. */
  dhcp?: boolean;
  dns?: string[];
  /** vxlan only; allocated when omitted (see status.vni). */
  vni?: number;
  /** Required for vlan, forbidden otherwise. */
  vlanID?: number;
  /** Uplink for flat and vlan networks, e.g. eth1. */
  physicalInterface?: string;
  /** A source of floating IPs. */
  external?: boolean;
}

export interface NetworkStatus extends StatusBase {
  phase?: NetworkPhase;
  vni?: number;
  /** The Linux bridge on each host. */
  bridge?: string;
  gateway?: string;
  /** Addresses in use. */
  allocated?: number;
}

export interface Network extends KObject {
  apiVersion: typeof API_VERSION;
  kind: 'Network';
  metadata: ObjectMeta;
  spec: NetworkSpec;
  status?: NetworkStatus;
}
