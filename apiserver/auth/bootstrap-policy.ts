// The default RBAC policy, reconciled at every API server start as kube-apiserver's bootstrap
// policy is: missing roles and bindings are created, missing rules, labels and subjects added,
// nothing a user added is removed, and an object annotated
// rbac.authorization.kubernetes.io/autoupdate: "false" is left alone. Aggregated roles get their
// rules computed here too, so they work before the aggregation controller runs. Several API
// workers may do this at once: AlreadyExists and Conflict just mean "look again".
import type { KObject, ResourceInfo } from '../../api/types.js';
import { RBAC_GROUP } from '../../api/builtin-kinds-rbac.js';
import { aggregatedRules, aggregationSelectors, sameRules, unionRules } from '../../api/rbac-aggregation.js';
import type { LabelSelectorSpec } from '../../api/rbac-aggregation.js';
import type { ResourceStore } from '../resource-store.js';
import { ApiError } from '../status.js';
import { CONTROLLER_MANAGER_USER, KOVA_ROLES, NODES_GROUP, SYSTEM_AUTHENTICATED, SYSTEM_MASTERS } from './types.js';
import type { PolicyRule } from './types.js';

export const AUTOUPDATE_ANNOTATION = 'rbac.authorization.kubernetes.io/autoupdate';
export const BOOTSTRAP_LABEL = 'kubernetes.io/bootstrapping';
export const AGGREGATE_TO_ADMIN = 'rbac.authorization.k8s.io/aggregate-to-admin';
export const AGGREGATE_TO_EDIT = 'rbac.authorization.k8s.io/aggregate-to-edit';
export const AGGREGATE_TO_VIEW = 'rbac.authorization.k8s.io/aggregate-to-view';
/** cluster-admin carries it, so kova:cloud-admin aggregates exactly cluster-admin's rights. */
export const AGGREGATE_TO_CLOUD_ADMIN = 'kova.dev/aggregate-to-cloud-admin';
export const SYSTEM_UNAUTHENTICATED = 'system:unauthenticated';
const KOVA = 'kova.dev';
const METERING = 'metering.kova.dev';
const FIELD_MANAGER = 'kova-apiserver';

const READ = ['get', 'list', 'watch'];
const WRITE = ['create', 'delete', 'deletecollection', 'patch', 'update'];

/** The kova kinds users work with in a project (namespaced), and the ones kova fills in itself. */
export const KOVA_PROJECT_KINDS = ['instances', 'images', 'networks', 'ports', 'volumes', 'volumesnapshots', 'keypairs', 'securitygroups', 'floatingips', 'routers'];
const KOVA_SYSTEM_KINDS = ['addressclaims'];
/**
 * Project kinds that only cloud operators write: a Migration moves an instance between hosts,
 * which Nova's default policy keeps admin-only (os_compute_api:os-migrate-server:migrate_live).
 * Projects see them; cluster-admin creates and deletes them.
 */
const KOVA_OPERATOR_KINDS = ['migrations'];
const status = (kinds: string[]) => kinds.map((k) => `${k}/status`);
/** Project kinds whose status only hosts write (see kova:aggregate-to-admin). */
const HOST_OWNED_STATUS = ['volumes', 'volumesnapshots'];

const rule = (verbs: string[], apiGroups: string[], resources: string[], resourceNames?: string[]): PolicyRule =>
  resourceNames ? { verbs, apiGroups, resources, resourceNames } : { verbs, apiGroups, resources };
const urls = (verbs: string[], nonResourceURLs: string[]): PolicyRule => ({ verbs, nonResourceURLs });

function clusterRole(name: string, rules: PolicyRule[], extra: { labels?: Record<string, string>; aggregate?: LabelSelectorSpec[] } = {}): KObject {
  const o: KObject = {
    apiVersion: `${RBAC_GROUP}/v1`,
    kind: 'ClusterRole',
    metadata: { name, labels: { [BOOTSTRAP_LABEL]: 'rbac-defaults', ...extra.labels }, annotations: { [AUTOUPDATE_ANNOTATION]: 'true' } },
    rules,
  };
  if (extra.aggregate) o.aggregationRule = { clusterRoleSelectors: extra.aggregate };
  return o;
}

