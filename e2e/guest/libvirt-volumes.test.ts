// The libvirt driver's volume calls against real libvirt and the test guest (TCG unless
// KOVA_TEST_KVM=1): hot plug, online resize, online snapshot, detach with its events, restore
// from a snapshot, boot from a volume. The guest runs a script that reports its virtio disks on
// the console, so every step is checked from inside the guest.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { volumeSerial } from '../../api/kinds/volume.js';
import { DomainNotFound, DriverError, InvalidSpec, PowerState, domainName, type DomainEvent, type DomainSpec, type SnapshotDisk, type VolumeDisk } from '../../node-agent/driver.js';
import { volumeDiskXml } from '../../node-agent/libvirt/domain-xml.js';
import { LibvirtDriver } from '../../node-agent/libvirt/libvirt-driver.js';
import { eventually } from '../harness.js';
import { buildTestGuest, type TestGuest } from '../../guest/build.js';
import { diskProbeUserData, probedDisks, probedGone, probePattern, type ProbedDisk } from './disk-probe.js';

// The guest reports its volumes on the console every 0.2 s and writes the pattern to blank ones.
const DISK_PROBE = diskProbeUserData({ write: true, intervalMs: 200 });

const run = promisify(execFile);
const GUEST_DIR = process.env.KOVA_TEST_GUEST_DIR ?? '/var/tmp/kova-test-guest';
const MiB = 1024 * 1024;

