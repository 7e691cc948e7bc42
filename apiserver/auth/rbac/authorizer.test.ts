// The RBAC authorizer and rule resolver on fixed snapshots of RBAC objects (as upstream's
// StaticRoles): rbac_test.go TestAuthorizer and rule_test.go TestDefaultRuleResolver ported as
// data, plus kube's reason strings, resolution errors, and the cost of a decision.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { KObject } from '../../../api/types.js';
import type { PolicyRule, RequestAttributes, UserInfo } from '../types.js';
import { RbacAuthorizer, NOT_READY_REASON } from './authorizer.js';
import { RbacState } from './cache.js';
import { compactString } from './rules.js';

const G = 'rbac.authorization.k8s.io';
type Subj = { kind: string; name: string; namespace?: string };
const subj = (s: string): Subj => {
  const [kind, ...rest] = s.split(':');
  return { kind, name: rest.join(':') };
};
const rule = (verbs: string, groups: string, resources: string, urls = ''): PolicyRule => {
  const split = (x: string) => x.split(',');
  const r: PolicyRule = { verbs: split(verbs) };
  // rbac_test.go's newRule splits every list, so "" becomes [""]: a core-group / empty entry.
  r.apiGroups = split(groups);
  r.resources = split(resources);
  r.nonResourceURLs = split(urls);
  return r;
};
const clusterRole = (name: string, ...rules: PolicyRule[]): KObject => ({ apiVersion: `${G}/v1`, kind: 'ClusterRole', metadata: { name }, rules });
const role = (ns: string, name: string, ...rules: PolicyRule[]): KObject => ({ apiVersion: `${G}/v1`, kind: 'Role', metadata: { name, namespace: ns }, rules });
let seq = 0;
const crb = (roleName: string, ...subjects: string[]): KObject => ({
  apiVersion: `${G}/v1`, kind: 'ClusterRoleBinding', metadata: { name: `crb-${++seq}` },
  roleRef: { apiGroup: G, kind: 'ClusterRole', name: roleName }, subjects: subjects.map(subj),
});
const rb = (ns: string, roleName: string, kind: 'Role' | 'ClusterRole', ...subjects: string[]): KObject => ({
  apiVersion: `${G}/v1`, kind: 'RoleBinding', metadata: { name: `rb-${++seq}`, namespace: ns },
  roleRef: { apiGroup: G, kind, name: roleName }, subjects: subjects.map(subj),
});

function authorizerOf(objects: KObject[]): RbacAuthorizer {
  const state = new RbacState();
  for (const o of objects) state.apply('ADDED', o);
  return new RbacAuthorizer({ ready: true, state });
}

function attrs(user: string, groups: string, verb: string, resource: string, subresource: string, namespace: string, apiGroup = '', name = ''): RequestAttributes {
  return {
    user: { name: user, groups: groups ? groups.split(',') : [] },
    verb, resourceRequest: true, path: '', apiGroup, apiVersion: 'v1', resource, subresource, namespace, name,
  };
}
function url(user: UserInfo, verb: string, path: string): RequestAttributes {
  return { user, verb, resourceRequest: false, path, apiGroup: '', apiVersion: '', resource: '', subresource: '', namespace: '', name: '' };
}

