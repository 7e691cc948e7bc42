// Condition list helpers with Kubernetes semantics (apimachinery meta.SetStatusCondition):
// at most one condition per type, lastTransitionTime changes only when the status does.
import type { Condition } from './types.js';
import { nowRFC3339 } from './types.js';

export type { Condition };

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** True when `conditions` already holds `want` (type, status, reason and message alike). */
export function hasCondition(conditions: readonly Condition[] | undefined, want: Omit<Condition, 'lastTransitionTime'>): boolean {
  const c = findCondition(conditions, want.type);
  return !!c && c.status === want.status && (c.reason ?? '') === (want.reason ?? '') && (c.message ?? '') === (want.message ?? '')
    && (want.observedGeneration === undefined || c.observedGeneration === want.observedGeneration);
}

/**
 * Returns a new list with `next` set: an existing condition of the same type keeps its
 * lastTransitionTime unless its status changes; order is preserved, new types are appended.
 */
export function setCondition(conditions: readonly Condition[] | undefined, next: Omit<Condition, 'lastTransitionTime'>, now: Date = new Date()): Condition[] {
  const list = [...(conditions ?? [])];
  const i = list.findIndex((c) => c.type === next.type);
  const prev = i >= 0 ? list[i] : undefined;
  const lastTransitionTime = prev && prev.status === next.status && prev.lastTransitionTime ? prev.lastTransitionTime : nowRFC3339(now);
  const cond: Condition = { ...next, lastTransitionTime };
  if (i >= 0) list[i] = cond;
  else list.push(cond);
  return list;
}

export function removeCondition(conditions: readonly Condition[] | undefined, type: string): Condition[] {
  return (conditions ?? []).filter((c) => c.type !== type);
}
