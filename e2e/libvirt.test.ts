// Real VMs from kubectl apply: `kova up` with the libvirt driver (the default) boots the test
// guest (guest/) under TCG from an Image imported by the image controller, with cloud-init
// user-data and a KeyPair; power verbs, the console, deletion cleanup, bad images, and an agent
// killed with SIGKILL that adopts its running domain on restart. Needs root, libvirtd and what
// guest/build.ts needs.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { Instance } from '../api/kinds/index.js';
import { INSTANCES, KovaClient } from '../client/client.js';
import { domainName } from '../node-agent/driver.js';
import { buildTestGuest, type TestGuest } from '../guest/build.js';
import { eventually, KOVA_BIN, KUBECTL, startKova, type Kova } from './harness.js';
import { consoleLog, kovaCli } from './console.js';

const run = promisify(execFile);
const GUEST_DIR = process.env.KOVA_TEST_GUEST_DIR ?? '/var/tmp/kova-test-guest';
const KUBECTL_PLUGIN = new URL('../cli/kubectl-kova.js', import.meta.url).pathname;
const BOOTED = /KOVA-GUEST-BOOTED hostname=(\S+) instance-id=\S+ ip=\S+ userdata=(\S+)/g;

const virsh = async (...args: string[]) => (await run('virsh', ['-q', '-c', 'qemu:///system', ...args])).stdout.trim();
const domainExists = (dom: string) => virsh('domuuid', dom).then(() => true, () => false);

async function getJson(kova: Kova, args: string[]): Promise<any> {
  return JSON.parse(await kova.k([...args, '-o', 'json']));
}

function cond(obj: any, type: string): any {
  return obj.status?.conditions?.find((c: any) => c.type === type);
}

/**
 * Makes a spec change the instance's agent must acknowledge (status.observedGeneration) without
 * acting on it (nodeSelector: a bound instance is never rescheduled), and waits for the
 * acknowledgement. `writes` holds the resourceVersions of the instance's writes after `fromRv`,
 * `control` the change's own.
 */
async function controlChange(kova: Kova, ns: string, name: string, fromRv: string): Promise<{ writes: number[]; control: number; stop: () => void }> {
  const api = KovaClient.fromFile(kova.kubeconfig);
  const writes: number[] = [];
  const w = await api.watch(INSTANCES, ns, { resourceVersion: fromRv }, (_type, o) => {
    if (o.metadata.name === name) writes.push(Number(o.metadata.resourceVersion));
  }, () => undefined);
  const patched = await api.mergePatch(INSTANCES, ns, name, { spec: { nodeSelector: { 'kova.dev/e2e-control': String(Date.now()) } } });
  await eventually(async () => (await api.get<Instance>(INSTANCES, ns, name))?.status?.observedGeneration === patched.metadata.generation, 30_000, `the agent acknowledges the control change of ${name}`);
  const control = Number(patched.metadata.resourceVersion);
  // The watch delivers in order: once it has the change, it has every write before it.
  await eventually(() => writes.some((rv) => rv >= control), 10_000, `the watch sees the control change of ${name}`);
  return { writes, control, stop: () => { w.abort(); api.close(); } };
}

function manifests(o: { ns: string; imageNs: string; guest: TestGuest; id: string; publicKey: string; flavor: string }): string {
  return `
apiVersion: v1
kind: Namespace
metadata: {name: ${o.ns}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ${o.imageNs}}
---
apiVersion: kova.dev/v1alpha1
kind: Flavor
metadata: {name: ${o.flavor}}
spec: {vcpus: 1, memory: 192Mi, disk: 1Gi}
---
apiVersion: kova.dev/v1alpha1
kind: Image
metadata: {name: guest, namespace: ${o.imageNs}}
spec:
  source: {file: {path: ${o.guest.imagePath}}}
  sha256: ${o.guest.sha256}
  visibility: Public
---
apiVersion: kova.dev/v1alpha1
kind: KeyPair
metadata: {name: mykey, namespace: ${o.ns}}
spec: {publicKey: "${o.publicKey}"}
`;
}

function instance(name: string, ns: string, flavor: string, image: string, extra = ''): string {
  return `
---
apiVersion: kova.dev/v1alpha1
kind: Instance
metadata: {name: ${name}, namespace: ${ns}}
spec:
  flavor: ${flavor}
  image: ${image}
${extra}`;
}

