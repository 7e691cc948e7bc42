// The scheduler against a real `kova up`: hosts registered by the test (status written through
// the status subresource, a fresh heartbeat Lease each), instances created through the API.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Condition, KObject } from '../../api/types.js';
import { eventually, startKova } from '../../e2e/harness.js';
import type { Kova } from '../../e2e/harness.js';
import { EVENTS, FLAVORS, HOSTS, INSTANCES, KovaClient, NAMESPACES } from '../../client/client.js';
import { registerHost } from '../../testing/host-fixtures.js';
import { parseResources } from '../../api/resources.js';
import type { Resources } from '../../api/resources.js';
import { startScheduler } from './scheduler.js';
import type { Scheduler } from './scheduler.js';

let kova: Kova;
let client: KovaClient;
const stop = new AbortController();
let sched: Scheduler;

function instance(ns: string, name: string, spec: Record<string, unknown>) {
  return { metadata: { name, namespace: ns }, spec: { image: 'tiny', runStrategy: 'Always', ...spec } };
}

const scheduledCond = (o: KObject | undefined) => ((o?.status as { conditions?: Condition[] } | undefined)?.conditions ?? []).find((c) => c.type === 'Scheduled');
const hostNameOf = (o: KObject | undefined) => (o?.status as { hostName?: string } | undefined)?.hostName;

async function boundHost(ns: string, name: string, timeoutMs = 15_000): Promise<string> {
  return eventually(async () => hostNameOf(await client.get(INSTANCES, ns, name)), timeoutMs, `${ns}/${name} bound`);
}

async function unschedulableMessage(ns: string, name: string, want?: string): Promise<string> {
  return eventually(async () => {
    const o = await client.get(INSTANCES, ns, name);
    const c = scheduledCond(o);
    if (c?.status !== 'False' || c.reason !== 'Unschedulable' || (want !== undefined && c.message !== want)) return undefined;
    assert.equal((o!.status as { phase?: string }).phase, 'Pending');
    return c.message!;
  }, 15_000, `${ns}/${name} unschedulable${want ? ` with "${want}"` : ''}; last: ${JSON.stringify(scheduledCond(await client.get(INSTANCES, ns, name)))}`);
}

/** Sum of the requests of the instances bound to `host`, checked against its allocatable and its status. */
async function assertNotOverbooked(host: string, flavorReq: Resources): Promise<number> {
  const { items } = await client.list(INSTANCES, undefined, { fieldSelector: `status.hostName=${host}` });
  const h = (await client.get(HOSTS, undefined, host))!;
  const st = h.status as { allocatable: Record<string, string>; allocated?: Record<string, string>; allocations?: unknown[] };
  const alloc = parseResources(st.allocatable);
  const n = items.length;
  assert.ok(n * flavorReq.vcpus <= alloc.vcpus, `${host}: ${n} instances exceed ${alloc.vcpus} vcpus`);
  assert.ok(n * flavorReq.memoryBytes <= alloc.memoryBytes, `${host}: ${n} instances exceed its memory`);
  assert.ok(n * flavorReq.diskBytes <= alloc.diskBytes, `${host}: ${n} instances exceed its disk`);
  assert.equal(st.allocations?.length ?? 0, n, `${host}: allocations entries vs bound instances`);
  assert.deepEqual(parseResources(st.allocated), { vcpus: n * flavorReq.vcpus, memoryBytes: n * flavorReq.memoryBytes, diskBytes: n * flavorReq.diskBytes });
  return n;
}

