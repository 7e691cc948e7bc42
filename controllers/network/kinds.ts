// API kinds of the networking controllers and the object shapes they read.
import type { Condition, KObject, OwnerReference } from '../../api/types.js';
import type { Kind } from '../../client/client.js';

const kova = (plural: string, kind: string): Kind => ({ group: 'kova.dev', version: 'v1alpha1', plural, kind, namespaced: true });

export const SECURITY_GROUPS = kova('securitygroups', 'SecurityGroup');
export const FLOATING_IPS = kova('floatingips', 'FloatingIP');
export const ROUTERS = kova('routers', 'Router');
export const ADDRESS_CLAIMS = kova('addressclaims', 'AddressClaim');

/** Namespace of cluster-wide claims (VNIs): they are unique across projects. */
export const SYSTEM_NAMESPACE = 'kova-system';
/** On Networks holding a VNI claim: released before the Network goes. */
export const NETWORK_FINALIZER = 'kova.dev/network-cleanup';
export const DEFAULT_SECURITY_GROUP = 'default';
/** Per-host condition types written by node agents on Networks: `host.kova.dev/<host>`. */
export const HOST_CONDITION_PREFIX = 'host.kova.dev/';

export interface NetworkObject extends KObject {
  spec: {
    type: 'flat' | 'vlan' | 'vxlan';
    cidr: string;
    gateway?: string;
    dhcp?: boolean;
    dns?: string[];
    vni?: number;
    vlanID?: number;
    physicalInterface?: string;
    external?: boolean;
  };
  status?: {
    phase?: string;
    vni?: number;
    bridge?: string;
    gateway?: string;
    allocated?: number;
    observedGeneration?: number;
    conditions?: Condition[];
  };
}

export interface PortObject extends KObject {
  spec: { network: string; ip?: string; mac?: string; securityGroups?: string[] };
  status?: {
    phase?: 'Pending' | 'Available' | 'Bound' | 'Failed';
    instance?: string;
    hostName?: string;
    device?: string;
    ip?: string;
    mac?: string;
    networkUID?: string;
    observedGeneration?: number;
    conditions?: Condition[];
  };
}

export interface InstanceNetwork {
  network: string;
  ip?: string;
  port?: string;
  securityGroups?: string[];
}

export interface InstanceAddress {
  network: string;
  port: string;
  ip?: string;
  mac?: string;
}

export interface InstanceObject extends KObject {
  spec: { networks?: InstanceNetwork[] };
  status?: { hostName?: string; phase?: string; addresses?: InstanceAddress[]; conditions?: Condition[] };
}

export interface ClaimObject extends KObject {
  spec: { type: 'IP' | 'MAC' | 'VNI'; address: string; network: string; networkUID?: string; owner?: string };
}

export interface SecurityGroupRuleSpec {
  direction: 'ingress' | 'egress';
  protocol?: 'tcp' | 'udp' | 'icmp' | 'any';
  portRange?: { min: number; max?: number };
  remoteCIDR?: string;
  remoteGroup?: string;
}

export interface SecurityGroupObject extends KObject {
  spec?: { rules?: SecurityGroupRuleSpec[] };
  status?: { ruleCount?: number; ports?: number; observedGeneration?: number; conditions?: Condition[] };
}

export interface FloatingIPObject extends KObject {
  spec: { network: string; ip?: string; port?: string; instance?: string };
  status?: {
    phase?: 'Pending' | 'Available' | 'Bound' | 'Failed';
    ip?: string;
    port?: string;
    fixedIP?: string;
    hostName?: string;
    observedGeneration?: number;
    conditions?: Condition[];
  };
}

export interface RouterObject extends KObject {
  spec: { externalNetwork: string; networks?: string[] };
  status?: { phase?: string; externalIP?: string; observedGeneration?: number; conditions?: Condition[] };
}

export function ownerRef(obj: KObject, controller = true): OwnerReference {
  return { apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata.name!, uid: obj.metadata.uid!, controller, blockOwnerDeletion: true };
}

/** The port name kova gives the i-th NIC of an instance. */
export function instancePortName(instance: string, index: number): string {
  return `${instance}-${index}`;
}

/** Port name used by an instance's i-th network entry (a named port, or the generated one). */
export function portNameFor(instance: string, index: number, entry: InstanceNetwork): string {
  return entry.port ?? instancePortName(instance, index);
}
