// npm run bench:boot — time from "boot this VM" to the guest's boot marker on its serial
// console, raw libvirt versus kova, with the test guest (guest/) under TCG (KVM if usable):
// - raw: qemu-img overlay + NoCloud seed + `virsh create` of XML from the same converter
//   (node-agent/libvirt/domain-xml.ts), the minimum any tool built on libvirt has to do;
// - kova: `kubectl apply` of the equivalent Instance on a fresh `kova up` (libvirt driver),
//   first boot (the Image is imported meanwhile) and cached boots (a second instance of the same
//   image), to the boot marker and to the Ready condition.
// Each is run --rounds times (median reported). The last output line is one JSON object.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { median } from './common.js';
import { domainName } from '../node-agent/driver.js';
import { toDomainXml } from '../node-agent/libvirt/domain-xml.js';
import { detectKvm } from '../node-agent/libvirt/libvirt-driver.js';
import { buildNoCloudSeed } from '../node-agent/libvirt/nocloud.js';
import { buildTestGuest } from '../guest/build.js';
import { startKova } from '../e2e/harness.js';
import type { Kova } from '../e2e/harness.js';

const run = promisify(execFile);
const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, 'guest-dir': { type: 'string', default: '/var/tmp/kova-test-guest' } } });
const ROUNDS = Math.max(1, Number(values.rounds));
const MEMORY = 192 * 1024 * 1024;
const USER_DATA = '#!/bin/sh\necho bench\n';
const MARKER = 'KOVA-GUEST-BOOTED';
const log = (m: string) => process.stderr.write(`bench:boot: ${m}\n`);
const virsh = (...a: string[]) => run('virsh', ['-q', '-c', 'qemu:///system', ...a]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const secs = (ms: number) => Math.round(ms) / 1000;

/** When `file` (the console log, created as QEMU starts) appeared, and when it first held the boot marker. */
async function markerAt(file: string, timeoutMs = 120_000): Promise<{ qemuAt: number; markerAt: number }> {
  const until = Date.now() + timeoutMs;
  let qemuAt: number | undefined;
  while (Date.now() < until) {
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (text !== undefined) qemuAt ??= performance.now();
    if (text?.includes(MARKER)) return { qemuAt: qemuAt!, markerAt: performance.now() };
    await sleep(20);
  }
  throw new Error(`no boot marker in ${file} after ${timeoutMs} ms`);
}

interface Times {
  /** Until the console log exists (virtlogd opens it as QEMU is launched). */
  qemuMs: number;
  /** Until the boot marker. */
  bootMs: number;
}

async function rawBoot(image: string, dir: string, kvm: boolean, i: number): Promise<Times> {
  const name = `kova-bench-raw-${process.pid}-${i}`;
  const d = join(dir, name);
  await mkdir(d, { mode: 0o711 });
  const t0 = performance.now();
  const overlay = join(d, 'root.qcow2');
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', image, overlay, String(1024 ** 3)]);
  const seed = join(d, 'seed.iso');
  await buildNoCloudSeed(seed, { instanceId: randomUUID(), hostname: `raw-${i}`, userData: USER_DATA });
  const consoleLog = join(d, 'console.log');
  const xml = toDomainXml({ name, uuid: randomUUID(), vcpus: 1, memoryBytes: MEMORY, kvm, rootDisk: { path: overlay, format: 'qcow2' }, seedIsoPath: seed, nics: [], consoleLogPath: consoleLog });
  const xmlPath = join(d, 'domain.xml');
  await writeFile(xmlPath, xml);
  await virsh('create', xmlPath);
  try {
    const m = await markerAt(consoleLog);
    return { qemuMs: m.qemuAt - t0, bootMs: m.markerAt - t0 };
  } finally {
    await virsh('destroy', name).catch(() => {});
  }
}

interface KovaTimes extends Times {
  readyMs: number;
}

/** kubectl apply of one Instance → boot marker in its console log, and → Ready. */
async function kovaBoot(kova: Kova, ns: string, name: string, extra = ''): Promise<KovaTimes> {
  const t0 = performance.now();
  const out = JSON.parse(await kova.k(['apply', '-o', 'json', '-f', '-'], {
    input: `${extra}
---
apiVersion: kova.dev/v1alpha1
kind: Instance
metadata: {name: ${name}, namespace: ${ns}}
spec:
  flavor: bench
  image: guest
  userData: |
    #!/bin/sh
    echo bench
`,
  }));
  const objs = out.kind === 'List' ? out.items : [out];
  const inst = objs.find((o: { kind: string }) => o.kind === 'Instance');
  const file = join(kova.dataDir, 'libvirt', 'domains', domainName(ns, name, inst.metadata.uid), 'console.log');
  let readyMs = 0;
  const ready = (async () => {
    await kova.k(['wait', '--for=condition=Ready', `instance/${name}`, '-n', ns, '--timeout=120s'], { timeoutMs: 130_000 });
    readyMs = performance.now() - t0;
  })();
  const m = await markerAt(file);
  await ready;
  return { qemuMs: m.qemuAt - t0, bootMs: m.markerAt - t0, readyMs };
}

async function main(): Promise<void> {
  const guest = await buildTestGuest({ outDir: values['guest-dir']! });
  const kvm = await detectKvm();
  log(`guest ${guest.imagePath} (${kvm ? 'kvm' : 'tcg'}), ${ROUNDS} round(s)`);
  const dir = await mkdtemp('/var/tmp/kova-bench-boot-');
  await chmod(dir, 0o711); // qemu (libvirt-qemu) must reach the disks
  const raw: Times[] = [];
  let kova: Kova | undefined;
  try {
    // Warm-up: page cache for the image, kernel, QEMU binary.
    await rawBoot(guest.imagePath, dir, kvm, 0);
    kova = await startKova([]);
    const ns = 'bench';
    const setup = `apiVersion: v1
kind: Namespace
metadata: {name: ${ns}, annotations: {kova.dev/default-quota: none}}
---
apiVersion: kova.dev/v1alpha1
kind: Flavor
metadata: {name: bench}
spec: {vcpus: 1, memory: 192Mi, disk: 1Gi}
---
apiVersion: kova.dev/v1alpha1
kind: Image
metadata: {name: guest, namespace: ${ns}}
spec:
  source: {file: {path: ${guest.imagePath}}}
  sha256: ${guest.sha256}`;
    const first = await kovaBoot(kova, ns, 'vm-first', setup);
    log(`kova first boot (image import included): marker ${secs(first.bootMs)} s, Ready ${secs(first.readyMs)} s`);
    await kova.k(['delete', 'instance', 'vm-first', '-n', ns, '--timeout=60s']);
    const cached: KovaTimes[] = [];
    // Raw and kova rounds alternate, so both see the same background load.
    for (let i = 1; i <= ROUNDS; i++) {
      raw.push(await rawBoot(guest.imagePath, dir, kvm, i));
      log(`raw virsh create: QEMU launched ${secs(raw.at(-1)!.qemuMs)} s, boot marker ${secs(raw.at(-1)!.bootMs)} s`);
      const t = await kovaBoot(kova, ns, `vm-${i}`);
      cached.push(t);
      log(`kova cached boot: QEMU launched ${secs(t.qemuMs)} s, boot marker ${secs(t.bootMs)} s, Ready ${secs(t.readyMs)} s`);
      await kova.k(['delete', 'instance', `vm-${i}`, '-n', ns, '--timeout=60s']);
    }
    const rawS = secs(median(raw.map((r) => r.bootMs)));
    const cachedS = secs(median(cached.map((c) => c.bootMs)));
    process.stdout.write(`${JSON.stringify({
      hypervisor: kvm ? 'kvm' : 'tcg',
      rounds: ROUNDS,
      raw_virsh_boot_s: rawS,
      kova_first_boot_s: secs(first.bootMs),
      kova_first_ready_s: secs(first.readyMs),
      kova_cached_boot_s: cachedS,
      kova_ready_s: secs(median(cached.map((c) => c.readyMs))),
      ratio_cached: Math.round((cachedS / rawS) * 1000) / 1000,
      // Until QEMU is being launched (virtlogd created the console log): the control path before the guest boots.
      raw_qemu_launch_s: secs(median(raw.map((r) => r.qemuMs))),
      kova_cached_qemu_launch_s: secs(median(cached.map((c) => c.qemuMs))),
      raw_runs_s: raw.map((r) => secs(r.bootMs)),
      kova_cached_runs_s: cached.map((c) => secs(c.bootMs)),
    })}\n`);
  } finally {
    await kova?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  log(`failed: ${e instanceof Error ? e.stack : String(e)}`);
  process.exit(1);
});
