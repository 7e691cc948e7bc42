// The review endpoints on a real API server (real etcd), with a small rule-table authorizer: each
// review is authorized as a create of its resource, answers for the right user, reads JSON and
// the protobuf kubectl sends, and refuses malformed specs with 422s naming the field. TokenReview
// rows are ported from kube's pkg/registry/authentication/tokenreview (storage.go and its test).
import { startTestResourceStore } from '../../testing/resource-store.js';
import type { TestResourceStore } from '../../testing/resource-store.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { defaultCrdDir, Registry } from '../../api/registry.js';
import { Validator } from '../../api/validation.js';
import { Store } from '../../store/store.js';
import type { TestEtcd } from '../../testing/etcd.js';
import { ResourceStore } from '../resource-store.js';
import { ApiServer } from '../server.js';
import { REVIEW_RESOURCES, Reviews } from './reviews.js';
import type { Authenticator, Authorizer, PolicyRule, RequestAttributes, RuleResolver, UserInfo } from './types.js';
import { SYSTEM_AUTHENTICATED } from './types.js';

// Who may do what, by user name: [verb, group, resource, namespace ('*' any)].
const GRANTS: Record<string, Array<[string, string, string, string]>> = {
  alice: [
    ['create', 'authorization.k8s.io', 'selfsubjectaccessreviews', '*'],
    ['create', 'authorization.k8s.io', 'selfsubjectrulesreviews', '*'],
    ['create', 'authentication.k8s.io', 'selfsubjectreviews', '*'],
    ['list', 'kova.dev', 'instances', 'demo'],
  ],
  boss: [['create', 'authorization.k8s.io', 'subjectaccessreviews', '*']],
  bob: [['get', 'kova.dev', 'flavors', '*']],
  delegator: [['create', 'authentication.k8s.io', 'tokenreviews', '*']],
};

const tableAuthorizer: Authorizer & RuleResolver = {
  authorize(a: RequestAttributes) {
    if (!a.resourceRequest) {
      if (a.verb === 'get' && a.path.startsWith('/api')) return { allowed: true }; // discovery
      return a.path === '/healthz' && a.user.groups.includes('ops') ? { allowed: true, reason: 'ops group' } : { allowed: false };
    }
    const ok = (GRANTS[a.user.name] ?? []).some(([v, g, r, ns]) => v === a.verb && g === a.apiGroup && r === a.resource && (ns === '*' || ns === a.namespace));
    return ok ? { allowed: true, reason: `table grants ${a.user.name}` } : { allowed: false, reason: 'not in the table' };
  },
  rulesFor(user: UserInfo, namespace: string) {
    const rules: PolicyRule[] = (GRANTS[user.name] ?? [])
      .filter(([, , , ns]) => ns === '*' || ns === namespace)
      .map(([v, g, r]) => ({ verbs: [v], apiGroups: [g], resources: [r] }));
    rules.push({ verbs: ['get'], nonResourceURLs: ['/version'] });
    return { rules, incomplete: false, errors: user.name === 'bob' ? ['role "gone" not found'] : [] };
  },
};

/** The user is whoever the X-Test-User header names (groups in X-Test-Groups). */
const headerAuth: Authenticator = {
  authenticate(req) {
    const name = req.headers['x-test-user'];
    if (typeof name !== 'string') return undefined;
    const groups = String(req.headers['x-test-groups'] ?? '').split(',').filter(Boolean);
    return { name, uid: `uid-${name}`, groups: [...groups, SYSTEM_AUTHENTICATED], extra: { scopes: ['a', 'b'] } };
  },
};

/** Bearer tokens TokenReview asks about: a table, and one whose check fails (a broken token store). */
const tokenTable: Authenticator = {
  authenticate(req) {
    const token = /^Bearer (.*)$/.exec(req.headers.authorization ?? '')?.[1];
    if (token === 'broken') throw new Error('token store unavailable');
    if (token !== 'prom-token') return undefined;
    return { name: 'prometheus', uid: 'uid-prom', groups: ['system:monitoring', SYSTEM_AUTHENTICATED], extra: { 'authentication.kova.dev/token-id': ['abc'] } };
  },
};
/** Asked after the table: sees only the token (no client certificate, no other header of the caller). */
const seen: Array<{ headers: string[]; socket: unknown }> = [];
const recorder: Authenticator = {
  authenticate(req) {
    seen.push({ headers: Object.keys(req.headers), socket: (req.socket as { encrypted?: boolean }).encrypted });
    return undefined;
  },
};

