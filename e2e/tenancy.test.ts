// Tenancy end to end (#15) on a real `kova up --driver sim` (two API workers, controllers, one
// sim agent) with users made by the real `kova user create` and the real kubectl with each
// user's own kubeconfig:
// 1. Two projects, proj-a (alice, member) and proj-b (bob, member), that cannot see each other's
//    objects through get, list (namespaced and -A), watch (kubectl -w and raw watches, namespaced
//    and cluster-wide), field and label selectors or discovery, for Instances, Networks, Ports
//    (made by kova per NIC), KeyPairs, Secrets, ConfigMaps and Events, while each user sees and
//    manages their own; and a member cannot import an Image from a file of the control-plane host
//    (spec.source.file: the cloud's keys are files there), only over http, unless granted.
// 2. A matrix of users × roles × verbs × resources in which the expected grid (Kubernetes'
//    admin/edit/view, as kova's project roles), SelfSubjectAccessReview (what `kubectl auth
//    can-i` asks), `kubectl auth can-i --list` and a real request all agree. The full grid goes
//    over HTTP with each user's token; kubectl is spawned for a representative subset.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import YAML from 'yaml';
import { writeSimImageFile } from '../node-agent/sim-image.js';
import { createUser, eventually, startKova } from './harness.js';
import type { Kova, KovaUser, KubectlResult } from './harness.js';

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGt4d2h5V2V5c2V5c2V5c2V5c2V5c2V5c2V5c2V5 tenant@kova';

/** Whether `doc` mentions object `name` as a word (not inside a longer name such as network-config). */
const mentions = (doc: string, name: string) => new RegExp(`(^|[^A-Za-z0-9.-])${name.replace(/\./g, '\\.')}($|[^A-Za-z0-9.-])`).test(doc);

let kova: Kova;

before(async () => {
  kova = await startKova(['--driver', 'sim', '--sim-hosts', '1', '--api-workers', '2']);
});
after(async () => {
  await kova?.stop();
});

// ---------------------------------------------------------------------------------------------
// Raw HTTP with a kubeconfig's token (the matrix sends hundreds of requests; kubectl would take
// minutes to spawn for each).

interface Reply {
  code: number;
  body: string;
}
type Http = (method: string, path: string, body?: unknown, contentType?: string) => Promise<Reply>;

async function httpFor(kubeconfig: string): Promise<Http> {
  const kc = YAML.parse(await readFile(kubeconfig, 'utf8'));
  const server = new URL(kc.clusters[0].cluster.server);
  const ca = Buffer.from(kc.clusters[0].cluster['certificate-authority-data'], 'base64');
  const token = kc.users[0].user.token as string;
  const agent = new https.Agent({ keepAlive: true, ca, maxSockets: 16 });
  return (method, path, body, contentType = 'application/json') =>
    new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const watch = /[?&]watch=(1|true)\b/.test(path);
      const req = https.request({
        host: server.hostname, port: server.port, path, method,
        // A watch that is allowed streams until its timeout: its status line is the answer.
        agent: watch ? new https.Agent({ ca }) : agent,
        headers: { Authorization: `Bearer ${token}`, Accept: 'application/json', ...(data ? { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(data) } : {}) },
      }, (res) => {
        if (watch) {
          resolve({ code: res.statusCode ?? 0, body: '' });
          req.destroy();
          return;
        }
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ code: res.statusCode ?? 0, body: text }));
      });
      req.on('error', (e) => (req.destroyed ? undefined : reject(e)));
      req.end(data);
    });
}

/** Runs `fns` at most `n` at a time. */
async function pool<T>(n: number, fns: Array<() => Promise<T>>): Promise<T[]> {
  const out: T[] = new Array(fns.length);
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < fns.length) {
      const i = next++;
      out[i] = await fns[i]!();
    }
  }));
  return out;
}

// ---------------------------------------------------------------------------------------------
// 1. Two projects.

interface Kind {
  /** kubectl's name for it. */
  kubectl: string;
  /** Its API path under a namespace, e.g. /api/v1/namespaces/NS/secrets. */
  path: (ns: string) => string;
  /** Its cluster-wide list/watch path. */
  all: string;
  /** Its resource in forbidden messages: `instances.kova.dev`, `secrets`. */
  qualified: string;
  resource: string;
  group: string;
}

const kovaKind = (resource: string): Kind => ({
  kubectl: `${resource}.kova.dev`, resource, group: 'kova.dev', qualified: `${resource}.kova.dev`,
  path: (ns) => `/apis/kova.dev/v1alpha1/namespaces/${ns}/${resource}`, all: `/apis/kova.dev/v1alpha1/${resource}`,
});
const coreKind = (resource: string): Kind => ({
  kubectl: resource, resource, group: '', qualified: resource,
  path: (ns) => `/api/v1/namespaces/${ns}/${resource}`, all: `/api/v1/${resource}`,
});
const PROJECT_KINDS: Kind[] = [
  kovaKind('instances'), kovaKind('networks'), kovaKind('ports'), kovaKind('keypairs'),
  coreKind('secrets'), coreKind('configmaps'), coreKind('events'),
];

