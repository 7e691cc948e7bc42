// Scale check of the node agents: N simulated hosts in one process, M instances bound to them
// through the binding subresource; measures how long until every instance is Running and how
// many API writes the agents needed. Usage:
//   node dist/node-agent/sim-bench.js [--hosts 100] [--instances 10000] [--concurrency 64]
import { parseArgs } from 'node:util';
import type { KObject } from '../api/types.js';
import { FLAVORS, INSTANCES, isConflict, KovaClient, NAMESPACES } from '../controllers/runtime/client.js';
import { Informer } from '../controllers/runtime/informer.js';
import { startKova } from '../e2e/harness.js';
import { startSimAgents } from './run.js';

async function pool<T>(items: T[], concurrency: number, fn: (t: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

/** Binding is retried inside the server, but heavy contention on one Host can still surface a 409. */
async function bindRetrying(client: KovaClient, name: string, host: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await client.bind('bench', name, host, { vcpus: 1, memory: '64Mi', disk: '1Gi' });
      return;
    } catch (e) {
      if (!isConflict(e) || /^insufficient/.test((e as Error).message) || attempt >= 10) throw e;
      bindRetries++;
    }
  }
}
let bindRetries = 0;

export async function simBench(opts: { hosts: number; instances: number; concurrency: number; log?: (m: string) => void }): Promise<Record<string, number>> {
  const log = opts.log ?? ((m: string) => console.log(m));
  const kova = await startKova(['--no-agents', '--no-controllers']);
  const ac = new AbortController();
  const client = KovaClient.fromFile(kova.kubeconfig, { maxSockets: 256, fieldManager: 'sim-bench' });
  const agentClient = KovaClient.fromFile(kova.kubeconfig, { maxSockets: 256, userAgent: 'kova-agent', fieldManager: 'kova-agent' });
  try {
    let t = Date.now();
    const sims = await startSimAgents({ client: agentClient, count: opts.hosts, signal: ac.signal, log: () => {} });
    const startHostsMs = Date.now() - t;
    log(`${opts.hosts} agents up in ${startHostsMs} ms`);
    await client.create(NAMESPACES, { metadata: { name: 'bench' } });
    await client.create(FLAVORS, { metadata: { name: 'bench.tiny' }, spec: { vcpus: 1, memory: '64Mi', disk: '1Gi' } });
    const names = Array.from({ length: opts.instances }, (_, i) => `vm-${i}`);

    const running = new Set<string>();
    let allRunning!: () => void;
    const done = new Promise<void>((r) => (allRunning = r));
    const informer = new Informer(client, INSTANCES, { namespace: 'bench', log: () => {} });
    const onObj = (o: KObject) => {
      if ((o.status as { phase?: string } | undefined)?.phase === 'Running') running.add(o.metadata.name!);
      if (running.size === opts.instances) allRunning();
    };
    informer.on('add', onObj);
    informer.on('update', onObj);
    informer.start();
    await informer.waitForSync();

    t = Date.now();
    await pool(names, opts.concurrency, (name) => client.create(INSTANCES, { metadata: { name, namespace: 'bench' }, spec: { flavor: 'bench.tiny', image: 'tiny' } }));
    const createMs = Date.now() - t;
    log(`created ${opts.instances} instances in ${createMs} ms`);
    const progress = setInterval(() => log(`${Date.now() - t} ms: ${running.size} running (watch), ${sims.agents.reduce((n, a) => n + a.reconciler.stats.statusWrites, 0)} agent status writes, ${sims.drivers.reduce((n, d) => n + d.usage().domains, 0)} domains, ${sims.agents.reduce((n, a) => n + a.informerSize(), 0)} in agent caches, informer lists ${informer.stats.lists} errors ${informer.stats.errors}`), 5000);
    const req0 = agentClient.stats.requests;
    t = Date.now();
    await pool(names.map((n, i) => [n, i] as const), opts.concurrency, ([name, i]) => bindRetrying(client, name, `sim-${i % opts.hosts}`));
    const bindMs = Date.now() - t;
    // When the agents have written Running for every instance (the watch above may lag).
    const agentsDone = new Promise<number>((resolve) => {
      const poll = setInterval(() => {
        if (sims.agents.reduce((n, a) => n + a.reconciler.stats.statusWrites, 0) < opts.instances) return;
        clearInterval(poll);
        resolve(Date.now() - t);
      }, 100);
    });
    log(`bound in ${bindMs} ms`);
    const agentsWroteRunningMs = await agentsDone;
    await done;
    clearInterval(progress);
    const runningMs = Date.now() - t;
    const agentRequests = agentClient.stats.requests - req0;
    const writes = sims.agents.reduce((n, a) => n + a.reconciler.stats.statusWrites, 0);
    const conflicts = sims.agents.reduce((n, a) => n + a.reconciler.stats.conflicts, 0);
    informer.stop();
    const result = { hosts: opts.hosts, instances: opts.instances, startHostsMs, createMs, bindMs, bindToAgentsWroteRunningMs: agentsWroteRunningMs, bindToAllRunningSeenByWatchMs: runningMs, agentRequests, statusWrites: writes, statusConflicts: conflicts, bindRetries };
    log(JSON.stringify(result));
    return result;
  } finally {
    ac.abort();
    client.close();
    agentClient.close();
    await kova.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { hosts: { type: 'string', default: '100' }, instances: { type: 'string', default: '10000' }, concurrency: { type: 'string', default: '64' } } });
  simBench({ hosts: Number(values.hosts), instances: Number(values.instances), concurrency: Number(values.concurrency) }).catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
