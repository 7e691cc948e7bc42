// The libvirt driver's migrations between two real libvirt daemons on this machine (the local
// hosts harness, cli/local-hosts.ts: each host its own network namespace, mount namespace and
// host UUID), with the test guest (TCG unless KOVA_TEST_KVM=1) printing a counter on its
// console: live migration with block copy of its root disk and a local volume, boot from a
// shared volume without copy, abort mid-way and a timeout (the guest keeps running on the
// source), a migration to an unprepared target that fails and leaves the guest where it was
// then succeeds once prepared, and a cold migration. Each kova migration is timed against a raw
// `virsh migrate` with the same flags between the same daemons.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { volumeSerial } from '../../api/kinds/volume.js';
import { startLocalHosts, teardownLocalHosts, type LocalHost, type LocalHosts } from '../../cli/local-hosts.js';
import { DomainNotFound, DriverError, MigrationAborted, PowerState, domainName } from '../../node-agent/driver.js';
import type { DomainSpec, MigrateData, MigrationOptions, MigrationProgress, VolumeDisk } from '../../node-agent/driver.js';
import { LibvirtDriver } from '../../node-agent/libvirt/libvirt-driver.js';
import { decodeMigrateData, destinationXml, migrateArgs } from '../../node-agent/libvirt/migration.js';
import { buildTestGuest, type TestGuest } from '../../guest/build.js';

const run = promisify(execFile);
const GUEST_DIR = process.env.KOVA_TEST_GUEST_DIR ?? '/var/tmp/kova-test-guest';
const MiB = 1024 * 1024;
// A counter on the console every 0.2 s, from a process started by user-data (which then exits).
const COUNTER = '#!/bin/sh\n( i=0; while :; do echo "KOVA-COUNT $i"; i=$((i+1)); sleep 0.2; done ) >/dev/console 2>&1 &\n';

const LIVE: MigrationOptions = { mode: 'Live', copyStorage: true, allowAutoConverge: true, completionTimeoutMs: 180_000, progressTimeoutMs: 60_000 };

