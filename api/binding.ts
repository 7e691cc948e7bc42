// The Instance binding subresource's contract, shared by the API server that answers it, the
// fake client that imitates it and the scheduler that acts on it. A refused binding is a
// Kubernetes Status: 409 Conflict when the state of the instance, host or flavor prevents it
// (details.causes say which, one cause per reason), 404 when the instance or host does not
// exist (details.kind says which), 422 when the Binding body itself is invalid. Callers switch
// on the cause reasons, never on the message text. planBinding is the decision itself, pure:
// the server runs it under compare-and-swap, the fake client in memory.
import { setCondition } from './conditions.js';
import type { Flavor, Host, HostAllocation, Instance } from './kinds/index.js';
import { formatQuantity } from './quantity.js';
import { formatResources, instanceRequest, parseLenient, subtract, sumQuantities } from './resources.js';
import type { Resources } from './resources.js';
import { INSTANCE_FINALIZER, qualifiedResource } from './types.js';

/** The reasons a 409 from the binding subresource carries in details.causes. */
export const BindingCauses = Object.freeze({
  /** The host lacks free vCPUs / memory / disk for the request (one cause per dimension). */
  InsufficientVCPUs: 'InsufficientVCPUs',
  InsufficientMemory: 'InsufficientMemory',
  InsufficientDisk: 'InsufficientDisk',
  /** The host reports no allocatable resources yet (its host controller has not seen it). */
  NoAllocatable: 'NoAllocatable',
  /** The instance is already bound to another host. */
  AlreadyBound: 'AlreadyBound',
  /** The instance is being deleted. */
  InstanceTerminating: 'InstanceTerminating',
  /** The host is fenced (spec.fenced): it takes no instances. */
  HostFenced: 'HostFenced',
  /** The host's Ready condition is False. */
  HostNotReady: 'HostNotReady',
  /** The instance's Flavor does not exist. */
  FlavorNotFound: 'FlavorNotFound',
  /** The instance's request cannot be charged (unparseable, negative or infinite amounts). */
  InvalidResources: 'InvalidResources',
  /** 404 (derived from details.kind by bindingFailure): the host, or the instance, does not exist. */
  HostNotFound: 'HostNotFound',
  InstanceNotFound: 'InstanceNotFound',
} as const);

export type BindingCauseReason = (typeof BindingCauses)[keyof typeof BindingCauses];

export interface BindingCause {
  reason: BindingCauseReason;
  message: string;
  /** The field the cause is about, e.g. spec.resources.memory, status.hostName, target.name. */
  field?: string;
}

const KNOWN = new Set<string>(Object.values(BindingCauses));

/** The causes of a failed binding, from the Status the API server answered (code and body). */
export function bindingFailure(code: number, status: unknown): BindingCause[] {
  const s = (status && typeof status === 'object' ? status : {}) as { message?: unknown; details?: { kind?: unknown; causes?: unknown } };
  const message = typeof s.message === 'string' ? s.message : '';
  if (code === 404) {
    // NotFound names the missing object's resource, as kube-apiserver does.
    if (s.details?.kind === 'hosts') return [{ reason: BindingCauses.HostNotFound, message, field: 'target.name' }];
    if (s.details?.kind === 'instances') return [{ reason: BindingCauses.InstanceNotFound, message }];
    return [];
  }
  if (code !== 409 || !Array.isArray(s.details?.causes)) return [];
  const out: BindingCause[] = [];
  for (const c of s.details.causes as Array<{ reason?: unknown; message?: unknown; field?: unknown }>) {
    if (typeof c?.reason !== 'string' || !KNOWN.has(c.reason)) continue;
    out.push({
      reason: c.reason as BindingCauseReason,
      message: typeof c.message === 'string' ? c.message : '',
      ...(typeof c.field === 'string' ? { field: c.field } : {}),
    });
  }
  return out;
}

/** Why a binding is refused: a 409 Conflict with this message and these causes. */
export interface BindingRefusal {
  message: string;
  causes: BindingCause[];
}

