// The Instance binding subresource's failure contract, shared by the API server that answers
// it and the scheduler that acts on it. A refused binding is a Kubernetes Status: 409 Conflict
// when the state of the instance, host or flavor prevents it (details.causes say which, one
// cause per reason), 404 when the instance or host does not exist (details.kind says which),
// 422 when the Binding body itself is invalid. Callers switch on the cause reasons, never on
// the message text.

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