describe('RbacAuthorizer (rbac_test.go TestAuthorizer)', () => {
  it('a RoleBinding to a ClusterRole grants in its namespace only, to its users and groups', () => {
    const a = authorizerOf([clusterRole('admin', rule('*', '*', '*', '*')), rb('ns1', 'admin', 'ClusterRole', 'User:admin', 'Group:admins')]);
    const pass = [
      attrs('admin', '', 'get', 'Pods', '', 'ns1'), attrs('admin', '', 'watch', 'Pods', '', 'ns1'),
      attrs('admin', 'group1', 'watch', 'Foobar', '', 'ns1'), attrs('joe', 'admins', 'watch', 'Foobar', '', 'ns1'),
      attrs('joe', 'group1,admins', 'watch', 'Foobar', '', 'ns1'),
    ];
    const fail = [
      attrs('admin', '', 'GET', 'Pods', '', 'ns2'), attrs('admin', '', 'GET', 'Nodes', '', ''),
      attrs('admin', 'admins', 'GET', 'Pods', '', 'ns2'), attrs('admin', 'admins', 'GET', 'Nodes', '', ''),
    ];
    for (const x of pass) assert.equal(a.authorize(x).allowed, true, JSON.stringify(x));
    for (const x of fail) assert.equal(a.authorize(x).allowed, false, JSON.stringify(x));
  });

  it('non-resource URLs through ClusterRoleBindings', () => {
    const a = authorizerOf([
      clusterRole('non-resource-url-getter', { verbs: ['get'], nonResourceURLs: ['/apis'] }),
      clusterRole('non-resource-url', { verbs: ['*'], nonResourceURLs: ['/apis'] }),
      clusterRole('non-resource-url-prefix', { verbs: ['get'], nonResourceURLs: ['/apis/*'] }),
      crb('non-resource-url-getter', 'User:foo', 'Group:bar'),
      crb('non-resource-url', 'User:admin', 'Group:admin'),
      crb('non-resource-url-prefix', 'User:prefixed', 'Group:prefixed'),
    ]);
    const u = (name: string): UserInfo => ({ name, groups: [] });
    const g = (group: string): UserInfo => ({ name: '', groups: [group] });
    const pass = [
      url(u('foo'), 'get', '/apis'), url(g('bar'), 'get', '/apis'), url(u('admin'), 'get', '/apis'), url(g('admin'), 'get', '/apis'),
      url(u('admin'), 'watch', '/apis'), url(g('admin'), 'watch', '/apis'),
      url(u('prefixed'), 'get', '/apis/v1'), url(g('prefixed'), 'get', '/apis/v1'), url(u('prefixed'), 'get', '/apis/v1/foobar'), url(g('prefixed'), 'get', '/apis/v1/foorbar'),
    ];
    const fail = [
      url(u('foo'), 'watch', '/apis'), url(g('bar'), 'watch', '/apis'),
      url(u('foo'), 'get', '/api/v1'), url(g('bar'), 'get', '/api/v1'), url(u('admin'), 'get', '/api/v1'), url(g('admin'), 'get', '/api/v1'),
      url(u('prefixed'), 'get', '/api/v1'), url(g('prefixed'), 'get', '/api/v1'),
    ];
    for (const x of pass) assert.equal(a.authorize(x).allowed, true, `${x.user.name}|${x.user.groups} ${x.verb} ${x.path}`);
    for (const x of fail) assert.equal(a.authorize(x).allowed, false, `${x.user.name}|${x.user.groups} ${x.verb} ${x.path}`);
  });

  it('subresource resolution', () => {
    const plain = authorizerOf([clusterRole('admin', rule('*', '*', 'pods', '*')), rb('ns1', 'admin', 'ClusterRole', 'User:admin', 'Group:admins')]);
    assert.equal(plain.authorize(attrs('admin', '', 'get', 'pods', '', 'ns1')).allowed, true);
    assert.equal(plain.authorize(attrs('admin', '', 'get', 'pods', 'status', 'ns1')).allowed, false);
    const status = authorizerOf([clusterRole('admin', rule('*', '*', 'pods/status', '*')), rb('ns1', 'admin', 'ClusterRole', 'User:admin', 'Group:admins')]);
    assert.equal(status.authorize(attrs('admin', '', 'get', 'pods', 'status', 'ns1')).allowed, true);
    assert.equal(status.authorize(attrs('admin', '', 'get', 'pods', '', 'ns1')).allowed, false);
  });

  it('a RoleBinding to a Role uses the Role of its own namespace', () => {
    const a = authorizerOf([
      role('ns1', 'reader', rule('get,list', 'kova.dev', 'instances')),
      role('ns2', 'reader', rule('*', '*', '*')),
      rb('ns1', 'reader', 'Role', 'User:alice'),
    ]);
    assert.equal(a.authorize(attrs('alice', '', 'list', 'instances', '', 'ns1', 'kova.dev')).allowed, true);
    assert.equal(a.authorize(attrs('alice', '', 'delete', 'instances', '', 'ns1', 'kova.dev', 'x')).allowed, false);
    assert.equal(a.authorize(attrs('alice', '', 'list', 'instances', '', 'ns2', 'kova.dev')).allowed, false);
    assert.equal(a.authorize(attrs('alice', '', 'list', 'instances', '', '', 'kova.dev')).allowed, false, 'a cluster-wide list needs a cluster-wide grant');
  });

  it('service accounts: by namespace-qualified user name; a namespace-less subject means the binding namespace', () => {
    const a = authorizerOf([
      clusterRole('view', rule('get', '', 'configmaps')),
      rb('demo', 'view', 'ClusterRole', 'ServiceAccount:bot'),
      { ...crb('view'), subjects: [{ kind: 'ServiceAccount', name: 'ops', namespace: 'kube-system' }] },
    ]);
    const sa = (ns: string, name: string) => `system:serviceaccount:${ns}:${name}`;
    assert.equal(a.authorize(attrs(sa('demo', 'bot'), '', 'get', 'configmaps', '', 'demo')).allowed, true);
    assert.equal(a.authorize(attrs(sa('other', 'bot'), '', 'get', 'configmaps', '', 'demo')).allowed, false);
    assert.equal(a.authorize(attrs(sa('kube-system', 'ops'), '', 'get', 'configmaps', '', 'anywhere')).allowed, true);
  });

  it('system:masters may do anything, with no bindings at all', () => {
    const a = authorizerOf([]);
    assert.deepEqual(a.authorize(attrs('root', 'system:masters', 'delete', 'anything', '', 'x')), { allowed: true, reason: '' });
    assert.equal(a.authorize(url({ name: 'root', groups: ['system:masters'] }, 'get', '/metrics')).allowed, true);
  });
});

