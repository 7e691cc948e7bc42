import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DomainNotFound, DriverError, PowerState } from './driver.js';
import type { DomainEvent, DomainSpec } from './driver.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSimState, SimDriver } from './sim-driver.js';
import { ManualClock } from '../testing/manual-clock.js';

const GiB = 2 ** 30;

function spec(name: string, over: Partial<DomainSpec> = {}): DomainSpec {
  return { instanceKey: `demo/${name}`, instanceUID: `uid-${name}`, name: `kova-demo.${name}`, vcpus: 1, memoryBytes: GiB, diskBytes: 2 * GiB, image: 'demo/tiny', networks: [], ...over };
}

function fast(): SimDriver {
  return new SimDriver({ spawnMs: 1, stopMs: 1, rebootMs: 1 });
}

test('hostInfo comes from the preset', async () => {
  assert.deepEqual(await new SimDriver().hostInfo(), { vcpus: 8, memoryBytes: 32 * GiB, diskBytes: 500 * GiB, hypervisor: 'sim', architecture: 'x86_64' });
  const d = new SimDriver({ preset: { vcpus: 2, memory: '4Gi', disk: '10Gi' } });
  assert.equal((await d.hostInfo()).memoryBytes, 4 * GiB);
  assert.equal((await new SimDriver({ preset: 'large' }).hostInfo()).vcpus, 64);
});

test('spawn ends Running, takes spawnMs and reports metadata', async () => {
  const d = new SimDriver({ spawnMs: 40 });
  const events: DomainEvent[] = [];
  d.onEvent((e) => events.push(e));
  const t0 = Date.now();
  const info = await d.spawn(spec('web'));
  assert.ok(Date.now() - t0 >= 35, 'spawn waited');
  assert.equal(info.state, PowerState.Running);
  assert.equal(info.managedByKova, true);
  assert.equal(info.instanceKey, 'demo/web');
  assert.equal(info.instanceUID, 'uid-web');
  assert.match(info.uuid, /^[0-9a-f-]{36}$/);
  assert.deepEqual(await d.getInfo('kova-demo.web'), info);
  assert.deepEqual((await d.listDomains()).map((x) => x.id), ['kova-demo.web']);
  assert.deepEqual(events.map((e) => [e.reason, e.state, e.instanceKey]), [['Started', 'Running', 'demo/web']]);
});

test('spawn of an existing name throws and leaves the original alone', async () => {
  const d = fast();
  const first = await d.spawn(spec('web'));
  await assert.rejects(d.spawn(spec('web')), (e: Error) => e instanceof DriverError && /already exists/.test(e.message));
  assert.equal((await d.getInfo('kova-demo.web')).uuid, first.uuid);
});

test('a failed spawn leaves nothing behind and only the next spawn fails', async () => {
  const d = fast();
  d.failNextSpawn('no space left on device');
  await assert.rejects(d.spawn(spec('web')), (e: Error) => e instanceof DriverError && e.message === 'no space left on device');
  assert.deepEqual(await d.listDomains(), []);
  assert.equal(d.usage().memoryBytes, 0);
  assert.equal((await d.spawn(spec('web'))).state, PowerState.Running);
});

test('setFault fails every call of an operation until cleared; calls are counted', async () => {
  const d = new SimDriver({ spawnMs: 1, stopMs: 1 });
  d.setFault('spawn', 'host full');
  for (let i = 0; i < 3; i++) await assert.rejects(d.spawn(spec(`f${i}`)), /host full/);
  assert.equal(d.usage().domains, 0, 'nothing left behind');
  d.setFault('spawn', undefined);
  await d.spawn(spec('ok'));
  d.setFault('powerOff', 'stuck');
  await assert.rejects(d.powerOff('kova-demo.ok', 10), (e: unknown) => e instanceof DriverError && /stuck/.test((e as Error).message));
  assert.equal((await d.getInfo('kova-demo.ok')).state, PowerState.Running);
  assert.deepEqual(d.calls, { spawn: 4, destroy: 0, powerOn: 0, powerOff: 1, reboot: 0, pause: 0, unpause: 0 });
});

test('every operation takes a fault: destroy, pause, unpause, power and reboot fail and change nothing', async () => {
  const d = fast();
  await d.spawn(spec('web'));
  const id = 'kova-demo.web';
  const ops: Array<[string, () => Promise<unknown>]> = [
    ['destroy', () => d.destroy(id)],
    ['pause', () => d.pause(id)],
    ['unpause', () => d.unpause(id)],
    ['powerOn', () => d.powerOn(id)],
    ['powerOff', () => d.powerOff(id, 10)],
    ['reboot', () => d.reboot(id)],
  ];
  for (const [op, call] of ops) {
    d.setFault(op, `${op} refused`);
    await assert.rejects(call(), (e: unknown) => e instanceof DriverError && (e as Error).message === `${op} refused`, op);
    d.setFault(op, undefined);
    assert.equal((await d.getInfo(id)).state, PowerState.Running, `${op} fault changed nothing`);
    assert.equal(d.calls[op], 1, `${op} counted`);
  }
  await d.pause(id);
  assert.equal((await d.getInfo(id)).state, PowerState.Paused, 'cleared faults: operations work again');
});