/** What each tenant builds in their project; names are prefixed (a-, b-) so leaks are visible. */
const projectObjects = (ns: string, p: string, subnet: number) => `
apiVersion: kova.dev/v1alpha1
kind: Network
metadata: {name: ${p}-net, namespace: ${ns}, labels: {tenancy: demo}}
spec: {type: vxlan, cidr: 10.${subnet}.0.0/24}
---
apiVersion: kova.dev/v1alpha1
kind: KeyPair
metadata: {name: ${p}-key, namespace: ${ns}, labels: {tenancy: demo}}
spec: {publicKey: ${KEY}}
---
apiVersion: v1
kind: Secret
metadata: {name: ${p}-secret, namespace: ${ns}, labels: {tenancy: demo}}
stringData: {password: ${p}-very-secret}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ${p}-config, namespace: ${ns}, labels: {tenancy: demo}}
data: {owner: ${p}}
---
apiVersion: kova.dev/v1alpha1
kind: Instance
metadata: {name: ${p}-vm, namespace: ${ns}, labels: {tenancy: demo}}
spec:
  flavor: m1.tiny
  image: tiny
  keyPair: ${p}-key
  networks: [{network: ${p}-net}]
`;

describe('two projects cannot see each other', () => {
  let alice: KovaUser;
  let bob: KovaUser;
  /** Object names per tenant and kind (the Port and the Events are made by kova). */
  const names: Record<'a' | 'b', Record<string, string>> = { a: {}, b: {} };

  const denied = (r: KubectlResult, re: RegExp, what: string) => {
    assert.notEqual(r.code, 0, `${what} was allowed:\n${r.stdout}`);
    assert.match(r.stderr, re, what);
  };

  before(async () => {
    for (const ns of ['proj-a', 'proj-b']) await kova.k(['create', 'namespace', ns]);
    alice = await createUser(kova, 'alice', ['--project', 'proj-a', '--role', 'member']);
    bob = await createUser(kova, 'bob', ['--project', 'proj-b', '--role', 'member']);
    // Each builds their project with their own kubeconfig (its context names their project).
    await alice.k(['apply', '-f', '-'], { input: projectObjects('proj-a', 'a', 1) });
    await bob.k(['apply', '-f', '-'], { input: projectObjects('proj-b', 'b', 2) });
    for (const [p, user, ns] of [['a', alice, 'proj-a'], ['b', bob, 'proj-b']] as const) {
      Object.assign(names[p], { instances: `${p}-vm`, networks: `${p}-net`, keypairs: `${p}-key`, secrets: `${p}-secret`, configmaps: `${p}-config` });
      // kova makes the Port of the NIC and records Events (Scheduled) about the instance: each
      // user sees those of their project with their own kubeconfig.
      names[p].ports = await eventually(async () => (await user.k(['get', 'ports', '-n', ns, '-l', `kova.dev/instance=${p}-vm`, '-o', 'jsonpath={.items[0].metadata.name}'])).trim(), 30_000, `the port of ${p}-vm`);
      names[p].events = await eventually(async () => (await user.k(['get', 'events', '-n', ns, '--field-selector', `involvedObject.name=${p}-vm,reason=Scheduled`, '-o', 'jsonpath={.items[0].metadata.name}'])).trim(), 30_000, `a Scheduled event of ${p}-vm`);
      // Labelled like the rest, so label selectors have something of each project to find.
      await kova.k(['label', 'port', '-n', ns, names[p].ports!, 'tenancy=demo']);
      await kova.k(['label', 'event', '-n', ns, names[p].events!, 'tenancy=demo']);
    }
  });

  it('each sees its own objects, and lists hold nothing of the other project', async () => {
    for (const [p, q, user, ns] of [['a', 'b', alice, 'proj-a'], ['b', 'a', bob, 'proj-b']] as const) {
      for (const kind of PROJECT_KINDS) {
        const own = names[p][kind.resource]!;
        assert.ok((await user.k(['get', kind.kubectl, own, '-n', ns, '-o', 'name'])).endsWith(`/${own}\n`));
        // The context's namespace is the user's project: no -n needed.
        const listed = await user.k(['get', kind.kubectl, '-o', 'name']);
        assert.ok(listed.includes(`/${own}\n`), `${user.name} lists ${kind.kubectl}: ${listed}`);
        assert.ok(!listed.includes(`/${q}-`), `${user.name}'s ${kind.kubectl} list leaks: ${listed}`);
      }
    }
  });

  it('get, list and list -A of the other project are 403 in Kubernetes\' words, whether the object exists or not', async () => {
    const checks: Array<() => Promise<void>> = [];
    for (const [user, q, other] of [[alice, 'b', 'proj-b'], [bob, 'a', 'proj-a']] as const) {
      for (const kind of PROJECT_KINDS) {
        const name = names[q][kind.resource]!;
        const who = `User "${user.name}"`;
        checks.push(async () => {
          // A real name and a made-up one get the same answer: no existence oracle.
          for (const n of [name, 'no-such-object']) {
            denied(await user.kubectl(['get', kind.kubectl, n, '-n', other]), new RegExp(`${esc(kind.qualified)} "${esc(n)}" is forbidden: ${who} cannot get resource "${kind.resource}" in API group "${kind.group}" in the namespace "${other}"`), `${user.name} get ${kind.kubectl} ${n} -n ${other}`);
          }
          denied(await user.kubectl(['get', kind.kubectl, '-n', other]), new RegExp(`${who} cannot list resource "${kind.resource}" in API group "${kind.group}" in the namespace "${other}"`), `${user.name} list ${kind.kubectl} -n ${other}`);
          denied(await user.kubectl(['get', kind.kubectl, '-A']), new RegExp(`${who} cannot list resource "${kind.resource}" in API group "${kind.group}" at the cluster scope`), `${user.name} list ${kind.kubectl} -A`);
          // describe reaches the same wall (it gets, then lists Events).
          const d = await user.kubectl(['describe', kind.kubectl, name, '-n', other]);
          assert.notEqual(d.code, 0);
          assert.ok(!d.stdout.includes(name), `describe leaks ${name}: ${d.stdout}`);
        });
      }
      // The other project itself, and the list of projects.
      checks.push(async () => {
        denied(await user.kubectl(['get', 'namespace', other]), new RegExp(`namespaces "${other}" is forbidden: User "${user.name}" cannot get resource "namespaces"`), 'get the other namespace');
        denied(await user.kubectl(['get', 'namespaces']), /cannot list resource "namespaces" in API group "" at the cluster scope/, 'list namespaces');
        denied(await user.kubectl(['get', 'kova', '-n', other]), /forbidden/, 'get kova (category) in the other project');
      });
    }
    await pool(8, checks);
  });

  it('watches of the other project, or of every project, are refused with 403 (kubectl -w and raw watches)', async () => {
    const checks: Array<() => Promise<void>> = [];
    for (const [user, other] of [[alice, 'proj-b'], [bob, 'proj-a']] as const) {
      for (const kind of PROJECT_KINDS) {
        const who = `User "${user.name}"`;
        const g = kind.group.replace(/\./g, '\\.');
        checks.push(async () => {
          // kubectl -w: it lists first, and that is refused; the short timeout bounds a leak that would otherwise stream.
          for (const scope of [['-n', other], ['-A']]) {
            const r = await user.kubectl(['get', kind.kubectl, ...scope, '-w', '--request-timeout=5s'], { timeoutMs: 15_000 });
            denied(r, /Error from server \(Forbidden\)/, `${user.name} get ${kind.kubectl} ${scope.join(' ')} -w`);
            assert.equal(r.stdout, '', `a refused watch printed objects: ${r.stdout}`);
          }
          // The watch verb itself, as informers send it (no list first).
          const ns = await user.kubectl(['get', '--raw', `${kind.path(other)}?watch=1&timeoutSeconds=2`], { timeoutMs: 15_000 });
          denied(ns, new RegExp(`${who} cannot watch resource "${kind.resource}" in API group "${g}" in the namespace "${other}"`), `raw watch ${kind.path(other)}`);
          const all = await user.kubectl(['get', '--raw', `${kind.all}?watch=1&timeoutSeconds=2`], { timeoutMs: 15_000 });
          denied(all, new RegExp(`${who} cannot watch resource "${kind.resource}" in API group "${g}" at the cluster scope`), `raw watch ${kind.all}`);
          // Selectors do not narrow a cluster-wide watch into an allowed one.
          const sel = await user.kubectl(['get', '--raw', `${kind.all}?watch=1&timeoutSeconds=2&fieldSelector=metadata.namespace%3D${user === alice ? 'proj-a' : 'proj-b'}`], { timeoutMs: 15_000 });
          denied(sel, /at the cluster scope/, `raw watch ${kind.all} with the user's own namespace as field selector`);
        });
      }
    }
    await pool(8, checks);
  });

  it('a watch of one\'s own project streams one\'s own changes and nothing of the other project', async () => {
    const w = alice.spawnKubectl(['get', 'configmaps', '-n', 'proj-a', '-w', '-o', 'name']);
    const raw = alice.spawnKubectl(['get', '--raw', '/api/v1/namespaces/proj-a/configmaps?watch=1&timeoutSeconds=20']);
    try {
      await eventually(() => w.output().includes('configmap/a-config'), 15_000, 'the initial list in alice\'s watch');
      await new Promise((r) => setTimeout(r, 500));
      await bob.k(['create', 'configmap', 'b-late', '-n', 'proj-b', '--from-literal=x=1']);
      await kova.k(['create', 'configmap', 'b-admin', '-n', 'proj-b', '--from-literal=x=1']);
      await alice.k(['create', 'configmap', 'a-late', '--from-literal=x=1']);
      await eventually(() => w.output().includes('configmap/a-late') && raw.output().includes('"a-late"'), 15_000, 'alice\'s own create in both watches');
      for (const out of [w.output(), raw.output()]) {
        for (const leak of ['proj-b', 'b-late', 'b-admin', 'b-config']) assert.ok(!mentions(out, leak), `alice's watch shows ${leak}: ${out}`);
      }
    } finally {
      await w.stop();
      await raw.stop();
    }
  });

  it('field and label selectors find nothing of the other project', async () => {
    const checks: Array<() => Promise<void>> = [];
    for (const [p, q, user, own, other] of [['a', 'b', alice, 'proj-a', 'proj-b'], ['b', 'a', bob, 'proj-b', 'proj-a']] as const) {
      for (const kind of PROJECT_KINDS) {
        const theirs = names[q][kind.resource]!;
        checks.push(async () => {
          // Cluster-wide with a selector naming the other project: still a cluster-wide list, refused.
          denied(await user.kubectl(['get', kind.kubectl, '-A', '--field-selector', `metadata.namespace=${other}`]), /at the cluster scope/, `${user.name} -A --field-selector metadata.namespace=${other}`);
          denied(await user.kubectl(['get', kind.kubectl, '-A', '-l', 'tenancy=demo']), /at the cluster scope/, `${user.name} -A -l tenancy=demo`);
          // In one's own project, selectors pointing at the other one match nothing.
          for (const fs of [`metadata.namespace=${other}`, `metadata.name=${theirs}`]) {
            const r = await user.kubectl(['get', kind.kubectl, '-n', own, '--field-selector', fs, '-o', 'name']);
            assert.equal(r.code, 0, r.stderr);
            assert.equal(r.stdout, '', `${user.name} --field-selector ${fs}`);
          }
          // A label both projects' objects carry finds only one's own.
          const labelled = await user.k(['get', kind.kubectl, '-n', own, '-l', 'tenancy=demo', '-o', 'jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{"\\n"}{end}']);
          assert.deepEqual(labelled.trim().split('\n'), [`${own}/${names[p][kind.resource]}`], `${user.name} -l tenancy=demo ${kind.kubectl}`);
        });
      }
    }
    await pool(8, checks);
  });

  it('discovery works for them and lists kinds only', async () => {
    for (const user of [alice, bob]) {
      const resources = await user.k(['api-resources']);
      for (const r of ['instances', 'networks', 'ports', 'keypairs', 'secrets', 'configmaps', 'events', 'flavors', 'hosts', 'rolebindings', 'resourcequotas']) {
        assert.match(resources, new RegExp(`^${r}\\s`, 'm'), `api-resources lists ${r}`);
      }
      assert.match(await user.k(['api-resources', '--namespaced=true', '--api-group=kova.dev', '-o', 'name']), /^instances\.kova\.dev$/m);
      const docs = [resources, await user.k(['api-versions'])];
      for (const path of ['/api', '/api/v1', '/apis', '/apis/kova.dev/v1alpha1', '/apis/rbac.authorization.k8s.io/v1']) docs.push(await user.k(['get', '--raw', path]));
      docs.push(await user.k(['explain', 'instance.spec.networks']));
      for (const doc of docs) {
        for (const p of ['a', 'b'] as const) {
          for (const n of Object.values(names[p])) assert.ok(!mentions(doc, n), `discovery shows the object name ${n}`);
        }
        assert.ok(!doc.includes('-very-secret'));
      }
    }
  });

  it('each manages its own: patch, delete and recreate with their own kubeconfig', async () => {
    for (const [p, user, ns] of [['a', alice, 'proj-a'], ['b', bob, 'proj-b']] as const) {
      await user.k(['patch', 'instance', `${p}-vm`, '--type=merge', '-p', '{"spec":{"runStrategy":"Halted"}}']);
      assert.equal(await kova.k(['get', 'instance', `${p}-vm`, '-n', ns, '-o', 'jsonpath={.spec.runStrategy}']), 'Halted');
      await user.k(['label', 'network', `${p}-net`, 'tier=gold']);
      assert.equal((await user.k(['get', 'secret', `${p}-secret`, '-o', 'jsonpath={.data.password}'])), Buffer.from(`${p}-very-secret`).toString('base64'));
      await user.k(['delete', 'configmap', `${p}-config`]);
      await user.k(['create', 'configmap', `${p}-config`, '--from-literal=owner=again']);
      await user.k(['delete', 'keypair', `${p}-key`, '--wait=true']);
      // ... but not the other project's, even when naming it.
      const q = p === 'a' ? 'b' : 'a';
      const other = ns === 'proj-a' ? 'proj-b' : 'proj-a';
      denied(await user.kubectl(['delete', 'configmap', `${q}-config`, '-n', other]), new RegExp(`User "${user.name}" cannot delete resource "configmaps" in API group "" in the namespace "${other}"`), 'delete in the other project');
      denied(await user.kubectl(['patch', 'instance', `${q}-vm`, '-n', other, '--type=merge', '-p', '{"spec":{"runStrategy":"Halted"}}']), new RegExp(`User "${user.name}" cannot (get|patch) resource "instances" in API group "kova.dev" in the namespace "${other}"`), 'patch in the other project');
      denied(await user.kubectl(['create', 'configmap', 'intruder', '-n', other]), /cannot create resource "configmaps"/, 'create in the other project');
    }
    // Nothing of the other's was touched.
    assert.equal(await kova.k(['get', 'configmap', 'b-config', '-n', 'proj-b', '-o', 'jsonpath={.data.owner}']), 'again');
    assert.equal((await kova.kubectl(['get', 'configmap', 'intruder', '-n', 'proj-b'])).code, 1);
  });

  it('image file sources (a file of the control-plane host) are the cloud admin\'s; members import over http', async () => {
    const image = (name: string, source: string) => `apiVersion: kova.dev/v1alpha1\nkind: Image\nmetadata: {name: ${name}, namespace: proj-a}\nspec: {source: ${source}, format: raw}\n`;
    const loot = `{file: {path: ${join(kova.dataDir, 'pki', 'ca.key')}}}`;
    const refused = new RegExp(`images\\.kova\\.dev "(loot|a-base|a-web)" is forbidden: User "alice" cannot create resource "images/filesource" in API group "kova\\.dev" in the namespace "proj-a": importing an image from a file on the control-plane host \\(spec\\.source\\.file\\) is for cloud admins`);
    denied(await alice.kubectl(['apply', '-f', '-'], { input: image('loot', loot) }), refused, 'a member\'s file-sourced image');
    denied(await alice.kubectl(['apply', '--server-side', '-f', '-'], { input: image('loot', loot) }), refused, 'the same by server-side apply');
    assert.equal((await kova.kubectl(['get', 'image', 'loot', '-n', 'proj-a'])).code, 1, 'nothing was stored');
    assert.equal((await alice.kubectl(['auth', 'can-i', 'create', 'images.kova.dev', '--subresource=filesource'])).stdout.trim(), 'no');
    // Over http: fine (the import itself fails here; no server listens there).
    await alice.k(['apply', '-f', '-'], { input: image('a-web', '{http: {url: "http://127.0.0.1:9/a.raw"}}') });
    denied(await alice.kubectl(['patch', 'image', 'a-web', '--type=merge', '-p', `{"spec":{"source":{"http":null,"file":{"path":"/etc/shadow"}}}}`]), refused, 'patching an http source into a file');
    // The admin's file image in alice's project: she may relabel it, not point it elsewhere.
    await kova.k(['apply', '-f', '-'], { input: image('a-base', `{file: {path: ${(await writeSimImageFile(kova.dataDir, 'tenancy.raw')).path}}}`) });
    await alice.k(['label', 'image', 'a-base', 'tier=gold']);
    const base = JSON.parse(await alice.k(['get', 'image', 'a-base', '-o', 'json']));
    base.spec.source.file.path = join(kova.dataDir, 'pki', 'ca.key');
    denied(await alice.kubectl(['replace', '-f', '-'], { input: JSON.stringify(base) }), refused, 'replacing the file path');
    denied(await alice.kubectl(['patch', 'image', 'a-base', '--type=merge', '-p', JSON.stringify({ spec: { source: { file: { path: '/etc/shadow' } } } })]), refused, 'patching the file path');
    // An admin may delegate it, as any RBAC right: a Role granting images/filesource in proj-a.
    await kova.k(['create', 'role', 'image-importer', '-n', 'proj-a', '--verb=create', '--resource=images.kova.dev/filesource']);
    await kova.k(['create', 'rolebinding', 'alice-imports', '-n', 'proj-a', '--role=image-importer', '--user=alice']);
    await eventually(async () => (await alice.kubectl(['auth', 'can-i', 'create', 'images.kova.dev', '--subresource=filesource'])).stdout.trim() === 'yes', 10_000, 'the delegated right');
    await alice.k(['apply', '-f', '-'], { input: image('a-own', `{file: {path: ${join(kova.dataDir, 'tenancy.raw')}}}`) });
  });
});

