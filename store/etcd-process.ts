// Runs a single-member etcd on loopback for kova (dev, tests and single-host installs).
import { spawn, type ChildProcess } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { dieWithParent } from '../lib/parent-death.js';

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
}

export interface EtcdProcess {
  /** Client URLs, e.g. `['http://127.0.0.1:40123']`. */
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

function etcdArgs(dataDir: string, clientPort: number, peerPort: number): string[] {
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  return [
    '--name', 'kova',
    '--data-dir', dataDir,
    '--listen-client-urls', client,
    '--advertise-client-urls', client,
    '--listen-peer-urls', peer,
    '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `kova=${peer}`,
    '--initial-cluster-state', 'new',
    // kova's Store compacts on its own schedule, so no --auto-compaction-* here.
    '--quota-backend-bytes', String(8 * 1024 ** 3),
    '--snapshot-count', '10000',
    '--logger', 'zap',
    '--log-outputs', 'stderr',
  ];
}

/** etcd 3.4 refuses to start when an ETCD_* variable shadows a flag, so don't pass any on. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ETCD_')) env[k] = v;
  return env;
}

/** Starts etcd and resolves once it reports healthy. Rejects (and kills it) otherwise. */
export async function startEtcd(opts: EtcdOptions): Promise<EtcdProcess> {
  const binary = await findEtcd(opts.binary);
  // Auto-picked ports can be grabbed by someone else between probe and bind: retry with new ones.
  const attempts = opts.clientPort && opts.peerPort ? 1 : 3;
  for (let i = 1; ; i++) {
    const clientPort = opts.clientPort ?? (await freePort());
    const peerPort = opts.peerPort ?? (await freePort());
    try {
      return await launch(binary, opts, clientPort, peerPort);
    } catch (err) {
      if (i >= attempts || !/address already in use/.test(String(err))) throw err;
    }
  }
}

async function launch(binary: string, opts: EtcdOptions, clientPort: number, peerPort: number): Promise<EtcdProcess> {
  // etcd dies with kova even on SIGKILL (its WAL and bbolt are crash-safe); without setpriv
  // only the exit hook below covers it.
  const [cmd, args] = dieWithParent(binary, etcdArgs(opts.dataDir, clientPort, peerPort));
  const endpoint = `http://127.0.0.1:${clientPort}`;
  const tail: string[] = [];
  let child!: ChildProcess;
  let stopping = false;
  let restarts = 0;
  let streak = 0; // quick successive crashes
  let restartTimer: NodeJS.Timeout | undefined;
  let lastCode: number | null = null;
  let resolveExited!: (code: number | null) => void;
  const exited = new Promise<number | null>((r) => (resolveExited = r));
  // Never leave an orphaned etcd behind if the Node process exits without stop().
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);

  const onLine = (line: string) => {
    tail.push(line);
    if (tail.length > TAIL_LINES) tail.shift();
    opts.log?.(line);
  };

  const spawnOnce = () => {
    const startedAt = Date.now();
    child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv() });
    if (child.pid !== undefined) opts.onSpawn?.(child.pid);
    pipeLines(child, onLine);
    child.once('error', (err) => {
      onLine(`[kova] failed to run ${binary}: ${err.message}`);
      if (child.pid === undefined) finish(null); // never started, so no 'exit' will follow
    });
    // 'close' (not 'exit') so the last lines of output are in the tail before we report.
    child.once('close', (code, signal) => {
      onLine(`[kova] etcd pid ${child.pid} exited (code ${code}, signal ${signal})`);
      // etcd closes cleanly on SIGTERM, then re-raises it: report that as exit code 0.
      lastCode = stopping && signal === 'SIGTERM' ? 0 : code;
      if (stopping || !opts.restartOnCrash || !healthy) return finish(lastCode);
      // Back off when it crash-loops; a run longer than 10 s resets the backoff.
      restarts++;
      streak = Date.now() - startedAt > 10_000 ? 0 : streak + 1;
      const delay = Math.min(5000, 100 * 2 ** streak);
      onLine(`[kova] restarting etcd in ${delay} ms`);
      restartTimer = setTimeout(() => {
        restartTimer = undefined;
        spawnOnce();
      }, delay);
    });
  };
  const finish = (code: number | null) => {
    process.off('exit', killOnExit);
    resolveExited(code);
  };

  let healthy = false;
  spawnOnce();
  const stop = async () => {
    stopping = true;
    if (restartTimer) {
      clearTimeout(restartTimer);
      restartTimer = undefined;
      finish(lastCode);
    }
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    await exited;
  };

  try {
    await waitHealthy(endpoint, opts.startTimeoutMs ?? 30_000, exited);
    healthy = true;
  } catch (err) {
    await stop();
    throw new Error(`etcd did not become healthy: ${(err as Error).message}\n--- etcd output (tail) ---\n${tail.join('\n')}`);
  }

  return {
    endpoints: [endpoint],
    get pid() {
      return child.pid ?? -1;
    },
    get restarts() {
      return restarts;
    },
    stop,
    exited,
  };
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

/** Polls `/health` until etcd has a leader and serves requests. */
async function waitHealthy(endpoint: string, timeoutMs: number, exited: Promise<number | null>): Promise<void> {
  let exitCode: number | null | undefined;
  void exited.then((c) => (exitCode = c));
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (exitCode !== undefined) throw new Error(`etcd exited early with code ${exitCode}`);
    try {
      const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
      const body = (await res.json()) as { health?: string };
      if (body.health === 'true') return;
      last = `health ${JSON.stringify(body)}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms (${last})`);
}
