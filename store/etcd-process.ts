// Runs kova's local etcd on loopback (dev, tests, single-host installs and small HA): one
// member, or a cluster of N members in one data dir, each supervised and restarted on a crash;
// with client-certificate authentication and peer TLS when given certificates.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { access, constants, mkdir, readFile, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { dieWithParent } from '../lib/parent-death.js';

/** Certificate files of a local etcd (see apiserver/pki.ts ensureEtcdPki). */
export interface EtcdServerTls {
  /** CA that clients' and peers' certificates must be signed by (and that signed the members'). */
  caFile: string;
  /** Serving certificate of the client URLs (SANs 127.0.0.1, localhost). */
  certFile: string;
  keyFile: string;
  /** Peer certificate (server and client auth between members). */
  peerCertFile: string;
  peerKeyFile: string;
  /** A client identity for kova itself (health probes here; the Store's connection). */
  clientCertFile: string;
  clientKeyFile: string;
}

export interface EtcdOptions {
  dataDir: string;
  /** Client port; a free loopback port when omitted. */
  clientPort?: number;
  /** Peer port; a free loopback port when omitted. */
  peerPort?: number;
  /** Receives every line etcd writes (stdout and stderr). */
  log?: (line: string) => void;
  /** Restart etcd (same ports and data) when it exits without `stop()`. */
  restartOnCrash?: boolean;
  /** How long to wait for etcd to answer /health. Default 30 s. */
  startTimeoutMs?: number;
  /** Binary to run; default: `etcd` found on PATH. */
  binary?: string;
  /** Called with the pid of every etcd process started (first start and crash restarts). */
  onSpawn?: (pid: number) => void;
  /** https client and peer URLs with client-certificate authentication; plain http without. */
  tls?: EtcdServerTls;
}

export interface EtcdProcess {
  /** Client URLs, e.g. `['https://127.0.0.1:40123']`. */
  readonly endpoints: string[];
  /** Pid of the current etcd process (changes after a crash restart). */
  readonly pid: number;
  /** How many times the supervisor restarted etcd. */
  readonly restarts: number;
  /** SIGTERM, then SIGKILL after 5 s; resolves once etcd has exited. Idempotent. */
  stop(): Promise<void>;
  /**
   * Resolves once kova stops supervising etcd: with its exit code, 0 after a clean stop(), or null
   * when a signal killed it (a crash without restartOnCrash, or the SIGKILL fallback of stop()).
   */
  readonly exited: Promise<number | null>;
}

/** One member of a local cluster. */
export interface EtcdMember extends EtcdProcess {
  readonly name: string;
  readonly endpoint: string;
  readonly peerURL: string;
  readonly dataDir: string;
  /** Sends `signal` to the current etcd process (the supervisor restarts it after a crash). */
  kill(signal?: NodeJS.Signals): void;
  /** Starts a stopped member again (same ports and data) and waits until it answers /health. */
  start(): Promise<void>;
}

export interface EtcdClusterOptions extends Omit<EtcdOptions, 'clientPort' | 'peerPort'> {
  /** Member i lives in DIR/member-i; ports and the cluster token are kept in DIR/cluster.json. */
  dataDir: string;
  /** 1, 3 or 5 (any odd number up to 7 works; etcd needs a majority). */
  members: number;
  /**
   * Resolve once each member answers /health (the cluster has a leader). With false, resolve
   * once the members run (for a restart where a majority must first come back). Default true.
   */
  waitHealthy?: boolean;
}

export interface EtcdCluster {
  /** Every member's client URL: a Store fails over between them. */
  readonly endpoints: string[];
  readonly members: EtcdMember[];
  /** Stops every member. */
  stop(): Promise<void>;
}

const INSTALL_HINT = 'run hack/install-host-deps.sh or `apt-get install etcd-server`';
const TAIL_LINES = 40;

