// npm run bench:volume — volumes through kova against the raw tools, on a fresh `kova up`
// (libvirt driver, the test guest under TCG, KVM if usable), each measured in the same run:
// - attach: a merge patch of an Instance's spec.volumes through the API (ratio_attach), and the
//   same with `kubectl patch` (ratio_attach_kubectl: kubectl's own start is in it), until the
//   running guest sees the disk (it prints the disk's serial on its console:
//   e2e/guest/disk-probe.ts), against a raw `virsh attach-device --live --config` (what the
//   driver runs: the disk stays attached across a restart) of the same disk XML
//   (node-agent/libvirt/domain-xml.ts) into the same guest, until the guest prints it;
//   alternating rounds, medians (24 rounds by default: a guest under TCG takes 50-130 ms to
//   notice a new disk, so a median of five moves by a fifth from run to run). The guest looks
//   every PROBE_MS, so when it notices depends on where in its cycle a request lands; each
//   side's steps before a request (kubectl runs, file writes) take about the same time every
//   round, which would land kova's and the raw requests at fixed, different points of that
//   cycle (it favoured the raw side by about 30 ms). Every request waits a random 0-2 cycles
//   first, outside the timed part, so both sides sample the whole cycle.
// - snapshot + restore: a 1 GiB volume holding 512 MiB of data, `kubectl apply` of a
//   VolumeSnapshot until readyToUse plus a Volume restored from it until Available, against a
//   raw `qemu-img convert -O qcow2` of the same file; ratio_snapshot.
// - 20 blank 1 GiB volumes applied at once (VolumeType with Immediate binding) until all are
//   Available: volumes20_available_s.
// The last output line is one JSON object.
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import YAML from 'yaml';
import { INSTANCES, KovaClient } from '../client/client.js';
import { domainName } from '../node-agent/driver.js';
import { volumeDiskXml } from '../node-agent/libvirt/domain-xml.js';
import { buildTestGuest } from '../guest/build.js';
import { eventually, startKova } from '../e2e/harness.js';
import type { Kova } from '../e2e/harness.js';
import { diskProbeUserData, probedDisks, probedGone } from '../e2e/guest/disk-probe.js';
import { median, round } from './common.js';

