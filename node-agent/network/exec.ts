// Runs host tools with argument arrays (never a shell), optionally inside a network namespace.
import { launch, LaunchError } from '../../lib/launcher.js';

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface CommandRunner {
  /** Resolves with the exit code instead of rejecting, so callers decide what a failure means. */
  run(cmd: string, args: string[], input?: string): Promise<RunResult>;
}

/** Host tools answer in milliseconds; a hung one must not wedge the agent's reconcile loop. */
const TIMEOUT_MS = 60_000;

export function commandRunner(netns?: string): CommandRunner {
  return {
    run(cmd, args, input) {
      // iproute2 switches namespace itself (-n), saving the extra exec of `ip netns exec`.
      const [file, argv] =
        netns === undefined ? [cmd, args]
        : cmd === 'ip' || cmd === 'bridge' ? [cmd, ['-n', netns, ...args]]
        : ['ip', ['netns', 'exec', netns, cmd, ...args]];
      return launch(file, argv, { input, maxBuffer: 256 * 1024 * 1024, timeout: TIMEOUT_MS }).then(
        ({ stdout, stderr }) => ({ stdout, stderr, code: 0 }),
        (err: unknown) => {
          if (!(err instanceof LaunchError)) throw err;
          // A numeric code is the exit status; a string one (ENOENT, ...) means it never ran.
          const code = typeof err.code === 'number' ? err.code : 127;
          return { stdout: err.stdout, stderr: err.stderr || err.message, code };
        },
      );
    },
  };
}

export async function runOrThrow(r: CommandRunner, cmd: string, args: string[], input?: string): Promise<string> {
  const res = await r.run(cmd, args, input);
  if (res.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${res.code}): ${res.stderr.trim()}`);
  return res.stdout;
}