/** Resolves `etcd` on PATH (plus /usr/bin and /usr/local/bin, which minimal PATHs may lack). */
export async function findEtcd(name = 'etcd'): Promise<string> {
  if (name.includes('/')) {
    if (await isExecutable(name)) return name;
    throw new Error(`etcd binary ${name} is not executable; ${INSTALL_HINT}`);
  }
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/local/bin'].filter(Boolean);
  for (const dir of dirs) {
    const candidate = join(dir, name);
    if (await isExecutable(candidate)) return candidate;
  }
  throw new Error(`etcd not found on PATH; ${INSTALL_HINT}`);
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** A port that was free a moment ago (bind port 0, read it, release it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

interface MemberSpec {
  name: string;
  dataDir: string;
  clientPort: number;
  peerPort: number;
  initialCluster: string;
  token: string;
  state: 'new' | 'existing';
}

function scheme(tls: EtcdServerTls | undefined): string {
  return tls ? 'https' : 'http';
}

function etcdArgs(m: MemberSpec, tls: EtcdServerTls | undefined): string[] {
  const client = `${scheme(tls)}://127.0.0.1:${m.clientPort}`;
  const peer = `${scheme(tls)}://127.0.0.1:${m.peerPort}`;
  const args = [
    '--name', m.name,
    '--data-dir', m.dataDir,
    '--listen-client-urls', client,
    '--advertise-client-urls', client,
    '--listen-peer-urls', peer,
    '--initial-advertise-peer-urls', peer,
    '--initial-cluster', m.initialCluster,
    '--initial-cluster-state', m.state,
    '--initial-cluster-token', m.token,
    // kova's Store compacts on its own schedule, so no --auto-compaction-* here.
    '--quota-backend-bytes', String(8 * 1024 ** 3),
    '--snapshot-count', '10000',
    '--logger', 'zap',
    '--log-outputs', 'stderr',
  ];
  if (tls) {
    // Paths only: the keys never appear on a command line.
    args.push(
      '--cert-file', tls.certFile, '--key-file', tls.keyFile, '--trusted-ca-file', tls.caFile, '--client-cert-auth',
      '--peer-cert-file', tls.peerCertFile, '--peer-key-file', tls.peerKeyFile, '--peer-trusted-ca-file', tls.caFile,
      '--peer-client-cert-auth',
    );
  }
  return args;
}

/** etcd 3.4 refuses to start when an ETCD_* variable shadows a flag, so don't pass any on. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ETCD_')) env[k] = v;
  return env;
}

/** Starts a single-member etcd and resolves once it reports healthy. Rejects (and kills it) otherwise. */
export async function startEtcd(opts: EtcdOptions): Promise<EtcdProcess> {
  const binary = await findEtcd(opts.binary);
  const probe = await healthProbe(opts.tls);
  // Auto-picked ports can be grabbed by someone else between probe and bind: retry with new ones.
  const attempts = opts.clientPort && opts.peerPort ? 1 : 3;
  for (let i = 1; ; i++) {
    const clientPort = opts.clientPort ?? (await freePort());
    const peerPort = opts.peerPort ?? (await freePort());
    // A single member may change its peer port between starts: no peer ever dials it, and etcd
    // ignores the --initial-* flags once its data dir exists. The name stays 'kova' for data
    // dirs of older kova versions.
    const peer = `${scheme(opts.tls)}://127.0.0.1:${peerPort}`;
    const spec: MemberSpec = { name: 'kova', dataDir: opts.dataDir, clientPort, peerPort, initialCluster: `kova=${peer}`, token: 'etcd-cluster', state: 'new' };
    const member = new Member(binary, spec, opts, probe);
    try {
      await member.start();
      return member;
    } catch (err) {
      if (i >= attempts || !/address already in use/.test(String(err))) throw err;
    }
  }
}

interface ClusterLayout {
  token: string;
  members: Array<{ name: string; clientPort: number; peerPort: number }>;
}

/**
 * Starts (or restarts, from DIR/cluster.json) an N-member etcd on loopback: member i in
 * DIR/member-i with its own client and peer ports, kept across restarts because each member's
 * peer URL is part of the cluster's membership.
 */
export async function startEtcdCluster(opts: EtcdClusterOptions): Promise<EtcdCluster> {
  if (!Number.isInteger(opts.members) || opts.members < 1 || opts.members > 7 || opts.members % 2 === 0) {
    throw new Error(`etcd members must be 1, 3, 5 or 7 (a majority must survive a failure), got ${opts.members}`);
  }
  const binary = await findEtcd(opts.binary);
  const probe = await healthProbe(opts.tls);
  await mkdir(opts.dataDir, { recursive: true, mode: 0o700 });
  const layoutFile = join(opts.dataDir, 'cluster.json');
  const memberDir = (i: number) => join(opts.dataDir, `member-${i}`);
  let layout: ClusterLayout | undefined;
  // Until a member has data the layout is only a plan: pick new ports (one may be taken now).
  const hasData = existsSync(layoutFile) && Array.from({ length: 7 }, (_, i) => existsSync(join(memberDir(i), 'member'))).some(Boolean);
  if (hasData) {
    layout = JSON.parse(await readFile(layoutFile, 'utf8')) as ClusterLayout;
    if (layout.members.length !== opts.members) {
      throw new Error(`the local etcd in ${opts.dataDir} has ${layout.members.length} members, not ${opts.members}: ` +
        `start with --etcd-members ${layout.members.length}, or move that directory away to begin anew`);
    }
  } else {
    const used = new Set<number>();
    const port = async () => {
      for (;;) {
        const p = await freePort();
        if (!used.has(p)) return used.add(p), p;
      }
    };
    const members = [];
    for (let i = 0; i < opts.members; i++) members.push({ name: `kova-${i}`, clientPort: await port(), peerPort: await port() });
    layout = { token: `kova-${randomBytes(8).toString('hex')}`, members };
    await writeFile(layoutFile, JSON.stringify(layout, null, 2) + '\n');
  }
  const initialCluster = layout.members.map((m) => `${m.name}=${scheme(opts.tls)}://127.0.0.1:${m.peerPort}`).join(',');
  const members = layout.members.map((m, i) => {
    const dataDir = memberDir(i);
    // Informational: a member with data ignores the --initial-* flags.
    const state = existsSync(join(dataDir, 'member')) ? 'existing' : 'new';
    const log = opts.log && ((l: string) => opts.log!(`${m.name}: ${l}`));
    return new Member(binary, { ...m, dataDir, initialCluster, token: layout!.token, state }, { ...opts, log }, probe);
  });
  // One at a time: a leader stopping hands leadership to a live follower (milliseconds), but
  // waits out its SIGKILL deadline when every follower is stopping at once.
  const stop = async () => {
    for (const m of members) await m.stop();
  };
  try {
    // All at once: a member becomes healthy only once a majority is up and has elected a leader.
    await Promise.all(members.map((m) => m.start(opts.waitHealthy ?? true)));
  } catch (err) {
    await stop();
    throw err;
  }
  return { endpoints: members.map((m) => m.endpoint), members, stop };
}

type Probe = (endpoint: string) => Promise<boolean>;

/** GET /health, presenting kova's client certificate when etcd requires one. */
async function healthProbe(tls: EtcdServerTls | undefined): Promise<Probe> {
  const creds = tls && {
    ca: await readFile(tls.caFile),
    cert: await readFile(tls.clientCertFile),
    key: await readFile(tls.clientKeyFile),
  };
  return (endpoint) => new Promise((resolve, reject) => {
    const url = `${endpoint}/health`;
    const req = creds ? httpsRequest(url, { ...creds, timeout: 1000 }) : httpRequest(url, { timeout: 1000 });
    req.on('timeout', () => req.destroy(new Error('no answer within 1 s')));
    req.on('error', reject);
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('error', reject);
      res.on('end', () => {
        try {
          resolve((JSON.parse(body) as { health?: string }).health === 'true');
        } catch {
          reject(new Error(`health ${JSON.stringify(body.slice(0, 200))}`));
        }
      });
    });
    req.end();
  });
}

