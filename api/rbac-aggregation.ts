// What a ClusterRole with an aggregationRule should hold: the rules of every other ClusterRole
// its selectors match, deduplicated, in a stable order (roles by name, rules as they appear).
// Pure, so the API server's bootstrap and the clusterrole-aggregation controller agree.
import type { KObject } from './types.js';

/** rbac.authorization.k8s.io/v1 PolicyRule. */
export interface PolicyRule {
  verbs: string[];
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

/** metav1.LabelSelector. */
export interface LabelSelectorSpec {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: string; values?: string[] }>;
}

/** metav1.LabelSelectorAsSelector semantics: an empty selector matches everything; an unknown operator nothing. */
export function selectorMatches(sel: LabelSelectorSpec, labels: Readonly<Record<string, string>> | undefined): boolean {
  const l = labels ?? {};
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (l[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(l, e.key);
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In': if (!has || !values.includes(l[e.key]!)) return false; break;
      case 'NotIn': if (has && values.includes(l[e.key]!)) return false; break;
      case 'Exists': if (!has) return false; break;
      case 'DoesNotExist': if (has) return false; break;
      default: return false;
    }
  }
  return true;
}

export function aggregationSelectors(role: KObject): LabelSelectorSpec[] | undefined {
  const rule = role.aggregationRule as { clusterRoleSelectors?: LabelSelectorSpec[] } | undefined;
  return rule && Array.isArray(rule.clusterRoleSelectors) ? rule.clusterRoleSelectors : undefined;
}

/** A rule in a canonical form: only the fields that mean something, empty lists dropped. */
export function normalizeRule(r: PolicyRule): PolicyRule {
  const out: PolicyRule = { verbs: [...(r.verbs ?? [])] };
  if (r.apiGroups?.length) out.apiGroups = [...r.apiGroups];
  if (r.resources?.length) out.resources = [...r.resources];
  if (r.resourceNames?.length) out.resourceNames = [...r.resourceNames];
  if (r.nonResourceURLs?.length) out.nonResourceURLs = [...r.nonResourceURLs];
  return out;
}

export const ruleKey = (r: PolicyRule): string => JSON.stringify(normalizeRule(r));

/** Appends the rules of `add` that `into` lacks (by value), keeping the order of both. */
export function unionRules(into: readonly PolicyRule[], add: readonly PolicyRule[]): PolicyRule[] {
  const seen = new Set(into.map(ruleKey));
  const out = [...into];
  for (const r of add) {
    const k = ruleKey(r);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(normalizeRule(r));
  }
  return out;
}

/**
 * The rules `role` aggregates from `all` ClusterRoles, or undefined when it has no
 * aggregationRule. The role never aggregates itself: its own stale rules would stick.
 */
export function aggregatedRules(role: KObject, all: readonly KObject[]): PolicyRule[] | undefined {
  const selectors = aggregationSelectors(role);
  if (!selectors) return undefined;
  const name = role.metadata.name;
  const matched = all
    .filter((c) => c.metadata.name !== name && selectors.some((s) => selectorMatches(s, c.metadata.labels)))
    .sort((a, b) => (a.metadata.name! < b.metadata.name! ? -1 : a.metadata.name! > b.metadata.name! ? 1 : 0));
  let rules: PolicyRule[] = [];
  for (const c of matched) rules = unionRules(rules, (c.rules as PolicyRule[] | undefined) ?? []);
  return rules;
}

export function sameRules(a: readonly PolicyRule[] | undefined, b: readonly PolicyRule[] | undefined): boolean {
  const x = (a ?? []).map(ruleKey);
  const y = (b ?? []).map(ruleKey);
  return x.length === y.length && x.every((k, i) => k === y[i]);
}