let env: TestResourceStore;
let store: Store;
let server: ApiServer;
let port: number;

before(async () => {
  env = await startTestResourceStore();
  store = env.store;
  const registry = env.registry;
  const resources = env.resources;
  server = new ApiServer({ registry, resources, token: 'admin-token-for-tests', authenticators: [headerAuth], authorizer: tableAuthorizer, reviews: new Reviews({ rules: tableAuthorizer, tokenAuthenticators: [tokenTable, recorder] }) });
  port = (await server.listen('127.0.0.1', 0)).port;
});

after(async () => {
  await server?.close();
  await env?.stop();
});

function post(path: string, user: string, body: Buffer | string, contentType = 'application/json', groups = ''): Promise<{ code: number; json: Record<string, any> }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', headers: { 'Content-Type': contentType, 'X-Test-User': user, 'X-Test-Groups': groups } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ code: res.statusCode!, json: text ? JSON.parse(text) : {} }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function get(path: string): Promise<Record<string, any>> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, headers: { 'X-Test-User': 'alice' } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve(JSON.parse(text)));
    }).on('error', reject);
  });
}

// A minimal protobuf writer, enough for the k8s envelope and string/bool/message fields.
function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}
const field = (num: number, payload: Buffer | string) => {
  const b = typeof payload === 'string' ? Buffer.from(payload) : payload;
  return Buffer.concat([varint((num << 3) | 2), varint(b.length), b]);
};
const envelope = (apiVersion: string, kind: string, raw: Buffer) =>
  Buffer.concat([Buffer.from([0x6b, 0x38, 0x73, 0x00]), field(1, Buffer.concat([field(1, apiVersion), field(2, kind)])), field(2, raw)]);

const SSAR = '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews';
const SAR = '/apis/authorization.k8s.io/v1/subjectaccessreviews';
const SSRR = '/apis/authorization.k8s.io/v1/selfsubjectrulesreviews';
const SSR = '/apis/authentication.k8s.io/v1/selfsubjectreviews';
const ra = (verb: string, group: string, resource: string, namespace = '') => JSON.stringify({ spec: { resourceAttributes: { verb, group, resource, namespace } } });

