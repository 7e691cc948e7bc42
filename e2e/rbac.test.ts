// RBAC end to end with the real kubectl against `kova up` (two API workers, so the bootstrap
// policy is reconciled by two processes at once, and the controllers, for aggregation):
// kubectl create clusterrole/role/rolebinding (protobuf bodies), kubectl auth can-i (yes/no,
// --list, -n, --as), kubectl auth whoami, SubjectAccessReview for admins only, RBAC validation
// errors naming the field, and a ClusterRole labelled aggregate-to-view reaching view.
// Other users are reached through impersonation by the admin (kubectl --as), and one through a
// kubeconfig of its own from `kova user create`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { eventually, KOVA_BIN, KUBECTL, startKova } from './harness.js';
import type { Kova } from './harness.js';

let kova: Kova;

before(async () => {
  kova = await startKova(['--driver', 'sim', '--no-agents', '--api-workers', '2']);
  await kova.k(['create', 'namespace', 'demo']);
  await kova.k(['create', 'namespace', 'other']);
});

after(async () => {
  await kova?.stop();
});

/** `kubectl auth can-i ...`: its answer and exit code (0 yes, 1 no). */
async function canI(args: string[]): Promise<{ answer: string; code: number }> {
  const r = await kova.kubectl(['auth', 'can-i', ...args]);
  return { answer: r.stdout.trim(), code: r.code };
}

