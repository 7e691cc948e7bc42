// The libvirt ComputeDriver against real libvirt with the test guest (TCG unless KOVA_TEST_KVM=1):
// the whole lifecycle, its events, and the cleanup contracts. Needs what boot.test.ts needs.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { DomainNotFound, DriverError, PowerState, domainName, type DomainEvent, type DomainSpec } from '../../node-agent/driver.js';
import { LibvirtDriver } from '../../node-agent/libvirt/libvirt-driver.js';
import { eventually } from '../harness.js';
import { buildTestGuest, type TestGuest } from '../../guest/build.js';

const run = promisify(execFile);
const GUEST_DIR = process.env.KOVA_TEST_GUEST_DIR ?? '/var/tmp/kova-test-guest';
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJv0Yx7s1y3m6uQh0Qf0vGz2n9m0sQe0cH7X3Zk1b2c3 kova-test';

describe('slow: libvirt driver', () => {
  const id = randomBytes(3).toString('hex');
  const bridge = `kvdbr${id}`;
  const tap = `kvdtap${id}`;
  const subnet = `198.19.${parseInt(id.slice(0, 2), 16)}`;
  const name = `vm-${id}`;
  const uid = randomUUID();
  const domain = domainName('drvtest', name, uid);
  let guest: TestGuest;
  let stateDir: string;
  let driver: LibvirtDriver;
  const events: DomainEvent[] = [];
  let unsubscribe: () => void;

  const spec = (): DomainSpec => ({
    instanceKey: `drvtest/${name}`,
    instanceUID: uid,
    name: domain,
    vcpus: 1,
    memoryBytes: 200 * 1024 * 1024 + 1, // not a whole MiB: the driver rounds up, as QEMU would
    diskBytes: 1024 ** 3,
    image: guest.imagePath,
    userData: `#cloud-config\nruncmd:\n  - echo "KOVA-DRV-${id} $(hostname)"\n`,
    // Resolved as the agent's resolver does on a host whose network agent made the tap.
    networks: [{ network: 'private', mac: '52:54:00:00:20:01', ip: `${subnet}.10`, tap, address: `${subnet}.10/24`, gateway: `${subnet}.1` }],
    sshAuthorizedKeys: [KEY],
  });
  const consoleLog = () => join(stateDir, 'domains', domain, 'console.log');
  const consoleText = () => readFile(consoleLog(), 'utf8').catch(() => '');

  before(async () => {
    guest = await buildTestGuest({ outDir: GUEST_DIR });
    stateDir = await mkdtemp('/var/tmp/kova-drv-');
    await run('ip', ['link', 'add', bridge, 'type', 'bridge']);
    await run('ip', ['addr', 'add', `${subnet}.1/24`, 'dev', bridge]);
    await run('ip', ['link', 'set', bridge, 'up']);
    // As the network layer does: it owns the tap, libvirt only opens it.
    await run('ip', ['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
    await run('ip', ['link', 'set', tap, 'master', bridge, 'up']);
    driver = new LibvirtDriver({
      stateDir,
      kvm: process.env.KOVA_TEST_KVM === '1',
    });
    await driver.init();
    unsubscribe = driver.onEvent((e) => events.push(e));
  });

  after(async () => {
    unsubscribe?.();
    await driver?.destroy(domain).catch(() => {});
    await driver?.close();
    await run('ip', ['link', 'del', tap]).catch(() => {});
    await run('ip', ['link', 'del', bridge]).catch(() => {});
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  it('reports host facts', async () => {
    const h = await driver.hostInfo();
    assert.ok(h.vcpus >= 1 && h.memoryBytes > 0 && h.diskBytes > 0);
    assert.match(h.hypervisor, /^QEMU \d+\.\d+(\.\d+)? \((kvm|tcg)\)$/);
  });

  it('spawns a running domain that boots with its seed, and refuses a second one', async (t) => {
    const started = Date.now();
    const info = await driver.spawn(spec());
    assert.equal(info.state, PowerState.Running);
    assert.equal(info.id, domain);
    assert.equal(info.managedByKova, true);
    assert.equal(info.instanceKey, `drvtest/${name}`);
    assert.equal(info.instanceUID, uid);
    assert.equal(info.memoryBytes, 201 * 1024 * 1024);
    const line = await eventually(async () => /^KOVA-GUEST-BOOTED .*$/m.exec(await consoleText())?.[0], 120_000, 'the boot marker');
    t.diagnostic(`spawn to boot marker: ${Date.now() - started} ms`);
    assert.equal(line.trim(), `KOVA-GUEST-BOOTED hostname=${name} instance-id=${uid} ip=${subnet}.10 userdata=cloud-config:keys=1:runcmd=1:rc=0`);
    assert.match(await consoleText(), new RegExp(`KOVA-DRV-${id} ${name}`));
    // The guest answers on the agent-made tap, through the bridge.
    await eventually(() => run('busybox', ['ping', '-c', '1', '-W', '1', `${subnet}.10`]).then(() => true, () => undefined), 20_000, `ping ${subnet}.10`);
    await assert.rejects(driver.spawn(spec()), (e: unknown) => e instanceof DriverError && /already exists/.test(e.message));
    assert.ok((await driver.listDomains()).some((d) => d.id === domain && d.managedByKova));
    await eventually(async () => (events.some((e) => e.id === domain && e.reason === 'Started' && e.instanceUID === uid) ? true : undefined), 10_000, 'a Started event');
  });

  it('pauses and unpauses, idempotently', async () => {
    await driver.pause(domain);
    await driver.pause(domain);
    assert.equal((await driver.getInfo(domain)).state, PowerState.Paused);
    await driver.unpause(domain);
    await driver.unpause(domain);
    assert.equal((await driver.getInfo(domain)).state, PowerState.Running);
    await eventually(async () =>
      events.some((e) => e.reason === 'Paused') && events.some((e) => e.reason === 'Resumed') ? true : undefined, 10_000, 'Paused and Resumed events');
  });

  it('powers off cleanly through ACPI, then on again', async (t) => {
    const t0 = Date.now();
    await driver.powerOff(domain, 30_000);
    t.diagnostic(`graceful power-off: ${Date.now() - t0} ms`);
    assert.equal((await driver.getInfo(domain)).state, PowerState.Shutdown);
    assert.match(await consoleText(), /KOVA-GUEST-SHUTDOWN/, 'the guest ran its shutdown, it was not forced off');
    await driver.powerOff(domain, 1000); // no-op when off
    await assert.rejects(driver.pause(domain), DriverError);
    await eventually(async () => (events.some((e) => e.reason === 'GuestShutdown' && e.state === PowerState.Shutdown) ? true : undefined), 10_000, 'a GuestShutdown event');

    await driver.powerOn(domain);
    assert.equal((await driver.getInfo(domain)).state, PowerState.Running);
    // The console log starts afresh with each boot (append='off').
    await eventually(async () => {
      const text = await consoleText();
      return text.includes('KOVA-GUEST-BOOTED') && !text.includes('KOVA-GUEST-SHUTDOWN') ? true : undefined;
    }, 120_000, 'the second boot');
  });

  it('reboots from running and from off', async () => {
    await driver.reboot(domain);
    assert.equal((await driver.getInfo(domain)).state, PowerState.Running);
    await driver.powerOff(domain, 0); // forced: no time for the guest
    assert.equal((await driver.getInfo(domain)).state, PowerState.Shutdown);
    await driver.reboot(domain);
    assert.equal((await driver.getInfo(domain)).state, PowerState.Running);
  });

  it('destroys the domain with everything it created; destroy is idempotent', async () => {
    await driver.destroy(domain);
    await assert.rejects(driver.getInfo(domain), DomainNotFound);
    assert.equal(existsSync(join(stateDir, 'domains', domain)), false);
    await driver.destroy(domain);
    await eventually(async () => (events.some((e) => e.id === domain && e.reason === 'Destroyed' && e.instanceKey === `drvtest/${name}`) ? true : undefined), 10_000, 'a Destroyed event');
  });

  it('throws DomainNotFound for unknown domains', async () => {
    await assert.rejects(driver.getInfo('kova-nope.nope'), DomainNotFound);
    await assert.rejects(driver.powerOff('kova-nope.nope', 10), DomainNotFound);
    await assert.rejects(driver.powerOn('kova-nope.nope'), DomainNotFound);
  });

  it('leaves nothing behind when a spawn fails', async () => {
    const bad = { ...spec(), image: join(stateDir, 'missing.qcow2') };
    await assert.rejects(driver.spawn(bad), (e: unknown) => e instanceof DriverError && /not available/.test(e.message));
    await assert.rejects(driver.getInfo(domain), DomainNotFound);
    assert.equal(existsSync(join(stateDir, 'domains', domain)), false);
    // A failure after define (start fails: no such bridge) must undefine the domain too.
    const noBridge = { ...spec(), networks: [{ network: 'private', mac: '52:54:00:00:20:01', bridge: `kvnobr${id}` }] };
    await assert.rejects(driver.spawn(noBridge), DriverError);
    await assert.rejects(driver.getInfo(domain), DomainNotFound);
    assert.equal(existsSync(join(stateDir, 'domains', domain)), false);
  });
});