/** What binding an instance to a host does: nothing (bound there already), a refusal, or the two objects to write. */
export type BindingPlan = { alreadyBound: true } | { refused: BindingRefusal } | { instance: Instance; host: Host };

const INSTANCE_RES = { group: 'kova.dev', plural: 'instances', kind: 'Instance' };

function refusal(name: string, why: string, causes: BindingCause[]): { refused: BindingRefusal } {
  return { refused: { message: `Operation cannot be fulfilled on ${qualifiedResource(INSTANCE_RES)} "${name}": ${why}`, causes } };
}

/** The resources an Instance asks for (its Flavor's, or spec.resources), counted as the scheduler counts them. */
function requestOf(instance: Instance, flavor: Flavor | undefined): Resources | { refused: BindingRefusal } {
  const name = instance.metadata.name ?? '';
  const r = instanceRequest(instance, () => flavor);
  if ('flavorNotFound' in r) {
    const why = `flavor "${r.flavorNotFound}" not found`;
    return refusal(name, why, [{ reason: BindingCauses.FlavorNotFound, message: why, field: 'spec.flavor' }]);
  }
  if ('invalid' in r) {
    return refusal(name, `cannot size the instance: ${r.invalid}`, [{ reason: BindingCauses.InvalidResources, message: r.invalid, field: flavor ? 'spec.flavor' : 'spec.resources' }]);
  }
  // Admission refuses negative and absurd sizes; an object stored before it did (or written
  // around it) must still never be charged: a negative charge frees room that is not there.
  const shown: Array<[string, number, string]> = [
    ['vcpus', r.req.vcpus, String(r.req.vcpus)],
    ['memory', r.req.memoryBytes, Number.isFinite(r.req.memoryBytes) ? formatQuantity(r.req.memoryBytes) : String(r.req.memoryBytes)],
    ['disk', r.req.diskBytes, Number.isFinite(r.req.diskBytes) ? formatQuantity(r.req.diskBytes) : String(r.req.diskBytes)],
  ];
  const bad = shown.filter(([, n]) => !(n >= 0) || !Number.isFinite(n));
  if (bad.length) {
    const src = flavor ? `flavor ${flavor.metadata.name}` : 'spec.resources';
    const why = `cannot size the instance: ${src} requests ${bad.map(([k, , q]) => `${k} ${q}`).join(', ')}; every request must be a finite amount of at least 0`;
    return refusal(name, why, bad.map(([k, , q]) => ({
      reason: BindingCauses.InvalidResources,
      message: `${src} requests ${k} ${q}; it must be a finite amount of at least 0`,
      field: flavor ? 'spec.flavor' : `spec.resources.${k}`,
    })));
  }
  return r.req;
}

/**
 * Why `req` does not fit on `host` given its allocations: the 409's message and one cause per
 * short dimension (vcpus, memory, disk), or undefined when it fits. The message keeps the form
 * "insufficient memory (requested 512Mi, free 256Mi) on host h1" for people; programs read the
 * causes. `flavor` names the Flavor the request came from (the causes' field).
 */