describe('SelfSubjectAccessReview', () => {
  test('answers yes and no for the caller, 201, in JSON', async () => {
    const yes = await post(SSAR, 'alice', ra('list', 'kova.dev', 'instances', 'demo'));
    assert.equal(yes.code, 201);
    assert.equal(yes.json.kind, 'SelfSubjectAccessReview');
    assert.equal(yes.json.apiVersion, 'authorization.k8s.io/v1');
    assert.deepEqual(yes.json.status, { allowed: true, reason: 'table grants alice' });
    const no = await post(SSAR, 'alice', ra('list', 'kova.dev', 'instances', 'other'));
    assert.equal(no.code, 201);
    assert.deepEqual(no.json.status, { allowed: false });
    assert.deepEqual(no.json.spec.resourceAttributes, { verb: 'list', group: 'kova.dev', resource: 'instances', namespace: 'other' });
  });

  test('non-resource attributes', async () => {
    const r = await post(SSAR, 'alice', JSON.stringify({ spec: { nonResourceAttributes: { verb: 'get', path: '/healthz' } } }));
    assert.equal(r.json.status.allowed, false);
  });

  test('asking is itself authorized: 403 in Kubernetes wording', async () => {
    const r = await post(SSAR, 'bob', ra('get', 'kova.dev', 'flavors'));
    assert.equal(r.code, 403);
    assert.equal(r.json.message, 'selfsubjectaccessreviews.authorization.k8s.io is forbidden: User "bob" cannot create resource "selfsubjectaccessreviews" in API group "authorization.k8s.io" at the cluster scope: not in the table');
  });

  test('a protobuf body, as kubectl auth can-i sends it', async () => {
    const attrs = Buffer.concat([field(1, 'demo'), field(2, 'list'), field(3, 'kova.dev'), field(5, 'instances')]);
    const raw = Buffer.concat([field(1, field(1, 'x')), field(2, field(1, attrs))]);
    const r = await post(SSAR, 'alice', envelope('authorization.k8s.io/v1', 'SelfSubjectAccessReview', raw), 'application/vnd.kubernetes.protobuf');
    assert.equal(r.code, 201, JSON.stringify(r.json));
    assert.equal(r.json.status.allowed, true);
    assert.equal(r.json.metadata.name, 'x');
    assert.equal(r.json.spec.resourceAttributes.resource, 'instances');
  });

  test('a spec with neither or both attributes is a 422 naming the field', async () => {
    const none = await post(SSAR, 'alice', '{"spec": {}}');
    assert.equal(none.code, 422);
    assert.equal(none.json.details.causes[0].field, 'spec.resourceAttributes');
    const both = await post(SSAR, 'alice', JSON.stringify({ spec: { resourceAttributes: { verb: 'get' }, nonResourceAttributes: { path: '/x', verb: 'get' } } }));
    assert.equal(both.code, 422);
    assert.equal(both.json.details.causes[0].field, 'spec.nonResourceAttributes');
  });

  test('the wrong kind or a body that is not an object is a 400', async () => {
    assert.equal((await post(SSAR, 'alice', '{"kind": "SubjectAccessReview", "spec": {}}')).code, 400);
    assert.equal((await post(SSAR, 'alice', '[]')).code, 400);
    assert.equal((await post(SSAR, 'alice', '{"apiVersion": "v1"}')).code, 400);
    assert.equal((await post(SSAR, 'alice', '{"spec": [[]]}')).code, 400);
  });
});

describe('SubjectAccessReview', () => {
  test('only for those allowed to create subjectaccessreviews', async () => {
    const r = await post(SAR, 'alice', JSON.stringify({ spec: { user: 'bob', resourceAttributes: { verb: 'get', group: 'kova.dev', resource: 'flavors' } } }));
    assert.equal(r.code, 403);
    assert.match(r.json.message, /User "alice" cannot create resource "subjectaccessreviews" in API group "authorization.k8s.io" at the cluster scope/);
  });

  test('answers for the user in spec, not the caller', async () => {
    const bob = await post(SAR, 'boss', JSON.stringify({ spec: { user: 'bob', resourceAttributes: { verb: 'get', group: 'kova.dev', resource: 'flavors' } } }));
    assert.equal(bob.code, 201);
    assert.equal(bob.json.status.allowed, true);
    const boss = await post(SAR, 'boss', JSON.stringify({ spec: { user: 'boss', resourceAttributes: { verb: 'get', group: 'kova.dev', resource: 'flavors' } } }));
    assert.equal(boss.json.status.allowed, false);
    // Groups only: what the authorizer sees is exactly the spec, no implied system:authenticated.
    const ops = await post(SAR, 'boss', JSON.stringify({ spec: { groups: ['ops'], nonResourceAttributes: { verb: 'get', path: '/healthz' } } }));
    assert.equal(ops.json.status.allowed, true);
  });

  test('no user and no group is a 422 on spec.user', async () => {
    const r = await post(SAR, 'boss', JSON.stringify({ spec: { resourceAttributes: { verb: 'get' } } }));
    assert.equal(r.code, 422);
    assert.equal(r.json.details.causes[0].field, 'spec.user');
  });

  test('protobuf with extra', async () => {
    const attrs = Buffer.concat([field(2, 'get'), field(3, 'kova.dev'), field(5, 'flavors')]);
    const extra = Buffer.concat([field(1, 'scopes'), field(2, Buffer.concat([field(1, 'x'), field(1, 'y')]))]);
    const spec = Buffer.concat([field(1, attrs), field(3, 'bob'), field(4, 'g1'), field(5, extra)]);
    const r = await post(SAR, 'boss', envelope('authorization.k8s.io/v1', 'SubjectAccessReview', field(2, spec)), 'application/vnd.kubernetes.protobuf');
    assert.equal(r.code, 201, JSON.stringify(r.json));
    assert.equal(r.json.status.allowed, true);
    assert.deepEqual(r.json.spec.groups, ['g1']);
    assert.deepEqual(r.json.spec.extra, { scopes: ['x', 'y'] });
  });
});

