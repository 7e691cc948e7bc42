// The launcher's child process (see launcher.ts): runs the programs its parent asks for with
// execFile (argument arrays, never a shell) and sends back what they printed. It is small, so
// its fork for each program is cheap, and a program that hangs stalls nobody's event loop.
// When the parent goes (even SIGKILLed: the IPC channel closes) it kills what it runs and exits.
import { execFile } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { failureOf } from './launcher.js';
import type { LaunchCancel, LaunchReply, LaunchRequest } from './launcher.js';

const running = new Map<number, { child: ChildProcess; killSignal?: NodeJS.Signals }>();

function reply(r: LaunchReply): void {
  if (process.connected) process.send!(r, undefined, undefined, () => {});
}

process.on('message', (m: LaunchRequest | LaunchCancel) => {
  if ('cancel' in m) {
    const r = running.get(m.id);
    r?.child.kill(r.killSignal ?? 'SIGTERM');
    return;
  }
  let child: ChildProcess;
  try {
    child = execFile(m.file, m.args, { encoding: 'utf8', timeout: m.timeout, maxBuffer: m.maxBuffer, killSignal: m.killSignal, ...(m.env ? { env: m.env } : {}), ...(m.cwd ? { cwd: m.cwd } : {}) }, (err, stdout, stderr) => {
      running.delete(m.id);
      reply({ id: m.id, stdout, stderr, ...(err ? { error: failureOf(err) } : {}) });
    });
  } catch (e) {
    // Invalid arguments (a NUL byte, a bad cwd type): execFile throws before any process exists.
    reply({ id: m.id, stdout: '', stderr: '', error: failureOf(e as Error) });
    return;
  }
  running.set(m.id, { child, ...(m.killSignal ? { killSignal: m.killSignal } : {}) });
  // A program that exits before reading its input closes the pipe; its exit status tells why.
  child.stdin?.on('error', () => {});
  child.stdin?.end(m.input);
});

process.on('disconnect', () => {
  for (const r of running.values()) r.child.kill('SIGKILL');
  process.exit(0);
});