// ---------------------------------------------------------------------------------------------
// 2. The matrix.

type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete';
const VERBS: Verb[] = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'];
const READ: Verb[] = ['get', 'list', 'watch'];
const ALL: Verb[] = VERBS;
const NONE: Verb[] = [];

type Res = 'instances' | 'instances/status' | 'networks' | 'keypairs' | 'flavors' | 'hosts' | 'rolebindings' | 'resourcequotas' | 'secrets';
type Role = 'reader' | 'member' | 'manager' | 'cloud-admin' | 'unbound';
const NS = 'mx';

/**
 * The expected grid: Kubernetes' view (reader), edit (member), admin (manager) and cluster-admin
 * (cloud-admin) with the kova kinds aggregated into them, for a user bound in project mx.
 * - view reads the project's kinds and quotas, not Secrets or RBAC; edit writes the kinds and
 *   Secrets, not RBAC; admin adds RoleBindings; nobody below cluster-admin writes quotas (a
 *   project may not raise its own quota), flavors (the catalogue) or hosts.
 * - kova's choice beyond upstream: a project admin may also write the status of the project's
 *   kinds (kova:aggregate-to-admin), which edit may not (status belongs to controllers, agents).
 * - every authenticated user reads the flavor catalogue (kova:catalog-reader), like Nova's.
 */