type SubjectKind = 'User' | 'Group';
function binding(kind: 'ClusterRoleBinding' | 'RoleBinding', name: string, role: { kind: 'ClusterRole' | 'Role'; name: string }, subjects: Array<[SubjectKind, string]>, namespace?: string): KObject {
  return {
    apiVersion: `${RBAC_GROUP}/v1`,
    kind,
    metadata: { name, ...(namespace ? { namespace } : {}), labels: { [BOOTSTRAP_LABEL]: 'rbac-defaults' }, annotations: { [AUTOUPDATE_ANNOTATION]: 'true' } },
    roleRef: { apiGroup: RBAC_GROUP, kind: role.kind, name: role.name },
    subjects: subjects.map(([k, n]) => ({ kind: k, apiGroup: RBAC_GROUP, name: n })),
  };
}
const crb = (name: string, role: string, subjects: Array<[SubjectKind, string]>) => binding('ClusterRoleBinding', name, { kind: 'ClusterRole', name: role }, subjects);

/** kube's user.MonitoringGroup and the ClusterRole bound to it: read /metrics and the health endpoints. */
export const MONITORING_GROUP = 'system:monitoring';
export const MONITORING_ROLE = 'system:monitoring';
/** TokenReview and SubjectAccessReview creates: what a delegating server needs (kube's system:auth-delegator). */
const AUTH_DELEGATION: PolicyRule[] = [
  rule(['create'], ['authentication.k8s.io'], ['tokenreviews']),
  rule(['create'], ['authorization.k8s.io'], ['subjectaccessreviews']),
];

const sel = (label: string): LabelSelectorSpec[] => [{ matchLabels: { [label]: 'true' } }];

