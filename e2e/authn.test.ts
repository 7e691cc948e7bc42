// Authentication end to end: kova user tokens (created by the real `kova user` CLI, used by the
// real kubectl), their revocation on two API server processes' worth of caches sharing one
// etcd, client certificates from the kova CA, and impersonation. Real etcd, real TLS servers.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import https from 'node:https';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { defaultCrdDir, Registry } from '../api/registry.js';
import { Validator } from '../api/validation.js';
import { Store } from '../store/store.js';
import { startTestEtcd, waitFor } from '../testing/etcd.js';
import type { TestEtcd } from '../testing/etcd.js';
import { ensurePki, issueClientCert, writeKubeconfig } from '../apiserver/pki.js';
import type { Pki } from '../apiserver/pki.js';
import { ResourceStore } from '../apiserver/resource-store.js';
import { ApiServer } from '../apiserver/server.js';
import { startSecurity } from '../apiserver/auth/setup.js';
import type { Security } from '../apiserver/auth/setup.js';
import { forbiddenMessage } from '../apiserver/auth/forbidden.js';
import type { Authorizer, RequestAttributes, UserInfo } from '../apiserver/auth/types.js';
import { SYSTEM_MASTERS } from '../apiserver/auth/types.js';
import { KOVA_BIN, KUBECTL } from './harness.js';

interface Instance {
  store: Store;
  resources: ResourceStore;
  security: Security;
  server: ApiServer;
  port: number;
  /** Users the server saw on GET /probe/<id> (its authorizer is wrapped to record them). */
  seen: Map<string, UserInfo>;
}

interface Reply {
  code: number;
  body: string;
}

let etcd: TestEtcd;
let dir: string;
let pki: Pki;
let other: Pki;
let registry: Registry;
let a: Instance;
let b: Instance;
let adminKubeconfig: string;
let probes = 0;

async function startInstance(): Promise<Instance> {
  const store = Store.connect(etcd.endpoints);
  const resources = new ResourceStore(store, registry, new Validator(registry));
  await resources.namespaces.start();
  const security = await startSecurity(resources, { token: pki.token, caCert: pki.caCert });
  // The real authorizer (RBAC), wrapped to record who each probe request was.
  const inner = security.options.authorizer!;
  assert.ok(inner, 'startSecurity composes an authorizer');
  const seen = new Map<string, UserInfo>();
  const authorizer: Authorizer = {
    authorize(at: RequestAttributes) {
      if (at.path.startsWith('/probe/')) seen.set(at.path.slice('/probe/'.length), at.user);
      return inner.authorize(at);
    },
  };
  const server = new ApiServer({ registry, resources, ...security.options, authorizer });
  const port = (await server.listen('127.0.0.1', 0, { cert: pki.cert, key: pki.key })).port;
  return { store, resources, security, server, port, seen };
}

async function stopInstance(i: Instance | undefined): Promise<void> {
  if (!i) return;
  await i.server.close();
  await i.security.stop();
  await i.resources.namespaces.stop();
  await i.store.close();
}

