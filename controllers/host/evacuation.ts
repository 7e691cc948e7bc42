// Evacuation of a fenced, unreachable host (after Kubernetes' node.kubernetes.io/out-of-service
// taint): the operator has made sure the host is off, so its domains are known gone. Instances
// being deleted may drop their protection finalizer; the others are unbound so the scheduler
// places them again.
import type { Instance, InstanceStatus } from '../../api/kinds/index.js';
import { removeCondition, setCondition } from '../../api/conditions.js';
import { INSTANCE_FINALIZER } from '../../api/types.js';

/** What evacuation reads of an instance. */
export type InstanceLike = Pick<Instance, 'metadata' | 'status'>;

export type EvacuationAction = 'releaseFinalizer' | 'unbind' | 'none';

/** What evacuation does with one instance that claims to be on `hostName`. */
export function evacuationAction(inst: InstanceLike, hostName: string): EvacuationAction {
  if (inst.status?.hostName !== hostName) return 'none';
  if (inst.metadata.deletionTimestamp) {
    return inst.metadata.finalizers?.includes(INSTANCE_FINALIZER) ? 'releaseFinalizer' : 'none';
  }
  return 'unbind';
}

export function evacuatedMessage(hostName: string): string {
  return `evacuated from fenced host ${hostName}`;
}

/**
 * The status of an instance unbound from `hostName`: no host, no domain, phase Pending,
 * Scheduled=False/Evacuated, Ready=False (the guest is gone), HostReachable dropped (no host).
 */
export function unboundStatus(status: InstanceStatus | undefined, hostName: string, generation: number | undefined, now: Date = new Date()): InstanceStatus {
  const next: InstanceStatus = { ...(status ?? {}) };
  delete next.hostName;
  delete next.domainUUID;
  delete next.powerState;
  delete next.startedAt;
  next.phase = 'Pending';
  const message = evacuatedMessage(hostName);
  let conditions = removeCondition(status?.conditions, 'HostReachable');
  conditions = setCondition(conditions, { type: 'Scheduled', status: 'False', reason: 'Evacuated', message, observedGeneration: generation }, now);
  conditions = setCondition(conditions, { type: 'Ready', status: 'False', reason: 'Evacuated', message, observedGeneration: generation }, now);
  next.conditions = conditions;
  return next;
}
