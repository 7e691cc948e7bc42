// N real hypervisor hosts on one machine (`kova up --hosts N`, and the multi-host e2e tests).
// Each host is a network namespace joined to a bridge in the root namespace by a veth (its
// tunnel IP on the far end) and its own libvirtd, run inside that namespace and a private mount
// namespace with its own /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/log/libvirt and
// /var/cache/libvirt (hack/local-libvirtd.sh), its own host UUID and migration ports. QEMU,
// started by that libvirtd, lives in the same namespaces: it opens the taps the host's network
// agent makes there and receives migrations on the tunnel IP. The daemons are foreground
// children that die with this process; their guests keep running, and a later start on the same
// data dir reuses everything and the daemons reconnect to them. See
// ../shared/design/hosts-on-one-machine.md for why each setting is what it is.
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, openSync, closeSync } from 'node:fs';
import { chmod, cp, mkdir, readdir, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { dieWithParent } from '../lib/parent-death.js';
import { packageRoot } from './paths.js';
import { chooseSubnet, localHostsLayout, renderLibvirtdConf, renderQemuConf } from './local-hosts-config.js';
import type { LocalHostConfig, LocalHostsLayout, LocalHostsRecord } from './local-hosts-config.js';

export type { LocalHostConfig } from './local-hosts-config.js';

const run = promisify(execFile);
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;
const RECORD = 'hosts.json';

export interface LocalHost extends LocalHostConfig {
  /** Where QEMU receives migration streams: the tunnel IP. */
  migrationAddress: string;
}

export interface LocalHosts {
  hosts: LocalHost[];
  bridge: string;
  subnet: string;
  /** The daemon pids, by host name (undefined once stopped). */
  pid(name: string): number | undefined;
  /** Stops the daemons (SIGTERM, then SIGKILL); guests keep running. Idempotent. */
  stop(): Promise<void>;
}

export interface StartLocalHostsOptions {
  /** The data directory; hosts live in DATA_DIR/hosts/<name>. */
  dataDir: string;
  count: number;
  /** Progress lines ("starting host-1 ..."). */
  log?: (msg: string) => void;
}

const ip = (...args: string[]) => run('ip', args, { timeout: 15_000 });

function withHost(h: LocalHostConfig): LocalHost {
  return { ...h, migrationAddress: h.tunnelIP };
}

async function readRecord(dataDir: string): Promise<LocalHostsRecord | undefined> {
  try {
    const r = JSON.parse(await readFile(join(dataDir, 'hosts', RECORD), 'utf8')) as LocalHostsRecord;
    if (typeof r.subnet === 'string' && /^100\.\d+\.\d+$/.test(r.subnet) && Array.isArray(r.hostUUIDs)) return r;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  return undefined;
}

/** IPv4 prefixes already in use on this machine (addresses and routes of the root namespace). */
async function usedPrefixes(): Promise<string[]> {
  const addrs = (await ip('-4', '-o', 'addr', 'show')).stdout.match(/inet (\d+\.\d+\.\d+\.\d+\/\d+)/g) ?? [];
  const routes = (await ip('-4', 'route', 'show', 'table', 'all')).stdout.split('\n').map((l) => l.split(' ')[0] ?? '');
  return [...addrs.map((a) => a.slice(5)), ...routes.filter((r) => /^\d+\.\d+\.\d+\.\d+(\/\d+)?$/.test(r))];
}

/** The data dir's record, made (subnet chosen, host UUIDs drawn) or extended for `count` hosts. */
async function ensureRecord(dataDir: string, count: number): Promise<LocalHostsRecord> {
  const had = await readRecord(dataDir);
  const record = had ?? { subnet: chooseSubnet(dataDir, await usedPrefixes()), hostUUIDs: [] };
  if (had && record.hostUUIDs.length >= count) return record;
  while (record.hostUUIDs.length < count) record.hostUUIDs.push(randomUUID());
  await mkdir(join(dataDir, 'hosts'), { recursive: true });
  await writeFile(join(dataDir, 'hosts', RECORD), JSON.stringify(record, null, 2) + '\n');
  return record;
}

/**
 * The hosts of a data dir as an earlier startLocalHosts made them, without starting anything:
 * for the process that runs their agents (`kova components`).
 */
export async function localHosts(dataDirIn: string, count: number): Promise<LocalHost[]> {
  const dataDir = resolve(dataDirIn);
  const record = await readRecord(dataDir);
  if (!record) throw new Error(`no local hosts in ${dataDir} (${join(dataDir, 'hosts', RECORD)} is missing): kova up --hosts makes them`);
  return localHostsLayout(dataDir, count, record).hosts.map(withHost);
}

/** The local host named `name` of `dataDir` (made by kova up --hosts), or undefined when there is none. */
export async function findLocalHost(dataDirIn: string, name: string): Promise<LocalHost | undefined> {
  const dataDir = resolve(dataDirIn);
  const record = await readRecord(dataDir).catch(() => undefined);
  if (!record) return undefined;
  return localHostsLayout(dataDir, record.hostUUIDs.length, record).hosts.map(withHost).find((h) => h.name === name);
}

async function linkExists(name: string, netns?: string): Promise<boolean> {
  const args = netns ? ['-n', netns, 'link', 'show', 'dev', name] : ['link', 'show', 'dev', name];
  return ip(...args).then(() => true, () => false);
}

async function netnsList(): Promise<Set<string>> {
  return new Set((await ip('netns', 'list')).stdout.split('\n').map((l) => l.split(' ')[0]!).filter(Boolean));
}

/** The bridge, and per host its namespace and veth with the tunnel IP; idempotent. */
async function ensureNetwork(layout: LocalHostsLayout): Promise<void> {
  if (!(await linkExists(layout.bridge))) await ip('link', 'add', layout.bridge, 'type', 'bridge');
  await ip('addr', 'replace', `${layout.bridgeIP}/24`, 'dev', layout.bridge);
  await ip('link', 'set', layout.bridge, 'up');
  const existing = await netnsList();
  for (const h of layout.hosts) {
    if (!existing.has(h.netns)) await ip('netns', 'add', h.netns);
    await ip('-n', h.netns, 'link', 'set', 'lo', 'up');
    if (!(await linkExists('underlay', h.netns))) {
      // A veth left in the root namespace by a half-done setup would block the name.
      if (await linkExists(h.veth)) await ip('link', 'del', h.veth);
      await ip('link', 'add', h.veth, 'type', 'veth', 'peer', 'name', 'underlay', 'netns', h.netns);
    }
    await ip('link', 'set', h.veth, 'master', layout.bridge);
    await ip('link', 'set', h.veth, 'up');
    await ip('-n', h.netns, 'addr', 'replace', `${h.tunnelIP}/24`, 'dev', 'underlay');
    await ip('-n', h.netns, 'link', 'set', 'underlay', 'up');
  }
}

/** The host's libvirt directories and configuration (rewritten on each start, so changes apply). */
async function ensureLibvirtConfig(h: LocalHostConfig): Promise<void> {
  const r = h.libvirtRoot;
  for (const d of ['etc/qemu', 'run', 'lib', 'log/qemu', 'cache']) await mkdir(join(r, d), { recursive: true, mode: 0o700 });
  // The system daemon's QEMU capability cache saves each new daemon a probe of several seconds.
  if (!existsSync(join(r, 'cache', 'qemu')) && existsSync('/var/cache/libvirt/qemu')) {
    await cp('/var/cache/libvirt/qemu', join(r, 'cache', 'qemu'), { recursive: true });
  }
  await writeFile(join(r, 'etc', 'libvirtd.conf'), renderLibvirtdConf(h));
  await writeFile(join(r, 'etc', 'qemu.conf'), renderQemuConf(h));
  await mkdir(h.stateDir, { recursive: true });
  await mkdir(h.imageCacheDir, { recursive: true });
}

/** Inode of a network namespace (/run/netns/NAME), or undefined when it does not exist. */
async function netnsInode(netns: string): Promise<number | undefined> {
  return stat(join('/run/netns', netns)).then((s) => s.ino, () => undefined);
}

/** Pids of the processes in a network namespace (its libvirtd, QEMUs, dnsmasqs). */
async function pidsInNetns(netns: string): Promise<number[]> {
  const ino = await netnsInode(netns);
  if (ino === undefined) return [];
  const want = `net:[${ino}]`;
  const out: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    if ((await readlink(`/proc/${e}/ns/net`).catch(() => '')) === want) out.push(Number(e));
  }
  return out;
}

async function comm(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim();
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function terminate(pids: number[], graceMs: number): Promise<void> {
  for (const p of pids) {
    try {
      process.kill(p, 'SIGTERM');
    } catch { /* gone */ }
  }
  const until = Date.now() + graceMs;
  while (pids.some(alive) && Date.now() < until) await sleep(100);
  for (const p of pids.filter(alive)) {
    try {
      process.kill(p, 'SIGKILL');
    } catch { /* gone */ }
  }
}

/** A libvirtd of this host still running (not our child: a leftover), by pid file and namespace. */
async function leftoverDaemons(h: LocalHostConfig): Promise<number[]> {
  const inNs = await pidsInNetns(h.netns);
  const out: number[] = [];
  for (const p of inNs) if ((await comm(p)) === 'libvirtd') out.push(p);
  return out;
}

async function virshOk(uri: string, ...args: string[]): Promise<boolean> {
  return run('virsh', ['-c', uri, ...args], { timeout: 10_000 }).then(() => true, () => false);
}

async function tail(file: string, lines = 20): Promise<string> {
  return (await readFile(file, 'utf8').catch(() => '')).split('\n').slice(-lines - 1).join('\n');
}

/** Starts one host's libvirtd and waits until it answers `virsh version`. */
async function startDaemon(h: LocalHostConfig): Promise<ChildProcess> {
  const logFile = join(h.dir, 'libvirtd.log');
  const fd = openSync(logFile, 'a');
  const script = join(packageRoot(), 'hack', 'local-libvirtd.sh');
  const [cmd, args] = dieWithParent('ip', ['netns', 'exec', h.netns, 'unshare', '--mount', '--propagation', 'private', '--', script, h.libvirtRoot]);
  let child: ChildProcess;
  try {
    child = spawn(cmd, args, { stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  let exited: string | undefined;
  child.once('exit', (code, signal) => (exited = signal ? `signal ${signal}` : `code ${code}`));
  child.once('error', (e) => (exited = e.message));
  const until = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (exited !== undefined) throw new Error(`libvirtd of ${h.name} exited with ${exited}; ${logFile}:\n${await tail(logFile)}`);
    if (await virshOk(h.uri, 'version')) return child;
    if (Date.now() > until) {
      child.kill('SIGKILL');
      throw new Error(`libvirtd of ${h.name} does not answer on ${h.uri} after ${READY_TIMEOUT_MS / 1000} s; ${logFile}:\n${await tail(logFile)}`);
    }
    await sleep(200);
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(t);
}

/**
 * Starts (or restarts) `count` hosts on this machine for `dataDir`. Needs root. The daemons die
 * with this process; call stop() to end them earlier.
 */
export async function startLocalHosts(o: StartLocalHostsOptions): Promise<LocalHosts> {
  const log = o.log ?? (() => undefined);
  const dataDir = resolve(o.dataDir);
  const record = await ensureRecord(dataDir, o.count);
  const layout = localHostsLayout(dataDir, o.count, record);
  // The drivers open their own directories for QEMU down from DATA_DIR/hosts/<name>; the two
  // above are kova's too, opened (search only) as the single-host driver opens DATA_DIR.
  for (const d of [dataDir, join(dataDir, 'hosts')]) await chmod(d, ((await stat(d)).mode & 0o7777) | 0o001);
  log(`local hosts network: bridge ${layout.bridge}, tunnel IPs ${layout.subnet}.1-${o.count}`);
  await ensureNetwork(layout);
  const children = new Map<string, ChildProcess>();
  const stop = async () => {
    await Promise.all([...children.values()].map(stopChild));
  };
  try {
    for (const h of layout.hosts) {
      log(`starting ${h.name} (libvirtd in its own namespaces, tunnel IP ${h.tunnelIP})`);
      await ensureLibvirtConfig(h);
      const stale = await leftoverDaemons(h);
      if (stale.length) {
        log(`stopping a libvirtd of ${h.name} left running (pid ${stale.join(', ')})`);
        await terminate(stale, STOP_TIMEOUT_MS);
      }
      children.set(h.name, await startDaemon(h));
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    hosts: layout.hosts.map(withHost),
    bridge: layout.bridge,
    subnet: layout.subnet,
    pid: (name) => {
      const c = children.get(name);
      return c && c.exitCode === null && c.signalCode === null ? c.pid : undefined;
    },
    stop,
  };
}

/**
 * Removes the local hosts of a data dir, for tests: destroys and undefines the domains of their
 * daemons, kills the daemons and whatever else runs in the hosts' namespaces (QEMUs, dnsmasq),
 * deletes the namespaces, veths and the bridge. Files under DATA_DIR/hosts stay. Idempotent;
 * does nothing for a data dir without local hosts.
 */
export async function teardownLocalHosts(dataDirIn: string): Promise<void> {
  const dataDir = resolve(dataDirIn);
  const record = await readRecord(dataDir);
  if (!record || record.hostUUIDs.length === 0) return;
  const layout = localHostsLayout(dataDir, record.hostUUIDs.length, record);
  const errors: string[] = [];
  for (const h of layout.hosts) {
    if (await virshOk(h.uri, 'version')) {
      const names = await run('virsh', ['-q', '-c', h.uri, 'list', '--all', '--name'], { timeout: 10_000 }).then((r) => r.stdout.split('\n').map((s) => s.trim()).filter(Boolean), () => []);
      for (const d of names) {
        await virshOk(h.uri, 'destroy', d);
        if (!(await virshOk(h.uri, 'undefine', '--nvram', d)) && !(await virshOk(h.uri, 'undefine', d))) errors.push(`undefine ${d} on ${h.name}`);
      }
    }
    // The daemon first (it would restart nothing, but it reacts to its QEMUs dying), then the rest.
    const daemons = await leftoverDaemons(h);
    await terminate(daemons, STOP_TIMEOUT_MS);
    await terminate(await pidsInNetns(h.netns), 5_000);
    const left = await pidsInNetns(h.netns);
    if (left.length) errors.push(`processes left in ${h.netns}: ${left.join(', ')}`);
    if ((await netnsList()).has(h.netns)) await ip('netns', 'del', h.netns).catch((e: Error) => errors.push(e.message));
    if (await linkExists(h.veth)) await ip('link', 'del', h.veth).catch((e: Error) => errors.push(e.message));
  }
  if (await linkExists(layout.bridge)) await ip('link', 'del', layout.bridge).catch((e: Error) => errors.push(e.message));
  if (errors.length) throw new Error(`teardown of the local hosts of ${dataDir} incomplete: ${errors.join('; ')}`);
}
