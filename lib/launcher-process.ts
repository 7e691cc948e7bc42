// The launcher's child process (see launcher.ts): runs the programs its parent asks for with
// execFile (argument arrays, never a shell) and sends back what they printed. It is small, so
// its fork for each program is cheap, and a program that hangs stalls nobody's event loop.
// When the parent goes (even SIGKILLed: the IPC channel closes) it kills what it runs and exits.
import { execFile } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import type { LaunchReply, LaunchRequest } from './launcher.js';

const running = new Set<ChildProcess>();

function reply(r: LaunchReply): void {
  if (process.connected) process.send!(r, undefined, undefined, () => {});
}

process.on('message', (m: LaunchRequest) => {
  let child: ChildProcess;
  try {
    child = execFile(m.file, m.args, { encoding: 'utf8', timeout: m.timeout, maxBuffer: m.maxBuffer, killSignal: m.killSignal, ...(m.env ? { env: m.env } : {}), ...(m.cwd ? { cwd: m.cwd } : {}) }, (err, stdout, stderr) => {
      running.delete(child);
      const e = err as (NodeJS.ErrnoException & { killed?: boolean; signal?: string | null; cmd?: string }) | null;
      reply({ id: m.id, stdout, stderr, ...(e ? { error: { message: e.message, code: e.code as string | number | undefined, signal: e.signal ?? null, killed: e.killed === true, cmd: e.cmd } } : {}) });
    });
  } catch (e) {
    // Invalid arguments (a NUL byte, a bad cwd type): execFile throws before any process exists.
    const err = e as NodeJS.ErrnoException;
    reply({ id: m.id, stdout: '', stderr: '', error: { message: err.message, code: err.code, signal: null, killed: false } });
    return;
  }
  running.add(child);
  // A program that exits before reading its input closes the pipe; its exit status tells why.
  child.stdin?.on('error', () => {});
  child.stdin?.end(m.input);
});

process.on('disconnect', () => {
  for (const c of running) c.kill('SIGKILL');
  process.exit(0);
});
