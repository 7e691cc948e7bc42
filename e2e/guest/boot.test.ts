// Boots the test guest under libvirt the way kova will: a qcow2 overlay of the image, a NoCloud
// seed from nocloud.ts, domain XML from domain-xml.ts, `virsh create`. Two guests run side by
// side: one boots its disk (syslinux) with #cloud-config user-data and a static address on a
// test bridge, the other boots its kernel directly with a shell script as user-data (sent as
// multipart, since the SSH key is merged in). Needs root, libvirtd and virtlogd running
// (hack/install-host-deps.sh) and apt lists (apt-get update) for the first guest build.
// KOVA_TEST_KVM=1 uses KVM; the default is TCG, as in CI.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { toDomainXml, type LibvirtDomainSpec } from '../../node-agent/libvirt/domain-xml.js';
import { buildNoCloudSeed, networkConfigForNics } from '../../node-agent/libvirt/nocloud.js';
import { eventually } from '../harness.js';
import { buildTestGuest, type TestGuest } from '../../guest/build.js';

const run = promisify(execFile);
const URI = 'qemu:///system';
const virsh = (...args: string[]) => run('virsh', ['-c', URI, ...args]);
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJv0Yx7s1y3m6uQh0Qf0vGz2n9m0sQe0cH7X3Zk1b2c3 kova-test';
const GUEST_DIR = process.env.KOVA_TEST_GUEST_DIR ?? '/var/tmp/kova-test-guest';
const KVM = process.env.KOVA_TEST_KVM === '1';
const BOOT_TIMEOUT_MS = 120_000;

async function readLog(path: string): Promise<string> {
  return readFile(path, 'utf8').catch(() => '');
}

async function domainExists(name: string): Promise<boolean> {
  return virsh('domstate', name).then(
    () => true,
    () => false,
  );
}

