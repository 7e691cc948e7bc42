// ComputeDriver.instanceStats with real libvirt and the test guest (TCG unless KOVA_TEST_KVM=1):
// the counters the node agent's metrics export (one `virsh domstats` for the host) say a booting
// guest uses CPU, reads its disk and holds memory, and its CPU time grows; an off domain has none.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PowerState, domainName, type DomainSpec, type InstanceStats } from '../../node-agent/driver.js';
import { LibvirtDriver } from '../../node-agent/libvirt/libvirt-driver.js';
import { eventually } from '../harness.js';
import { buildTestGuest, type TestGuest } from '../../guest/build.js';

const GUEST_DIR = process.env.KOVA_TEST_GUEST_DIR ?? '/var/tmp/kova-test-guest';
const MiB = 2 ** 20;

describe('slow: libvirt instance stats', () => {
  const id = randomBytes(3).toString('hex');
  const uid = randomUUID();
  const domain = domainName('statstest', `vm-${id}`, uid);
  let guest: TestGuest;
  let stateDir: string;
  let driver: LibvirtDriver;

  const spec = (): DomainSpec => ({ instanceKey: `statstest/vm-${id}`, instanceUID: uid, name: domain, vcpus: 1, memoryBytes: 192 * MiB, diskBytes: 256 * MiB, image: guest.imagePath, networks: [] });
  const mine = async (): Promise<InstanceStats | undefined> => (await driver.instanceStats()).find((s) => s.id === domain);

  before(async () => {
    guest = await buildTestGuest({ outDir: GUEST_DIR });
    stateDir = await mkdtemp('/var/tmp/kova-stats-');
    driver = new LibvirtDriver({ stateDir, kvm: process.env.KOVA_TEST_KVM === '1' });
    await driver.init();
  });

  after(async () => {
    await driver?.destroy(domain).catch(() => {});
    await driver?.close();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  it('a running guest has CPU time that grows, disk reads and resident memory; an off one has no counters', async () => {
    await driver.spawn(spec());
    await eventually(async () => /KOVA-GUEST-BOOTED/.test(await readFile(join(stateDir, 'domains', domain, 'console.log'), 'utf8').catch(() => '')) || undefined, 120_000, 'the boot marker');
    const first = await mine();
    assert.ok(first, 'the domain is in the stats');
    assert.equal(first.state, PowerState.Running);
    assert.equal(first.instanceKey, `statstest/vm-${id}`);
    assert.equal(first.instanceUID, uid);
    const c = first.counters!;
    assert.ok(c.cpuTimeNs > 0, `cpu time ${c.cpuTimeNs}`);
    assert.ok(c.blockReadBytes > 0 && c.blockReadRequests > 0, `the boot read its disk: ${c.blockReadBytes} bytes in ${c.blockReadRequests} requests`);
    assert.ok((c.memoryResidentBytes ?? 0) > 0, `resident memory ${c.memoryResidentBytes}`);
    assert.equal(c.netRxBytes, 0, 'no interfaces');
    const grown = await eventually(async () => {
      const s = await mine();
      return s?.counters && s.counters.cpuTimeNs > c.cpuTimeNs ? s.counters.cpuTimeNs : undefined;
    }, 30_000, 'more CPU time');
    assert.ok(grown > c.cpuTimeNs);

    await driver.powerOff(domain, 30_000);
    const off = await mine();
    assert.equal(off?.state, PowerState.Shutdown);
    assert.equal(off?.counters, undefined);
  });
});
