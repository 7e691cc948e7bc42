// Fault injection harness (bench:chaos and e2e/chaos.test.ts): a whole kova as separate
// processes (an etcd cluster, one API server, two leader-elected `kova controllers`, one sim
// `kova agent` per host), a user creating and deleting instances through the API and retrying
// as a user would, while etcd members are SIGKILLed and SIGSTOPped, and the API server, the
// leading controllers and node agents are SIGKILLed and restarted, at seeded random points.
// Then the invariants: what was acknowledged exists and runs once, every domain belongs to
// one instance, no address is held twice, no host is allocated past its allocatable, and
// deleting everything leaves nothing behind. Test-only: product code never imports it.
import { spawn } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import type { WriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressClaim, Host, HostResources, Image, Instance, Port } from '../api/kinds/index.js';
import { parseQuantity } from '../api/quantity.js';
import { ADDRESS_CLAIMS, FLAVORS, HOSTS, IMAGES, INSTANCES, isAlreadyExists, KovaClient, LEASES, NAMESPACES, NETWORKS, PORTS } from '../client/client.js';
import { Informer } from '../client/informer.js';
import { NO_DEFAULT_QUOTA } from '../controllers/namespace/default-quota.js';
import { dieWithParent } from '../lib/parent-death.js';
import { readSimState } from '../node-agent/sim-driver.js';
import { writeSimImageFile } from '../node-agent/sim-image.js';
import { freePort } from '../store/etcd-process.js';
import { startTestEtcdCluster } from './etcd.js';

const KOVA_BIN = fileURLToPath(new URL('../cli/kova.js', import.meta.url));
const NS = 'chaos';
const NETWORK = 'chaos-net';
const FLAVOR = { name: 'chaos.tiny', vcpus: 1, memory: '256Mi', disk: '1Gi' };