/** One supervised etcd process: started, restarted after a crash, stopped, started again. */
class Member implements EtcdMember {
  readonly endpoint: string;
  readonly peerURL: string;
  private readonly cmd: string;
  private readonly args: string[];
  private readonly tail: string[] = [];
  private child?: ChildProcess;
  private stopping = false;
  private healthy = false;
  private restartCount = 0;
  private streak = 0; // quick successive crashes
  private restartTimer?: NodeJS.Timeout;
  private lastCode: number | null = null;
  private resolveExited!: (code: number | null) => void;
  private exitedP!: Promise<number | null>;
  private readonly killOnExit = () => this.child?.kill('SIGKILL');

  constructor(
    private readonly binary: string,
    private readonly spec: MemberSpec,
    private readonly opts: EtcdOptions,
    private readonly probe: Probe,
  ) {
    this.endpoint = `${scheme(opts.tls)}://127.0.0.1:${spec.clientPort}`;
    this.peerURL = `${scheme(opts.tls)}://127.0.0.1:${spec.peerPort}`;
    // etcd dies with kova even on SIGKILL (its WAL and bbolt are crash-safe); without setpriv
    // only the exit hook covers it.
    [this.cmd, this.args] = dieWithParent(binary, etcdArgs(spec, opts.tls));
    this.newCycle();
  }