describe('RbacAuthorizer reasons', () => {
  it('names the binding, role and subject that allowed, as upstream', () => {
    const a = authorizerOf([
      clusterRole('edit', rule('*', 'kova.dev', 'instances')),
      { ...crb('edit', 'User:bob'), metadata: { name: 'bobs' } },
      { ...rb('demo', 'edit', 'ClusterRole', 'Group:devs', 'User:alice'), metadata: { name: 'devs-edit', namespace: 'demo' } },
      { ...rb('demo', 'edit', 'ClusterRole', 'ServiceAccount:ci'), metadata: { name: 'ci', namespace: 'demo' } },
    ]);
    assert.equal(a.authorize(attrs('bob', '', 'create', 'instances', '', 'demo', 'kova.dev')).reason, 'RBAC: allowed by ClusterRoleBinding "bobs" of ClusterRole "edit" to User "bob"');
    // The first subject of the binding that applies is the one named (Group before User here).
    assert.equal(a.authorize(attrs('alice', 'devs', 'create', 'instances', '', 'demo', 'kova.dev')).reason, 'RBAC: allowed by RoleBinding "devs-edit/demo" of ClusterRole "edit" to Group "devs"');
    assert.equal(a.authorize(attrs('system:serviceaccount:demo:ci', '', 'create', 'instances', '', 'demo', 'kova.dev')).reason, 'RBAC: allowed by RoleBinding "ci/demo" of ClusterRole "edit" to ServiceAccount "ci/demo"');
  });

  it('a denial says nothing, unless a binding of the user points at a missing role', () => {
    const a = authorizerOf([
      clusterRole('view', rule('get', 'kova.dev', 'instances')),
      rb('demo', 'view', 'ClusterRole', 'User:alice'),
      rb('demo', 'gone', 'Role', 'User:alice'),
      rb('demo', 'gone-too', 'ClusterRole', 'Group:system:authenticated'),
      { ...rb('demo', 'x', 'ClusterRole', 'User:alice'), roleRef: { apiGroup: G, kind: 'Thing', name: 'x' } },
      rb('demo', 'missing', 'Role', 'User:carol'),
    ]);
    assert.deepEqual(a.authorize(attrs('bob', '', 'delete', 'instances', '', 'demo', 'kova.dev', 'w')), { allowed: false, reason: '' });
    const d = a.authorize(attrs('alice', 'system:authenticated', 'delete', 'instances', '', 'demo', 'kova.dev', 'w'));
    assert.equal(d.allowed, false);
    assert.equal(d.reason, 'RBAC: [role.rbac.authorization.k8s.io "gone" not found, unsupported role reference kind: "Thing", clusterrole.rbac.authorization.k8s.io "gone-too" not found]');
    assert.equal(a.authorize(attrs('carol', '', 'get', 'instances', '', 'demo', 'kova.dev', 'w')).reason, 'RBAC: role.rbac.authorization.k8s.io "missing" not found');
    // Resolvable bindings still allow.
    assert.equal(a.authorize(attrs('alice', 'system:authenticated', 'get', 'instances', '', 'demo', 'kova.dev', 'w')).allowed, true);
  });

  it('denies with a reason until the cache has listed', () => {
    const a = new RbacAuthorizer({ ready: false, state: new RbacState() });
    assert.deepEqual(a.authorize(attrs('alice', '', 'get', 'instances', '', 'demo', 'kova.dev')), { allowed: false, reason: NOT_READY_REASON });
    assert.equal(a.authorize(attrs('root', 'system:masters', 'get', 'instances', '', 'demo', 'kova.dev')).allowed, true);
  });
});

