// npm run bench:migrate — kova's live migration against a raw `virsh migrate` with the same
// flags between the same two libvirt daemons, on a fresh `kova up --hosts 2` (torn down at the
// end, also on failure), each measured in the same run:
// - block copy: the test guest (an Image-backed instance: a local root overlay) from the create
//   of its Migration through the API to the Migration's Succeeded, against `virsh migrate` of an
//   equivalent guest kova does not manage (defined with virsh from the kova guest's own XML
//   without kova's metadata, its NIC on a tap of its own, on a same-size overlay of the same
//   image), with the flags and destination XML the driver builds (migrateArgs, destinationXml:
//   --live --p2p --persistent --undefinesource --migrateuri tcp://<tunnel IP>
//   --copy-storage-inc --migrate-disks vda) into a target overlay made beforehand, as the
//   target host does. The raw time is the `virsh migrate` call alone; kova's is the whole
//   declarative path. ratio_block.
// - shared storage: the same for a guest booted from a Volume of the `shared` VolumeType, against
//   a domain whose disk is a file in the same shared directory, migrated without copy-storage
//   and with --unsafe, as the driver adds it for a local directory. ratio_shared.
// - downtime_ms from the Migration's status, raw_downtime_ms from `virsh domjobinfo --completed`
//   on the target; ping_lost: replies missing from a 10 Hz `ping -i 0.1` that a third guest on
//   host-2 runs at each migrating guest (gaps in its sequence numbers, read from its console).
// Rounds move the guests back and forth (--rounds N, default 8: each side goes first as often;
// before each move the machine is left to settle), kova and raw in the same
// direction each round, taking turns at going first; medians, and every value. Progress lines
// on stderr; the last output line is one JSON object.
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { INSTANCES, KovaClient } from '../client/client.js';
import { MIGRATIONS } from '../api/kinds/index.js';
import type { Instance, Migration } from '../api/kinds/index.js';
import { localHosts, teardownLocalHosts } from '../cli/local-hosts.js';
import type { LocalHost } from '../cli/local-hosts.js';
import { domainName } from '../node-agent/driver.js';
import { destinationXml, migrateArgs, parseJobStats } from '../node-agent/libvirt/migration.js';
import { buildTestGuest } from '../guest/build.js';
import { startKova } from '../e2e/harness.js';
import type { Kova } from '../e2e/harness.js';
import { median, round } from './common.js';

const run = promisify(execFile);
const { values } = parseArgs({ options: { rounds: { type: 'string', default: '8' }, only: { type: 'string' }, 'guest-dir': { type: 'string', default: '/var/tmp/kova-test-guest' } } });
const ROUNDS = Math.max(1, Number(values.rounds));
const NS = 'bench-migrate';
const NET_PREFIX = '10.233.0';
const PINGER_IP = `${NET_PREFIX}.30`;
const log = (m: string) => process.stderr.write(`bench:migrate: ${m}\n`);
const virsh = async (uri: string, ...a: string[]) => (await run('virsh', ['-q', '-c', uri, ...a], { timeout: 120_000 })).stdout;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Busy and total CPU time of the machine (/proc/stat's first line). */
async function cpuTimes(): Promise<{ busy: number; total: number }> {
  const f = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/**
 * Waits (at most 20 s) until the machine is quiet: less than half of its CPU busy over a
 * second. Whatever moved last (a guest whose QEMU retranslates its code after the move, agents
 * re-planning) would otherwise slow whichever migration comes next, kova's or the raw one.
 */
async function settle(): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const a = await cpuTimes();
    await sleep(1000);
    const b = await cpuTimes();
    if ((b.busy - a.busy) / Math.max(1, b.total - a.total) < 0.5) return;
  }
}
const loads = () => loadavg().map((x) => round(x, 2));

