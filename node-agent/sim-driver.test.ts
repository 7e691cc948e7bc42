import assert from 'node:assert/strict';
import { test } from 'node:test';
import { randomUUID } from 'node:crypto';
import { DomainNotFound, DriverError, InvalidSpec, PowerState } from './driver.js';
import type { DomainEvent, DomainSpec, SnapshotDisk, StorageBackend, VolumeAttachSpec, VolumeContent, VolumeDisk } from './driver.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSimState, SIM_OPERATIONS, SimDriver } from './sim-driver.js';
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
  assert.deepEqual({ ...d.calls }, { ...Object.fromEntries(SIM_OPERATIONS.map((op) => [op, 0])), spawn: 4, powerOff: 1 });
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

// ---- volumes ----

const MiB = 2 ** 20;
const local = { type: 'local' } as const;
/** A shared backend path of its own: the shared store is process-wide. */
const sharedPath = () => `/srv/kova-test/${randomUUID()}`;

function vol(name: string, backend: StorageBackend = local): VolumeDisk {
  return { uid: randomUUID(), key: `demo/${name}`, backend };
}

function snapOf(name: string, backend: StorageBackend = local): SnapshotDisk {
  return { uid: randomUUID(), key: `demo/${name}`, backend };
}

function attach(disk: VolumeDisk, over: Partial<VolumeAttachSpec> = {}): VolumeAttachSpec {
  return { disk, serial: disk.uid.slice(0, 20), ...over };
}

const tick = () => new Promise((r) => setImmediate(r));

test('createVolume: blank, image, snapshot and volume contents, named like files of the backend', async () => {
  const d = new SimDriver({ id: 'h1' });
  const blank = vol('blank');
  assert.deepEqual(await d.createVolume(blank, 64 * MiB, { type: 'blank' }), { path: `sim://h1/volumes/${blank.uid}.qcow2`, virtualBytes: 64 * MiB, allocatedBytes: 0 });
  assert.equal(d.simRead(blank), '');
  const fromImage = vol('root');
  const info = await d.createVolume(fromImage, 2 * GiB, { type: 'image', path: '/var/lib/kova/images/abc', format: 'qcow2' });
  assert.equal(info.virtualBytes, 2 * GiB);
  assert.ok(info.allocatedBytes > 0 && info.allocatedBytes <= info.virtualBytes);
  assert.equal(d.simRead(fromImage), 'image:/var/lib/kova/images/abc');

  d.simWrite(blank, 'pattern-A', 4 * MiB);
  const clone = vol('clone');
  const c = await d.createVolume(clone, 128 * MiB, { type: 'volume', volume: blank });
  assert.deepEqual([c.virtualBytes, c.allocatedBytes, d.simRead(clone)], [128 * MiB, 4 * MiB, 'pattern-A'], 'a clone is as large as asked and holds the source');
  const snap = snapOf('s');
  assert.deepEqual(await d.snapshotVolume(blank, snap), { path: `sim://h1/snapshots/${snap.uid}.qcow2`, virtualBytes: 64 * MiB, allocatedBytes: 4 * MiB });
  d.simWrite(blank, 'pattern-B');
  const restored = vol('restored');
  assert.equal((await d.createVolume(restored, 64 * MiB, { type: 'snapshot', snapshot: snap })).virtualBytes, 64 * MiB);
  assert.equal(d.simRead(restored), 'pattern-A', 'the restore holds the data of snapshot time');
  assert.equal(d.simReadSnapshot(snap), 'pattern-A', 'writes after the snapshot are not in it');
  assert.equal(d.simRead(blank), 'pattern-B');
  assert.equal(d.simRead(clone), 'pattern-A', 'a clone is a copy, not a view');

  const path = sharedPath();
  const shared = vol('shared', { type: 'shared', path });
  assert.equal((await d.createVolume(shared, MiB, { type: 'blank' })).path, `${path}/volumes/${shared.uid}.qcow2`);
  const atRoot = vol('root-dir', { type: 'shared', path: '/' });
  assert.equal((await d.createVolume(atRoot, MiB, { type: 'blank' })).path, `/volumes/${atRoot.uid}.qcow2`);
  await d.deleteVolume(atRoot);
  assert.deepEqual(d.volumeUsage(), { volumes: 4, snapshots: 1, allocatedBytes: MiB + 4 * 4 * MiB + 'pattern-B'.length }, 'shared files are not the host\'s');
});

