// The pure half of `kova up --hosts N` (local-hosts.ts): names, addresses and the libvirt
// configuration of N hypervisor hosts on one machine. The facts behind each setting are in
// ../shared/design/hosts-on-one-machine.md.
import { createHash } from 'node:crypto';
import { join } from 'node:path';

/** More would not fit the /24 (the bridge takes .254) nor any sensible single machine. */
export const MAX_LOCAL_HOSTS = 64;
/** Migration ports of host i (1-based): MIGRATION_PORT_BASE + 100·(i−1) … +63, away from the system daemon's 49152–49215. */
export const MIGRATION_PORT_BASE = 49400;
const MIGRATION_PORTS_PER_HOST = 64;
/** A Unix socket path longer than this does not fit sockaddr_un. */
const MAX_SOCKET_PATH = 107;

export interface LocalHostConfig {
  /** Host name (DNS label): host-1 … host-N. */
  name: string;
  /** 1-based. */
  index: number;
  /** Named network namespace (/run/netns/<netns>). */
  netns: string;
  /** The host's end of its veth, in the root namespace, on the bridge. */
  veth: string;
  tunnelIP: string;
  hostUUID: string;
  /** DATA_DIR/hosts/<name>. */
  dir: string;
  /** The daemon's own /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt. */
  libvirtRoot: string;
  /** Where the daemon's /run/libvirt is seen from outside its mount namespace. */
  runDir: string;
  uri: string;
  /** The LibvirtDriver's state directory (domain directories). */
  stateDir: string;
  /** The host's image cache (hardlinks into DATA_DIR/images). */
  imageCacheDir: string;
  migrationPorts: { min: number; max: number };
}

export interface LocalHostsLayout {
  /** Bridge in the root namespace joining every host's veth. */
  bridge: string;
  /** The /24 of the tunnel IPs, as "a.b.c" (hosts are .1 … .N, the bridge .254). */
  subnet: string;
  bridgeIP: string;
  hosts: LocalHostConfig[];
}

/** The record in DATA_DIR/hosts/hosts.json that keeps a data dir's choices across restarts. */
export interface LocalHostsRecord {
  subnet: string;
  /** Host UUIDs by host index − 1; grows when a later start asks for more hosts. */
  hostUUIDs: string[];
}

/** A short tag of the data dir, for names that must not collide between two data dirs. */
export function dataDirTag(dataDir: string): string {
  return createHash('sha256').update(dataDir).digest('hex').slice(0, 6);
}

/** Whether the /24 "a.b.c" overlaps any of `cidrs` ("x.y.z.w/len"). */
function overlaps(subnet: string, cidrs: string[]): boolean {
  const toInt = (ip: string) => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
  const base = toInt(`${subnet}.0`);
  return cidrs.some((c) => {
    const [ip, lenS] = c.split('/');
    const len = lenS === undefined ? 32 : Number(lenS);
    if (!/^\d+\.\d+\.\d+\.\d+$/.test(ip ?? '') || !(len >= 0 && len <= 32)) return false;
    // Overlap iff the two prefixes agree on the shorter of the two lengths.
    const common = Math.min(len, 24);
    const a = Math.floor(base / 2 ** (32 - common));
    const b = Math.floor(toInt(ip!) / 2 ** (32 - common));
    return a === b;
  });
}

/**
 * The tunnel /24 for a data dir: one of the 16384 /24s of 100.64.0.0/10 (shared address space,
 * RFC 6598: not a LAN's, nor a tenant network's), picked by a hash of the data dir so two data
 * dirs on one machine get different ones, skipping any that overlaps a route in `taken`.
 */
export function chooseSubnet(dataDir: string, taken: string[]): string {
  const start = createHash('sha256').update(`kova-local-hosts\n${dataDir}`).digest().readUInt16BE(0) % 16384;
  for (let i = 0; i < 16384; i++) {
    const n = (start + i) % 16384;
    const subnet = `100.${64 + (n >> 8)}.${n & 255}`;
    if (!overlaps(subnet, taken)) return subnet;
  }
  throw new Error('no free /24 in 100.64.0.0/10 for the local hosts\' tunnel network');
}

