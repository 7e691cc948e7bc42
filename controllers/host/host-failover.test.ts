// Host failure end to end, against a real `kova up`: the scheduler, the host and instance
// controllers and two node agents with sim drivers run in this process. An agent dies; its host
// goes Ready=Unknown and its instances HostReachable=False; the operator fences it; the running
// instance is evacuated, placed on the other host and started there, and the deletion that was
// stuck on the dead host completes.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { eventually, startKova } from '../../e2e/harness.js';
import type { Kova } from '../../e2e/harness.js';
import { NodeAgent } from '../../node-agent/agent.js';
import { SimDriver } from '../../node-agent/sim-driver.js';
import { createReadySimImage } from '../../node-agent/sim-image.js';
import { startScheduler } from '../scheduler/scheduler.js';
import { HOSTS, INSTANCES, KovaClient } from '../../client/client.js';
import { startInstanceController } from '../instance/instance-controller.js';
import type { Condition } from '../../api/conditions.js';
import { findCondition } from '../../api/conditions.js';
import { startHostController } from './host-controller.js';
import type { Host as HostObject, Instance as InstanceObject } from '../../api/kinds/index.js';

const NS = 'failover';
let kova: Kova;
let client: KovaClient;
const stopAll = new AbortController();
const stopA = new AbortController();
const agents: NodeAgent[] = [];

function startAgent(host: string, signal: AbortSignal): Promise<void> {
  const agent = new NodeAgent({
    client, hostName: host, driver: new SimDriver({ spawnMs: 20, stopMs: 10 }),
    heartbeatS: 1, leaseDurationS: 2, retryBaseMs: 200, stopTimeoutMs: 1000, log: () => undefined,
  });
  agents.push(agent);
  return agent.start(signal);
}

before(async () => {
  kova = await startKova(['--no-controllers', '--no-agents']);
  client = KovaClient.fromFile(kova.kubeconfig, { fieldManager: 'failover-test' });
  const log = () => undefined;
  await kova.k(['create', 'namespace', NS]);
  await kova.k(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: { name: 'fo.small' }, spec: { vcpus: 1, memory: '512Mi', disk: '2Gi' } }) });
  // Sim instances wait for a Ready Image like libvirt ones.
  await createReadySimImage(client, NS, 'tiny', kova.dataDir);
  await startScheduler({ client, signal: stopAll.signal, log });
  await startHostController({ client, signal: stopAll.signal, graceMs: 5_000, log });
  await startInstanceController({ client, signal: stopAll.signal, log });
  await startAgent('fo-a', stopA.signal);
});

after(async () => {
  stopA.abort();
  stopAll.abort();
  await Promise.all(agents.map((a) => a.done()));
  client?.close();
  await kova?.stop();
});

const inst = (name: string) => client.get<InstanceObject>(INSTANCES, NS, name);
const host = async (name: string) => (await client.get<HostObject>(HOSTS, undefined, name))!;
const cond = (o: { status?: { conditions?: Condition[] } } | undefined, type: string) => findCondition(o?.status?.conditions, type);
const vm = (name: string) => JSON.stringify({ apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', metadata: { name, namespace: NS }, spec: { flavor: 'fo.small', image: 'tiny' } });

test('a dead, fenced host is evacuated and its instances run elsewhere', async () => {
  await kova.k(['apply', '-f', '-'], { input: vm('web') });
  await kova.k(['apply', '-f', '-'], { input: vm('doomed') });
  for (const n of ['web', 'doomed']) {
    await eventually(async () => {
      const i = await inst(n);
      return i?.status?.hostName === 'fo-a' && i.status.phase === 'Running';
    }, 15_000, `${n} running on fo-a`);
  }
  await startAgent('fo-b', stopAll.signal);

  // fo-a's agent dies: no more heartbeats.
  const diedAt = Date.now();
  stopA.abort();
  await kova.k(['wait', 'host/fo-a', '--for=condition=Ready=Unknown', '--timeout=15s']);
  const notReadyMs = Date.now() - diedAt;
  await kova.k(['wait', 'vm/web', '-n', NS, '--for=condition=HostReachable=False', '--timeout=10s']);
  assert.equal(cond(await host('fo-b'), 'Ready')?.status, 'True', 'the live host stays Ready');

  // Deleting an instance of the dead host waits: nobody can say its domain is gone.
  await kova.k(['delete', 'vm', 'doomed', '-n', NS, '--wait=false']);
  await new Promise((r) => setTimeout(r, 500));
  assert.ok((await inst('doomed'))?.metadata.deletionTimestamp);

  const fencedAt = Date.now();
  await kova.k(['patch', 'host', 'fo-a', '--type=merge', '-p', '{"spec":{"fenced":true}}']);
  const moved = await eventually(async () => {
    const i = await inst('web');
    return i?.status?.hostName === 'fo-b' && i.status.phase === 'Running' ? i : undefined;
  }, 15_000, 'web running on fo-b');
  const failoverMs = Date.now() - fencedAt;
  assert.equal(cond(moved, 'Scheduled')?.status, 'True');
  await eventually(async () => !(await inst('doomed')), 10_000, 'doomed deleted');
  const a = await eventually(async () => {
    const h = await host('fo-a');
    return h.status?.allocations?.length === 0 ? h : undefined;
  }, 10_000, 'fo-a allocations released');
  assert.deepEqual(a.status?.allocated, { vcpus: 0, memory: '0', disk: '0' });
  assert.deepEqual((await host('fo-b')).status?.allocations?.map((x) => x.instance), [`${NS}/web`]);

  // The agent comes back: its next heartbeat makes the host Ready again; web stays where it is.
  await startAgent('fo-a', stopAll.signal);
  await kova.k(['wait', 'host/fo-a', '--for=condition=Ready=True', '--timeout=10s']);
  assert.equal((await inst('web'))?.status?.hostName, 'fo-b');
  console.log(`agent death → Ready=Unknown: ${notReadyMs} ms (lease 2 s); fence → running on the other host: ${failoverMs} ms`);
});
