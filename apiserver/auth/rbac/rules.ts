// RBAC's rule semantics, as Kubernetes defines them (pkg/apis/rbac/v1 evaluation helpers,
// plugin/pkg/auth/authorizer/rbac RuleAllows, component-helpers' Covers, pkg/registry/rbac
// validation's CompactRules): which requests a PolicyRule allows, whether one set of rules
// grants everything another grants, and which subjects a binding names.
import type { PolicyRule, RequestAttributes, UserInfo } from '../types.js';

export const RBAC_GROUP = 'rbac.authorization.k8s.io';
/** The wildcard of verbs, apiGroups, resources and nonResourceURLs. */
export const ALL = '*';

/** rbacv1.Subject. apiGroup is not looked at when matching, as upstream. */
export interface Subject {
  kind: string;
  name: string;
  apiGroup?: string;
  namespace?: string;
}

/** rbacv1.RoleRef. */
export interface RoleRef {
  apiGroup: string;
  kind: string;
  name: string;
}

export function verbMatches(rule: PolicyRule, verb: string): boolean {
  for (const v of rule.verbs) if (v === ALL || v === verb) return true;
  return false;
}

export function apiGroupMatches(rule: PolicyRule, group: string): boolean {
  for (const g of rule.apiGroups ?? []) if (g === ALL || g === group) return true;
  return false;
}

/**
 * `combined` is `resource` or `resource/subresource`. A rule resource matches when it is `*`,
 * equal to `combined`, or `*\/sub` for the request's subresource. `instances/*` is no wildcard
 * upstream (it only matches a subresource literally named `*`), nor here.
 */
export function resourceMatches(rule: PolicyRule, combined: string, subresource: string): boolean {
  for (const r of rule.resources ?? []) {
    if (r === ALL || r === combined) return true;
    if (subresource && r.length === subresource.length + 2 && r.startsWith('*/') && r.endsWith(subresource)) return true;
  }
  return false;
}

/** No resourceNames: any name. Otherwise the request must name one of them (a create or list names none). */
export function resourceNameMatches(rule: PolicyRule, name: string): boolean {
  const names = rule.resourceNames;
  if (!names || names.length === 0) return true;
  for (const n of names) if (n === name) return true;
  return false;
}

/** `*` matches every path; `/x/*` every path under `/x/` (not `/x` itself); anything else exactly. */
export function nonResourceURLMatches(rule: PolicyRule, path: string): boolean {
  for (const u of rule.nonResourceURLs ?? []) {
    if (u === ALL || u === path) return true;
    if (u.endsWith('*') && path.startsWith(trimStars(u))) return true;
  }
  return false;
}

function trimStars(s: string): string {
  let end = s.length;
  while (end > 0 && s.charCodeAt(end - 1) === 42 /* '*' */) end--;
  return s.slice(0, end);
}

/** Whether one rule allows a request (RBAC's RuleAllows). */
export function ruleAllows(a: RequestAttributes, rule: PolicyRule): boolean {
  if (a.resourceRequest) {
    const combined = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
    return verbMatches(rule, a.verb) && apiGroupMatches(rule, a.apiGroup) && resourceMatches(rule, combined, a.subresource) && resourceNameMatches(rule, a.name);
  }
  return verbMatches(rule, a.verb) && nonResourceURLMatches(rule, a.path);
}

export function rulesAllow(a: RequestAttributes, rules: readonly PolicyRule[]): boolean {
  for (const r of rules) if (ruleAllows(a, r)) return true;
  return false;
}

/** The user name of a service account (serviceaccount.MakeUsername). */
export const serviceAccountUser = (namespace: string, name: string) => `system:serviceaccount:${namespace}:${name}`;

/**
 * Whether a binding subject names this user. A ServiceAccount subject without a namespace
 * means one in the binding's namespace (`bindingNamespace`, '' for a ClusterRoleBinding, where
 * it then matches nobody).
 */