test('createVolume is idempotent: an existing volume comes back as it is, never overwritten', async () => {
  const d = new SimDriver();
  const v = vol('data');
  await d.createVolume(v, 64 * MiB, { type: 'blank' });
  d.simWrite(v, 'user data');
  const first = await d.volumeInfo(v);
  const src = vol('other');
  await d.createVolume(src, MiB, { type: 'image', path: 'demo/tiny', format: 'raw' });
  assert.deepEqual(await d.createVolume(v, 128 * MiB, { type: 'volume', volume: src }), first);
  assert.equal(d.simRead(v), 'user data');
  // Even when the source it was made from is gone meanwhile.
  await d.deleteVolume(src);
  assert.deepEqual(await d.createVolume(v, 64 * MiB, { type: 'volume', volume: src }), first);
});

test('createVolume refuses sources larger than the volume (InvalidSpec) and missing sources (DriverError, retryable)', async () => {
  const d = new SimDriver();
  const src = vol('src');
  await d.createVolume(src, 64 * MiB, { type: 'blank' });
  const snap = snapOf('s');
  await d.snapshotVolume(src, snap);
  const small = vol('small');
  await assert.rejects(d.createVolume(small, 32 * MiB, { type: 'volume', volume: src }), (e: Error) => e instanceof InvalidSpec && /cannot hold volume demo\/src/.test(e.message));
  await assert.rejects(d.createVolume(small, 32 * MiB, { type: 'snapshot', snapshot: snap }), InvalidSpec);
  assert.equal(await d.volumeInfo(small), undefined, 'nothing left behind');
  const missingVol = (e: Error) => e instanceof DriverError && !(e instanceof InvalidSpec) && /has no file/.test(e.message);
  await assert.rejects(d.createVolume(small, GiB, { type: 'volume', volume: vol('gone') }), missingVol);
  await assert.rejects(d.createVolume(small, GiB, { type: 'snapshot', snapshot: snapOf('gone') }), missingVol);
  // Another host's local files are not here.
  await assert.rejects(new SimDriver().createVolume(small, GiB, { type: 'volume', volume: src }), missingVol);
  await assert.rejects(d.createVolume(small, 0, { type: 'blank' }), InvalidSpec);
  await assert.rejects(d.createVolume(small, 1.5, { type: 'blank' }), InvalidSpec);
  await assert.rejects(d.createVolume(small, GiB, { type: 'image', path: '', format: 'raw' }), InvalidSpec);
  await assert.rejects(d.createVolume(small, GiB, { type: 'nfs' } as unknown as VolumeContent), InvalidSpec);
  assert.equal(await d.volumeInfo(small), undefined);
});

test('uids and shared paths are checked before they name a file (InvalidSpec)', async () => {
  const d = new SimDriver();
  const bad = (e: Error) => e instanceof InvalidSpec;
  for (const uid of ['', '../../etc/passwd', 'A1B2C3D4-0000-4000-8000-000000000000', `${randomUUID()}/x`, randomUUID().replace(/-/g, ''), ` ${randomUUID()}`]) {
    const disk = { uid, key: 'demo/bad', backend: local };
    await assert.rejects(d.createVolume(disk, MiB, { type: 'blank' }), bad, uid);
    await assert.rejects(d.volumeInfo(disk), bad, uid);
    await assert.rejects(d.deleteVolume(disk), bad, uid);
    await assert.rejects(d.snapshotInfo(disk), bad, uid);
  }
  // As the libvirt driver takes them: absolute and normalized, no control characters.
  for (const path of ['relative/dir', '//', '/srv/../etc', '/srv/./x', '/srv/x/', '/srv//x', '/srv/a\nb', '', 7 as unknown as string]) {
    const disk = vol('bad', { type: 'shared', path });
    await assert.rejects(d.createVolume(disk, MiB, { type: 'blank' }), bad, path);
    await assert.rejects(d.attachVolume('x', attach(disk)), bad, path);
  }
  await assert.rejects(d.createVolume(vol('bad', { type: 'ceph' } as unknown as StorageBackend), MiB, { type: 'blank' }), bad);
  await assert.rejects(d.createVolume(vol('ok'), MiB, { type: 'snapshot', snapshot: { uid: 'nope', key: 'demo/s', backend: local } }), bad);
  await assert.rejects(d.snapshotVolume(vol('v'), { uid: 'NOPE', key: 'demo/s', backend: local }), bad);
  assert.deepEqual(d.volumeUsage(), { volumes: 0, snapshots: 0, allocatedBytes: 0 });
});

