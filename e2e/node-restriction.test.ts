// Least-privilege components and NodeRestriction, end to end: `kova up --driver sim` gives the
// controllers and each sim agent a client certificate of its own (DATA_DIR/kubeconfigs), the
// cloud works with them, and the real kubectl with agent sim-0's kubeconfig (user
// system:node:sim-0, group system:nodes) can write sim-0's Host, Lease and the status of an
// instance bound to sim-0, but not sim-1's, through a real API server on a real etcd.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { writeSimImageFile } from '../node-agent/sim-image.js';
import { KUBECTL, eventually, runKova, startKova } from './harness.js';
import type { Kova, KubectlResult } from './harness.js';

const setup = (imagePath: string) => `
apiVersion: kova.dev/v1alpha1
kind: Flavor
metadata: {name: m1.small}
spec: {vcpus: 1, memory: 512Mi, disk: 2Gi}
---
apiVersion: kova.dev/v1alpha1
kind: Image
metadata: {name: tiny, namespace: demo}
spec: {source: {file: {path: ${imagePath}}}, format: raw}
---
apiVersion: kova.dev/v1alpha1
kind: Instance
metadata: {name: on-0, namespace: demo}
spec: {flavor: m1.small, image: tiny, hostName: sim-0}
---
apiVersion: kova.dev/v1alpha1
kind: Instance
metadata: {name: on-1, namespace: demo}
spec: {flavor: m1.small, image: tiny, hostName: sim-1}
`;