const EXPECTED: Record<Role, Record<Res, Verb[]>> = {
  reader: { instances: READ, 'instances/status': READ, networks: READ, keypairs: READ, flavors: READ, hosts: NONE, rolebindings: NONE, resourcequotas: READ, secrets: NONE },
  member: { instances: ALL, 'instances/status': READ, networks: ALL, keypairs: ALL, flavors: READ, hosts: NONE, rolebindings: NONE, resourcequotas: READ, secrets: ALL },
  manager: { instances: ALL, 'instances/status': [...READ, 'update', 'patch'], networks: ALL, keypairs: ALL, flavors: READ, hosts: NONE, rolebindings: ALL, resourcequotas: READ, secrets: ALL },
  'cloud-admin': { instances: ALL, 'instances/status': ALL, networks: ALL, keypairs: ALL, flavors: ALL, hosts: ALL, rolebindings: ALL, resourcequotas: ALL, secrets: ALL },
  unbound: { instances: NONE, 'instances/status': NONE, networks: NONE, keypairs: NONE, flavors: READ, hosts: NONE, rolebindings: NONE, resourcequotas: NONE, secrets: NONE },
};

interface ResSpec {
  group: string;
  resource: string;
  subresource?: string;
  namespaced: boolean;
  /** The collection's path. */
  base: string;
  /** A new object named `name` (n: a small number unique per object, for CIDRs). */
  make: (name: string, n: number) => Record<string, unknown>;
  /** A change an update makes (to a fresh copy). */
  change: (o: Record<string, any>) => void; // eslint-disable-line @typescript-eslint/no-explicit-any
}