test('a shared volume is one file for every sim host of the process; a local one is its host\'s', async () => {
  const a = new SimDriver({ id: 'a' });
  const b = new SimDriver({ id: 'b' });
  const backend = { type: 'shared', path: sharedPath() } as const;
  const v = vol('nfs', backend);
  const made = await a.createVolume(v, 64 * MiB, { type: 'blank' });
  assert.deepEqual(await b.volumeInfo(v), made);
  a.simWrite(v, 'written on a');
  assert.equal(b.simRead(v), 'written on a');
  await b.resizeVolume(v, 128 * MiB);
  assert.equal((await a.volumeInfo(v))?.virtualBytes, 128 * MiB);
  const snap = snapOf('nfs-snap', backend);
  await b.snapshotVolume(v, snap);
  assert.equal(a.simReadSnapshot(snap), 'written on a');
  // The same uid under another shared path is another file.
  assert.equal(await a.volumeInfo({ ...v, backend: { type: 'shared', path: sharedPath() } }), undefined);
  await a.deleteVolume(v);
  assert.equal(await b.volumeInfo(v), undefined);

  const l = vol('local');
  await a.createVolume(l, MiB, { type: 'blank' });
  assert.ok(await a.volumeInfo(l));
  assert.equal(await b.volumeInfo(l), undefined, 'another host does not see a local volume');
});

test('resizeVolume grows offline or online through a running domain that uses it, and never shrinks', async () => {
  const d = fast();
  const v = vol('data');
  await d.createVolume(v, 64 * MiB, { type: 'blank' });
  assert.equal((await d.resizeVolume(v, 96 * MiB)).virtualBytes, 96 * MiB);
  assert.equal((await d.resizeVolume(v, 32 * MiB)).virtualBytes, 96 * MiB, 'never shrinks');
  const id = (await d.spawn(spec('web', { volumes: [attach(v)] }))).id;
  assert.equal((await d.resizeVolume(v, 128 * MiB, id)).virtualBytes, 128 * MiB, 'online');
  assert.equal((await d.volumeInfo(v))?.virtualBytes, 128 * MiB);
  const other = vol('other');
  await d.createVolume(other, MiB, { type: 'blank' });
  await assert.rejects(d.resizeVolume(other, 2 * MiB, id), /does not use it/);
  await assert.rejects(d.resizeVolume(v, 256 * MiB, 'kova-demo.nope'), DomainNotFound);
  await d.powerOff(id, 1000);
  await assert.rejects(d.resizeVolume(v, 256 * MiB, id), (e: Error) => e instanceof DriverError && /Shutdown/.test(e.message));
  assert.equal((await d.resizeVolume(v, 256 * MiB)).virtualBytes, 256 * MiB, 'offline');
  await assert.rejects(d.resizeVolume(vol('gone'), GiB), (e: Error) => e instanceof DriverError && /has no file/.test(e.message));
  await assert.rejects(d.resizeVolume(v, -1), InvalidSpec);
});

test('snapshots: idempotent, outlive their volume, can be taken through a running domain, deleted idempotently', async () => {
  const d = fast();
  const v = vol('data');
  await d.createVolume(v, 64 * MiB, { type: 'blank' });
  d.simWrite(v, 'one');
  const s = snapOf('s1');
  const first = await d.snapshotVolume(v, s);
  d.simWrite(v, 'two');
  assert.deepEqual(await d.snapshotVolume(v, s), first, 'a complete snapshot is returned as it is');
  assert.equal(d.simReadSnapshot(s), 'one');
  assert.deepEqual(await d.snapshotInfo(s), first);
  const id = (await d.spawn(spec('web', { volumes: [attach(v)] }))).id;
  const live = snapOf('s2');
  await d.snapshotVolume(v, live, id);
  assert.equal(d.simReadSnapshot(live), 'two');
  await assert.rejects(d.snapshotVolume(v, snapOf('s3'), 'kova-demo.nope'), DomainNotFound);
  const other = vol('other');
  await d.createVolume(other, MiB, { type: 'blank' });
  await assert.rejects(d.snapshotVolume(other, snapOf('s4'), id), /does not use it/);
  await assert.rejects(d.snapshotVolume(vol('gone'), snapOf('s5')), (e: Error) => e instanceof DriverError && /has no file/.test(e.message));
  await d.destroy(id);
  await d.deleteVolume(v);
  assert.equal(d.simReadSnapshot(s), 'one', 'the snapshot outlives its volume');
  await d.deleteSnapshot(s);
  await d.deleteSnapshot(s);
  assert.equal(await d.snapshotInfo(s), undefined);
  assert.equal(d.volumeUsage().snapshots, 1);
});