let kova: Kova | undefined;
let api: KovaClient | undefined;
let dataDir = '';
let hosts: LocalHost[] = [];
const apply = (obj: unknown) => kova!.k(['apply', '-f', '-'], { input: JSON.stringify(obj) });
const waitFor = (what: string, cond: string, timeout = '300s') => kova!.k(['wait', what, '-n', NS, `--for=${cond}`, `--timeout=${timeout}`], { timeoutMs: 310_000 });
const hostNamed = (name: string) => hosts.find((h) => h.name === name)!;
const other = (h: LocalHost) => hosts.find((x) => x !== h)!;

/** Polls `file` every 20 ms until `ok` holds. */
async function until(file: string, ok: (text: string) => boolean, what: string, timeoutMs = 180_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (ok(await readFile(file, 'utf8').catch(() => ''))) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what} (${file})`);
}

const domainDirOf = (h: LocalHost, dom: string) => join(h.stateDir, 'domains', dom);
const rawDirOf = (h: LocalHost, dom: string) => join(h.dir, 'bench-raw', dom);

// ---- the pinger: a guest on host-2 pinging each migrating guest at 10 Hz ----

/**
 * `ping -i 0.1` per target, its replies' sequence numbers checked by awk: a gap prints
 * `PINGLOST <tag> <n>`. ping exits when a send fails (no route yet): it then restarts, which
 * prints `PINGRESTART <tag>` (losses across a restart are not counted, so a round that sees one
 * says so).
 */
function pingerUserData(targets: Array<{ tag: string; ip: string }>): string {
  const awk = `/seq=/ { s = $0; sub(/.*seq=/, "", s); sub(/ .*/, "", s); s += 0; if (seen && s > last + 1) { print "PINGLOST " tag " " (s - last - 1); fflush() } if (!seen || s > last) last = s; seen = 1; n++; if (n % 100 == 0) { print "PINGOK " tag " " s; fflush() } }`;
  const loops = targets.map((t) => `( while true; do ping -i 0.1 ${t.ip} 2>&1 | awk -v tag=${t.tag} '${awk}'; echo PINGRESTART ${t.tag}; sleep 1; done ) </dev/null &`);
  return ['#!/bin/sh', ...loops, ''].join('\n');
}

const pingCount = (text: string, tag: string) => {
  let lost = 0;
  let restarts = 0;
  for (const m of text.matchAll(/^PING(LOST|RESTART) (\w+)(?: (\d+))?/gm)) {
    if (m[2] !== tag) continue;
    if (m[1] === 'LOST') lost += Number(m[3]);
    else restarts++;
  }
  return { lost, restarts };
};

// ---- kova's migration, observed through the API ----

interface KovaMove {
  ms: number;
  downtimeMs?: number;
  /** libvirt's time_elapsed of the migration job. */
  jobMs?: number;
  /** First time each phase and condition was seen (by a watch), ms after the create. */
  marks: Record<string, number>;
}

async function kovaMigrate(instance: string, to: LocalHost): Promise<KovaMove> {
  // Observed through a watch (as `kubectl wait` does): polling the API every few milliseconds
  // would add its own load to the two cores the guests move on, which the raw move has not.
  const t0 = performance.now();
  const created = await api!.create<Migration>(MIGRATIONS, { apiVersion: 'kova.dev/v1alpha1', kind: 'Migration', metadata: { generateName: `${instance}-`, namespace: NS }, spec: { instance, targetHost: to.name } });
  const marks: Record<string, number> = { created: performance.now() - t0 };
  const name = created.metadata.name!;
  let watch: { abort(): void } | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await new Promise<KovaMove>((resolve, reject) => {
      const seen = (m: Migration): void => {
        const at = performance.now() - t0;
        const phase = m.status?.phase;
        if (phase && marks[phase] === undefined) marks[phase] = at;
        for (const c of m.status?.conditions ?? []) {
          const mark = c.status === 'True' ? c.type : `${c.type}=${c.status}(${c.reason})`;
          if (marks[mark] === undefined) marks[mark] = at;
        }
        if (m.status?.conditions?.some((c) => c.type === 'Succeeded' && c.status === 'True')) {
          // libvirt's own time for the job, as the source reported it: "... (2345 ms, 120 ms downtime)".
          const job = /\((\d+) ms/.exec(m.status?.conditions?.find((c) => c.type === 'Transferred')?.message ?? '')?.[1];
          resolve({ ms: at, downtimeMs: m.status?.downtimeMs, marks, ...(job ? { jobMs: Number(job) } : {}) });
        }
        const failed = m.status?.conditions?.find((c) => c.type === 'Failed' && c.status === 'True');
        if (failed) reject(new Error(`Migration ${name} failed: ${failed.reason}: ${failed.message}`));
      };
      timer = setTimeout(() => reject(new Error(`Migration ${name} did not finish in 300 s: ${JSON.stringify(marks)}`)), 300_000);
      void api!
        .watch(MIGRATIONS, NS, { resourceVersion: created.metadata.resourceVersion, fieldSelector: `metadata.name=${name}` }, (_type, o) => seen(o as Migration), (err) => reject(new Error(`the watch of Migration ${name} ended: ${String(err)}`)))
        .then((w) => (watch = w), reject);
    });
  } finally {
    clearTimeout(timer);
    watch?.abort();
  }
}

const fmtMarks = (k: Record<string, number>) => Object.entries(k).sort((a, b) => a[1] - b[1]).map(([n, t]) => `${n} +${Math.round(t)}`).join(', ');

// ---- the raw guest: defined and moved with virsh alone ----

interface RawGuest {
  name: string;
  host: LocalHost;
  /** Files put into the target's directory before each move (the seed ISO). */
  seedFile: string;
  /** Root overlay: backing file and virtual size; absent on shared storage. */
  overlay?: { backing: string; backingFormat: string; size: number };
  /** The disk targets copied by block copy (empty: shared). */
  migrateDisks: string[];
}

async function qemuImgInfo(path: string): Promise<{ 'virtual-size': number; 'backing-filename'?: string; 'backing-filename-format'?: string; 'full-backing-filename'?: string }> {
  return JSON.parse((await run('qemu-img', ['info', '-U', '--output', 'json', path])).stdout);
}

/**
 * The raw twin's NICs: kova's, each on a tap of the bench's own (made on every host, in its
 * network namespace, joined to no bridge: kova's network agents leave such links alone) with
 * its own MAC. QEMU moves a NIC's device state with the guest and the target needs its tap
 * (libvirt opens it, managed='no'), which makes a switch-over slower (by about 100 ms of
 * downtime here): the twin has the same devices as kova's guest so that both pay it.
 */
async function rawNics(xml: string, tag: string): Promise<string> {
  if (!/^[a-z]{1,6}$/.test(tag)) throw new Error(`raw guest tag ${tag}: 1 to 6 lowercase letters (it names taps)`);
  let i = 0;
  const taps: string[] = [];
  const out = xml.replace(/<interface\b[\s\S]*?<\/interface>/g, (nic) => {
    const tap = `kbraw${tag}${i}`;
    const mac = `52:54:00:fe:${tag === 'blk' ? '01' : '02'}:${String(i).padStart(2, '0')}`;
    i++;
    taps.push(tap);
    return nic.replace(/<target dev='[^']*'/, `<target dev='${tap}'`).replace(/<mac address='[^']*'/, `<mac address='${mac}'`);
  });
  for (const h of hosts) {
    for (const tap of taps) {
      await run('ip', ['-n', h.netns, 'tuntap', 'add', 'dev', tap, 'mode', 'tap']);
      await run('ip', ['-n', h.netns, 'link', 'set', 'dev', tap, 'up']);
    }
  }
  return out;
}

/**
 * Defines and starts, next to kova's `kovaDom` on `host`, a domain from its inactive XML with
 * kova's metadata and UUID left out, its NICs on taps of its own (rawNics) and its own
 * directory: the same machine, devices and memory, which kova's agents leave alone (no kova
 * metadata). `disk` swaps the root disk path for shared storage.
 */
async function defineRawGuest(host: LocalHost, kovaDom: string, name: string, work: string, shared?: { from: string; to: string }): Promise<RawGuest> {
  const kovaDir = domainDirOf(host, kovaDom);
  const dir = rawDirOf(host, name);
  await mkdir(dir, { recursive: true, mode: 0o711 });
  let xml = await virsh(host.uri, 'dumpxml', '--inactive', kovaDom);
  xml = await rawNics(xml.replace(/\s*<metadata>[\s\S]*?<\/metadata>/, '').replace(/\s*<uuid>[^<]*<\/uuid>/, ''), name.replace(/^bench-raw-/, ''));
  xml = xml.replace(/<name>[^<]*<\/name>/, `<name>${name}</name>`);
  if (shared) xml = xml.split(`'${shared.from}'`).join(`'${shared.to}'`);
  xml = destinationXml(xml, { dirs: [[kovaDir, dir]] });
  const seedFile = join(work, `${name}.seed.iso`);
  await copyFile(join(kovaDir, 'seed.iso'), seedFile);
  await copyFile(seedFile, join(dir, 'seed.iso'));
  let overlay: RawGuest['overlay'];
  const migrateDisks: string[] = [];
  if (!shared) {
    const info = await qemuImgInfo(join(kovaDir, 'root.qcow2'));
    const backing = info['full-backing-filename'] ?? info['backing-filename'];
    if (!backing) throw new Error(`kova's root disk of ${kovaDom} has no backing file`);
    overlay = { backing, backingFormat: info['backing-filename-format'] ?? 'qcow2', size: info['virtual-size'] };
    await makeOverlay(join(dir, 'root.qcow2'), overlay);
    const dev = /<source file='[^']*\/root\.qcow2'\/>\s*(?:<backingStore\/>\s*)?<target dev='(\w+)'/.exec(xml)?.[1];
    if (!dev) throw new Error(`no root disk target in the XML of ${kovaDom}:\n${xml}`);
    migrateDisks.push(dev);
  }
  const xmlFile = join(work, `${name}.xml`);
  await writeFile(xmlFile, xml);
  await virsh(host.uri, 'define', xmlFile);
  await virsh(host.uri, 'start', name);
  return { name, host, seedFile, ...(overlay ? { overlay } : {}), migrateDisks };
}

