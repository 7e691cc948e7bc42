// Failure handling across real processes: two `kova controllers` with leader election (the
// standby takes over when the leader is killed), and a `kova agent` killed with SIGKILL (its
// Host goes not-Ready, its instances unreachable; fencing the host evacuates them and lets
// stuck deletions finish).
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { writeSimImageFile } from '../node-agent/sim-image.js';
import { eventually, spawnKova, startKova } from './harness.js';
import type { Kova } from './harness.js';

const instance = (name: string) => `
apiVersion: kova.dev/v1alpha1
kind: Instance
metadata: {name: ${name}, namespace: ha}
spec:
  flavor: m1.small
  image: tiny
`;

describe('failover', () => {
  let k: Kova;
  const procs: ChildProcess[] = [];
  const jp = async (args: string[], path: string) => (await k.k([...args, '-o', `jsonpath=${path}`])).trim();
  const holder = () => jp(['get', 'lease', '-n', 'kova-system', 'kova-controllers'], '{.spec.holderIdentity}');

  before(async () => {
    k = await startKova(['--driver', 'sim', '--sim-hosts', '1', '--no-controllers']);
    await k.k(['create', 'namespace', 'ha']);
    // Sim instances wait for a Ready Image like libvirt ones: a small raw file to import.
    const image = await writeSimImageFile(k.dataDir);
    await k.k(['apply', '-f', '-'], {
      input: `
apiVersion: kova.dev/v1alpha1
kind: Flavor
metadata: {name: m1.small}
spec: {vcpus: 1, memory: 512Mi, disk: 2Gi}
---
apiVersion: kova.dev/v1alpha1
kind: Image
metadata: {name: tiny, namespace: ha}
spec: {source: {file: {path: ${image.path}}}, format: raw}
`,
    });
  });
  after(async () => {
    for (const p of procs) p.kill('SIGKILL');
    await k?.stop();
  });

  it('a standby controller process takes over when the leader is killed', async () => {
    const c1 = spawnKova(['controllers', '--kubeconfig', k.kubeconfig, '--id', 'ctl-1', '--data-dir', k.dataDir]);
    const c2 = spawnKova(['controllers', '--kubeconfig', k.kubeconfig, '--id', 'ctl-2', '--data-dir', k.dataDir]);
    procs.push(c1.proc, c2.proc);
    const first = await eventually(async () => {
      const h = await holder().catch(() => '');
      return h === 'ctl-1' || h === 'ctl-2' ? h : undefined;
    }, 30_000, 'a leader');
    await k.k(['apply', '-f', '-'], { input: instance('before') });
    await k.k(['wait', '-n', 'ha', '--for=condition=Ready', 'instance/before', '--timeout=30s'], { timeoutMs: 40_000 });
    assert.match((first === 'ctl-1' ? c1 : c2).output(), /leading: controllers running/);
    assert.doesNotMatch((first === 'ctl-1' ? c2 : c1).output(), /leading: controllers running/, 'only one leads');

    const t0 = Date.now();
    (first === 'ctl-1' ? c1 : c2).proc.kill('SIGKILL');
    await k.k(['apply', '-f', '-'], { input: instance('after') });
    await k.k(['wait', '-n', 'ha', '--for=condition=Ready', 'instance/after', '--timeout=40s'], { timeoutMs: 50_000 });
    const took = Date.now() - t0;
    assert.equal(await holder(), first === 'ctl-1' ? 'ctl-2' : 'ctl-1');
    assert.ok(took < 30_000, `takeover and scheduling took ${took} ms`);
    const transitions = Number(await jp(['get', 'lease', '-n', 'kova-system', 'kova-controllers'], '{.spec.leaseTransitions}'));
    assert.ok(transitions >= 1);
  });

  it('a killed agent makes its host not Ready; fencing evacuates its instances', async () => {
    // Only the separate agent's host can take new instances.
    await k.k(['patch', 'host', 'sim-0', '--type=merge', '-p', '{"spec":{"unschedulable":true}}']);
    const agent = spawnKova(['agent', '--host', 'edge-1', '--driver', 'sim', '--lease-duration', '3', '--kubeconfig', k.kubeconfig]);
    procs.push(agent.proc);
    await eventually(async () => (await jp(['get', 'host', 'edge-1'], '{.status.conditions[?(@.type=="Ready")].status}').catch(() => '')) === 'True', 30_000, 'edge-1 ready');
    // evac has a NIC: its Port (address) must survive the evacuation unchanged.
    const network = 'apiVersion: kova.dev/v1alpha1\nkind: Network\nmetadata: {name: net, namespace: ha}\nspec: {type: vxlan, cidr: 10.88.0.0/24}\n';
    await k.k(['apply', '-f', '-'], { input: network + '---' + instance('evac') + '  networks: [{network: net}]\n---\n' + instance('doomed') });
    await k.k(['wait', '-n', 'ha', '--for=condition=Ready', 'instance/evac', 'instance/doomed', '--timeout=30s'], { timeoutMs: 40_000 });
    assert.equal(await jp(['get', 'instance', '-n', 'ha', 'evac'], '{.status.hostName}'), 'edge-1');
    const portBefore = await eventually(async () => {
      const ip = await jp(['get', 'port', '-n', 'ha', 'evac-0'], '{.status.ip} {.status.mac} {.metadata.uid}').catch(() => '');
      return /^10\.88\.0\.\d+ \S+ \S+$/.test(ip) && ip;
    }, 20_000, 'port of evac allocated');

    agent.proc.kill('SIGKILL');
    await eventually(async () => (await jp(['get', 'host', 'edge-1'], '{.status.conditions[?(@.type=="Ready")].status}')) !== 'True', 30_000, 'edge-1 not ready');
    await eventually(async () => (await jp(['get', 'instance', '-n', 'ha', 'evac'], '{.status.conditions[?(@.type=="HostReachable")].status}')) === 'False', 20_000, 'HostReachable=False');

    // A deletion on a dead host waits (the domain may still exist) …
    await k.k(['delete', 'instance', '-n', 'ha', 'doomed', '--wait=false']);
    await new Promise((r) => setTimeout(r, 2000));
    assert.ok((await jp(['get', 'instance', '-n', 'ha', 'doomed'], '{.metadata.deletionTimestamp}')).length > 0, 'still terminating');

    // … until an operator fences the host; then instances move and deletions complete.
    await k.k(['patch', 'host', 'sim-0', '--type=merge', '-p', '{"spec":{"unschedulable":false}}']);
    await k.k(['patch', 'host', 'edge-1', '--type=merge', '-p', '{"spec":{"fenced":true}}']);
    await k.k(['wait', '-n', 'ha', '--for=delete', 'instance/doomed', '--timeout=30s'], { timeoutMs: 40_000 });
    await eventually(async () => (await jp(['get', 'instance', '-n', 'ha', 'evac'], '{.status.hostName}')) === 'sim-0', 30_000, 'evacuated to sim-0');
    await k.k(['wait', '-n', 'ha', '--for=condition=Ready', 'instance/evac', '--timeout=30s'], { timeoutMs: 40_000 });
    assert.equal(await jp(['get', 'port', '-n', 'ha', 'evac-0'], '{.status.ip} {.status.mac} {.metadata.uid}'), portBefore, 'same Port, address and MAC after the reschedule');
    await eventually(async () => (await jp(['get', 'port', '-n', 'ha', 'evac-0'], '{.status.hostName}')) === 'sim-0', 20_000, 'port follows the instance');
    const events = await k.k(['get', 'events', '-n', 'ha', '--field-selector', 'involvedObject.name=evac']);
    assert.match(events, /Evacuated/);
  });
});
