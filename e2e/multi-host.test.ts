// Real multi-host on one machine: `kova up --hosts 2` runs two hypervisor hosts (each its own
// network namespace, libvirtd and agent; cli/local-hosts.ts), both register Ready with their
// tunnel IPs, an instance pinned to each boots on its host's own libvirtd, and the guest on
// host-1 pings the guest on host-2 across the hosts' VXLAN. Teardown (also after a failure)
// leaves no daemon, QEMU, namespace or domain. Needs root, libvirt, QEMU and what
// guest/build.ts needs.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { Host, Instance } from '../api/kinds/index.js';
import { localHosts, teardownLocalHosts } from '../cli/local-hosts.js';
import type { LocalHost } from '../cli/local-hosts.js';
import { domainName } from '../node-agent/driver.js';
import { buildTestGuest, type TestGuest } from '../guest/build.js';
import { kovaCli } from './console.js';
import { eventually, startKova, type Kova } from './harness.js';

const run = promisify(execFile);
const GUEST_DIR = process.env.KOVA_TEST_GUEST_DIR ?? '/var/tmp/kova-test-guest';
const virsh = async (uri: string, ...args: string[]) => (await run('virsh', ['-q', '-c', uri, ...args], { timeout: 30_000 })).stdout.trim();

/** The console log of an instance on a local host (`kova console --log --connect URI`). */
async function consoleOn(kova: Kova, host: LocalHost, name: string, ns: string): Promise<string> {
  const r = await kovaCli(kova, ['console', name, '-n', ns, '--log', '--connect', host.uri]);
  if (r.code !== 0) throw new Error(`kova console --log failed: ${r.stderr}`);
  return r.stdout;
}