  get name() {
    return this.spec.name;
  }
  get dataDir() {
    return this.spec.dataDir;
  }
  get endpoints() {
    return [this.endpoint];
  }
  get pid() {
    return this.child?.pid ?? -1;
  }
  get restarts() {
    return this.restartCount;
  }
  get exited() {
    return this.exitedP;
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    this.child?.kill(signal);
  }

  private newCycle() {
    this.exitedP = new Promise<number | null>((r) => (this.resolveExited = r));
  }

  private onLine = (line: string) => {
    this.tail.push(line);
    if (this.tail.length > TAIL_LINES) this.tail.shift();
    this.opts.log?.(line);
  };

  private spawnOnce() {
    const startedAt = Date.now();
    const child = spawn(this.cmd, this.args, { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv() });
    this.child = child;
    if (child.pid !== undefined) this.opts.onSpawn?.(child.pid);
    pipeLines(child, this.onLine);
    child.once('error', (err) => {
      this.onLine(`[kova] failed to run ${this.binary}: ${err.message}`);
      if (child.pid === undefined) this.finish(null); // never started, so no 'exit' will follow
    });
    // 'close' (not 'exit') so the last lines of output are in the tail before we report.
    child.once('close', (code, signal) => {
      this.onLine(`[kova] etcd pid ${child.pid} exited (code ${code}, signal ${signal})`);
      // etcd closes cleanly on SIGTERM, then re-raises it: report that as exit code 0.
      this.lastCode = this.stopping && signal === 'SIGTERM' ? 0 : code;
      if (this.stopping || !this.opts.restartOnCrash || !this.healthy) return this.finish(this.lastCode);
      // Back off when it crash-loops; a run longer than 10 s resets the backoff.
      this.restartCount++;
      this.streak = Date.now() - startedAt > 10_000 ? 0 : this.streak + 1;
      const delay = Math.min(5000, 100 * 2 ** this.streak);
      this.onLine(`[kova] restarting etcd in ${delay} ms`);
      this.restartTimer = setTimeout(() => {
        this.restartTimer = undefined;
        this.spawnOnce();
      }, delay);
    });
  }

  private finish(code: number | null) {
    process.off('exit', this.killOnExit);
    this.resolveExited(code);
  }

  private running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Spawns etcd and (by default) waits for /health; on failure stops it and rejects with its output's tail. */
  async start(waitHealthy = true): Promise<void> {
    if (this.running() || this.restartTimer) return;
    if (this.child) this.newCycle(); // started again after stop()
    this.stopping = false;
    this.healthy = false;
    this.streak = 0;
    process.on('exit', this.killOnExit);
    this.spawnOnce();
    if (!waitHealthy) {
      // Supervise (restart on crash) from now on; a member that cannot start at all still exits.
      this.healthy = true;
      return;
    }
    try {
      await this.waitHealthy(this.opts.startTimeoutMs ?? 30_000);
      this.healthy = true;
    } catch (err) {
      await this.stop();
      throw new Error(`etcd ${this.spec.name} did not become healthy: ${(err as Error).message}\n--- etcd output (tail) ---\n${this.tail.join('\n')}`);
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) {
      clearTimeout(this.restartTimer);
      this.restartTimer = undefined;
      this.finish(this.lastCode);
    }
    const child = this.child;
    if (child && this.running()) {
      // A SIGSTOPped etcd would never see the SIGTERM.
      child.kill('SIGCONT');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await this.exitedP;
      clearTimeout(timer);
    }
    await this.exitedP;
  }

  /** Polls `/health` until etcd has a leader and serves requests. */
  private async waitHealthy(timeoutMs: number): Promise<void> {
    let exitCode: number | null | undefined;
    void this.exitedP.then((c) => (exitCode = c));
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer yet';
    while (Date.now() < deadline) {
      if (exitCode !== undefined) throw new Error(`etcd exited early with code ${exitCode}`);
      try {
        if (await this.probe(this.endpoint)) return;
        last = 'health false (no leader yet?)';
      } catch (err) {
        last = (err as Error).message;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`timed out after ${timeoutMs} ms (${last})`);
  }
}

function pipeLines(child: ChildProcess, onLine: (line: string) => void): void {
  for (const stream of [child.stdout, child.stderr]) {
    let buf = '';
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      buf += chunk;
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const l of lines) if (l) onLine(l);
    });
    stream?.on('end', () => buf && onLine(buf));
  }
}