const run = promisify(execFile);
const { values } = parseArgs({ options: { rounds: { type: 'string', default: '24' }, 'guest-dir': { type: 'string', default: '/var/tmp/kova-test-guest' } } });
const ROUNDS = Math.max(1, Number(values.rounds));
const NS = 'bench-volume';
const log = (m: string) => process.stderr.write(`bench:volume: ${m}\n`);
const virsh = (...a: string[]) => run('virsh', ['-q', '-c', 'qemu:///system', ...a]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const GiB = 1024 ** 3;
/** How often the guest lists its disks (disk-probe's intervalMs). */
const PROBE_MS = 50;
/** A random start within the guest's probe cycle (see the header), before a timed request. */
const dephase = () => sleep(Math.random() * 2 * PROBE_MS);

let kova: Kova;
const apply = (obj: unknown) => kova.k(['apply', '-f', '-'], { input: JSON.stringify(obj) });
const getJson = async (kind: string, name: string) => JSON.parse(await kova.k(['get', kind, name, '-n', NS, '-o', 'json']));
const waitFor = (what: string, cond: string, timeout = '300s') => kova.k(['wait', what, '-n', NS, `--for=${cond}`, `--timeout=${timeout}`], { timeoutMs: 310_000 });

/** Polls the console log file every 10 ms until `ok` holds. */
async function until(file: string, ok: (log: string) => boolean, what: string, timeoutMs = 60_000): Promise<number> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const text = await readFile(file, 'utf8').catch(() => '');
    if (ok(text)) return performance.now();
    await sleep(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function volume(name: string, size: string, extra: Record<string, unknown> = {}): Promise<{ uid: string; serial: string }> {
  await apply({ apiVersion: 'kova.dev/v1alpha1', kind: 'Volume', metadata: { name, namespace: NS }, spec: { size, volumeType: 'bench-immediate', ...extra } });
  await waitFor(`volume/${name}`, 'jsonpath={.status.phase}=Available');
  const uid = (await getJson('volume', name)).metadata.uid as string;
  return { uid, serial: uid.slice(0, 20) };
}

async function main(): Promise<void> {
  const guest = await buildTestGuest({ outDir: values['guest-dir']! });
  kova = await startKova([]);
  const work = await mkdtemp('/var/tmp/kova-bench-volume-');
  await chmod(work, 0o711); // qemu (libvirt-qemu) opens the raw disks here
  try {
    await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, annotations: { 'kova.dev/default-quota': 'none' } } });
    await apply({ apiVersion: 'kova.dev/v1alpha1', kind: 'VolumeType', metadata: { name: 'bench-immediate' }, spec: { backend: 'local', volumeBindingMode: 'Immediate' } });
    await apply({ apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: { name: 'bench.volume' }, spec: { vcpus: 1, memory: '192Mi', disk: '1Gi' } });
    await apply({ apiVersion: 'kova.dev/v1alpha1', kind: 'Image', metadata: { name: 'guest', namespace: NS }, spec: { source: { file: { path: guest.imagePath } }, sha256: guest.sha256 } });
    await waitFor('image/guest', 'jsonpath={.status.phase}=Ready');
    await apply({ apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', metadata: { name: 'vm', namespace: NS }, spec: { flavor: 'bench.volume', image: 'guest', userData: diskProbeUserData({ intervalMs: PROBE_MS }) } });
    await waitFor('instance/vm', 'condition=Ready');
    const inst = await getJson('instance', 'vm');
    const dom = domainName(NS, 'vm', inst.metadata.uid);
    const consoleFile = join(kova.dataDir, 'libvirt', 'domains', dom, 'console.log');
    await until(consoleFile, (l) => l.includes('KOVA-GUEST-BOOTED'), 'the boot marker', 180_000);

    // Attach: kova (through the API, and through kubectl) and raw take turns on the same
    // guest, each into a fresh 64 MiB disk.
    const api = KovaClient.fromFile(kova.kubeconfig, { fieldManager: 'bench-volume' });
    const apiMs: number[] = [];
    const kubectlMs: number[] = [];
    const rawMs: number[] = [];
    const setVolumes = async (how: 'api' | 'kubectl', volumes: unknown) => {
      const p = { spec: { volumes } };
      if (how === 'api') await api.mergePatch(INSTANCES, NS, 'vm', p);
      else await kova.k(['patch', 'instance', 'vm', '-n', NS, '--type=merge', '-p', JSON.stringify(p)]);
    };
    const kovaAttach = async (name: string, how: 'api' | 'kubectl'): Promise<number> => {
      const v = await volume(name, '64Mi');
      await dephase();
      const t0 = performance.now();
      await setVolumes(how, [{ volume: name }]);
      const ms = (await until(consoleFile, (l) => probedDisks(l).some((d) => d.serial === v.serial), `the guest sees ${name}`)) - t0;
      await setVolumes(how, null);
      await until(consoleFile, (l) => probedGone(l).includes(v.serial), `the guest loses ${name}`);
      await waitFor(`volume/${name}`, 'jsonpath={.status.phase}=Available');
      return ms;
    };
    for (let i = 0; i < ROUNDS; i++) {
      apiMs.push(await kovaAttach(`api-${i}`, 'api'));
      kubectlMs.push(await kovaAttach(`kubectl-${i}`, 'kubectl'));
      const file = join(work, `raw-${i}.qcow2`);
      await run('qemu-img', ['create', '-q', '-f', 'qcow2', file, String(64 * 1024 * 1024)]);
      const serial = `rawbench${process.pid}${i}`.slice(0, 20);
      const xmlFile = join(work, `raw-${i}.xml`);
      await writeFile(xmlFile, volumeDiskXml({ path: file, format: 'qcow2', serial }, 'vdz'));
      await dephase();
      const r0 = performance.now();
      await virsh('attach-device', dom, xmlFile, '--live', '--config');
      rawMs.push((await until(consoleFile, (l) => probedDisks(l).some((d) => d.serial === serial), `the guest sees the raw disk ${i}`)) - r0);
      // A guest may miss an unplug request: ask again until it lets go, as kova does (15 s apart:
      // a second request while the guest acts on the first cancels it).
      for (let tries = 0; ; tries++) {
        await virsh('detach-device', dom, xmlFile, '--live', '--config').catch(() => undefined);
        const gone = await until(consoleFile, (l) => probedGone(l).includes(serial), `the guest loses the raw disk ${i}`, 15_000).then(() => true, () => false);
        if (gone) break;
        if (tries === 4) throw new Error(`the guest never released the raw disk ${i}`);
      }
      log(`attach round ${i + 1}/${ROUNDS}: kova API ${Math.round(apiMs[i]!)} ms, kubectl ${Math.round(kubectlMs[i]!)} ms, raw ${Math.round(rawMs[i]!)} ms`);
    }
    api.close();

    // Snapshot + restore of 1 GiB holding 512 MiB, against one raw convert of the same file.
    const big = await volume('big', '1Gi');
    const bigFile = join(kova.dataDir, 'libvirt', 'volumes', `${big.uid}.qcow2`);
    await run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 0 512M', bigFile]);
    const snapMs: number[] = [];
    const convertMs: number[] = [];
    const snapRounds = Math.min(ROUNDS, 3);
    for (let i = 0; i < snapRounds; i++) {
      const c0 = performance.now();
      await run('qemu-img', ['convert', '-O', 'qcow2', bigFile, join(work, `convert-${i}.qcow2`)]);
      convertMs.push(performance.now() - c0);
      await rm(join(work, `convert-${i}.qcow2`), { force: true });
      const s0 = performance.now();
      await apply({ apiVersion: 'kova.dev/v1alpha1', kind: 'VolumeSnapshot', metadata: { name: `snap-${i}`, namespace: NS }, spec: { source: { volume: 'big' } } });
      await waitFor(`volumesnapshot/snap-${i}`, 'jsonpath={.status.readyToUse}=true');
      await apply({ apiVersion: 'kova.dev/v1alpha1', kind: 'Volume', metadata: { name: `restore-${i}`, namespace: NS }, spec: { size: '1Gi', volumeType: 'bench-immediate', source: { snapshot: `snap-${i}` } } });
      await waitFor(`volume/restore-${i}`, 'jsonpath={.status.phase}=Available');
      snapMs.push(performance.now() - s0);
      log(`snapshot round ${i + 1}/${snapRounds}: kova snapshot+restore ${Math.round(snapMs[i]!)} ms, raw convert ${Math.round(convertMs[i]!)} ms`);
    }

    // 20 blank 1 GiB volumes at once.
    const items = Array.from({ length: 20 }, (_, i) => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'Volume', metadata: { name: `many-${i}`, namespace: NS }, spec: { size: '1Gi', volumeType: 'bench-immediate' } }));
    const m0 = performance.now();
    await kova.k(['apply', '-f', '-'], { input: items.map((d) => YAML.stringify(d)).join('---\n') });
    await eventually(async () => {
      const list = JSON.parse(await kova.k(['get', 'volumes', '-n', NS, '-l', '', '-o', 'json'])) as { items: Array<{ metadata: { name: string }; status?: { phase?: string } }> };
      return list.items.filter((v) => v.metadata.name.startsWith('many-') && v.status?.phase === 'Available').length === 20;
    }, 120_000, '20 volumes Available');
    const manyS = (performance.now() - m0) / 1000;

    const out = {
      attach_api_ms: Math.round(median(apiMs)),
      attach_kubectl_ms: Math.round(median(kubectlMs)),
      attach_raw_ms: Math.round(median(rawMs)),
      ratio_attach: round(median(apiMs) / median(rawMs), 2),
      ratio_attach_kubectl: round(median(kubectlMs) / median(rawMs), 2),
      snapshot_restore_kova_ms: Math.round(median(snapMs)),
      convert_raw_ms: Math.round(median(convertMs)),
      ratio_snapshot: round(median(snapMs) / median(convertMs), 2),
      volumes20_available_s: round(manyS, 2),
      volume_bytes: GiB,
      data_bytes: GiB / 2,
      rounds: ROUNDS,
    };
    console.log(JSON.stringify(out));
  } finally {
    await kova.k(['delete', 'namespace', NS, '--timeout=120s'], { timeoutMs: 130_000 }).catch(() => undefined);
    await kova.stop();
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