function request(i: Instance, path: string, opts: { token?: string; cert?: { cert: string; key: string }; headers?: Record<string, string | string[]>; method?: string; body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | string[]> = { Accept: 'application/json', ...opts.headers };
    if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    const req = https.request({
      host: '127.0.0.1', port: i.port, method: opts.method ?? 'GET', path, ca: pki.caCert, agent: false, headers,
      ...(opts.cert ? { cert: opts.cert.cert, key: opts.cert.key } : {}),
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ code: res.statusCode!, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** The user instance `i` authenticates a request with these credentials as (undefined on 401). */
async function whoIs(i: Instance, opts: Parameters<typeof request>[2]): Promise<UserInfo | undefined> {
  const id = String(++probes);
  const r = await request(i, `/probe/${id}`, opts);
  if (r.code === 401) return undefined;
  const u = i.seen.get(id);
  assert.ok(u, `probe ${id} answered ${r.code} without reaching the authorizer: ${r.body}`);
  return u;
}

function run(file: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

const kova = (args: string[]) => run(process.execPath, [KOVA_BIN, ...args, '--kubeconfig', adminKubeconfig]);

async function kovaOk(args: string[]): Promise<string> {
  const r = await kova(args);
  assert.equal(r.code, 0, `kova ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const kubectl = (kubeconfig: string, args: string[]) => run(KUBECTL, ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'kubectl-cache'), ...args]);

const tokenOf = (kubeconfig: string): string => (YAML.parse(kubeconfig) as { users: Array<{ user: { token: string } }> }).users[0]!.user.token;

/** `kubectl auth whoami` (a SelfSubjectReview): the user the API server sees. */
async function whoami(kubeconfig: string, extra: string[] = []): Promise<unknown> {
  const r = await kubectl(kubeconfig, [...extra, 'auth', 'whoami', '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { status: { userInfo: unknown } }).status.userInfo;
}

/** Creates a user with the CLI against instance a; returns its kubeconfig text. */
async function createUser(name: string, extra: string[] = []): Promise<string> {
  return kovaOk(['user', 'create', name, ...extra]);
}

before(async () => {
  etcd = await startTestEtcd();
  dir = await mkdtemp(join(tmpdir(), 'kova-authn-'));
  pki = await ensurePki(join(dir, 'pki'), []);
  other = await ensurePki(join(dir, 'other-pki'), []);
  registry = await Registry.load(defaultCrdDir());
  const setupStore = Store.connect(etcd.endpoints);
  const rs = new ResourceStore(setupStore, registry, new Validator(registry));
  const nsInfo = registry.lookup('', 'v1', 'namespaces')!;
  for (const name of ['default', 'kova-system', 'demo']) await rs.create(nsInfo, undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  await setupStore.close();
  a = await startInstance();
  b = await startInstance();
  adminKubeconfig = join(dir, 'admin.kubeconfig');
  await writeKubeconfig(adminKubeconfig, `https://127.0.0.1:${a.port}`, pki);
});

after(async () => {
  await stopInstance(a);
  await stopInstance(b);
  await etcd?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('user tokens', () => {
  test('kova user create: the token authenticates on both API servers with the user record groups; a wrong one is 401', async () => {
    const kc = await createUser('alice', ['--group', 'devs', '--group', 'ops']);
    const token = tokenOf(kc);
    assert.match(token, /^kova-[a-z0-9]{6,16}\.[A-Za-z0-9_-]{32,}$/);
    for (const i of [a, b]) {
      const u = await whoIs(i, { token });
      assert.equal(u?.name, 'alice');
      assert.deepEqual(u?.groups, ['devs', 'ops', 'system:authenticated']);
    }
    // Same id, another secret; a well-formed unknown token; garbage; no credentials.
    const wrong = token.replace(/\.(.)/, (_, c: string) => `.${c === 'A' ? 'B' : 'A'}`);
    for (const t of [wrong, 'kova-zzzzzzzz.' + 'x'.repeat(43), 'nonsense']) {
      assert.equal((await request(a, '/api/v1/namespaces', { token: t })).code, 401, t);
    }
    assert.equal((await request(a, '/api/v1/namespaces')).code, 401);
    // The admin token still comes first.
    assert.equal((await whoIs(a, { token: pki.token }))?.name, 'kova-admin');
    // kubectl with the printed kubeconfig: kubectl auth whoami (SelfSubjectReview) names her.
    const file = join(dir, 'alice.kubeconfig');
    await writeFile(file, kc, { mode: 0o600 });
    const id = token.slice('kova-'.length, token.indexOf('.'));
    const me = await whoami(file) as { username: string; uid: string; groups: string[]; extra: Record<string, string[]> };
    assert.equal(me.username, 'alice');
    assert.deepEqual(me.groups, ['devs', 'ops', 'system:authenticated']);
    assert.deepEqual(me.extra, { 'authentication.kova.dev/token-id': [id] });
    assert.match(me.uid, /^[0-9a-f-]{36}$/); // the user record's uid
  });

  test('only the hash of the secret is stored: no etcd key or value holds the secret', async () => {
    const token = tokenOf(await createUser('hashcheck'));
    const secret = token.split('.')[1]!;
    const { items } = await a.store.list('/registry/');
    const dump = JSON.stringify(items);
    assert.ok(dump.includes('kova.dev/user-token'), 'the token Secret is in the dump');
    for (const form of [secret, token, Buffer.from(secret).toString('base64'), Buffer.from(token).toString('base64')]) {
      assert.ok(!dump.includes(form), `etcd holds ${form}`);
    }
    // And the bytes etcd holds, read with etcdctl.
    const raw = await etcdDump();
    assert.ok(raw.includes('user-token-'), 'raw dump has the token Secret');
    assert.ok(!raw.includes(secret), 'raw etcd content holds the secret');
  });

  test('kova user revoke: 401 within seconds on both API servers; other tokens keep working', async () => {
    const first = tokenOf(await createUser('bob'));
    const second = tokenOf(await kovaOk(['user', 'token', 'bob']));
    for (const i of [a, b]) for (const t of [first, second]) assert.equal((await whoIs(i, { token: t }))?.name, 'bob');
    const id = first.slice('kova-'.length, first.indexOf('.'));
    const started = Date.now();
    await kovaOk(['user', 'revoke', 'bob', '--token', id]);
    for (const i of [a, b]) await waitFor(async () => (await request(i, '/api', { token: first })).code === 401, 'revoked token refused', 5_000);
    assert.ok(Date.now() - started < 5_000);
    for (const i of [a, b]) assert.equal((await whoIs(i, { token: second }))?.name, 'bob');
    await kovaOk(['user', 'revoke', 'bob']);
    for (const i of [a, b]) await waitFor(async () => (await request(i, '/api', { token: second })).code === 401, 'all tokens revoked', 5_000);
    const r = await kova(['user', 'revoke', 'bob', '--token', id]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /has no token/);
  });

  test('kova user delete: every token of the user is 401 within seconds on both API servers', async () => {
    const token = tokenOf(await createUser('carol'));
    for (const i of [a, b]) assert.equal((await whoIs(i, { token }))?.name, 'carol');
    await kovaOk(['user', 'delete', 'carol']);
    for (const i of [a, b]) await waitFor(async () => (await request(i, '/api', { token })).code === 401, 'deleted user refused', 5_000);
    const list = await kovaOk(['user', 'list']);
    assert.doesNotMatch(list, /^carol /m);
    assert.match(list, /^alice +devs,ops +1 /m);
  });

  test('deleting only the user record (kubectl) is enough: its tokens fail at once', async () => {
    const token = tokenOf(await createUser('dave'));
    assert.equal((await whoIs(b, { token }))?.name, 'dave');
    const r = await kubectl(adminKubeconfig, ['delete', 'secret', '-n', 'kova-system', 'user-dave']);
    assert.equal(r.code, 0, r.stderr);
    for (const i of [a, b]) await waitFor(async () => (await request(i, '/api', { token })).code === 401, 'token of a deleted user record', 5_000);
  });

  test('bad input is refused before anything is written', async () => {
    for (const [args, msg] of [
      [['user', 'create', 'system:evil'], /may not start with "system:"/],
      [['user', 'create', 'Bad_Name'], /user name "Bad_Name" must be/],
      [['user', 'create', 'eve', '--group', 'system:masters'], /group "system:masters" may not start with "system:"/],
      [['user', 'create', 'eve', '--group', 'a,b'], /group "a,b" must be/],
      [['user', 'create', 'eve', '--role', 'god'], /--role must be one of cloud-admin, manager, member, reader/],
      [['user', 'create', 'eve', '--role', 'member'], /needs --project/],
      [['user', 'create', 'eve', '--project', 'nope', '--role', 'member'], /project \(namespace\) "nope" not found/],
      [['user', 'create', 'alice'], /already exists/],
      [['user', 'token', 'nobody'], /user "nobody" not found/],
    ] as Array<[string[], RegExp]>) {
      const r = await kova(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, msg);
    }
    const r = await kubectl(adminKubeconfig, ['get', 'secret', '-n', 'kova-system', 'user-eve']);
    assert.notEqual(r.code, 0);
  });
});

describe('TokenReview (delegated authentication of the metrics servers)', () => {
  test('the admin token and a kova user token authenticate, a wrong one does not; asking needs create on tokenreviews', async () => {
    const review = async (token: string, as = pki.token) => {
      const r = await request(a, '/apis/authentication.k8s.io/v1/tokenreviews', { token: as, method: 'POST', body: JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } }) });
      return { code: r.code, json: JSON.parse(r.body) as { status?: { authenticated?: boolean; user?: { username?: string; groups?: string[] } } } };
    };
    const admin = await review(pki.token);
    assert.equal(admin.code, 201, JSON.stringify(admin.json));
    assert.equal(admin.json.status?.authenticated, true);
    assert.equal(admin.json.status?.user?.username, 'kova-admin');
    const token = tokenOf(await createUser('reviewed', ['--group', 'watchers']));
    const user = await review(token);
    assert.equal(user.json.status?.authenticated, true);
    assert.equal(user.json.status?.user?.username, 'reviewed');
    assert.ok(user.json.status?.user?.groups?.includes('watchers'));
    assert.notEqual((await review(token.slice(0, -2) + 'zz')).json.status?.authenticated, true);
    // A plain user may not ask (kube: system:auth-delegator).
    assert.equal((await review(pki.token, token)).code, 403);
  });
});

describe('client certificates', () => {
  test('a certificate from the kova CA: CN is the user, each O a group, plus system:authenticated', async () => {
    const cert = await issueClientCert(join(dir, 'pki'), 'frank', ['team-a', 'team-b']);
    for (const i of [a, b]) {
      const u = await whoIs(i, { cert });
      assert.equal(u?.name, 'frank');
      assert.deepEqual(u?.groups, ['team-a', 'team-b', 'system:authenticated']);
    }
  });

  test('a certificate from another CA is no identity (401), and with a token the token decides', async () => {
    const foreign = await issueClientCert(join(dir, 'other-pki'), 'mallory', [SYSTEM_MASTERS]);
    assert.equal((await request(a, '/api/v1/namespaces', { cert: foreign })).code, 401);
    assert.equal((await whoIs(a, { cert: foreign, token: pki.token }))?.name, 'kova-admin');
    void other;
  });

  test('kubectl with a client certificate in its kubeconfig', async () => {
    const cert = await issueClientCert(join(dir, 'pki'), 'grace', ['devs']);
    const kc = join(dir, 'grace.kubeconfig');
    await writeFile(kc, YAML.stringify({
      apiVersion: 'v1', kind: 'Config',
      clusters: [{ name: 'kova', cluster: { server: `https://127.0.0.1:${b.port}`, 'certificate-authority-data': Buffer.from(pki.caCert).toString('base64') } }],
      users: [{ name: 'grace', user: { 'client-certificate-data': Buffer.from(cert.cert).toString('base64'), 'client-key-data': Buffer.from(cert.key).toString('base64') } }],
      contexts: [{ name: 'kova', context: { cluster: 'kova', user: 'grace' } }],
      'current-context': 'kova',
    }), { mode: 0o600 });
    assert.deepEqual(await whoami(kc), { username: 'grace', groups: ['devs', 'system:authenticated'] });
    const r = await kubectl(kc, ['get', '--raw', '/probe/kubectl-grace']);
    assert.doesNotMatch(r.stderr, /Unauthorized/, r.stderr);
    assert.equal(b.seen.get('kubectl-grace')?.name, 'grace');
    assert.deepEqual(b.seen.get('kubectl-grace')?.groups, ['devs', 'system:authenticated']);
  });
});

describe('impersonation', () => {
  test('the admin can: user, groups, uid and extras become the request user, with system:authenticated', async () => {
    const u = await whoIs(a, {
      token: pki.token,
      headers: { 'Impersonate-User': 'alice', 'Impersonate-Group': ['g1', 'g2'], 'Impersonate-Uid': 'u-1', 'Impersonate-Extra-Scopes': ['view', 'edit'], 'Impersonate-Extra-Acme.com%2Fproject': 'x' },
    });
    assert.deepEqual(u, { name: 'alice', uid: 'u-1', groups: ['g1', 'g2', 'system:authenticated'], extra: { scopes: ['view', 'edit'], 'acme.com/project': ['x'] } });
  });

  test('kubectl --as/--as-group by the admin acts as that user', async () => {
    const r = await kubectl(adminKubeconfig, ['--as', 'alice', '--as-group', 'devs', 'get', '--raw', '/probe/kubectl-as']);
    // alice may not read that path: the refusal names her, not the admin.
    assert.doesNotMatch(r.stderr, /Unauthorized|impersonate/, r.stderr);
    assert.deepEqual(a.seen.get('kubectl-as'), { name: 'alice', groups: ['devs', 'system:authenticated'] });
    assert.deepEqual(await whoami(adminKubeconfig, ['--as', 'alice', '--as-group', 'devs']), { username: 'alice', groups: ['devs', 'system:authenticated'] });
  });

  test('a plain user cannot: 403 worded as Kubernetes words it', async () => {
    const token = tokenOf(await createUser('ivan'));
    const r = await request(a, '/api/v1/namespaces', { token, headers: { 'Impersonate-User': 'kova-admin' } });
    assert.equal(r.code, 403, r.body);
    const status = JSON.parse(r.body) as { message: string; reason: string };
    assert.equal(status.reason, 'Forbidden');
    const at = { user: { name: 'ivan', groups: [] }, verb: 'impersonate', resourceRequest: true, apiGroup: '', resource: 'users', subresource: '', namespace: '', name: 'kova-admin' } as unknown as RequestAttributes;
    assert.ok(status.message.startsWith(`users "kova-admin" is forbidden: ${forbiddenMessage(at)}`), status.message);
    assert.match(status.message, /^users "kova-admin" is forbidden: User "ivan" cannot impersonate resource "users" in API group "" at the cluster scope/);
    // Groups alone are refused too (a user must be named), and so is a group the user may not take.
    const g = await request(a, '/api', { token, headers: { 'Impersonate-Group': 'system:masters' } });
    assert.equal(g.code, 400);
    assert.match(JSON.parse(g.body).message, /without impersonating a user/);
    const kc = join(dir, 'ivan.kubeconfig');
    await writeFile(kc, await kovaOk(['user', 'token', 'ivan']), { mode: 0o600 });
    const k = await kubectl(kc, ['--as', 'kova-admin', 'get', 'namespaces']);
    assert.notEqual(k.code, 0);
    assert.match(k.stderr, /users "kova-admin" is forbidden: User "ivan" cannot impersonate resource "users" in API group "" at the cluster scope/);
  });
});

describe('kova user create with a role', () => {
  test('the kubeconfig works with kubectl in its project; -o writes it mode 600', async (t) => {
    const file = join(dir, 'judy.kubeconfig');
    const r = await kova(['user', 'create', 'judy', '--project', 'demo', '--role', 'member', '-o', file]);
    if (r.code !== 0 && /rolebindings|the server could not find|404/i.test(r.stderr)) {
      // The RBAC kinds are registered by another part of #15: without them only the binding is missing.
      return t.skip(`RBAC kinds not served yet: ${r.stderr.trim()}`);
    }
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const doc = YAML.parse(await readFile(file, 'utf8')) as { contexts: Array<{ context: { namespace: string } }> };
    assert.equal(doc.contexts[0]!.context.namespace, 'demo');
    const rb = await kubectl(adminKubeconfig, ['get', 'rolebinding', '-n', 'demo', 'kova:member:judy', '-o', 'jsonpath={.roleRef.name} {.subjects[0].name}']);
    assert.equal(rb.code, 0, rb.stderr);
    assert.equal(rb.stdout, 'kova:member judy');
    const cm = await kubectl(file, ['create', 'configmap', 'judys', '--from-literal=a=b']);
    assert.equal(cm.code, 0, cm.stderr);
    const got = await kubectl(file, ['get', 'configmap', 'judys', '-o', 'jsonpath={.data.a}']);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout, 'b');
    await kovaOk(['user', 'delete', 'judy']);
    const gone = await kubectl(adminKubeconfig, ['get', 'rolebinding', '-n', 'demo', 'kova:member:judy', '-o', 'yaml']);
    assert.notEqual(gone.code, 0, gone.stdout);
    await waitFor(async () => (await kubectl(file, ['get', 'configmap', 'judys'])).stderr.includes('Unauthorized'), 'judy refused after delete', 10_000);
  });
});

/** Every key and value in etcd as stored, read with etcdctl (not through kova's decoding). */
async function etcdDump(): Promise<string> {
  const r = await run('etcdctl', ['--endpoints', etcd.endpoints.join(','), 'get', '--prefix', '/']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}