/** The default ClusterRoles: Kubernetes' user-facing ones, the kova roles and kova's components. */
export function bootstrapClusterRoles(): KObject[] {
  return [
    clusterRole('cluster-admin', [rule(['*'], ['*'], ['*']), urls(['*'], ['*'])], { labels: { [AGGREGATE_TO_CLOUD_ADMIN]: 'true' } }),
    // admin ⊇ edit ⊇ view: each user-facing role is the union of what is labelled for it.
    clusterRole('admin', [], { aggregate: sel(AGGREGATE_TO_ADMIN) }),
    clusterRole('edit', [], { aggregate: sel(AGGREGATE_TO_EDIT), labels: { [AGGREGATE_TO_ADMIN]: 'true' } }),
    clusterRole('view', [], { aggregate: sel(AGGREGATE_TO_VIEW), labels: { [AGGREGATE_TO_EDIT]: 'true' } }),
    clusterRole('system:aggregate-to-admin', [
      rule(WRITE.concat(READ), [RBAC_GROUP], ['roles', 'rolebindings']),
      rule(['create'], ['authorization.k8s.io'], ['localsubjectaccessreviews']),
    ], { labels: { [AGGREGATE_TO_ADMIN]: 'true' } }),
    clusterRole('system:aggregate-to-edit', [
      rule(WRITE, [''], ['configmaps', 'secrets']),
      rule(READ, [''], ['secrets']),
    ], { labels: { [AGGREGATE_TO_EDIT]: 'true' } }),
    clusterRole('system:aggregate-to-view', [
      rule(READ, [''], ['configmaps', 'events', 'resourcequotas', 'resourcequotas/status', 'namespaces', 'namespaces/status']),
      rule(READ, ['events.k8s.io'], ['events']),
    ], { labels: { [AGGREGATE_TO_VIEW]: 'true' } }),
    // The kova kinds: status belongs to kova's controllers and agents (and project admins), but
    // a storage status is what hosts act on (where a volume is, whether a snapshot's file is
    // complete): only they write it.
    clusterRole('kova:aggregate-to-admin', [
      rule(['patch', 'update'], [KOVA], status(KOVA_PROJECT_KINDS.filter((k) => !HOST_OWNED_STATUS.includes(k)))),
    ], { labels: { [AGGREGATE_TO_ADMIN]: 'true' } }),
    clusterRole('kova:aggregate-to-edit', [
      rule(WRITE, [KOVA], KOVA_PROJECT_KINDS),
      rule(['get', 'create'], [KOVA], ['instances/console']),
    ], { labels: { [AGGREGATE_TO_EDIT]: 'true' } }),
    clusterRole('kova:aggregate-to-view', [
      rule(READ, [KOVA], [...KOVA_PROJECT_KINDS, ...status(KOVA_PROJECT_KINDS), ...KOVA_SYSTEM_KINDS, ...KOVA_OPERATOR_KINDS, ...status(KOVA_OPERATOR_KINDS)]),
      // A project's usage (apiserver/metering): readable by its readers, its ledgers written only by the controllers.
      rule(['get'], [METERING], ['usage']),
    ], { labels: { [AGGREGATE_TO_VIEW]: 'true' } }),
    // The OpenStack roles (KOVA_ROLES) are the Kubernetes ones by another name: same selectors.
    clusterRole(KOVA_ROLES['cloud-admin'], [], { aggregate: sel(AGGREGATE_TO_CLOUD_ADMIN) }),
    clusterRole(KOVA_ROLES.manager, [], { aggregate: sel(AGGREGATE_TO_ADMIN) }),
    clusterRole(KOVA_ROLES.member, [], { aggregate: sel(AGGREGATE_TO_EDIT) }),
    clusterRole(KOVA_ROLES.reader, [], { aggregate: sel(AGGREGATE_TO_VIEW) }),
    // Like Nova's flavor list and Cinder's volume types: every user may see the cluster-wide catalogue.
    clusterRole('kova:catalog-reader', [rule(READ, [KOVA], ['flavors', 'volumetypes'])]),
    clusterRole('system:basic-user', [
      rule(['create'], ['authorization.k8s.io'], ['selfsubjectaccessreviews', 'selfsubjectrulesreviews']),
      rule(['create'], ['authentication.k8s.io'], ['selfsubjectreviews']),
    ]),
    clusterRole('system:discovery', [
      urls(['get'], ['/api', '/api/*', '/apis', '/apis/*', '/healthz', '/livez', '/openapi', '/openapi/*', '/readyz', '/version', '/version/']),
    ]),
    clusterRole('system:public-info-viewer', [urls(['get'], ['/healthz', '/livez', '/readyz', '/version', '/version/'])]),
    // Prometheus: kube's role for scrapers, bound to the group system:monitoring.
    clusterRole(MONITORING_ROLE, [urls(['get'], ['/metrics', '/metrics/slis', '/livez', '/readyz', '/healthz', '/livez/*', '/readyz/*', '/healthz/*'])]),
    // Delegated authentication and authorization (a process asking the API server who a bearer
    // token is and what its user may do), as kube has it for extension API servers: unbound.
    clusterRole('system:auth-delegator', AUTH_DELEGATION),
    clusterRole(CONTROLLER_MANAGER_USER, [
      // Read everything; delete anything (namespace deletion and garbage collection empty projects).
      rule(READ.concat(['delete', 'deletecollection']), ['*'], ['*']),
      rule(WRITE, [KOVA], ['*']),
      rule(WRITE, [METERING], ['usagerecords']),
      rule(['update'], [''], ['namespaces/finalize', 'namespaces/status']),
      // The default-quota controller marks the projects it has given their quota.
      rule(['patch'], [''], ['namespaces']),
      // The clusterrole-aggregation controller writes rules it need not hold itself.
      rule(['escalate', 'patch', 'update'], [RBAC_GROUP], ['clusterroles']),
      rule(['create', 'patch', 'update'], [''], ['events', 'resourcequotas', 'resourcequotas/status']),
      rule(['create', 'patch', 'update'], ['events.k8s.io'], ['events']),
      // Its /metrics endpoint authenticates and authorizes scrapers through the API server (kube's
      // system:kube-controller-manager holds the same two creates, which change nothing).
      ...AUTH_DELEGATION,
    ]),
    clusterRole('system:kova:node', [
      rule(READ, [''], ['namespaces', 'secrets', 'configmaps']),
      rule(READ, [KOVA], ['*']),
      rule(['create', 'update', 'patch'], [KOVA], ['hosts', 'hosts/status']),
      // Finalizers on the main object, the rest through status; NodeRestriction narrows both to the agent's host.
      rule(['update', 'patch'], [KOVA], ['instances', 'instances/status']),
      // Host networking reports each Port's configuration and the host's condition on a Network.
      rule(['update', 'patch'], [KOVA], ['ports/status', 'networks/status']),
      // Volumes and snapshots a host stores: their status, and its finalizer on the object (NodeRestriction narrows both).
      rule(['update', 'patch'], [KOVA], ['volumes', 'volumes/status', 'volumesnapshots', 'volumesnapshots/status']),
      // The two hosts of a migration report on it (NodeRestriction: only theirs, and only the status).
      rule(['update', 'patch'], [KOVA], ['migrations/status']),
      rule(['create', 'patch', 'update'], [''], ['events']),
      rule(['create', 'patch', 'update'], ['events.k8s.io'], ['events']),
      // Delegated authentication and authorization of its /metrics scrapers (kube's system:node has them too).
      ...AUTH_DELEGATION,
    ]),
  ];
}

