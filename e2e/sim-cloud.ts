// A simulated cloud for tests that need to reach into the hypervisors: a real `kova up
// --no-agents` (API server, etcd, controllers) and N sim agents in the test's own process, so a
// test can inject faults into, time and inspect each SimDriver. One project namespace, the
// flavors asked for and a Ready image `tiny` in it.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FlavorSpec, Host } from '../api/kinds/index.js';
import { FLAVORS, HOSTS, KovaClient, NAMESPACES } from '../client/client.js';
import { startSimAgents } from '../node-agent/run.js';
import type { SimAgents } from '../node-agent/run.js';
import { createReadySimImage } from '../node-agent/sim-image.js';
import { eventually, startKova } from './harness.js';
import type { Kova } from './harness.js';

export interface SimCloud {
  kova: Kova;
  client: KovaClient;
  sims: SimAgents;
  /** `<prefix>0` … `<prefix>N-1`. */
  hostNames: string[];
  stop(): Promise<void>;
}

export async function startSimCloud(o: {
  namespace: string;
  prefix: string;
  count?: number;
  flavors: Record<string, FlavorSpec>;
} & Pick<Parameters<typeof startSimAgents>[0], 'preset' | 'labels' | 'driverOptions'>): Promise<SimCloud> {
  const count = o.count ?? 3;
  const ac = new AbortController();
  const kova = await startKova(['--no-agents']);
  const client = KovaClient.fromFile(kova.kubeconfig);
  let sims: SimAgents | undefined;
  let dir: string | undefined;
  const stop = async () => {
    ac.abort();
    await sims?.done();
    sims?.client.close();
    client.close();
    await kova.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  };
  try {
    sims = await startSimAgents({ kubeconfig: kova.kubeconfig, count, prefix: o.prefix, preset: o.preset ?? 'small', labels: o.labels, driverOptions: o.driverOptions, signal: ac.signal, log: () => {} });
    await client.create(NAMESPACES, { metadata: { name: o.namespace } });
    for (const [name, spec] of Object.entries(o.flavors)) await client.create(FLAVORS, { metadata: { name }, spec });
    dir = await mkdtemp(join(tmpdir(), `kova-${o.prefix}`));
    await createReadySimImage(client, o.namespace, 'tiny', dir);
    const hostNames = Array.from({ length: count }, (_, i) => `${o.prefix}${i}`);
    await eventually(async () => (await client.list<Host>(HOSTS)).items.filter((h) => hostNames.includes(h.metadata.name!) && h.status?.allocatable).length === count, 20_000, `${count} hosts`);
    return { kova, client, sims, hostNames, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