describe('slow: kova up --hosts 2: two real hosts on one machine, guests ping across VXLAN, and one moves live', () => {
  const id = randomBytes(3).toString('hex');
  const ns = `mh-${id}`;
  let dataDir: string;
  let guest: TestGuest;
  let kova: Kova | undefined;
  let hosts: LocalHost[] = [];

  /** Creates a Migration of `instance` (more spec fields in flow YAML), waits for Succeeded, and returns it. */
  const migrateAndWait = async (instance: string, more = '') => {
    const spec = `{instance: ${instance}${more ? `, ${more}` : ''}}`;
    const name = (await kova!.k(['create', '-f', '-', '-o', 'name'], { input: `apiVersion: kova.dev/v1alpha1\nkind: Migration\nmetadata: {generateName: ${instance}-, namespace: ${ns}}\nspec: ${spec}\n` })).trim();
    await kova!.k(['wait', name, '-n', ns, '--for=condition=Succeeded', '--timeout=120s'], { timeoutMs: 130_000 }).catch(async (e) => {
      throw new Error(`${(e as Error).message}\n${await kova!.k(['get', name, '-n', ns, '-o', 'yaml'])}`);
    });
    return JSON.parse(await kova!.k(['get', name, '-n', ns, '-o', 'json'])) as { status: Record<string, unknown> };
  };

  /** Stops kova and removes the hosts (daemons, QEMUs, namespaces, domains) and the data dir. */
  const cleanup = async () => {
    await kova?.stop();
    kova = undefined;
    if (!dataDir) return;
    await teardownLocalHosts(dataDir);
    await rm(dataDir, { recursive: true, force: true });
  };

  before(async () => {
    guest = await buildTestGuest({ outDir: GUEST_DIR });
    dataDir = await mkdtemp(join(tmpdir(), 'kova-mh-'));
    try {
      kova = await startKova(['--hosts', '2'], 240_000, { dataDir });
      hosts = await localHosts(dataDir, 2);
    } catch (e) {
      // node:test skips `after` when `before` fails: clean up here.
      await cleanup();
      throw e;
    }
  });

  after(cleanup);

  it('prints progress per host and registers both Hosts Ready with their tunnel IPs', async () => {
    assert.ok(kova);
    assert.match(kova.output(), /starting host-1 \(libvirtd in its own namespaces/);
    assert.match(kova.output(), /starting host-2 \(libvirtd in its own namespaces/);
    await kova.k(['wait', '--for=condition=Ready', 'host/host-1', 'host/host-2', '--timeout=60s'], { timeoutMs: 70_000 });
    for (const h of hosts) {
      const host = JSON.parse(await kova.k(['get', 'host', h.name, '-o', 'json'])) as Host;
      assert.equal(host.spec?.tunnelIP, h.tunnelIP, `${h.name}'s tunnel IP`);
      assert.ok((host.status?.capacity?.memory ?? '') !== '', `${h.name} reports capacity`);
    }
    // No agent for the machine itself: only the local hosts.
    const names = (await kova.k(['get', 'hosts', '-o', 'jsonpath={.items[*].metadata.name}'])).trim().split(/\s+/).sort();
    assert.deepEqual(names, ['host-1', 'host-2']);
  });

  it('boots one guest on each host and the guest on host-1 pings the guest on host-2 over VXLAN', async () => {
    assert.ok(kova);
    const [h1, h2] = hosts as [LocalHost, LocalHost];
    const net = `net-${id}`;
    await kova.k(['apply', '-f', '-'], {
      input: `
apiVersion: v1
kind: Namespace
metadata: {name: ${ns}}
---
apiVersion: kova.dev/v1alpha1
kind: Flavor
metadata: {name: mh-${id}}
spec: {vcpus: 1, memory: 192Mi, disk: 1Gi}
---
apiVersion: kova.dev/v1alpha1
kind: Image
metadata: {name: guest, namespace: ${ns}}
spec:
  source: {file: {path: ${guest.imagePath}}}
  sha256: ${guest.sha256}
---
apiVersion: kova.dev/v1alpha1
kind: Network
metadata: {name: ${net}, namespace: ${ns}}
spec: {type: vxlan, cidr: 10.232.0.0/24, dhcp: true}
---
apiVersion: kova.dev/v1alpha1
kind: Instance
metadata: {name: vb, namespace: ${ns}}
spec:
  flavor: mh-${id}
  image: guest
  hostName: host-2
  networks: [{network: ${net}, ip: 10.232.0.20}]
  userData: |
    #!/bin/sh
    # Pings va ten times a second for good, in the background, counting what is lost (the
    # migration test reads it; boot finishes, and reports, when this script returns).
    (
      n=0; lost=0
      while true; do
        n=$((n+1))
        ping -c 1 -W 1 10.232.0.10 >/dev/null 2>&1 || { lost=$((lost+1)); echo PINGLOST-$n; }
        [ $((n % 20)) -eq 0 ] && echo PINGSTAT sent=$n lost=$lost
        usleep 100000
      done
    ) </dev/null &
---
apiVersion: kova.dev/v1alpha1
kind: Instance
metadata: {name: va, namespace: ${ns}}
spec:
  flavor: mh-${id}
  image: guest
  hostName: host-1
  networks: [{network: ${net}, ip: 10.232.0.10}]
  userData: |
    #!/bin/sh
    ok=
    for i in $(seq 1 45); do
      if ping -c 1 -W 2 10.232.0.20 >/dev/null; then echo PING-${id}-OK; ok=1; break; fi
      sleep 1
    done
    [ -n "$ok" ] || echo PING-${id}-FAILED
    # A process that keeps counting, in the background: it must survive a live migration.
    ( i=0; while true; do i=$((i+1)); echo COUNTER-$i; sleep 1; done ) </dev/null &
`,
    });
    await kova.k(['wait', '--for=condition=Ready', 'instance/va', 'instance/vb', '-n', ns, '--timeout=150s'], { timeoutMs: 160_000 });
    const inst = async (name: string) => JSON.parse(await kova!.k(['get', 'instance', name, '-n', ns, '-o', 'json'])) as Instance;
    const [va, vb] = [await inst('va'), await inst('vb')];
    assert.equal(va.status?.hostName, 'host-1');
    assert.equal(vb.status?.hostName, 'host-2');
    // Each domain runs under its own host's libvirtd, and not under the other's.
    const [da, db] = [domainName(ns, 'va', va.metadata.uid!), domainName(ns, 'vb', vb.metadata.uid!)];
    assert.match(await virsh(h1.uri, 'domstate', da), /running/);
    assert.match(await virsh(h2.uri, 'domstate', db), /running/);
    await assert.rejects(virsh(h2.uri, 'domstate', da));
    await assert.rejects(virsh(h1.uri, 'domstate', db));

    await eventually(async () => /KOVA-GUEST-BOOTED hostname=vb .*ip=10\.232\.0\.20 /.test(await consoleOn(kova!, h2, 'vb', ns)), 120_000, 'vb booted with its address on host-2');
    const logA = await eventually(async () => {
      const log = await consoleOn(kova!, h1, 'va', ns);
      return new RegExp(`PING-${id}-(OK|FAILED)`).test(log) && log;
    }, 150_000, 'va pinged vb');
    assert.match(logA, /KOVA-GUEST-BOOTED hostname=va .*ip=10\.232\.0\.10 /);
    assert.match(logA, new RegExp(`PING-${id}-OK`), `va (host-1) reaches vb (host-2) across VXLAN; console:\n${logA.slice(-2000)}`);
    // The traffic went through the hosts' tunnel: each host's VXLAN forwarding names the other's tunnel IP.
    const fdb = (await run('bridge', ['-n', h1.netns, 'fdb', 'show'])).stdout;
    assert.match(fdb, new RegExp(`dst ${h2.tunnelIP.replace(/\./g, '\\.')}\\b`), `host-1 forwards to host-2's tunnel IP:\n${fdb}`);
  });

  it('live-migrates va from host-1 to host-2 with block copy: its counter keeps counting, vb keeps reaching it, and the binding, ports and allocation follow', async () => {
    assert.ok(kova);
    const [h1, h2] = hosts as [LocalHost, LocalHost];
    const inst = async (name: string) => JSON.parse(await kova!.k(['get', 'instance', name, '-n', ns, '-o', 'json'])) as Instance;
    const counters = (log: string) => [...log.matchAll(/COUNTER-(\d+)/g)].map((m) => Number(m[1]));
    const before = await eventually(async () => {
      const c = counters(await consoleOn(kova!, h1, 'va', ns));
      return c.length >= 3 && c;
    }, 60_000, 'va counts');
    const lostBefore = (await consoleOn(kova!, h2, 'vb', ns)).match(/PINGLOST-/g)?.length ?? 0;
    const t0 = Date.now();
    const m = await migrateAndWait('va', 'targetHost: host-2');
    const wallMs = Date.now() - t0;
    assert.equal(m.status.sourceHost, 'host-1');
    assert.equal(m.status.targetHost, 'host-2');
    assert.equal(m.status.storage, 'BlockCopy');
    const va = await inst('va');
    assert.equal(va.status?.hostName, 'host-2');
    const dom = domainName(ns, 'va', va.metadata.uid!);
    assert.match(await virsh(h2.uri, 'domstate', dom), /running/);
    await assert.rejects(virsh(h1.uri, 'domstate', dom), 'gone from host-1');
    // The same guest process counts on, past where it was before the move.
    const lastBefore = before[before.length - 1]!;
    await eventually(async () => counters(await consoleOn(kova!, h2, 'va', ns)).some((n) => n > lastBefore + 2), 60_000, `va counts past ${lastBefore} on host-2`);
    // Without --connect, kova console finds the libvirtd of the host that runs it now.
    const found = await kovaCli(kova, ['console', 'va', '-n', ns, '--log']);
    assert.equal(found.code, 0, found.stderr);
    assert.ok(counters(found.stdout).some((n) => n > lastBefore), 'kova console --log reads va on host-2 by itself');
    // vb (on host-2) kept reaching va through the move, losing at most a few pings.
    await new Promise((r) => setTimeout(r, 3000));
    const lost = ((await consoleOn(kova!, h2, 'vb', ns)).match(/PINGLOST-/g)?.length ?? 0) - lostBefore;
    assert.ok(lost <= 20, `vb lost ${lost} pings (10 Hz) during the move`);
    const port = JSON.parse(await kova.k(['get', 'ports', '-n', ns, '-o', 'json'])).items.find((p: { status?: { instance?: string } }) => p.status?.instance === 'va');
    assert.equal(port.status.hostName, 'host-2');
    assert.equal(port.status.migratingTo, undefined);
    await eventually(async () => {
      const hostObjs = await Promise.all(['host-1', 'host-2'].map(async (h) => JSON.parse(await kova!.k(['get', 'host', h, '-o', 'json'])) as Host));
      return !hostObjs[0]!.status?.allocations?.some((a) => a.uid === va.metadata.uid) && !!hostObjs[1]!.status?.allocations?.some((a) => a.uid === va.metadata.uid);
    }, 30_000, 'only host-2 charges va');
    process.stdout.write(`# migration: wall ${wallMs} ms, downtime ${m.status.downtimeMs} ms, ${lost} pings lost\n`);
  });

  // A shared VolumeType without multiAttach: qcow2 files on the shared path, as on an NFS export.
  it('live-migrates a guest that boots from a shared volume without copying its disk (storage Shared), and it keeps counting', async () => {
    assert.ok(kova);
    const [h1, h2] = hosts as [LocalHost, LocalHost];
    await kova.k(['apply', '-f', '-'], {
      input: `
apiVersion: kova.dev/v1alpha1
kind: VolumeType
metadata: {name: nfs-${id}}
spec: {backend: shared, sharedPath: ${join(dataDir, 'shared-volumes')}}
---
apiVersion: kova.dev/v1alpha1
kind: Volume
metadata: {name: root-vs, namespace: ${ns}}
spec: {size: 256Mi, volumeType: nfs-${id}, source: {image: guest}}
---
apiVersion: kova.dev/v1alpha1
kind: Instance
metadata: {name: vs, namespace: ${ns}}
spec:
  flavor: mh-${id}
  hostName: host-1
  volumes: [{volume: root-vs, bootOrder: 1}]
  userData: |
    #!/bin/sh
    ( i=0; while true; do i=$((i+1)); echo COUNTER-$i; sleep 1; done ) </dev/null &
`,
    });
    await kova.k(['wait', '--for=condition=Ready', 'instance/vs', '-n', ns, '--timeout=180s'], { timeoutMs: 190_000 }).catch(async (e) => {
      throw new Error(`${(e as Error).message}\n${await kova!.k(['get', 'instance/vs', 'volume/root-vs', '-n', ns, '-o', 'yaml'])}`);
    });
    const counters = (log: string) => [...log.matchAll(/COUNTER-(\d+)/g)].map((m) => Number(m[1]));
    const before = await eventually(async () => {
      const c = counters(await consoleOn(kova!, h1, 'vs', ns));
      return c.length >= 2 && c;
    }, 120_000, 'vs counts on host-1');
    const m = await migrateAndWait('vs');
    assert.equal(m.status.storage, 'Shared', 'every disk is on shared storage: nothing is copied');
    assert.equal(m.status.targetHost, 'host-2', 'the only other host');
    const vs = JSON.parse(await kova.k(['get', 'instance', 'vs', '-n', ns, '-o', 'json'])) as Instance;
    assert.equal(vs.status?.hostName, 'host-2');
    assert.match(await virsh(h2.uri, 'domstate', domainName(ns, 'vs', vs.metadata.uid!)), /running/);
    const lastBefore = before[before.length - 1]!;
    await eventually(async () => counters(await consoleOn(kova!, h2, 'vs', ns)).some((n) => n > lastBefore + 2), 60_000, `vs counts past ${lastBefore} on host-2`);
    const vol = JSON.parse(await kova.k(['get', 'volume', 'root-vs', '-n', ns, '-o', 'json']));
    assert.deepEqual(vol.status.attachments.map((a: { instance: string; host: string }) => [a.instance, a.host]), [['vs', 'host-2']]);
    await kova.k(['delete', 'instance', 'vs', '-n', ns, '--timeout=60s'], { timeoutMs: 70_000 });
    await kova.k(['delete', 'volume', 'root-vs', '-n', ns, '--timeout=60s'], { timeoutMs: 70_000 });
    await kova.k(['delete', 'volumetype', `nfs-${id}`]);
  });

  it('kova up stopping leaves the guests running; teardown removes daemons, QEMUs, namespaces and domains', async () => {
    assert.ok(kova);
    const pidsOf = async () => (await run('pgrep', ['-f', dataDir]).catch(() => ({ stdout: '' }))).stdout.split('\n').filter(Boolean);
    await kova.stop();
    kova = undefined;
    // The guests (QEMUs, whose command lines name their disks under the data dir) outlive kova
    // up, as across a libvirtd restart; its daemons and agents do not.
    const comms = await Promise.all((await pidsOf()).map(async (p) => (await readFile(`/proc/${p}/comm`, 'utf8').catch(() => '')).trim()));
    assert.equal(comms.filter((c) => c.startsWith('qemu')).length, 2, `the two guests keep running: ${comms.join(', ')}`);
    assert.deepEqual(comms.filter((c) => c === 'libvirtd' || c === 'node'), [], 'no libvirtd or kova process is left');
    for (const h of hosts) assert.equal(await run('virsh', ['-c', h.uri, 'version'], { timeout: 10_000 }).then(() => 'answers', () => 'gone'), 'gone', `${h.name}'s libvirtd stopped`);
    await teardownLocalHosts(dataDir);
    assert.deepEqual(await pidsOf(), [], 'no process refers to the data dir');
    const namespaces = (await run('ip', ['netns', 'list'])).stdout;
    for (const h of hosts) assert.ok(!namespaces.includes(h.netns), `${h.netns} deleted`);
  });
});