describe('component identities and NodeRestriction', () => {
  let k: Kova;
  let node0: string;
  /** kubectl as agent sim-0. */
  const asNode = (args: string[]): Promise<KubectlResult> =>
    new Promise((resolve) => {
      execFile(KUBECTL, ['--kubeconfig', node0, '--cache-dir', join(k.dataDir, 'kubectl-cache-node'), ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) });
      });
    });
  const denied = async (args: string[], message: RegExp) => {
    const r = await asNode(args);
    assert.notEqual(r.code, 0, `kubectl ${args.join(' ')} was allowed:\n${r.stdout}`);
    assert.match(r.stderr, /Forbidden|forbidden/);
    assert.match(r.stderr, message);
  };
  const allowed = async (args: string[]) => {
    const r = await asNode(args);
    assert.equal(r.code, 0, `kubectl ${args.join(' ')} failed:\n${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    k = await startKova(['--driver', 'sim', '--sim-hosts', '2', '--api-workers', '2']);
    node0 = join(k.dataDir, 'kubeconfigs', 'node-sim-0.kubeconfig');
    await k.k(['create', 'namespace', 'demo']);
    await k.k(['apply', '-f', '-'], { input: setup((await writeSimImageFile(k.dataDir)).path) });
  });
  after(async () => {
    await k?.stop();
  });

  it('runs the cloud with the components\' own identities (mode 600 kubeconfigs)', async () => {
    const dir = join(k.dataDir, 'kubeconfigs');
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    for (const f of ['controller-manager.kubeconfig', 'node-sim-0.kubeconfig', 'node-sim-1.kubeconfig']) {
      assert.equal((await stat(join(dir, f))).mode & 0o777, 0o600, f);
    }
    // Scheduled by the controllers, run by the agents: both acting as themselves.
    await k.k(['wait', '-n', 'demo', '--for=condition=Ready', 'instance', '--all', '--timeout=60s'], { timeoutMs: 70_000 });
    assert.equal((await k.k(['get', 'instance', '-n', 'demo', 'on-1', '-o', 'jsonpath={.status.hostName}'])).trim(), 'sim-1');
    const who = JSON.parse(await allowed(['auth', 'whoami', '-o', 'json'])) as { status: { userInfo: { username: string; groups: string[] } } };
    assert.equal(who.status.userInfo.username, 'system:node:sim-0');
    assert.ok(who.status.userInfo.groups.includes('system:nodes'));
    const users = await eventually(async () => {
      const lines = (await runKova(['audit', '--data-dir', k.dataDir, '-o', 'json'])).trim().split('\n').map((l) => JSON.parse(l) as { user: { username: string }; verb: string; objectRef?: { resource?: string; name?: string; subresource?: string } });
      const by = (u: string, pred: (e: (typeof lines)[number]) => boolean) => lines.some((e) => e.user.username === u && pred(e));
      const ok = by('system:kova:controller-manager', (e) => e.objectRef?.subresource === 'binding')
        && by('system:node:sim-0', (e) => e.objectRef?.resource === 'leases' && e.objectRef.name === 'sim-0')
        && by('system:node:sim-1', (e) => e.objectRef?.resource === 'instances' && e.objectRef.name === 'on-1' && e.objectRef.subresource === 'status');
      return ok && lines;
    }, 20_000, 'component writes in the audit log');
    // No component wrote as the admin.
    assert.ok(!users.some((e) => e.user.username === 'kova-admin' && e.objectRef?.resource === 'leases'), 'a lease written as kova-admin');
  });

  it('lets agent sim-0 write its own Host, Lease and bound instance\'s status', async () => {
    await allowed(['label', 'host', 'sim-0', 'e2e=own', '--overwrite']);
    await allowed(['patch', 'lease', '-n', 'kova-system', 'sim-0', '--type=merge', '-p', '{"spec":{"holderIdentity":"sim-0"}}']);
    await allowed(['patch', 'instance', '-n', 'demo', 'on-0', '--subresource=status', '--type=merge', '-p', '{"status":{"restartCount":0}}']);
  });

  it('refuses agent sim-0 writes to host sim-1, its Lease and its instances', async () => {
    await denied(['label', 'host', 'sim-1', 'e2e=stolen'], /hosts\.kova\.dev "sim-1" is forbidden: node "sim-0" is not allowed to modify host "sim-1"/);
    await denied(['patch', 'host', 'sim-1', '--subresource=status', '--type=merge', '-p', '{"status":{"conditions":[]}}'], /node "sim-0" is not allowed to modify host "sim-1"/);
    await denied(['patch', 'lease', '-n', 'kova-system', 'sim-1', '--type=merge', '-p', '{"spec":{"holderIdentity":"sim-0"}}'],
      /leases\.coordination\.k8s\.io "sim-1" is forbidden: node "sim-0" is not allowed to modify lease "kova-system\/sim-1"/);
    await denied(['patch', 'instance', '-n', 'demo', 'on-1', '--subresource=status', '--type=merge', '-p', '{"status":{"phase":"Failed"}}'],
      /instances\.kova\.dev "on-1" is forbidden: node "sim-0" can only modify instances bound to it .*instance "demo\/on-1" is bound to "sim-1"/);
    await denied(['delete', 'instance', '-n', 'demo', 'on-0', '--wait=false'], /forbidden/);
    // Nothing of it happened.
    assert.equal((await k.k(['get', 'host', 'sim-1', '-o', 'jsonpath={.metadata.labels.e2e}'])).trim(), '');
    assert.equal((await k.k(['get', 'lease', '-n', 'kova-system', 'sim-1', '-o', 'jsonpath={.spec.holderIdentity}'])).trim(), 'sim-1');
    assert.equal((await k.k(['get', 'instance', '-n', 'demo', 'on-1', '-o', 'jsonpath={.status.phase}'])).trim(), 'Running');
    // The refusals are in the audit log, as sim-0's, with their 403.
    const out = await eventually(async () => {
      const o = await runKova(['audit', '--data-dir', k.dataDir, '--user', 'system:node:sim-0', '-o', 'json']);
      return o.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { responseStatus: { code: number }; objectRef?: { name?: string } })
        .filter((e) => e.responseStatus.code === 403).length >= 5 && o;
    }, 10_000, 'the denials in the audit log');
    assert.match(out, /"name":"on-1"/);
  });
});