const makeOverlay = (path: string, o: NonNullable<RawGuest['overlay']>) =>
  run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', o.backingFormat, '-b', o.backing, path, String(o.size)]);

/** The image cache path of `backing` on `to`: kova's caches are per host, named alike. */
const backingOn = (backing: string, from: LocalHost, to: LocalHost) => backing.startsWith(`${from.imageCacheDir}/`) ? to.imageCacheDir + backing.slice(from.imageCacheDir.length) : backing;

interface RawMove {
  ms: number;
  downtimeMs?: number;
  jobMs?: number;
}

/** Prepares the target as the driver's prepareTarget does, then times `virsh migrate` alone. */
async function rawMigrate(g: RawGuest, to: LocalHost, work: string): Promise<RawMove> {
  const from = g.host;
  const srcDir = rawDirOf(from, g.name);
  const dstDir = rawDirOf(to, g.name);
  await rm(dstDir, { recursive: true, force: true });
  await mkdir(dstDir, { recursive: true, mode: 0o711 });
  await copyFile(g.seedFile, join(dstDir, 'seed.iso'));
  let overlay = g.overlay;
  if (overlay) {
    overlay = { ...overlay, backing: backingOn(overlay.backing, from, to) };
    await makeOverlay(join(dstDir, 'root.qcow2'), overlay);
  }
  // The image's kernel and initrd, when booted directly, are in each host's cache.
  const rewrite = { dirs: [[srcDir, dstDir], [from.imageCacheDir, to.imageCacheDir]] as Array<[string, string]> };
  const persistentXmlFile = join(work, `${g.name}.persistent.xml`);
  const xmlFile = join(work, `${g.name}.live.xml`);
  await writeFile(persistentXmlFile, destinationXml(await virsh(from.uri, 'dumpxml', '--inactive', '--migratable', g.name), rewrite));
  await writeFile(xmlFile, destinationXml(await virsh(from.uri, 'dumpxml', '--migratable', g.name), rewrite));
  const args = migrateArgs({
    id: g.name,
    destUri: to.uri,
    address: to.migrationAddress,
    persistentXmlFile,
    xmlFile,
    unsafe: !overlay,
    ...(overlay ? { copyStorage: 'inc' as const, migrateDisks: g.migrateDisks } : {}),
  });
  const t0 = performance.now();
  await run('virsh', ['-q', '-c', from.uri, ...args], { timeout: 300_000 });
  const ms = performance.now() - t0;
  const stats = parseJobStats(await virsh(to.uri, 'domjobinfo', '--completed', '--rawstats', g.name).catch(() => ''));
  g.host = to;
  g.overlay = overlay;
  await rm(srcDir, { recursive: true, force: true });
  return { ms, downtimeMs: stats.values.get('downtime'), jobMs: stats.values.get('time_elapsed') };
}

