// A multiAttach volume with real libvirt and the test guest (TCG unless KOVA_TEST_KVM=1): a raw
// file (libvirt refuses <shareable/> on qcow2) attached to two running guests at once, grown
// online in both, snapshotted online (a push backup: libvirt puts no overlay on a shareable
// disk), restored and cloned as raw copies, and booted from. The guests report their disks on
// the console (disk-probe.ts), so every step is checked from inside them.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { chmod, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { volumeSerial } from '../../api/kinds/volume.js';
import { DriverError, domainName, type DomainSpec, type SnapshotDisk, type StorageBackend, type VolumeDisk } from '../../node-agent/driver.js';
import { LibvirtDriver } from '../../node-agent/libvirt/libvirt-driver.js';
import { buildTestGuest, type TestGuest } from '../../guest/build.js';
import { diskProbeUserData, probedDisks, probePattern, type ProbedDisk } from './disk-probe.js';

const DISK_PROBE = diskProbeUserData({ write: true, intervalMs: 200 });
const run = promisify(execFile);
const GUEST_DIR = process.env.KOVA_TEST_GUEST_DIR ?? '/var/tmp/kova-test-guest';
const MiB = 1024 * 1024;

describe('slow: libvirt driver, a raw multiAttach volume in two guests', () => {
  const id = randomBytes(3).toString('hex');
  let guest: TestGuest;
  let stateDir: string;
  let sharedDir: string;
  let shared: StorageBackend;
  let driver: LibvirtDriver;
  const domains: string[] = [];

  const vol = (backend: StorageBackend = shared, format: 'raw' | 'qcow2' = 'raw'): VolumeDisk => {
    const uid = randomUUID();
    return { uid, key: `sharetest/v-${uid.slice(0, 8)}`, backend, format };
  };
  const snapOf = (): SnapshotDisk => {
    const uid = randomUUID();
    return { uid, key: `sharetest/s-${uid.slice(0, 8)}`, backend: shared };
  };
  const makeSpec = (name: string, over: Partial<DomainSpec> = {}): DomainSpec => {
    const uid = randomUUID();
    const d = domainName('sharetest', name, uid);
    domains.push(d);
    return { instanceKey: `sharetest/${name}`, instanceUID: uid, name: d, vcpus: 1, memoryBytes: 192 * MiB, diskBytes: 256 * MiB, networks: [], ...over };
  };
  const consoleText = (dom: string) => readFile(join(stateDir, 'domains', dom, 'console.log'), 'utf8').catch(() => '');
  const waitConsole = async (dom: string, ok: (log: string) => boolean, what: string, timeoutMs = 60_000) => {
    const until = Date.now() + timeoutMs;
    for (;;) {
      if (ok(await consoleText(dom))) return;
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}; console:\n${(await consoleText(dom)).slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const diskLine = (dom: string, ok: (d: ProbedDisk) => boolean, what: string) => waitConsole(dom, (log) => probedDisks(log).some(ok), what);
  const booted = (dom: string) => waitConsole(dom, (log) => /^KOVA-GUEST-BOOTED .*userdata=script:rc=0/m.test(log), `${dom} to boot`, 180_000);
  const rawHead = async (file: string, bytes: number) => {
    const out = join(stateDir, `head-${randomBytes(4).toString('hex')}.raw`);
    await run('qemu-img', ['dd', '-U', '-O', 'raw', `if=${file}`, `of=${out}`, 'bs=512', `count=${Math.ceil(bytes / 512)}`]);
    const b = await readFile(out);
    await rm(out, { force: true });
    return b.subarray(0, bytes).toString('latin1');
  };
  const info = async (file: string) => JSON.parse((await run('qemu-img', ['info', '-U', '--output=json', file])).stdout) as { format: string; 'virtual-size': number; 'actual-size': number; 'backing-filename'?: string };
  const virsh = (...args: string[]) => run('virsh', ['-q', '-c', 'qemu:///system', ...args]).then((r) => r.stdout);

  before(async () => {
    guest = await buildTestGuest({ outDir: GUEST_DIR });
    stateDir = await mkdtemp('/var/tmp/kova-shvol-');
    sharedDir = await mkdtemp('/var/tmp/kova-shvol-nfs-');
    await chmod(sharedDir, 0o711);
    shared = { type: 'shared', path: sharedDir };
    v = { uid: vUID, key: 'sharetest/data', backend: shared, format: 'raw' };
    driver = new LibvirtDriver({ stateDir, kvm: process.env.KOVA_TEST_KVM === '1' });
    await driver.init();
  });

  after(async () => {
    for (const d of domains) await driver?.destroy(d).catch(() => {});
    await driver?.close();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
    if (sharedDir) await rm(sharedDir, { recursive: true, force: true });
  });

  let v: VolumeDisk; // on the shared backend, made in before()
  const vUID = randomUUID();
  const serial = volumeSerial(vUID);
  const mark = probePattern(serial);
  let a: string;
  let b: string;

  it('creates a sparse raw file named <uid>.raw', async () => {
    const made = await driver.createVolume(v, 64 * MiB, { type: 'blank' });
    assert.equal(made.path, join(sharedDir, 'volumes', `${v.uid}.raw`));
    const i = await info(made.path);
    assert.equal(i.format, 'raw');
    assert.equal(i['virtual-size'], 64 * MiB);
    assert.ok(i['actual-size'] < MiB, `sparse: ${i['actual-size']} bytes allocated`);
    assert.deepEqual(await driver.createVolume(v, 128 * MiB, { type: 'blank' }), made, 'idempotent');
  });

  it('attaches it to two running guests at once: one writes, the other reads what it wrote', async () => {
    const [sa, sb] = [makeSpec(`a-${id}`, { image: guest.imagePath, userData: DISK_PROBE }), makeSpec(`b-${id}`, { image: guest.imagePath, userData: DISK_PROBE })];
    [a, b] = [sa.name, sb.name];
    await Promise.all([driver.spawn(sa), driver.spawn(sb)]);
    await Promise.all([booted(a), booted(b)]);
    assert.deepEqual(await driver.attachVolume(a, { disk: v, serial, shareable: true }), { serial, device: 'vdb' });
    await diskLine(a, (d) => d.serial === serial && d.head === mark, 'guest a to write its pattern');
    assert.equal(await rawHead(join(sharedDir, 'volumes', `${v.uid}.raw`), mark.length), mark, 'written through to the file (cache=none)');
    // b finds the first sector written already, so it does not write: it reports what a wrote.
    assert.deepEqual(await driver.attachVolume(b, { disk: v, serial, shareable: true }), { serial, device: 'vdb' });
    await diskLine(b, (d) => d.serial === serial && d.sectors === (64 * MiB) / 512 && d.head === mark, 'guest b to read guest a\'s pattern');
    assert.doesNotMatch(await consoleText(b), new RegExp(`KOVA-DISK dev=vdb serial=${serial} size=\\d+ head=\\s`), 'b never saw it blank');
    for (const d of [a, b]) assert.match(await virsh('dumpxml', d), /<driver name='qemu' type='raw' cache='none'[^>]*\/>\s*<source file='[^']+\.raw'[^>]*\/>[\s\S]*?<shareable\/>/);
  });

  it('grows it online: both guests see the new size', async () => {
    const grown = await driver.resizeVolume(v, 96 * MiB, a);
    assert.equal(grown.virtualBytes, 96 * MiB);
    assert.equal((await info(grown.path)).format, 'raw');
    await diskLine(a, (d) => d.serial === serial && d.sectors === (96 * MiB) / 512, 'guest a to see 96 MiB');
    await diskLine(b, (d) => d.serial === serial && d.sectors === (96 * MiB) / 512, 'guest b to see 96 MiB');
    assert.equal((await driver.resizeVolume(v, 64 * MiB, a)).virtualBytes, 96 * MiB, 'never shrinks');
  });

  it('refuses an online snapshot while a second guest writes it; takes it (push backup) once one guest has it', async (t) => {
    const snap = snapOf();
    await assert.rejects(driver.snapshotVolume(v, snap, a), (e: unknown) => e instanceof DriverError && /another domain writes the same volume/.test((e as Error).message));
    assert.equal(await driver.snapshotInfo(snap), undefined, 'no snapshot file');
    assert.deepEqual((await readdir(join(sharedDir, 'snapshots'))).filter((f) => f.includes(snap.uid)), [], 'nor a temporary one');
    // b releases it (the guest answers the unplug request).
    const until = Date.now() + 60_000;
    while ((await driver.detachVolume(b, serial)) !== 'detached') {
      if (Date.now() > until) throw new Error('guest b did not release the volume');
      await new Promise((r) => setTimeout(r, 500));
    }
    const t0 = Date.now();
    const taken = await driver.snapshotVolume(v, snap, a);
    t.diagnostic(`online snapshot (push backup) of a 96 MiB raw volume: ${Date.now() - t0} ms`);
    assert.equal(taken.path, join(sharedDir, 'snapshots', `${snap.uid}.qcow2`));
    assert.equal((await info(taken.path)).format, 'qcow2');
    assert.equal(taken.virtualBytes, 96 * MiB);
    assert.equal(await rawHead(taken.path, mark.length), mark);
    assert.deepEqual(await driver.snapshotVolume(v, snap, a), taken, 'idempotent');
    assert.match(await virsh('domblklist', a), new RegExp(`vdb\\s+${join(sharedDir, 'volumes', `${v.uid}.raw`)}`), 'the guest still writes the raw file');
    assert.equal((await virsh('domjobinfo', a)).match(/Job type:\s+(\S+)/)?.[1], 'None');

    // Restores and an online clone into raw volumes are full raw copies; a qcow2 one may be an overlay.
    const restored = vol();
    const r = await driver.createVolume(restored, 128 * MiB, { type: 'snapshot', snapshot: snap });
    assert.equal(r.path, join(sharedDir, 'volumes', `${restored.uid}.raw`));
    assert.deepEqual([(await info(r.path)).format, (await info(r.path))['backing-filename'], r.virtualBytes], ['raw', undefined, 128 * MiB]);
    assert.equal(await rawHead(r.path, mark.length), mark);
    const clone = vol({ type: 'local' });
    const c = await driver.createVolume(clone, 96 * MiB, { type: 'volume', volume: v, domain: a });
    assert.equal(c.path, join(stateDir, 'volumes', `${clone.uid}.raw`));
    assert.equal((await info(c.path)).format, 'raw');
    assert.equal(await rawHead(c.path, mark.length), mark);
    const q = vol({ type: 'local' }, 'qcow2');
    const qc = await driver.createVolume(q, 96 * MiB, { type: 'volume', volume: v, domain: a });
    assert.deepEqual([qc.path.endsWith(`${q.uid}.qcow2`), (await info(qc.path)).format], [true, 'qcow2']);
    assert.equal(await rawHead(qc.path, mark.length), mark);
    for (const x of [restored, clone, q]) await driver.deleteVolume(x);
    await driver.deleteSnapshot(snap);
  });

  it('snapshots and grows it offline once no guest has it, and deletes it', async () => {
    assert.equal(await driver.detachVolume(a, serial) === 'detached' || (await (async () => {
      const until = Date.now() + 60_000;
      while ((await driver.detachVolume(a, serial)) !== 'detached') {
        if (Date.now() > until) return false;
        await new Promise((r) => setTimeout(r, 500));
      }
      return true;
    })()), true, 'guest a releases it');
    assert.equal((await driver.resizeVolume(v, 128 * MiB)).virtualBytes, 128 * MiB);
    const snap = snapOf();
    const s = await driver.snapshotVolume(v, snap);
    assert.deepEqual([(await info(s.path)).format, s.virtualBytes], ['qcow2', 128 * MiB]);
    assert.equal(await rawHead(s.path, mark.length), mark);
    await driver.deleteSnapshot(snap);
    await driver.deleteVolume(v);
    assert.equal(await driver.volumeInfo(v), undefined);
  });

  it('boots a guest from a raw shareable volume made from the image', async (t) => {
    const boot = vol();
    const bootSerial = volumeSerial(boot.uid);
    const made = await driver.createVolume(boot, 256 * MiB, { type: 'image', path: guest.imagePath, format: 'qcow2' });
    assert.equal((await info(made.path)).format, 'raw');
    const spec = makeSpec(`c-${id}`, { userData: DISK_PROBE, volumes: [{ disk: boot, serial: bootSerial, bootOrder: 1, shareable: true }] });
    const t0 = Date.now();
    await driver.spawn(spec);
    await booted(spec.name);
    t.diagnostic(`boot from a raw volume: spawn to boot marker ${Date.now() - t0} ms`);
    await diskLine(spec.name, (d) => d.serial === bootSerial && d.dev === 'vda', 'the boot volume as vda');
    await driver.destroy(spec.name);
    await driver.deleteVolume(boot);
  });
});