test('attach and detach: devices from vdb (first free), idempotent by serial, hot plug or persistent when off', async () => {
  const d = fast();
  const [a, b, c] = [vol('a'), vol('b'), vol('c')];
  for (const v of [a, b, c]) await d.createVolume(v, MiB, { type: 'blank' });
  const id = (await d.spawn(spec('web'))).id;
  assert.deepEqual(await d.listVolumes(id), []);
  assert.deepEqual(await d.attachVolume(id, attach(a)), { serial: attach(a).serial, device: 'vdb' });
  assert.deepEqual(await d.attachVolume(id, attach(b)), { serial: attach(b).serial, device: 'vdc' });
  assert.deepEqual(await d.attachVolume(id, attach(a)), { serial: attach(a).serial, device: 'vdb' }, 'attached already: its device');
  await assert.rejects(d.attachVolume(id, attach(a, { serial: 'another-serial' })), /attached to domain kova-demo.web already/);
  assert.equal(await d.detachVolume(id, attach(a).serial), 'detached');
  assert.equal(await d.detachVolume(id, attach(a).serial), 'detached', 'idempotent');
  assert.equal(await d.detachVolume(id, 'never-attached'), 'detached');
  assert.equal((await d.attachVolume(id, attach(c))).device, 'vdb', 'the first free device');
  assert.deepEqual((await d.listVolumes(id)).map((x) => x.device), ['vdc', 'vdb']);
  await d.powerOff(id, 1000);
  assert.equal((await d.attachVolume(id, attach(a))).device, 'vdd', 'an off domain takes it in its definition');
  await d.powerOn(id);
  assert.deepEqual((await d.listVolumes(id)).map((x) => x.device), ['vdc', 'vdb', 'vdd']);
  await assert.rejects(d.attachVolume(id, attach(vol('gone'))), (e: Error) => e instanceof DriverError && /has no file/.test(e.message));
  await assert.rejects(d.attachVolume(id, attach(a, { serial: 'bad serial!' })), InvalidSpec);
  for (const call of [() => d.attachVolume('nope', attach(a)), () => d.detachVolume('nope', 'x'), () => d.listVolumes('nope')]) await assert.rejects(call(), DomainNotFound);
});

test('devices past vdz are named as libvirt names them', async () => {
  const d = new SimDriver({ spawnMs: 0, preset: 'large' });
  const id = (await d.spawn(spec('many'))).id;
  const devices: string[] = [];
  for (let i = 0; i < 28; i++) {
    const v = vol(`v${i}`);
    await d.createVolume(v, MiB, { type: 'blank' });
    devices.push((await d.attachVolume(id, attach(v))).device);
  }
  assert.deepEqual(devices.slice(0, 2), ['vdb', 'vdc']);
  assert.deepEqual(devices.slice(-4), ['vdz', 'vdaa', 'vdab', 'vdac']);
});

test('deleteVolume refuses while a domain of this host uses it, running or off; destroy keeps volumes', async () => {
  const d = fast();
  const v = vol('data');
  await d.createVolume(v, MiB, { type: 'blank' });
  await d.deleteVolume(vol('never-made'));
  const id = (await d.spawn(spec('web'))).id;
  await d.attachVolume(id, attach(v));
  await assert.rejects(d.deleteVolume(v), (e: Error) => e instanceof DriverError && /domain kova-demo.web on this host uses it/.test(e.message));
  await d.powerOff(id, 1000);
  await assert.rejects(d.deleteVolume(v), DriverError, 'its definition still uses it');
  await d.destroy(id);
  assert.ok(await d.volumeInfo(v), 'destroy keeps the volume');
  await d.deleteVolume(v);
  await d.deleteVolume(v);
  assert.equal(await d.volumeInfo(v), undefined);
});