export function appliesToUser(user: UserInfo, s: Subject, bindingNamespace: string): boolean {
  switch (s.kind) {
    case 'User':
      return user.name === s.name;
    case 'Group':
      return user.groups.includes(s.name);
    case 'ServiceAccount': {
      const ns = s.namespace || bindingNamespace;
      return !!ns && user.name === serviceAccountUser(ns, s.name);
    }
    default:
      return false;
  }
}

/** The index of the first subject that names the user, or -1. */
export function appliesTo(user: UserInfo, subjects: readonly Subject[], bindingNamespace: string): number {
  for (let i = 0; i < subjects.length; i++) if (appliesToUser(user, subjects[i], bindingNamespace)) return i;
  return -1;
}

// ---------------------------------------------------------------------------------------------
// Covers: does a set of owner rules grant everything a set of servant rules grants? Used to
// stop users from creating roles or bindings that give more than they hold.

/** Splits a rule into rules of one group, resource, verb and (if any) resource name each; URLs into one URL and verb each. */
export function breakdownRule(rule: PolicyRule): PolicyRule[] {
  const out: PolicyRule[] = [];
  for (const group of rule.apiGroups ?? []) {
    for (const resource of rule.resources ?? []) {
      for (const verb of rule.verbs) {
        const names = rule.resourceNames ?? [];
        if (names.length) {
          for (const n of names) out.push({ apiGroups: [group], resources: [resource], verbs: [verb], resourceNames: [n] });
        } else {
          out.push({ apiGroups: [group], resources: [resource], verbs: [verb] });
        }
      }
    }
  }
  for (const url of rule.nonResourceURLs ?? []) {
    for (const verb of rule.verbs) out.push({ nonResourceURLs: [url], verbs: [verb] });
  }
  return out;
}

const has = (set: readonly string[] | undefined, e: string) => !!set && set.includes(e);
const hasAll = (set: readonly string[] | undefined, wanted: readonly string[] | undefined) => (wanted ?? []).every((w) => has(set, w));

/** Owner resources cover wanted ones: `*`, exact, or `*\/sub` covering `x/sub`. */
function resourcesCover(owner: readonly string[] | undefined, wanted: readonly string[] | undefined): boolean {
  if (has(owner, ALL) || hasAll(owner, wanted)) return true;
  for (const r of wanted ?? []) {
    if (has(owner, r)) continue;
    const slash = r.indexOf('/');
    if (slash < 0) return false;
    if (!has(owner, `*/${r.slice(slash + 1)}`)) return false;
  }
  return true;
}

/** An owner URL covers a path: equal, or a `*`-suffixed prefix of it. */
export function nonResourceURLCovers(owner: string, path: string): boolean {
  if (owner === path) return true;
  return owner.endsWith('*') && path.startsWith(trimStars(owner));
}

function urlsCover(owner: readonly string[] | undefined, wanted: readonly string[] | undefined): boolean {
  return (wanted ?? []).every((p) => (owner ?? []).some((o) => nonResourceURLCovers(o, p)));
}

/** Whether one owner rule covers a broken-down rule (at most one verb, resource, name). */
function ruleCovers(owner: PolicyRule, sub: PolicyRule): boolean {
  const verbs = has(owner.verbs, ALL) || hasAll(owner.verbs, sub.verbs);
  const groups = has(owner.apiGroups, ALL) || hasAll(owner.apiGroups, sub.apiGroups);
  const resources = resourcesCover(owner.resources, sub.resources);
  const urls = urlsCover(owner.nonResourceURLs, sub.nonResourceURLs);
  const ownerNames = owner.resourceNames ?? [];
  const subNames = sub.resourceNames ?? [];
  const names = subNames.length === 0 ? ownerNames.length === 0 : ownerNames.length === 0 || hasAll(ownerNames, subNames);
  return verbs && groups && resources && names && urls;
}

