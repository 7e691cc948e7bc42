// `kova up` runs the controllers and node agents as a child process (`kova components`) and
// keeps it alive: restarted with back-off when it dies, stopped with SIGTERM (then SIGKILL)
// when kova up stops. Its progress lines (stdout) are passed through; its JSON logs (stderr) go
// where kova up says (DATA_DIR/logs/components.log), or to kova up's stderr. The child also gets an IPC channel it
// never uses for messages: the channel closes when kova up dies however it dies (even
// SIGKILL), and the child stops on that 'disconnect' instead of living on as an orphan.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import { KOVA_MAIN } from './paths.js';

export interface Supervised {
  /** The current child's pid (changes after a restart). */
  pid(): number | undefined;
  stop(): Promise<void>;
}

const READY = /components ready/;
const STOP_TIMEOUT_MS = 20_000;
/** V8 young-generation size for the busy components process: fewer scavenges under load. */
const NODE_ARGS = ['--max-semi-space-size=32'];

/**
 * onSpawn: called with each child's pid (first start and restarts), undefined once it exited.
 * onStderr: takes each child's stderr (its JSON log lines); without it they go to ours.
 */
export function superviseComponents(args: string[], say: (m: string) => void, onSpawn?: (pid: number | undefined) => void, onStderr?: (stderr: Readable) => void): Promise<Supervised> {
  let child: ChildProcess | undefined;
  let stopping = false;
  let restarts = 0;

  const start = (onReady?: () => void, onFail?: (e: Error) => void) => {
    const p = spawn(process.execPath, [...NODE_ARGS, KOVA_MAIN, 'components', ...args], { stdio: ['ignore', 'pipe', onStderr ? 'pipe' : 'inherit', 'ipc'] });
    child = p;
    if (onStderr && p.stderr) onStderr(p.stderr);
    // The channel must not keep kova up's event loop alive on its own.
    p.channel?.unref();
    if (p.pid !== undefined) onSpawn?.(p.pid);
    const startedAt = Date.now();
    let ready = false;
    let buf = '';
    p.stdout!.on('data', (d: Buffer) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (READY.test(line)) {
          ready = true;
          onReady?.();
        }
        else if (line.trim()) process.stdout.write(`${line}\n`);
      }
    });
    p.on('exit', (code, signal) => {
      if (child === p) onSpawn?.(undefined);
      if (stopping) return;
      const why = signal ? `signal ${signal}` : `code ${code}`;
      if (onFail && !ready) return onFail(new Error(`controllers/agents exited with ${why} before they were ready`));
      // Crash loops back off up to 30 s; a child that ran a while starts over at 1 s.
      restarts = Date.now() - startedAt > 60_000 ? 1 : restarts + 1;
      const delay = Math.min(30_000, 1000 * 2 ** (restarts - 1));
      say(`controllers/agents exited with ${why}; restarting in ${delay / 1000} s`);
      setTimeout(() => !stopping && start(), delay).unref();
    });
  };

  return new Promise((resolve, reject) => {
    const handle: Supervised = {
      pid: () => child?.pid,
      stop: async () => {
        stopping = true;
        const p = child;
        if (!p || p.exitCode !== null || p.signalCode !== null) return;
        const exited = new Promise<void>((r) => p.once('exit', () => r()));
        p.kill('SIGTERM');
        const timer = setTimeout(() => p.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      },
    };
    start(() => resolve(handle), reject);
  });
}
