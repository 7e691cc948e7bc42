// Privilege-escalation prevention on RBAC writes, as kube-apiserver's policy-based RBAC storage
// does (pkg/registry/rbac/*/policybased, escalation_check.go, validation.ConfirmNoEscalation):
// a Role or ClusterRole may only grant what its author already holds (in that namespace, or
// cluster-wide for a ClusterRole) unless they may `escalate` it; a binding may only bind a role
// whose rules its author holds unless they may `bind` that role (resourceNames apply). A
// binding's roleRef never changes. system:masters is exempt from the escalation checks.
import type { KObject } from '../../../api/types.js';
import { storageKey } from '../../keys.js';
import { jsonEqual } from '../../object-rules.js';
import type { ResourceStore } from '../../resource-store.js';
import { ApiError, invalid, notFound } from '../../status.js';
import type { Admission } from '../hooks.js';
import type { PolicyRule, RequestAttributes, UserInfo } from '../types.js';
import { SYSTEM_MASTERS } from '../types.js';
import { aggregate, type RbacAuthorizer } from './authorizer.js';
import { compactRules, compactString, covers, goQuotedList, RBAC_GROUP, toPolicyRules, type RoleRef } from './rules.js';

type RbacResource = 'roles' | 'clusterroles' | 'rolebindings' | 'clusterrolebindings';
const KINDS: Record<RbacResource, { kind: string; namespaced: boolean }> = {
  roles: { kind: 'Role', namespaced: true },
  clusterroles: { kind: 'ClusterRole', namespaced: false },
  rolebindings: { kind: 'RoleBinding', namespaced: true },
  clusterrolebindings: { kind: 'ClusterRoleBinding', namespaced: false },
};
const res = (plural: RbacResource) => ({ group: RBAC_GROUP, plural, kind: KINDS[plural].kind, namespaced: KINDS[plural].namespaced });

/** What only a cluster admin holds: setting an aggregationRule needs it, since aggregation can gather anything. */
export const FULL_AUTHORITY: PolicyRule[] = [
  { verbs: ['*'], apiGroups: ['*'], resources: ['*'] },
  { verbs: ['*'], nonResourceURLs: ['*'] },
];

const isMaster = (u: UserInfo) => u.groups.includes(SYSTEM_MASTERS);

/** apierrors.NewForbidden(rbac resource, name, err). */
function forbidden(plural: RbacResource, name: string, why: string): ApiError {
  return new ApiError(403, 'Forbidden', `${plural}.${RBAC_GROUP} ${JSON.stringify(name)} is forbidden: ${why}`, { name, group: RBAC_GROUP, kind: plural });
}

/**
 * ConfirmNoEscalation: undefined when the user's rules in `namespace` ('' = cluster-wide only)
 * cover `rules`, else upstream's message listing the missing permissions.
 */
export function escalationMessage(authz: RbacAuthorizer, user: UserInfo, namespace: string, rules: readonly PolicyRule[]): string | undefined {
  const owner = authz.rulesFor(user, namespace);
  const { covered, missing } = covers(owner.rules, rules);
  if (covered) return undefined;
  const lines = [...new Set(compactRules(missing).map(compactString))].sort();
  let msg = `user ${JSON.stringify(user.name)} (groups=${goQuotedList(user.groups)}) is attempting to grant RBAC permissions not currently held:\n${lines.join('\n')}`;
  if (owner.errors.length) msg += `; resolution errors: [${aggregate(owner.errors)}]`;
  return msg;
}

/** Whether only what the garbage collector changes (ownerReferences, finalizers) differs, besides server-set metadata. */
export function onlyGcFieldsChanged(next: KObject, old: KObject): boolean {
  const strip = (o: KObject) => {
    const meta: Record<string, unknown> = { ...o.metadata };
    for (const k of IGNORED_META) delete meta[k];
    return { ...o, metadata: meta };
  };
  return jsonEqual(strip(next), strip(old));
}