test('QEMU\'s lock: a volume runs in one domain of any sim host unless shareable (or read-only everywhere)', async () => {
  const a = fast();
  const b = fast();
  const backend = { type: 'shared', path: sharedPath() } as const;
  const v = vol('nfs', backend);
  await a.createVolume(v, MiB, { type: 'blank' });
  const x = (await a.spawn(spec('x'))).id;
  const y = (await b.spawn(spec('y'))).id;
  await a.attachVolume(x, attach(v));
  const locked = (e: Error) => e instanceof DriverError && /"write" lock.*kova-demo.x/.test(e.message);
  await assert.rejects(b.attachVolume(y, attach(v)), locked);
  await assert.rejects(b.attachVolume(y, attach({ ...v, format: 'raw' }, { shareable: true })), locked, 'both must allow sharing');
  // libvirt refuses <shareable/> on qcow2: a shareable volume is raw (a multiAttach VolumeType's).
  await assert.rejects(b.attachVolume(y, attach(v, { shareable: true })), (e: Error) => e instanceof InvalidSpec && /shareable volume must be raw, not qcow2/.test(e.message));
  await assert.rejects(b.attachVolume(y, attach({ ...v, format: 'vmdk' as 'raw' })), (e: Error) => e instanceof InvalidSpec && /unsupported volume format "vmdk"/.test(e.message));
  assert.deepEqual(await b.listVolumes(y), [], 'a refused attach changes nothing');
  // A domain that is off holds no lock, but may not start while another uses the volume.
  await b.powerOff(y, 1000);
  await b.attachVolume(y, attach(v));
  await assert.rejects(b.powerOn(y), locked);
  await assert.rejects(b.reboot(y), locked);
  assert.equal((await b.getInfo(y)).state, PowerState.Shutdown);
  await a.powerOff(x, 1000);
  await b.powerOn(y);
  await assert.rejects(a.powerOn(x), /kova-demo.y/);
  await b.destroy(y);
  await a.powerOn(x);

  const m = { ...vol('multi', backend), format: 'raw' as const };
  await a.createVolume(m, MiB, { type: 'blank' });
  await a.attachVolume(x, attach(m, { shareable: true }));
  const z = (await b.spawn(spec('z', { volumes: [attach(m, { shareable: true })] }))).id;
  assert.equal((await b.listVolumes(z)).length, 1, 'shareable on both: both run it');
  const r = vol('ro', backend);
  await a.createVolume(r, MiB, { type: 'blank' });
  await a.attachVolume(x, attach(r, { readOnly: true }));
  await b.attachVolume(z, attach(r, { readOnly: true }));
  await assert.rejects(b.spawn(spec('w', { volumes: [attach(r)] })), locked, 'a writer is refused while readers run');
  assert.equal((await b.listDomains()).length, 1, 'the refused spawn left nothing');

  // On one host, two domains alike.
  const l = vol('local');
  await a.createVolume(l, MiB, { type: 'blank' });
  const p = (await a.spawn(spec('p', { volumes: [attach(l)] }))).id;
  const q = (await a.spawn(spec('q'))).id;
  await assert.rejects(a.attachVolume(q, attach(l)), /kova-demo.p/);
  await a.detachVolume(p, attach(l).serial);
  await a.attachVolume(q, attach(l));
});

test('detach with a guest that takes detachDelayMs: pending, then VolumeDetached on the event path', async () => {
  const clock = new ManualClock();
  const d = new SimDriver({ spawnMs: 0, detachDelayMs: 500, clock });
  const events: DomainEvent[] = [];
  d.onEvent((e) => events.push(e));
  const v = vol('data');
  await d.createVolume(v, MiB, { type: 'blank' });
  const id = (await d.spawn(spec('web', { volumes: [attach(v)] }))).id;
  const serial = attach(v).serial;
  assert.equal(await d.detachVolume(id, serial), 'pending');
  assert.deepEqual(await d.listVolumes(id), [{ serial, device: 'vdb', detaching: true }]);
  clock.advance(300);
  assert.equal(await d.detachVolume(id, serial), 'pending', 'asking again while the guest works changes nothing');
  await assert.rejects(d.deleteVolume(v), DriverError, 'still in use');
  clock.advance(200);
  const got = events.filter((e) => e.reason.startsWith('Volume'));
  assert.deepEqual(got.map((e) => [e.id, e.reason, e.serial, e.state, e.instanceKey]), [[id, 'VolumeDetached', serial, PowerState.Running, 'demo/web']], 'one event, after the delay');
  assert.equal(await d.detachVolume(id, serial), 'detached');
  assert.deepEqual(await d.listVolumes(id), []);
  await d.deleteVolume(v);
  d.setDetachDelay(0);
  const w = vol('w');
  await d.createVolume(w, MiB, { type: 'blank' });
  await d.attachVolume(id, attach(w));
  assert.equal(await d.detachVolume(id, attach(w).serial), 'detached', 'setDetachDelay(0): at once');
});

