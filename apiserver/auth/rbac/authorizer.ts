// The RBAC authorizer (plugin/pkg/auth/authorizer/rbac) on top of RbacCache: system:masters
// may do anything (kube-apiserver's privileged-group authorizer in front of RBAC); otherwise
// the ClusterRoleBindings naming the user or one of their groups, then the RoleBindings of the
// request's namespace, are looked up by name in the cache's indexes and their roles' rules
// matched. Synchronous: no I/O on the request path.
import type { Authorizer, Decision, PolicyRule, RequestAttributes, RuleResolver, UserInfo } from '../types.js';
import { SYSTEM_MASTERS } from '../types.js';
import type { CachedBinding, RbacState } from './cache.js';
import { appliesTo, ruleAllows, type RoleRef } from './rules.js';

export const NOT_READY_REASON = 'RBAC: the RBAC cache is not ready (the first list of roles and bindings has not completed)';

/** What resolving a role reference gave: its rules, or the error upstream's listers report. */
export type RoleRules = { rules: PolicyRule[]; error?: undefined } | { rules?: undefined; error: string };

/** GetRoleReferenceRules against one snapshot; the error strings are those of kube's listers. */
export function roleRefRules(state: RbacState, ref: RoleRef, bindingNamespace: string): RoleRules {
  switch (ref.kind) {
    case 'Role': {
      const rules = state.role(bindingNamespace, ref.name);
      return rules ? { rules } : { error: `role.rbac.authorization.k8s.io ${JSON.stringify(ref.name)} not found` };
    }
    case 'ClusterRole': {
      const rules = state.clusterRoles.get(ref.name);
      return rules ? { rules } : { error: `clusterrole.rbac.authorization.k8s.io ${JSON.stringify(ref.name)} not found` };
    }
    default:
      return { error: `unsupported role reference kind: ${JSON.stringify(ref.kind)}` };
  }
}

/** `ClusterRoleBinding "b" of ClusterRole "r" to User "alice"` / `RoleBinding "b/ns" of Role "r" to Group "g"`. */
export function describeSource(b: CachedBinding, user: UserInfo): string {
  const i = appliesTo(user, b.subjects, b.namespace);
  const s = b.subjects[i < 0 ? 0 : i];
  let subject = '';
  if (s) {
    const name = s.kind === 'ServiceAccount' ? `${s.name}/${s.namespace || b.namespace}` : s.name;
    subject = `${s.kind} ${JSON.stringify(name)}`;
  }
  const name = b.kind === 'RoleBinding' ? `${b.name}/${b.namespace}` : b.name;
  return `${b.kind} ${JSON.stringify(name)} of ${b.roleRef.kind} ${JSON.stringify(b.roleRef.name)} to ${subject}`;
}

/**
 * Calls `visit` for every binding that applies to the user — cluster-wide ones, then (with a
 * namespace) those of the namespace — in index order: user name first, then each group. A
 * binding naming the user twice (by name and by group) may be visited twice; callers only
 * look for a first match or collect sets. `visit` returning false stops the walk.
 */
export function visitBindings(state: RbacState, user: UserInfo, namespace: string, visit: (b: CachedBinding) => boolean): void {
  if (!walk(state.clusterByUser, state.clusterByGroup, user, visit)) return;
  if (!namespace) return;
  const users = state.nsByUser.get(namespace);
  const groups = state.nsByGroup.get(namespace);
  if (users && groups) walk(users, groups, user, visit);
}

function walk(users: Map<string, Set<CachedBinding>>, groups: Map<string, Set<CachedBinding>>, user: UserInfo, visit: (b: CachedBinding) => boolean): boolean {
  const mine = users.get(user.name);
  if (mine) for (const b of mine) if (!visit(b)) return false;
  for (const g of user.groups) {
    const set = groups.get(g);
    if (set) for (const b of set) if (!visit(b)) return false;
  }
  return true;
}

/** Where the authorizer reads RBAC objects: an RbacCache, or a fixed snapshot in tests. */
export interface RbacSource {
  readonly ready: boolean;
  readonly state: RbacState;
}

export class RbacAuthorizer implements Authorizer, RuleResolver {
  /** Work done by authorize(), for tests that check it stays a lookup: bindings looked at, rules matched. */
  readonly stats = { bindingsVisited: 0, rulesEvaluated: 0 };

  constructor(readonly cache: RbacSource) {}

  authorize(a: RequestAttributes): Decision {
    const user = a.user;
    if (user.groups.includes(SYSTEM_MASTERS)) return { allowed: true, reason: '' };
    if (!this.cache.ready) return { allowed: false, reason: NOT_READY_REASON };
    const state = this.cache.state;
    const found: { by?: CachedBinding; errors?: string[] } = {};
    visitBindings(state, user, a.namespace, (b) => {
      this.stats.bindingsVisited++;
      const r = roleRefRules(state, b.roleRef, b.namespace);
      if (r.error !== undefined) {
        const errors = (found.errors ??= []);
        if (!errors.includes(r.error)) errors.push(r.error);
        return true;
      }
      for (const rule of r.rules) {
        this.stats.rulesEvaluated++;
        if (ruleAllows(a, rule)) {
          found.by = b;
          return false;
        }
      }
      return true;
    });
    if (found.by) return { allowed: true, reason: `RBAC: allowed by ${describeSource(found.by, user)}` };
    // Upstream's denial says nothing more unless some binding's role could not be resolved.
    return { allowed: false, reason: found.errors ? `RBAC: ${aggregate(found.errors)}` : '' };
  }

  /** Every rule the user holds in `namespace` (cluster-wide ones included); '' for cluster-wide only. */
  rulesFor(user: UserInfo, namespace: string): { rules: PolicyRule[]; incomplete: boolean; errors: string[] } {
    const state = this.cache.state;
    const rules: PolicyRule[] = [];
    const errors: string[] = [];
    const seen = new Set<CachedBinding>();
    visitBindings(state, user, namespace, (b) => {
      if (seen.has(b)) return true;
      seen.add(b);
      const r = roleRefRules(state, b.roleRef, b.namespace);
      if (r.error === undefined) rules.push(...r.rules);
      else if (!errors.includes(r.error)) errors.push(r.error);
      return true;
    });
    // As upstream's RBAC RulesFor: roles that cannot be resolved are errors (SSRR's
    // evaluationError), not incompleteness; only a cache that has not listed yet is incomplete.
    if (!this.cache.ready) errors.push(NOT_READY_REASON.replace(/^RBAC: /, ''));
    return { rules, incomplete: !this.cache.ready, errors };
  }

  /** The rules of a role reference as a binding in `bindingNamespace` ('' for cluster-wide) would grant. */
  roleRefRules(ref: RoleRef, bindingNamespace: string): RoleRules {
    return roleRefRules(this.cache.state, ref, bindingNamespace);
  }
}

/** utilerrors.NewAggregate(...).Error(): one message as is, several as `[a, b]`. */
export function aggregate(errors: readonly string[]): string {
  return errors.length === 1 ? errors[0] : `[${errors.join(', ')}]`;
}