/** What the GC changes (IsOnlyMutatingGCFields), plus what the server sets whatever a client sends. */
const IGNORED_META = ['ownerReferences', 'finalizers', 'selfLink', 'resourceVersion', 'managedFields', 'uid', 'creationTimestamp', 'generation'];

export interface EscalationOptions {
  /**
   * Set when the server calls admitResult() with the patched object before storing it: plain
   * admit() then lets patches through to that check. Without it a patch of an RBAC object
   * (whose result admission cannot see) needs `escalate` (roles) or an unrestricted `bind`
   * (bindings), so no patch can escalate.
   */
  patchedObjectsChecked?: boolean;
}

export class EscalationAdmission implements Admission {
  constructor(
    private readonly authz: RbacAuthorizer,
    private readonly resources: ResourceStore,
    private readonly opts: EscalationOptions = {},
  ) {}

  async admit(a: RequestAttributes, object: KObject | undefined): Promise<void> {
    const plural = rbacResource(a);
    if (!plural) return;
    if (a.verb === 'patch') {
      if (!this.opts.patchedObjectsChecked) this.admitPatchBlind(a, plural);
      return;
    }
    if (!object) return;
    const old = a.verb === 'update' ? await this.stored(plural, a.namespace, a.name) : undefined;
    await this.check(a, plural, object, old);
  }

  /** The same checks on a patch's result (`old` the object it was applied to), for a server hook after patch application. */
  async admitResult(a: RequestAttributes, object: KObject, old: KObject | undefined): Promise<void> {
    const plural = rbacResource(a);
    if (plural) await this.check(a, plural, object, old);
  }

  private async check(a: RequestAttributes, plural: RbacResource, object: KObject, old: KObject | undefined): Promise<void> {
    const name = object.metadata?.name || a.name;
    if (plural === 'rolebindings' || plural === 'clusterrolebindings') {
      const ref = roleRefOf(object);
      const oldRef = old ? roleRefOf(old) : undefined;
      if (!isMaster(a.user) && ref && !(old && onlyGcFieldsChanged(object, old))) {
        await this.checkBinding(a, plural, name, ref);
      }
      if (old && oldRef && (!ref || ref.apiGroup !== oldRef.apiGroup || ref.kind !== oldRef.kind || ref.name !== oldRef.name)) {
        // As Go's %#v of the internal type prints it, the form kube users see.
        const shown = ref ? `rbac.RoleRef{APIGroup:${JSON.stringify(ref.apiGroup)}, Kind:${JSON.stringify(ref.kind)}, Name:${JSON.stringify(ref.name)}}` : 'rbac.RoleRef{}';
        throw invalid(res(plural), name, [{ reason: 'FieldValueInvalid', field: 'roleRef', message: `Invalid value: ${shown}: cannot change roleRef` }]);
      }
      return;
    }
    if (isMaster(a.user) || this.may(a.user, 'escalate', plural, a.name, a.namespace)) return;
    if (old && onlyGcFieldsChanged(object, old)) return;
    const why = escalationMessage(this.authz, a.user, plural === 'roles' ? a.namespace : '', toPolicyRules(object.rules));
    if (why) throw forbidden(plural, name, why);
    if (plural === 'clusterroles' && (hasAggregationRule(object) || (old && hasAggregationRule(old)))) {
      if (escalationMessage(this.authz, a.user, '', FULL_AUTHORITY)) throw forbidden(plural, name, 'must have cluster-admin privileges to use the aggregationRule');
    }
  }

