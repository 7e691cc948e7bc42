// Privilege-escalation prevention end to end: a real API server on a real etcd with the RBAC
// authorizer and the escalation admission, driven by the real kubectl as several users (bearer
// tokens mapped to users by a small test authenticator). Covers kube's rules: roles only grant
// what their author holds unless `escalate`; bindings only bind what their author holds unless
// `bind` on that role (resourceNames apply); aggregationRule needs cluster-admin; roleRef is
// immutable; GC-only updates pass; system:masters is exempt.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultCrdDir, Registry } from '../../../api/registry.js';
import type { KObject } from '../../../api/types.js';
import { Validator } from '../../../api/validation.js';
import { Store } from '../../../store/store.js';
import { startTestEtcd, waitFor, type TestEtcd } from '../../../testing/etcd.js';
import { ensurePki } from '../../pki.js';
import type { ApiError } from '../../status.js';
import { ResourceStore } from '../../resource-store.js';
import { ApiServer } from '../../server.js';
import { bearerToken } from '../admin-token.js';
import type { Authenticator, RequestAttributes, UserInfo } from '../types.js';
import { RbacAuthorizer } from './authorizer.js';
import { RbacCache } from './cache.js';
import { EscalationAdmission } from './escalation.js';

const G = 'rbac.authorization.k8s.io';
const ADMIN = 'admin-token';
const USERS: Record<string, UserInfo> = {
  alice: { name: 'alice', groups: ['system:authenticated'] },
  carol: { name: 'carol', groups: ['system:authenticated'] },
  dave: { name: 'dave', groups: ['system:authenticated'] },
};
const tokens: Authenticator = {
  authenticate(req) {
    const t = bearerToken(req);
    return t?.endsWith('-token') ? USERS[t.slice(0, -'-token'.length)] : undefined;
  },
};

let etcd: TestEtcd;
let store: Store;
let resources: ResourceStore;
let registry: Registry;
let cache: RbacCache;
let authz: RbacAuthorizer;
let server: ApiServer;
let url: string;
let dir: string;

interface Run { code: number; stdout: string; stderr: string }
function kubectl(token: string, args: string[], input?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile('kubectl', ['--server', url, '--token', token, '--certificate-authority', join(dir, 'pki', 'ca.crt'), '--cache-dir', join(dir, 'cache'), ...args], {
      timeout: 30_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, KUBECONFIG: join(dir, 'none') },
    }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
    child.stdin!.end(input ?? '');
  });
}
const as = (user: string) => (user === 'admin' ? ADMIN : `${user}-token`);
/** `kubectl create -f -` of one object as `user`. */
const createAs = (user: string, o: KObject) => kubectl(as(user), ['create', '-f', '-', '-o', 'name'], JSON.stringify(o));
const ok = (r: Run) => assert.equal(r.code, 0, r.stderr + r.stdout);
const denied = (r: Run, re: RegExp) => {
  assert.notEqual(r.code, 0, r.stdout);
  assert.match(r.stderr, re);
};