const kovaObj = (kind: string, name: string, spec: unknown, namespaced = true) => ({ apiVersion: 'kova.dev/v1alpha1', kind, metadata: { name, ...(namespaced ? { namespace: NS } : {}) }, spec });
const relabel = (o: Record<string, any>) => void (o.metadata.labels = { ...o.metadata.labels, updated: 'yes' }); // eslint-disable-line @typescript-eslint/no-explicit-any
const instanceSpec = { flavor: 'm1.tiny', image: 'none', runStrategy: 'Halted' };

const RES: Record<Res, ResSpec> = {
  instances: { group: 'kova.dev', resource: 'instances', namespaced: true, base: `/apis/kova.dev/v1alpha1/namespaces/${NS}/instances`, make: (n) => kovaObj('Instance', n, instanceSpec), change: relabel },
  'instances/status': { group: 'kova.dev', resource: 'instances', subresource: 'status', namespaced: true, base: `/apis/kova.dev/v1alpha1/namespaces/${NS}/instances`, make: (n) => kovaObj('Instance', n, instanceSpec), change: relabel },
  networks: { group: 'kova.dev', resource: 'networks', namespaced: true, base: `/apis/kova.dev/v1alpha1/namespaces/${NS}/networks`, make: (n, i) => kovaObj('Network', n, { type: 'vxlan', cidr: `10.${100 + Math.floor(i / 250)}.${i % 250}.0/24` }), change: relabel },
  keypairs: { group: 'kova.dev', resource: 'keypairs', namespaced: true, base: `/apis/kova.dev/v1alpha1/namespaces/${NS}/keypairs`, make: (n) => kovaObj('KeyPair', n, { publicKey: KEY }), change: relabel },
  flavors: { group: 'kova.dev', resource: 'flavors', namespaced: false, base: '/apis/kova.dev/v1alpha1/flavors', make: (n) => kovaObj('Flavor', n, { vcpus: 1, memory: '64Mi', disk: '1Gi' }, false), change: relabel },
  // Cordoned and without an agent: nothing is ever scheduled on them.
  hosts: { group: 'kova.dev', resource: 'hosts', namespaced: false, base: '/apis/kova.dev/v1alpha1/hosts', make: (n) => kovaObj('Host', n, { unschedulable: true }, false), change: relabel },
  rolebindings: {
    group: 'rbac.authorization.k8s.io', resource: 'rolebindings', namespaced: true, base: `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings`,
    make: (n) => ({
      apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: n, namespace: NS },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'kova:reader' },
      subjects: [{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: `someone-${n}` }],
    }),
    change: relabel,
  },
  // A quota on a count nothing in mx uses: it changes no other cell's outcome.
  resourcequotas: { group: '', resource: 'resourcequotas', namespaced: true, base: `/api/v1/namespaces/${NS}/resourcequotas`, make: (n) => ({ apiVersion: 'v1', kind: 'ResourceQuota', metadata: { name: n, namespace: NS }, spec: { hard: { 'count/floatingips.kova.dev': '100' } } }), change: relabel },
  secrets: { group: '', resource: 'secrets', namespaced: true, base: `/api/v1/namespaces/${NS}/secrets`, make: (n) => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name: n, namespace: NS }, type: 'Opaque', stringData: { k: n } }), change: relabel },
};
const RESOURCES = Object.keys(RES) as Res[];
const ROLES = Object.keys(EXPECTED) as Role[];