  /** BindingAuthorized, else the referenced role's rules must be covered by the user's in the binding's scope. */
  private async checkBinding(a: RequestAttributes, plural: RbacResource, name: string, ref: RoleRef): Promise<void> {
    const namespace = plural === 'rolebindings' ? a.namespace : '';
    const roleResource = ref.kind === 'ClusterRole' ? 'clusterroles' : ref.kind === 'Role' ? 'roles' : undefined;
    // Another kind is the schema's to refuse (422); such a binding would grant nothing anyway.
    if (!roleResource) return;
    if (this.authz.authorize({ ...bindAttributes(a.user, namespace, roleResource, ref.name), apiGroup: ref.apiGroup }).allowed) return;
    const rules = await this.roleRules(ref, namespace);
    const why = escalationMessage(this.authz, a.user, namespace, rules);
    if (why) throw forbidden(plural, name, why);
  }

  /** The rules a roleRef grants: from the cache, or from etcd when the cache has not seen the role yet. */
  private async roleRules(ref: RoleRef, namespace: string): Promise<PolicyRule[]> {
    const cached = this.authz.roleRefRules(ref, namespace);
    if (cached.rules) return cached.rules;
    const plural = ref.kind === 'Role' ? 'roles' : 'clusterroles';
    const role = await this.stored(plural, namespace, ref.name);
    if (!role) throw notFound(res(plural), ref.name);
    return toPolicyRules(role.rules);
  }

  /** Without the patched object: let through only users whom no patch result could let escalate. */
  private admitPatchBlind(a: RequestAttributes, plural: RbacResource): void {
    if (isMaster(a.user)) return;
    if (plural === 'roles' || plural === 'clusterroles') {
      if (this.may(a.user, 'escalate', plural, a.name, a.namespace)) return;
      throw forbidden(plural, a.name, `patching ${plural} needs the escalate verb on them: a patch's resulting rules are not checked against the user's own; create or replace (PUT) the role instead`);
    }
    const namespace = plural === 'rolebindings' ? a.namespace : '';
    // Unrestricted bind (a rule without resourceNames) on both role kinds: any roleRef is fine.
    if (this.may(a.user, 'bind', 'roles', '', namespace) && this.may(a.user, 'bind', 'clusterroles', '', namespace)) return;
    throw forbidden(plural, a.name, `patching ${plural} needs the bind verb on every role and cluster role: a patch's result is not checked against the user's own permissions; create or replace (PUT) the binding instead`);
  }

  private may(user: UserInfo, verb: string, resource: string, name: string, namespace: string): boolean {
    return this.authz.authorize({ ...bindAttributes(user, namespace, resource, name), verb }).allowed;
  }

  private async stored(plural: RbacResource, namespace: string, name: string): Promise<KObject | undefined> {
    if (!name) return undefined;
    const { namespaced } = KINDS[plural];
    return this.resources.store.get(storageKey({ group: RBAC_GROUP, plural, namespaced }, namespaced ? namespace : undefined, name));
  }
}

function rbacResource(a: RequestAttributes): RbacResource | undefined {
  if (!a.resourceRequest || a.apiGroup !== RBAC_GROUP || a.subresource) return undefined;
  if (a.verb !== 'create' && a.verb !== 'update' && a.verb !== 'patch') return undefined;
  return Object.hasOwn(KINDS, a.resource) ? (a.resource as RbacResource) : undefined;
}

function bindAttributes(user: UserInfo, namespace: string, resource: string, name: string): RequestAttributes {
  return { user, verb: 'bind', resourceRequest: true, path: '', apiGroup: RBAC_GROUP, apiVersion: '*', resource, subresource: '', namespace, name };
}

function roleRefOf(o: KObject): RoleRef | undefined {
  const r = o.roleRef as Partial<RoleRef> | undefined;
  if (!r || typeof r !== 'object' || typeof r.kind !== 'string' || typeof r.name !== 'string') return undefined;
  return { apiGroup: typeof r.apiGroup === 'string' ? r.apiGroup : '', kind: r.kind, name: r.name };
}

function hasAggregationRule(o: KObject): boolean {
  const ar = o.aggregationRule as { clusterRoleSelectors?: unknown[] } | undefined;
  return !!ar && Array.isArray(ar.clusterRoleSelectors) && ar.clusterRoleSelectors.length > 0;
}