/** Whether `owner` grants all `servant` grants, and the broken-down rules it does not. */
export function covers(owner: readonly PolicyRule[], servant: readonly PolicyRule[]): { covered: boolean; missing: PolicyRule[] } {
  const missing: PolicyRule[] = [];
  for (const rule of servant) {
    for (const sub of breakdownRule(rule)) {
      if (!owner.some((o) => ruleCovers(o, sub))) missing.push(sub);
    }
  }
  return { covered: missing.length === 0, missing };
}

/**
 * Merges rules of one apiGroup, one resource and at most one resource name that differ only
 * in verbs (CompactRules), so a message lists `Verbs:["get" "list"]` once, not one line each.
 */
export function compactRules(rules: readonly PolicyRule[]): PolicyRule[] {
  const out: PolicyRule[] = [];
  const simple = new Map<string, PolicyRule>();
  for (const r of rules) {
    const key = simpleKey(r);
    if (key === undefined) {
      out.push(r);
      continue;
    }
    const seen = simple.get(key);
    if (seen) seen.verbs = [...seen.verbs, ...r.verbs];
    else simple.set(key, { ...r, verbs: [...r.verbs] });
  }
  return [...out, ...simple.values()];
}

/** The merge key of a "simple" rule: one group, one resource, at most one name, no URLs. */
function simpleKey(r: PolicyRule): string | undefined {
  if ((r.nonResourceURLs ?? []).length) return undefined;
  const names = r.resourceNames ?? [];
  if (names.length > 1) return undefined;
  if ((r.apiGroups ?? []).length !== 1 || (r.resources ?? []).length !== 1) return undefined;
  return JSON.stringify([r.apiGroups![0], r.resources![0], names.length ? names[0] : null]);
}

/** A string list as Go prints `%q` of a []string: `["a" "b"]`. */
export function goQuotedList(items: readonly string[]): string {
  return `[${items.map((s) => JSON.stringify(s)).join(' ')}]`;
}

/** rbacv1helpers.CompactString: `{APIGroups:["kova.dev"], Resources:["instances"], Verbs:["get"]}`. */
export function compactString(r: PolicyRule): string {
  const parts: string[] = [];
  if (r.apiGroups?.length) parts.push(`APIGroups:${goQuotedList(r.apiGroups)}`);
  if (r.resources?.length) parts.push(`Resources:${goQuotedList(r.resources)}`);
  if (r.nonResourceURLs?.length) parts.push(`NonResourceURLs:${goQuotedList(r.nonResourceURLs)}`);
  if (r.resourceNames?.length) parts.push(`ResourceNames:${goQuotedList(r.resourceNames)}`);
  if (r.verbs?.length) parts.push(`Verbs:${goQuotedList(r.verbs)}`);
  return `{${parts.join(', ')}}`;
}

/** Reads a PolicyRule out of a stored object's `rules[i]`, tolerating missing lists. */
export function toPolicyRule(v: unknown): PolicyRule | undefined {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  const strs = (x: unknown): string[] | undefined => (Array.isArray(x) ? x.filter((s): s is string => typeof s === 'string') : undefined);
  const rule: PolicyRule = { verbs: strs(o.verbs) ?? [] };
  const groups = strs(o.apiGroups);
  const resources = strs(o.resources);
  const names = strs(o.resourceNames);
  const urls = strs(o.nonResourceURLs);
  if (groups?.length) rule.apiGroups = groups;
  if (resources?.length) rule.resources = resources;
  if (names?.length) rule.resourceNames = names;
  if (urls?.length) rule.nonResourceURLs = urls;
  return rule;
}

export function toPolicyRules(v: unknown): PolicyRule[] {
  if (!Array.isArray(v)) return [];
  const out: PolicyRule[] = [];
  for (const r of v) {
    const rule = toPolicyRule(r);
    if (rule) out.push(rule);
  }
  return out;
}