describe('slow: libvirt cloud: kubectl apply boots real VMs', () => {
  const id = randomBytes(3).toString('hex');
  const ns = `lv-${id}`;
  const imageNs = `lv-img-${id}`;
  const flavor = `lv-${id}`;
  let guest: TestGuest;
  let kova: Kova;
  let keyDir: string;
  let publicKey: string;
  let uid: string;
  let dom: string;

  before(async () => {
    guest = await buildTestGuest({ outDir: GUEST_DIR });
    keyDir = await mkdtemp('/tmp/kova-lv-key-');
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(keyDir, 'id')]);
    publicKey = (await readFile(join(keyDir, 'id.pub'), 'utf8')).trim();
    kova = await startKova([]); // default driver: libvirt
  });
  after(async () => {
    await kova?.stop();
    if (dom && (await domainExists(dom))) await virsh('destroy', dom).catch(() => {}).then(() => virsh('undefine', dom).catch(() => {}));
    await rm(keyDir, { recursive: true, force: true });
  });

  it('imports the image, boots the instance with user-data and key, and shows its console', async () => {
    await kova.k(['apply', '-f', '-'], { input: manifests({ ns, imageNs, guest, id, publicKey, flavor }) });
    // A Public image in another namespace, user-data as a shell script.
    await kova.k(['apply', '-f', '-'], { input: instance('vm1', ns, flavor, 'guest', `  keyPair: mykey\n  userData: |\n    #!/bin/sh\n    echo "KOVA-E2E-${id} from $(hostname)"\n`) });
    await kova.k(['wait', '--for=jsonpath={.status.phase}=Ready', `image/guest`, '-n', imageNs, '--timeout=60s']);
    const img = await getJson(kova, ['get', 'image', 'guest', '-n', imageNs]);
    assert.equal(img.status.sha256, guest.sha256);
    assert.equal(img.status.format, 'qcow2');
    assert.equal(img.status.size, guest.sizeBytes);
    assert.ok(img.status.virtualSize >= guest.sizeBytes);
    assert.equal(img.status.progress, '100%');
    assert.ok(existsSync(join(kova.dataDir, 'images', `${guest.sha256}.qcow2`)), 'in the image store');

    const kp = await getJson(kova, ['get', 'keypair', 'mykey', '-n', ns]);
    const want = (await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', join(keyDir, 'id.pub')])).stdout.split(' ')[1];
    assert.equal(kp.status.fingerprint, want);

    await kova.k(['wait', '--for=condition=Ready', 'instance/vm1', '-n', ns, '--timeout=50s']);
    const vm = await getJson(kova, ['get', 'instance', 'vm1', '-n', ns]);
    uid = vm.metadata.uid;
    dom = domainName(ns, 'vm1', uid);
    assert.equal(vm.status.phase, 'Running');
    assert.equal(vm.status.powerState, 'Running');
    assert.equal(cond(vm, 'ImageReady')?.status, 'True');
    assert.ok(await domainExists(dom));
    assert.ok(existsSync(join(kova.dataDir, 'libvirt', 'image-cache', `${guest.sha256}.qcow2`)), 'in the host image cache');

    const log = await eventually(async () => {
      const l = await consoleLog(kova, 'vm1', ns);
      return l.includes('KOVA-GUEST-BOOTED') ? l : undefined;
    }, 60_000, 'boot marker on the console log');
    const [m] = [...log.matchAll(BOOTED)];
    assert.equal(m[1], 'vm1', 'hostname is the instance name');
    // The key from the KeyPair arrives as cloud-config (keys=1), the script runs (rc=0).
    assert.equal(m[2], 'cloud-config:keys=1:runcmd=0:rc=0+script:rc=0');
    assert.match(log, new RegExp(`KOVA-E2E-${id} from vm1`));

    // Interactive attach (virsh console) needs a terminal: `script` gives it one. A command typed
    // into the guest's shell echoes back; Ctrl-] detaches.
    const term = spawn('script', ['-qfec', `${process.execPath} ${KOVA_BIN} console vm1 -n ${ns}`, '/dev/null'], { env: { ...process.env, KUBECONFIG: kova.kubeconfig }, stdio: ['pipe', 'pipe', 'pipe'] });
    let screen = '';
    term.stdout!.on('data', (d) => (screen += d));
    term.stderr!.on('data', (d) => (screen += d));
    const exited = new Promise((r) => term.once('exit', r));
    try {
      await eventually(async () => {
        term.stdin!.write('echo KOVA-ATTACHED-$((6*7))\r');
        await new Promise((r) => setTimeout(r, 500));
        return screen.includes('KOVA-ATTACHED-42');
      }, 20_000, `console echo; screen:\n${screen}`);
      term.stdin!.write('\x1d');
      await Promise.race([exited, new Promise((_, rej) => setTimeout(() => rej(new Error('console did not detach on Ctrl-]')), 10_000))]);
    } finally {
      term.kill('SIGKILL');
    }

    // The same through the kubectl plugin.
    const bin = await mkdtemp('/tmp/kova-lv-bin-');
    try {
      await symlink(KUBECTL_PLUGIN, join(bin, 'kubectl-kova'));
      await run('chmod', ['+x', KUBECTL_PLUGIN]);
      // kubectl refuses its own flags before a plugin name: the plugin gets KUBECONFIG from the environment.
      const r = await run(KUBECTL, ['kova', 'console', 'vm1', '-n', ns, '--log'], { env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, KUBECONFIG: kova.kubeconfig } });
      assert.match(r.stdout, /KOVA-GUEST-BOOTED hostname=vm1/);
    } finally {
      await rm(bin, { recursive: true, force: true });
    }
  });

  it('stop, start, restart, pause and unpause act on the real domain', async () => {
    const status = async () => (await getJson(kova, ['get', 'instance', 'vm1', '-n', ns])).status;
    const domId = () => virsh('domid', dom);
    const stop = await kovaCli(kova, ['stop', 'vm1', '-n', ns]);
    assert.equal(stop.code, 0, stop.stderr);
    await eventually(async () => (await status()).powerState === 'Shutdown', 90_000, 'powerState Shutdown');
    assert.equal((await status()).phase, 'Stopped');
    assert.match(await virsh('domstate', dom), /shut off/);
    assert.match(await consoleLog(kova, 'vm1', ns), /KOVA-GUEST-SHUTDOWN hostname=vm1/, 'a clean ACPI shutdown');

    assert.equal((await kovaCli(kova, ['start', 'vm1', '-n', ns])).code, 0);
    await eventually(async () => (await status()).powerState === 'Running', 60_000, 'powerState Running');
    await eventually(async () => /KOVA-GUEST-BOOTED hostname=vm1/.test(await consoleLog(kova, 'vm1', ns)), 60_000, 'booted again');
    const idBefore = await domId();

    const before = (await status()).startedAt;
    assert.equal((await kovaCli(kova, ['restart', 'vm1', '-n', ns])).code, 0);
    await eventually(async () => {
      const s = await status();
      return s.observedRestartedAt && s.powerState === 'Running';
    }, 60_000, 'restart acknowledged');
    assert.notEqual(await domId(), idBefore, 'a new QEMU process');
    assert.ok((await status()).startedAt >= before);
    await eventually(async () => /KOVA-GUEST-BOOTED hostname=vm1/.test(await consoleLog(kova, 'vm1', ns)), 60_000, 'booted after restart');

    assert.equal((await kovaCli(kova, ['pause', 'vm1', '-n', ns])).code, 0);
    await eventually(async () => (await status()).powerState === 'Paused', 30_000, 'powerState Paused');
    assert.match(await virsh('domstate', dom), /paused/);
    const s = await status();
    assert.equal(s.phase, 'Running');
    assert.equal(s.conditions.find((c: any) => c.type === 'Paused')?.status, 'True');
    assert.equal((await kovaCli(kova, ['unpause', 'vm1', '-n', ns])).code, 0);
    await eventually(async () => (await status()).powerState === 'Running', 30_000, 'powerState Running after unpause');
    assert.match(await virsh('domstate', dom), /running/);
  });

  it('imports an image over HTTP', async () => {
    const body = await readFile(guest.imagePath);
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-length': String(body.length) });
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/guest.qcow2`;
      await kova.k(['apply', '-f', '-'], { input: `apiVersion: kova.dev/v1alpha1\nkind: Image\nmetadata: {name: web, namespace: ${ns}}\nspec:\n  source: {http: {url: "${url}"}}\n` });
      await kova.k(['wait', '--for=jsonpath={.status.phase}=Ready', 'image/web', '-n', ns, '--timeout=50s']);
      const img = await getJson(kova, ['get', 'image', 'web', '-n', ns]);
      assert.equal(img.status.sha256, guest.sha256, 'digest recorded without spec.sha256');
      assert.equal(img.status.progress, '100%');
      assert.equal(cond(img, 'Ready').reason, 'Imported');
    } finally {
      server.close();
    }

    // A source that is not there yet is retried (no Failed), and imported once it appears.
    const later = join(kova.dataDir, 'later.qcow2');
    await kova.k(['apply', '-f', '-'], { input: `apiVersion: kova.dev/v1alpha1\nkind: Image\nmetadata: {name: later, namespace: ${ns}}\nspec:\n  source: {file: {path: ${later}}}\n` });
    const waiting = await eventually(async () => {
      const i = await getJson(kova, ['get', 'image', 'later', '-n', ns]);
      return cond(i, 'Ready')?.reason === 'SourceUnavailable' ? i : undefined;
    }, 20_000, 'SourceUnavailable');
    assert.equal(waiting.status.phase, 'Importing');
    assert.match(cond(waiting, 'Ready').message, /later\.qcow2.*retrying in \d+ s/);
    await copyFile(guest.imagePath, later);
    await kova.k(['wait', '--for=jsonpath={.status.phase}=Ready', 'image/later', '-n', ns, '--timeout=30s']);
  });

  it('bad images fail clearly, and an instance using one waits without a domain', async () => {
    const junk = join(kova.dataDir, 'junk.img');
    await writeFile(junk, Buffer.concat([Buffer.from('<html>404</html>\n'), randomBytes(4000)]));
    await kova.k(['apply', '-f', '-'], {
      input: `
apiVersion: kova.dev/v1alpha1
kind: Image
metadata: {name: badsum, namespace: ${ns}}
spec:
  source: {file: {path: ${guest.imagePath}}}
  sha256: "${'0'.repeat(64)}"
---
apiVersion: kova.dev/v1alpha1
kind: Image
metadata: {name: junk, namespace: ${ns}}
spec:
  source: {file: {path: ${junk}}}
${instance('vm-bad', ns, flavor, 'badsum')}`,
    });
    await kova.k(['wait', '--for=jsonpath={.status.phase}=Failed', 'image/badsum', 'image/junk', '-n', ns, '--timeout=60s']);
    const badsum = await getJson(kova, ['get', 'image', 'badsum', '-n', ns]);
    assert.equal(cond(badsum, 'Ready').reason, 'ChecksumMismatch');
    assert.match(cond(badsum, 'Ready').message, new RegExp(`expected sha256 0{64}.*actual ${guest.sha256}`));
    assert.equal(badsum.status.sha256, guest.sha256, 'the actual digest is recorded');
    const junkImg = await getJson(kova, ['get', 'image', 'junk', '-n', ns]);
    assert.equal(cond(junkImg, 'Ready').reason, 'UnsupportedFormat');
    assert.match(cond(junkImg, 'Ready').message, /unsupported image format/);
    const events = await kova.k(['get', 'events', '-n', ns, '--field-selector', 'involvedObject.name=badsum', '-o', 'custom-columns=R:.reason', '--no-headers']);
    assert.match(events, /ChecksumMismatch/);

    const waiting = await eventually(async () => {
      const v = await getJson(kova, ['get', 'instance', 'vm-bad', '-n', ns]);
      return cond(v, 'ImageReady')?.status === 'False' ? v : undefined;
    }, 30_000, 'ImageReady=False');
    assert.equal(cond(waiting, 'ImageReady').reason, 'ImageNotReady');
    assert.match(cond(waiting, 'ImageReady').message, new RegExp(`image ${ns}/badsum is Failed`));
    assert.equal(waiting.status.phase, 'Provisioning');
    assert.equal(cond(waiting, 'Ready').status, 'False');
    const badDom = domainName(ns, 'vm-bad', waiting.metadata.uid);
    // Control: a spec change the agent must acknowledge (observedGeneration), then nothing more.
    // It reconciles an instance one event at a time, so by then it has acted on the waiting
    // state; the watch shows whether it wrote anything in between.
    const { writes, control, stop } = await controlChange(kova, ns, 'vm-bad', waiting.metadata.resourceVersion);
    stop();
    assert.equal(await domainExists(badDom), false);
    assert.equal(existsSync(join(kova.dataDir, 'libvirt', 'domains', badDom)), false, 'no overlay or seed');
    assert.deepEqual(writes.filter((rv) => rv < control), [], 'no status churn while waiting');
    const failed = await kova.k(['get', 'events', '-n', ns, '--field-selector', 'involvedObject.name=vm-bad', '-o', 'custom-columns=R:.reason,C:.count', '--no-headers']);
    assert.doesNotMatch(failed, /Failed/, 'waiting is no spawn failure');
    const c = await kovaCli(kova, ['console', 'vm-bad', '-n', ns, '--log']);
    assert.notEqual(c.code, 0);
    assert.match(c.stderr, /does not exist on this machine/);

    // Fixing the image spec lets it boot: the agent reacts to the Image change.
    await kova.k(['patch', 'image', 'badsum', '-n', ns, '--type=merge', '-p', JSON.stringify({ spec: { sha256: guest.sha256 } })]);
    await kova.k(['wait', '--for=condition=Ready', 'instance/vm-bad', '-n', ns, '--timeout=50s']);
    assert.equal(await domainExists(badDom), true);
    await kova.k(['delete', 'instance', 'vm-bad', '-n', ns, '--timeout=60s']);
  });

  it('delete removes the domain, its overlay and its seed', async () => {
    const dir = join(kova.dataDir, 'libvirt', 'domains', dom);
    assert.ok(existsSync(join(dir, 'root.qcow2')) && existsSync(join(dir, 'seed.iso')));
    await kova.k(['delete', 'instance', 'vm1', '-n', ns, '--timeout=60s']);
    const names = await virsh('list', '--all', '--name');
    assert.ok(!names.split('\n').includes(dom), `${dom} still in virsh list --all:\n${names}`);
    assert.equal(existsSync(dir), false);
    // The cached image stays for the next instance.
    assert.ok(existsSync(join(kova.dataDir, 'libvirt', 'image-cache', `${guest.sha256}.qcow2`)));
  });

  it('two guests on one network get their Port addresses by DHCP and ping each other', async () => {
    const net = `net-${id}`;
    // The host's own networking: a bridge for the network, a tap per Port, dnsmasq with the Ports' addresses.
    await kova.k(['apply', '-f', '-'], {
      input: `
apiVersion: kova.dev/v1alpha1
kind: Network
metadata: {name: ${net}, namespace: ${ns}}
spec: {type: vxlan, cidr: 10.231.0.0/24, dhcp: true}
${instance('na', ns, flavor, 'guest', `  networks: [{network: ${net}, ip: 10.231.0.10}]\n`)}
${instance('nb', ns, flavor, 'guest', `  networks: [{network: ${net}}]\n  userData: |\n    #!/bin/sh\n    ok=\n    for i in $(seq 1 45); do\n      if ping -c 1 -W 2 10.231.0.10 >/dev/null; then echo PING-${id}-OK; ok=1; break; fi\n      sleep 1\n    done\n    [ -n "$ok" ] || echo PING-${id}-FAILED\n`)}`,
    });
    await kova.k(['wait', '--for=condition=Ready', 'instance/na', 'instance/nb', '-n', ns, '--timeout=90s'], { timeoutMs: 100_000 });
    const portIP = (await kova.k(['get', 'port', 'nb-0', '-n', ns, '-o', 'jsonpath={.status.ip}'])).trim();
    assert.match(portIP, /^10\.231\.0\.\d+$/);
    const logA = await eventually(async () => {
      const log = await consoleLog(kova, 'na', ns);
      return /KOVA-GUEST-BOOTED hostname=na .*ip=10\.231\.0\.10 /.test(log) && log;
    }, 60_000, 'na booted with its address');
    assert.ok(logA);
    const logB = await eventually(async () => {
      const log = await consoleLog(kova, 'nb', ns);
      return new RegExp(`PING-${id}-(OK|FAILED)`).test(log) && log;
    }, 150_000, 'nb pinged na');
    assert.match(logB, new RegExp(`KOVA-GUEST-BOOTED hostname=nb .*ip=${portIP.replace(/\./g, '\\.')} `), 'nb took its Port address by DHCP');
    assert.match(logB, new RegExp(`PING-${id}-OK`));
    const bridge = (await kova.k(['get', 'network', net, '-n', ns, '-o', 'jsonpath={.status.bridge}'])).trim();
    assert.match(bridge, /^kvb-/);
    await kova.k(['delete', 'instance', 'na', 'nb', '-n', ns, '--timeout=60s']);
    await kova.k(['delete', 'network', net, '-n', ns, '--timeout=60s']);
    // The agent converges the host back: bridge, taps and the network's dnsmasq are gone.
    await eventually(async () => {
      const links = (await run('ip', ['-br', 'link'])).stdout;
      const dnsmasq = await run('pgrep', ['-f', `${bridge}.conf`]).then(() => true, () => false);
      return !links.includes(bridge) && !dnsmasq;
    }, 30_000, `bridge ${bridge} and its dnsmasq removed`);
  });
});

describe('slow: libvirt agent restart adopts its running domain', () => {
  const id = randomBytes(3).toString('hex');
  const ns = `lva-${id}`;
  const flavor = `lva-${id}`;
  const host = `lva-${id}`;
  let guest: TestGuest;
  let kova: Kova;
  let agent: ChildProcess | undefined;
  let agentOut = '';
  let dom: string | undefined;

  const startAgent = async () => {
    agentOut = '';
    const p = spawn(process.execPath, [KOVA_BIN, 'agent', '--driver', 'libvirt', '--host', host, '--data-dir', kova.dataDir, '--kubeconfig', kova.kubeconfig], { stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout!.on('data', (d) => (agentOut += d));
    p.stderr!.on('data', (d) => (agentOut += d));
    agent = p;
    await eventually(() => agentOut.includes('ready: agent'), 60_000, `agent ready:\n${agentOut}`);
  };

  before(async () => {
    guest = await buildTestGuest({ outDir: GUEST_DIR });
    kova = await startKova(['--no-agents']);
    await mkdir(join(kova.dataDir, 'libvirt'), { recursive: true });
    await startAgent();
  });
  after(async () => {
    agent?.kill('SIGKILL');
    await kova?.stop();
    if (dom && (await domainExists(dom))) await virsh('destroy', dom).catch(() => {}).then(() => virsh('undefine', dom!).catch(() => {}));
  });

  it('kill -9 the agent, start it again: same domain, no reboot, still Running', async () => {
    await kova.k(['apply', '-f', '-'], {
      input: `
apiVersion: v1
kind: Namespace
metadata: {name: ${ns}}
---
apiVersion: kova.dev/v1alpha1
kind: Flavor
metadata: {name: ${flavor}}
spec: {vcpus: 1, memory: 192Mi, disk: 1Gi}
---
apiVersion: kova.dev/v1alpha1
kind: Image
metadata: {name: guest, namespace: ${ns}}
spec:
  source: {file: {path: ${guest.imagePath}}}
${instance('vm1', ns, flavor, 'guest')}`,
    });
    await kova.k(['wait', '--for=condition=Ready', 'instance/vm1', '-n', ns, '--timeout=50s']).catch(async (e) => {
      throw new Error(`${e.message}\n${await kova.k(['get', 'instance,host', '-A', '-o', 'yaml'])}\nagent:\n${agentOut}\nkova up:\n${kova.output().slice(-3000)}`);
    });
    const before = await getJson(kova, ['get', 'instance', 'vm1', '-n', ns]);
    assert.equal(before.status.hostName, host);
    dom = domainName(ns, 'vm1', before.metadata.uid);
    await eventually(async () => (await consoleLog(kova, 'vm1', ns)).includes('KOVA-GUEST-BOOTED'), 60_000, 'boot marker');
    const domId = await virsh('domid', dom);

    agent!.kill('SIGKILL');
    await new Promise((r) => agent!.once('exit', r));
    await startAgent();
    assert.match(agentOut, /adopted 1 domain\(s\)/);
    // Control: the restarted agent acknowledges a spec change, so it has reconciled vm1 by then.
    (await controlChange(kova, ns, 'vm1', before.metadata.resourceVersion)).stop();
    assert.equal(await virsh('domid', dom), domId, 'the same QEMU process: not rebooted');
    const log = await consoleLog(kova, 'vm1', ns);
    assert.equal([...log.matchAll(BOOTED)].length, 1, 'booted once');
    const after = await getJson(kova, ['get', 'instance', 'vm1', '-n', ns]);
    assert.equal(after.status.phase, 'Running');
    assert.equal(after.status.startedAt, before.status.startedAt);
    assert.equal(after.status.restartCount, 0);
    assert.equal(after.status.domainUUID, before.status.domainUUID);

    await kova.k(['delete', 'instance', 'vm1', '-n', ns, '--timeout=60s']);
    assert.equal(await domainExists(dom), false);
  });
});
