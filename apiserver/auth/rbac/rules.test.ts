// RBAC rule semantics against Kubernetes' own test tables (plugin/pkg/auth/authorizer/rbac
// rbac_test.go TestRuleMatches, component-helpers policy_comparator_test.go, pkg/registry/rbac
// validation rule_test.go TestAppliesTo and policy_compact_test.go), ported as data.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { PolicyRule, RequestAttributes, UserInfo } from '../types.js';
import { appliesTo, compactRules, compactString, covers, nonResourceURLCovers, ruleAllows, type Subject } from './rules.js';

const user: UserInfo = { name: 'u', groups: [] };
function resourceReq(verb: string, group: string, resource: string, subresource = '', name = ''): RequestAttributes {
  return { user, verb, resourceRequest: true, path: '', apiGroup: group, apiVersion: 'v1', resource, subresource, namespace: '', name };
}
function urlReq(verb: string, path: string): RequestAttributes {
  return { user, verb, resourceRequest: false, path, apiGroup: '', apiVersion: '', resource: '', subresource: '', namespace: '', name: '' };
}

describe('ruleAllows (rbac_test.go TestRuleMatches)', () => {
  // [verb, group, resource, subresource, expected]
  type Row = [string, string, string, string, boolean];
  const resourceCases: Array<{ name: string; rule: PolicyRule; rows: Row[] }> = [
    {
      name: 'star verb, exact match other',
      rule: { verbs: ['*'], apiGroups: ['group1'], resources: ['resource1'] },
      rows: [
        ['verb1', 'group1', 'resource1', '', true], ['verb1', 'group2', 'resource1', '', false],
        ['verb1', 'group1', 'resource2', '', false], ['verb1', 'group2', 'resource2', '', false],
        ['verb2', 'group1', 'resource1', '', true], ['verb2', 'group2', 'resource1', '', false],
        ['verb2', 'group1', 'resource2', '', false], ['verb2', 'group2', 'resource2', '', false],
      ],
    },
    {
      name: 'star group, exact match other',
      rule: { verbs: ['verb1'], apiGroups: ['*'], resources: ['resource1'] },
      rows: [
        ['verb1', 'group1', 'resource1', '', true], ['verb1', 'group2', 'resource1', '', true],
        ['verb1', 'group1', 'resource2', '', false], ['verb1', 'group2', 'resource2', '', false],
        ['verb2', 'group1', 'resource1', '', false], ['verb2', 'group2', 'resource1', '', false],
        ['verb2', 'group1', 'resource2', '', false], ['verb2', 'group2', 'resource2', '', false],
      ],
    },
    {
      name: 'star resource, exact match other',
      rule: { verbs: ['verb1'], apiGroups: ['group1'], resources: ['*'] },
      rows: [
        ['verb1', 'group1', 'resource1', '', true], ['verb1', 'group2', 'resource1', '', false],
        ['verb1', 'group1', 'resource2', '', true], ['verb1', 'group2', 'resource2', '', false],
        ['verb2', 'group1', 'resource1', '', false], ['verb2', 'group2', 'resource1', '', false],
        ['verb2', 'group1', 'resource2', '', false], ['verb2', 'group2', 'resource2', '', false],
      ],
    },
    {
      name: 'tuple expansion',
      rule: { verbs: ['verb1', 'verb2'], apiGroups: ['group1', 'group2'], resources: ['resource1', 'resource2'] },
      rows: [
        ['verb1', 'group1', 'resource1', '', true], ['verb1', 'group2', 'resource1', '', true],
        ['verb1', 'group1', 'resource2', '', true], ['verb1', 'group2', 'resource2', '', true],
        ['verb2', 'group1', 'resource1', '', true], ['verb2', 'group2', 'resource1', '', true],
        ['verb2', 'group1', 'resource2', '', true], ['verb2', 'group2', 'resource2', '', true],
      ],
    },
    {
      name: 'subresource expansion',
      rule: { verbs: ['*'], apiGroups: ['*'], resources: ['resource1/subresource1'] },
      rows: [
        ['verb1', 'group1', 'resource1', 'subresource1', true], ['verb1', 'group2', 'resource1', 'subresource2', false],
        ['verb1', 'group1', 'resource2', 'subresource1', false], ['verb1', 'group2', 'resource2', 'subresource1', false],
        ['verb2', 'group1', 'resource1', 'subresource1', true], ['verb2', 'group2', 'resource1', 'subresource2', false],
        ['verb2', 'group1', 'resource2', 'subresource1', false], ['verb2', 'group2', 'resource2', 'subresource1', false],
      ],
    },
    // rbac_test.go TestAuthorizer's subresource cases, and the */sub wildcard.
    {
      name: 'a resource rule does not reach its subresources',
      rule: { verbs: ['*'], apiGroups: ['*'], resources: ['pods'] },
      rows: [['get', '', 'pods', '', true], ['get', '', 'pods', 'status', false]],
    },
    {
      name: 'a subresource rule does not reach its resource',
      rule: { verbs: ['*'], apiGroups: ['*'], resources: ['pods/status'] },
      rows: [['get', '', 'pods', 'status', true], ['get', '', 'pods', '', false]],
    },
    {
      name: '*/subresource matches that subresource of every resource',
      rule: { verbs: ['get'], apiGroups: ['kova.dev'], resources: ['*/status'] },
      rows: [
        ['get', 'kova.dev', 'instances', 'status', true], ['get', 'kova.dev', 'hosts', 'status', true],
        ['get', 'kova.dev', 'instances', '', false], ['get', 'kova.dev', 'instances', 'console', false],
      ],
    },
    {
      name: 'resource/* is no wildcard (upstream matches it literally)',
      rule: { verbs: ['get'], apiGroups: ['kova.dev'], resources: ['instances/*'] },
      rows: [['get', 'kova.dev', 'instances', 'status', false], ['get', 'kova.dev', 'instances', '', false], ['get', 'kova.dev', 'instances', '*', true]],
    },
    {
      name: '* resource covers subresources too',
      rule: { verbs: ['get'], apiGroups: ['kova.dev'], resources: ['*'] },
      rows: [['get', 'kova.dev', 'instances', 'console', true]],
    },
  ];
  for (const c of resourceCases) {
    it(c.name, () => {
      for (const [verb, group, resource, sub, want] of c.rows) {
        assert.equal(ruleAllows(resourceReq(verb, group, resource, sub), c.rule), want, `${verb} ${group}/${resource}/${sub}`);
      }
    });
  }

  const urlCases: Array<{ name: string; rule: PolicyRule; rows: Array<[string, string, boolean]> }> = [
    {
      name: 'star nonresource, exact match other',
      rule: { verbs: ['verb1'], nonResourceURLs: ['*'] },
      rows: [
        ['verb1', '/foo', true], ['verb1', '/foo/bar', true], ['verb1', '/foo/baz', true], ['verb1', '/foo/bar/one', true], ['verb1', '/foo/baz/one', true],
        ['verb2', '/foo', false], ['verb2', '/foo/bar', false], ['verb2', '/foo/baz', false], ['verb2', '/foo/bar/one', false], ['verb2', '/foo/baz/one', false],
      ],
    },
    {
      name: 'star nonresource subpath',
      rule: { verbs: ['verb1'], nonResourceURLs: ['/foo/*'] },
      rows: [
        ['verb1', '/foo', false], ['verb1', '/foo/bar', true], ['verb1', '/foo/baz', true], ['verb1', '/foo/bar/one', true], ['verb1', '/foo/baz/one', true],
        ['verb1', '/notfoo', false], ['verb1', '/notfoo/bar', false], ['verb1', '/notfoo/baz', false], ['verb1', '/notfoo/bar/one', false], ['verb1', '/notfoo/baz/one', false],
      ],
    },
    {
      name: 'star verb, exact nonresource',
      rule: { verbs: ['*'], nonResourceURLs: ['/foo', '/foo/bar/one'] },
      rows: [
        ['verb1', '/foo', true], ['verb1', '/foo/bar', false], ['verb1', '/foo/baz', false], ['verb1', '/foo/bar/one', true], ['verb1', '/foo/baz/one', false],
        ['verb2', '/foo', true], ['verb2', '/foo/bar', false], ['verb2', '/foo/baz', false], ['verb2', '/foo/bar/one', true], ['verb2', '/foo/baz/one', false],
      ],
    },
    {
      // TestAuthorizer's non-resource-url case: /apis/* covers /apis/v1 but not /apis or /api/v1.
      name: 'prefix rule from TestAuthorizer',
      rule: { verbs: ['get'], nonResourceURLs: ['/apis/*'] },
      rows: [['get', '/apis/v1', true], ['get', '/apis/v1/foobar', true], ['get', '/api/v1', false], ['get', '/apis', false], ['watch', '/apis/v1', false]],
    },
  ];
  for (const c of urlCases) {
    it(c.name, () => {
      for (const [verb, path, want] of c.rows) assert.equal(ruleAllows(urlReq(verb, path), c.rule), want, `${verb} ${path}`);
    });
  }

  it('a resource rule never matches a non-resource request, nor a URL rule a resource request', () => {
    assert.equal(ruleAllows(urlReq('get', '/apis'), { verbs: ['*'], apiGroups: ['*'], resources: ['*'] }), false);
    assert.equal(ruleAllows(resourceReq('get', '', 'pods'), { verbs: ['*'], nonResourceURLs: ['*'] }), false);
  });

  it('resourceNames: empty allows any name; otherwise only requests naming one of them (never create/list/watch without a name)', () => {
    const named: PolicyRule = { verbs: ['*'], apiGroups: ['kova.dev'], resources: ['instances'], resourceNames: ['web-1'] };
    assert.equal(ruleAllows(resourceReq('get', 'kova.dev', 'instances', '', 'web-1'), named), true);
    assert.equal(ruleAllows(resourceReq('get', 'kova.dev', 'instances', '', 'web-2'), named), false);
    for (const verb of ['create', 'list', 'watch', 'deletecollection']) {
      assert.equal(ruleAllows(resourceReq(verb, 'kova.dev', 'instances'), named), false, verb);
    }
    // A watch of one object (fieldSelector metadata.name) carries the name, as in kube.
    assert.equal(ruleAllows(resourceReq('watch', 'kova.dev', 'instances', '', 'web-1'), named), true);
    const any: PolicyRule = { verbs: ['*'], apiGroups: ['kova.dev'], resources: ['instances'], resourceNames: [] };
    assert.equal(ruleAllows(resourceReq('create', 'kova.dev', 'instances'), any), true);
  });

  it('"" apiGroup is the core group, not a wildcard', () => {
    const core: PolicyRule = { verbs: ['get'], apiGroups: [''], resources: ['namespaces'] };
    assert.equal(ruleAllows(resourceReq('get', '', 'namespaces'), core), true);
    assert.equal(ruleAllows(resourceReq('get', 'kova.dev', 'namespaces'), core), false);
  });
});

