// ComputeDriver.resize with real libvirt and the test guest (TCG unless KOVA_TEST_KVM=1): a
// guest defined with 1 vCPU, 192 MiB and a 1 GiB root disk is powered off, resized to 2 vCPUs,
// 320 MiB and 2 GiB, and started again; the guest itself reports the new vCPU count, memory and
// disk size on its console. A running domain is refused, and a smaller disk is never shrunk.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DriverError, domainName, type DomainSpec } from '../../node-agent/driver.js';
import { LibvirtDriver } from '../../node-agent/libvirt/libvirt-driver.js';
import { eventually } from '../harness.js';
import { buildTestGuest, type TestGuest } from '../../guest/build.js';

const GUEST_DIR = process.env.KOVA_TEST_GUEST_DIR ?? '/var/tmp/kova-test-guest';
const MiB = 2 ** 20;

describe('slow: libvirt resize', () => {
  const id = randomBytes(3).toString('hex');
  const uid = randomUUID();
  const domain = domainName('rsztest', `vm-${id}`, uid);
  let guest: TestGuest;
  let stateDir: string;
  let driver: LibvirtDriver;

  const spec = (): DomainSpec => ({
    instanceKey: `rsztest/vm-${id}`,
    instanceUID: uid,
    name: domain,
    vcpus: 1,
    memoryBytes: 192 * MiB,
    diskBytes: 1024 * MiB,
    image: guest.imagePath,
    // What the guest sees, on its console at every boot.
    userData: '#!/bin/sh\necho "KOVA-RESIZE cpus=$(grep -c ^processor /proc/cpuinfo) memkb=$(awk \'/MemTotal/{print $2}\' /proc/meminfo) vda=$(cat /sys/block/vda/size)"\n',
    networks: [],
  });
  const report = async () => {
    let m: RegExpMatchArray | null = null;
    await eventually(async () => (m = (await readFile(join(stateDir, 'domains', domain, 'console.log'), 'utf8').catch(() => '')).match(/KOVA-RESIZE cpus=(\d+) memkb=(\d+) vda=(\d+)/)), 120_000, 'the guest reports its size');
    const [, cpus, memkb, sectors] = m!;
    return { cpus: Number(cpus), memMiB: Number(memkb) / 1024, diskBytes: Number(sectors) * 512 };
  };

  before(async () => {
    guest = await buildTestGuest({ outDir: GUEST_DIR });
    stateDir = await mkdtemp('/var/tmp/kova-rsz-');
    driver = new LibvirtDriver({ stateDir, kvm: process.env.KOVA_TEST_KVM === '1' });
    await driver.init();
  });

  after(async () => {
    await driver?.destroy(domain).catch(() => {});
    await driver?.close();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  it('a restarted guest sees the new vCPUs, memory and disk', async () => {
    await driver.spawn(spec());
    const before = await report();
    assert.equal(before.cpus, 1);
    assert.equal(before.diskBytes, 1024 * MiB);
    await assert.rejects(driver.resize(domain, { vcpus: 2, memoryBytes: 320 * MiB, diskBytes: 2048 * MiB }), (e) => e instanceof DriverError && /power it off first/.test(e.message));
    await driver.powerOff(domain, 30_000);
    const info = await driver.resize(domain, { vcpus: 2, memoryBytes: 320 * MiB, diskBytes: 2048 * MiB });
    assert.equal(info.vcpus, 2);
    assert.equal(info.memoryBytes, 320 * MiB);
    await driver.powerOn(domain);
    const afterBoot = await report();
    assert.equal(afterBoot.cpus, 2);
    assert.ok(afterBoot.memMiB > before.memMiB + 100, `MemTotal grew: ${before.memMiB} → ${afterBoot.memMiB} MiB`);
    assert.equal(afterBoot.diskBytes, 2048 * MiB);
    // Back down in vCPUs and memory; the disk keeps its 2 GiB (never shrunk); idempotent.
    await driver.powerOff(domain, 30_000);
    await driver.resize(domain, { vcpus: 1, memoryBytes: 192 * MiB, diskBytes: 1024 * MiB });
    const again = await driver.resize(domain, { vcpus: 1, memoryBytes: 192 * MiB, diskBytes: 1024 * MiB });
    assert.equal(again.vcpus, 1);
    assert.equal(again.memoryBytes, 192 * MiB);
    await driver.powerOn(domain);
    const down = await report();
    assert.equal(down.cpus, 1);
    assert.equal(down.diskBytes, 2048 * MiB);
  });
});
