// Many simulated agents in one process against a real `kova up`: every bound instance runs on
// its host, with one status write per instance (no write amplification).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { FLAVORS, HOSTS, INSTANCES, KovaClient, NAMESPACES } from '../client/client.js';
import { eventually, startKova } from '../e2e/harness.js';
import type { Kova } from '../e2e/harness.js';
import { startSimAgents } from './run.js';
import { createReadySimImage } from './sim-image.js';
import type { SimAgents } from './run.js';

const HOSTS_N = 5;
const PER_HOST = 40;
let kova: Kova;
let client: KovaClient;
let sims: SimAgents;
const ac = new AbortController();
let dir: string | undefined;

before(async () => {
  kova = await startKova(['--no-agents', '--no-controllers']);
  client = KovaClient.fromFile(kova.kubeconfig);
  sims = await startSimAgents({ kubeconfig: kova.kubeconfig, count: HOSTS_N, prefix: 'simtest-', preset: 'small', signal: ac.signal, log: () => {} });
});

after(async () => {
  ac.abort();
  await sims?.done();
  sims?.client.close();
  client?.close();
  await kova?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('simulated hosts register with their preset', async () => {
  const hosts = (await client.list(HOSTS)).items.filter((h) => h.metadata.name!.startsWith('simtest-'));
  assert.deepEqual(hosts.map((h) => h.metadata.name).sort(), ['simtest-0', 'simtest-1', 'simtest-2', 'simtest-3', 'simtest-4']);
  for (const h of hosts) assert.deepEqual((h.status as { capacity: unknown }).capacity, { vcpus: 4, memory: '16Gi', disk: '200Gi' });
});

test('every bound instance runs on its host with one status write each', async () => {
  await client.create(NAMESPACES, { metadata: { name: 'simtest' } });
  await client.create(FLAVORS, { metadata: { name: 'simtest.tiny' }, spec: { vcpus: 1, memory: '64Mi', disk: '1Gi' } });
  // Sim instances wait for a Ready Image like libvirt ones.
  dir = await mkdtemp(join(tmpdir(), 'kova-simtest-'));
  await createReadySimImage(client, 'simtest', 'tiny', dir);
  const n = HOSTS_N * PER_HOST;
  const names = Array.from({ length: n }, (_, i) => `vm-${i}`);
  await Promise.all(names.map((name) => client.create(INSTANCES, { metadata: { name, namespace: 'simtest' }, spec: { flavor: 'simtest.tiny', image: 'tiny' } })));
  const t0 = Date.now();
  for (let i = 0; i < n; i += 20) {
    await Promise.all(names.slice(i, i + 20).map((name, j) => client.bind('simtest', name, `simtest-${(i + j) % HOSTS_N}`, { vcpus: 1, memory: '64Mi', disk: '1Gi' })));
  }
  await eventually(async () => (await client.list(INSTANCES, 'simtest', { fieldSelector: 'status.phase=Running' })).items.length === n, 30_000, 'all Running');
  const ms = Date.now() - t0;
  for (let h = 0; h < HOSTS_N; h++) assert.equal(sims.drivers[h].usage().domains, PER_HOST, `domains on simtest-${h}`);
  const writes = sims.agents.reduce((s, a) => s + a.reconciler.stats.statusWrites, 0);
  assert.equal(writes, n, 'one status write per instance: Provisioning → Running');
  console.log(`# ${n} instances on ${HOSTS_N} sim hosts: bind start to all Running in ${ms} ms, ${writes} status writes`);
});

test('an instance unbound from its host (evacuation) loses its domain there and runs where it is bound next', async () => {
  const name = 'vm-0';
  const before = (await client.get(INSTANCES, 'simtest', name))!;
  assert.equal((before.status as { hostName: string }).hostName, 'simtest-0');
  const id = (await sims.drivers[0].listDomains()).find((d) => d.instanceKey === `simtest/${name}`)!.id;
  // What the host controller does for a fenced host: clear the binding.
  await client.patchStatus(INSTANCES, 'simtest', name, { status: { hostName: null, phase: 'Pending' } });
  await eventually(async () => !(await sims.drivers[0].listDomains()).some((d) => d.id === id), 10_000, 'domain destroyed on the old host');
  await client.bind('simtest', name, 'simtest-1', { vcpus: 1, memory: '64Mi', disk: '1Gi' });
  await eventually(async () => (await sims.drivers[1].listDomains()).some((d) => d.id === id && d.state === 'Running'), 10_000, 'running on the new host');
  await eventually(async () => ((await client.get(INSTANCES, 'simtest', name))!.status as { phase: string }).phase === 'Running', 10_000, 'Running');
});