/** A status subresource has no list, watch, create or delete endpoint (as in Kubernetes): only can-i is asked there. */
const hasEndpoint = (res: Res, verb: Verb) => !RES[res].subresource || ['get', 'update', 'patch'].includes(verb);

/** `kubectl auth can-i --list -n NS` output → the verbs it grants on `resource` (e.g. instances.kova.dev/status). */
function verbsFromList(table: string, resource: string): Set<string> {
  const verbs = new Set<string>();
  for (const line of table.split('\n').slice(1)) {
    const m = /^(\S+)\s+\[[^\]]*\]\s+\[([^\]]*)\]\s+\[([^\]]*)\]\s*$/.exec(line);
    if (!m) continue;
    const [, res, names, vs] = m;
    if (names) continue; // rules limited to resourceNames do not answer for the kind
    const [plural, ...groupParts] = resource.split('/')[0]!.split('.');
    const sub = resource.split('/')[1];
    const group = groupParts.join('.');
    const [rp, ...rg] = res!.split('/')[0]!.split('.');
    const rsub = res!.split('/')[1];
    const rgroup = rg.join('.');
    const groupOk = res === '*.*' || rgroup === group || rgroup === '*';
    const resOk = res === '*.*' || ((rp === plural || rp === '*') && (rsub === sub || rsub === '*'));
    if (groupOk && resOk) for (const v of vs!.split(' ')) verbs.add(v);
  }
  return verbs;
}

