// Programs started by a small helper process instead of by this one. To start a program, Node
// (libuv) forks the whole process and its event loop waits until the child has exec'd, so the
// cost grows with the process's memory: here about 1.5 ms at 45 MiB of resident memory, 10 ms
// at 245 MiB, 36 ms at 1 GiB. A node agent starts a dozen programs per network apply and
// several per instance (ip, nft, qemu-img, genisoimage, virsh), and in `kova up` it shares its
// process with the controllers and the other hosts' agents: every start stalled all of them.
// launch() hands the program to a child (launcher-process.ts) that stays small, forks cheaply
// and answers over IPC; it resolves and rejects as promisified execFile does (stdout, stderr;
// an error with code, signal, killed, stdout, stderr). The child dies with this process and
// kills what it runs; a child that dies is started again, and after repeated deaths programs
// are started here directly for a while.
import { execFile, fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface LaunchOptions {
  /** Written to the program's stdin, which is then closed (closed at once without it). */
  input?: string;
  /** Kill the program (killSignal, default SIGTERM) after this many ms; none by default. */
  timeout?: number;
  /** Largest stdout or stderr kept, in bytes (execFile's default: 1 MiB); past it the program is killed. */
  maxBuffer?: number;
  killSignal?: NodeJS.Signals;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Aborting it kills the program (killSignal), which then rejects as killed. */
  signal?: AbortSignal;
}

export interface LaunchResult {
  stdout: string;
  stderr: string;
}

/** @internal The messages between launch() and the child: a program to run, or one to kill. */
export interface LaunchRequest extends Omit<LaunchOptions, 'signal'> {
  id: number;
  file: string;
  args: string[];
}

/** @internal */
export interface LaunchCancel {
  id: number;
  cancel: true;
}

/** @internal */
export interface LaunchReply {
  id: number;
  stdout: string;
  stderr: string;
  error?: { message: string; code?: string | number; signal: string | null; killed: boolean; cmd?: string };
}

/** @internal What an execFile error says, as it crosses the IPC channel. */
export function failureOf(err: Error): NonNullable<LaunchReply['error']> {
  const e = err as NodeJS.ErrnoException & { killed?: boolean; signal?: string | null; cmd?: string };
  return { message: e.message, code: e.code as string | number | undefined, signal: e.signal ?? null, killed: e.killed === true, cmd: e.cmd };
}

/** A program that failed, as execFile reports it: exit status or errno code, signal, output. */
export class LaunchError extends Error {
  readonly code?: string | number;
  readonly signal: string | null;
  readonly killed: boolean;
  readonly cmd?: string;
  constructor(e: NonNullable<LaunchReply['error']>, readonly stdout: string, readonly stderr: string) {
    super(e.message);
    this.name = 'LaunchError';
    this.code = e.code;
    this.signal = e.signal;
    this.killed = e.killed;
    this.cmd = e.cmd;
  }
}

const CHILD = fileURLToPath(new URL('./launcher-process.js', import.meta.url));
/** The child's answer may lag the program's own timeout by this much before the call gives up on it. */
const REPLY_GRACE_MS = 10_000;
/** Deaths of the child within DEATH_WINDOW_MS after which programs start here for DIRECT_FOR_MS. */
const MAX_DEATHS = 3;
const DEATH_WINDOW_MS = 10_000;
const DIRECT_FOR_MS = 30_000;

interface Pending {
  resolve(r: LaunchResult): void;
  reject(e: Error): void;
  timer?: NodeJS.Timeout;
  /** Undoes what the call set up (its abort listener). */
  done?: () => void;
}

class Launcher {
  private child?: ChildProcess;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private deaths: number[] = [];
  private directUntil = 0;

  run(file: string, args: readonly string[], o: LaunchOptions): Promise<LaunchResult> {
    if (o.signal?.aborted) return Promise.reject(abortError(file));
    const child = this.ensure();
    if (!child) return runHere(file, args, o);
    const id = this.nextId++;
    const req: LaunchRequest = { id, file, args: [...args], env: o.env ?? process.env, maxBuffer: o.maxBuffer ?? 1024 * 1024 };
    if (o.input !== undefined) req.input = o.input;
    if (o.timeout !== undefined) req.timeout = o.timeout;
    if (o.killSignal !== undefined) req.killSignal = o.killSignal;
    if (o.cwd !== undefined) req.cwd = o.cwd;
    return new Promise<LaunchResult>((resolve, reject) => {
      const p: Pending = { resolve, reject };
      if (o.timeout) {
        // The child kills the program at its timeout; a child that does not answer long after is wedged.
        p.timer = setTimeout(() => {
          this.settle(id, new LaunchError({ message: `${file}: no answer from the launcher process ${Math.round((o.timeout! + REPLY_GRACE_MS) / 1000)} s after the start`, code: 'ETIMEDOUT', signal: null, killed: false }, '', ''));
          child.kill('SIGKILL');
        }, o.timeout + REPLY_GRACE_MS);
      }
      this.pending.set(id, p);
      if (this.pending.size === 1) hold(child, true);
      if (o.signal) {
        const cancel = () => {
          if (this.pending.has(id) && child.connected) child.send({ id, cancel: true } satisfies LaunchCancel, () => {});
        };
        o.signal.addEventListener('abort', cancel, { once: true });
        p.done = () => o.signal!.removeEventListener('abort', cancel);
      }
      child.send(req, (err) => {
        if (!err) return;
        // Never reached the child (it is going): the program was not started; start it here.
        const q = this.pending.get(id);
        if (!q) return;
        this.forget(id);
        runHere(file, args, o).then(resolve, reject);
      });
    });
  }

  /** Stops the child (tests; a later launch() starts a new one). */
  stop(): void {
    this.child?.kill('SIGKILL');
  }

  private ensure(): ChildProcess | undefined {
    if (this.child) return this.child;
    if (Date.now() < this.directUntil) return undefined;
    let child: ChildProcess;
    try {
      // No inherited flags (--cpu-prof, a large heap): the child is meant to stay small.
      child = fork(CHILD, [], { execArgv: [], stdio: ['ignore', 'ignore', 'inherit', 'ipc'], serialization: 'json' });
    } catch {
      this.died();
      return undefined;
    }
    child.on('message', (r: LaunchReply) => {
      const err = r.error ? new LaunchError(r.error, r.stdout, r.stderr) : undefined;
      this.settle(r.id, err ?? { stdout: r.stdout, stderr: r.stderr });
    });
    child.on('error', () => {
      // A child that never started (no pid) sends no 'exit': forget it, so a later call forks again.
      if (child.pid !== undefined || this.child !== child) return;
      this.child = undefined;
      this.died();
    });
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      this.died();
      const why = `the launcher process exited (${signal ?? `code ${code}`}) before the program's answer came`;
      for (const id of [...this.pending.keys()]) this.settle(id, new LaunchError({ message: why, code: 'ELAUNCHER', signal: null, killed: false }, '', ''));
    });
    hold(child, false);
    this.child = child;
    return child;
  }

  private died(): void {
    const now = Date.now();
    this.deaths = [...this.deaths.filter((t) => now - t < DEATH_WINDOW_MS), now];
    if (this.deaths.length >= MAX_DEATHS) {
      this.directUntil = now + DIRECT_FOR_MS;
      this.deaths = [];
    }
  }

  private settle(id: number, r: LaunchResult | Error): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.forget(id);
    if (r instanceof Error) p.reject(r);
    else p.resolve(r);
  }

  private forget(id: number): void {
    const p = this.pending.get(id);
    if (p?.timer) clearTimeout(p.timer);
    p?.done?.();
    this.pending.delete(id);
    if (this.pending.size === 0 && this.child) hold(this.child, false);
  }
}

