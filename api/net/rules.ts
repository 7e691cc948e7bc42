// Conventions the network controllers and the node agents' network side share: where
// cluster-wide claims live, finalizer and condition names, the default security group, and how
// instance ports are named and owned.
import type { InstanceNetwork } from '../kinds/instance.js';
import type { KObject, OwnerReference } from '../types.js';

/** Namespace of cluster-wide claims (VNIs): they are unique across projects. */
export const SYSTEM_NAMESPACE = 'kova-system';
/** On Networks holding a VNI claim: released before the Network goes. */
export const NETWORK_FINALIZER = 'kova.dev/network-cleanup';
export const DEFAULT_SECURITY_GROUP = 'default';
/** Per-host condition types written by node agents on Networks: `host.kova.dev/<host>`. */
export const HOST_CONDITION_PREFIX = 'host.kova.dev/';

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