before(async () => {
  // No agents (the test registers hosts) and no controllers: the scheduler under test is the
  // only one, so spreading and exact messages are deterministic.
  kova = await startKova(['--no-agents', '--no-controllers']);
  client = KovaClient.fromFile(kova.kubeconfig);
  for (const ns of ['sched', 'burst', 'duo']) await client.create(NAMESPACES, { metadata: { name: ns } });
  await client.create(FLAVORS, { metadata: { name: 'm1.small' }, spec: { vcpus: 1, memory: '512Mi', disk: '1Gi' } });
  await client.create(FLAVORS, { metadata: { name: 'm1.big' }, spec: { vcpus: 2, memory: '4Gi', disk: '1Gi' } });
  // Five hosts: a, b, c too small for m1.big (2Gi × 1.5 = 3Gi), d not ready, e cordoned (6Gi).
  for (const n of ['a', 'b', 'c']) await registerHost(client, n, { capacity: { vcpus: 2, memory: '2Gi', disk: '20Gi' }, labels: { 'kova.dev/zone': 'z1' } });
  await registerHost(client, 'd', { capacity: { vcpus: 2, memory: '4Gi', disk: '20Gi' }, ready: false });
  await registerHost(client, 'e', { capacity: { vcpus: 2, memory: '4Gi', disk: '20Gi' }, unschedulable: true, labels: { 'kova.dev/zone': 'z2' } });
  sched = await startScheduler({ client, signal: stop.signal, workers: 8, log: () => undefined });
});

after(async () => {
  stop.abort();
  await sched?.done;
  client?.close();
  await kova?.stop();
});

test('places instances on ready, uncordoned hosts; pins and zones are honoured', async () => {
  await Promise.all(Array.from({ length: 6 }, (_, i) => client.create(INSTANCES, instance('sched', `s${i}`, { flavor: 'm1.small' }))));
  const placed = await Promise.all(Array.from({ length: 6 }, (_, i) => boundHost('sched', `s${i}`)));
  await client.create(INSTANCES, instance('sched', 'pinned', { flavor: 'm1.small', hostName: 'b' }));
  await client.create(INSTANCES, instance('sched', 'explicit', { resources: { vcpus: 1, memory: '256Mi', disk: '1Gi' }, nodeSelector: { 'kova.dev/zone': 'z1' } }));
  for (const h of placed) assert.ok(['a', 'b', 'c'].includes(h), `placed on ${h}`);
  // spread: six small instances over three equal hosts go two per host.
  assert.deepEqual(placed.slice().sort(), ['a', 'a', 'b', 'b', 'c', 'c']);
  assert.equal(await boundHost('sched', 'pinned'), 'b');
  assert.ok(['a', 'b', 'c'].includes(await boundHost('sched', 'explicit')));
  const s0 = (await client.get(INSTANCES, 'sched', 's0'))!;
  assert.equal((s0.status as { phase?: string }).phase, 'Provisioning');
  assert.equal(scheduledCond(s0)?.status, 'True');
  const events = await eventually(async () => {
    const { items } = await client.list(EVENTS, 'sched', { fieldSelector: 'involvedObject.name=s0' });
    return items.find((e) => e.reason === 'Scheduled');
  }, 10_000, 'Scheduled event');
  assert.equal(events.message, `Successfully assigned sched/s0 to ${placed[0]}`);
  assert.equal((events.source as { component?: string }).component, 'kova-scheduler');
});

