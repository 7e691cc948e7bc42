// The Migration API as users, the cloud admin and a node meet it (#17), with the real kubectl on
// `kova up` (RBAC, admission and NodeRestriction wired as in production; no controllers or
// agents, so nothing but the test writes a Migration's status):
// - project roles (reader, member, manager) list and watch Migrations and get a 403 creating or
//   deleting one; the cloud admin may;
// - the admin's create is checked (an instance on no host, the current host as target, an
//   in-flight migration of the instance): kubectl prints the 422 naming the field;
// - a node (impersonated: system:node:sim-0 in system:nodes) writes the status of a migration
//   from it but may not retarget it, nor create, delete or edit a Migration;
// - `kubectl wait mig/X --for=condition=Succeeded` returns once the condition is set.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createUser, runKova, startKova } from './harness.js';
import type { Kova, KovaUser } from './harness.js';

const NS = 'mig-e2e';
const AS_NODE = ['--as', 'system:node:sim-0', '--as-group', 'system:nodes', '--as-group', 'system:authenticated'];

const migration = (name: string, instance: string, targetHost?: string) => `
apiVersion: kova.dev/v1alpha1
kind: Migration
metadata: {name: ${name}, namespace: ${NS}}
spec: {instance: ${instance}${targetHost ? `, targetHost: ${targetHost}` : ''}}
`;

