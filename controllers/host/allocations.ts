// Which entries of Host.status.allocations are stale. An entry claims resources for one
// instance (by uid); it is stale once that instance is gone (404, or the name now belongs to a
// new object with another uid) or is bound to another host or to none (evacuated), unless a
// Migration is moving it here (both hosts hold its allocation until the migration ends).
import type { HostAllocation } from '../../api/kinds/index.js';

/** What is known about the instance an allocation names: undefined when it does not exist. */
export interface InstanceFacts {
  uid?: string;
  hostName?: string;
  /** The host a Migration is moving it to (status.migration.targetHost): charged too meanwhile. */
  migrationTarget?: string;
}

export function splitInstanceKey(key: string): { namespace: string; name: string } | undefined {
  const i = key.indexOf('/');
  if (i <= 0 || i === key.length - 1) return undefined;
  return { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

/** Why the allocation no longer holds, or undefined while it does. */
export function staleReason(alloc: HostAllocation, hostName: string, inst: InstanceFacts | undefined): string | undefined {
  if (!inst) return `instance ${alloc.instance} no longer exists`;
  if (inst.uid && inst.uid !== alloc.uid) return `instance ${alloc.instance} was recreated (uid ${inst.uid}, allocation for ${alloc.uid})`;
  if (inst.migrationTarget === hostName) return undefined;
  if (!inst.hostName) return `instance ${alloc.instance} is no longer bound to a host`;
  if (inst.hostName !== hostName) return `instance ${alloc.instance} is bound to host ${inst.hostName}`;
  return undefined;
}