export function insufficiency(host: Host, allocs: readonly HostAllocation[], req: Resources, flavor?: string): BindingRefusal | undefined {
  const allocatable = host.status?.allocatable;
  if (!allocatable) {
    const why = 'the host reports no allocatable resources yet';
    return { message: `insufficient resources: ${why}`, causes: [{ reason: BindingCauses.NoAllocatable, message: why, field: 'target.name' }] };
  }
  const free = subtract(parseLenient(allocatable), sumQuantities(allocs));
  const short: Array<[BindingCauseReason, string, string]> = [];
  if (req.vcpus > free.vcpus) short.push([BindingCauses.InsufficientVCPUs, 'vcpus', `requested ${req.vcpus}, free ${free.vcpus}`]);
  if (req.memoryBytes > free.memoryBytes) short.push([BindingCauses.InsufficientMemory, 'memory', `requested ${formatQuantity(req.memoryBytes)}, free ${formatQuantity(Math.max(0, free.memoryBytes))}`]);
  if (req.diskBytes > free.diskBytes) short.push([BindingCauses.InsufficientDisk, 'disk', `requested ${formatQuantity(req.diskBytes)}, free ${formatQuantity(Math.max(0, free.diskBytes))}`]);
  if (!short.length) return undefined;
  const on = `on host ${host.metadata.name}`;
  return {
    message: `insufficient ${short.map(([, dim, amounts]) => `${dim} (${amounts})`).join(', ')} ${on}`,
    causes: short.map(([reason, dim, amounts]) => ({ reason, message: `insufficient ${dim} (${amounts}) ${on}`, field: flavor ? 'spec.flavor' : `spec.resources.${dim}` })),
  };
}

/**
 * Binding `instance` to `host`: the instance gets status.hostName, phase Provisioning (from
 * Pending/Scheduling), Scheduled=True and the protection finalizer; the host an allocation
 * charging the request and the new status.allocated. `flavor` is the instance's Flavor
 * (undefined when it names none or it does not exist). Pure: the objects given are not changed.
 */
export function planBinding(instance: Instance, host: Host, flavor: Flavor | undefined): BindingPlan {
  const name = instance.metadata.name ?? '';
  const target = host.metadata.name ?? '';
  const bound = instance.status?.hostName;
  if (bound === target) return { alreadyBound: true };
  if (bound) return refusal(name, `instance is already bound to host ${bound}`, [{ reason: BindingCauses.AlreadyBound, message: `bound to host ${bound}`, field: 'status.hostName' }]);
  if (instance.metadata.deletionTimestamp) {
    return refusal(name, 'instance is being deleted', [{ reason: BindingCauses.InstanceTerminating, message: 'the instance is being deleted', field: 'metadata.deletionTimestamp' }]);
  }
  if (host.spec?.fenced) return refusal(name, `host ${target} is fenced`, [{ reason: BindingCauses.HostFenced, message: `host ${target} is fenced`, field: 'target.name' }]);
  // A host its controller declared not ready (heartbeats stopped) would leave the instance
  // waiting for an agent that is gone; one without the condition yet is not refused.
  const ready = host.status?.conditions?.find((c) => c.type === 'Ready');
  if (ready?.status === 'False') {
    const why = `host ${target} is not ready${ready.reason ? ` (${ready.reason})` : ''}`;
    return refusal(name, why, [{ reason: BindingCauses.HostNotReady, message: why, field: 'target.name' }]);
  }
  const req = requestOf(instance, flavor);
  if ('refused' in req) return req;

  const hostStatus = host.status ?? {};
  const uid = instance.metadata.uid!;
  const allocs = (hostStatus.allocations ?? []).filter((a) => a.uid !== uid);
  const short = insufficiency(host, allocs, req, instance.spec?.flavor);
  if (short) return { refused: short };

  const entry: HostAllocation = { uid, instance: `${instance.metadata.namespace}/${name}`, ...formatResources(req) };
  const nextAllocs = [...allocs, entry];
  const st = instance.status ?? {};
  const finalizers = instance.metadata.finalizers ?? [];
  return {
    host: { ...host, status: { ...hostStatus, allocations: nextAllocs, allocated: formatResources(sumQuantities(nextAllocs)) } },
    instance: {
      ...instance,
      metadata: { ...instance.metadata, finalizers: finalizers.includes(INSTANCE_FINALIZER) ? finalizers : [...finalizers, INSTANCE_FINALIZER] },
      status: {
        ...st,
        hostName: target,
        phase: !st.phase || st.phase === 'Pending' || st.phase === 'Scheduling' ? 'Provisioning' : st.phase,
        conditions: setCondition(st.conditions, { type: 'Scheduled', status: 'True', reason: 'Scheduled', message: `bound to host ${target}` }),
      },
    },
  };
}