describe('SelfSubjectRulesReview and SelfSubjectReview', () => {
  test('rules of the caller in a namespace, split into resource and non-resource rules', async () => {
    const r = await post(SSRR, 'alice', '{"spec": {"namespace": "demo"}}');
    assert.equal(r.code, 201);
    assert.equal(r.json.status.incomplete, false);
    assert.ok(r.json.status.resourceRules.some((x: PolicyRule) => x.resources?.[0] === 'instances' && x.verbs[0] === 'list'));
    assert.deepEqual(r.json.status.nonResourceRules, [{ verbs: ['get'], nonResourceURLs: ['/version'] }]);
    const elsewhere = await post(SSRR, 'alice', '{"spec": {"namespace": "other"}}');
    assert.ok(!elsewhere.json.status.resourceRules.some((x: PolicyRule) => x.resources?.[0] === 'instances'));
  });

  test('resolver errors are the evaluationError', async () => {
    const GRANT: [string, string, string, string] = ['create', 'authorization.k8s.io', 'selfsubjectrulesreviews', '*'];
    GRANTS.bob!.push(GRANT);
    try {
      const r = await post(SSRR, 'bob', '{"spec": {"namespace": "demo"}}');
      assert.equal(r.json.status.evaluationError, 'role "gone" not found');
    } finally {
      GRANTS.bob!.pop();
    }
  });

  test('whoami: the caller as the authenticator saw it', async () => {
    const r = await post(SSR, 'alice', envelope('authentication.k8s.io/v1', 'SelfSubjectReview', Buffer.alloc(0)), 'application/vnd.kubernetes.protobuf', 'devs');
    assert.equal(r.code, 201, JSON.stringify(r.json));
    assert.equal(r.json.kind, 'SelfSubjectReview');
    assert.deepEqual(r.json.status.userInfo, { username: 'alice', uid: 'uid-alice', groups: ['devs', SYSTEM_AUTHENTICATED], extra: { scopes: ['a', 'b'] } });
    assert.equal((await post(SSR, 'bob', '')).code, 403);
  });
});

const TR = '/apis/authentication.k8s.io/v1/tokenreviews';
const tr = (spec: Record<string, unknown>) => JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec });

describe('TokenReview', () => {
  test('a valid token: authenticated, with its user', async () => {
    const r = await post(TR, 'delegator', tr({ token: 'prom-token' }));
    assert.equal(r.code, 201, JSON.stringify(r.json));
    assert.equal(r.json.kind, 'TokenReview');
    assert.equal(r.json.apiVersion, 'authentication.k8s.io/v1');
    assert.deepEqual(r.json.status, {
      authenticated: true,
      user: { username: 'prometheus', uid: 'uid-prom', groups: ['system:monitoring', SYSTEM_AUTHENTICATED], extra: { 'authentication.kova.dev/token-id': ['abc'] } },
    });
  });

  test('an unknown token: not authenticated, an empty user, no error', async () => {
    seen.length = 0;
    const r = await post(TR, 'delegator', tr({ token: 'made-up' }));
    assert.equal(r.code, 201);
    assert.deepEqual(r.json.status, { user: {} });
    // The authenticators saw a request with nothing but the token (not the caller's headers or socket).
    assert.deepEqual(seen, [{ headers: ['authorization'], socket: undefined }]);
  });

  test('audiences asked about come back with an authenticated answer (kova tokens fit any audience)', async () => {
    const r = await post(TR, 'delegator', tr({ token: 'prom-token', audiences: ['api', 'kubernetes'] }));
    assert.deepEqual(r.json.status.audiences, ['api', 'kubernetes']);
    assert.deepEqual(r.json.spec.audiences, ['api', 'kubernetes']);
    const unknown = await post(TR, 'delegator', tr({ token: 'made-up', audiences: ['api'] }));
    assert.equal(unknown.json.status.audiences, undefined);
  });

  test('an authenticator that fails: status.error, not authenticated, still 201', async () => {
    const r = await post(TR, 'delegator', tr({ token: 'broken' }));
    assert.equal(r.code, 201);
    assert.deepEqual(r.json.status, { user: {}, error: 'token store unavailable' });
  });

  test('spec.token is required: a 422 naming it', async () => {
    for (const body of [tr({}), tr({ token: '' }), '{}']) {
      const r = await post(TR, 'delegator', body);
      assert.equal(r.code, 422, body);
      assert.equal(r.json.reason, 'Invalid');
      assert.equal(r.json.details.causes[0].field, 'spec.token');
      assert.match(r.json.message, /token is required for TokenReview/);
    }
  });

  test('a token or audiences of the wrong type, or the wrong kind, is a 400', async () => {
    assert.equal((await post(TR, 'delegator', tr({ token: 7 }))).code, 400);
    assert.equal((await post(TR, 'delegator', tr({ token: 'prom-token', audiences: 'api' }))).code, 400);
    assert.equal((await post(TR, 'delegator', '{"kind": "SelfSubjectReview", "spec": {"token": "x"}}')).code, 400);
  });

  test('asking needs create on tokenreviews: 403 in Kubernetes wording', async () => {
    const r = await post(TR, 'alice', tr({ token: 'prom-token' }));
    assert.equal(r.code, 403);
    assert.equal(r.json.message, 'tokenreviews.authentication.k8s.io is forbidden: User "alice" cannot create resource "tokenreviews" in API group "authentication.k8s.io" at the cluster scope: not in the table');
  });

  test('without token authenticators every token is unauthenticated (kube without a token authenticator)', async () => {
    const r = REVIEW_RESOURCES.find((x) => x.kind === 'TokenReview')!;
    const answer = await new Reviews().answer(r, { spec: { token: 'prom-token' } }, { name: 'x', groups: [] }, tableAuthorizer);
    assert.deepEqual(answer.status, { user: {} });
  });
});

describe('discovery', () => {
  test('the review groups and resources are listed everywhere kubectl looks', async () => {
    const groups = await get('/apis');
    const names = (groups.groups as Array<{ name: string }>).map((g) => g.name);
    assert.ok(names.includes('authorization.k8s.io') && names.includes('authentication.k8s.io'));
    const authz = await get('/apis/authorization.k8s.io/v1');
    assert.deepEqual((authz.resources as Array<{ name: string }>).map((r) => r.name).sort(), ['selfsubjectaccessreviews', 'selfsubjectrulesreviews', 'subjectaccessreviews']);
    const authn = await get('/apis/authentication.k8s.io/v1');
    assert.deepEqual(authn.resources, [
      { name: 'selfsubjectreviews', singularName: 'selfsubjectreview', namespaced: false, kind: 'SelfSubjectReview', verbs: ['create'] },
      { name: 'tokenreviews', singularName: 'tokenreview', namespaced: false, kind: 'TokenReview', verbs: ['create'] },
    ]);
    const agg = await new Promise<Record<string, any>>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/apis', headers: { 'X-Test-User': 'alice', Accept: 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList' } }, (res) => {
        let t = '';
        res.on('data', (d) => (t += d));
        res.on('end', () => resolve(JSON.parse(t)));
      }).on('error', reject);
    });
    const item = (agg.items as Array<Record<string, any>>).find((i) => i.metadata.name === 'authentication.k8s.io')!;
    assert.deepEqual(item.versions[0].resources.map((x: { resource: string }) => x.resource), ['selfsubjectreviews', 'tokenreviews']);
    assert.ok((agg.items as Array<Record<string, any>>).some((i) => i.metadata.name === 'rbac.authorization.k8s.io'));
  });
});