describe('slow: test guest boots under libvirt', () => {
  const id = randomBytes(3).toString('hex');
  const bridge = `kvtbr${id}`;
  // 198.18.0.0/15 is reserved for benchmarking: unlikely to collide with anything on the host.
  const subnet = `198.18.${parseInt(id.slice(0, 2), 16)}`;
  const domains: string[] = [];
  let guest: TestGuest;
  let work: string;

  before(async () => {
    await virsh('version').catch((err) => {
      throw new Error(`libvirt does not answer on ${URI}; run hack/install-host-deps.sh: ${err}`);
    });
    // libvirt finds KVM usable when probing QEMU (as root) but unusable for the qemu user when
    // validating its cache, so it re-probes QEMU on every start: ~90 s per domain on 2 cores.
    const kvm = await stat('/dev/kvm').catch(() => undefined);
    if (kvm && (kvm.mode & 0o060) !== 0o060) {
      throw new Error('/dev/kvm is not group read-write: libvirt would re-probe QEMU on every start; run: chgrp kvm /dev/kvm && chmod 0660 /dev/kvm');
    }
    const t0 = Date.now();
    guest = await buildTestGuest({ outDir: GUEST_DIR });
    process.stderr.write(`# test guest ready in ${Date.now() - t0} ms: ${guest.imagePath}\n`);
    work = await mkdtemp('/var/tmp/kova-boot-');
    await chmod(work, 0o755); // qemu runs as libvirt-qemu and must reach the disks
    await run('ip', ['link', 'add', bridge, 'type', 'bridge']);
    await run('ip', ['addr', 'add', `${subnet}.1/24`, 'dev', bridge]);
    await run('ip', ['link', 'set', bridge, 'up']);
  });

  after(async () => {
    for (const d of domains) await virsh('destroy', d).catch(() => {});
    await run('ip', ['link', 'del', bridge]).catch(() => {});
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** Creates one transient domain; returns its console log path. */
  async function boot(name: string, opts: { userData: string; mac: string; ip?: string; directBoot: boolean }): Promise<string> {
    const dir = join(work, name);
    await run('mkdir', [dir]);
    await chmod(dir, 0o755);
    const root = join(dir, 'root.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', guest.format, '-b', guest.imagePath, root]);
    const seed = join(dir, 'seed.iso');
    await buildNoCloudSeed(seed, {
      instanceId: `iid-${name}`,
      hostname: name,
      userData: opts.userData,
      sshAuthorizedKeys: [KEY],
      networkConfig: networkConfigForNics([{ mac: opts.mac, ...(opts.ip ? { address: `${opts.ip}/24`, gateway: `${subnet}.1` } : {}) }]),
    });
    const spec: LibvirtDomainSpec = {
      name: `kova-test.${name}`,
      uuid: randomUUID(),
      vcpus: 1,
      memoryBytes: 256 * 1024 * 1024,
      kvm: KVM,
      rootDisk: { path: root, format: 'qcow2' },
      seedIsoPath: seed,
      nics: [{ mac: opts.mac, targetDev: `kvt${name}`, source: { type: 'bridge', bridge } }],
      consoleLogPath: join(dir, 'console.log'),
      guestAgentSocketPath: join(dir, 'qga.sock'),
      directBoot: opts.directBoot ? { kernelPath: guest.kernelPath, initrdPath: guest.initrdPath, cmdline: `${guest.cmdline} kova.test=${id}` } : undefined,
      owner: { instanceKey: `test/${name}`, instanceUID: randomUUID() },
    };
    const xmlPath = join(dir, 'domain.xml');
    await writeFile(xmlPath, toDomainXml(spec));
    domains.push(spec.name);
    await virsh('create', xmlPath);
    return spec.consoleLogPath;
  }

  async function awaitMarker(t: TestContext, name: string, log: string, started: number): Promise<string> {
    const line = await eventually(async () => /^KOVA-GUEST-BOOTED .*$/m.exec(await readLog(log))?.[0], BOOT_TIMEOUT_MS, `the boot marker of ${name}`);
    t.diagnostic(`${name}: boot marker after ${Date.now() - started} ms (${KVM ? 'kvm' : 'tcg'}): ${line}`);
    return line;
  }

  it('boots from disk with #cloud-config and a static address, then shuts down on ACPI', async (t) => {
    const name = `cc-${id}`;
    const ip = `${subnet}.10`;
    const started = Date.now();
    const log = await boot(name, {
      // The list form is quoted argument by argument, as cloud-init does: the apostrophe must survive.
      userData: `#cloud-config\nruncmd:\n  - echo "KOVA-RUNCMD-${id} $(hostname)"\n  - [sh, -c, 'test "$0" = "it''s"', "it's"]\n  - echo "KOVA-CMDLINE $(cat /proc/cmdline)"\n`,
      mac: '52:54:00:00:10:01',
      ip,
      directBoot: false,
    });
    const line = await awaitMarker(t, name, log, started);
    assert.equal(line.trim(), `KOVA-GUEST-BOOTED hostname=${name} instance-id=iid-${name} ip=${ip} userdata=cloud-config:keys=1:runcmd=3:rc=0`);
    const console = await readLog(log);
    assert.match(console, new RegExp(`^KOVA-RUNCMD-${id} ${name}\\r?$`, 'm'));
    // syslinux prepends BOOT_IMAGE: proof that the disk's boot loader ran.
    assert.match(console, /^KOVA-CMDLINE BOOT_IMAGE=\/vmlinuz console=ttyS0/m);

    // The guest is reachable on the bridge at its static address.
    await eventually(() => run('busybox', ['ping', '-c', '1', '-W', '1', ip]).then(() => true, () => undefined), 20_000, `ping ${ip}`);

    // ACPI shutdown ends in a clean poweroff; a transient domain then disappears.
    const t0 = Date.now();
    await virsh('shutdown', `kova-test.${name}`);
    await eventually(async () => ((await domainExists(`kova-test.${name}`)) ? undefined : true), 60_000, 'the domain to power off');
    t.diagnostic(`${name}: ACPI shutdown took ${Date.now() - t0} ms`);
    assert.match(await readLog(log), new RegExp(`KOVA-GUEST-SHUTDOWN hostname=${name}`));
  });

  it('libvirt reads hostile values back verbatim from the rendered XML', async () => {
    const name = `kova-test.hostile-${id}`;
    const path = `/var/tmp/x'"><disk type='block'><source dev='/dev/sda'/></disk><!--&amp;]]>/root.qcow2`;
    const cmdline = `quiet </cmdline><devices><hostdev/></devices> &lt; "x" 'y'`;
    const key = `ns/<name>&"'`;
    const xmlPath = join(work, 'hostile.xml');
    await writeFile(
      xmlPath,
      toDomainXml({
        name,
        uuid: randomUUID(),
        vcpus: 1,
        memoryBytes: 64 * 1024 * 1024,
        kvm: false,
        rootDisk: { path, format: 'qcow2' },
        nics: [],
        consoleLogPath: join(work, 'hostile.log'),
        directBoot: { kernelPath: '/nonexistent/k', cmdline },
        owner: { instanceKey: key, instanceUID: 'u' },
      }),
    );
    await virsh('define', xmlPath);
    try {
      const xml = (await virsh('dumpxml', name)).stdout;
      const unescape = (s: string) => s.replace(/&apos;/g, "'").replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
      const sources = [...xml.matchAll(/<source file=(["'])(.*?)\1/g)].map((m) => unescape(m[2]));
      assert.deepEqual(sources, [path], 'exactly one disk, with the path unchanged');
      assert.equal(unescape(/<cmdline>(.*)<\/cmdline>/.exec(xml)![1]), cmdline);
      assert.equal(unescape(/<kova:key>(.*)<\/kova:key>/.exec(xml)![1]), key);
      assert.doesNotMatch(xml, /<hostdev/);
    } finally {
      await virsh('undefine', name);
    }
  });

  it('boots a kernel directly with a user-data script merged with the SSH key', async (t) => {
    const name = `sh-${id}`;
    const started = Date.now();
    const log = await boot(name, {
      userData: `#!/bin/sh\necho "KOVA-SCRIPT-${id} $(hostname) keys=$(wc -l < /root/.ssh/authorized_keys) cmdline=$(cat /proc/cmdline)"\nexit 7\n`,
      mac: '52:54:00:00:10:02',
      directBoot: true,
    });
    const line = await awaitMarker(t, name, log, started);
    // DHCP finds no server on the test bridge: the guest says so and still finishes booting.
    assert.equal(line.trim(), `KOVA-GUEST-BOOTED hostname=${name} instance-id=iid-${name} ip=none userdata=cloud-config:keys=1:runcmd=0:rc=0+script:rc=7`);
    const console = await readLog(log);
    // The command line is exactly the one in the domain XML: no boot loader was involved.
    assert.match(console, new RegExp(`^KOVA-SCRIPT-${id} ${name} keys=1 cmdline=${guest.cmdline} kova.test=${id}\\r?$`, 'm'));
    await virsh('destroy', `kova-test.${name}`);
    assert.equal(await domainExists(`kova-test.${name}`), false);
  });
});