describe('slow: libvirt driver volumes', () => {
  const id = randomBytes(3).toString('hex');
  let guest: TestGuest;
  let stateDir: string;
  let driver: LibvirtDriver;
  const events: DomainEvent[] = [];
  let unsubscribe: () => void;
  const domains: string[] = [];
  const figures: string[] = [];

  const vol = (): VolumeDisk => {
    const uid = randomUUID();
    return { uid, key: `voltest/v-${uid.slice(0, 8)}`, backend: { type: 'local' } };
  };
  const snapOf = (): SnapshotDisk => {
    const uid = randomUUID();
    return { uid, key: `voltest/s-${uid.slice(0, 8)}`, backend: { type: 'local' } };
  };
  const makeSpec = (name: string, over: Partial<DomainSpec> = {}): DomainSpec => {
    const uid = randomUUID();
    const d = domainName('voltest', name, uid);
    domains.push(d);
    return { instanceKey: `voltest/${name}`, instanceUID: uid, name: d, vcpus: 1, memoryBytes: 192 * MiB, diskBytes: 256 * MiB, networks: [], ...over };
  };
  const consoleText = (dom: string) => readFile(join(stateDir, 'domains', dom, 'console.log'), 'utf8').catch(() => '');
  /** Polls the console (20 ms) until the pattern shows; returns the match and when it showed. */
  const consoleLine = async (dom: string, re: RegExp, what: string, timeoutMs = 60_000) => {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const m = re.exec(await consoleText(dom));
      if (m) return { line: m[0], at: Date.now() };
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}; console:\n${(await consoleText(dom)).slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  /** Polls the console (20 ms) until the guest reports a disk that satisfies `ok`; returns it and when. */
  const diskLine = async (dom: string, ok: (d: ProbedDisk) => boolean, what: string, timeoutMs = 60_000) => {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const disk = probedDisks(await consoleText(dom)).find(ok);
      if (disk) return { disk, at: Date.now() };
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}; console:\n${(await consoleText(dom)).slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const goneLine = (dom: string, serial: string, what: string) => eventually(async () => probedGone(await consoleText(dom)).includes(serial), 60_000, what);
  const rawHead = async (file: string, bytes: number) => {
    const out = join(stateDir, `head-${randomBytes(4).toString('hex')}.raw`);
    await run('qemu-img', ['dd', '-U', '-O', 'raw', `if=${file}`, `of=${out}`, 'bs=512', `count=${Math.ceil(bytes / 512)}`]);
    const b = await readFile(out);
    await rm(out, { force: true });
    return b.subarray(0, bytes).toString('latin1');
  };
  const virsh = (...args: string[]) => run('virsh', ['-q', '-c', 'qemu:///system', ...args]).then((r) => r.stdout);

  before(async () => {
    guest = await buildTestGuest({ outDir: GUEST_DIR });
    stateDir = await mkdtemp('/var/tmp/kova-vol-');
    driver = new LibvirtDriver({ stateDir, kvm: process.env.KOVA_TEST_KVM === '1' });
    await driver.init();
    unsubscribe = driver.onEvent((e) => events.push(e));
  });

  after(async () => {
    unsubscribe?.();
    for (const d of domains) await driver?.destroy(d).catch(() => {});
    await driver?.close();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
    if (figures.length) console.log(`# volume figures (${process.env.KOVA_TEST_KVM === '1' ? 'kvm' : 'tcg'}):\n${figures.map((f) => `#   ${f}`).join('\n')}`);
  });

  let dom: string;
  const v1 = vol();
  const s1 = volumeSerial(v1.uid);
  const snap1 = snapOf();

  it('creates blank volumes by uid, idempotently, and refuses bad uids and sizes', async () => {
    const info = await driver.createVolume(v1, 64 * MiB, { type: 'blank' });
    assert.equal(info.path, join(stateDir, 'volumes', `${v1.uid}.qcow2`));
    assert.equal(info.virtualBytes, 64 * MiB);
    assert.deepEqual(await driver.createVolume(v1, 128 * MiB, { type: 'blank' }), info, 'an existing volume is returned as it is');
    assert.deepEqual(await driver.volumeInfo(v1), info);
    assert.equal(await driver.volumeInfo(vol()), undefined);
    assert.deepEqual((await readdir(join(stateDir, 'volumes'))).filter((f) => f.includes('.tmp-')), []);
    await assert.rejects(driver.createVolume({ ...v1, uid: '../../etc/passwd' }, MiB, { type: 'blank' }), InvalidSpec);
    await assert.rejects(driver.createVolume({ ...vol(), backend: { type: 'shared', path: 'relative/dir' } }, MiB, { type: 'blank' }), InvalidSpec);
    await assert.rejects(driver.createVolume(vol(), 0, { type: 'blank' }), InvalidSpec);
    await assert.rejects(driver.createVolume(vol(), 8 * MiB, { type: 'image', path: guest.imagePath, format: 'qcow2' }), (e: unknown) => e instanceof InvalidSpec && /more than/.test((e as Error).message));
    await assert.rejects(driver.createVolume(vol(), MiB, { type: 'snapshot', snapshot: snapOf() }), (e: unknown) => e instanceof DriverError && !(e instanceof InvalidSpec));
  });

  it('hot-plugs a volume into a running guest, which sees it and its serial', async (t) => {
    const spec = makeSpec(`a-${id}`, { image: guest.imagePath, userData: DISK_PROBE });
    dom = spec.name;
    await driver.spawn(spec);
    await consoleLine(dom, /^KOVA-GUEST-BOOTED .*userdata=script:rc=0/m, 'the boot marker', 120_000);
    const t0 = Date.now();
    const att = await driver.attachVolume(dom, { disk: v1, serial: s1 });
    const called = Date.now() - t0;
    assert.deepEqual(att, { serial: s1, device: 'vdb' });
    const seen = await diskLine(dom, (d) => d.serial === s1 && d.dev === 'vdb' && d.sectors === (64 * MiB) / 512, 'the guest to see the volume');
    figures.push(`attachVolume: call ${called} ms, to the guest's line ${seen.at - t0} ms`);
    t.diagnostic(figures.at(-1)!);
    assert.deepEqual(await driver.attachVolume(dom, { disk: v1, serial: s1 }), att, 'idempotent by serial');
    assert.deepEqual(await driver.listVolumes(dom), [{ serial: s1, device: 'vdb' }]);
    await diskLine(dom, (d) => d.serial === s1 && d.head === probePattern(s1), 'the guest to write its marker');

    // The same XML through plain virsh, for comparison.
    const raw = vol();
    const rawSerial = volumeSerial(raw.uid);
    const rawInfo = await driver.createVolume(raw, 64 * MiB, { type: 'blank' });
    const xmlFile = join(stateDir, 'raw-disk.xml');
    await writeFile(xmlFile, volumeDiskXml({ path: rawInfo.path, format: 'qcow2', serial: rawSerial }, 'vdc'));
    const r0 = Date.now();
    await virsh('attach-device', dom, xmlFile, '--live', '--config');
    const rawCalled = Date.now() - r0;
    const rawSeen = await diskLine(dom, (d) => d.serial === rawSerial && d.dev === 'vdc', 'the guest to see the raw attach');
    figures.push(`raw virsh attach-device: call ${rawCalled} ms, to the guest's line ${rawSeen.at - r0} ms`);
    t.diagnostic(figures.at(-1)!);
    assert.equal(await driver.detachVolume(dom, rawSerial), 'detached');
    await goneLine(dom, rawSerial, 'the raw disk to go');
    await driver.deleteVolume(raw);
  });

  it('refuses to delete a volume a domain uses', async () => {
    await assert.rejects(driver.deleteVolume(v1), (e: unknown) => e instanceof DriverError && /in use by domain/.test((e as Error).message));
    assert.ok(existsSync(join(stateDir, 'volumes', `${v1.uid}.qcow2`)));
  });

  it('grows the volume online; the guest sees the new size; never shrinks', async (t) => {
    const t0 = Date.now();
    const info = await driver.resizeVolume(v1, 96 * MiB, dom);
    const called = Date.now() - t0;
    assert.equal(info.virtualBytes, 96 * MiB);
    const seen = await diskLine(dom, (d) => d.serial === s1 && d.dev === 'vdb' && d.sectors === (96 * MiB) / 512, 'the guest to see 96 MiB');
    figures.push(`resizeVolume online (blockresize): call ${called} ms, to the guest's line ${seen.at - t0} ms`);
    t.diagnostic(figures.at(-1)!);
    assert.equal((await driver.resizeVolume(v1, 64 * MiB, dom)).virtualBytes, 96 * MiB);
    assert.equal((await driver.resizeVolume(v1, 96 * MiB, dom)).virtualBytes, 96 * MiB);
  });

  it('snapshots the volume online, crash-consistently, and leaves the domain on the volume file', async (t) => {
    const t0 = Date.now();
    const info = await driver.snapshotVolume(v1, snap1, dom);
    t.diagnostic(`online snapshot of a 96 MiB volume: ${Date.now() - t0} ms`);
    assert.equal(info.path, join(stateDir, 'snapshots', `${snap1.uid}.qcow2`));
    assert.equal(info.virtualBytes, 96 * MiB);
    assert.equal(await rawHead(info.path, probePattern(s1).length), probePattern(s1), 'the guest-written marker is in the snapshot');
    assert.deepEqual(await driver.snapshotInfo(snap1), info);
    assert.deepEqual(await driver.snapshotVolume(v1, snap1, dom), info, 'idempotent');
    assert.match(await virsh('domblklist', dom), new RegExp(`vdb\\s+${join(stateDir, 'volumes', `${v1.uid}.qcow2`)}`));
    assert.deepEqual((await readdir(join(stateDir, 'volumes'))).filter((f) => f.includes('overlay')), []);
  });

  it('finishes the commit of an online snapshot a crash left behind before anything else', async () => {
    // What a crash right after `snapshot-create-as` leaves: the domain writing to an overlay.
    const snap2 = snapOf();
    const overlay = join(stateDir, 'volumes', `${snap2.uid}.overlay.qcow2`);
    const disks = (await virsh('domblklist', dom)).split('\n').map((l) => l.trim().split(/\s+/)[0]).filter((x) => x && x !== 'Target' && !x.startsWith('-'));
    await virsh('snapshot-create-as', dom, '--disk-only', '--atomic', '--no-metadata', ...disks.flatMap((d) => ['--diskspec', d === 'vdb' ? `vdb,file=${overlay}` : `${d},snapshot=no`]));
    assert.match(await virsh('domblklist', dom), /overlay\.qcow2/);
    const info = await driver.snapshotVolume(v1, snap2, dom);
    assert.doesNotMatch(await virsh('domblklist', dom), /overlay/);
    assert.equal(existsSync(overlay), false);
    assert.equal(await rawHead(info.path, probePattern(s1).length), probePattern(s1));
    await driver.deleteSnapshot(snap2);
    await driver.deleteSnapshot(snap2);
    assert.equal(await driver.snapshotInfo(snap2), undefined);
  });

  it('detaches: pending while the guest does not answer, VolumeDetached when it releases the disk', async () => {
    await driver.pause(dom); // a paused guest cannot release it: libvirt gives up waiting after ~5 s
    assert.equal(await driver.detachVolume(dom, s1), 'pending');
    assert.deepEqual(await driver.listVolumes(dom), [{ serial: s1, device: 'vdb', detaching: true }]);
    await driver.unpause(dom);
    await eventually(() => events.find((e) => e.id === dom && e.reason === 'VolumeDetached' && e.serial === s1), 30_000, 'a VolumeDetached event');
    assert.equal(await driver.detachVolume(dom, s1), 'detached');
    assert.deepEqual(await driver.listVolumes(dom), []);
    await goneLine(dom, s1, 'the guest to lose the disk');
    assert.equal(await driver.detachVolume(dom, s1), 'detached', 'idempotent');
    await assert.rejects(driver.detachVolume('kova-nope.nope', s1), DomainNotFound);
    await assert.rejects(driver.listVolumes('kova-nope.nope'), DomainNotFound);
  });

  it('restores a snapshot into new volumes (copy-on-write overlays) holding the guest-written data; deleting the snapshot gives each its own copy, online and offline', async () => {
    const backingOf = async (file: string) => JSON.parse((await run('qemu-img', ['info', '-U', '--output=json', file])).stdout)['backing-filename'] as string | undefined;
    const snapFile = join(stateDir, 'snapshots', `${snap1.uid}.qcow2`);
    const mark = probePattern(s1);
    const v2 = vol();
    const t0 = Date.now();
    const info = await driver.createVolume(v2, 128 * MiB, { type: 'snapshot', snapshot: snap1 });
    figures.push(`restore of a snapshot (overlay): ${Date.now() - t0} ms`);
    assert.equal(info.virtualBytes, 128 * MiB, 'grown to the requested size');
    assert.equal(await backingOf(info.path), snapFile, 'a local restore is an overlay on the snapshot');
    assert.equal(await rawHead(info.path, mark.length), mark);
    const v3 = vol();
    const offline = await driver.createVolume(v3, 96 * MiB, { type: 'snapshot', snapshot: snap1 });
    const clone = vol();
    const cloned = await driver.createVolume(clone, 128 * MiB, { type: 'volume', volume: v2 });
    assert.equal(await backingOf(cloned.path), undefined, 'a clone is a full copy');
    assert.equal(await rawHead(cloned.path, mark.length), mark);

    // v2 in a running guest, v3 on no domain: the snapshot goes, both keep the data.
    const s2 = volumeSerial(v2.uid);
    await driver.attachVolume(dom, { disk: v2, serial: s2 });
    await diskLine(dom, (d) => d.serial === s2, 'the guest to see the restored volume');
    await driver.deleteSnapshot(snap1);
    assert.equal(existsSync(snapFile), false);
    assert.equal(await driver.snapshotInfo(snap1), undefined);
    for (const f of [info.path, offline.path]) assert.equal(await backingOf(f), undefined, `${f} has its own copy`);
    assert.equal(await rawHead(offline.path, mark.length), mark);
    assert.equal((await driver.getInfo(dom)).state, PowerState.Running);
    await driver.deleteSnapshot(snap1); // idempotent

    assert.equal(await driver.detachVolume(dom, s2) === 'detached' || (await eventually(async () => (await driver.listVolumes(dom)).every((a) => a.serial !== s2), 30_000, 'the guest releases the restored volume')), true);
    assert.equal(await driver.detachVolume(dom, s2), 'detached');
    // Read once QEMU has closed it (its qcow2 metadata cache is flushed then).
    assert.equal(await rawHead(info.path, mark.length), mark);
    for (const v of [v2, v3, clone, v1]) await driver.deleteVolume(v);
    await driver.deleteVolume(v1);
    assert.equal(await driver.volumeInfo(v1), undefined);
  });

  it('boots a domain from a volume made from the image; destroy and a failed spawn keep volume files', async (t) => {
    const boot = vol();
    const bootSerial = volumeSerial(boot.uid);
    const info = await driver.createVolume(boot, 256 * MiB, { type: 'image', path: guest.imagePath, format: 'qcow2' });
    assert.equal(info.virtualBytes, 256 * MiB);
    const data = vol();
    await driver.createVolume(data, 16 * MiB, { type: 'blank' });
    const spec = makeSpec(`b-${id}`, { userData: DISK_PROBE, volumes: [{ disk: data, serial: volumeSerial(data.uid) }, { disk: boot, serial: bootSerial, bootOrder: 1 }] });
    const t0 = Date.now();
    await driver.spawn(spec);
    assert.ok(!existsSync(join(stateDir, 'domains', spec.name, 'root.qcow2')), 'no root overlay');
    await consoleLine(spec.name, /^KOVA-GUEST-BOOTED .*userdata=script:rc=0/m, 'the boot marker from the volume', 120_000);
    t.diagnostic(`boot from volume: spawn to boot marker ${Date.now() - t0} ms`);
    await diskLine(spec.name, (d) => d.serial === bootSerial && d.dev === 'vda', 'the boot volume as vda');
    await diskLine(spec.name, (d) => d.serial === volumeSerial(data.uid) && d.dev === 'vdb', 'the data volume as vdb');
    assert.deepEqual(await driver.listVolumes(spec.name), [{ serial: bootSerial, device: 'vda' }, { serial: volumeSerial(data.uid), device: 'vdb' }]);
    await driver.destroy(spec.name);
    assert.ok((await driver.volumeInfo(boot)) && (await driver.volumeInfo(data)), 'destroy keeps volume files');
    // A spawn that fails after define (no such bridge) cleans up its domain, not the volumes.
    const bad = makeSpec(`c-${id}`, { volumes: [{ disk: boot, serial: bootSerial, bootOrder: 1 }], networks: [{ network: 'n', mac: '52:54:00:00:30:01', bridge: `kvnobr${id}` }] });
    await assert.rejects(driver.spawn(bad), DriverError);
    await assert.rejects(driver.getInfo(bad.name), DomainNotFound);
    assert.ok(await driver.volumeInfo(boot), 'a failed spawn keeps volume files');
    await driver.deleteVolume(boot);
    await driver.deleteVolume(data);
  });

  it('measures an online snapshot of a 1 GiB volume holding 512 MiB against a plain qemu-img convert', async (t) => {
    const big = vol();
    const info = await driver.createVolume(big, 1024 * MiB, { type: 'blank' });
    await run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0xab 0 512M', info.path]);
    const serial = volumeSerial(big.uid);
    await driver.attachVolume(dom, { disk: big, serial });
    await diskLine(dom, (d) => d.serial === serial, 'the guest to see the big volume');
    // Alternating rounds: the page cache favours whichever copy runs second.
    const online: number[] = [];
    const raw: number[] = [];
    const rawOut = join(stateDir, 'raw-convert.qcow2');
    for (let round = 0; round < 3; round++) {
      const snap = snapOf();
      const t0 = Date.now();
      const s = await driver.snapshotVolume(big, snap, dom);
      online.push(Date.now() - t0);
      assert.equal(s.virtualBytes, 1024 * MiB);
      assert.equal(await rawHead(s.path, 4), '\xab\xab\xab\xab');
      await driver.deleteSnapshot(snap);
      const r0 = Date.now();
      await run('qemu-img', ['convert', '-U', '-O', 'qcow2', info.path, rawOut]);
      raw.push(Date.now() - r0);
      await rm(rawOut, { force: true });
    }
    figures.push(`snapshot of 1 GiB / 512 MiB written, 3 rounds: snapshotVolume online ${online.join(', ')} ms; qemu-img convert ${raw.join(', ')} ms`);
    t.diagnostic(figures.at(-1)!);
    assert.equal(await driver.detachVolume(dom, serial), 'detached');
    await driver.deleteVolume(big);
    assert.equal((await driver.getInfo(dom)).state, PowerState.Running);
  });

  it('attaches, resizes, snapshots and detaches offline when the domain is off (persistent config only)', async () => {
    await driver.powerOff(dom, 0);
    const v = vol();
    const serial = volumeSerial(v.uid);
    await driver.createVolume(v, 32 * MiB, { type: 'blank' });
    const att = await driver.attachVolume(dom, { disk: v, serial, readOnly: true });
    assert.deepEqual(await driver.attachVolume(dom, { disk: v, serial, readOnly: true }), att);
    assert.deepEqual(await driver.listVolumes(dom), [{ serial, device: att.device }]);
    assert.match(await virsh('dumpxml', '--inactive', dom), /<readonly\/>\s*<serial>[^<]*<\/serial>\s*<alias name='ua-/);
    assert.equal((await driver.resizeVolume(v, 48 * MiB, dom)).virtualBytes, 48 * MiB);
    const snap = snapOf();
    assert.equal((await driver.snapshotVolume(v, snap, dom)).virtualBytes, 48 * MiB);
    await assert.rejects(driver.deleteVolume(v), /in use by domain/);
    assert.equal(await driver.detachVolume(dom, serial), 'detached');
    assert.deepEqual(await driver.listVolumes(dom), []);
    await driver.deleteVolume(v);
    await driver.deleteSnapshot(snap);
  });
});
