// Migrations end to end on simulated hosts: a real `kova up` (API server, etcd, the migration
// controller) and three sim agents in this process, so faults can be injected into the drivers.
// Live and cold moves, kubectl wait on the Succeeded condition, abort by deletion, a target
// that cannot prepare and a transfer that fails (both roll back; the next attempt succeeds),
// and a Migration no host can take.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Host, Instance, Migration, Volume } from '../../api/kinds/index.js';
import { HOSTS, INSTANCES } from '../../client/client.js';
import type { KovaClient } from '../../client/client.js';
import { MIGRATIONS, VOLUMES } from '../../api/kinds/index.js';
import { eventually } from '../../e2e/harness.js';
import type { Kova } from '../../e2e/harness.js';
import { startSimCloud } from '../../e2e/sim-cloud.js';
import type { SimCloud } from '../../e2e/sim-cloud.js';
import type { SimAgents } from '../run.js';
import { domainName } from '../driver.js';
import { fingerprint } from '../sim-volumes.js';

const NS = 'migsim';

describe('migrations on simulated hosts', () => {
  let cloud: SimCloud;
  let kova: Kova;
  let client: KovaClient;
  let sims: SimAgents;
  let seq = 0;

  const inst = (name: string) => client.get<Instance>(INSTANCES, NS, name) as Promise<Instance>;
  const mig = (name: string) => client.get<Migration>(MIGRATIONS, NS, name);
  const driverOf = (host: string) => sims.drivers[Number(host.replace('migsim-', ''))];
  const hostsWith = async (uid: string) => (await client.list<Host>(HOSTS)).items.filter((h) => h.status?.allocations?.some((a) => a.uid === uid)).map((h) => h.metadata.name!).sort();
  const migrate = async (instance: string, spec: Record<string, unknown> = {}) => {
    const name = `${instance}-m${++seq}`;
    await client.create(MIGRATIONS, { metadata: { name, namespace: NS }, spec: { instance, ...spec } });
    return name;
  };
  const ended = async (name: string, ms = 20_000) => {
    let m: Migration | undefined;
    await eventually(async () => ['Succeeded', 'Failed'].includes((m = await mig(name))?.status?.phase ?? ''), ms, `${name} ends`);
    return m!;
  };
  const running = async (name: string, host?: string) => {
    await eventually(async () => {
      const i = await inst(name);
      return i.status?.phase === 'Running' && (!host || i.status.hostName === host) && !i.status.migration;
    }, 20_000, `${name} runs${host ? ` on ${host}` : ''}`);
    return inst(name);
  };
  const newInstance = async (name: string, spec: Record<string, unknown> = {}) => {
    await client.create(INSTANCES, { metadata: { name, namespace: NS }, spec: { flavor: 'migsim.small', image: 'tiny', ...spec } });
    return running(name);
  };

  before(async () => {
    cloud = await startSimCloud({ namespace: NS, prefix: 'migsim-', driverOptions: { migrateMs: 300 }, flavors: { 'migsim.small': { vcpus: 1, memory: '256Mi', disk: '1Gi' } } });
    ({ kova, client, sims } = cloud);
  });

  after(() => cloud?.stop());

  it('moves a running instance live: the binding, the domain and the allocation follow, and kubectl wait sees Succeeded', async () => {
    const before = await newInstance('web');
    const source = before.status!.hostName!;
    const name = await migrate('web');
    await kova.k(['wait', `migration/${name}`, '-n', NS, '--for=condition=Succeeded', '--timeout=30s'], { timeoutMs: 40_000 });
    const m = (await mig(name))!;
    const target = m.status!.targetHost!;
    assert.notEqual(target, source);
    assert.equal(m.status!.sourceHost, source);
    assert.equal(m.status!.mode, 'Live');
    assert.equal(m.status!.storage, 'BlockCopy', 'an image-backed root disk is local: it is copied');
    assert.equal(m.status!.progress, 100);
    assert.ok(m.status!.startTime && m.status!.endTime && m.status!.downtimeMs !== undefined);
    assert.equal(m.status!.dataProcessedBytes, 256 * 2 ** 20);
    const after = await running('web', target);
    assert.equal(after.status!.domainUUID, before.status!.domainUUID, 'the same domain, moved');
    const dom = domainName(NS, 'web', before.metadata.uid!);
    assert.ok((await driverOf(target).listDomains()).some((d) => d.id === dom && d.state === 'Running'));
    assert.ok(!(await driverOf(source).listDomains()).some((d) => d.id === dom));
    await eventually(async () => JSON.stringify(await hostsWith(before.metadata.uid!)) === JSON.stringify([target]), 20_000, 'only the target charges the instance');
    assert.match(await kova.k(['get', 'migrations', '-n', NS]), new RegExp(`${name}\\s+web\\s+Succeeded\\s+${source}\\s+${target}\\s+100`));
  });

  it('aborts a running migration when it is deleted: the instance stays on its host and the target gives its claim back', async () => {
    const i = await inst('web');
    const source = i.status!.hostName!;
    // 256Mi at 1Mi/s: slow enough to catch it Running.
    const name = await migrate('web', { bandwidth: '1Mi' });
    await eventually(async () => (await mig(name))?.status?.phase === 'Running' && ((await mig(name))?.status?.progress ?? 0) >= 0, 20_000, 'running');
    const target = (await mig(name))!.status!.targetHost!;
    assert.deepEqual(await hostsWith(i.metadata.uid!), [source, target].sort(), 'both hosts hold the allocation during the move');
    await client.delete(MIGRATIONS, NS, name);
    await eventually(async () => (await mig(name)) === undefined, 20_000, 'the migration is gone once aborted');
    const now = await running('web', source);
    assert.equal(now.status!.hostName, source);
    const dom = domainName(NS, 'web', i.metadata.uid!);
    assert.ok((await driverOf(source).listDomains()).some((d) => d.id === dom && d.state === 'Running'));
    assert.ok(!(await driverOf(target).listDomains()).some((d) => d.id === dom));
    await eventually(async () => JSON.stringify(await hostsWith(i.metadata.uid!)) === JSON.stringify([source]), 20_000, 'the target released its claim');
  });

  it('rolls back when the target cannot prepare or the transfer fails, and the next migration succeeds', async () => {
    const i = await inst('web');
    const source = i.status!.hostName!;
    const target = ['migsim-0', 'migsim-1', 'migsim-2'].find((h) => h !== source)!;
    driverOf(target).setFault('prepareMigrationTarget', 'disk full');
    const first = await ended(await migrate('web', { targetHost: target }));
    assert.equal(first.status!.phase, 'Failed');
    const failed = first.status!.conditions!.find((c) => c.type === 'Failed')!;
    assert.equal(failed.reason, 'TargetPrepareFailed');
    assert.match(failed.message!, /disk full/);
    driverOf(target).setFault('prepareMigrationTarget', undefined);

    driverOf(source).setFault('migrate', 'connection reset by the target');
    const second = await ended(await migrate('web', { targetHost: target }));
    assert.equal(second.status!.phase, 'Failed');
    assert.equal(second.status!.conditions!.find((c) => c.type === 'Failed')!.reason, 'MigrationFailed');
    assert.match(second.status!.conditions!.find((c) => c.type === 'Failed')!.message!, /connection reset.*keeps running on host/);
    await running('web', source);
    driverOf(source).setFault('migrate', undefined);
    await eventually(async () => JSON.stringify(await hostsWith(i.metadata.uid!)) === JSON.stringify([source]), 20_000, 'failed targets released their claims');

    const third = await ended(await migrate('web', { targetHost: target }));
    assert.equal(third.status!.phase, 'Succeeded', JSON.stringify(third.status?.conditions));
    await running('web', target);
  });

  it('moves a stopped instance cold, and it stays stopped on the target', async () => {
    await newInstance('cold');
    await client.mergePatch(INSTANCES, NS, 'cold', { spec: { runStrategy: 'Halted' } });
    await eventually(async () => (await inst('cold')).status?.phase === 'Stopped', 20_000, 'stopped');
    const source = (await inst('cold')).status!.hostName!;
    const m = await ended(await migrate('cold'));
    assert.equal(m.status!.phase, 'Succeeded', JSON.stringify(m.status?.conditions));
    assert.equal(m.status!.mode, 'Cold');
    const after = await inst('cold');
    assert.notEqual(after.status!.hostName, source);
    await eventually(async () => (await inst('cold')).status?.phase === 'Stopped', 20_000, 'still stopped on the target');
    const dom = domainName(NS, 'cold', after.metadata.uid!);
    assert.ok((await driverOf(after.status!.hostName!).listDomains()).some((d) => d.id === dom && d.state === 'Shutdown'));
  });

  it('moves a local volume with its instance: the target stores it with the guest\'s data, and the source copy goes', async () => {
    await client.create(VOLUMES, { metadata: { name: 'data', namespace: NS }, spec: { size: '2Gi', volumeType: 'local' } });
    const before = await newInstance('db', { volumes: [{ volume: 'data' }] });
    const source = before.status!.hostName!;
    await eventually(async () => (await client.get<Volume>(VOLUMES, NS, 'data'))?.status?.phase === 'InUse', 20_000, 'data in use');
    const vol = (await client.get<Volume>(VOLUMES, NS, 'data'))!;
    assert.equal(vol.status!.hostName, source);
    const disk = { uid: vol.metadata.uid!, key: `${NS}/data`, backend: { type: 'local' as const } };
    driverOf(source).simWrite(disk, 'rows written before the move');
    const m = await ended(await migrate('db'));
    assert.equal(m.status!.phase, 'Succeeded', JSON.stringify(m.status?.conditions));
    const target = m.status!.targetHost!;
    await running('db', target);
    await eventually(async () => (await client.get<Volume>(VOLUMES, NS, 'data'))?.status?.hostName === target, 20_000, 'the target stores the volume');
    assert.equal(driverOf(target).simRead(disk), fingerprint('rows written before the move'), 'the data came along');
    await eventually(async () => driverOf(source).simRead(disk) === undefined, 20_000, 'the source copy is removed');
    await eventually(async () => (await client.get<Volume>(VOLUMES, NS, 'data'))?.status?.phase === 'InUse', 20_000, 'still in use, on the target');
  });

  it('fails a migration no host can take, saying why, and a live one of a stopped instance', async () => {
    const m = await ended(await migrate('web', { nodeSelector: { 'example.com/rack': 'nowhere' } }));
    assert.equal(m.status!.phase, 'Failed');
    const c = m.status!.conditions!.find((x) => x.type === 'Failed')!;
    assert.equal(c.reason, 'Unschedulable');
    assert.match(c.message!, /^0\/3 hosts available: 2 didn't match node selector, 1 is the source host$/);
    const live = await ended(await migrate('cold', { mode: 'Live' }));
    assert.equal(live.status!.conditions!.find((x) => x.type === 'Failed')!.reason, 'NotRunning');
  });
});
