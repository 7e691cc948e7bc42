// A whole cloud on the sim driver, driven only with the real kubectl and the kova CLI:
// `kova up --driver sim` → apply Flavor/Image/Instances → kubectl wait Ready; unschedulable
// messages; no overbooking under concurrent creates; cordon; power verbs and runStrategy;
// delete through the finalizer. A project member (a user from `kova user create`, with their own
// kubeconfig) does what a cloud's user does: instances, power verbs, deletes; the admin does what
// an operator does: the project, flavors, the image imported from a file on the control-plane
// host, and everything about hosts (cordon, allocations).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { writeSimImageFile } from '../node-agent/sim-image.js';
import { createUser, eventually, runKova, startKova } from './harness.js';
import type { Kova, KovaUser } from './harness.js';

const kova = (kubeconfig: string, args: string[]) => runKova([...args, '--kubeconfig', kubeconfig]);

// Sim instances wait for a Ready Image like libvirt ones: a small raw file the image controller imports.
const base = (imagePath: string) => `
apiVersion: kova.dev/v1alpha1
kind: Flavor
metadata: {name: m1.small}
spec: {vcpus: 1, memory: 512Mi, disk: 2Gi}
---
apiVersion: kova.dev/v1alpha1
kind: Flavor
metadata: {name: huge}
spec: {vcpus: 2, memory: 20Gi, disk: 10Gi}
---
apiVersion: kova.dev/v1alpha1
kind: Image
metadata: {name: tiny, namespace: demo}
spec: {source: {file: {path: ${imagePath}}}, format: raw}
`;

const instance = (name: string, flavor = 'm1.small', extra = '') => `
apiVersion: kova.dev/v1alpha1
kind: Instance
metadata: {name: ${name}, namespace: demo}
spec:
  flavor: ${flavor}
  image: tiny
${extra}`;