test('a guest that ignores a detach request keeps the disk until asked again; one that refuses reports VolumeDetachFailed', async () => {
  const clock = new ManualClock();
  const d = new SimDriver({ spawnMs: 0, detachDelayMs: 100, clock });
  const events: DomainEvent[] = [];
  d.onEvent((e) => events.push(e));
  const v = vol('data');
  await d.createVolume(v, MiB, { type: 'blank' });
  const id = (await d.spawn(spec('web', { volumes: [attach(v)] }))).id;
  const serial = attach(v).serial;

  d.failNextDetach('ignore');
  assert.equal(await d.detachVolume(id, serial), 'pending');
  clock.advance(60_000);
  assert.deepEqual(await d.listVolumes(id), [{ serial, device: 'vdb', detaching: true }], 'ignored: nothing happens');
  assert.equal(events.filter((e) => e.reason.startsWith('Volume')).length, 0);
  assert.equal(await d.detachVolume(id, serial), 'pending', 'asked again');
  clock.advance(100);
  assert.deepEqual(events.filter((e) => e.reason.startsWith('Volume')).map((e) => e.reason), ['VolumeDetached']);
  assert.equal(await d.detachVolume(id, serial), 'detached');

  events.length = 0;
  await d.attachVolume(id, attach(v));
  d.failNextDetach('refuse');
  assert.equal(await d.detachVolume(id, serial), 'pending');
  clock.advance(100);
  assert.deepEqual(events.map((e) => [e.reason, e.serial]), [['VolumeDetachFailed', serial]]);
  assert.deepEqual(await d.listVolumes(id), [{ serial, device: 'vdb' }], 'refused: attached, no longer detaching');
  assert.equal(await d.detachVolume(id, serial), 'pending', 'the caller asks again');
  clock.advance(100);
  assert.deepEqual(events.map((e) => e.reason), ['VolumeDetachFailed', 'VolumeDetached']);
  assert.deepEqual(await d.listVolumes(id), []);

  // With no delay a refusal still comes as an event, never as a 'detached'.
  const now = new SimDriver({ spawnMs: 0 });
  const seen: string[] = [];
  now.onEvent((e) => seen.push(e.reason));
  const nv = vol('now');
  await now.createVolume(nv, MiB, { type: 'blank' });
  const nid = (await now.spawn(spec('now', { volumes: [attach(nv)] }))).id;
  now.failNextDetach('refuse');
  assert.equal(await now.detachVolume(nid, attach(nv).serial), 'pending');
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(seen, ['Started', 'VolumeDetachFailed']);
  assert.equal(await now.detachVolume(nid, attach(nv).serial), 'detached');
});

test('an off domain detaches at once, and one that stops while releasing a disk loses it', async () => {
  const clock = new ManualClock();
  const d = new SimDriver({ spawnMs: 0, stopMs: 0, detachDelayMs: 1000, clock });
  const [a, b] = [vol('a'), vol('b')];
  for (const v of [a, b]) await d.createVolume(v, MiB, { type: 'blank' });
  const id = (await d.spawn(spec('web', { volumes: [attach(a), attach(b)] }))).id;
  d.failNextDetach('ignore');
  assert.equal(await d.detachVolume(id, attach(a).serial), 'pending');
  d.crash(id);
  assert.deepEqual((await d.listVolumes(id)).map((x) => x.device), ['vdc'], 'the pending one is gone with the guest');
  assert.equal(await d.detachVolume(id, attach(b).serial), 'detached', 'off: no guest to ask');
  await d.deleteVolume(a);
  await d.deleteVolume(b);
});

test('spawn attaches DomainSpec.volumes in order; without an image it boots from the bootOrder 1 volume', async () => {
  const d = fast();
  const [root, data1, data2] = [vol('root'), vol('d1'), vol('d2')];
  await d.createVolume(root, GiB, { type: 'image', path: 'demo/tiny', format: 'raw' });
  for (const v of [data1, data2]) await d.createVolume(v, MiB, { type: 'blank' });
  const withImage = (await d.spawn(spec('img', { volumes: [attach(data1), attach(data2, { readOnly: true })] }))).id;
  assert.deepEqual((await d.listVolumes(withImage)).map((x) => x.device), ['vdb', 'vdc']);
  await d.destroy(withImage);
  const bfv = (await d.spawn(spec('bfv', { image: undefined, volumes: [attach(data1), attach(root, { bootOrder: 1 })] }))).id;
  assert.deepEqual((await d.listVolumes(bfv)).map((x) => [x.serial, x.device]), [[attach(data1).serial, 'vdb'], [attach(root).serial, 'vda']]);
  assert.equal((await d.attachVolume(bfv, attach(data2))).device, 'vdc');

  const refused = async (s: DomainSpec, want: (e: Error) => boolean) => {
    await assert.rejects(d.spawn(s), want, s.name);
    await assert.rejects(d.getInfo(s.name), DomainNotFound, 'nothing left behind');
  };
  const invalid = (re: RegExp) => (e: Error) => e instanceof InvalidSpec && re.test(e.message);
  await refused(spec('none', { image: undefined }), invalid(/no image and no boot volume/));
  await refused(spec('none2', { image: undefined, volumes: [attach(data1)] }), invalid(/no boot volume/));
  await refused(spec('two', { image: undefined, volumes: [attach(data1, { bootOrder: 1 }), attach(data2, { bootOrder: 1 })] }), invalid(/more than one boot volume/));
  await refused(spec('gone', { image: undefined, volumes: [attach(vol('gone'), { bootOrder: 1 })] }), invalid(/boot volume demo\/gone/));
  await refused(spec('both', { volumes: [attach(data1, { bootOrder: 1 })] }), invalid(/a boot volume \(bootOrder\) and an image exclude each other/));
  await refused(spec('gone2', { volumes: [attach(vol('gone'))] }), (e) => e instanceof DriverError && !(e instanceof InvalidSpec) && /has no file/.test(e.message));
  // Checked before anything else (data1 is in use by bfv: a lock error would come next).
  await refused(spec('dup', { volumes: [attach(data1), attach(data1)] }), invalid(/two volumes with serial/));
  await refused(spec('dup2', { volumes: [attach(data1), attach(data1, { serial: 'other' })] }), invalid(/lists volume demo\/d1 twice/));
  await refused(spec('badserial', { volumes: [attach(data1, { serial: '' })] }), invalid(/serial/));
  await refused(spec('baduid', { volumes: [attach({ ...data1, uid: 'x' }, { serial: 'x' })] }), invalid(/invalid uid/));
  await refused(spec('locked', { volumes: [attach(data1)] }), (e) => e instanceof DriverError && /"write" lock.*kova-demo.bfv/.test(e.message));

  // A failed spawn lets go of its volumes, like a destroy.
  const spare = vol('spare');
  await d.createVolume(spare, MiB, { type: 'blank' });
  d.failNextSpawn('no space');
  await assert.rejects(d.spawn(spec('fails', { volumes: [attach(spare)] })), /no space/);
  await d.deleteVolume(spare);
  await d.destroy(bfv);
  assert.ok(await d.volumeInfo(root), 'destroy keeps the boot volume');
  await d.deleteVolume(root);
});