describe('appliesTo (rule_test.go TestAppliesTo)', () => {
  const cases: Array<{ name: string; subjects: Subject[]; user: UserInfo; namespace: string; want: boolean }> = [
    { name: 'single subject that matches username', subjects: [{ kind: 'User', name: 'foobar' }], user: { name: 'foobar', groups: [] }, namespace: '', want: true },
    { name: 'multiple subjects, one that matches username', subjects: [{ kind: 'User', name: 'barfoo' }, { kind: 'User', name: 'foobar' }], user: { name: 'foobar', groups: [] }, namespace: '', want: true },
    { name: 'multiple subjects, none that match username', subjects: [{ kind: 'User', name: 'barfoo' }, { kind: 'User', name: 'foobar' }], user: { name: 'zimzam', groups: [] }, namespace: '', want: false },
    { name: 'multiple subjects, one that match group', subjects: [{ kind: 'User', name: 'barfoo' }, { kind: 'Group', name: 'foobar' }], user: { name: 'zimzam', groups: ['foobar'] }, namespace: '', want: true },
    { name: 'multiple subjects, one that match group, should ignore namespace', subjects: [{ kind: 'User', name: 'barfoo' }, { kind: 'Group', name: 'foobar' }], user: { name: 'zimzam', groups: ['foobar'] }, namespace: 'namespace1', want: true },
    {
      name: 'multiple subjects with a service account that matches',
      subjects: [{ kind: 'User', name: 'barfoo' }, { kind: 'Group', name: 'foobar' }, { kind: 'ServiceAccount', namespace: 'kube-system', name: 'default' }],
      user: { name: 'system:serviceaccount:kube-system:default', groups: [] }, namespace: 'default', want: true,
    },
    { name: '* user subject name doesn\'t match all users', subjects: [{ kind: 'User', name: '*' }], user: { name: 'foobar', groups: [] }, namespace: 'default', want: false },
    {
      name: 'binding to all authenticated and unauthenticated subjects matches authenticated user',
      subjects: [{ kind: 'Group', name: 'system:authenticated' }, { kind: 'Group', name: 'system:unauthenticated' }],
      user: { name: 'foobar', groups: ['system:authenticated'] }, namespace: 'default', want: true,
    },
    {
      name: 'binding to all authenticated and unauthenticated subjects matches anonymous user',
      subjects: [{ kind: 'Group', name: 'system:authenticated' }, { kind: 'Group', name: 'system:unauthenticated' }],
      user: { name: 'system:anonymous', groups: ['system:unauthenticated'] }, namespace: 'default', want: true,
    },
    // Beyond the upstream table: a namespace-less service account takes the binding's namespace.
    { name: 'service account defaults to the binding namespace', subjects: [{ kind: 'ServiceAccount', name: 'bot' }], user: { name: 'system:serviceaccount:demo:bot', groups: [] }, namespace: 'demo', want: true },
    { name: 'service account of another namespace', subjects: [{ kind: 'ServiceAccount', name: 'bot' }], user: { name: 'system:serviceaccount:demo:bot', groups: [] }, namespace: 'other', want: false },
    { name: 'namespace-less service account in a cluster binding matches nobody', subjects: [{ kind: 'ServiceAccount', name: 'bot' }], user: { name: 'system:serviceaccount::bot', groups: [] }, namespace: '', want: false },
    { name: 'unknown subject kind', subjects: [{ kind: 'Robot', name: 'foobar' }], user: { name: 'foobar', groups: ['foobar'] }, namespace: '', want: false },
  ];
  for (const c of cases) it(c.name, () => assert.equal(appliesTo(c.user, c.subjects, c.namespace) >= 0, c.want));
  it('returns the index of the first subject that applies', () => {
    assert.equal(appliesTo({ name: 'a', groups: ['g'] }, [{ kind: 'User', name: 'b' }, { kind: 'Group', name: 'g' }, { kind: 'User', name: 'a' }], ''), 1);
  });
});