describe('RBAC with kubectl', () => {
  test('the default roles and bindings are there', async () => {
    const roles = (await kova.k(['get', 'clusterroles', '-o', 'name'])).split('\n');
    for (const r of ['cluster-admin', 'admin', 'edit', 'view', 'kova:cloud-admin', 'kova:project-manager', 'kova:member', 'kova:reader', 'system:basic-user', 'system:kova:controller-manager', 'system:kova:node']) {
      assert.ok(roles.includes(`clusterrole.rbac.authorization.k8s.io/${r}`), r);
    }
    const table = await kova.k(['get', 'clusterrolebinding', 'cluster-admin', '-o', 'wide']);
    assert.match(table, /^NAME\s+ROLE\s+AGE\s+USERS\s+GROUPS\s+SERVICEACCOUNTS/);
    assert.match(table, /system:masters/);
    assert.match(await kova.k(['get', 'clusterrole', 'view']), /^NAME\s+CREATED AT\nview\s+\d{4}-\d\d-\d\dT/);
    // The aggregated roles already hold the kova kinds (computed at bootstrap).
    const view = JSON.parse(await kova.k(['get', 'clusterrole', 'kova:reader', '-o', 'json']));
    assert.ok(view.rules.some((r: { resources?: string[] }) => r.resources?.includes('instances')));
  });

  test('whoami and can-i as the admin', async () => {
    const me = JSON.parse(await kova.k(['auth', 'whoami', '-o', 'json']));
    assert.equal(me.kind, 'SelfSubjectReview');
    assert.equal(me.status.userInfo.username, 'kova-admin');
    assert.ok(me.status.userInfo.groups.includes('system:masters'));
    assert.deepEqual(await canI(['delete', 'hosts.kova.dev']), { answer: 'yes', code: 0 });
  });

  test('kubectl create clusterrole/role/rolebinding; a project manager delegates within the project', async () => {
    await kova.k(['create', 'clusterrole', 'flavor-peeker', '--verb=get,list', '--resource=flavors.kova.dev']);
    await kova.k(['create', 'rolebinding', 'alice-manager', '-n', 'demo', '--clusterrole=kova:project-manager', '--user=alice']);
    const wide = await kova.k(['get', 'rolebinding', 'alice-manager', '-n', 'demo', '-o', 'wide']);
    assert.match(wide, /alice-manager\s+ClusterRole\/kova:project-manager\s+\S+\s+alice\b/);

    // Alice, manager of demo, writes a Role and binds bob as reader there: RBAC through kubectl as her.
    await kova.k(['--as', 'alice', 'create', 'role', 'instance-peeker', '-n', 'demo', '--verb=get,list,watch', '--resource=instances.kova.dev']);
    await kova.k(['--as', 'alice', 'create', 'rolebinding', 'bob-reader', '-n', 'demo', '--clusterrole=kova:reader', '--user=bob']);
    await kova.k(['--as', 'alice', 'create', 'rolebinding', 'carol-peeker', '-n', 'demo', '--role=instance-peeker', '--user=carol', '--group=auditors']);
    // ... but nothing outside it.
    const cluster = await kova.kubectl(['--as', 'alice', 'create', 'clusterrole', 'mine', '--verb=get', '--resource=hosts.kova.dev']);
    assert.notEqual(cluster.code, 0);
    assert.match(cluster.stderr, /forbidden: User "alice" cannot create resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope/);
    const elsewhere = await kova.kubectl(['--as', 'alice', 'create', 'role', 'x', '-n', 'other', '--verb=get', '--resource=instances.kova.dev']);
    assert.match(elsewhere.stderr, /cannot create resource "roles" in API group "rbac.authorization.k8s.io" in the namespace "other"/);
  });

  test('kubectl auth can-i answers per user, verb, resource and namespace', async () => {
    // [args..., expected]
    const cases: Array<[string[], 'yes' | 'no']> = [
      [['create', 'instances.kova.dev', '-n', 'demo', '--as', 'alice'], 'yes'],
      [['create', 'instances.kova.dev', '-n', 'other', '--as', 'alice'], 'no'],
      [['create', 'rolebindings', '-n', 'demo', '--as', 'alice'], 'yes'],
      [['update', 'instances.kova.dev', '--subresource=status', '-n', 'demo', '--as', 'alice'], 'yes'],
      [['list', 'instances.kova.dev', '-n', 'demo', '--as', 'bob'], 'yes'],
      [['create', 'instances.kova.dev', '-n', 'demo', '--as', 'bob'], 'no'],
      [['get', 'secrets', '-n', 'demo', '--as', 'bob'], 'no'],
      [['list', 'flavors.kova.dev', '--as', 'bob'], 'yes'],
      [['list', 'hosts.kova.dev', '--as', 'bob'], 'no'],
      [['watch', 'instances.kova.dev', '-n', 'demo', '--as', 'carol'], 'yes'],
      [['delete', 'instances.kova.dev', '-n', 'demo', '--as', 'carol'], 'no'],
      [['get', 'instances.kova.dev', '-n', 'demo', '--as', 'dave', '--as-group', 'auditors'], 'yes'],
      [['get', 'instances.kova.dev', '-n', 'demo', '--as', 'dave'], 'no'],
      [['create', 'selfsubjectaccessreviews.authorization.k8s.io', '--as', 'nobody'], 'yes'],
    ];
    const wrong: string[] = [];
    for (const [args, want] of cases) {
      const { answer, code } = await canI(args);
      if (answer !== want || code !== (want === 'yes' ? 0 : 1)) wrong.push(`${args.join(' ')}: ${answer} (${code}), want ${want}`);
    }
    assert.deepEqual(wrong, []);
  });

  test('kubectl auth can-i --list and whoami as another user', async () => {
    const list = await kova.k(['auth', 'can-i', '--list', '-n', 'demo', '--as', 'bob']);
    assert.match(list, /^Resources\s+Non-Resource URLs\s+Resource Names\s+Verbs/);
    assert.match(list, /\binstances\.kova\.dev\s+\[\]\s+\[\]\s+\[get list watch\]/);
    assert.match(list, /selfsubjectaccessreviews\.authorization\.k8s\.io\s+\[\]\s+\[\]\s+\[create\]/);
    assert.match(list, /\[\/api\/\*\]\s+\[\]\s+\[get\]/);
    assert.doesNotMatch(list, /secrets/);
    const elsewhere = await kova.k(['auth', 'can-i', '--list', '-n', 'other', '--as', 'bob']);
    assert.doesNotMatch(elsewhere, /instances\.kova\.dev/);

    const who = JSON.parse(await kova.k(['auth', 'whoami', '-o', 'json', '--as', 'bob', '--as-group', 'team-x']));
    assert.equal(who.status.userInfo.username, 'bob');
    assert.ok(who.status.userInfo.groups.includes('team-x'));
    assert.ok(who.status.userInfo.groups.includes('system:authenticated'));
  });

  test('a user from kova user create: their own kubeconfig, their role in their project only', async () => {
    const run = (file: string, args: string[]) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(file, args, { timeout: 60_000 }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout: String(stdout), stderr: String(stderr) }));
    });
    const file = join(kova.dataDir, 'erin.kubeconfig');
    const made = await run(process.execPath, [KOVA_BIN, 'user', 'create', 'erin', '--project', 'demo', '--role', 'member', '--kubeconfig', kova.kubeconfig, '-o', file]);
    assert.equal(made.code, 0, made.stderr);
    const erin = (args: string[]) => run(KUBECTL, ['--kubeconfig', file, '--cache-dir', join(kova.dataDir, 'erin-cache'), ...args]);
    const who = JSON.parse((await erin(['auth', 'whoami', '-o', 'json'])).stdout);
    assert.equal(who.status.userInfo.username, 'erin');
    assert.equal((await erin(['auth', 'can-i', 'create', 'instances.kova.dev', '-n', 'demo'])).stdout.trim(), 'yes');
    assert.equal((await erin(['auth', 'can-i', 'create', 'instances.kova.dev', '-n', 'other'])).stdout.trim(), 'no');
    assert.equal((await erin(['auth', 'can-i', 'create', 'roles', '-n', 'demo'])).stdout.trim(), 'no');
    // Real requests agree with can-i.
    assert.equal((await erin(['get', 'instances', '-n', 'demo'])).code, 0);
    const denied = await erin(['get', 'instances', '-n', 'other']);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /instances\.kova\.dev is forbidden: User "erin" cannot list resource "instances" in API group "kova\.dev" in the namespace "other"/);
    const role = await erin(['create', 'role', 'r', '-n', 'demo', '--verb=get', '--resource=instances.kova.dev']);
    assert.match(role.stderr, /User "erin" cannot create resource "roles" in API group "rbac\.authorization\.k8s\.io" in the namespace "demo"/);
  });

  test('SubjectAccessReview: answered for admins, refused to others', async () => {
    const sar = (user: string) => JSON.stringify({
      apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview',
      spec: { user, resourceAttributes: { namespace: 'demo', verb: 'delete', group: 'kova.dev', resource: 'instances' } },
    });
    const forAlice = JSON.parse(await kova.k(['create', '--validate=false', '-o', 'json', '-f', '-'], { input: sar('alice') }));
    assert.equal(forAlice.status.allowed, true);
    assert.match(forAlice.status.reason, /^RBAC: allowed by RoleBinding "alice-manager\/demo" of ClusterRole "kova:project-manager" to User "alice"$/);
    const forBob = JSON.parse(await kova.k(['create', '--validate=false', '-o', 'json', '-f', '-'], { input: sar('bob') }));
    assert.equal(forBob.status.allowed, false);
    const asBob = await kova.kubectl(['--as', 'bob', 'create', '--validate=false', '-o', 'json', '-f', '-'], { input: sar('bob') });
    assert.notEqual(asBob.code, 0);
    assert.match(asBob.stderr, /User "bob" cannot create resource "subjectaccessreviews" in API group "authorization.k8s.io" at the cluster scope/);
  });

  test('invalid RBAC objects are 422s naming the field; roleRef cannot change', async () => {
    const noRef = await kova.kubectl(['apply', '-f', '-'], {
      input: 'apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: broken, namespace: demo}\nsubjects: [{kind: User, name: x}]\n',
    });
    assert.notEqual(noRef.code, 0);
    assert.match(noRef.stderr, /roleRef: Required value/);
    const mixed = await kova.kubectl(['apply', '-f', '-'], {
      input: 'apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: mixed, namespace: demo}\nrules: [{verbs: [get], nonResourceURLs: [/healthz]}]\n',
    });
    assert.match(mixed.stderr, /rules\[0\]\.nonResourceURLs: Invalid value: .*namespaced rules cannot apply to non-resource URLs/);
    const moved = await kova.kubectl(['patch', 'rolebinding', 'bob-reader', '-n', 'demo', '--type=merge', '-p', '{"roleRef":{"name":"kova:member"}}']);
    assert.notEqual(moved.code, 0);
    const still = JSON.parse(await kova.k(['get', 'rolebinding', 'bob-reader', '-n', 'demo', '-o', 'json']));
    assert.equal(still.roleRef.name, 'kova:reader');
    const replaced = await kova.kubectl(['replace', '-f', '-'], { input: JSON.stringify({ ...still, roleRef: { ...still.roleRef, name: 'kova:member' } }) });
    assert.match(replaced.stderr, /roleRef: Invalid value: .*cannot change roleRef/);
  });

  test('a ClusterRole labelled aggregate-to-view reaches view (and the roles aggregating it) within seconds', async () => {
    await kova.k(['apply', '-f', '-'], {
      input: [
        'apiVersion: rbac.authorization.k8s.io/v1',
        'kind: ClusterRole',
        'metadata:',
        '  name: leases-view',
        '  labels: {rbac.authorization.k8s.io/aggregate-to-view: "true"}',
        'rules: [{apiGroups: [coordination.k8s.io], resources: [leases], verbs: [get, list]}]',
        '',
      ].join('\n'),
    });
    await eventually(async () => {
      const names = await Promise.all(['view', 'edit', 'admin', 'kova:reader'].map(async (r) => JSON.parse(await kova.k(['get', 'clusterrole', r, '-o', 'json']))));
      return names.every((r) => (r.rules ?? []).some((x: { resources?: string[] }) => x.resources?.includes('leases')));
    }, 15_000, 'leases-view aggregated into view, edit, admin and kova:reader');
    // Bob reads in demo through kova:reader: he may now list leases there, for real too.
    await eventually(async () => (await canI(['list', 'leases', '-n', 'demo', '--as', 'bob'])).answer === 'yes', 5000, 'bob may list leases');
    await kova.k(['get', 'leases', '-n', 'demo', '--as', 'bob']);
    assert.equal((await canI(['list', 'leases', '-n', 'other', '--as', 'bob'])).answer, 'no');
    await kova.k(['label', 'clusterrole', 'leases-view', 'rbac.authorization.k8s.io/aggregate-to-view-']);
    await eventually(async () => {
      const view = JSON.parse(await kova.k(['get', 'clusterrole', 'view', '-o', 'json']));
      return !(view.rules ?? []).some((x: { resources?: string[] }) => x.resources?.includes('leases'));
    }, 15_000, 'leases-view leaves view once unlabelled');
    await eventually(async () => (await canI(['list', 'leases', '-n', 'demo', '--as', 'bob'])).answer === 'no', 5000, 'bob may no longer list leases');
  });
});