const clusterRole = (name: string, rules: unknown[], extra: Record<string, unknown> = {}): KObject => ({ apiVersion: `${G}/v1`, kind: 'ClusterRole', metadata: { name }, rules, ...extra });
const role = (ns: string, name: string, rules: unknown[]): KObject => ({ apiVersion: `${G}/v1`, kind: 'Role', metadata: { name, namespace: ns }, rules });
const roleBinding = (ns: string, name: string, kind: 'Role' | 'ClusterRole', roleName: string, user: string): KObject => ({
  apiVersion: `${G}/v1`, kind: 'RoleBinding', metadata: { name, namespace: ns }, roleRef: { apiGroup: G, kind, name: roleName }, subjects: [{ kind: 'User', apiGroup: G, name: user }],
});
const clusterRoleBinding = (name: string, roleName: string, user: string): KObject => ({
  apiVersion: `${G}/v1`, kind: 'ClusterRoleBinding', metadata: { name }, roleRef: { apiGroup: G, kind: 'ClusterRole', name: roleName }, subjects: [{ kind: 'User', apiGroup: G, name: user }],
});
const RBAC_RW = { verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'], apiGroups: [G], resources: ['roles', 'rolebindings'] };

/** Seeds as the admin straight into the store (no admission), then waits for the cache to see it. */
async function seed(o: KObject): Promise<void> {
  const info = registry.byKind(o.apiVersion.includes('/') ? o.apiVersion.split('/')[0] : '', o.kind)!;
  await resources.create(info, o.metadata.namespace, o);
}
async function synced(): Promise<void> {
  const rev = Number(await store.currentRevision());
  // The cache has applied every event up to now once a probe written after them is visible.
  const probe = clusterRole(`probe-${rev}`, []);
  await seed(probe);
  await waitFor(() => cache.state.clusterRoles.has(probe.metadata.name!), 'the RBAC cache to catch up', 2000);
}

before(async () => {
  etcd = await startTestEtcd();
  store = Store.connect(etcd.endpoints);
  dir = await mkdtemp(join(tmpdir(), 'kova-rbac-'));
  registry = await Registry.load(defaultCrdDir());
  assert.ok(registry.lookup(G, 'v1', 'roles'), 'the RBAC kinds are registered');
  resources = new ResourceStore(store, registry, new Validator(registry));
  await resources.namespaces.start();
  for (const ns of ['default', 'demo', 'other']) await resources.create(registry.lookup('', 'v1', 'namespaces')!, undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  cache = new RbacCache(store);
  await cache.start();
  authz = new RbacAuthorizer(cache);
  server = new ApiServer({ registry, resources, token: ADMIN, authenticators: [tokens], authorizer: authz, admission: [new EscalationAdmission(authz, resources)] });
  // TLS, as kova serves: kubectl sends bearer tokens over https only.
  const pki = await ensurePki(join(dir, 'pki'), []);
  url = `https://127.0.0.1:${(await server.listen('127.0.0.1', 0, { cert: pki.cert, key: pki.key })).port}`;

  await seed(clusterRole('kova-edit', [{ verbs: ['*'], apiGroups: ['kova.dev'], resources: ['instances', 'instances/status'] }, RBAC_RW]));
  await seed(clusterRole('kova-view', [{ verbs: ['get', 'list', 'watch'], apiGroups: ['kova.dev'], resources: ['instances'] }]));
  await seed(clusterRole('host-admin', [{ verbs: ['*'], apiGroups: ['kova.dev'], resources: ['hosts'] }]));
  await seed(clusterRole('cluster-admin', [{ verbs: ['*'], apiGroups: ['*'], resources: ['*'] }, { verbs: ['*'], nonResourceURLs: ['*'] }]));
  await seed(roleBinding('demo', 'alice-edit', 'ClusterRole', 'kova-edit', 'alice'));
  // Discovery and OpenAPI for every user, as kube's system:discovery binding to system:authenticated.
  await seed(clusterRole('system:discovery', [{ verbs: ['get'], nonResourceURLs: ['/api', '/api/*', '/apis', '/apis/*', '/openapi', '/openapi/*', '/version', '/version/'] }]));
  await seed({ ...clusterRoleBinding('system:discovery', 'system:discovery', ''), subjects: [{ kind: 'Group', apiGroup: G, name: 'system:authenticated' }] });
  await synced();
});

after(async () => {
  await server?.close();
  await cache?.stop();
  await resources?.namespaces.stop();
  await store?.close();
  await etcd?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('RBAC through the API server, with kubectl', () => {
  it('denies with Kubernetes\' 403 wording, allows through a RoleBinding', async () => {
    ok(await kubectl(as('alice'), ['get', 'instances', '-n', 'demo']));
    denied(await kubectl(as('alice'), ['get', 'instances', '-n', 'other']),
      /Error from server \(Forbidden\): instances\.kova\.dev is forbidden: User "alice" cannot list resource "instances" in API group "kova\.dev" in the namespace "other"/);
    denied(await kubectl(as('alice'), ['get', 'instances', '-A']), /cannot list resource "instances" in API group "kova\.dev" at the cluster scope/);
  });

  it('a role may only grant what its author holds in that namespace', async () => {
    ok(await createAs('alice', role('demo', 'inst-reader', [{ verbs: ['get', 'list'], apiGroups: ['kova.dev'], resources: ['instances'] }])));
    const r = await createAs('alice', role('demo', 'host-deleter', [
      { verbs: ['get'], apiGroups: ['kova.dev'], resources: ['instances'] },
      { verbs: ['delete', 'get'], apiGroups: ['kova.dev'], resources: ['hosts'] },
    ]));
    denied(r, /roles\.rbac\.authorization\.k8s\.io "host-deleter" is forbidden: user "alice" \(groups=\["system:authenticated"\]\) is attempting to grant RBAC permissions not currently held:\n\{APIGroups:\["kova\.dev"\], Resources:\["hosts"\], Verbs:\["delete" "get"\]\}/);
    // Not in a namespace where she holds nothing (authorization already refuses the create there).
    denied(await createAs('alice', role('other', 'inst-reader', [{ verbs: ['get'], apiGroups: ['kova.dev'], resources: ['instances'] }])), /cannot create resource "roles"/);
  });

  it('the escalate verb lifts the role check', async () => {
    await seed(role('demo', 'role-escalator', [RBAC_RW, { verbs: ['escalate'], apiGroups: [G], resources: ['roles'] }]));
    await seed(roleBinding('demo', 'carol-escalate', 'Role', 'role-escalator', 'carol'));
    await synced();
    ok(await createAs('carol', role('demo', 'carols-hosts', [{ verbs: ['*'], apiGroups: ['kova.dev'], resources: ['hosts'] }])));
  });

  it('a binding may only bind a role its author holds, or one they may bind (resourceNames apply)', async () => {
    ok(await createAs('alice', roleBinding('demo', 'bob-view', 'ClusterRole', 'kova-view', 'bob')));
    ok(await createAs('alice', roleBinding('demo', 'bob-reader', 'Role', 'inst-reader', 'bob')));
    denied(await createAs('alice', roleBinding('demo', 'bob-admin', 'ClusterRole', 'cluster-admin', 'bob')),
      /rolebindings\.rbac\.authorization\.k8s\.io "bob-admin" is forbidden: user "alice" \(groups=\["system:authenticated"\]\) is attempting to grant RBAC permissions not currently held:\n\{APIGroups:\["\*"\], Resources:\["\*"\], Verbs:\["\*"\]\}\n\{NonResourceURLs:\["\*"\], Verbs:\["\*"\]\}/);
    denied(await createAs('alice', roleBinding('demo', 'bob-nope', 'Role', 'nope', 'bob')), /NotFound.*roles\.rbac\.authorization\.k8s\.io "nope" not found|roles\.rbac\.authorization\.k8s\.io "nope" not found/);

    // bind on cluster-admin only: that binding passes, host-admin still does not.
    await seed(clusterRole('binder', [{ verbs: ['bind'], apiGroups: [G], resources: ['clusterroles'], resourceNames: ['cluster-admin'] }]));
    ok(await createAs('admin', roleBinding('demo', 'alice-binder', 'ClusterRole', 'binder', 'alice')));
    await synced();
    ok(await createAs('alice', roleBinding('demo', 'bob-admin', 'ClusterRole', 'cluster-admin', 'bob')));
    denied(await createAs('alice', roleBinding('demo', 'bob-hosts', 'ClusterRole', 'host-admin', 'bob')), /"bob-hosts" is forbidden: .*not currently held:\n\{APIGroups:\["kova\.dev"\], Resources:\["hosts"\], Verbs:\["\*"\]\}/);
  });

  it('an aggregationRule needs cluster-admin; ClusterRoles are checked against cluster-wide rules only', async () => {
    await seed(clusterRole('role-maker', [
      { verbs: ['create', 'get', 'update'], apiGroups: [G], resources: ['clusterroles'] },
      { verbs: ['*'], apiGroups: ['kova.dev'], resources: ['*'] },
    ]));
    ok(await createAs('admin', clusterRoleBinding('dave-role-maker', 'role-maker', 'dave')));
    await synced();
    ok(await createAs('dave', clusterRole('dave-view', [{ verbs: ['get'], apiGroups: ['kova.dev'], resources: ['instances'] }])));
    denied(await createAs('dave', clusterRole('dave-agg', [], { aggregationRule: { clusterRoleSelectors: [{ matchLabels: { x: 'y' } }] } })),
      /clusterroles\.rbac\.authorization\.k8s\.io "dave-agg" is forbidden: must have cluster-admin privileges to use the aggregationRule/);
    ok(await createAs('admin', clusterRole('dave-agg', [], { aggregationRule: { clusterRoleSelectors: [{ matchLabels: { x: 'y' } }] } })));
    // alice holds kova-edit in demo only: a ClusterRole of the same rules would escalate (she cannot create ClusterRoles anyway).
  });

  it('roleRef cannot change (422 naming roleRef), even for system:masters', async () => {
    const got = await kubectl(ADMIN, ['get', 'rolebinding', 'bob-view', '-n', 'demo', '-o', 'json']);
    ok(got);
    const b = JSON.parse(got.stdout) as KObject;
    b.roleRef = { apiGroup: G, kind: 'ClusterRole', name: 'kova-edit' };
    const r = await kubectl(ADMIN, ['replace', '-f', '-'], JSON.stringify(b));
    denied(r, /The RoleBinding "bob-view" is invalid: roleRef: Invalid value: rbac\.RoleRef\{APIGroup:"rbac\.authorization\.k8s\.io", Kind:"ClusterRole", Name:"kova-edit"\}: cannot change roleRef/);
    // Changing the subjects is fine.
    b.roleRef = { apiGroup: G, kind: 'ClusterRole', name: 'kova-view' };
    b.subjects = [{ kind: 'User', apiGroup: G, name: 'erin' }];
    ok(await kubectl(as('alice'), ['replace', '-f', '-'], JSON.stringify(b)));
  });

  it('an update that only changes finalizers or ownerReferences is not an escalation', async () => {
    const big = role('demo', 'big', [{ verbs: ['*'], apiGroups: ['kova.dev'], resources: ['hosts'] }]);
    await seed(big);
    const cur = JSON.parse((await kubectl(ADMIN, ['get', 'role', 'big', '-n', 'demo', '-o', 'json'])).stdout) as KObject;
    cur.metadata.finalizers = ['example.com/keep'];
    ok(await kubectl(as('alice'), ['replace', '-f', '-'], JSON.stringify(cur)));
    const again = JSON.parse((await kubectl(ADMIN, ['get', 'role', 'big', '-n', 'demo', '-o', 'json'])).stdout) as KObject;
    again.metadata.labels = { touched: 'yes' };
    denied(await kubectl(as('alice'), ['replace', '-f', '-'], JSON.stringify(again)), /"big" is forbidden: .*not currently held/);
    again.metadata.finalizers = [];
    delete again.metadata.labels;
    ok(await kubectl(ADMIN, ['replace', '-f', '-'], JSON.stringify(again)));
  });

  it('patches of RBAC objects: escalate (roles) or unrestricted bind (bindings) needed until the server checks patched objects', async () => {
    const p = ['--type=merge', '-p', '{"metadata":{"labels":{"a":"b"}}}'];
    denied(await kubectl(as('alice'), ['patch', 'role', 'inst-reader', '-n', 'demo', ...p]), /roles\.rbac\.authorization\.k8s\.io "inst-reader" is forbidden: patching roles needs the escalate verb/);
    ok(await kubectl(as('carol'), ['patch', 'role', 'inst-reader', '-n', 'demo', ...p]));
    denied(await kubectl(as('alice'), ['patch', 'rolebinding', 'bob-reader', '-n', 'demo', ...p]), /patching rolebindings needs the bind verb/);
    ok(await kubectl(ADMIN, ['patch', 'rolebinding', 'bob-reader', '-n', 'demo', ...p]));
  });
});

describe('admitResult: the checks on a patch result, for a server hook after patch application', () => {
  const patch = (user: string, resource: string, ns: string, name: string): RequestAttributes => ({
    user: user === 'admin' ? { name: 'kova-admin', groups: ['system:masters', 'system:authenticated'] } : USERS[user], verb: 'patch', resourceRequest: true, path: '', apiGroup: G, apiVersion: 'v1', resource, subresource: '', namespace: ns, name,
  });
  const get = async (resource: string, ns: string, name: string) => resources.get(registry.lookup(G, 'v1', resource)!, ns || undefined, name);

  it('with the hook on, admit() defers patches to it, and it judges the final object', async () => {
    const esc = new EscalationAdmission(authz, resources, { patchedObjectsChecked: true });
    await esc.admit(patch('alice', 'roles', 'demo', 'inst-reader'), undefined);
    const old = await get('roles', 'demo', 'inst-reader');
    const wider = { ...old, rules: [...(old.rules as unknown[]), { verbs: ['delete'], apiGroups: ['kova.dev'], resources: ['hosts'] }] };
    await assert.rejects(esc.admitResult(patch('alice', 'roles', 'demo', 'inst-reader'), wider, old), (e: ApiError) => e.code === 403 && /not currently held:\n\{APIGroups:\["kova\.dev"\], Resources:\["hosts"\], Verbs:\["delete"\]\}/.test(e.message));
    await esc.admitResult(patch('alice', 'roles', 'demo', 'inst-reader'), { ...old, metadata: { ...old.metadata, labels: { a: 'b' } } }, old);

    // A role beyond alice's rights may still get a finalizer from her (the GC's kind of change).
    const big = await get('roles', 'demo', 'big');
    await esc.admitResult(patch('alice', 'roles', 'demo', 'big'), { ...big, metadata: { ...big.metadata, finalizers: ['x/y'] } }, big);
    await assert.rejects(esc.admitResult(patch('alice', 'roles', 'demo', 'big'), { ...big, metadata: { ...big.metadata, labels: { x: 'y' } } }, big), (e: ApiError) => e.code === 403);

    // Bindings: the roleRef of the result is what is checked, and it may not change.
    const b = await get('rolebindings', 'demo', 'bob-reader');
    await esc.admitResult(patch('alice', 'rolebindings', 'demo', 'bob-reader'), { ...b, subjects: [{ kind: 'User', apiGroup: G, name: 'zed' }] }, b);
    await assert.rejects(esc.admitResult(patch('admin', 'rolebindings', 'demo', 'bob-reader'), { ...b, roleRef: { apiGroup: G, kind: 'ClusterRole', name: 'kova-edit' } }, b),
      (e: ApiError) => e.code === 422 && e.details?.causes?.[0]?.field === 'roleRef');
    // Server-side apply creating a binding: no old object, checked as a create.
    await assert.rejects(esc.admitResult(patch('alice', 'rolebindings', 'demo', 'new'), roleBinding('demo', 'new', 'ClusterRole', 'host-admin', 'bob'), undefined), (e: ApiError) => e.code === 403);
  });
});