describe('covers (policy_comparator_test.go)', () => {
  type Case = { name: string; owner: PolicyRule[]; servant: PolicyRule[]; covered: boolean; missing: PolicyRule[] };
  const r = (apiGroups: string[], verbs: string[], resources: string[], resourceNames?: string[]): PolicyRule => ({ apiGroups, verbs, resources, ...(resourceNames ? { resourceNames } : {}) });
  const cases: Case[] = [
    { name: 'ExactMatch', owner: [r(['v1'], ['get'], ['builds'])], servant: [r(['v1'], ['get'], ['builds'])], covered: true, missing: [] },
    { name: 'SubresourceWildcard', owner: [r(['v1'], ['get'], ['*/scale'])], servant: [r(['v1'], ['get'], ['foo/scale'])], covered: true, missing: [] },
    {
      name: 'MultipleRulesCoveringSingleRule',
      owner: [r(['v1'], ['delete'], ['deployments']), r(['v1'], ['delete'], ['builds']), r(['v1'], ['update'], ['builds', 'deployments'])],
      servant: [r(['v1'], ['delete', 'update'], ['builds', 'deployments'])], covered: true, missing: [],
    },
    {
      name: 'MultipleAPIGroupsCoveringSingleRule',
      owner: [
        r(['group1'], ['delete'], ['deployments']), r(['group1'], ['delete'], ['builds']), r(['group1'], ['update'], ['builds', 'deployments']),
        r(['group2'], ['delete'], ['deployments']), r(['group2'], ['delete'], ['builds']), r(['group2'], ['update'], ['builds', 'deployments']),
      ],
      servant: [r(['group1', 'group2'], ['delete', 'update'], ['builds', 'deployments'])], covered: true, missing: [],
    },
    {
      name: 'SingleAPIGroupsCoveringMultiple',
      owner: [r(['group1', 'group2'], ['delete', 'update'], ['builds', 'deployments'])],
      servant: [
        r(['group1'], ['delete'], ['deployments']), r(['group1'], ['delete'], ['builds']), r(['group1'], ['update'], ['builds', 'deployments']),
        r(['group2'], ['delete'], ['deployments']), r(['group2'], ['delete'], ['builds']), r(['group2'], ['update'], ['builds', 'deployments']),
      ],
      covered: true, missing: [],
    },
    {
      name: 'MultipleRulesMissingSingleVerbResourceCombination',
      owner: [r(['v1'], ['delete', 'update'], ['builds', 'deployments']), r(['v1'], ['delete'], ['pods'])],
      servant: [r(['v1'], ['delete', 'update'], ['builds', 'deployments', 'pods'])], covered: false, missing: [r(['v1'], ['update'], ['pods'])],
    },
    { name: 'APIGroupStarCoveringMultiple', owner: [r(['*'], ['get'], ['roles'])], servant: [r(['group1', 'group2'], ['get'], ['roles'])], covered: true, missing: [] },
    { name: 'EnumerationNotCoveringAPIGroupStar', owner: [r(['dummy-group'], ['get'], ['roles'])], servant: [r(['*'], ['get'], ['roles'])], covered: false, missing: [r(['*'], ['get'], ['roles'])] },
    { name: 'APIGroupStarCoveringStar', owner: [r(['*'], ['get'], ['roles'])], servant: [r(['*'], ['get'], ['roles'])], covered: true, missing: [] },
    { name: 'VerbStarCoveringMultiple', owner: [r(['v1'], ['*'], ['roles'])], servant: [r(['v1'], ['watch', 'list'], ['roles'])], covered: true, missing: [] },
    {
      name: 'EnumerationNotCoveringVerbStar',
      owner: [r(['v1'], ['get', 'list', 'watch', 'create', 'update', 'delete', 'exec'], ['roles'])],
      servant: [r(['v1'], ['*'], ['roles'])], covered: false, missing: [r(['v1'], ['*'], ['roles'])],
    },
    { name: 'VerbStarCoveringStar', owner: [r(['v1'], ['*'], ['roles'])], servant: [r(['v1'], ['*'], ['roles'])], covered: true, missing: [] },
    { name: 'ResourceStarCoveringMultiple', owner: [r(['v1'], ['get'], ['*'])], servant: [r(['v1'], ['get'], ['resourcegroup:deployments'])], covered: true, missing: [] },
    {
      name: 'EnumerationNotCoveringResourceStar',
      owner: [r(['v1'], ['get'], ['roles', 'resourcegroup:deployments'])],
      servant: [r(['v1'], ['get'], ['*'])], covered: false, missing: [r(['v1'], ['get'], ['*'])],
    },
    { name: 'ResourceStarCoveringStar', owner: [r(['v1'], ['get'], ['*'])], servant: [r(['v1'], ['get'], ['*'])], covered: true, missing: [] },
    { name: 'ResourceNameEmptyCoveringMultiple', owner: [r(['v1'], ['get'], ['pods'], [])], servant: [r(['v1'], ['get'], ['pods'], ['foo', 'bar'])], covered: true, missing: [] },
    {
      name: 'EnumerationNotCoveringResourceNameEmpty',
      owner: [r(['v1'], ['get'], ['pods'], ['foo', 'bar'])],
      servant: [r(['v1'], ['get'], ['pods'], [])], covered: false, missing: [r(['v1'], ['get'], ['pods'])],
    },
    { name: 'NonResourceURLs', owner: [{ nonResourceURLs: ['/apis'], verbs: ['*'] }], servant: [{ nonResourceURLs: ['/apis'], verbs: ['*'] }], covered: true, missing: [] },
    { name: 'NonResourceURLsStar', owner: [{ nonResourceURLs: ['*'], verbs: ['*'] }], servant: [{ nonResourceURLs: ['/apis', '/apis/v1', '/'], verbs: ['*'] }], covered: true, missing: [] },
    {
      name: 'NonResourceURLsStarAfterPrefixDoesntCover',
      owner: [{ nonResourceURLs: ['/apis/*'], verbs: ['*'] }],
      servant: [{ nonResourceURLs: ['/apis', '/apis/v1'], verbs: ['get'] }], covered: false, missing: [{ nonResourceURLs: ['/apis'], verbs: ['get'] }],
    },
    { name: 'NonResourceURLsStarAfterPrefix', owner: [{ nonResourceURLs: ['/apis/*'], verbs: ['*'] }], servant: [{ nonResourceURLs: ['/apis/v1/foo', '/apis/v1'], verbs: ['get'] }], covered: true, missing: [] },
    {
      name: 'NonResourceURLsWithOtherFields',
      owner: [{ ...r(['v1'], ['get'], ['builds']), nonResourceURLs: ['/apis'] }],
      servant: [{ ...r(['v1'], ['get'], ['builds']), nonResourceURLs: ['/apis'] }], covered: true, missing: [],
    },
    {
      name: 'NonResourceURLsWithOtherFieldsFailure',
      owner: [r(['v1'], ['get'], ['builds'])],
      servant: [{ ...r(['v1'], ['get'], ['builds']), nonResourceURLs: ['/apis'] }], covered: false, missing: [{ nonResourceURLs: ['/apis'], verbs: ['get'] }],
    },
    // Beyond the upstream table: a specific resource never covers other resources' subresources.
    { name: 'resource does not cover its subresource', owner: [r(['kova.dev'], ['*'], ['instances'])], servant: [r(['kova.dev'], ['get'], ['instances/console'])], covered: false, missing: [r(['kova.dev'], ['get'], ['instances/console'])] },
  ];
  const norm = (rules: PolicyRule[]) => rules.map(compactString).sort();
  for (const c of cases) {
    it(c.name, () => {
      const got = covers(c.owner, c.servant);
      assert.equal(got.covered, c.covered);
      assert.deepEqual(norm(got.missing), norm(c.missing));
    });
  }

  it('nonResourceURLCovers (TestNonResourceURLCovers)', () => {
    const rows: Array<[string, string, boolean]> = [
      ['*', '', true], ['*', '/', true], ['*', '/api', true], ['/*', '', false], ['/*', '/', true], ['/*', '/foo', true],
      ['/api', '/api', true], ['/apis', '/api', false], ['/api/v1', '/api', false], ['/api/v1', '/api/v1', true],
      ['/api/*', '/api/v1', true], ['/api/*', '/api', false], ['/api/*/*', '/api/v1', false], ['/*/v1/*', '/api/v1', false],
    ];
    for (const [owner, path, want] of rows) assert.equal(nonResourceURLCovers(owner, path), want, `${owner} ${path}`);
  });
});

