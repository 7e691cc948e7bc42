// Test helpers: a throwaway etcd (one member or a cluster, plain or with TLS) in a temp dir.
// (Not named *.test.ts / test-*.ts on purpose: `node --test dir/` would pick it up as a test file.)
import { readFile, readdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureEtcdPki } from '../apiserver/pki.js';
import { startEtcd, startEtcdCluster, type EtcdOptions, type EtcdProcess, type EtcdServerTls } from '../store/etcd-process.js';
import type { EtcdConnectionOptions } from '../store/etcd-options.js';

export interface TestEtcd {
  etcd: EtcdProcess;
  endpoints: string[];
  dataDir: string;
  /** Stops etcd and removes its data dir. */
  cleanup(): Promise<void>;
}

export async function startTestEtcd(opts: Partial<EtcdOptions> = {}): Promise<TestEtcd> {
  const dataDir = await mkdtemp(join(tmpdir(), 'kova-etcd-'));
  try {
    const etcd = await startEtcd({ ...opts, dataDir });
    return {
      etcd,
      endpoints: etcd.endpoints,
      dataDir,
      cleanup: async () => {
        await etcd.stop();
        await rm(dataDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
}

export interface TestEtcdMember {
  readonly name: string;
  readonly endpoint: string;
  /** Pid of the current etcd process (changes when the supervisor restarts it). */
  readonly pid: number;
  /** How many times the supervisor restarted it after a crash. */
  readonly restarts: number;
  /** Signals the current process: SIGKILL is a crash (restarted), SIGSTOP a stall (SIGCONT ends it). */
  kill(signal?: NodeJS.Signals): void;
  /** Stops the member for good (until restart()). */
  stop(): Promise<void>;
  /** Stops it if running, starts it again with its data, and waits until it answers /health. */
  restart(): Promise<void>;
}

/** Client credentials of a TLS test cluster, as Buffers and as the files they came from. */
export interface TestEtcdTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  caFile: string;
  certFile: string;
  keyFile: string;
  /** The members' own certificate files (serving, peer). */
  server: EtcdServerTls;
}

export interface TestEtcdCluster {
  endpoints: string[];
  members: TestEtcdMember[];
  /** With `tls: true`: the CA and a client identity etcd accepts. */
  tls?: TestEtcdTls;
  /** What Store.connect takes for this cluster (endpoints and TLS). */
  connection: EtcdConnectionOptions;
  dataDir: string;
  /** Stops every member and removes the data dir. */
  cleanup(): Promise<void>;
}

export interface TestEtcdClusterOptions {
  /** Default 3. */
  members?: number;
  /** https with client-certificate and peer TLS, certificates from a throwaway kova CA. */
  tls?: boolean;
  /** Restart a member that crashes (default true, like kova up). */
  restartOnCrash?: boolean;
  log?: (line: string) => void;
}

/** A local N-member etcd (TLS optional) for failover and chaos tests. */
export async function startTestEtcdCluster(opts: TestEtcdClusterOptions = {}): Promise<TestEtcdCluster> {
  const dataDir = await mkdtemp(join(tmpdir(), 'kova-etcd-cluster-'));
  try {
    let tls: TestEtcdTls | undefined;
    if (opts.tls) {
      const files = await ensureEtcdPki(join(dataDir, 'pki'));
      const [ca, cert, key] = await Promise.all([files.caFile, files.clientCertFile, files.clientKeyFile].map((f) => readFile(f)));
      tls = { ca: ca!, cert: cert!, key: key!, caFile: files.caFile, certFile: files.clientCertFile, keyFile: files.clientKeyFile, server: files };
    }
    const cluster = await startEtcdCluster({
      dataDir: join(dataDir, 'etcd'), members: opts.members ?? 3, tls: tls?.server,
      restartOnCrash: opts.restartOnCrash ?? true, log: opts.log,
    });
    const members: TestEtcdMember[] = cluster.members.map((m) => ({
      get name() {
        return m.name;
      },
      get endpoint() {
        return m.endpoint;
      },
      get pid() {
        return m.pid;
      },
      get restarts() {
        return m.restarts;
      },
      kill: (signal) => m.kill(signal),
      stop: () => m.stop(),
      restart: async () => {
        await m.stop();
        await m.start();
      },
    }));
    return {
      endpoints: cluster.endpoints,
      members,
      tls,
      connection: { endpoints: cluster.endpoints, tls: tls && { ca: tls.ca, cert: tls.cert, key: tls.key } },
      dataDir,
      cleanup: async () => {
        await cluster.stop();
        await rm(dataDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
}

/** Polls `cond` until it is truthy or `timeoutMs` passes (then throws with `what`). */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * SIGSTOPs a process and returns once every one of its threads is stopped. kill() only queues
 * the signal: a thread inside a disk sync finishes it first, and etcd could still answer a
 * request sent in between (a test saw that once in a few dozen runs).
 */
export async function stopProcess(pid: number): Promise<void> {
  process.kill(pid, 'SIGSTOP');
  await waitFor(async () => {
    const tasks = await readdir(`/proc/${pid}/task`);
    const states = await Promise.all(tasks.map((t) => readFile(`/proc/${pid}/task/${t}/stat`, 'utf8').then((s) => s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3), () => 'T')));
    return states.every((s) => s === 'T' || s === 't');
  }, `process ${pid} stopped`);
}
