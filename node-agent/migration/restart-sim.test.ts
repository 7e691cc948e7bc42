// Agent restarts during migrations converge (#17): a real `kova up --no-agents` (API server,
// etcd, the migration controller) and three sim agents in this process, each with its own
// signal so it can be stopped, crashed and started again on the same SimDriver (the hypervisor
// outlives its agent, as libvirtd does). A crash freezes the old agent (every call it makes to
// the driver hangs, nothing more is written, the hypervisor's job goes on); an orderly stop runs
// the agent's shutdown. Each case checks the Migration's status against where the domain is.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import type { Flavor, Host, Instance, Migration, Volume, VolumeType } from '../../api/kinds/index.js';
import { MIGRATIONS, VOLUMES, VOLUME_TYPES } from '../../api/kinds/index.js';
import { findCondition } from '../../api/conditions.js';
import { FLAVORS, HOSTS, INSTANCES, KovaClient, NAMESPACES } from '../../client/client.js';
import type { Kind } from '../../client/client.js';
import type { KObject } from '../../api/types.js';
import { MigrationReconciler } from '../../controllers/migration/migration-controller.js';
import { eventually, startKova } from '../../e2e/harness.js';
import type { Kova } from '../../e2e/harness.js';
import { runAgent } from '../run.js';
import { SimDriver } from '../sim-driver.js';
import { createReadySimImage } from '../sim-image.js';
import { domainName } from '../driver.js';
import type { MigrationProgress } from '../driver.js';

const run = promisify(execFile);
const NS = 'rssim';
const HOST_NAMES = ['rs-0', 'rs-1', 'rs-2'];

interface HostRun {
  ac: AbortController;
  client: KovaClient;
  done: () => Promise<void>;
  /** Freezes this agent as if its process died: no driver call it makes returns, nothing is written. */
  crash: () => void;
}

/** The driver as one agent sees it: after crash(), its calls never return and its events stop. */
function crashable(real: SimDriver): { driver: SimDriver; crash: () => void } {
  let dead = false;
  const never = new Promise<never>(() => undefined);
  const driver = new Proxy(real, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target) as unknown;
      if (typeof v !== 'function') return v;
      if (prop === 'migrate') {
        return (id: string, to: Parameters<SimDriver['migrate']>[1], o: Parameters<SimDriver['migrate']>[2], onProgress?: (p: MigrationProgress) => void, signal?: AbortSignal) => {
          if (dead) return never;
          // A dead agent's shutdown does not abort the hypervisor's job.
          const inner = new AbortController();
          signal?.addEventListener('abort', () => { if (!dead) inner.abort(); }, { once: true });
          return target.migrate(id, to, o, (p) => { if (!dead) onProgress?.(p); }, inner.signal).then((r) => (dead ? never : r), (e) => (dead ? never : Promise.reject(e)));
        };
      }
      if (prop === 'onEvent') return (cb: Parameters<SimDriver['onEvent']>[0]) => target.onEvent((e) => { if (!dead) cb(e); });
      return (...args: unknown[]) => (dead ? never : (v as (...a: unknown[]) => unknown).apply(target, args));
    },
  });
  return { driver, crash: () => { dead = true; } };
}