describe('sim cloud with kubectl', () => {
  let k: Kova;
  /** dana, a member of project demo. */
  let u: KovaUser;
  const jp = async (args: string[], path: string, as: Pick<Kova, 'k'> = u) => (await as.k([...args, '-o', `jsonpath=${path}`])).trim();

  before(async () => {
    // Two API worker processes (not the 2-core default of one): the whole suite then also runs
    // through node:cluster workers, each with its own etcd client and watch hub.
    k = await startKova(['--driver', 'sim', '--sim-hosts', '3', '--api-workers', '2']);
    // Sized beyond a project's default quota (10 instances): the operator opts this one out.
    await k.k(['apply', '-f', '-'], { input: 'apiVersion: v1\nkind: Namespace\nmetadata: {name: demo, annotations: {kova.dev/default-quota: none}}\n' });
    // Admin: flavors are the cloud's catalogue, and the image is imported from a file on the
    // control-plane host (an operator's act, like Glance's file locations).
    await k.k(['apply', '-f', '-'], { input: base((await writeSimImageFile(k.dataDir)).path) });
    u = await createUser(k, 'dana', ['--project', 'demo', '--role', 'member']);
    await eventually(async () => (await jp(['get', 'hosts'], '{.items[*].status.allocatable.memory}', k)).split(' ').filter(Boolean).length === 3, 20_000, 'three hosts with allocatable');
  });
  after(async () => {
    await k?.stop();
  });

  it('applies instances and waits for them to be Ready', async () => {
    await u.k(['apply', '-f', '-'], { input: [1, 2, 3, 4].map((i) => instance(`web-${i}`)).join('\n---\n') });
    await u.k(['wait', '-n', 'demo', '--for=condition=Ready', 'instance', '--all', '--timeout=60s'], { timeoutMs: 70_000 });
    const table = await u.k(['get', 'instances', '-n', 'demo']);
    assert.match(table, /NAME\s+PHASE\s+HOST/);
    for (let i = 1; i <= 4; i++) assert.match(table, new RegExp(`web-${i}\\s+Running\\s+sim-\\d`));
    const hosts = new Set((await jp(['get', 'instances', '-n', 'demo'], '{.items[*].status.hostName}')).split(' '));
    assert.ok(hosts.size >= 2, `spread over hosts: ${[...hosts]}`);
    const describe = await u.k(['describe', 'instance', '-n', 'demo', 'web-1']);
    assert.match(describe, /Scheduled\s+\S+\s+kova-scheduler\s+Successfully assigned demo\/web-1 to sim-\d/);
    assert.match(describe, /Started\s+\S+\s+kova-agent/);
    // Field selectors from the API doc work for these instances.
    const onHost = await u.k(['get', 'instances', '-n', 'demo', '--field-selector', 'status.phase=Running', '-o', 'name']);
    assert.equal(onHost.trim().split('\n').length, 4);
  });

  it('never overbooks under concurrent creates and says why the rest wait', async () => {
    // Each sim host offers 48Gi (32Gi × 1.5): room for two 20Gi instances, six in all.
    const docs = Array.from({ length: 10 }, (_, i) => instance(`big-${i}`, 'huge'));
    await Promise.all(docs.map((d) => u.k(['create', '-f', '-'], { input: d })));
    await eventually(async () => (await jp(['get', 'instances', '-n', 'demo', '-l', '', '--field-selector', 'status.phase=Running'], '{.items[*].metadata.name}')).split(' ').filter((n) => n.startsWith('big-')).length === 6, 30_000, 'six big instances running');
    await new Promise((r) => setTimeout(r, 1000));
    const items = JSON.parse(await u.k(['get', 'instances', '-n', 'demo', '-o', 'json'])).items as Array<Record<string, any>>; // eslint-disable-line @typescript-eslint/no-explicit-any
    const big = items.filter((i) => i.metadata.name.startsWith('big-'));
    const perHost = new Map<string, number>();
    for (const i of big) if (i.status?.hostName) perHost.set(i.status.hostName, (perHost.get(i.status.hostName) ?? 0) + 1);
    assert.equal([...perHost.values()].reduce((a, b) => a + b, 0), 6);
    for (const [h, n] of perHost) assert.ok(n <= 2, `${h} holds ${n} big instances`);
    const pending = big.filter((i) => !i.status?.hostName);
    assert.equal(pending.length, 4);
    for (const p of pending) {
      assert.equal(p.status.phase, 'Pending');
      const c = p.status.conditions.find((x: { type: string }) => x.type === 'Scheduled');
      assert.equal(c.status, 'False');
      assert.equal(c.reason, 'Unschedulable');
      assert.equal(c.message, '0/3 hosts available: 3 insufficient memory');
    }
    // Allocations on the hosts match what is bound to them (hosts are the operator's: admin).
    const hosts = JSON.parse(await k.k(['get', 'hosts', '-o', 'json'])).items as Array<Record<string, any>>; // eslint-disable-line @typescript-eslint/no-explicit-any
    for (const h of hosts) {
      const bound = items.filter((i) => i.status?.hostName === h.metadata.name).length;
      assert.equal((h.status.allocations ?? []).length, bound, `allocations on ${h.metadata.name}`);
    }
    // Freeing room schedules a waiting instance (retried when hosts change).
    await u.k(['delete', 'instance', '-n', 'demo', big.find((i) => i.status?.hostName)!.metadata.name]);
    await eventually(async () => (await jp(['get', 'instances', '-n', 'demo'], '{.items[*].status.phase}')).split(' ').filter((p) => p === 'Pending').length === 3, 30_000, 'one waiting instance placed');
    await u.k(['delete', 'instance', '-n', 'demo', ...big.map((i) => i.metadata.name), '--ignore-not-found', '--wait=true'], { timeoutMs: 60_000 });
  });

  it('respects cordon (spec.unschedulable)', async () => {
    // Cordoning is the operator's (admin); the member's instances land where it allows.
    const refused = await u.kubectl(['patch', 'host', 'sim-0', '--type=merge', '-p', '{"spec":{"unschedulable":true}}']);
    assert.match(refused.stderr, /hosts.kova.dev "sim-0" is forbidden: User "dana" cannot (get|patch) resource "hosts"/);
    for (const h of ['sim-0', 'sim-1']) await k.k(['patch', 'host', h, '--type=merge', '-p', '{"spec":{"unschedulable":true}}']);
    await u.k(['apply', '-f', '-'], { input: [1, 2, 3].map((i) => instance(`cordon-${i}`)).join('\n---\n') });
    await u.k(['wait', '-n', 'demo', '--for=condition=Ready', 'instance', 'cordon-1', 'cordon-2', 'cordon-3', '--timeout=60s'], { timeoutMs: 70_000 });
    assert.deepEqual([...new Set((await jp(['get', 'instances', '-n', 'demo', 'cordon-1', 'cordon-2', 'cordon-3'], '{.items[*].status.hostName}')).split(' '))], ['sim-2']);
    await k.k(['patch', 'host', 'sim-2', '--type=merge', '-p', '{"spec":{"unschedulable":true}}']);
    await u.k(['apply', '-f', '-'], { input: instance('cordon-4') });
    await eventually(async () => (await jp(['get', 'instance', '-n', 'demo', 'cordon-4'], '{.status.conditions[?(@.type=="Scheduled")].message}')) === '0/3 hosts available: 3 unschedulable', 20_000, 'unschedulable message');
    await k.k(['patch', 'host', 'sim-0', '--type=merge', '-p', '{"spec":{"unschedulable":false}}']);
    await u.k(['wait', '-n', 'demo', '--for=condition=Ready', 'instance', 'cordon-4', '--timeout=30s'], { timeoutMs: 40_000 });
    assert.equal(await jp(['get', 'instance', '-n', 'demo', 'cordon-4'], '{.status.hostName}'), 'sim-0');
    for (const h of ['sim-1', 'sim-2']) await k.k(['patch', 'host', h, '--type=merge', '-p', '{"spec":{"unschedulable":false}}']);
  });

  it('runs the power verbs and runStrategy transitions', async () => {
    await u.k(['apply', '-f', '-'], { input: instance('pw') });
    await u.k(['wait', '-n', 'demo', '--for=condition=Ready', 'instance/pw', '--timeout=30s'], { timeoutMs: 40_000 });
    const phase = () => jp(['get', 'instance', '-n', 'demo', 'pw'], '{.status.phase}');
    const power = () => jp(['get', 'instance', '-n', 'demo', 'pw'], '{.status.powerState}');

    assert.match(await kova(u.kubeconfig, ['stop', 'pw', '-n', 'demo']), /Always → Halted/);
    await u.k(['wait', '-n', 'demo', '--for=jsonpath={.status.phase}=Stopped', 'instance/pw', '--timeout=30s'], { timeoutMs: 40_000 });
    assert.equal(await jp(['get', 'instance', '-n', 'demo', 'pw'], '{.status.conditions[?(@.type=="Ready")].status}'), 'False');

    await kova(u.kubeconfig, ['start', 'pw', '-n', 'demo']);
    await u.k(['wait', '-n', 'demo', '--for=condition=Ready', 'instance/pw', '--timeout=30s'], { timeoutMs: 40_000 });
    const started = await jp(['get', 'instance', '-n', 'demo', 'pw'], '{.status.startedAt}');

    await kova(u.kubeconfig, ['restart', 'pw', '-n', 'demo']);
    const stamp = await jp(['get', 'instance', '-n', 'demo', 'pw'], '{.metadata.annotations.kova\\.dev/restartedAt}');
    await eventually(async () => (await jp(['get', 'instance', '-n', 'demo', 'pw'], '{.status.observedRestartedAt}')) === stamp, 20_000, 'restart acknowledged');
    assert.equal(await phase(), 'Running');
    assert.ok(started.length > 0);

    await kova(u.kubeconfig, ['pause', 'pw', '-n', 'demo']);
    await eventually(async () => (await power()) === 'Paused', 20_000, 'paused');
    await kova(u.kubeconfig, ['unpause', 'pw', '-n', 'demo']);
    await eventually(async () => (await power()) === 'Running', 20_000, 'unpaused');

    // Manual: started once, then power follows the kova.dev/power annotation.
    await u.k(['patch', 'instance', '-n', 'demo', 'pw', '--type=merge', '-p', '{"spec":{"runStrategy":"Manual"}}']);
    assert.match(await kova(u.kubeconfig, ['stop', 'pw', '-n', 'demo']), /power Off requested/);
    await eventually(async () => (await phase()) === 'Stopped', 20_000, 'manual stop');
    await kova(u.kubeconfig, ['start', 'pw', '-n', 'demo']);
    await eventually(async () => (await phase()) === 'Running', 20_000, 'manual start');

    // Halted via kubectl directly.
    await u.k(['patch', 'instance', '-n', 'demo', 'pw', '--type=merge', '-p', '{"spec":{"runStrategy":"Halted"}}']);
    await eventually(async () => (await phase()) === 'Stopped', 20_000, 'halted');
  });

  it('deletes through the finalizer and releases the host allocation', async () => {
    await u.k(['apply', '-f', '-'], { input: instance('gone') });
    await u.k(['wait', '-n', 'demo', '--for=condition=Ready', 'instance/gone', '--timeout=30s'], { timeoutMs: 40_000 });
    const host = await jp(['get', 'instance', '-n', 'demo', 'gone'], '{.status.hostName}');
    const uid = await jp(['get', 'instance', '-n', 'demo', 'gone'], '{.metadata.uid}');
    assert.equal(await jp(['get', 'instance', '-n', 'demo', 'gone'], '{.metadata.finalizers[0]}'), 'kova.dev/instance-protection');
    await u.k(['delete', 'instance', '-n', 'demo', 'gone', '--timeout=30s'], { timeoutMs: 40_000 });
    const r = await u.kubectl(['get', 'instance', '-n', 'demo', 'gone']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /NotFound|not found/);
    await eventually(async () => !(await jp(['get', 'host', host], '{.status.allocations[*].uid}', k)).includes(uid), 20_000, 'allocation released');
  });
});