export function bootstrapClusterRoleBindings(): KObject[] {
  return [
    crb('cluster-admin', 'cluster-admin', [['Group', SYSTEM_MASTERS]]),
    crb('system:basic-user', 'system:basic-user', [['Group', SYSTEM_AUTHENTICATED]]),
    crb('system:discovery', 'system:discovery', [['Group', SYSTEM_AUTHENTICATED]]),
    crb('system:public-info-viewer', 'system:public-info-viewer', [['Group', SYSTEM_AUTHENTICATED], ['Group', SYSTEM_UNAUTHENTICATED]]),
    crb('kova:catalog-reader', 'kova:catalog-reader', [['Group', SYSTEM_AUTHENTICATED]]),
    crb(CONTROLLER_MANAGER_USER, CONTROLLER_MANAGER_USER, [['User', CONTROLLER_MANAGER_USER]]),
    crb('system:kova:node', 'system:kova:node', [['Group', NODES_GROUP]]),
    crb(MONITORING_ROLE, MONITORING_ROLE, [['Group', MONITORING_GROUP]]),
  ];
}

/** Where kova's components keep their Leases (leader election, agent heartbeats). */
export const LEASE_NAMESPACE = 'kova-system';
const LEASES_ROLE = 'system:kova:leases';

/** Lease rights only in kova-system: a Role there, bound to the controllers and the agents. */
export function bootstrapRoles(): KObject[] {
  return [{
    apiVersion: `${RBAC_GROUP}/v1`,
    kind: 'Role',
    metadata: { name: LEASES_ROLE, namespace: LEASE_NAMESPACE, labels: { [BOOTSTRAP_LABEL]: 'rbac-defaults' }, annotations: { [AUTOUPDATE_ANNOTATION]: 'true' } },
    rules: [rule(READ.concat(['create', 'update', 'patch', 'delete']), ['coordination.k8s.io'], ['leases'])],
  }];
}

export function bootstrapRoleBindings(): KObject[] {
  const role = { kind: 'Role' as const, name: LEASES_ROLE };
  return [
    binding('RoleBinding', `${CONTROLLER_MANAGER_USER}-leases`, role, [['User', CONTROLLER_MANAGER_USER]], LEASE_NAMESPACE),
    binding('RoleBinding', 'system:kova:node-leases', role, [['Group', NODES_GROUP]], LEASE_NAMESPACE),
  ];
}

export interface BootstrapResult {
  created: string[];
  updated: string[];
}

const is = (e: unknown, code: number, reason?: string) => e instanceof ApiError && e.code === code && (!reason || e.reason === reason);

/** Merges the desired default into what is stored; undefined when nothing is missing. */
export function reconcileObject(desired: KObject, existing: KObject): KObject | undefined {
  if (existing.metadata.annotations?.[AUTOUPDATE_ANNOTATION] === 'false') return undefined;
  const next = structuredClone(existing);
  let changed = false;
  for (const f of ['labels', 'annotations'] as const) {
    for (const [k, v] of Object.entries(desired.metadata[f] ?? {})) {
      if (next.metadata[f]?.[k] === undefined) {
        next.metadata[f] = { ...next.metadata[f], [k]: v };
        changed = true;
      }
    }
  }
  if (desired.kind === 'ClusterRole' || desired.kind === 'Role') {
    const want = aggregationSelectors(desired);
    if (want) {
      const have = aggregationSelectors(next) ?? [];
      const keys = new Set(have.map((s) => JSON.stringify(s)));
      const missing = want.filter((s) => !keys.has(JSON.stringify(s)));
      if (missing.length || !next.aggregationRule) {
        next.aggregationRule = { clusterRoleSelectors: [...have, ...missing] };
        changed = true;
      }
    } else {
      // Aggregated roles' rules belong to the aggregation, not to the default.
      const have = (next.rules as PolicyRule[] | undefined) ?? [];
      const merged = unionRules(have, (desired.rules as PolicyRule[]) ?? []);
      if (merged.length !== have.length) {
        next.rules = merged;
        changed = true;
      }
    }
  } else {
    const have = (next.subjects as Array<Record<string, string>> | undefined) ?? [];
    const key = (s: Record<string, string>) => `${s.kind}\0${s.namespace ?? ''}\0${s.name}`;
    const keys = new Set(have.map(key));
    const missing = ((desired.subjects as Array<Record<string, string>>) ?? []).filter((s) => !keys.has(key(s)));
    if (missing.length) {
      next.subjects = [...have, ...missing];
      changed = true;
    }
  }
  return changed ? next : undefined;
}