describe('agent restarts during migrations on simulated hosts', () => {
  let kova: Kova;
  let client: KovaClient;
  let dir: string;
  let seq = 0;
  const drivers = new Map<string, SimDriver>();
  const runs = new Map<string, HostRun>();

  const inst = async (name: string) => (await client.get<Instance>(INSTANCES, NS, name))!;
  const mig = async (name: string) => (await client.get<Migration>(MIGRATIONS, NS, name))!;
  const failedReason = (m: Migration) => findCondition(m.status?.conditions, 'Failed')?.reason;
  const hasDomain = async (host: string, name: string, state = 'Running') => {
    const i = await inst(name);
    return (await drivers.get(host)!.listDomains()).some((d) => d.id === domainName(NS, name, i.metadata.uid!) && d.state === state);
  };
  const hostsWith = async (uid: string) => (await client.list<Host>(HOSTS)).items.filter((h) => h.status?.allocations?.some((a) => a.uid === uid)).map((h) => h.metadata.name!).sort();

  async function startHost(name: string, o: { leaseDurationS?: number } = {}): Promise<void> {
    const ac = new AbortController();
    const own = KovaClient.fromFile(kova.kubeconfig);
    const { driver, crash } = crashable(drivers.get(name)!);
    const agent = await runAgent({ client: own, hostName: name, driver, signal: ac.signal, heartbeatS: 1, leaseDurationS: o.leaseDurationS ?? 20, log: () => undefined });
    runs.set(name, { ac, client: own, done: () => agent.done(), crash });
  }
  /** An orderly stop: the agent's shutdown runs. */
  async function stopHost(name: string): Promise<void> {
    const r = runs.get(name)!;
    runs.delete(name);
    r.ac.abort();
    await r.done();
    r.client.close();
  }
  /** The agent's process dies: nothing of it runs any more; the hypervisor goes on. */
  function crashHost(name: string): void {
    const r = runs.get(name)!;
    runs.delete(name);
    r.crash();
    r.ac.abort(); // its watches and heartbeat end with the process
    r.client.close();
  }
  const migrate = async (instance: string, spec: Record<string, unknown>) => {
    const name = `${instance}-m${++seq}`;
    await client.create(MIGRATIONS, { metadata: { name, namespace: NS }, spec: { instance, ...spec } });
    return name;
  };
  const phase = async (name: string, want: string, ms = 20_000) => {
    await eventually(async () => (await mig(name)).status?.phase === want, ms, `${name} ${want}`);
    return mig(name);
  };
  const runsOn = async (name: string, host: string) => {
    await eventually(async () => {
      const i = await inst(name);
      return i.status?.phase === 'Running' && i.status.hostName === host && !i.status.migration;
    }, 20_000, `${name} runs on ${host}`);
  };
  /** A fresh running instance on `host`; returns its name. */
  const newInstance = async (name: string, host: string) => {
    await client.create(INSTANCES, { metadata: { name, namespace: NS }, spec: { flavor: 'rssim.small', image: 'tiny', hostName: host } });
    await runsOn(name, host);
    return name;
  };

  before(async () => {
    kova = await startKova(['--no-agents']);
    client = KovaClient.fromFile(kova.kubeconfig);
    for (const h of HOST_NAMES) drivers.set(h, new SimDriver({ preset: 'small', id: h, migrateMs: 300 }));
    for (const h of HOST_NAMES) await startHost(h);
    await client.create(NAMESPACES, { metadata: { name: NS } });
    await client.create(FLAVORS, { metadata: { name: 'rssim.small' }, spec: { vcpus: 1, memory: '256Mi', disk: '1Gi' } });
    dir = await mkdtemp(join(tmpdir(), 'kova-rssim-'));
    await createReadySimImage(client, NS, 'tiny', dir);
    await eventually(async () => (await client.list<Host>(HOSTS)).items.filter((h) => HOST_NAMES.includes(h.metadata.name!) && h.status?.allocatable).length === 3, 20_000, 'three hosts');
  });

  after(async () => {
    for (const h of [...runs.keys()]) await stopHost(h).catch(() => undefined);
    client?.close();
    await kova?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('the source agent restarts (orderly) during a throttled transfer: Failed (Interrupted), still running on the source; the next migration succeeds', async () => {
    const name = await newInstance('a', 'rs-0');
    const m = await migrate(name, { targetHost: 'rs-1', bandwidth: '1Mi' });
    await phase(m, 'Running');
    await stopHost('rs-0');
    const failed = await phase(m, 'Failed');
    assert.equal(failedReason(failed), 'Interrupted', JSON.stringify(failed.status?.conditions));
    assert.match(findCondition(failed.status?.conditions, 'Failed')!.message!, /agent of host rs-0 stopped during the transfer.*keeps running on host rs-0/);
    await startHost('rs-0');
    await runsOn(name, 'rs-0');
    assert.ok(await hasDomain('rs-0', name));
    assert.ok(!(await hasDomain('rs-1', name)));
    const uid = (await inst(name)).metadata.uid!;
    await eventually(async () => JSON.stringify(await hostsWith(uid)) === JSON.stringify(['rs-0']), 20_000, 'the target released its claim');
    const again = await migrate(name, { targetHost: 'rs-1' });
    assert.equal((await phase(again, 'Succeeded')).status?.targetHost, 'rs-1');
    await runsOn(name, 'rs-1');
  });

  it('the source agent crashes during a throttled transfer; its successor finds the guest still there: Failed (Interrupted), the job is stopped', async () => {
    const name = await newInstance('b', 'rs-0');
    const m = await migrate(name, { targetHost: 'rs-2', bandwidth: '1Mi' });
    await phase(m, 'Running');
    crashHost('rs-0');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await mig(m)).status?.phase, 'Running', 'nobody reports for a dead agent');
    const aborts = drivers.get('rs-0')!.calls.abortMigration;
    await startHost('rs-0');
    const failed = await phase(m, 'Failed');
    assert.equal(failedReason(failed), 'Interrupted');
    assert.match(findCondition(failed.status?.conditions, 'Failed')!.message!, /restarted during the transfer; the instance keeps running there/);
    assert.ok(drivers.get('rs-0')!.calls.abortMigration > aborts, 'the hypervisor job left by the dead agent was aborted');
    await runsOn(name, 'rs-0');
    assert.ok(await hasDomain('rs-0', name));
    assert.ok(!(await hasDomain('rs-2', name)));
    assert.equal((await phase(await migrate(name, { targetHost: 'rs-2' }), 'Succeeded')).status?.phase, 'Succeeded');
    await runsOn(name, 'rs-2');
  });

  it('the source agent crashes and the hypervisor finishes the transfer meanwhile: its successor reports it, Succeeded', async () => {
    const name = await newInstance('c', 'rs-0');
    // 256 MiB at 128 MiB/s: 2 s.
    const m = await migrate(name, { targetHost: 'rs-1', bandwidth: '128Mi' });
    await phase(m, 'Running');
    crashHost('rs-0');
    await eventually(() => hasDomain('rs-1', name), 10_000, 'the guest arrived on rs-1');
    assert.equal((await mig(m)).status?.phase, 'Running', 'not reported yet: the source agent is down');
    await startHost('rs-0');
    const ok = await phase(m, 'Succeeded');
    assert.match(findCondition(ok.status?.conditions, 'Transferred')!.message!, /finished while its agent was away/);
    await runsOn(name, 'rs-1');
    assert.ok(!(await hasDomain('rs-0', name)));
    const uid = (await inst(name)).metadata.uid!;
    await eventually(async () => JSON.stringify(await hostsWith(uid)) === JSON.stringify(['rs-1']), 20_000, 'the source released its allocation');
  });

  it('the target agent is down while it should prepare, and comes back: the migration completes', async () => {
    const name = await newInstance('d', 'rs-0');
    crashHost('rs-2');
    const m = await migrate(name, { targetHost: 'rs-2' });
    await phase(m, 'PreparingTarget');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await mig(m)).status?.phase, 'PreparingTarget');
    await startHost('rs-2');
    await phase(m, 'Succeeded');
    await runsOn(name, 'rs-2');
    assert.ok(await hasDomain('rs-2', name));
  });

  it('the target agent crashes during the transfer and comes back: the migration completes and the arriving domain is not destroyed', async () => {
    const name = await newInstance('e', 'rs-0');
    const m = await migrate(name, { targetHost: 'rs-1', bandwidth: '128Mi' });
    await phase(m, 'Running');
    const destroys = drivers.get('rs-1')!.calls.destroy;
    crashHost('rs-1');
    await startHost('rs-1');
    await phase(m, 'Succeeded');
    await runsOn(name, 'rs-1');
    // And once more after the move: the new agent adopts it.
    await stopHost('rs-1');
    await startHost('rs-1');
    await new Promise((r) => setTimeout(r, 300));
    await runsOn(name, 'rs-1');
    assert.ok(await hasDomain('rs-1', name));
    assert.equal(drivers.get('rs-1')!.calls.destroy, destroys, 'no domain destroyed on the target');
  });

  it('the controllers process is killed during the transfer (kova up starts it again): the migration completes, and only the target keeps the allocation', async () => {
    const name = await newInstance('g', 'rs-0');
    // 256 MiB at 32 MiB/s: 8 s, long enough to kill the controllers mid-transfer.
    const m = await migrate(name, { targetHost: 'rs-1', bandwidth: '32Mi' });
    await phase(m, 'Running');
    const components = async () => (await run('pgrep', ['-P', String(kova.proc.pid), '-f', 'components'])).stdout.trim();
    const before = await components();
    assert.match(before, /^\d+$/, 'one components child of kova up');
    process.kill(Number(before), 'SIGKILL');
    await eventually(async () => /^\d+$/.test(await components().catch(() => '')) && (await components()) !== before, 30_000, 'kova up restarted the controllers');
    const ok = await phase(m, 'Succeeded', 60_000);
    assert.equal(ok.status?.targetHost, 'rs-1');
    await runsOn(name, 'rs-1');
    assert.ok(await hasDomain('rs-1', name));
    assert.ok(!(await hasDomain('rs-0', name)));
    const uid = (await inst(name)).metadata.uid!;
    await eventually(async () => JSON.stringify(await hostsWith(uid)) === JSON.stringify(['rs-1']), 20_000, 'the source released its allocation');
  });

  it('the source host is lost during the transfer: the controller ends it Failed (SourceLost); its agent, back, aborts the leftover job and the guest runs there', async () => {
    // A short Lease, so the host controller sees the host lost in seconds.
    await stopHost('rs-0');
    await startHost('rs-0', { leaseDurationS: 2 });
    const name = await newInstance('f', 'rs-0');
    const m = await migrate(name, { targetHost: 'rs-2', bandwidth: '1Mi' });
    await phase(m, 'Running');
    crashHost('rs-0');
    await eventually(async () => findCondition((await client.get<Host>(HOSTS, undefined, 'rs-0'))!.status?.conditions, 'Ready')?.status !== 'True', 20_000, 'rs-0 not ready');
    // The controller's rule, five minutes on (the reconciler with its clock moved; the running
    // controller reads the same objects and would do the same then).
    const snap = async <T extends KObject>(kind: Kind) => {
      const items = (await client.list<T>(kind)).items;
      return { get: (ns: string | undefined, n: string) => items.find((i) => i.metadata.name === n && (!ns || i.metadata.namespace === ns)), list: (ns?: string) => items.filter((i) => !ns || i.metadata.namespace === ns) };
    };
    const r = new MigrationReconciler({
      client,
      migrations: await snap<Migration>(MIGRATIONS), instances: await snap<Instance>(INSTANCES), hosts: await snap<Host>(HOSTS),
      flavors: await snap<Flavor>(FLAVORS), volumes: await snap<Volume>(VOLUMES), volumeTypes: await snap<VolumeType>(VOLUME_TYPES),
      log: () => undefined,
      // 20 s before the end (lastTransitionTime has whole seconds, and a loaded machine is slow).
      now: () => Date.now() + 280_000,
    });
    const early = await r.reconcile({ namespace: NS, name: m });
    assert.ok(early && early.requeueAfterMs !== undefined && early.requeueAfterMs > 0 && early.requeueAfterMs <= 20_000, `looks again when the 5 minutes are up (${JSON.stringify(early)})`);
    assert.equal((await mig(m)).status?.phase, 'Running');
    const r2 = new MigrationReconciler({ ...(r as unknown as { d: ConstructorParameters<typeof MigrationReconciler>[0] }).d, now: () => Date.now() + 301_000 });
    await r2.reconcile({ namespace: NS, name: m });
    const failed = await mig(m);
    assert.equal(failed.status?.phase, 'Failed');
    assert.equal(failedReason(failed), 'SourceLost');
    assert.match(findCondition(failed.status?.conditions, 'Failed')!.message!, /^host rs-0 has not been ready for 300 s during the transfer \(.*\); the instance stays bound to it$/);
    const uid = (await inst(name)).metadata.uid!;
    await eventually(async () => JSON.stringify(await hostsWith(uid)) === JSON.stringify(['rs-0']) && !(await inst(name)).status?.migration, 20_000, 'the target released its claim, the mark is gone');
    // The hypervisor job the dead agent left is still sending: the agent, back, stops it.
    const aborts = drivers.get('rs-0')!.calls.abortMigration;
    await startHost('rs-0');
    await eventually(() => drivers.get('rs-0')!.calls.abortMigration > aborts, 10_000, 'the leftover job aborted');
    await runsOn(name, 'rs-0');
    assert.ok(await hasDomain('rs-0', name));
    assert.ok(!(await hasDomain('rs-2', name)));
    assert.equal((await phase(await migrate(name, { targetHost: 'rs-2' }), 'Succeeded')).status?.phase, 'Succeeded');
  });
});