// ---- one scenario: a kova guest and its raw twin, moved back and forth ----

interface Scenario {
  kovaMs: number[];
  rawMs: number[];
  downtimeMs: number[];
  rawDowntimeMs: number[];
  pingLost: number[];
  pingRestarts: number;
}

async function scenario(label: string, instance: string, tag: string, pinger: { file: string }, work: string, shared = false): Promise<Scenario> {
  await waitFor(`instance/${instance}`, 'condition=Ready').catch(async (e: Error) => {
    const state = await kova!.k(['get', 'instance,volume', '-n', NS, '-o', 'yaml']).catch(() => '');
    throw new Error(`${e.message}\n${state}\nkova up's last output:\n${kova!.output().slice(-4000)}`);
  });
  const inst = (await api!.get<Instance>(INSTANCES, NS, instance))!;
  const dom = domainName(NS, instance, inst.metadata.uid!);
  let kovaHost = hostNamed(inst.status!.hostName!);
  await until(join(domainDirOf(kovaHost, dom), 'console.log'), (l) => l.includes('KOVA-GUEST-BOOTED'), `${instance} booted`);
  // The pinger reaches it before anything moves.
  await until(pinger.file, (l) => new RegExp(`^PINGOK ${tag} `, 'm').test(l), `the pinger reaches ${instance}`, 120_000);

  let sharedFile: { from: string; to: string } | undefined;
  if (shared) {
    const xml = await virsh(kovaHost.uri, 'dumpxml', '--inactive', dom);
    const from = /<source file='([^']*\/volumes\/[^']*)'/.exec(xml)?.[1];
    if (!from) throw new Error(`no shared volume disk in ${dom}:\n${xml}`);
    const to = join(dataDir, 'shared-volumes', `bench-raw-${tag}.qcow2`);
    // A copy of the image at the volume's size, as kova made the volume from the image.
    const info = await qemuImgInfo(from);
    await run('qemu-img', ['convert', '-O', 'qcow2', join(dataDir, 'images', `${guestSha}.qcow2`), to]);
    await run('qemu-img', ['resize', '-q', to, String(info['virtual-size'])]);
    sharedFile = { from, to };
  }
  const raw = await defineRawGuest(kovaHost, dom, `bench-raw-${tag}`, work, sharedFile);
  await until(join(rawDirOf(raw.host, raw.name), 'console.log'), (l) => l.includes('KOVA-GUEST-BOOTED'), `${raw.name} booted`);
  log(`${label}: kova's ${instance} and the raw ${raw.name} run on ${kovaHost.name}`);

  const s: Scenario = { kovaMs: [], rawMs: [], downtimeMs: [], rawDowntimeMs: [], pingLost: [], pingRestarts: 0 };
  for (let i = 0; i < ROUNDS; i++) {
    const to = other(kovaHost);
    const doKova = async () => {
      await settle();
      const before = pingCount(await readFile(pinger.file, 'utf8'), tag);
      const k = await kovaMigrate(instance, to);
      // A gap shows at the first reply after it; the guest answers again within a second or two.
      await sleep(3000);
      const after = pingCount(await readFile(pinger.file, 'utf8'), tag);
      s.kovaMs.push(k.ms);
      if (k.downtimeMs !== undefined) s.downtimeMs.push(k.downtimeMs);
      s.pingLost.push(after.lost - before.lost);
      s.pingRestarts += after.restarts - before.restarts;
      return k;
    };
    const doRaw = async () => {
      await settle();
      const r = await rawMigrate(raw, to, work);
      s.rawMs.push(r.ms);
      if (r.downtimeMs !== undefined) s.rawDowntimeMs.push(r.downtimeMs);
      await sleep(1000);
      return r;
    };
    let k: KovaMove;
    let r: RawMove;
    if (i % 2 === 0) {
      k = await doKova();
      r = await doRaw();
    } else {
      r = await doRaw();
      k = await doKova();
    }
    kovaHost = to;
    log(`${label} round ${i + 1}/${ROUNDS} → ${to.name}: kova ${Math.round(k.ms)} ms (libvirt job ${k.jobMs ?? '?'} ms, downtime ${k.downtimeMs ?? '?'} ms, ${s.pingLost[i]} pings lost), raw ${Math.round(r.ms)} ms (libvirt job ${r.jobMs ?? '?'} ms, downtime ${r.downtimeMs ?? '?'} ms); load ${loads().join(' ')}`);
    log(`${label} round ${i + 1} kova marks (ms after create, first seen by a watch): ${fmtMarks(k.marks)}`);
  }
  // Out of the way of the next scenario.
  await kova!.k(['delete', 'instance', instance, '-n', NS, '--timeout=120s'], { timeoutMs: 130_000 });
  await virsh(raw.host.uri, 'destroy', raw.name).catch(() => '');
  await virsh(raw.host.uri, 'undefine', raw.name).catch(() => '');
  if (sharedFile) await rm(sharedFile.to, { force: true });
  return s;
}