/**
 * Creates or completes every default role and binding, then fills in the aggregated roles.
 * Safe to run concurrently from several API servers: each write is conditional and retried.
 */
export async function reconcileBootstrapPolicy(resources: ResourceStore, log: (msg: string) => void = () => undefined): Promise<BootstrapResult> {
  const registry = resources.registry;
  const roleInfo = registry.byKind(RBAC_GROUP, 'ClusterRole');
  const bindingInfo = registry.byKind(RBAC_GROUP, 'ClusterRoleBinding');
  if (!roleInfo || !bindingInfo) throw new Error('the RBAC kinds are not registered');
  const result: BootstrapResult = { created: [], updated: [] };
  for (const role of bootstrapClusterRoles()) await ensure(resources, roleInfo, role, result);
  for (const b of bootstrapClusterRoleBindings()) await ensure(resources, bindingInfo, b, result);
  const nsRole = registry.byKind(RBAC_GROUP, 'Role')!;
  const nsBinding = registry.byKind(RBAC_GROUP, 'RoleBinding')!;
  try {
    for (const r of bootstrapRoles()) await ensure(resources, nsRole, r, result);
    for (const b of bootstrapRoleBindings()) await ensure(resources, nsBinding, b, result);
  } catch (e) {
    // A server started without kova's namespaces (kova up makes them first) still gets the rest.
    if (!is(e, 404, 'NotFound')) throw e;
    log(`rbac bootstrap: namespace ${LEASE_NAMESPACE} is missing; its lease role is made on a later start`);
  }
  await aggregateAll(resources, roleInfo, result);
  if (result.created.length || result.updated.length) {
    log(`rbac bootstrap: created ${result.created.length}, updated ${result.updated.length} default roles and bindings`);
  }
  return result;
}

async function ensure(rs: ResourceStore, info: ResourceInfo, desired: KObject, result: BootstrapResult): Promise<void> {
  const name = desired.metadata.name!;
  const ns = desired.metadata.namespace;
  const label = `${info.kind}/${ns ? `${ns}/` : ''}${name}`;
  for (let attempt = 0; attempt < 10; attempt++) {
    let existing: KObject | undefined;
    try {
      existing = await rs.get(info, ns, name);
    } catch (e) {
      if (!is(e, 404)) throw e;
    }
    if (!existing) {
      try {
        await rs.create(info, ns, structuredClone(desired), { fieldManager: FIELD_MANAGER });
        result.created.push(label);
        return;
      } catch (e) {
        // Another API server created it first: look again. (A 404 here is a missing namespace.)
        if (is(e, 409)) continue;
        throw e;
      }
    }
    try {
      // A binding to another role than the default's: kube replaces it (roleRef is immutable).
      if (desired.roleRef && existing.metadata.annotations?.[AUTOUPDATE_ANNOTATION] !== 'false' && JSON.stringify(existing.roleRef) !== JSON.stringify(desired.roleRef)) {
        await rs.delete(info, ns, name, { preconditions: { uid: existing.metadata.uid } });
        continue;
      }
      const next = reconcileObject(desired, existing);
      if (!next) return;
      await rs.update(info, ns, name, next, { fieldManager: FIELD_MANAGER });
      result.updated.push(label);
      return;
    } catch (e) {
      // Changed or deleted by another API server meanwhile: look again.
      if (is(e, 409) || is(e, 404)) continue;
      throw e;
    }
  }
  throw new Error(`rbac bootstrap: ${label} kept changing under us`);
}

/** Fills in every aggregated ClusterRole, to a fixed point (admin aggregates edit, which aggregates view). */
async function aggregateAll(rs: ResourceStore, info: ResourceInfo, result: BootstrapResult): Promise<void> {
  for (let pass = 0; pass < 5; pass++) {
    const all = (await rs.list(info, undefined)).items;
    let changed = false;
    for (const role of all) {
      const want = aggregatedRules(role, all);
      if (!want || sameRules(want, role.rules as PolicyRule[] | undefined)) continue;
      try {
        const updated = await rs.update(info, undefined, role.metadata.name!, { ...role, rules: want }, { fieldManager: FIELD_MANAGER });
        role.rules = updated.rules;
        if (!result.updated.includes(`ClusterRole/${role.metadata.name}`)) result.updated.push(`ClusterRole/${role.metadata.name}`);
      } catch (e) {
        if (!is(e, 409) && !is(e, 404)) throw e;
      }
      changed = true;
    }
    if (!changed) return;
  }
}
