// Resize end to end on simulated hosts: a real `kova up --no-agents` (API server, etcd, the
// resize and migration controllers) and three sim agents in this process, so the domains'
// sizes can be read from the drivers. A flavor change on a bound instance sets RestartRequired
// and nothing else until the restart; then it is applied in place (the host's allocation and
// the domain grow), or by a cold move when the host is full, or not at all when no host has
// room (the guest runs on with its old size and the condition says why).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Host, Instance, Migration } from '../../api/kinds/index.js';
import { HOSTS, INSTANCES } from '../../client/client.js';
import type { KovaClient } from '../../client/client.js';
import { MIGRATIONS } from '../../api/kinds/index.js';
import { RESIZE_MIGRATION_LABEL } from '../../api/resize.js';
import { eventually } from '../../e2e/harness.js';
import { powerAction } from '../../cli/power.js';
import { startSimCloud } from '../../e2e/sim-cloud.js';
import type { SimCloud } from '../../e2e/sim-cloud.js';
import type { SimAgents } from '../run.js';
import { domainName } from '../driver.js';

const NS = 'resizesim';
const Mi = 2 ** 20;
const Gi = 2 ** 30;

describe('resize on simulated hosts', () => {
  let cloud: SimCloud;
  let client: KovaClient;
  let sims: SimAgents;

  const inst = async (name: string) => (await client.get<Instance>(INSTANCES, NS, name))!;
  const cond = (i: Instance) => i.status?.conditions?.find((c) => c.type === 'RestartRequired');
  const driverOf = (host: string) => sims.drivers[Number(host.replace('rs-', ''))];
  const sizeOf = async (name: string) => {
    const i = await inst(name);
    return driverOf(i.status!.hostName!).simSize(domainName(NS, name, i.metadata.uid!));
  };
  const charges = async (uid: string) => Object.fromEntries((await client.list<Host>(HOSTS)).items.flatMap((h) => {
    const a = h.status?.allocations?.find((x) => x.uid === uid);
    return a ? [[h.metadata.name!, `${a.vcpus}/${a.memory}/${a.disk}`]] : [];
  }));
  const running = async (name: string) => {
    await eventually(async () => {
      const i = await inst(name);
      return i.status?.phase === 'Running' && !i.status.migration;
    }, 20_000, `${name} runs`);
    return inst(name);
  };
  const create = async (name: string, flavor: string, host: string) => {
    await client.create(INSTANCES, { metadata: { name, namespace: NS }, spec: { flavor, image: 'tiny', hostName: host } });
    return running(name);
  };
  const setFlavor = (name: string, flavor: string) => client.mergePatch(INSTANCES, NS, name, { spec: { flavor } });
  const restart = async (name: string) => {
    await powerAction(client, 'restart', NS, name);
    return (await inst(name)).metadata.annotations!['kova.dev/restartedAt'];
  };

  before(async () => {
    // 2Gi of RAM each: 3Gi allocatable at the default ratio 1.5.
    const flavors = Object.fromEntries(([['rs.small', 1, '512Mi', '1Gi'], ['rs.big', 2, '1Gi', '2Gi'], ['rs.fill', 1, '2304Mi', '1Gi'], ['rs.huge', 2, '4Gi', '2Gi'], ['rs.thin', 2, '1Gi', '512Mi']] as const).map(([name, vcpus, memory, disk]) => [name, { vcpus, memory, disk }]));
    cloud = await startSimCloud({ namespace: NS, prefix: 'rs-', preset: { vcpus: 4, memory: '2Gi', disk: '50Gi' }, flavors });
    ({ client, sims } = cloud);
  });

  after(() => cloud?.stop());

  it('resizes in place at the restart: RestartRequired until then, then the allocation and the domain grow and it clears', async () => {
    const a = await create('a', 'rs.small', 'rs-1');
    const uid = a.metadata.uid!;
    assert.deepEqual(await charges(uid), { 'rs-1': '1/512Mi/1Gi' });
    await setFlavor('a', 'rs.big');
    const pending = await eventually(async () => {
      const c = cond(await inst('a'));
      return c?.status === 'True' && c;
    }, 20_000, 'RestartRequired');
    assert.equal(pending.reason, 'FlavorChanged');
    assert.match(pending.message!, /flavor rs\.big asks for 2 vCPUs, 1Gi memory, 2Gi disk; the guest has 1 vCPU, 512Mi memory, 1Gi disk until its next restart/);
    // Nothing changes before the restart: the running guest keeps its size and its charge.
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(await sizeOf('a'), { vcpus: 1, memoryBytes: 512 * Mi, diskBytes: 1 * Gi });
    assert.deepEqual(await charges(uid), { 'rs-1': '1/512Mi/1Gi' });
    assert.equal((await inst('a')).status!.phase, 'Running');

    const at = await restart('a');
    const done = await eventually(async () => {
      const i = await inst('a');
      return i.status?.observedRestartedAt === at && cond(i)?.status === 'False' && i.status.phase === 'Running' && i;
    }, 20_000, 'resized and running');
    assert.equal(cond(done)!.reason, 'Resized');
    assert.equal(done.status!.hostName, 'rs-1', 'in place');
    assert.deepEqual(await sizeOf('a'), { vcpus: 2, memoryBytes: 1 * Gi, diskBytes: 2 * Gi });
    assert.deepEqual(await charges(uid), { 'rs-1': '2/1Gi/2Gi' });
  });

  it('applies at a start after a stop too (kova stop, change, kova start)', async () => {
    const d = await create('d', 'rs.small', 'rs-2');
    await powerAction(client, 'stop', NS, 'd');
    await eventually(async () => (await inst('d')).status?.phase === 'Stopped', 20_000, 'stopped');
    await setFlavor('d', 'rs.big');
    await eventually(async () => cond(await inst('d'))?.reason === 'FlavorChanged', 20_000, 'FlavorChanged');
    assert.deepEqual(await sizeOf('d'), { vcpus: 1, memoryBytes: 512 * Mi, diskBytes: 1 * Gi }, 'a stopped guest is not resized before it starts');
    await powerAction(client, 'start', NS, 'd');
    await eventually(async () => {
      const i = await inst('d');
      return i.status?.phase === 'Running' && cond(i)?.reason === 'Resized';
    }, 20_000, 'started with the new size');
    assert.deepEqual(await sizeOf('d'), { vcpus: 2, memoryBytes: 1 * Gi, diskBytes: 2 * Gi });
    assert.deepEqual(await charges(d.metadata.uid!), { 'rs-2': '2/1Gi/2Gi' });
    await client.delete(INSTANCES, NS, 'd');
  });

  it('refuses a smaller disk: nothing changes, and the condition says why', async () => {
    await setFlavor('a', 'rs.thin');
    const c = await eventually(async () => {
      const x = cond(await inst('a'));
      return x?.reason === 'DiskShrinkRefused' && x;
    }, 20_000, 'DiskShrinkRefused');
    assert.equal(c.status, 'False');
    assert.match(c.message!, /flavor rs\.thin asks for a 512Mi disk, smaller than the instance's 2Gi: disks never shrink/);
    await restart('a');
    await new Promise((r) => setTimeout(r, 500));
    await running('a');
    assert.deepEqual(await sizeOf('a'), { vcpus: 2, memoryBytes: 1 * Gi, diskBytes: 2 * Gi });
    assert.deepEqual(await charges((await inst('a')).metadata.uid!), { 'rs-1': '2/1Gi/2Gi' });
    await setFlavor('a', 'rs.big');
    await eventually(async () => cond(await inst('a'))?.reason === 'Unchanged', 20_000, 'Unchanged');
  });

  it('moves cold at the restart when its host is full, and boots there with the new size', async () => {
    await create('fill', 'rs.fill', 'rs-0');
    const b = await create('b', 'rs.small', 'rs-0');
    const uid = b.metadata.uid!;
    await setFlavor('b', 'rs.big');
    await eventually(async () => cond(await inst('b'))?.reason === 'FlavorChanged', 20_000, 'FlavorChanged');
    await restart('b');
    const moved = await eventually(async () => {
      const i = await inst('b');
      return i.status?.hostName !== 'rs-0' && i.status?.phase === 'Running' && cond(i)?.status === 'False' && i;
    }, 30_000, 'moved and resized');
    assert.equal(cond(moved)!.reason, 'Resized');
    assert.equal(moved.status!.domainUUID, b.status!.domainUUID, 'the same domain, moved');
    assert.deepEqual(await sizeOf('b'), { vcpus: 2, memoryBytes: 1 * Gi, diskBytes: 2 * Gi });
    await eventually(async () => JSON.stringify(await charges(uid)) === JSON.stringify({ [moved.status!.hostName!]: '2/1Gi/2Gi' }), 20_000, 'only the new host charges it, for the new size');
    const migs = (await client.list<Migration>(MIGRATIONS, NS)).items.filter((m) => m.metadata.labels?.[RESIZE_MIGRATION_LABEL] === uid);
    assert.equal(migs.length, 1);
    assert.equal(migs[0].status!.phase, 'Succeeded');
    assert.equal(migs[0].status!.mode, 'Cold');
    assert.equal(migs[0].status!.sourceHost, 'rs-0');
  });

  it('fits nowhere: says so and runs on with its old size', async () => {
    const c = await create('c', 'rs.small', 'rs-2');
    const uid = c.metadata.uid!;
    await setFlavor('c', 'rs.huge');
    await eventually(async () => cond(await inst('c'))?.reason === 'FlavorChanged', 20_000, 'FlavorChanged');
    const at = await restart('c');
    const back = await eventually(async () => {
      const i = await inst('c');
      const x = cond(i);
      return i.status?.observedRestartedAt === at && i.status.phase === 'Running' && x?.reason === 'FlavorChanged' && /no host has room/.test(x.message ?? '') && i;
    }, 30_000, 'running again with the old size');
    assert.equal(cond(back)!.status, 'True', 'still pending: the next restart tries again');
    assert.match(cond(back)!.message!, /^no host has room for 2 vCPUs, 4Gi memory, 2Gi disk: 0\/3 hosts available: .*; the guest was started again with 1 vCPU, 512Mi memory, 1Gi disk on host rs-2; 2 vCPUs, 4Gi memory, 2Gi disk applies at the next restart$/);
    assert.equal(back.status!.hostName, 'rs-2');
    assert.deepEqual(await sizeOf('c'), { vcpus: 1, memoryBytes: 512 * Mi, diskBytes: 1 * Gi });
    assert.deepEqual(await charges(uid), { 'rs-2': '1/512Mi/1Gi' });
    const migs = (await client.list<Migration>(MIGRATIONS, NS)).items.filter((m) => m.metadata.labels?.[RESIZE_MIGRATION_LABEL] === uid);
    assert.deepEqual(migs.map((m) => [m.status?.phase, m.status?.conditions?.find((x) => x.type === 'Failed')?.reason]), [['Failed', 'Unschedulable']]);
  });

  it('an ordinary migration of an instance with a pending resize moves (and charges) the size the guest has', async () => {
    const c = await inst('c');
    await client.create(MIGRATIONS, { metadata: { name: 'c-live', namespace: NS }, spec: { instance: 'c' } });
    await eventually(async () => ['Succeeded', 'Failed'].includes((await client.get<Migration>(MIGRATIONS, NS, 'c-live'))?.status?.phase ?? ''), 20_000, 'c-live ends');
    const m = (await client.get<Migration>(MIGRATIONS, NS, 'c-live'))!;
    assert.equal(m.status!.phase, 'Succeeded', JSON.stringify(m.status?.conditions));
    const moved = await running('c');
    assert.notEqual(moved.status!.hostName, 'rs-2');
    await eventually(async () => JSON.stringify(await charges(c.metadata.uid!)) === JSON.stringify({ [moved.status!.hostName!]: '1/512Mi/1Gi' }), 20_000, 'the target charges the old size');
    assert.equal(cond(moved)!.status, 'True', 'the resize is still pending');
    assert.deepEqual(await sizeOf('c'), { vcpus: 1, memoryBytes: 512 * Mi, diskBytes: 1 * Gi });
  });
});
