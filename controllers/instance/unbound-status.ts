// What the instance controller writes on an instance that is not (yet) bound to a host: the
// initial phase (when the API server did not set it), observedGeneration, and the Validated
// condition once a Flavor or Image is missing (and until it is valid again).
// Once bound, the node agent owns phase and observedGeneration; the scheduler owns Scheduled.
import type { Condition } from '../../api/conditions.js';
import { hasCondition, setCondition } from '../../api/conditions.js';
import type { ImageResolution } from '../../api/image-visibility.js';
import type { Instance, InstanceSpec } from '../../api/kinds/index.js';

/** The references validation checks. */
export type InstanceSpecRefs = Partial<Pick<InstanceSpec, 'flavor' | 'image' | 'resources'>>;

/** What the unbound status is computed from. */
export type UnboundInstance = Pick<Instance, 'metadata' | 'status'>;

/** Lookups the validation needs, answered from caches. */
export interface References {
  flavorExists(name: string): boolean;
  /** The Image an instance in `namespace` boots from when it names `name` (api/image-visibility.ts), or why none. */
  image(namespace: string, name: string): ImageResolution;
}

export type ValidatedCondition = Omit<Condition, 'lastTransitionTime'>;

export function validatedCondition(namespace: string, spec: InstanceSpecRefs | undefined, refs: References, generation?: number): ValidatedCondition {
  const problems: string[] = [];
  let reason = 'Valid';
  if (spec?.flavor && !refs.flavorExists(spec.flavor)) {
    problems.push(`flavor "${spec.flavor}" not found`);
    reason = 'FlavorNotFound';
  }
  const img = spec?.image ? refs.image(namespace, spec.image) : undefined;
  if (img && 'reason' in img) {
    problems.push(img.message);
    if (reason === 'Valid') reason = img.reason;
  }
  if (!problems.length) return { type: 'Validated', status: 'True', reason, message: 'flavor and image exist', observedGeneration: generation };
  return { type: 'Validated', status: 'False', reason, message: problems.join('; '), observedGeneration: generation };
}

/**
 * Edits `inst.status` in place toward the desired unbound status; returns false when there is
 * nothing to change (or the instance is bound or being deleted: not this controller's business).
 */
export function applyUnboundStatus(inst: UnboundInstance, cond: ValidatedCondition, now: Date = new Date()): boolean {
  if (inst.status?.hostName || inst.metadata.deletionTimestamp) return false;
  const st = inst.status ?? {};
  const gen = inst.metadata.generation;
  const phaseOk = !!st.phase;
  const genOk = gen === undefined || st.observedGeneration === gen;
  // A valid instance needs no Validated condition (like a pod: silence means fine); it is only
  // written to report a problem, and then kept current. This saves one status write per
  // instance on the create path.
  const hasValidated = !!st.conditions?.some((c) => c.type === 'Validated');
  const condOk = (cond.status === 'True' && !hasValidated) || hasCondition(st.conditions, cond);
  if (phaseOk && condOk && (genOk || !hasValidated)) return false;
  inst.status = st;
  if (!phaseOk) st.phase = 'Pending';
  if (!genOk) st.observedGeneration = gen;
  if (!condOk || hasValidated) st.conditions = setCondition(st.conditions, cond, now);
  return true;
}