test('unschedulable: exact message and event; placed once a host is uncordoned', async () => {
  await client.create(INSTANCES, instance('sched', 'big', { flavor: 'm1.big' }));
  await unschedulableMessage('sched', 'big', '0/5 hosts available: 3 insufficient memory, 1 not ready, 1 unschedulable');
  const ev = await eventually(async () => {
    const { items } = await client.list(EVENTS, 'sched', { fieldSelector: 'involvedObject.name=big' });
    return items.find((e) => e.reason === 'FailedScheduling');
  }, 10_000, 'FailedScheduling event');
  assert.equal(ev.message, '0/5 hosts available: 3 insufficient memory, 1 not ready, 1 unschedulable');
  assert.equal(ev.type, 'Warning');
  // A pinned instance on a host without room says so per host.
  await client.create(INSTANCES, instance('sched', 'pinned-big', { flavor: 'm1.big', hostName: 'a' }));
  await unschedulableMessage('sched', 'pinned-big', "0/5 hosts available: 2 didn't match requested host, 1 insufficient memory, 1 not ready, 1 unschedulable");
  // A zone nobody has.
  await client.create(INSTANCES, instance('sched', 'zoned', { flavor: 'm1.small', nodeSelector: { 'kova.dev/zone': 'z9' } }));
  await unschedulableMessage('sched', 'zoned', "0/5 hosts available: 3 didn't match availability zone, 1 not ready, 1 unschedulable");
  // Uncordoning e re-queues the waiting instances; big fits there (6Gi).
  await client.mergePatch(HOSTS, undefined, 'e', { spec: { unschedulable: false } });
  assert.equal(await boundHost('sched', 'big'), 'e');
  await unschedulableMessage('sched', 'zoned', "0/5 hosts available: 4 didn't match availability zone, 1 not ready");
  // Cordoned again: new instances avoid it even though it has the most free memory.
  await client.mergePatch(HOSTS, undefined, 'e', { spec: { unschedulable: true } });
  await eventually(() => sched.cache.get('e')?.unschedulable, 5_000, 'cordon seen');
  await client.create(INSTANCES, instance('sched', 'after-cordon', { flavor: 'm1.small' }));
  assert.ok(['a', 'b', 'c'].includes(await boundHost('sched', 'after-cordon')));
});

test('a missing flavor waits with FlavorNotFound and is placed once the flavor exists', async () => {
  await client.create(INSTANCES, instance('sched', 'later', { flavor: 'm1.later' }));
  await eventually(async () => {
    const c = scheduledCond(await client.get(INSTANCES, 'sched', 'later'));
    return c?.status === 'False' && c.reason === 'FlavorNotFound' && c.message === 'flavor "m1.later" not found';
  }, 10_000, 'FlavorNotFound');
  await client.create(FLAVORS, { metadata: { name: 'm1.later' }, spec: { vcpus: 1, memory: '128Mi', disk: '1Gi' } });
  assert.ok(['a', 'b', 'c'].includes(await boundHost('sched', 'later')));
});

test('30 concurrent creates against one small host never overbook it', async () => {
  // 3Gi allocatable memory / 512Mi = 6 instances.
  await registerHost(client, 'tiny', { capacity: { vcpus: 1, memory: '2Gi', disk: '20Gi' }, labels: { pool: 'tiny' } });
  await eventually(() => sched.cache.get('tiny'), 5_000, 'tiny in the cache');
  await Promise.all(Array.from({ length: 30 }, (_, i) => client.create(INSTANCES, instance('burst', `b${i}`, { flavor: 'm1.small', nodeSelector: { pool: 'tiny' } }))));
  await eventually(async () => {
    const { items } = await client.list(INSTANCES, 'burst');
    const bound = items.filter((o) => hostNameOf(o)).length;
    const waiting = items.filter((o) => scheduledCond(o)?.reason === 'Unschedulable').length;
    return bound === 6 && waiting === 24;
  }, 20_000, '6 bound, 24 unschedulable');
  assert.equal(await assertNotOverbooked('tiny', { vcpus: 1, memoryBytes: 512 * 1024 ** 2, diskBytes: 1024 ** 3 }), 6);
  const waitingOne = (await client.list(INSTANCES, 'burst')).items.find((o) => !hostNameOf(o))!.metadata.name!;
  await unschedulableMessage('burst', waitingOne, "0/6 hosts available: 3 didn't match node selector, 1 insufficient memory, 1 not ready, 1 unschedulable");
  // Deleting bound instances frees nothing until the allocation is released, which the host
  // controller does; here a bigger host is a host change that lets the rest in.
  await client.patchStatus(HOSTS, undefined, 'tiny', { status: { allocatable: { vcpus: 16, memory: '6Gi', disk: '20Gi' } } });
  await eventually(async () => (await client.list(INSTANCES, 'burst', { fieldSelector: 'status.hostName=tiny' })).items.length === 12, 15_000, '12 bound after growing');
  assert.equal(await assertNotOverbooked('tiny', { vcpus: 1, memoryBytes: 512 * 1024 ** 2, diskBytes: 1024 ** 3 }), 12);
});

