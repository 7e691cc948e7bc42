// The default RBAC policy against real etcd: created once by concurrent API servers, complete
// after a restart without undoing what users added, aggregated before any controller runs, and
// granting what each role is meant to (checked with RBAC's own rule matching).
import { startTestResourceStore } from '../../testing/resource-store.js';
import type { TestResourceStore } from '../../testing/resource-store.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultCrdDir, Registry } from '../../api/registry.js';
import { Validator } from '../../api/validation.js';
import type { KObject, ResourceInfo } from '../../api/types.js';
import { Store } from '../../store/store.js';
import type { TestEtcd } from '../../testing/etcd.js';
import { ResourceStore } from '../resource-store.js';
import { sameRules } from '../../api/rbac-aggregation.js';
import { rulesAllow } from './rbac/rules.js';
import { AUTOUPDATE_ANNOTATION, bootstrapClusterRoleBindings, bootstrapClusterRoles, reconcileBootstrapPolicy } from './bootstrap-policy.js';
import type { PolicyRule, RequestAttributes } from './types.js';
import { CONTROLLER_MANAGER_USER, KOVA_ROLES } from './types.js';

let env: TestResourceStore;
let store: Store;
let rs: ResourceStore;
let roleInfo: ResourceInfo;
let bindingInfo: ResourceInfo;

before(async () => {
  env = await startTestResourceStore();
  store = env.store;
  const registry = env.registry;
  rs = env.resources;
  await rs.create(registry.lookup('', 'v1', 'namespaces')!, undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'kova-system' } });
  roleInfo = registry.byKind('rbac.authorization.k8s.io', 'ClusterRole')!;
  bindingInfo = registry.byKind('rbac.authorization.k8s.io', 'ClusterRoleBinding')!;
});

after(async () => {
  await env?.stop();
});

const role = (name: string) => rs.get(roleInfo, undefined, name);
const rulesOf = async (name: string) => ((await role(name)).rules as PolicyRule[] | undefined) ?? [];

function attrs(verb: string, apiGroup: string, resource: string, subresource = '', path = ''): RequestAttributes {
  return {
    user: { name: 'u', groups: [] }, verb, resourceRequest: !path, path, apiGroup, apiVersion: 'v1',
    resource, subresource, namespace: 'demo', name: '',
  };
}