describe('slow: libvirt driver migration between two local hosts', () => {
  const id = randomBytes(3).toString('hex');
  let guest: TestGuest;
  let dataDir: string;
  let lh: LocalHosts | undefined;
  let h1: LocalHost;
  let h2: LocalHost;
  let d1: LibvirtDriver;
  let d2: LibvirtDriver;
  const domains: string[] = [];
  const figures: string[] = [];

  const makeSpec = (name: string, over: Partial<DomainSpec> = {}): DomainSpec => {
    const uid = randomUUID();
    const d = domainName('migtest', `${name}-${id}`, uid);
    domains.push(d);
    return { instanceKey: `migtest/${name}-${id}`, instanceUID: uid, name: d, vcpus: 1, memoryBytes: 192 * MiB, diskBytes: 256 * MiB, networks: [], userData: COUNTER, ...over };
  };
  const consoleText = (h: LocalHost, dom: string) => readFile(join(h.stateDir, 'domains', dom, 'console.log'), 'utf8').catch(() => '');
  const counts = (text: string) => [...text.matchAll(/^KOVA-COUNT (\d+)/gm)].map((m) => Number(m[1]));
  /** The highest count on the host's console once it exceeds `above`. */
  const countAbove = async (h: LocalHost, dom: string, above: number, timeoutMs = 60_000) => {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const c = counts(await consoleText(h, dom));
      if (c.length && Math.max(...c) > above) return Math.max(...c);
      if (Date.now() > until) throw new Error(`no count above ${above} on ${h.name}'s console of ${dom}:\n${(await consoleText(h, dom)).slice(-1500)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const virsh = async (uri: string, ...args: string[]) => (await run('virsh', ['-q', '-c', uri, ...args], { timeout: 180_000 })).stdout;
  const state = (d: LibvirtDriver, dom: string) => d.getInfo(dom).then((i) => i.state);
  const note = (t: { diagnostic(m: string): void }, line: string) => {
    figures.push(line);
    t.diagnostic(line);
  };

  /**
   * Raw `virsh migrate` with the flags kova used (the same destination XML), from `from` to
   * `to` after the target driver prepared; wall time, and the downtime from the target's
   * completed job.
   */
  const rawMigrate = async (from: LocalHost, to: LocalHost, toDriver: LibvirtDriver, spec: DomainSpec, o: { copy?: 'inc'; disks?: string[]; unsafe?: boolean; localVolumes?: { disk: VolumeDisk; sizeBytes: number }[] }) => {
    const data = decodeMigrateData(await toDriver.prepareMigrationTarget(spec, { copyStorage: !!o.copy, localVolumes: o.localVolumes }));
    const work = await mkdtemp(join(dataDir, 'raw-'));
    const rw = { dirs: [[join(from.stateDir, 'domains', spec.name), data.domainDir], [join(from.stateDir, 'volumes'), data.volumesDir]] as Array<[string, string]> };
    const xmlFile = join(work, 'd.xml');
    const persistentXmlFile = join(work, 'p.xml');
    const t0 = Date.now();
    await writeFile(xmlFile, destinationXml(await virsh(from.uri, 'dumpxml', '--migratable', spec.name), rw));
    await writeFile(persistentXmlFile, destinationXml(await virsh(from.uri, 'dumpxml', '--inactive', '--migratable', spec.name), rw));
    const args = migrateArgs({ id: spec.name, destUri: data.uri, address: data.address, xmlFile, persistentXmlFile, autoConverge: true, unsafe: o.unsafe, ...(o.copy ? { copyStorage: o.copy, migrateDisks: o.disks } : {}) });
    const t1 = Date.now();
    await virsh(from.uri, ...args);
    const wall = Date.now() - t1;
    const stats = await virsh(to.uri, 'domjobinfo', '--completed', '--rawstats', spec.name);
    await rm(join(from.stateDir, 'domains', spec.name), { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
    return { wall, withXml: Date.now() - t0, downtime: Number(/downtime: (\d+)/.exec(stats)?.[1] ?? NaN) };
  };

  before(async () => {
    guest = await buildTestGuest({ outDir: GUEST_DIR });
    // /var/tmp: disks on shared storage use cache=none (O_DIRECT), which tmpfs refuses.
    dataDir = await mkdtemp('/var/tmp/kova-mig-');
    await chmod(dataDir, 0o711);
    lh = await startLocalHosts({ dataDir, count: 2 });
    [h1, h2] = lh.hosts as [LocalHost, LocalHost];
    const driverOf = (h: LocalHost) => new LibvirtDriver({ stateDir: h.stateDir, uri: h.uri, kvm: process.env.KOVA_TEST_KVM === '1', migration: { uri: h.uri, address: h.migrationAddress } });
    d1 = driverOf(h1);
    d2 = driverOf(h2);
    await d1.init();
    await d2.init();
  });

  after(async () => {
    for (const d of domains) {
      await d1?.destroy(d).catch(() => {});
      await d2?.destroy(d).catch(() => {});
    }
    await d1?.close();
    await d2?.close();
    await lh?.stop().catch(() => {});
    if (dataDir) {
      await teardownLocalHosts(dataDir).catch((e) => console.error(`teardown: ${e}`));
      await rm(dataDir, { recursive: true, force: true });
    }
    if (figures.length) console.log(`# migration figures (${process.env.KOVA_TEST_KVM === '1' ? 'kvm' : 'tcg'}):\n${figures.map((f) => `#   ${f}`).join('\n')}`);
  });

  let live: DomainSpec;
  let liveVol: VolumeDisk;
  let liveData: MigrateData;

  it('live-migrates with block copy of the root disk and a local volume; the counter keeps counting', async (t) => {
    liveVol = { uid: randomUUID(), key: 'migtest/data', backend: { type: 'local' } };
    // A volume with content (a copy of the image), so the copy has something to carry.
    await d1.createVolume(liveVol, 64 * MiB, { type: 'image', path: guest.imagePath, format: 'qcow2' });
    live = makeSpec('live', { image: guest.imagePath, volumes: [{ disk: liveVol, serial: volumeSerial(liveVol.uid) }] });
    await d1.spawn(live);
    const before = await countAbove(h1, live.name, 5, 180_000);
    const localVolumes = [{ disk: liveVol, sizeBytes: 64 * MiB }];
    liveData = await d2.prepareMigrationTarget(live, { copyStorage: true, localVolumes });
    assert.deepEqual(await d2.prepareMigrationTarget(live, { copyStorage: true, localVolumes }), liveData, 'idempotent');
    const target = decodeMigrateData(liveData);
    assert.equal(target.address, h2.migrationAddress);
    assert.ok(existsSync(join(target.domainDir, 'root.qcow2')) && existsSync(join(target.domainDir, 'seed.iso')));
    assert.ok(existsSync(join(target.volumesDir, `${liveVol.uid}.qcow2`)));

    const progress: MigrationProgress[] = [];
    const t0 = Date.now();
    const r = await d1.migrate(live.name, liveData, LIVE, (p) => progress.push(p));
    const wall = Date.now() - t0;
    note(t, `kova live, block copy (root + 64 MiB volume): wall ${wall} ms, job ${r.elapsedMs} ms, downtime ${r.downtimeMs} ms, ${Math.round((r.processedBytes ?? 0) / MiB)} of ${Math.round((r.totalBytes ?? 0) / MiB)} MiB, ${progress.length} progress readings`);
    assert.ok(r.downtimeMs !== undefined && r.downtimeMs >= 0 && r.downtimeMs < 5000, JSON.stringify(r));
    assert.ok((r.processedBytes ?? 0) > 0);
    assert.ok(progress.length > 0, 'progress was reported');
    assert.equal(await state(d2, live.name), PowerState.Running);
    assert.equal((await d2.getInfo(live.name)).instanceUID, live.instanceUID, 'kova metadata moved');
    await assert.rejects(d1.getInfo(live.name), DomainNotFound);
    assert.ok(!existsSync(join(h1.stateDir, 'domains', live.name)), 'the source directory is gone');
    // The same counter continues on the target's console.
    const afterMove = await countAbove(h2, live.name, before);
    assert.ok(afterMove > before);
    const first = Math.min(...counts(await consoleText(h2, live.name)));
    assert.ok(first > before - 1, `the target's console continues the count (first ${first}, last on the source ${before})`);
    // The volume arrived whole.
    await run('qemu-img', ['compare', '-U', join(h1.stateDir, 'volumes', `${liveVol.uid}.qcow2`), join(target.volumesDir, `${liveVol.uid}.qcow2`)]);
    assert.deepEqual(await d2.listVolumes(live.name), [{ serial: volumeSerial(liveVol.uid), device: 'vdb' }]);
    await rm(join(h1.stateDir, 'volumes', `${liveVol.uid}.qcow2`)); // the source's copy (the agent's to remove)

    // Back with raw virsh and the same flags.
    const raw = await rawMigrate(h2, h1, d1, live, { copy: 'inc', disks: ['vda', 'vdb'], localVolumes });
    note(t, `raw virsh migrate, same flags: wall ${raw.wall} ms (${raw.withXml} ms with dumpxml), downtime ${raw.downtime} ms`);
    assert.equal(await state(d1, live.name), PowerState.Running);
    await countAbove(h1, live.name, afterMove);
    await rm(join(h2.stateDir, 'volumes', `${liveVol.uid}.qcow2`));
  });

  it('aborts mid-way (abortMigration) and on a completion timeout: the guest keeps running on the source', async (t) => {
    const slow: MigrationOptions = { ...LIVE, allowAutoConverge: false, bandwidthBytesPerSec: 4 * MiB };
    const localVolumes = [{ disk: liveVol, sizeBytes: 64 * MiB }];
    const data = await d2.prepareMigrationTarget(live, { copyStorage: true, localVolumes });
    const progress: MigrationProgress[] = [];
    let t0 = Date.now();
    const m = d1.migrate(live.name, data, slow, (p) => {
      progress.push(p);
      if ((p.processedBytes ?? 0) > 0 && progress.filter((q) => (q.processedBytes ?? 0) > 0).length === 1) void d1.abortMigration(live.name);
    });
    await assert.rejects(m, (e: unknown) => e instanceof MigrationAborted && /aborted/.test((e as Error).message));
    note(t, `abort: ${Date.now() - t0} ms from the request to MigrationAborted; ${progress.length} readings`);
    assert.ok(progress.some((p) => (p.processedBytes ?? 0) > 0), 'it was under way');
    assert.equal(await state(d1, live.name), PowerState.Running);
    await assert.rejects(d2.getInfo(live.name), DomainNotFound);
    const c = await countAbove(h1, live.name, 0);
    await countAbove(h1, live.name, c);
    await d1.abortMigration(live.name); // no job: a no-op

    // Abort through the signal.
    const ac = new AbortController();
    t0 = Date.now();
    const m2 = d1.migrate(live.name, data, slow, (p) => (p.processedBytes ?? 0) > 0 && ac.abort(), ac.signal);
    await assert.rejects(m2, MigrationAborted);
    note(t, `abort by signal: ${Date.now() - t0} ms`);
    assert.equal(await state(d1, live.name), PowerState.Running);

    t0 = Date.now();
    await assert.rejects(d1.migrate(live.name, data, { ...slow, completionTimeoutMs: 4000 }), (e: unknown) => e instanceof MigrationAborted && /did not finish within 4 s/.test((e as Error).message));
    note(t, `completion timeout 4 s: MigrationAborted after ${Date.now() - t0} ms`);
    assert.equal(await state(d1, live.name), PowerState.Running);
    await d2.cleanupMigrationTarget(live, { copyStorage: true, localVolumes });
    assert.ok(!existsSync(decodeMigrateData(data).domainDir), 'cleanup removed the target directory');
    assert.ok(!existsSync(join(decodeMigrateData(data).volumesDir, `${liveVol.uid}.qcow2`)), 'and the volume file');
    await countAbove(h1, live.name, await countAbove(h1, live.name, 0));
  });

  it('fails against an unprepared target, leaving the guest running here; succeeds once prepared', async (t) => {
    // liveData names host-2's directories, which cleanup removed.
    const t0 = Date.now();
    let message = '';
    await assert.rejects(d1.migrate(live.name, liveData, LIVE), (e: unknown) => {
      message = (e as Error).message;
      return e instanceof DriverError && !(e instanceof MigrationAborted) && message.includes(live.name) && /has not prepared/.test(message);
    });
    note(t, `failed migration (target not prepared): ${Date.now() - t0} ms: ${message}`);
    assert.equal(await state(d1, live.name), PowerState.Running);
    await assert.rejects(d2.getInfo(live.name), DomainNotFound);
    await countAbove(h1, live.name, await countAbove(h1, live.name, 0));
    await assert.rejects(d1.migrate('no-such-domain', liveData, LIVE), DomainNotFound);

    const localVolumes = [{ disk: liveVol, sizeBytes: 64 * MiB }];
    const data = await d2.prepareMigrationTarget(live, { copyStorage: true, localVolumes });
    const r = await d1.migrate(live.name, data, LIVE);
    note(t, `retry: job ${r.elapsedMs} ms, downtime ${r.downtimeMs} ms`);
    assert.equal(await state(d2, live.name), PowerState.Running);
    await countAbove(h2, live.name, 0);
  });

  it('moves a guest booted from a shared volume without copying', async (t) => {
    const sharedDir = join(dataDir, 'shared');
    await mkdir(sharedDir, { mode: 0o711 });
    const boot: VolumeDisk = { uid: randomUUID(), key: 'migtest/boot', backend: { type: 'shared', path: sharedDir } };
    await d1.createVolume(boot, 256 * MiB, { type: 'image', path: guest.imagePath, format: 'qcow2' });
    const spec = makeSpec('shared', { volumes: [{ disk: boot, serial: volumeSerial(boot.uid), bootOrder: 1 }] });
    await d1.spawn(spec);
    const before = await countAbove(h1, spec.name, 5, 180_000);
    const data = await d2.prepareMigrationTarget(spec, { copyStorage: false });
    const t0 = Date.now();
    const r = await d1.migrate(spec.name, data, { ...LIVE, copyStorage: false });
    note(t, `kova live, shared storage: wall ${Date.now() - t0} ms, job ${r.elapsedMs} ms, downtime ${r.downtimeMs} ms, ${Math.round((r.processedBytes ?? 0) / MiB)} MiB`);
    assert.equal(await state(d2, spec.name), PowerState.Running);
    await countAbove(h2, spec.name, before);
    const disks = await d2.listVolumes(spec.name);
    assert.deepEqual(disks, [{ serial: volumeSerial(boot.uid), device: 'vda' }]);
    assert.ok(!existsSync(join(h2.stateDir, 'volumes', `${boot.uid}.qcow2`)), 'nothing was copied to local storage');

    const raw = await rawMigrate(h2, h1, d1, spec, { unsafe: true });
    note(t, `raw virsh migrate, same flags (--unsafe): wall ${raw.wall} ms (${raw.withXml} ms with dumpxml), downtime ${raw.downtime} ms`);
    assert.equal(await state(d1, spec.name), PowerState.Running);
    await d1.destroy(spec.name);
    await d1.deleteVolume(boot);
  });

  it('switches to post-copy when pre-copy does not converge (a guest rewriting 32 MiB of RAM, 8 MiB/s)', async (t) => {
    // 32 MiB of random bytes made once, then copied over the same pages again and again: a
    // memory copy, even under TCG with dirty logging, outpaces 8 MiB/s many times over. (Drawing
    // fresh bytes from /dev/urandom each pass, as this test first did, ran near 8 MiB/s under
    // TCG, and pre-copy sometimes converged.)
    const dirty = `${COUNTER}( mkdir -p /run/d; head -c 33554432 /dev/urandom > /run/d/src; while :; do dd if=/run/d/src of=/run/d/x bs=1048576 conv=notrunc 2>/dev/null; done ) &\n`;
    const spec = makeSpec('postcopy', { image: guest.imagePath, userData: dirty });
    await d1.spawn(spec);
    const before = await countAbove(h1, spec.name, 5, 180_000);
    const data = await d2.prepareMigrationTarget(spec, { copyStorage: true });
    const progress: MigrationProgress[] = [];
    // The target's lifecycle events say how the guest resumed there ("Resumed Post-copy").
    const events = spawn('virsh', ['-c', h2.uri, 'event', '--event', 'lifecycle', '--loop'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let eventText = '';
    events.stdout!.on('data', (b: Buffer) => (eventText += b.toString()));
    const t0 = Date.now();
    const r = await d1.migrate(spec.name, data, { ...LIVE, allowAutoConverge: false, allowPostCopy: true, bandwidthBytesPerSec: 8 * MiB }, (p) => progress.push(p)).finally(() => setTimeout(() => events.kill(), 500));
    await new Promise((res) => events.once('exit', res));
    assert.match(eventText, new RegExp(`'${spec.name.replace(/\./g, '\\.')}': Resumed Post-copy`), eventText);
    note(t, `kova live, post-copy after a stalled pre-copy: wall ${Date.now() - t0} ms, downtime ${r.downtimeMs} ms, ${Math.round((r.processedBytes ?? 0) / MiB)} MiB sent of ${Math.round((r.totalBytes ?? 0) / MiB)} MiB RAM`);
    assert.ok(progress.some((p, i) => i > 0 && (p.remainingBytes ?? 0) > (progress[i - 1]!.remainingBytes ?? 0)), 'a new pass started');
    assert.equal(await state(d2, spec.name), PowerState.Running);
    await countAbove(h2, spec.name, before);
    await d2.destroy(spec.name);
  });

  it('cold-migrates a stopped guest: definition and disks move, it stays off, and boots there', async (t) => {
    const spec = makeSpec('cold', { image: guest.imagePath });
    await d1.spawn(spec);
    await countAbove(h1, spec.name, 5, 180_000);
    await d1.powerOff(spec.name, 0);
    assert.equal(await state(d1, spec.name), PowerState.Shutdown);
    const srcRoot = join(h1.stateDir, 'domains', spec.name, 'root.qcow2');
    const snapshot = join(dataDir, `cold-${id}.qcow2`);
    await run('qemu-img', ['convert', '-U', '-O', 'qcow2', srcRoot, snapshot]);
    const data = await d2.prepareMigrationTarget(spec, { copyStorage: true });
    const t0 = Date.now();
    const r = await d1.migrate(spec.name, data, { ...LIVE, mode: 'Cold' });
    note(t, `kova cold (start --paused, block copy, destroy there): wall ${Date.now() - t0} ms, job ${r.elapsedMs} ms`);
    assert.equal(await state(d2, spec.name), PowerState.Shutdown, 'defined and off on the target');
    await assert.rejects(d1.getInfo(spec.name), DomainNotFound);
    await run('qemu-img', ['compare', '-U', snapshot, join(decodeMigrateData(data).domainDir, 'root.qcow2')]);
    await rm(snapshot);
    await d2.powerOn(spec.name);
    await countAbove(h2, spec.name, 5, 180_000);
    // A running domain is refused a cold migration, a stopped one a live one.
    await assert.rejects(d2.migrate(spec.name, data, { ...LIVE, mode: 'Cold' }), /stop it first/);
    await d2.powerOff(spec.name, 0);
    await assert.rejects(d2.migrate(spec.name, data, LIVE), /cannot live-migrate/);
  });
});