describe('the Migration API through kubectl (kova up, RBAC, admission, NodeRestriction)', () => {
  let k: Kova;
  const users: KovaUser[] = [];
  /** kubectl as the admin that must fail: what it printed on stderr. */
  const fails = async (args: string[], input?: string, who: Pick<Kova, 'kubectl'> = k): Promise<string> => {
    const r = await who.kubectl(args, { input });
    assert.notEqual(r.code, 0, `kubectl ${args.join(' ')} succeeded:\n${r.stdout}`);
    return r.stderr.trim();
  };
  const status = (name: string, patch: Record<string, unknown>, extra: string[] = []) =>
    k.kubectl(['patch', 'mig', name, '-n', NS, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: patch }), ...extra]);

  before(async () => {
    k = await startKova(['--driver', 'sim', '--no-seed', '--no-controllers', '--no-agents']);
    await k.k(['create', 'namespace', NS]);
    await k.k(['apply', '-f', '-'], { input: `
apiVersion: kova.dev/v1alpha1
kind: Host
metadata: {name: sim-0}
spec: {}
---
apiVersion: kova.dev/v1alpha1
kind: Host
metadata: {name: sim-1}
spec: {}
---
apiVersion: kova.dev/v1alpha1
kind: Instance
metadata: {name: web, namespace: ${NS}}
spec: {flavor: m1.tiny, image: tiny}
` });
    for (const [name, role] of [['rita', 'reader'], ['mona', 'member'], ['pat', 'manager']]) users.push(await createUser(k, name!, ['--project', NS, '--role', role!]));
  });

  after(async () => {
    await k?.stop();
  });

  it('project roles read Migrations; creating and deleting them is the cloud admin\'s', async () => {
    for (const u of users) {
      assert.equal((await u.kubectl(['get', 'mig', '-n', NS])).code, 0, u.name);
      assert.equal(await fails(['create', '-f', '-'], migration('m0', 'web'), u),
        `Error from server (Forbidden): error when creating "STDIN": migrations.kova.dev is forbidden: User "${u.name}" cannot create resource "migrations" in API group "kova.dev" in the namespace "${NS}"`);
    }
  });

  it('the admin\'s create is checked: a 422 naming the field', async () => {
    assert.equal(await fails(['create', '-f', '-'], migration('m1', 'web')),
      'The Migration "m1" is invalid: spec.instance: Invalid value: "web": instance "web" is not running on any host yet');
    assert.equal(await fails(['create', '-f', '-'], migration('m1', 'db')), 'The Migration "m1" is invalid: spec.instance: Not found: "db"');
    await k.k(['patch', 'vm', 'web', '-n', NS, '--subresource=status', '--type=merge', '-p', '{"status":{"hostName":"sim-0"}}']);
    assert.equal(await fails(['create', '-f', '-'], migration('m1', 'web', 'sim-0')),
      'The Migration "m1" is invalid: spec.targetHost: Invalid value: "sim-0": instance "web" already runs on host "sim-0"');
    const name = (await runKova(['migrate', 'web', '-n', NS, '--to', 'sim-1', '--kubeconfig', k.kubeconfig])).trim();
    assert.match(name, /^web-[a-z0-9]{5}$/);
    assert.equal(await fails(['create', '-f', '-'], migration('m1', 'web')),
      `The Migration "m1" is invalid: spec.instance: Forbidden: in-flight migration detected: Migration "${name}" of instance "web" is in phase Pending; wait for it to end, or delete it to abort it`);
    assert.equal(await fails(['patch', 'mig', name, '-n', NS, '--type=merge', '-p', '{"spec":{"targetHost":"sim-0"}}']),
      `The Migration "${name}" is invalid: spec: Forbidden: a Migration's spec cannot change after it is created: delete it (which aborts it while it runs) and create another`);
    // Every project role sees it (short name, printer columns); none may abort it.
    for (const u of users) {
      const table = await u.k(['get', 'mig', '-n', NS]);
      assert.match(table.split('\n')[0]!, /^NAME\s+INSTANCE\s+PHASE\s+SOURCE\s+TARGET\s+PROGRESS\s+AGE$/);
      assert.match(table, new RegExp(`^${name}\\s+web\\s`, 'm'));
      assert.equal(await fails(['delete', 'mig', name, '-n', NS], undefined, u),
        `Error from server (Forbidden): migrations.kova.dev "${name}" is forbidden: User "${u.name}" cannot delete resource "migrations" in API group "kova.dev" in the namespace "${NS}"`);
    }
  });

  it('a node writes the status of a migration from it, never what the controller decided; kubectl wait sees Succeeded', async () => {
    const name = (await k.k(['get', 'mig', '-n', NS, '-o', 'jsonpath={.items[0].metadata.name}'])).trim();
    // Not its migration yet: no hosts chosen.
    assert.match(await fails([...AS_NODE, 'patch', 'mig', name, '-n', NS, '--subresource=status', '--type=merge', '-p', '{"status":{"progress":1}}']),
      new RegExp(`migrations.kova.dev "${name}" is forbidden: node "sim-0" can only modify migrations from or to it .*; migration "${NS}/${name}" has no hosts yet`));
    const uid = (await k.k(['get', 'vm', 'web', '-n', NS, '-o', 'jsonpath={.metadata.uid}'])).trim();
    const decided = await status(name, { phase: 'Running', instanceUID: uid, sourceHost: 'sim-0', targetHost: 'sim-1', mode: 'Live', storage: 'Shared' });
    assert.equal(decided.code, 0, decided.stderr);
    const wait = k.spawnKubectl(['wait', `mig/${name}`, '-n', NS, '--for=condition=Succeeded', '--timeout=60s']);
    try {
      const progress = await status(name, { progress: 50, dataProcessedBytes: 1048576 }, AS_NODE);
      assert.equal(progress.code, 0, progress.stderr);
      assert.match(await fails([...AS_NODE, 'patch', 'mig', name, '-n', NS, '--subresource=status', '--type=merge', '-p', '{"status":{"targetHost":"sim-0"}}']),
        new RegExp(`node "sim-0" may not change status.targetHost of migration "${NS}/${name}"`));
      // RBAC already refuses what no node may do (NodeRestriction would too).
      assert.equal(await fails([...AS_NODE, 'delete', 'mig', name, '-n', NS]),
        `Error from server (Forbidden): migrations.kova.dev "${name}" is forbidden: User "system:node:sim-0" cannot delete resource "migrations" in API group "kova.dev" in the namespace "${NS}"`);
      assert.match(await fails([...AS_NODE, 'create', '-f', '-'], migration('m2', 'web')), /User "system:node:sim-0" cannot create resource "migrations"/);
      assert.match(await fails([...AS_NODE, 'patch', 'mig', name, '-n', NS, '--type=merge', '-p', '{"metadata":{"labels":{"x":"y"}}}']), /User "system:node:sim-0" cannot patch resource "migrations"/);
      const done = await status(name, {
        phase: 'Succeeded', progress: 100, conditions: [{ type: 'Succeeded', status: 'True', reason: 'Migrated', message: 'runs on sim-1', lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') }],
      }, AS_NODE);
      assert.equal(done.code, 0, done.stderr);
      const code = await new Promise<number | null>((resolve) => (wait.proc.exitCode !== null ? resolve(wait.proc.exitCode) : wait.proc.once('exit', resolve)));
      assert.equal(code, 0, wait.output());
      assert.equal(wait.output().trim(), `migration.kova.dev/${name} condition met`);
    } finally {
      await wait.stop();
    }
    // The admin deletes the finished record.
    await k.k(['delete', 'mig', name, '-n', NS]);
  });
});
