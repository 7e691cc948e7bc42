// SecurityGroup: allow rules applied to ports; traffic no rule allows is dropped.
import type { KObject, ObjectMeta } from '../types.js';
import { resourceRef, type API_VERSION, type StatusBase } from './meta.js';

export const SECURITY_GROUPS = resourceRef('SecurityGroup', 'securitygroups', true);

export type RuleDirection = 'ingress' | 'egress';
export type RuleProtocol = 'tcp' | 'udp' | 'icmp' | 'any';

export interface SecurityGroupRule {
  direction: RuleDirection;
  /** Defaults to any. */
  protocol?: RuleProtocol;
  /** tcp and udp only; all ports when omitted. `max` defaults to `min`. */
  portRange?: { min: number; max?: number };
  /** Exclusive with remoteGroup; both omitted means everything. */
  remoteCIDR?: string;
  /** A SecurityGroup whose ports' addresses are the remote side. */
  remoteGroup?: string;
}

export interface SecurityGroupSpec {
  rules?: SecurityGroupRule[];
}

export interface SecurityGroupStatus extends StatusBase {
  ruleCount?: number;
  /** Ports the group is applied to. */
  ports?: number;
}

export interface SecurityGroup extends KObject {
  apiVersion: typeof API_VERSION;
  kind: 'SecurityGroup';
  metadata: ObjectMeta;
  spec: SecurityGroupSpec;
  status?: SecurityGroupStatus;
}