test('operations added later get faults through the same hook', async () => {
  class WithAttach extends SimDriver {
    async attach(): Promise<void> {
      this.operation('attach');
    }
  }
  const d = new WithAttach();
  await d.attach();
  d.setFault('attach', 'no more PCI slots');
  await assert.rejects(d.attach(), /no more PCI slots/);
  assert.equal(d.calls.attach, 2);
});

test('delays run on the injected clock: nothing happens until it advances', async () => {
  const clock = new ManualClock();
  const d = new SimDriver({ spawnMs: 50, stopMs: 20, clock });
  let done = false;
  const spawned = d.spawn(spec('web')).then((info) => ((done = true), info));
  await new Promise((r) => setImmediate(r));
  assert.equal(done, false, 'still booting');
  assert.equal((await d.getInfo('kova-demo.web')).state, PowerState.NoState);
  clock.advance(49);
  await new Promise((r) => setImmediate(r));
  assert.equal(done, false, 'not before spawnMs');
  clock.advance(1);
  assert.equal((await spawned).state, PowerState.Running);
  const off = d.powerOff('kova-demo.web', 60_000);
  await new Promise((r) => setImmediate(r));
  clock.advance(20);
  await off;
  assert.equal((await d.getInfo('kova-demo.web')).state, PowerState.Shutdown);
});

test('spawn refuses invalid specs and claims beyond capacity × overcommit', async () => {
  const d = new SimDriver({ spawnMs: 0, preset: { vcpus: 2, memory: '2Gi', disk: '10Gi' } });
  await assert.rejects(d.spawn(spec('a', { vcpus: 0 })), DriverError);
  await d.spawn(spec('a', { memoryBytes: 2 * GiB, diskBytes: 5 * GiB }));
  // 2Gi × 1.5 = 3Gi allowed in total.
  await assert.rejects(d.spawn(spec('b', { memoryBytes: 2 * GiB, diskBytes: GiB })), /not enough memory/);
  await assert.rejects(d.spawn(spec('b', { memoryBytes: GiB / 2, diskBytes: 6 * GiB })), /not enough disk/);
  await d.spawn(spec('b', { memoryBytes: GiB, diskBytes: 5 * GiB }));
  assert.deepEqual(d.usage(), { domains: 2, vcpus: 2, memoryBytes: 3 * GiB, diskBytes: 10 * GiB });
  await d.destroy('kova-demo.a');
  assert.equal(d.usage().memoryBytes, GiB, 'destroy releases the claim');
});

test('destroy succeeds when already gone; other calls throw DomainNotFound', async () => {
  const d = fast();
  await d.destroy('nope');
  for (const call of [() => d.getInfo('nope'), () => d.powerOn('nope'), () => d.powerOff('nope', 10), () => d.reboot('nope'), () => d.pause('nope'), () => d.unpause('nope')]) {
    await assert.rejects(call(), DomainNotFound);
  }
  assert.throws(() => d.crash('nope'), DomainNotFound);
});

test('destroy during spawn makes the spawn fail cleanly', async () => {
  const d = new SimDriver({ spawnMs: 30 });
  const p = d.spawn(spec('web'));
  assert.equal((await d.getInfo('kova-demo.web')).state, PowerState.NoState, 'visible while building');
  await d.destroy('kova-demo.web');
  await assert.rejects(p, /destroyed while it was being spawned/);
  assert.deepEqual(await d.listDomains(), []);
});

test('power cycle: off, on, pause, unpause, reboot from any state', async () => {
  const d = fast();
  const events: string[] = [];
  d.onEvent((e) => events.push(e.reason));
  const id = (await d.spawn(spec('web'))).id;
  await d.powerOff(id, 1000);
  assert.equal((await d.getInfo(id)).state, PowerState.Shutdown);
  await d.powerOff(id, 1000); // no-op when off
  await assert.rejects(d.pause(id), /not Running/);
  await assert.rejects(d.unpause(id), /not Paused/);
  await d.powerOn(id);
  assert.equal((await d.getInfo(id)).state, PowerState.Running);
  await d.pause(id);
  await d.pause(id);
  assert.equal((await d.getInfo(id)).state, PowerState.Paused);
  await d.reboot(id);
  assert.equal((await d.getInfo(id)).state, PowerState.Running);
  await d.pause(id);
  await d.unpause(id);
  await d.unpause(id);
  assert.equal((await d.getInfo(id)).state, PowerState.Running);
  await d.powerOff(id, 1000);
  await d.reboot(id);
  assert.equal((await d.getInfo(id)).state, PowerState.Running);
  assert.deepEqual(events, ['Started', 'Stopped', 'Started', 'Paused', 'Rebooted', 'Paused', 'Resumed', 'Stopped', 'Rebooted']);
});