describe('rulesFor (rule_test.go TestDefaultRuleResolver)', () => {
  const readPods = { verbs: ['GET', 'WATCH'], apiGroups: ['v1'], resources: ['pods'] };
  const readServices = { verbs: ['GET', 'WATCH'], apiGroups: ['v1'], resources: ['services'] };
  const writeNodes = { verbs: ['PUT', 'CREATE', 'UPDATE'], apiGroups: ['v1'], resources: ['nodes'] };
  const admin = { verbs: ['*'], apiGroups: ['*'], resources: ['*'] };
  const objects = [
    role('namespace1', 'readthings', readPods, readServices),
    clusterRole('cluster-admin', admin),
    clusterRole('write-nodes', writeNodes),
    rb('namespace1', 'readthings', 'Role', 'User:foobar', 'Group:group1'),
    crb('cluster-admin', 'User:admin', 'Group:admin'),
  ];
  const a = authorizerOf(objects);
  const cases: Array<{ user: UserInfo; namespace: string; rules: PolicyRule[] }> = [
    { user: { name: 'foobar', groups: [] }, namespace: 'namespace1', rules: [readPods, readServices] },
    { user: { name: 'foobar', groups: [] }, namespace: 'namespace2', rules: [] },
    // Without a namespace only cluster rules apply.
    { user: { name: 'foobar', groups: ['admin'] }, namespace: '', rules: [admin] },
    { user: { name: '', groups: [] }, namespace: '', rules: [] },
  ];
  for (const [i, c] of cases.entries()) {
    it(`case ${i}`, () => {
      const got = a.rulesFor(c.user, c.namespace);
      assert.deepEqual(got.errors, []);
      assert.equal(got.incomplete, false);
      assert.deepEqual(got.rules.map(compactString).sort(), c.rules.map(compactString).sort());
    });
  }
  it('cluster rules plus namespace rules, each binding once, with errors for missing roles', () => {
    const b = authorizerOf([...objects, rb('namespace1', 'nope', 'Role', 'User:foobar'), crb('cluster-admin', 'User:foobar', 'Group:group1')]);
    const got = b.rulesFor({ name: 'foobar', groups: ['group1'] }, 'namespace1');
    assert.deepEqual(got.rules.map(compactString).sort(), [admin, readPods, readServices].map(compactString).sort());
    assert.equal(got.incomplete, false, 'upstream reports unresolvable roles as errors only');
    assert.deepEqual(got.errors, ['role.rbac.authorization.k8s.io "nope" not found']);
  });
});

describe('cost of a decision', () => {
  it('with hundreds of bindings, authorize() looks only at the bindings naming the user or their groups', () => {
    const objects: KObject[] = [clusterRole('edit', rule('*', 'kova.dev', '*')), clusterRole('view', rule('get,list,watch', 'kova.dev', '*'))];
    for (let i = 0; i < 300; i++) {
      objects.push(rb(`project-${i % 30}`, 'edit', 'ClusterRole', `User:user-${i}`, `Group:team-${i}`));
      objects.push(crb('view', `User:auditor-${i}`));
    }
    objects.push(rb('project-7', 'edit', 'ClusterRole', 'User:alice'));
    const a = authorizerOf(objects);
    const alice = (ns: string, verb = 'create') => attrs('alice', 'system:authenticated', verb, 'instances', '', ns, 'kova.dev');
    const before = { ...a.stats };
    assert.equal(a.authorize(alice('project-7')).allowed, true);
    assert.equal(a.stats.bindingsVisited - before.bindingsVisited, 1, 'one binding names alice');
    assert.equal(a.stats.rulesEvaluated - before.rulesEvaluated, 1);
    const mid = { ...a.stats };
    assert.equal(a.authorize(alice('project-8')).allowed, false);
    assert.equal(a.stats.bindingsVisited - mid.bindingsVisited, 0, 'no binding of project-8 or cluster-wide names alice');
    // A user of a busy namespace still only sees their own bindings.
    const mid2 = { ...a.stats };
    assert.equal(a.authorize(attrs('user-37', 'team-67,system:authenticated', 'create', 'instances', '', 'project-7', 'kova.dev')).allowed, true);
    assert.ok(a.stats.bindingsVisited - mid2.bindingsVisited <= 2);
  });
});
