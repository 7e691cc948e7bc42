// The local hosts harness (cli/local-hosts.ts) on its own: two libvirt daemons come up in their
// own namespaces with their own host UUIDs, a raw `virsh migrate --live` of a tiny guest goes
// from one to the other (the stream on the tunnel IPs, in each host's port range), a guest keeps
// running while its daemon restarts and the restarted daemon adopts it, and teardown leaves no
// daemon, QEMU, namespace, veth or bridge behind. Needs root, libvirt and QEMU, and what
// guest/build.ts needs for the first guest build.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { startLocalHosts, teardownLocalHosts } from '../../cli/local-hosts.js';
import type { LocalHosts } from '../../cli/local-hosts.js';
import { buildTestGuest, type TestGuest } from '../../guest/build.js';
import { Virsh } from '../../node-agent/libvirt/virsh.js';
import { eventually } from '../harness.js';

const run = promisify(execFile);
const GUEST_DIR = process.env.KOVA_TEST_GUEST_DIR ?? '/var/tmp/kova-test-guest';
const virsh = async (uri: string, ...args: string[]) => (await run('virsh', ['-q', '-c', uri, ...args], { timeout: 120_000 })).stdout.trim();

/** A diskless guest booting the test guest's kernel: enough to migrate, nothing to copy. */
function tinyDomainXml(name: string, uuid: string, guest: TestGuest, consoleLog: string): string {
  return `<domain type='qemu'>
  <name>${name}</name><uuid>${uuid}</uuid>
  <memory unit='MiB'>128</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>${guest.kernelPath}</kernel><initrd>${guest.initrdPath}</initrd><cmdline>${guest.cmdline}</cmdline></os>
  <devices>
    <serial type='file'><source path='${consoleLog}'/><target port='0'/></serial>
    <console type='file'><source path='${consoleLog}'/><target type='serial' port='0'/></console>
  </devices>
</domain>`;
}

async function netnsPids(netns: string): Promise<number[]> {
  const ino = await stat(join('/run/netns', netns)).then((s) => s.ino, () => undefined);
  if (ino === undefined) return [];
  const out: number[] = [];
  for (const e of await readdir('/proc')) {
    if (/^\d+$/.test(e) && (await readlink(`/proc/${e}/ns/net`).catch(() => '')) === `net:[${ino}]`) out.push(Number(e));
  }
  return out;
}