test('powerOff forces the guest off after its timeout', async () => {
  const d = new SimDriver({ spawnMs: 0, stopMs: 5_000 });
  const id = (await d.spawn(spec('web'))).id;
  const t0 = Date.now();
  await d.powerOff(id, 20);
  assert.ok(Date.now() - t0 < 1_000);
  assert.equal((await d.getInfo(id)).state, PowerState.Shutdown);
});

test('crash and guest shutdown change state and emit events; powerOn recovers', async () => {
  const d = fast();
  const events: DomainEvent[] = [];
  d.onEvent((e) => events.push(e));
  const a = (await d.spawn(spec('a'))).id;
  const b = (await d.spawn(spec('b'))).id;
  d.crash(a);
  d.shutdownFromGuest(b);
  assert.equal((await d.getInfo(a)).state, PowerState.Crashed);
  assert.equal((await d.getInfo(b)).state, PowerState.Shutdown);
  assert.throws(() => d.crash(a), DriverError);
  assert.deepEqual(events.slice(2).map((e) => [e.id, e.reason, e.state]), [
    [a, 'Crashed', 'Crashed'],
    [b, 'GuestShutdown', 'Shutdown'],
  ]);
  await d.powerOn(a);
  assert.equal((await d.getInfo(a)).state, PowerState.Running);
});

test('unsubscribe and close stop events; a throwing listener does not break the driver', async () => {
  const d = fast();
  let n = 0;
  d.onEvent(() => {
    throw new Error('listener bug');
  });
  const off = d.onEvent(() => n++);
  await d.spawn(spec('a'));
  off();
  await d.spawn(spec('b'));
  assert.equal(n, 1);
  d.onEvent(() => n++);
  await d.close();
  await d.spawn(spec('c'));
  assert.equal(n, 1);
  assert.equal((await d.listDomains()).length, 3, 'domains survive close');
});

test('foreign domains are listed as not managed by kova', async () => {
  const d = fast();
  d.addForeignDomain('someone-elses-vm');
  d.addForeignDomain('kova-demo.old', { instanceKey: 'demo/old', instanceUID: 'gone' });
  const list = await d.listDomains();
  assert.deepEqual(list.map((x) => [x.id, x.managedByKova, x.instanceKey]), [
    ['someone-elses-vm', false, undefined],
    ['kova-demo.old', true, 'demo/old'],
  ]);
});

test('many domains on one driver stay cheap', async () => {
  const d = new SimDriver({ spawnMs: 20, preset: 'large' });
  const t0 = Date.now();
  await Promise.all(Array.from({ length: 500 }, (_, i) => d.spawn(spec(`vm-${i}`, { memoryBytes: 2 ** 20, diskBytes: 0 }))));
  assert.equal(d.usage().domains, 500);
  assert.ok(Date.now() - t0 < 2_000, `500 concurrent spawns took ${Date.now() - t0} ms`);
});

test('with a state file, domains outlive the driver (an agent restart) and a new driver reads them', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kova-sim-state-'));
  try {
    const file = join(dir, 'sim', 'h1.json');
    const d1 = new SimDriver({ spawnMs: 1, stopMs: 1, stateFile: file });
    const a = await d1.spawn(spec('a'));
    await d1.spawn(spec('b'));
    await d1.spawn(spec('c'));
    await d1.powerOff('kova-demo.b', 1000);
    await d1.destroy('kova-demo.c');
    // The control: a driver without the file starts empty.
    assert.equal((await new SimDriver().listDomains()).length, 0);
    const d2 = new SimDriver({ stateFile: file });
    const got = (await d2.listDomains()).map((x) => [x.id, x.state, x.uuid, x.instanceKey]);
    assert.deepEqual(got, [['kova-demo.a', PowerState.Running, a.uuid, 'demo/a'], ['kova-demo.b', PowerState.Shutdown, (await d1.getInfo('kova-demo.b')).uuid, 'demo/b']]);
    assert.deepEqual(readSimState(file).map((x) => x.name), ['kova-demo.a', 'kova-demo.b']);
    await d2.destroy('kova-demo.a');
    assert.deepEqual(readSimState(file).map((x) => x.name), ['kova-demo.b']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