/** Names, addresses and paths of `count` hosts of `dataDir` (absolute), from its record. */
export function localHostsLayout(dataDir: string, count: number, record: LocalHostsRecord): LocalHostsLayout {
  if (!Number.isInteger(count) || count < 1 || count > MAX_LOCAL_HOSTS) throw new Error(`the number of local hosts must be an integer from 1 to ${MAX_LOCAL_HOSTS}, got ${count}`);
  if (record.hostUUIDs.length < count) throw new Error(`the local hosts record has ${record.hostUUIDs.length} host UUIDs, ${count} needed`);
  const tag = dataDirTag(dataDir);
  const hosts = Array.from({ length: count }, (_, i): LocalHostConfig => {
    const index = i + 1;
    const name = `host-${index}`;
    const dir = join(dataDir, 'hosts', name);
    const libvirtRoot = join(dir, 'libvirt');
    const runDir = join(libvirtRoot, 'run');
    const socket = join(runDir, 'libvirt-sock');
    if (socket.length > MAX_SOCKET_PATH) throw new Error(`the data directory path is too long for ${name}'s libvirt socket ${socket} (at most ${MAX_SOCKET_PATH} characters): use a shorter --data-dir`);
    const min = MIGRATION_PORT_BASE + 100 * i;
    return {
      name, index, dir, libvirtRoot, runDir,
      netns: `kova-${tag}-${name}`,
      veth: `kvh${tag}-${index}`,
      tunnelIP: `${record.subnet}.${index}`,
      hostUUID: record.hostUUIDs[i]!,
      uri: `qemu+unix:///system?socket=${socket}`,
      stateDir: join(dir, 'libvirt-driver'),
      imageCacheDir: join(dir, 'image-cache'),
      migrationPorts: { min, max: min + MIGRATION_PORTS_PER_HOST - 1 },
    };
  });
  return { bridge: `kvhb${tag}`, subnet: record.subnet, bridgeIP: `${record.subnet}.254`, hosts };
}

/** A libvirt configuration string: values here are UUIDs, IPs and numbers, but quote properly anyway. */
function str(v: string): string {
  return JSON.stringify(v);
}

/** libvirtd.conf of one host: its own host UUID; its Unix socket open to root without auth. */
export function renderLibvirtdConf(h: Pick<LocalHostConfig, 'name' | 'hostUUID'>): string {
  return [
    `# libvirtd of kova local host ${h.name} (written by kova up --hosts; rewritten on every start)`,
    `host_uuid = ${str(h.hostUUID)}`,
    'unix_sock_group = "root"',
    'unix_sock_rw_perms = "0700"',
    'auth_unix_rw = "none"',
    'auth_unix_ro = "none"',
    'log_outputs = "3:stderr"',
    '',
  ].join('\n');
}

/**
 * qemu.conf of one host: QEMU as root without a security driver, cgroups or its own mount
 * namespace (several daemons on one machine would collide on cgroups), serial logs written by
 * QEMU itself (no second virtlogd), and migrations received on the host's tunnel IP in its own
 * port range (migration_host: the address the source is told to connect to).
 */
export function renderQemuConf(h: Pick<LocalHostConfig, 'name' | 'tunnelIP' | 'migrationPorts'>): string {
  return [
    `# QEMU driver of kova local host ${h.name} (written by kova up --hosts; rewritten on every start)`,
    'user = "root"',
    'group = "root"',
    'security_driver = "none"',
    'cgroup_controllers = [ ]',
    'namespaces = [ ]',
    'stdio_handler = "file"',
    'remember_owner = 0',
    `migration_address = ${str(h.tunnelIP)}`,
    `migration_host = ${str(h.tunnelIP)}`,
    `migration_port_min = ${h.migrationPorts.min}`,
    `migration_port_max = ${h.migrationPorts.max}`,
    '',
  ].join('\n');
}
