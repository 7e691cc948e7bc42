// End-to-end harness: runs the real `kova up` CLI as a child process and the real kubectl
// against it, each run in its own temp data dir and kubectl cache dir.
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const KOVA_BIN = fileURLToPath(new URL('../cli/kova.js', import.meta.url));
export const KUBECTL = process.env.KUBECTL ?? '/usr/bin/kubectl';

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Kova {
  dataDir: string;
  kubeconfig: string;
  url: string;
  proc: ChildProcess;
  output: () => string;
  kubectl: (args: string[], opts?: { input?: string; timeoutMs?: number; env?: Record<string, string> }) => Promise<KubectlResult>;
  /** kubectl that must succeed; returns stdout. */
  k: (args: string[], opts?: { input?: string; timeoutMs?: number }) => Promise<string>;
  /** Starts a long-running kubectl (e.g. `get -w`); collect its output, kill when done. */
  spawnKubectl: (args: string[]) => { proc: ChildProcess; output: () => string; stop: () => Promise<void> };
  stop: () => Promise<void>;
}

/** opts.dataDir: run on an existing data dir (e.g. a restart); stop() then leaves it in place. */
export async function startKova(extraArgs: string[] = [], timeoutMs = 60_000, opts: { dataDir?: string } = {}): Promise<Kova> {
  const dataDir = opts.dataDir ?? await mkdtemp(join(tmpdir(), 'kova-e2e-'));
  const cacheDir = join(dataDir, 'kubectl-cache');
  // KOVA_NODE_ARGS (e.g. "--cpu-prof") lets benchmarks profile the control plane.
  const nodeArgs = (process.env.KOVA_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const proc = spawn(process.execPath, [...nodeArgs, KOVA_BIN, 'up', '--data-dir', dataDir, '--listen', '127.0.0.1:0', ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL'); // its children die with it
      reject(new Error(`kova up not ready after ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    const check = () => {
      const m = /ready: API server at (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    proc.stdout!.on('data', check);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`kova up exited with ${code}:\n${out}`));
    });
  });
  const kubeconfig = join(dataDir, 'kubeconfig');
  const { kubectl, k, spawnKubectl } = kubectlFor(kubeconfig, cacheDir);

  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    }
    if (!opts.dataDir) await rm(dataDir, { recursive: true, force: true });
  };

  return { dataDir, kubeconfig, url, proc, output: () => out, kubectl, k, spawnKubectl, stop };
}

type KubectlFns = Pick<Kova, 'kubectl' | 'k' | 'spawnKubectl'>;

/** kubectl bound to one kubeconfig and cache dir: the admin's, or a user's. */
export function kubectlFor(kubeconfig: string, cacheDir: string): KubectlFns {
  const baseArgs = ['--kubeconfig', kubeconfig, '--cache-dir', cacheDir];

  const kubectl: Kova['kubectl'] = (args, opts = {}) =>
    new Promise((resolve) => {
      const child = execFile(KUBECTL, [...baseArgs, ...args], { timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 << 20, env: { ...process.env, ...opts.env } }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      });
      // kubectl may exit (an error) before it reads its input: EPIPE then is not the test's failure.
      child.stdin!.on('error', () => undefined);
      if (opts.input !== undefined) child.stdin!.end(opts.input);
      else child.stdin!.end();
    });

  const k: Kova['k'] = async (args, opts) => {
    const r = await kubectl(args, opts);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}):\n${r.stderr}${r.stdout}`);
    return r.stdout;
  };

  const spawnKubectl: Kova['spawnKubectl'] = (args) => {
    const p = spawn(KUBECTL, [...baseArgs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let o = '';
    p.stdout!.on('data', (d) => (o += d));
    p.stderr!.on('data', (d) => (o += d));
    return {
      proc: p,
      output: () => o,
      stop: async () => {
        if (p.exitCode !== null) return;
        const exited = new Promise((r) => p.once('exit', r));
        p.kill('SIGTERM');
        await exited;
      },
    };
  };
  return { kubectl, k, spawnKubectl };
}

export interface KovaUser extends KubectlFns {
  name: string;
  /** The kubeconfig `kova user create` wrote (mode 600): the user's token, their project as namespace. */
  kubeconfig: string;
}

/**
 * `kova user create NAME ...args -o FILE` with the admin's kubeconfig (e.g. ['--project', 'demo',
 * '--role', 'member']), and kubectl as that user, as a cloud's user would run it.
 */
export async function createUser(kova: Pick<Kova, 'dataDir' | 'kubeconfig'>, name: string, args: string[] = []): Promise<KovaUser> {
  const kubeconfig = join(kova.dataDir, `${name}.kubeconfig`);
  await runKova(['user', 'create', name, ...args, '-o', kubeconfig, '--kubeconfig', kova.kubeconfig]);
  return { name, kubeconfig, ...kubectlFor(kubeconfig, join(kova.dataDir, `kubectl-cache-${name}`)) };
}

/** Polls `fn` until it returns a truthy value or the time runs out. */
export async function eventually<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 15_000, what = 'condition'): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Runs a `kova` CLI command to completion; rejects with its stderr when it fails. */
export function runKova(args: string[], timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [KOVA_BIN, ...args], { timeout: timeoutMs }, (err, stdout, stderr) => (err ? reject(new Error(`kova ${args.join(' ')}: ${stderr}`)) : resolve(stdout)));
  });
}

/** Starts a long-running `kova` command (controllers, agent); its output is collected. */
export function spawnKova(args: string[]): { proc: ChildProcess; output: () => string } {
  const proc = spawn(process.execPath, [KOVA_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  return { proc, output: () => out };
}