test('two schedulers at once never overbook', async (t) => {
  const second = new AbortController();
  const client2 = KovaClient.fromFile(kova.kubeconfig);
  // One spreads, one packs: for the same instance they pick different hosts, and each fills
  // hosts the other still thinks have room; both must lose such races gracefully.
  const s2 = await startScheduler({ client: client2, signal: second.signal, workers: 8, weigher: 'pack', log: () => undefined });
  const before = { ...sched.stats };
  try {
    // Each host: 2Gi × 1.5 = 3Gi → 6 × 512Mi; 12 slots in all for 40 instances.
    await registerHost(client, 'duo-1', { capacity: { vcpus: 1, memory: '2Gi', disk: '20Gi' }, labels: { pool: 'duo' } });
    await registerHost(client, 'duo-2', { capacity: { vcpus: 1, memory: '2Gi', disk: '20Gi' }, labels: { pool: 'duo' } });
    await eventually(() => sched.cache.get('duo-2') && s2.cache.get('duo-2'), 5_000, 'duo hosts in both caches');
    await Promise.all(Array.from({ length: 40 }, (_, i) => client.create(INSTANCES, instance('duo', `d${i}`, { flavor: 'm1.small', nodeSelector: { pool: 'duo' } }))));
    await eventually(async () => {
      const { items } = await client.list(INSTANCES, 'duo');
      return items.filter((o) => hostNameOf(o)).length === 12 && items.filter((o) => scheduledCond(o)?.reason === 'Unschedulable').length === 28;
    }, 20_000, '12 bound, 28 unschedulable');
    const req = { vcpus: 1, memoryBytes: 512 * 1024 ** 2, diskBytes: 1024 ** 3 };
    assert.equal((await assertNotOverbooked('duo-1', req)) + (await assertNotOverbooked('duo-2', req)), 12);
    // Both took part.
    assert.ok(sched.stats.bound > before.bound && s2.stats.bound > 0, `bound: ${sched.stats.bound - before.bound} and ${s2.stats.bound}`);
    t.diagnostic(`scheduler 1: ${JSON.stringify(sched.stats)}; scheduler 2: ${JSON.stringify(s2.stats)}`);
  } finally {
    second.abort();
    await s2.done;
    client2.close();
  }
});

test('a host that refuses the binding is skipped and the instance placed elsewhere at once', async () => {
  // "liar" reports nothing allocated but its allocations fill it: the scheduler's view says
  // 12Gi free, the server's transaction says none, as with a stale cache.
  await registerHost(client, 'liar', { capacity: { vcpus: 4, memory: '8Gi', disk: '20Gi' }, labels: { pool: 'retry' } });
  await client.patchStatus(HOSTS, undefined, 'liar', {
    status: { allocations: [{ uid: 'ghost', instance: 'nowhere/ghost', vcpus: 1, memory: '12Gi', disk: '1Gi' }], allocated: { vcpus: 0, memory: '0', disk: '0' } },
  });
  await registerHost(client, 'honest', { capacity: { vcpus: 1, memory: '2Gi', disk: '20Gi' }, labels: { pool: 'retry' } });
  await eventually(() => sched.cache.get('honest') && sched.cache.get('liar')?.allocationUids.has('ghost'), 5_000, 'retry hosts in the cache');
  const conflicts = sched.stats.bindConflicts;
  await client.create(INSTANCES, instance('sched', 'retry-small', { flavor: 'm1.small', nodeSelector: { pool: 'retry' } }));
  assert.equal(await boundHost('sched', 'retry-small'), 'honest');
  assert.ok(sched.stats.bindConflicts > conflicts, 'the liar refused first');
  // Nothing fits: the refusing host is counted under the server's reason.
  await client.create(INSTANCES, instance('sched', 'retry-big', { flavor: 'm1.big', nodeSelector: { pool: 'retry' } }));
  await unschedulableMessage('sched', 'retry-big', "0/10 hosts available: 6 didn't match node selector, 2 insufficient memory, 1 not ready, 1 unschedulable");
});