const display = (res: Res) => {
  const r = RES[res];
  return `${r.resource}${r.group ? `.${r.group}` : ''}${r.subresource ? `/${r.subresource}` : ''}`;
};

describe('users × roles × verbs × resources: the grid, can-i and real requests agree', () => {
  const users = {} as Record<Role, KovaUser>;
  const http = {} as Record<Role, Http>;
  let admin: Http;
  const short: Record<Role, string> = { reader: 'rd', member: 'mb', manager: 'mg', 'cloud-admin': 'ca', unbound: 'ub' };
  /** Per-cell object names: the verb's initial and the user (the probe is shared by the read verbs). */
  const objName = (res: Res, role: Role, verb: Verb) => `mx-${res === 'instances/status' ? 'st' : ''}${verb[0]}${verb === 'patch' ? 'a' : ''}-${short[role]}`;
  const probe = (res: Res) => `mx-probe${res === 'instances/status' ? '-st' : ''}`;

  before(async () => {
    await kova.k(['apply', '-f', '-'], { input: `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${NS}, annotations: {kova.dev/default-quota: none}}\n` });
    const made = await Promise.all(ROLES.map((role) => createUser(kova, `mx-${short[role]}`, role === 'unbound' ? [] : role === 'cloud-admin' ? ['--role', 'cloud-admin'] : ['--project', NS, '--role', role])));
    ROLES.forEach((role, i) => (users[role] = made[i]!));
    for (const role of ROLES) http[role] = await httpFor(users[role].kubeconfig);
    admin = await httpFor(kova.kubeconfig);
    // The admin makes the objects each cell acts on: a probe per resource for the reads, and a
    // throwaway per user for each destructive verb.
    let n = 0;
    const creates: Array<() => Promise<void>> = [];
    for (const res of RESOURCES) {
      const names = [probe(res), ...ROLES.flatMap((role) => (['update', 'patch', 'delete'] as Verb[]).filter((v) => hasEndpoint(res, v)).map((v) => objName(res, role, v)))];
      for (const name of names) {
        const i = n++;
        creates.push(async () => {
          const r = await admin('POST', RES[res].base, RES[res].make(name, i));
          assert.equal(r.code, 201, `admin create ${res} ${name}: ${r.body}`);
        });
      }
    }
    await pool(16, creates);
  });

  it('SelfSubjectAccessReview (what kubectl auth can-i asks) answers as the grid says, for every cell', async () => {
    const wrong: string[] = [];
    const cells: Array<() => Promise<void>> = [];
    for (const role of ROLES) {
      for (const res of RESOURCES) {
        for (const verb of VERBS) {
          cells.push(async () => {
            const r = RES[res];
            const spec = { resourceAttributes: { verb, group: r.group, resource: r.resource, ...(r.subresource ? { subresource: r.subresource } : {}), ...(r.namespaced ? { namespace: NS } : {}) } };
            const reply = await http[role]('POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec });
            assert.equal(reply.code, 201, reply.body);
            const allowed = JSON.parse(reply.body).status.allowed === true;
            if (allowed !== EXPECTED[role][res].includes(verb)) wrong.push(`${role} ${verb} ${res}: can-i ${allowed ? 'yes' : 'no'}, grid ${allowed ? 'no' : 'yes'}`);
          });
        }
      }
    }
    await pool(16, cells);
    assert.deepEqual(wrong.sort(), []);
  });

  it('kubectl auth can-i --list -n mx grants what the grid says, per user', async () => {
    const wrong: string[] = [];
    await Promise.all(ROLES.map(async (role) => {
      const table = await users[role].k(['auth', 'can-i', '--list', '-n', NS]);
      for (const res of RESOURCES) {
        const granted = verbsFromList(table, display(res));
        for (const verb of VERBS) {
          const yes = granted.has(verb) || granted.has('*');
          if (yes !== EXPECTED[role][res].includes(verb)) wrong.push(`${role} ${verb} ${display(res)}: --list ${yes ? 'yes' : 'no'}`);
        }
      }
    }));
    assert.deepEqual(wrong.sort(), []);
  });

  it('kubectl auth can-i VERB RESOURCE answers as the grid says (a subset: every user, each resource once)', async () => {
    const wrong: string[] = [];
    const cells: Array<() => Promise<void>> = [];
    for (const [ri, role] of ROLES.entries()) {
      for (const [i, res] of RESOURCES.entries()) {
        // Two verbs per user and resource, rotating so every verb is asked of every resource somewhere.
        for (const verb of [VERBS[(i + ri) % VERBS.length]!, VERBS[(i + ri + 3) % VERBS.length]!]) {
          cells.push(async () => {
            const r = RES[res];
            const args = ['auth', 'can-i', verb, `${r.resource}${r.group ? `.${r.group}` : ''}`, ...(r.subresource ? [`--subresource=${r.subresource}`] : []), ...(r.namespaced ? ['-n', NS] : [])];
            const out = await users[role].kubectl(args);
            const want = EXPECTED[role][res].includes(verb) ? 'yes' : 'no';
            if (out.stdout.trim() !== want || out.code !== (want === 'yes' ? 0 : 1)) wrong.push(`${role}: kubectl ${args.join(' ')}: ${out.stdout.trim()} (${out.code}) ${out.stderr.trim()}, want ${want}`);
          });
        }
      }
    }
    await pool(8, cells);
    assert.deepEqual(wrong.sort(), []);
  });

  it('real requests with each user\'s token succeed exactly where the grid allows and are 403 elsewhere', async () => {
    const wrong: string[] = [];
    const cells: Array<() => Promise<void>> = [];
    for (const role of ROLES) {
      for (const res of RESOURCES) {
        for (const verb of VERBS) {
          if (!hasEndpoint(res, verb)) continue;
          cells.push(async () => {
            const code = await realRequest(role, res, verb);
            const want = EXPECTED[role][res].includes(verb);
            const ok = want ? code >= 200 && code < 300 : code === 403;
            if (!ok) wrong.push(`${role} ${verb} ${res}: HTTP ${code}, want ${want ? '2xx' : '403'}`);
          });
        }
      }
    }
    await pool(16, cells);
    assert.deepEqual(wrong.sort(), []);
  });

  /** Does `verb` on `res` as `role` for real; returns the HTTP status (update retries a conflict with a controller). */
  async function realRequest(role: Role, res: Res, verb: Verb): Promise<number> {
    const r = RES[res];
    const as = http[role];
    const sub = r.subresource ? `/${r.subresource}` : '';
    const name = objName(res, role, verb);
    switch (verb) {
      case 'get': return (await as('GET', `${r.base}/${probe(res)}${sub}`)).code;
      case 'list': return (await as('GET', r.base)).code;
      case 'watch': return (await as('GET', `${r.base}?watch=1&timeoutSeconds=1`)).code;
      case 'create': return (await as('POST', r.base, r.make(`mx-c-${short[role]}${res === 'instances/status' ? '-st' : ''}`, 900 + ROLES.indexOf(role)))).code;
      case 'delete': return (await as('DELETE', `${r.base}/${name}`)).code;
      case 'patch': return (await as('PATCH', `${r.base}/${name}${sub}`, { metadata: { labels: { patched: 'yes' } } }, 'application/merge-patch+json')).code;
      case 'update':
        for (let attempt = 0; ; attempt++) {
          const fresh = await admin('GET', `${r.base}/${name}`);
          assert.equal(fresh.code, 200, fresh.body);
          const obj = JSON.parse(fresh.body);
          r.change(obj);
          const code = (await as('PUT', `${r.base}/${name}${sub}`, obj)).code;
          if (code !== 409 || attempt === 5) return code;
        }
    }
  }

  it('kubectl as each user agrees with the grid (a subset of real requests, with kubectl)', async () => {
    const kubectlRes = (res: Res) => `${RES[res].resource}${RES[res].group ? `.${RES[res].group}` : ''}`;
    // [role, args, allowed?] for kubectl itself: reads, a create, a delete, an edit of RBAC.
    const cases: Array<[Role, string[], Verb, Res]> = [];
    for (const role of ROLES) {
      cases.push([role, ['get', kubectlRes('instances'), '-n', NS], 'list', 'instances']);
      cases.push([role, ['get', kubectlRes('secrets'), probe('secrets'), '-n', NS], 'get', 'secrets']);
      cases.push([role, ['get', kubectlRes('hosts')], 'list', 'hosts']);
      cases.push([role, ['get', kubectlRes('flavors')], 'list', 'flavors']);
      cases.push([role, ['get', 'quota', '-n', NS], 'list', 'resourcequotas']);
      cases.push([role, ['create', 'rolebinding', `kb-${short[role]}`, '-n', NS, '--clusterrole=kova:reader', '--user=zed'], 'create', 'rolebindings']);
      cases.push([role, ['create', 'secret', 'generic', `kb-${short[role]}`, '-n', NS, '--from-literal=a=b'], 'create', 'secrets']);
      cases.push([role, ['create', 'quota', `kb-${short[role]}`, '-n', NS, '--hard=count/floatingips.kova.dev=50'], 'create', 'resourcequotas']);
      cases.push([role, ['label', kubectlRes('networks'), probe('networks'), '-n', NS, `by-${short[role]}=yes`], 'patch', 'networks']);
    }
    const wrong: string[] = [];
    await pool(8, cases.map(([role, args, verb, res]) => async () => {
      const out = await users[role].kubectl(args);
      const want = EXPECTED[role][res].includes(verb);
      // kubectl's generators word a 403 as "error: failed to create ...: ... is forbidden"; label gets first.
      const refused = new RegExp(`forbidden: User "${users[role].name}" cannot (${verb}|get) resource "${RES[res].resource}"`);
      const ok = want ? out.code === 0 : out.code !== 0 && refused.test(out.stderr);
      if (!ok) wrong.push(`${role}: kubectl ${args.join(' ')}: exit ${out.code} ${out.stderr.trim()}, want ${want ? 'success' : '403'}`);
    }));
    assert.deepEqual(wrong.sort(), []);
  });
});