describe('slow: local hosts: two libvirt daemons on one machine', () => {
  let dataDir: string;
  let guest: TestGuest;
  let lh: LocalHosts | undefined;

  before(async () => {
    guest = await buildTestGuest({ outDir: GUEST_DIR });
    dataDir = await mkdtemp(join(tmpdir(), 'kova-lh-'));
  });

  after(async () => {
    await lh?.stop();
    await teardownLocalHosts(dataDir);
    await rm(dataDir, { recursive: true, force: true });
  });

  it('starts two hosts with their own namespaces and host UUIDs', async () => {
    lh = await startLocalHosts({ dataDir, count: 2 });
    const [h1, h2] = lh.hosts;
    assert.deepEqual(lh.hosts.map((h) => h.name), ['host-1', 'host-2']);
    for (const h of lh.hosts) {
      const caps = await virsh(h.uri, 'capabilities');
      assert.equal(/<uuid>([^<]+)<\/uuid>/.exec(caps)?.[1], h.hostUUID, `${h.name} reports its own host UUID`);
      assert.ok(lh.pid(h.name), `${h.name} has a daemon`);
      assert.ok((await netnsPids(h.netns)).includes(lh.pid(h.name)!), `${h.name}'s libvirtd runs in ${h.netns}`);
    }
    assert.notEqual(h1!.hostUUID, h2!.hostUUID);
    // Each host reaches the other's tunnel IP over the bridge.
    await run('ip', ['netns', 'exec', h1!.netns, 'busybox', 'ping', '-c', '1', '-W', '2', h2!.tunnelIP]);
    // Neither daemon sees the system daemon's domains or the other's.
    assert.equal(await virsh(h1!.uri, 'list', '--all', '--name'), '');
  });

  it('live-migrates a guest from host-1 to host-2 with raw virsh, and a restarted daemon adopts it', async () => {
    assert.ok(lh, 'hosts started');
    const [h1, h2] = lh.hosts;
    const name = `kova-lh-${randomUUID().slice(0, 8)}`;
    const uuid = randomUUID();
    const log = join(dataDir, `${name}.console.log`);
    const xmlFile = join(dataDir, `${name}.xml`);
    await writeFile(xmlFile, tinyDomainXml(name, uuid, guest, log));
    await virsh(h1!.uri, 'define', xmlFile);
    await virsh(h1!.uri, 'start', name);
    await eventually(async () => /KOVA-GUEST|login|Run \/init|Linux version/.test(await readFile(log, 'utf8').catch(() => '')), 60_000, 'the guest prints on its console');
    const started = Date.now();
    await virsh(h1!.uri, 'migrate', '--live', '--p2p', '--persistent', '--undefinesource', '--verbose', name, h2!.uri);
    const ms = Date.now() - started;
    process.stderr.write(`raw virsh migrate host-1 → host-2: ${ms} ms\n`);
    assert.match(await virsh(h2!.uri, 'domstate', name), /running/);
    assert.equal(await virsh(h2!.uri, 'domuuid', name), uuid);
    await assert.rejects(virsh(h1!.uri, 'domstate', name), 'undefined on the source');
    // The guest's QEMU now runs in host-2's network namespace.
    const pidFile = join(h2!.runDir, 'qemu', `${name}.pid`);
    const qemuPid = Number((await readFile(pidFile, 'utf8')).trim());
    assert.ok((await netnsPids(h2!.netns)).includes(qemuPid), 'QEMU runs in host-2\'s namespace');
    // libvirt daemonizes QEMU: its orphan is adopted by the daemon's tini (a child subreaper,
    // hack/local-libvirtd.sh), which reaps it at once when it exits, not by a late PID 1.
    const ppid = Number(/^PPid:\s+(\d+)/m.exec(await readFile(`/proc/${qemuPid}/status`, 'utf8'))?.[1]);
    assert.equal(ppid, lh.pid(h2!.name), "QEMU's parent is host-2's daemon process (tini), not init");

    // Stop host-2's daemon: the guest keeps running; a new start adopts it. The driver's virsh
    // shells, connected to the old daemon, answer again after the restart.
    const shells = new Virsh(h2!.uri, { shells: true });
    assert.match(await shells.run('domstate', name), /running/);
    let t = Date.now();
    await lh.stop();
    process.stderr.write(`daemons stopped in ${Date.now() - t} ms\n`);
    assert.ok(existsSync(`/proc/${qemuPid}`), 'the guest outlives its libvirtd');
    t = Date.now();
    lh = await startLocalHosts({ dataDir, count: 2 });
    process.stderr.write(`daemons restarted in ${Date.now() - t} ms\n`);
    assert.equal(lh.hosts[1]!.hostUUID, h2!.hostUUID, 'same host UUID after a restart');
    assert.match(await virsh(h2!.uri, 'domstate', name), /running/);
    assert.equal(Number((await readFile(pidFile, 'utf8')).trim()), qemuPid, 'the same QEMU');
    try {
      for (let i = 0; i < 3; i++) assert.match(await shells.run('domstate', name), /running/, 'a shell of the old daemon recovers');
    } finally {
      shells.close();
    }
  });

  it('teardown leaves no daemon, QEMU, namespace, veth or bridge', async () => {
    assert.ok(lh, 'hosts started');
    const hosts = lh.hosts;
    const bridge = lh.bridge;
    await lh.stop();
    lh = undefined;
    await teardownLocalHosts(dataDir);
    const namespaces = (await run('ip', ['netns', 'list'])).stdout;
    for (const h of hosts) {
      assert.ok(!namespaces.includes(h.netns), `${h.netns} deleted`);
      await assert.rejects(run('ip', ['link', 'show', 'dev', h.veth]), `${h.veth} deleted`);
    }
    await assert.rejects(run('ip', ['link', 'show', 'dev', bridge]), `${bridge} deleted`);
    const qemus = (await run('pgrep', ['-f', dataDir]).catch(() => ({ stdout: '' }))).stdout.trim();
    assert.equal(qemus, '', 'no process refers to the data dir');
    await teardownLocalHosts(dataDir); // idempotent
  });
});