describe('bootstrap policy', () => {
  test('API servers starting together create each default once, and all succeed', async () => {
    const results = await Promise.all([1, 2, 3, 4].map(() => reconcileBootstrapPolicy(rs)));
    const created = results.flatMap((r) => r.created);
    const wanted = bootstrapClusterRoles().length + bootstrapClusterRoleBindings().length + 3; // + the kova-system lease Role and its 2 RoleBindings
    assert.equal(created.length, wanted, created.join(' '));
    assert.equal(new Set(created).size, wanted);
    const names = (await rs.list(roleInfo, undefined)).items.map((r) => r.metadata.name!);
    for (const r of bootstrapClusterRoles()) assert.ok(names.includes(r.metadata.name!), r.metadata.name);
  });

  test('a second start changes nothing', async () => {
    const r = await reconcileBootstrapPolicy(rs);
    assert.deepEqual(r, { created: [], updated: [] });
  });

  test('aggregated roles are filled in at bootstrap: admin ⊇ edit ⊇ view, the kova roles equal them', async () => {
    const view = await rulesOf('view');
    const edit = await rulesOf('edit');
    const admin = await rulesOf('admin');
    assert.ok(view.length > 0);
    const keys = (rules: PolicyRule[]) => new Set(rules.map((x) => JSON.stringify(x)));
    for (const k of keys(view)) assert.ok(keys(edit).has(k), `edit lacks view's ${k}`);
    for (const k of keys(edit)) assert.ok(keys(admin).has(k), `admin lacks edit's ${k}`);
    assert.ok(sameRules(await rulesOf(KOVA_ROLES.reader), view));
    assert.ok(sameRules(await rulesOf(KOVA_ROLES.member), edit));
    assert.ok(sameRules(await rulesOf(KOVA_ROLES.manager), admin));
    assert.ok(sameRules(await rulesOf(KOVA_ROLES['cloud-admin']), await rulesOf('cluster-admin')));
  });

  // [role, verb, group, resource, subresource, allowed]
  const MATRIX: Array<[string, string, string, string, string, boolean]> = [
    ['view', 'list', 'kova.dev', 'instances', '', true],
    ['view', 'get', 'kova.dev', 'instances', 'status', true],
    ['view', 'create', 'kova.dev', 'instances', '', false],
    ['view', 'get', '', 'secrets', '', false],
    ['view', 'get', '', 'namespaces', '', true],
    ['view', 'list', '', 'resourcequotas', '', true],
    ['view', 'get', 'kova.dev', 'hosts', '', false],
    ['edit', 'create', 'kova.dev', 'instances', '', true],
    ['edit', 'delete', 'kova.dev', 'volumes', '', true],
    ['edit', 'create', 'kova.dev', 'instances', 'console', true],
    ['edit', 'update', 'kova.dev', 'instances', 'status', false],
    ['edit', 'patch', 'kova.dev', 'networks', 'status', false],
    ['edit', 'create', 'kova.dev', 'instances', 'binding', false],
    ['edit', 'create', 'kova.dev', 'addressclaims', '', false],
    ['edit', 'create', '', 'secrets', '', true],
    ['edit', 'create', '', 'resourcequotas', '', false],
    ['edit', 'create', 'rbac.authorization.k8s.io', 'rolebindings', '', false],
    ['admin', 'create', 'rbac.authorization.k8s.io', 'rolebindings', '', true],
    ['admin', 'update', 'kova.dev', 'instances', 'status', true],
    ['admin', 'update', '', 'resourcequotas', '', false],
    ['cluster-admin', 'delete', 'kova.dev', 'hosts', '', true],
    [KOVA_ROLES.member, 'create', 'kova.dev', 'instances', '', true],
    [KOVA_ROLES.reader, 'create', 'kova.dev', 'instances', '', false],
    [KOVA_ROLES.manager, 'create', 'rbac.authorization.k8s.io', 'roles', '', true],
    [KOVA_ROLES['cloud-admin'], 'create', 'kova.dev', 'flavors', '', true],
    ['kova:catalog-reader', 'list', 'kova.dev', 'flavors', '', true],
    ['system:basic-user', 'create', 'authorization.k8s.io', 'selfsubjectaccessreviews', '', true],
    ['system:basic-user', 'create', 'authorization.k8s.io', 'selfsubjectrulesreviews', '', true],
    ['system:basic-user', 'create', 'authentication.k8s.io', 'selfsubjectreviews', '', true],
    ['system:basic-user', 'create', 'authorization.k8s.io', 'subjectaccessreviews', '', false],
    [CONTROLLER_MANAGER_USER, 'update', 'kova.dev', 'instances', 'status', true],
    [CONTROLLER_MANAGER_USER, 'create', 'kova.dev', 'instances', 'binding', true],
    [CONTROLLER_MANAGER_USER, 'update', '', 'namespaces', 'finalize', true],
    [CONTROLLER_MANAGER_USER, 'escalate', 'rbac.authorization.k8s.io', 'clusterroles', '', true],
    [CONTROLLER_MANAGER_USER, 'create', '', 'secrets', '', false],
    [CONTROLLER_MANAGER_USER, 'patch', '', 'namespaces', '', true],
    [CONTROLLER_MANAGER_USER, 'create', '', 'namespaces', '', false],
    ['system:kova:node', 'update', 'kova.dev', 'hosts', 'status', true],
    ['system:kova:node', 'patch', 'kova.dev', 'instances', 'status', true],
    ['system:kova:node', 'create', 'kova.dev', 'instances', '', false],
    // Volumes (#16): projects own volumes and snapshots, the cloud admin volume types, which everyone reads.
    ['view', 'list', 'kova.dev', 'volumes', '', true],
    ['view', 'get', 'kova.dev', 'volumesnapshots', 'status', true],
    ['view', 'create', 'kova.dev', 'volumesnapshots', '', false],
    ['edit', 'create', 'kova.dev', 'volumesnapshots', '', true],
    ['edit', 'patch', 'kova.dev', 'volumes', '', true],
    ['edit', 'patch', 'kova.dev', 'volumes', 'status', false],
    ['edit', 'create', 'kova.dev', 'volumetypes', '', false],
    // Storage status is what hosts act on: not even project admins write it.
    ['admin', 'update', 'kova.dev', 'volumesnapshots', 'status', false],
    ['admin', 'patch', 'kova.dev', 'volumes', 'status', false],
    ['admin', 'update', 'kova.dev', 'instances', 'status', true],
    ['admin', 'patch', 'kova.dev', 'volumetypes', '', false],
    [KOVA_ROLES.member, 'delete', 'kova.dev', 'volumes', '', true],
    [KOVA_ROLES.reader, 'watch', 'kova.dev', 'volumesnapshots', '', true],
    [KOVA_ROLES.reader, 'delete', 'kova.dev', 'volumes', '', false],
    [KOVA_ROLES.manager, 'create', 'kova.dev', 'volumetypes', '', false],
    [KOVA_ROLES['cloud-admin'], 'create', 'kova.dev', 'volumetypes', '', true],
    [KOVA_ROLES['cloud-admin'], 'update', 'kova.dev', 'volumes', 'status', true],
    ['kova:catalog-reader', 'get', 'kova.dev', 'volumetypes', '', true],
    ['kova:catalog-reader', 'watch', 'kova.dev', 'volumetypes', '', true],
    ['kova:catalog-reader', 'create', 'kova.dev', 'volumetypes', '', false],
    ['kova:catalog-reader', 'list', 'kova.dev', 'volumes', '', false],
    [CONTROLLER_MANAGER_USER, 'create', 'kova.dev', 'volumes', '', true],
    [CONTROLLER_MANAGER_USER, 'delete', 'kova.dev', 'volumes', '', true],
    [CONTROLLER_MANAGER_USER, 'update', 'kova.dev', 'volumes', 'status', true],
    [CONTROLLER_MANAGER_USER, 'patch', 'kova.dev', 'volumesnapshots', 'status', true],
    [CONTROLLER_MANAGER_USER, 'delete', 'kova.dev', 'volumesnapshots', '', true],
    [CONTROLLER_MANAGER_USER, 'update', 'kova.dev', 'volumetypes', 'status', true],
    [CONTROLLER_MANAGER_USER, 'watch', 'kova.dev', 'volumetypes', '', true],
    ['system:kova:node', 'list', 'kova.dev', 'volumes', '', true],
    ['system:kova:node', 'watch', 'kova.dev', 'volumesnapshots', '', true],
    ['system:kova:node', 'get', 'kova.dev', 'volumetypes', '', true],
    ['system:kova:node', 'patch', 'kova.dev', 'volumes', 'status', true],
    ['system:kova:node', 'update', 'kova.dev', 'volumes', '', true],
    ['system:kova:node', 'patch', 'kova.dev', 'volumesnapshots', 'status', true],
    ['system:kova:node', 'patch', 'kova.dev', 'volumesnapshots', '', true],
    ['system:kova:node', 'create', 'kova.dev', 'volumes', '', false],
    ['system:kova:node', 'delete', 'kova.dev', 'volumes', '', false],
    ['system:kova:node', 'create', 'kova.dev', 'volumesnapshots', '', false],
    ['system:kova:node', 'update', 'kova.dev', 'volumetypes', '', false],
    ['system:kova:node', 'delete', 'kova.dev', 'hosts', '', false],
    // Migrations (#17): projects see them; moving instances between hosts is the cloud operator's
    // (Nova's live migration is admin-only by default); the controller does everything; hosts report.
    ['view', 'get', 'kova.dev', 'migrations', '', true],
    ['view', 'list', 'kova.dev', 'migrations', '', true],
    ['view', 'watch', 'kova.dev', 'migrations', '', true],
    ['view', 'get', 'kova.dev', 'migrations', 'status', true],
    ['view', 'create', 'kova.dev', 'migrations', '', false],
    ['edit', 'watch', 'kova.dev', 'migrations', '', true],
    ['edit', 'create', 'kova.dev', 'migrations', '', false],
    ['edit', 'delete', 'kova.dev', 'migrations', '', false],
    ['edit', 'patch', 'kova.dev', 'migrations', '', false],
    ['admin', 'list', 'kova.dev', 'migrations', '', true],
    ['admin', 'create', 'kova.dev', 'migrations', '', false],
    ['admin', 'delete', 'kova.dev', 'migrations', '', false],
    ['admin', 'deletecollection', 'kova.dev', 'migrations', '', false],
    ['admin', 'update', 'kova.dev', 'migrations', 'status', false],
    [KOVA_ROLES.reader, 'list', 'kova.dev', 'migrations', '', true],
    [KOVA_ROLES.reader, 'create', 'kova.dev', 'migrations', '', false],
    [KOVA_ROLES.member, 'get', 'kova.dev', 'migrations', '', true],
    [KOVA_ROLES.member, 'create', 'kova.dev', 'migrations', '', false],
    [KOVA_ROLES.manager, 'create', 'kova.dev', 'migrations', '', false],
    [KOVA_ROLES.manager, 'delete', 'kova.dev', 'migrations', '', false],
    ['cluster-admin', 'create', 'kova.dev', 'migrations', '', true],
    ['cluster-admin', 'delete', 'kova.dev', 'migrations', '', true],
    [KOVA_ROLES['cloud-admin'], 'create', 'kova.dev', 'migrations', '', true],
    [KOVA_ROLES['cloud-admin'], 'delete', 'kova.dev', 'migrations', '', true],
    ['kova:catalog-reader', 'list', 'kova.dev', 'migrations', '', false],
    [CONTROLLER_MANAGER_USER, 'watch', 'kova.dev', 'migrations', '', true],
    [CONTROLLER_MANAGER_USER, 'create', 'kova.dev', 'migrations', '', true],
    [CONTROLLER_MANAGER_USER, 'update', 'kova.dev', 'migrations', '', true],
    [CONTROLLER_MANAGER_USER, 'patch', 'kova.dev', 'migrations', '', true],
    [CONTROLLER_MANAGER_USER, 'delete', 'kova.dev', 'migrations', '', true],
    [CONTROLLER_MANAGER_USER, 'update', 'kova.dev', 'migrations', 'status', true],
    [CONTROLLER_MANAGER_USER, 'patch', 'kova.dev', 'migrations', 'status', true],
    ['system:kova:node', 'get', 'kova.dev', 'migrations', '', true],
    ['system:kova:node', 'list', 'kova.dev', 'migrations', '', true],
    ['system:kova:node', 'watch', 'kova.dev', 'migrations', '', true],
    ['system:kova:node', 'update', 'kova.dev', 'migrations', 'status', true],
    ['system:kova:node', 'patch', 'kova.dev', 'migrations', 'status', true],
    ['system:kova:node', 'create', 'kova.dev', 'migrations', '', false],
    ['system:kova:node', 'delete', 'kova.dev', 'migrations', '', false],
    ['system:kova:node', 'update', 'kova.dev', 'migrations', '', false],
    ['system:kova:node', 'patch', 'kova.dev', 'migrations', '', false],
    // Delegated authentication and authorization of the components' /metrics (#18), as kube's
    // system:kube-controller-manager, system:node and system:auth-delegator hold them.
    [CONTROLLER_MANAGER_USER, 'create', 'authentication.k8s.io', 'tokenreviews', '', true],
    [CONTROLLER_MANAGER_USER, 'create', 'authorization.k8s.io', 'subjectaccessreviews', '', true],
    ['system:kova:node', 'create', 'authentication.k8s.io', 'tokenreviews', '', true],
    ['system:kova:node', 'create', 'authorization.k8s.io', 'subjectaccessreviews', '', true],
    ['system:auth-delegator', 'create', 'authentication.k8s.io', 'tokenreviews', '', true],
    ['system:auth-delegator', 'create', 'authorization.k8s.io', 'subjectaccessreviews', '', true],
    ['system:auth-delegator', 'create', 'authorization.k8s.io', 'selfsubjectaccessreviews', '', false],
    ['system:basic-user', 'create', 'authentication.k8s.io', 'tokenreviews', '', false],
    ['view', 'create', 'authentication.k8s.io', 'tokenreviews', '', false],
    ['system:monitoring', 'get', '', 'secrets', '', false],
  ];
  test('each default role grants what it is for, and no more (RBAC rule matching)', async () => {
    const failures: string[] = [];
    for (const [name, verb, group, resource, sub, want] of MATRIX) {
      const got = rulesAllow(attrs(verb, group, resource, sub), await rulesOf(name));
      if (got !== want) failures.push(`${name}: ${verb} ${group}/${resource}${sub ? `/${sub}` : ''}: ${got}, want ${want}`);
    }
    assert.deepEqual(failures, []);
    assert.ok(rulesAllow(attrs('get', '', '', '', '/apis/kova.dev/v1alpha1'), await rulesOf('system:discovery')));
    assert.ok(!rulesAllow(attrs('get', '', '', '', '/metrics'), await rulesOf('system:discovery')));
    assert.ok(rulesAllow(attrs('get', '', '', '', '/version'), await rulesOf('system:public-info-viewer')));
    // Prometheus (group system:monitoring): /metrics and the health endpoints, read-only.
    for (const path of ['/metrics', '/metrics/slis', '/healthz', '/livez', '/readyz', '/readyz/etcd']) {
      assert.ok(rulesAllow(attrs('get', '', '', '', path), await rulesOf('system:monitoring')), path);
    }
    assert.ok(!rulesAllow(attrs('post', '', '', '', '/metrics'), await rulesOf('system:monitoring')));
    assert.ok(!rulesAllow(attrs('get', '', '', '', '/version'), await rulesOf('system:monitoring')));
    assert.ok(!rulesAllow(attrs('get', '', '', '', '/metrics'), await rulesOf('system:public-info-viewer')));
    const monitoring = await rs.get(bindingInfo, undefined, 'system:monitoring');
    assert.deepEqual(monitoring.subjects, [{ kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: 'system:monitoring' }]);
  });

  test('a restart adds what is missing and keeps what users added', async () => {
    const basic = await role('system:basic-user');
    const extra: PolicyRule = { verbs: ['get'], apiGroups: ['kova.dev'], resources: ['flavors'] };
    await rs.update(roleInfo, undefined, 'system:basic-user', { ...basic, rules: [...(basic.rules as PolicyRule[]), extra], metadata: { ...basic.metadata, labels: { ...basic.metadata.labels, mine: 'yes' } } });
    const disc = await role('system:discovery');
    await rs.update(roleInfo, undefined, 'system:discovery', { ...disc, rules: [] });
    const b = await rs.get(bindingInfo, undefined, 'system:basic-user');
    await rs.update(bindingInfo, undefined, 'system:basic-user', { ...b, subjects: [{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: 'carol' }] });
    // Opted out: left as the user made it.
    const piv = await role('system:public-info-viewer');
    await rs.update(roleInfo, undefined, 'system:public-info-viewer', { ...piv, metadata: { ...piv.metadata, annotations: { [AUTOUPDATE_ANNOTATION]: 'false' } }, rules: [] });
    // A default binding pointed at another role is replaced (roleRef cannot change in place).
    await rs.delete(bindingInfo, undefined, 'cluster-admin');
    await rs.create(bindingInfo, undefined, { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'cluster-admin' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' }, subjects: [] } as KObject);

    const r = await reconcileBootstrapPolicy(rs);
    assert.deepEqual(r.created, ['ClusterRoleBinding/cluster-admin']);
    assert.deepEqual([...r.updated].sort(), ['ClusterRole/system:discovery', 'ClusterRoleBinding/system:basic-user']);
    const basicAfter = await role('system:basic-user');
    assert.ok((basicAfter.rules as PolicyRule[]).some((x) => JSON.stringify(x) === JSON.stringify(extra)));
    assert.equal(basicAfter.metadata.labels?.mine, 'yes');
    assert.ok((await rulesOf('system:discovery')).length > 0);
    const subjects = ((await rs.get(bindingInfo, undefined, 'system:basic-user')).subjects as Array<{ name: string }>).map((s) => s.name);
    assert.deepEqual(subjects, ['carol', 'system:authenticated']);
    assert.deepEqual(await rulesOf('system:public-info-viewer'), []);
    const ca = await rs.get(bindingInfo, undefined, 'cluster-admin');
    assert.deepEqual(ca.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' });
    assert.deepEqual(ca.subjects, [{ kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: 'system:masters' }]);
  });

  test('a new role labelled aggregate-to-view reaches view, edit and admin on the next start', async () => {
    await rs.create(roleInfo, undefined, {
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole',
      metadata: { name: 'widgets-view', labels: { 'rbac.authorization.k8s.io/aggregate-to-view': 'true' } },
      rules: [{ verbs: ['get'], apiGroups: ['example.com'], resources: ['widgets'] }],
    } as KObject);
    await reconcileBootstrapPolicy(rs);
    for (const name of ['view', 'edit', 'admin', KOVA_ROLES.reader]) {
      assert.ok(rulesAllow(attrs('get', 'example.com', 'widgets'), await rulesOf(name)), name);
    }
    assert.ok(!rulesAllow(attrs('get', 'example.com', 'widgets'), await rulesOf('system:basic-user')));
  });
});