/**
 * The child must not keep this process alive, except while a program runs: then its answer, or
 * its exit, must arrive.
 */
function hold(child: ChildProcess, on: boolean): void {
  if (on) {
    child.ref();
    child.channel?.ref();
  } else {
    child.unref();
    child.channel?.unref();
  }
}

/** The program started by this process itself (the child is unavailable). */
function runHere(file: string, args: readonly string[], o: LaunchOptions): Promise<LaunchResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, [...args], { encoding: 'utf8', timeout: o.timeout, maxBuffer: o.maxBuffer ?? 1024 * 1024, killSignal: o.killSignal, env: o.env, cwd: o.cwd, signal: o.signal }, (err, stdout, stderr) => {
      if (!err) return resolve({ stdout, stderr });
      reject(new LaunchError(failureOf(err), stdout, stderr));
    });
    child.stdin?.on('error', () => {});
    child.stdin?.end(o.input);
  });
}

function abortError(file: string): LaunchError {
  return new LaunchError({ message: `${file}: aborted before it started`, code: 'ABORT_ERR', signal: null, killed: false }, '', '');
}

const launcher = new Launcher();

/**
 * Runs `file args` (never through a shell) in the launcher process: stdout and stderr, or a
 * LaunchError as execFile's (a numeric code is the exit status, a string one an errno such as
 * ENOENT: the program never ran).
 */
export function launch(file: string, args: readonly string[], o: LaunchOptions = {}): Promise<LaunchResult> {
  return launcher.run(file, args, o);
}

/** @internal For tests: kills the launcher process (the next launch() starts another). */
export function stopLauncherProcess(): void {
  launcher.stop();
}