let guestSha = '';

async function main(): Promise<void> {
  const guest = await buildTestGuest({ outDir: values['guest-dir']! });
  guestSha = guest.sha256;
  const loadStart = loads();
  log(`load average at start: ${loadStart.join(' ')}`);
  dataDir = await mkdtemp(join(tmpdir(), 'kova-bm-'));
  const work = await mkdtemp(join(tmpdir(), 'kova-bm-work-'));
  try {
    log('starting kova up --hosts 2');
    kova = await startKova(['--hosts', '2'], 240_000, { dataDir });
    hosts = await localHosts(dataDir, 2);
    api = KovaClient.fromFile(kova.kubeconfig, { fieldManager: 'bench-migrate' });
    const [, h2] = hosts as [LocalHost, LocalHost];
    await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, annotations: { 'kova.dev/default-quota': 'none' } } });
    await apply({ apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: { name: 'bench.migrate' }, spec: { vcpus: 1, memory: '192Mi', disk: '1Gi' } });
    await apply({ apiVersion: 'kova.dev/v1alpha1', kind: 'Image', metadata: { name: 'guest', namespace: NS }, spec: { source: { file: { path: guest.imagePath } }, sha256: guest.sha256 } });
    await apply({ apiVersion: 'kova.dev/v1alpha1', kind: 'Network', metadata: { name: 'net', namespace: NS }, spec: { type: 'vxlan', cidr: `${NET_PREFIX}.0/24`, dhcp: true } });
    await waitFor('image/guest', 'jsonpath={.status.phase}=Ready');
    const targets = [{ tag: 'blk', ip: `${NET_PREFIX}.10` }, { tag: 'shd', ip: `${NET_PREFIX}.11` }];
    await apply({ apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', metadata: { name: 'pinger', namespace: NS }, spec: { flavor: 'bench.migrate', image: 'guest', hostName: h2.name, networks: [{ network: 'net', ip: PINGER_IP }], userData: pingerUserData(targets) } });
    await waitFor('instance/pinger', 'condition=Ready');
    const pingerInst = (await api.get<Instance>(INSTANCES, NS, 'pinger'))!;
    const pinger = { file: join(domainDirOf(h2, domainName(NS, 'pinger', pingerInst.metadata.uid!)), 'console.log') };

    const empty: Scenario = { kovaMs: [], rawMs: [], downtimeMs: [], rawDowntimeMs: [], pingLost: [], pingRestarts: 0 };
    const block = values.only === 'shared' ? empty : await blockScenario();
    const shared = values.only === 'block' ? empty : await sharedScenario();
    async function blockScenario(): Promise<Scenario> {
    await apply({ apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', metadata: { name: 'blk', namespace: NS }, spec: { flavor: 'bench.migrate', image: 'guest', networks: [{ network: 'net', ip: targets[0]!.ip }] } });
    return scenario('block copy', 'blk', 'blk', pinger, work);
    }
    async function sharedScenario(): Promise<Scenario> {

    // The seeded `shared` type is multiAttach, and libvirt refuses a shareable qcow2 disk ("shared
    // access for disk 'vda' requires use of supported storage format"): the same backend and
    // directory without multiAttach.
    await apply({ apiVersion: 'kova.dev/v1alpha1', kind: 'VolumeType', metadata: { name: 'bench-shared' }, spec: { backend: 'shared', sharedPath: join(dataDir, 'shared-volumes'), multiAttach: false } });
    await apply({ apiVersion: 'kova.dev/v1alpha1', kind: 'Volume', metadata: { name: 'boot', namespace: NS }, spec: { size: '1Gi', volumeType: 'bench-shared', source: { image: 'guest' } } });
    await apply({ apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', metadata: { name: 'shd', namespace: NS }, spec: { flavor: 'bench.migrate', volumes: [{ volume: 'boot', bootOrder: 1 }], networks: [{ network: 'net', ip: targets[1]!.ip }] } });
    return scenario('shared storage', 'shd', 'shd', pinger, work, true);
    }

    const med = (xs: number[]) => (xs.length ? Math.round(median(xs)) : null);
    const ratio = (a: number[], b: number[]) => (a.length && b.length ? round(median(a) / median(b), 2) : null);
    const all = (xs: number[]) => xs.map((x) => Math.round(x));
    const out = {
      kova_block_ms: med(block.kovaMs),
      raw_block_ms: med(block.rawMs),
      ratio_block: ratio(block.kovaMs, block.rawMs),
      kova_shared_ms: med(shared.kovaMs),
      raw_shared_ms: med(shared.rawMs),
      ratio_shared: ratio(shared.kovaMs, shared.rawMs),
      downtime_ms: med([...block.downtimeMs, ...shared.downtimeMs]),
      raw_downtime_ms: med([...block.rawDowntimeMs, ...shared.rawDowntimeMs]),
      ping_lost: med([...block.pingLost, ...shared.pingLost]),
      all: {
        kova_block_ms: all(block.kovaMs), raw_block_ms: all(block.rawMs),
        kova_shared_ms: all(shared.kovaMs), raw_shared_ms: all(shared.rawMs),
        downtime_block_ms: block.downtimeMs, raw_downtime_block_ms: block.rawDowntimeMs,
        downtime_shared_ms: shared.downtimeMs, raw_downtime_shared_ms: shared.rawDowntimeMs,
        ping_lost_block: block.pingLost, ping_lost_shared: shared.pingLost,
        ping_restarts: block.pingRestarts + shared.pingRestarts,
      },
      rounds: ROUNDS,
      load_start: loadStart,
      load_end: loads(),
    };
    console.log(JSON.stringify(out));
  } finally {
    api?.close();
    await kova?.stop().catch(() => undefined);
    await teardownLocalHosts(dataDir).catch((e: Error) => log(`teardown: ${e.message}`));
    await rm(dataDir, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  }
}

// Ctrl-C or SIGTERM tears down too.
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    log(`${sig}: tearing down`);
    void (async () => {
      await kova?.stop().catch(() => undefined);
      if (dataDir) await teardownLocalHosts(dataDir).catch(() => undefined);
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
      process.exit(130);
    })();
  });
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