export const FAULT_KINDS = ['etcd-kill', 'etcd-stop', 'apiserver-kill', 'controllers-leader-kill', 'agent-kill'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

// ---------------------------------------------------------------- seeded randomness

/** mulberry32: a small seeded PRNG, so a run's fault points can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------- invariants (pure)

/** One domain a sim host holds (from its agent's state file). */
export interface HostDomain {
  host: string;
  name: string;
  instanceKey?: string;
  instanceUID?: string;
  vcpus: number;
  memoryBytes: number;
  diskBytes: number;
}

/** What the cluster looks like at one moment: what the invariants are computed from. */
export interface ChaosSnapshot {
  /** Names of instances whose create the API acknowledged (2xx, or AlreadyExists on a retry). */
  acknowledged: string[];
  /** Every name the user tried to create. */
  attempted: string[];
  instances: Instance[];
  ports: Port[];
  hosts: Host[];
  claims: AddressClaim[];
  domains: HostDomain[];
}

export interface Invariants {
  instances_lost: number;
  instances_duplicated: number;
  domains_without_instance: number;
  instances_with_two_domains: number;
  ips_allocated_twice: number;
  macs_allocated_twice: number;
  hosts_over_allocated: number;
}

function overAllocated(used: { vcpus: number; memory: number; disk: number }, allocatable: HostResources | undefined): boolean {
  if (!allocatable) return false;
  return used.vcpus > Number(allocatable.vcpus ?? Infinity)
    || used.memory > (allocatable.memory === undefined ? Infinity : parseQuantity(allocatable.memory))
    || used.disk > (allocatable.disk === undefined ? Infinity : parseQuantity(allocatable.disk));
}

/** Counts how many values are held by more than one distinct holder. */
function heldTwice(pairs: Array<[value: string, holder: string]>): number {
  const by = new Map<string, Set<string>>();
  for (const [v, h] of pairs) {
    let s = by.get(v);
    if (!s) by.set(v, (s = new Set()));
    s.add(h);
  }
  return [...by.values()].filter((s) => s.size > 1).length;
}

/**
 * The invariants after the create phase. An acknowledged instance is lost when it is gone or
 * not Running on a host; duplicated when a list shows its name twice or shows an instance
 * nobody asked for. A domain is without instance when no existing instance with its uid is
 * bound to its host; an instance has two domains when more than one domain carries its uid.
 * Addresses: a Port's IP (per network) or MAC held by more than one Port. A host is over
 * allocated when its allocations, or the domains it actually runs, pass its allocatable.
 */
export function checkInvariants(s: ChaosSnapshot): Invariants {
  const byName = new Map<string, Instance>();
  const names = new Map<string, number>();
  for (const i of s.instances) {
    byName.set(i.metadata.name!, i);
    names.set(i.metadata.name!, (names.get(i.metadata.name!) ?? 0) + 1);
  }
  const attempted = new Set(s.attempted);
  let lost = 0;
  for (const n of s.acknowledged) {
    const i = byName.get(n);
    if (!i || i.metadata.deletionTimestamp || i.status?.phase !== 'Running' || !i.status.hostName) lost++;
  }
  let duplicated = 0;
  for (const [n, c] of names) duplicated += (c - 1) + (attempted.has(n) ? 0 : 1);

  const byUID = new Map<string, Instance>();
  for (const i of s.instances) byUID.set(i.metadata.uid!, i);
  let withoutInstance = 0;
  const domainsPerUID = new Map<string, number>();
  for (const d of s.domains) {
    const i = d.instanceUID ? byUID.get(d.instanceUID) : undefined;
    if (!i || i.status?.hostName !== d.host) withoutInstance++;
    if (d.instanceUID) domainsPerUID.set(d.instanceUID, (domainsPerUID.get(d.instanceUID) ?? 0) + 1);
  }
  const twoDomains = [...domainsPerUID.values()].filter((c) => c > 1).length;

  const portKey = (p: Port) => `${p.metadata.namespace}/${p.metadata.name}/${p.metadata.uid}`;
  const ips = s.ports.filter((p) => p.status?.ip).map((p): [string, string] => [`${p.spec.network}|${p.status!.ip}`, portKey(p)]);
  const macs = s.ports.filter((p) => p.status?.mac).map((p): [string, string] => [p.status!.mac!.toLowerCase(), portKey(p)]);

  let over = 0;
  for (const h of s.hosts) {
    const allocatable = h.status?.allocatable;
    const a = h.status?.allocated;
    const allocated = { vcpus: Number(a?.vcpus ?? 0), memory: a?.memory === undefined ? 0 : parseQuantity(a.memory), disk: a?.disk === undefined ? 0 : parseQuantity(a.disk) };
    const running = { vcpus: 0, memory: 0, disk: 0 };
    for (const d of s.domains) {
      if (d.host !== h.metadata.name) continue;
      running.vcpus += d.vcpus;
      running.memory += d.memoryBytes;
      running.disk += d.diskBytes;
    }
    if (overAllocated(allocated, allocatable) || overAllocated(running, allocatable)) over++;
  }
  return {
    instances_lost: lost,
    instances_duplicated: duplicated,
    domains_without_instance: withoutInstance,
    instances_with_two_domains: twoDomains,
    ips_allocated_twice: heldTwice(ips),
    macs_allocated_twice: heldTwice(macs),
    hosts_over_allocated: over,
  };
}

export interface Leftovers {
  instances: number;
  ports: number;
  domains: number;
  address_claims: number;
  host_allocations: number;
}

/** What remains after everything was deleted: instances, ports, domains, IP/MAC claims, host allocations. */
export function leftovers(s: ChaosSnapshot): Leftovers {
  return {
    instances: s.instances.length,
    ports: s.ports.length,
    domains: s.domains.length,
    // The network's own claims (its VNI) stay with it; those of ports and instances must go.
    address_claims: s.claims.filter((c) => /^(Port|Instance)\//.test(c.spec.owner ?? '')).length,
    host_allocations: s.hosts.reduce((n, h) => n + (h.status?.allocations?.length ?? 0), 0),
  };
}

// ---------------------------------------------------------------- processes

/**
 * One supervised child process. It is restarted when it exits on its own (as systemd's
 * Restart=always would), and killed on purpose by the faults; it dies with this process.
 */
class Proc {
  child?: ChildProcess;
  private tail = '';
  private down = true;
  crashes = 0;
  private restartTimer?: NodeJS.Timeout;
  /** How many times it was started. */
  starts = 0;

  /** `args` is asked at every start (a restarted controllers process gets a new identity). */
  private readonly file: WriteStream;

  /** Its output, of every start, goes to LOGDIR/NAME.log (kept with --keep for a post-mortem). */
  constructor(readonly name: string, private readonly cmd: string, private readonly args: string[] | ((start: number) => string[]), private readonly log: (m: string) => void, logDir: string, private readonly ready?: RegExp) {
    this.file = createWriteStream(join(logDir, `${name.replace(/\s+/g, '-')}.log`), { flags: 'a' });
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  output(): string {
    return this.tail;
  }

  /** Starts it; resolves once its output matches `ready` (if given). */
  start(timeoutMs = 60_000): Promise<void> {
    this.down = false;
    const [cmd, args] = dieWithParent(this.cmd, typeof this.args === 'function' ? this.args(this.starts) : this.args);
    this.starts++;
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.file.write(`---- ${new Date().toISOString()} start ${this.starts} (pid ${child.pid})\n`);
    this.child = child;
    let seen = '';
    const onData = (d: Buffer) => {
      const s = d.toString();
      this.file.write(s);
      this.tail = (this.tail + s).slice(-20_000);
      if (this.ready) seen = (seen + s).slice(-20_000);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code, signal) => {
      if (this.down || this.child !== child) return;
      // Not one of ours: a crash (e.g. an agent that could not reach the API at start).
      this.crashes++;
      this.log(`${this.name} (pid ${child.pid}) exited on its own (${signal ?? code}); restarting in 1 s\n${this.tail.slice(-600)}`);
      this.restartTimer = setTimeout(() => void this.start().catch((e) => this.log(`${this.name}: restart failed: ${e}`)), 1000);
    });
    if (!this.ready) return Promise.resolve();
    const ready = this.ready;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${this.name} not ready after ${timeoutMs} ms:\n${this.tail.slice(-2000)}`));
      }, timeoutMs);
      const check = () => {
        if (ready.test(seen)) {
          cleanup();
          resolve();
        }
      };
      const onExit = () => {
        cleanup();
        // A crash restarts it (above); a kill of ours ends the wait.
        if (this.down) reject(new Error(`${this.name} was stopped before it was ready`));
        else resolve();
      };
      const cleanup = () => {
        clearTimeout(timer);
        child.stdout!.off('data', check);
        child.stderr!.off('data', check);
        child.off('exit', onExit);
      };
      child.stdout!.on('data', check);
      child.stderr!.on('data', check);
      child.on('exit', onExit);
    });
  }

  /** SIGKILLs it and waits for it to be gone; it stays down until start(). */
  async kill(): Promise<void> {
    this.down = true;
    clearTimeout(this.restartTimer);
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGCONT'); // a stopped process must not keep the kill waiting
    c.kill('SIGKILL');
    await gone;
    this.file.write(`---- ${new Date().toISOString()} SIGKILLed\n`);
  }

  close(): void {
    this.file.end();
  }

  signal(sig: NodeJS.Signals): void {
    this.child?.kill(sig);
  }
}

// ---------------------------------------------------------------- the scenario

export interface ChaosOptions {
  hosts: number;
  instances: number;
  /** The instances are created in this many waves. */
  waves: number;
  seed: number;
  etcdMembers?: number;
  /** etcd over https with client certificates (the API server gets --etcd-cafile/certfile/keyfile). */
  etcdTls?: boolean;
  /** Each wave's requests are spread over at least this long, so faults land among them. */
  waveMs?: number;
  /** How long a SIGSTOPped etcd member stays stopped. */
  stallMs: number;
  /** Faults of each kind (default 1); 0 is a baseline without faults (converge_s then counts from the last request). */
  rounds?: number;
  /** When a fault lands after the start of its wave, [min, max] ms. */
  gapMs: [number, number];
  /** Concurrency of the user's creates and deletes. */
  concurrency?: number;
  /** How long to wait for convergence after the last fault before judging anyway. */
  convergeTimeoutMs: number;
  log?: (m: string) => void;
  /** Keep the work directory (for a post-mortem). */
  keep?: boolean;
}

export interface ChaosResult extends Invariants {
  objects_left: number;
  left: Leftovers;
  converge_s: number;
  converge_create_s: number;
  /** From the user's last acknowledged create (delete) to convergence: the backlog, faults or not. */
  settle_create_s: number;
  settle_delete_s: number;
  converged: boolean;
  faults: Record<FaultKind, number>;
  seed: number;
  hosts: number;
  instances: number;
  create_retries: number;
  delete_retries: number;
  process_crashes: number;
  duration_s: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Client credentials for etcd's own HTTP endpoints (/health, the JSON gateway) over https. */
type EtcdAuth = { ca: Buffer; cert: Buffer; key: Buffer } | undefined;

/** One request to etcd's HTTP side; the parsed JSON answer, undefined on any failure within a second. */
function etcdJson(url: string, path: string, auth: EtcdAuth, body?: string): Promise<Record<string, unknown> | undefined> {
  return new Promise((resolve) => {
    const u = new URL(path, url);
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, { method: body === undefined ? 'GET' : 'POST', timeout: 1000, ...(auth ?? {}) }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        try {
          resolve(res.statusCode === 200 ? JSON.parse(text) as Record<string, unknown> : undefined);
        } catch {
          resolve(undefined);
        }
      });
      res.on('error', () => resolve(undefined));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
    req.end(body);
  });
}

async function etcdHealthy(url: string, auth: EtcdAuth): Promise<boolean> {
  return (await etcdJson(url, '/health', auth))?.health === 'true';
}

/** A member's own id and the leader's id it knows of (etcd's JSON gateway, /v3/maintenance/status). */
async function etcdStatus(url: string, auth: EtcdAuth): Promise<{ member: string; leader: string } | undefined> {
  const j = await etcdJson(url, '/v3/maintenance/status', auth, '{}') as { header?: { member_id?: string }; leader?: string } | undefined;
  return j?.header?.member_id && j.leader ? { member: j.header.member_id, leader: j.leader } : undefined;
}

/** Runs one scenario end to end; always stops every process it started. */
export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const out = o.log ?? ((m: string) => process.stderr.write(`chaos: ${m}\n`));
  const log = (m: string) => out(`${new Date().toISOString().slice(11, 23)} ${m}`);
  const rand = seededRandom(o.seed);
  const between = (lo: number, hi: number) => lo + (hi - lo) * rand();
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const t0 = Date.now();
  const dir = await mkdtemp(join(tmpdir(), 'kova-chaos-'));
  const procs: Proc[] = [];
  const logDir = join(dir, 'logs');
  await mkdir(logDir);
  const cleanups: Array<() => Promise<void>> = [];
  let client: KovaClient | undefined;
  let stopWatching: (() => void) | undefined;
  log(`seed ${o.seed}; ${o.hosts} hosts, ${o.instances} instances; work dir ${dir}`);
  try {
    // etcd: N supervised members on loopback (a SIGKILLed member is restarted by its
    // supervisor, as systemd would); with etcdTls, https with client certificates.
    const members = o.etcdMembers ?? 3;
    const cluster = await startTestEtcdCluster({ members, tls: o.etcdTls ?? false, log: () => undefined });
    cleanups.push(() => cluster.cleanup());
    const etcd = cluster.members;
    const endpoints = cluster.endpoints;
    const etcdAuth: EtcdAuth = cluster.tls && { ca: cluster.tls.ca, cert: cluster.tls.cert, key: cluster.tls.key };
    const etcdFlags = cluster.tls ? ['--etcd-cafile', cluster.tls.caFile, '--etcd-certfile', cluster.tls.certFile, '--etcd-keyfile', cluster.tls.keyFile] : [];
    log(`etcd: ${members} members at ${endpoints.join(',')}`);

    // The API server on a fixed port: a restarted one must be where the others look.
    const apiPort = await freePort();
    const apiDir = join(dir, 'api');
    const api = new Proc('apiserver', process.execPath, [KOVA_BIN, 'apiserver', '--data-dir', apiDir, '--listen', `127.0.0.1:${apiPort}`, '--etcd-endpoints', endpoints.join(','), ...etcdFlags, '--api-workers', '1'], log, logDir, /ready: API server at/);
    procs.push(api);
    await api.start();
    const kubeconfig = join(apiDir, 'kubeconfig');
    client = KovaClient.fromFile(kubeconfig, { userAgent: 'chaos-user', fieldManager: 'chaos-user', timeoutMs: 10_000 });
    const c = client;
    log(`apiserver at 127.0.0.1:${apiPort}`);

    const ctlDir = join(dir, 'controllers');
    await mkdir(ctlDir, { recursive: true });
    // Each start is a new identity, as kube-controller-manager's is (hostname_uuid): a restarted
    // leader cannot just renew the Lease its predecessor held, so the standby may take it.
    const ctlId = (i: number, start: number) => `ctl-${i}-${start}`;
    const controllers = [0, 1].map((i) => new Proc(`ctl-${i}`, process.execPath, (start) => [KOVA_BIN, 'controllers', '--kubeconfig', kubeconfig, '--id', ctlId(i, start), '--data-dir', ctlDir], log, logDir, /campaigning/));
    procs.push(...controllers);
    await Promise.all(controllers.map((p) => p.start()));

    const agentDir = join(dir, 'agents');
    const agents = Array.from({ length: o.hosts }, (_, i) => new Proc(`agent chaos-${i}`, process.execPath, [KOVA_BIN, 'agent', '--host', `chaos-${i}`, '--driver', 'sim', '--kubeconfig', kubeconfig, '--data-dir', agentDir, '--lease-duration', '10'], log, logDir, /ready: agent for host/));
    procs.push(...agents);
    // A few at a time: each is a Node process starting on a shared machine.
    for (let i = 0; i < agents.length; i += 4) await Promise.all(agents.slice(i, i + 4).map((a) => a.start(120_000)));
    log(`${o.hosts} agents up`);

    // What a user sets up: namespace, flavor, image, network.
    await c.create(NAMESPACES, { metadata: { name: NS, annotations: { ...NO_DEFAULT_QUOTA } } });
    await c.create(FLAVORS, { metadata: { name: FLAVOR.name }, spec: { vcpus: FLAVOR.vcpus, memory: FLAVOR.memory, disk: FLAVOR.disk } });
    const image = await writeSimImageFile(dir);
    await c.create(IMAGES, { metadata: { name: 'tiny', namespace: NS }, spec: { source: { file: { path: image.path } }, format: 'raw' } });
    await c.create(NETWORKS, { metadata: { name: NETWORK, namespace: NS }, spec: { type: 'vxlan', cidr: '10.200.0.0/20' } });
    await until(async () => (await c.get<Image>(IMAGES, NS, 'tiny'))?.status?.phase === 'Ready', 60_000, 'the image Ready');
    await until(async () => (await c.list<Host>(HOSTS)).items.filter(ready).length === o.hosts, 60_000, 'every host Ready');

    // ---- faults
    const faults = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
    // With no fault at all (a baseline run), convergence counts from the last request.
    let lastFaultHealedAt = 0;
    const leader = async (): Promise<Proc | undefined> => {
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        try {
          const lease = await c.get(LEASES, 'kova-system', 'kova-controllers');
          const id = (lease?.spec as { holderIdentity?: string } | undefined)?.holderIdentity;
          const p = controllers.find((x, i) => id === ctlId(i, x.starts - 1));
          if (p && p.child && p.child.exitCode === null && p.child.signalCode === null) return p;
        } catch {
          // the API may be down: a user would try again
        }
        await sleep(500);
      }
      return undefined;
    };
    // Half the etcd faults hit the leader (writes stall until a new one is elected), half any member.
    const pickEtcd = async () => {
      const leaderWanted = rand() < 0.5;
      const any = pick(etcd);
      if (!leaderWanted) return any;
      const leaderId = (await Promise.all(etcd.map((m) => etcdStatus(m.endpoint, etcdAuth)))).find((x) => x?.leader)?.leader;
      if (!leaderId) {
        log('etcd leader unknown (no member answered its status); any member then');
        return any;
      }
      for (const m of etcd) if ((await etcdStatus(m.endpoint, etcdAuth))?.member === leaderId) {
        log(`etcd leader is ${m.name}`);
        return m;
      }
      return any;
    };
    const inject = async (kind: FaultKind): Promise<void> => {
      switch (kind) {
        case 'etcd-kill': {
          const m = await pickEtcd();
          log(`fault: SIGKILL etcd ${m.name} (pid ${m.pid}); its supervisor restarts it`);
          m.kill('SIGKILL');
          // Healed once the restarted member answers /health again.
          await until(async () => etcdHealthy(m.endpoint, etcdAuth), 60_000, `etcd ${m.name} healthy again`).catch((e) => log(String(e)));
          break;
        }
        case 'etcd-stop': {
          const m = await pickEtcd();
          log(`fault: SIGSTOP etcd ${m.name} for ${o.stallMs} ms`);
          m.kill('SIGSTOP');
          await sleep(o.stallMs);
          m.kill('SIGCONT');
          break;
        }
        case 'apiserver-kill':
          log('fault: SIGKILL apiserver');
          await api.kill();
          await sleep(between(200, 2000));
          await api.start().catch((e) => log(`apiserver restart: ${e}`));
          break;
        case 'controllers-leader-kill': {
          const l = await leader();
          if (!l) {
            log('fault: no live leader of the controllers found in 30 s; skipped');
            return;
          }
          log(`fault: SIGKILL the leading controllers ${ctlId(controllers.indexOf(l), l.starts - 1)}`);
          await l.kill();
          await sleep(between(500, 3000));
          await l.start();
          break;
        }
        case 'agent-kill': {
          const a = pick(agents);
          log(`fault: SIGKILL ${a.name}`);
          await a.kill();
          await sleep(between(500, 3000));
          await a.start(60_000).catch((e) => log(`${a.name} restart: ${e}`));
          break;
        }
      }
      faults[kind]++;
      lastFaultHealedAt = Date.now();
    };
    const plan: FaultKind[] = [];
    for (let r = 0; r < (o.rounds ?? 1); r++) {
      const round = [...FAULT_KINDS];
      for (let i = round.length - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [round[i], round[j]] = [round[j]!, round[i]!];
      }
      plan.push(...round);
    }
    const createFaults = plan.slice(0, Math.ceil(plan.length / 2));
    const deleteFaults = plan.slice(createFaults.length);
    log(`fault plan: create phase [${createFaults.join(', ')}], delete phase [${deleteFaults.join(', ')}]`);
    // ---- the user: create in waves, retrying as a user would
    const names = Array.from({ length: o.instances }, (_, i) => `c-${i}`);
    const acknowledged = new Set<string>();
    let createRetries = 0;
    /** When the user's last create or delete was answered: convergence cannot come before it. */
    let lastRequestAt = Date.now();
    let deleteRetries = 0;
    const concurrency = o.concurrency ?? 16;
    const persist = async (what: string, fn: () => Promise<void>, onRetry: () => void) => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await fn();
        } catch (e) {
          onRetry();
          if (attempt % 10 === 9) log(`${what}: still failing after ${attempt + 1} attempts: ${e instanceof Error ? e.message : e}`);
          if (Date.now() - t0 > 30 * 60_000) throw new Error(`${what}: gave up: ${e}`);
          await sleep(Math.min(2000, 100 * 2 ** Math.min(attempt, 5)) * (0.5 + rand()));
        }
      }
    };
    const pool = async <T>(items: T[], fn: (x: T) => Promise<void>) => {
      let next = 0;
      await Promise.all(Array.from({ length: concurrency }, async () => {
        while (next < items.length) await fn(items[next++]!);
      }));
    };
    const createOne = (name: string) => persist(`create ${name}`, async () => {
      try {
        await c.create(INSTANCES, { metadata: { name, namespace: NS, labels: { app: 'chaos' } }, spec: { flavor: FLAVOR.name, image: 'tiny', networks: [{ network: NETWORK }] } });
      } catch (e) {
        // An earlier attempt went through before its answer was lost.
        if (!isAlreadyExists(e)) throw e;
      }
      acknowledged.add(name);
      lastRequestAt = Date.now();
    }, () => createRetries++);

    /**
     * The user works in waves; each fault of the phase lands at a random point of one wave
     * (a random pause after the wave starts), so it hits requests, spawns and deletions in flight.
     */
    const phase = async (what: string, items: string[], fn: (name: string) => Promise<void>, list: FaultKind[]) => {
      const waves = Math.max(o.waves, list.length);
      const per = Math.ceil(items.length / waves);
      for (let w = 0; w < waves; w++) {
        const f = list[w];
        const fault = f ? sleep(between(o.gapMs[0], o.gapMs[1])).then(() => inject(f)) : undefined;
        const wave = items.slice(w * per, (w + 1) * per);
        const start = Date.now();
        const slot = new Map(wave.map((n, j) => [n, start + (j * (o.waveMs ?? 0)) / wave.length]));
        await Promise.all([pool(wave, async (n) => {
          await sleep(slot.get(n)! - Date.now());
          await fn(n);
        }), fault]);
        log(`${what} wave ${w + 1}/${waves} done`);
      }
    };
    await phase('create', names, createOne, createFaults);
    /** The cluster as the API lists it now (and the hosts' domains): what every verdict is judged on. */
    const snapshot = async (): Promise<ChaosSnapshot> => {
      for (;;) {
        try {
          const [instances, ports, hosts, claims] = await Promise.all([
            c.list<Instance>(INSTANCES, NS), c.list<Port>(PORTS, NS), c.list<Host>(HOSTS), c.list<AddressClaim>(ADDRESS_CLAIMS, NS),
          ]);
          return { acknowledged: [...acknowledged], attempted: names, instances: instances.items, ports: ports.items, hosts: hosts.items, claims: claims.items, domains: await readDomains(agentDir) };
        } catch (e) {
          log(`snapshot: ${e instanceof Error ? e.message : e}; again`);
          await sleep(500);
        }
      }
    };
    // While it waits, the harness follows the cluster through watches (informers), as a
    // controller would: listing its 4,000-odd objects every half second took a tenth of the
    // machine from the system it measures. A state that looks done is confirmed by a snapshot.
    const watchClient = KovaClient.fromFile(kubeconfig, { userAgent: 'chaos-watch', timeoutMs: 10_000 });
    // Back within a second of an API server restart, so the view never lags the verdict. Their
    // watches break with every API server fault, by design: not worth a line each.
    const quickRetry = { minBackoffMs: 200, maxBackoffMs: 1000, log: () => undefined };
    const watched = {
      instances: new Informer<Instance>(watchClient, INSTANCES, { namespace: NS, ...quickRetry }),
      ports: new Informer<Port>(watchClient, PORTS, { namespace: NS, ...quickRetry }),
      hosts: new Informer<Host>(watchClient, HOSTS, quickRetry),
      claims: new Informer<AddressClaim>(watchClient, ADDRESS_CLAIMS, { namespace: NS, ...quickRetry }),
    };
    const watchers = Object.values(watched) as Array<Informer<any>>;
    stopWatching = () => {
      for (const i of watchers) i.stop();
      watchClient.close();
    };
    for (const i of watchers) i.start();
    const cached = async (): Promise<ChaosSnapshot> => ({
      acknowledged: [...acknowledged], attempted: names, instances: [...watched.instances.list()], ports: [...watched.ports.list()],
      hosts: [...watched.hosts.list()], claims: [...watched.claims.list()], domains: await readDomains(agentDir),
    });
    const zero = (inv: Invariants) => Object.values(inv).every((v) => v === 0);
    const settle = async (what: string, done: (s: ChaosSnapshot) => boolean, progress: (s: ChaosSnapshot) => string): Promise<{ s: ChaosSnapshot; seconds: number; afterRequests: number; converged: boolean }> => {
      const deadline = Date.now() + o.convergeTimeoutMs;
      let shown = Date.now();
      for (;;) {
        let s = await cached();
        const since = lastFaultHealedAt || lastRequestAt;
        if ((watchers.every((i) => i.hasSynced()) && done(s)) || Date.now() > deadline) {
          s = await snapshot();
          if (done(s)) return { s, seconds: (Date.now() - since) / 1000, afterRequests: (Date.now() - lastRequestAt) / 1000, converged: true };
        }
        if (Date.now() - shown > 5000) {
          shown = Date.now();
          log(`${what}: ${((Date.now() - since) / 1000).toFixed(0)} s after the last ${lastFaultHealedAt ? 'fault' : 'request'}: ${progress(s)}`);
        }
        if (Date.now() > deadline) {
          log(`${what}: not converged ${o.convergeTimeoutMs / 1000} s after the last fault`);
          return { s, seconds: (Date.now() - since) / 1000, afterRequests: (Date.now() - lastRequestAt) / 1000, converged: false };
        }
        await sleep(500);
      }
    };
    const created = await settle('create phase', (s) => zero(checkInvariants(s)) && s.instances.length === o.instances && s.domains.length === o.instances && s.hosts.filter(ready).length === o.hosts && s.ports.every((p) => p.status?.ip && p.status.mac), (s) => {
      const bad = Object.entries(checkInvariants(s)).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`).join(', ');
      const phases = new Map<string, number>();
      for (const i of s.instances) phases.set(i.status?.phase ?? 'none', (phases.get(i.status?.phase ?? 'none') ?? 0) + 1);
      return `${s.instances.length} instances (${[...phases].map(([p, n]) => `${p} ${n}`).join(', ')}), ${s.domains.length} domains, hosts Ready ${s.hosts.filter(ready).length}/${o.hosts}, ports without address ${s.ports.filter((p) => !p.status?.ip || !p.status.mac).length}${bad ? `; ${bad}` : ''}`;
    });
    const inv = checkInvariants(created.s);
    log(`create phase: ${created.converged ? 'converged' : 'NOT converged'} ${created.seconds.toFixed(1)} s after the last fault (${created.afterRequests.toFixed(1)} s after the last create); ${JSON.stringify(inv)}`);

    // ---- delete everything, with the remaining faults
    await phase('delete', names, (name) => persist(`delete ${name}`, async () => {
      await c.delete(INSTANCES, NS, name);
      lastRequestAt = Date.now();
    }, () => deleteRetries++), deleteFaults);
    const isEmpty = (s: ChaosSnapshot) => Object.values(leftovers(s)).every((v) => v === 0);
    const deleted = await settle('delete phase', isEmpty, (s) => `left ${JSON.stringify(leftovers(s))}, hosts Ready ${s.hosts.filter(ready).length}/${o.hosts}`);
    const left = leftovers(deleted.s);
    log(`delete phase: ${deleted.converged ? 'converged' : 'NOT converged'} ${deleted.seconds.toFixed(1)} s after the last fault (${deleted.afterRequests.toFixed(1)} s after the last delete); left ${JSON.stringify(left)}`);
    return {
      ...inv,
      objects_left: Object.values(left).reduce((a, b) => a + b, 0),
      left,
      converge_s: round1(deleted.seconds),
      converge_create_s: round1(created.seconds),
      settle_create_s: round1(created.afterRequests),
      settle_delete_s: round1(deleted.afterRequests),
      converged: created.converged && deleted.converged,
      faults,
      seed: o.seed,
      hosts: o.hosts,
      instances: o.instances,
      create_retries: createRetries,
      delete_retries: deleteRetries,
      process_crashes: procs.reduce((n, p) => n + p.crashes, 0),
      duration_s: round1((Date.now() - t0) / 1000),
    };
  } finally {
    stopWatching?.();
    client?.close();
    // Agents and controllers first (they would only complain about a vanished API), etcd last.
    for (const p of [...procs].reverse()) {
      await p.kill();
      p.close();
    }
    for (const f of cleanups) await f().catch((e) => log(`cleanup: ${e}`));
    if (!o.keep) await rm(dir, { recursive: true, force: true });
  }
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

function ready(h: Host): boolean {
  return h.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

/** The domains of every sim host, from the state files its agent keeps under DIR/sim. */
export async function readDomains(agentDir: string): Promise<HostDomain[]> {
  const simDir = join(agentDir, 'sim');
  let files: string[];
  try {
    files = (await readdir(simDir)).filter((f) => f.endsWith('.json'));
  } catch {
    return [];
  }
  const out: HostDomain[] = [];
  for (const f of files) {
    const host = f.slice(0, -'.json'.length);
    for (const d of readSimState(join(simDir, f))) {
      out.push({ host, name: d.name, instanceKey: d.spec.instanceKey || undefined, instanceUID: d.spec.instanceUID || undefined, vcpus: d.spec.vcpus, memoryBytes: d.spec.memoryBytes, diskBytes: d.spec.diskBytes });
    }
  }
  return out;
}

async function until(cond: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await cond()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}