test('every volume operation takes a fault through the same hook: it fails, changes nothing, and is counted', async () => {
  const d = fast();
  const v = vol('data');
  await d.createVolume(v, 64 * MiB, { type: 'blank' });
  const id = (await d.spawn(spec('web'))).id;
  const s = snapOf('s');
  const nv = vol('new');
  const ops: Array<[string, () => Promise<unknown>]> = [
    ['createVolume', () => d.createVolume(nv, MiB, { type: 'blank' })],
    ['resizeVolume', () => d.resizeVolume(v, 128 * MiB)],
    ['snapshotVolume', () => d.snapshotVolume(v, s)],
    ['attachVolume', () => d.attachVolume(id, attach(v))],
    ['deleteVolume', () => d.deleteVolume(v)],
    ['volumeInfo', () => d.volumeInfo(v)],
    ['snapshotInfo', () => d.snapshotInfo(s)],
    ['deleteSnapshot', () => d.deleteSnapshot(s)],
    ['listVolumes', () => d.listVolumes(id)],
  ];
  for (const [op, call] of ops) {
    d.setFault(op, `${op} refused`);
    await assert.rejects(call(), (e: unknown) => e instanceof DriverError && (e as Error).message === `${op} refused`, op);
    d.setFault(op, undefined);
    assert.equal(d.calls[op], op === 'createVolume' ? 2 : 1, `${op} counted`);
  }
  assert.equal(await d.volumeInfo(nv), undefined);
  assert.equal((await d.volumeInfo(v))?.virtualBytes, 64 * MiB);
  assert.equal(await d.snapshotInfo(s), undefined);
  assert.deepEqual(await d.listVolumes(id), []);
  await d.attachVolume(id, attach(v));
  d.setFault('detachVolume', 'guest agent gone');
  await assert.rejects(d.detachVolume(id, attach(v).serial), /guest agent gone/);
  d.setFault('detachVolume', undefined);
  assert.deepEqual((await d.listVolumes(id)).map((x) => x.detaching), [undefined], 'a failed detach asked nothing');
  assert.equal(await d.detachVolume(id, attach(v).serial), 'detached');
});

test('volume operations take volumeMs and attachMs on the clock (default 0)', async () => {
  const clock = new ManualClock();
  const d = new SimDriver({ spawnMs: 0, volumeMs: 100, attachMs: 30, clock });
  const v = vol('data');
  let created = false;
  const p = d.createVolume(v, MiB, { type: 'blank' }).then(() => (created = true));
  await tick();
  assert.equal(created, false);
  assert.equal(await d.volumeInfo(v), undefined, 'no complete-looking file before it is done');
  // A second create meanwhile ends with the same one file.
  const again = d.createVolume(v, 2 * MiB, { type: 'blank' });
  clock.advance(100);
  await p;
  assert.equal((await again).virtualBytes, MiB);
  const id = (await d.spawn(spec('web'))).id;
  let attached = false;
  const a = d.attachVolume(id, attach(v)).then(() => (attached = true));
  await tick();
  assert.equal(attached, false);
  clock.advance(30);
  await a;
  const r = d.resizeVolume(v, 2 * MiB, id);
  await tick();
  assert.equal((await d.volumeInfo(v))?.virtualBytes, MiB);
  clock.advance(100);
  assert.equal((await r).virtualBytes, 2 * MiB);
  // Destroyed during a hot plug: the attach fails.
  const w = vol('w');
  const mk = d.createVolume(w, MiB, { type: 'blank' });
  clock.advance(100);
  await mk;
  const late = d.attachVolume(id, attach(w));
  await d.destroy(id);
  clock.advance(30);
  await assert.rejects(late, DomainNotFound);
  assert.equal((await new SimDriver().createVolume(vol('fast'), MiB, { type: 'blank' })).virtualBytes, MiB, 'no clock needed by default');
});

