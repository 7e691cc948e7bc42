// The audit log end to end: the real kubectl against `kova up` with two API worker processes
// (both append to DATA_DIR/audit/audit.log), then `kova audit` reads back every write and every
// denied request as audit.k8s.io/v1 Events, with the right user, verb, objectRef and code, and
// no reads.
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AuditEvent } from '../apiserver/audit/event.js';
import { eventually, runKova, startKova } from './harness.js';
import type { Kova } from './harness.js';

const flavor = (name: string, vcpus = 1) => `
apiVersion: kova.dev/v1alpha1
kind: Flavor
metadata: {name: ${name}}
spec: {vcpus: ${vcpus}, memory: 512Mi, disk: 1Gi}
`;

describe('audit log', () => {
  let k: Kova;
  const audit = async (args: string[]) => runKova(['audit', '--data-dir', k.dataDir, ...args]);
  const events = async (args: string[] = []) => (await audit([...args, '-o', 'json'])).split('\n').filter(Boolean).map((l) => JSON.parse(l) as AuditEvent);

  before(async () => {
    k = await startKova(['--no-controllers', '--no-agents', '--api-workers', '2']);
    await k.k(['create', 'namespace', 'audit-a']);
    await k.k(['create', '-f', '-'], { input: flavor('af') });
    await k.k(['replace', '-f', '-'], { input: flavor('af', 2) });
    await k.k(['patch', 'flavor', 'af', '--type=merge', '-p', '{"metadata":{"labels":{"tier":"gold"}}}']);
    await k.k(['get', 'flavors']);
    await k.k(['get', 'flavor', 'af', '-o', 'yaml']);
    await k.k(['delete', 'flavor', 'af']);
    await k.k(['create', '-f', '-'], { input: 'apiVersion: kova.dev/v1alpha1\nkind: Host\nmetadata: {name: h1}\nspec: {}\n' });
    // Writes the admin makes as node agent "ghost": RBAC refuses a flavor, NodeRestriction another host.
    const as = ['--as', 'system:node:ghost', '--as-group', 'system:nodes'];
    const r = await k.kubectl(['create', ...as, '-f', '-'], { input: flavor('ghostly') });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /flavors\.kova\.dev is forbidden: User "system:node:ghost" cannot create resource "flavors" in API group "kova\.dev" at the cluster scope/);
    const h = await k.kubectl(['label', ...as, 'host', 'h1', 'stolen=yes']);
    assert.notEqual(h.code, 0);
    assert.match(h.stderr, /hosts\.kova\.dev "h1" is forbidden: node "ghost" is not allowed to modify host "h1"/);
    // Lines are written a moment after the answer.
    await eventually(async () => (await events()).filter((e) => e.responseStatus.code === 403).length === 2, 10_000, 'the denials in the log');
  });
  after(async () => {
    await k?.stop();
  });

  it('records every write with user, verb, objectRef and code, and no reads', async () => {
    const all = await events();
    const mine = all.filter((e) => e.user.username === 'kova-admin' && !e.impersonatedUser && e.userAgent?.startsWith('kubectl'));
    const summary = mine.map((e) => `${e.verb} ${e.objectRef?.resource}/${e.objectRef?.name ?? ''} ${e.responseStatus.code}`);
    assert.deepEqual(summary, ['create namespaces/audit-a 201', 'create flavors/af 201', 'update flavors/af 200', 'patch flavors/af 200', 'delete flavors/af 200', 'create hosts/h1 201']);
    for (const e of mine) {
      assert.equal(e.kind, 'Event');
      assert.equal(e.apiVersion, 'audit.k8s.io/v1');
      assert.equal(e.level, 'Metadata');
      assert.equal(e.stage, 'ResponseComplete');
      assert.match(e.auditID, /^[0-9a-f-]{36}$/);
      assert.ok(e.user.groups?.includes('system:masters'));
      assert.deepEqual(e.sourceIPs, ['127.0.0.1']);
      assert.match(e.requestReceivedTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
      assert.ok(e.stageTimestamp >= e.requestReceivedTimestamp);
    }
    const flavorRef = mine[1]!.objectRef!;
    assert.deepEqual(flavorRef, { resource: 'flavors', name: 'af', apiGroup: 'kova.dev', apiVersion: 'v1alpha1' });
    assert.match(mine[2]!.requestURI, /^\/apis\/kova\.dev\/v1alpha1\/flavors\/af/);
    assert.ok(!all.some((e) => ['get', 'list', 'watch'].includes(e.verb) && e.responseStatus.code < 400), 'a read was audited');
  });

  it('records denied requests (RBAC, admission) with the impersonator and the impersonated user', async () => {
    const [rbac, admission] = (await events()).filter((e) => e.responseStatus.code === 403);
    for (const denied of [rbac!, admission!]) {
      assert.equal(denied.user.username, 'kova-admin');
      assert.equal(denied.impersonatedUser?.username, 'system:node:ghost');
      assert.ok(denied.impersonatedUser?.groups?.includes('system:nodes'));
    }
    // Refused before its body was read: no name, as in kube-apiserver's log.
    assert.equal(rbac!.verb, 'create');
    assert.deepEqual(rbac!.objectRef, { resource: 'flavors', apiGroup: 'kova.dev', apiVersion: 'v1alpha1' });
    assert.equal(admission!.verb, 'patch');
    assert.deepEqual(admission!.objectRef, { resource: 'hosts', name: 'h1', apiGroup: 'kova.dev', apiVersion: 'v1alpha1' });
  });

  it('filters with kova audit and prints a table', async () => {
    assert.deepEqual((await events(['--verb', 'delete'])).map((e) => e.objectRef?.name), ['af']);
    assert.deepEqual((await events(['--user', 'system:node:ghost'])).map((e) => `${e.verb} ${e.objectRef?.resource}/${e.objectRef?.name ?? ''} ${e.responseStatus.code}`),
      ['create flavors/ 403', 'patch hosts/h1 403']);
    assert.deepEqual((await events(['--user', 'nobody'])), []);
    assert.ok((await events(['--since', '1h'])).length >= 6);
    assert.deepEqual(await events(['--since', '2030-01-01T00:00:00Z']), []);
    const table = await audit(['--user', 'kova-admin', '--verb', 'update']);
    const rows = table.trimEnd().split('\n');
    assert.match(rows[0]!, /^TIME\s+USER\s+VERB\s+RESOURCE\s+OBJECT\s+CODE$/);
    assert.equal(rows.length, 2, table);
    assert.match(rows[1]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+kova-admin\s+update\s+flavors\.kova\.dev\s+af\s+200$/);
    await assert.rejects(audit(['--since', 'yesterday']), /--since must be a duration/);
  });

  it('keeps the log private: directory 700, file 600', async () => {
    assert.equal((await stat(join(k.dataDir, 'audit'))).mode & 0o777, 0o700);
    assert.equal((await stat(join(k.dataDir, 'audit', 'audit.log'))).mode & 0o777, 0o600);
  });
});