describe('compactRules (policy_compact_test.go) and compactString', () => {
  const sortRules = (rules: PolicyRule[]) => rules.map((x) => compactString(x)).sort();
  it('merges simple rules that differ only by verb', () => {
    const rules: PolicyRule[] = [
      { verbs: ['get'], apiGroups: [''], resources: ['builds'] },
      { verbs: ['list'], apiGroups: [''], resources: ['builds'] },
      { verbs: ['update', 'patch'], apiGroups: [''], resources: ['builds'] },
      { verbs: ['create'], apiGroups: ['extensions'], resources: ['daemonsets'] },
      { verbs: ['delete'], apiGroups: ['extensions'], resources: ['daemonsets'] },
      { verbs: ['patch'], apiGroups: ['extensions'], resources: ['daemonsets'], resourceNames: [''] },
      { verbs: ['get'], apiGroups: ['extensions'], resources: ['daemonsets'], resourceNames: ['foo'] },
      { verbs: ['list'], apiGroups: ['extensions'], resources: ['daemonsets'], resourceNames: ['foo'] },
      { verbs: ['educate'], apiGroups: [''], resources: ['dolphins'] },
      { verbs: [], apiGroups: [''], resources: ['pirates'] },
      { verbs: [], apiGroups: [''], resources: ['pods'] },
      { verbs: ['create'], apiGroups: [''], resources: ['pods'] },
    ];
    const before = JSON.stringify(rules);
    const got = compactRules(rules);
    assert.equal(JSON.stringify(rules), before, 'the input is not mutated');
    assert.deepEqual(sortRules(got), sortRules([
      { verbs: ['create', 'delete'], apiGroups: ['extensions'], resources: ['daemonsets'] },
      { verbs: ['patch'], apiGroups: ['extensions'], resources: ['daemonsets'], resourceNames: [''] },
      { verbs: ['get', 'list'], apiGroups: ['extensions'], resources: ['daemonsets'], resourceNames: ['foo'] },
      { verbs: ['get', 'list', 'update', 'patch'], apiGroups: [''], resources: ['builds'] },
      { verbs: ['educate'], apiGroups: [''], resources: ['dolphins'] },
      { verbs: [], apiGroups: [''], resources: ['pirates'] },
      { verbs: ['create'], apiGroups: [''], resources: ['pods'] },
    ]));
    assert.ok(covers(got, rules).covered && covers(rules, got).covered);
  });
  it('leaves complex rules alone', () => {
    const complex: PolicyRule[][] = [
      [{ verbs: ['get'], apiGroups: ['', 'builds.openshift.io'], resources: ['builds'] }, { verbs: ['list'], apiGroups: ['', 'builds.openshift.io'], resources: ['builds'] }],
      [{ verbs: ['get'], apiGroups: [''], resources: ['builds', 'images'] }, { verbs: ['list'], apiGroups: [''], resources: ['builds', 'images'] }],
      [{ verbs: ['get'], apiGroups: [''], resources: ['builds'], resourceNames: ['mybuild'] }, { verbs: ['list'], apiGroups: [''], resources: ['builds'], resourceNames: ['mybuild2'] }],
      [{ verbs: ['get'], apiGroups: [''], resources: ['builds'], nonResourceURLs: ['/'] }, { verbs: ['get'], apiGroups: [''], resources: ['builds'], nonResourceURLs: ['/foo'] }],
    ];
    for (const rules of complex) assert.deepEqual(sortRules(compactRules(rules)), sortRules(rules));
  });
  it('compactString prints like rbacv1helpers.CompactString', () => {
    assert.equal(compactString({ verbs: ['get', 'list'], apiGroups: ['kova.dev'], resources: ['instances'], resourceNames: ['a'] }), '{APIGroups:["kova.dev"], Resources:["instances"], ResourceNames:["a"], Verbs:["get" "list"]}');
    assert.equal(compactString({ verbs: ['get'], nonResourceURLs: ['/healthz'] }), '{NonResourceURLs:["/healthz"], Verbs:["get"]}');
  });
});