test('local volumes and snapshots take the host\'s disk; shared ones do not', async () => {
  const d = new SimDriver({ spawnMs: 0, preset: { vcpus: 1, memory: '1Gi', disk: 2.5 * MiB } });
  const a = vol('a');
  await d.createVolume(a, GiB, { type: 'image', path: 'demo/tiny', format: 'raw' });
  await d.snapshotVolume(a, snapOf('s'));
  await d.createVolume(vol('blank'), GiB, { type: 'blank' });
  await assert.rejects(d.createVolume(vol('b'), GiB, { type: 'image', path: 'demo/tiny', format: 'raw' }), /not enough disk on this host/);
  await d.createVolume(vol('c', { type: 'shared', path: sharedPath() }), GiB, { type: 'image', path: 'demo/tiny', format: 'raw' });
  await d.createVolume(vol('d'), MiB / 2, { type: 'image', path: 'demo/tiny', format: 'raw' });
  await assert.rejects(d.spawn(spec('web', { memoryBytes: MiB, diskBytes: 1 })), /not enough disk/);
  assert.equal(d.volumeUsage().allocatedBytes, 2.5 * MiB);
});

test('with a state file, local volumes, snapshots and attachments outlive the driver', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kova-sim-vol-state-'));
  try {
    const file = join(dir, 'h1.json');
    const d1 = new SimDriver({ spawnMs: 0, stopMs: 0, stateFile: file });
    const v = vol('data');
    const w = vol('other');
    await d1.createVolume(v, 64 * MiB, { type: 'blank' });
    await d1.createVolume(w, 64 * MiB, { type: 'blank' });
    d1.simWrite(v, 'kept');
    const s = snapOf('s');
    await d1.snapshotVolume(v, s);
    const id = (await d1.spawn(spec('web', { volumes: [attach(v)] }))).id;
    await d1.attachVolume(id, attach(w, { readOnly: true }));
    const d2 = new SimDriver({ stateFile: file });
    assert.equal(d2.id, d1.id, 'the same host names its files the same');
    assert.deepEqual(await d2.volumeInfo(v), await d1.volumeInfo(v));
    assert.equal(d2.simRead(v), 'kept');
    assert.equal(d2.simReadSnapshot(s), 'kept');
    assert.deepEqual(await d2.listVolumes(id), await d1.listVolumes(id));
    await assert.rejects(d2.deleteVolume(v), /uses it/, 'the restored domain holds its volume');
    assert.equal(await d2.detachVolume(id, attach(v).serial), 'detached');
    await d2.deleteVolume(v);
    const d3 = new SimDriver({ stateFile: file });
    assert.equal(await d3.volumeInfo(v), undefined);
    assert.deepEqual((await d3.listVolumes(id)).map((x) => x.device), ['vdc']);
    assert.deepEqual(readSimState(file).map((x) => x.name), [id], 'readSimState still lists the domains');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('10,000 volumes on one sim host stay cheap', async () => {
  const d = new SimDriver({ spawnMs: 0, preset: 'large' });
  const disks = Array.from({ length: 10_000 }, (_, i) => vol(`v${i}`));
  global.gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  const t0 = Date.now();
  await Promise.all(disks.map((v) => d.createVolume(v, GiB, { type: 'blank' })));
  const ms = Date.now() - t0;
  global.gc?.();
  const perVolume = (process.memoryUsage().heapUsed - heap0) / disks.length;
  assert.equal(d.volumeUsage().volumes, 10_000);
  assert.ok(ms < 3_000, `10,000 creates took ${ms} ms`);
  // Without --expose-gc the figure includes garbage: a loose bound (about 160 bytes with --expose-gc).
  assert.ok(perVolume < 2_000, `${Math.round(perVolume)} bytes per volume`);
  console.log(`# 10,000 sim volumes: ${ms} ms, ~${Math.round(perVolume)} bytes each`);
});
