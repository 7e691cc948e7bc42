// Child programs that die with kova. A Node child can notice its parent's death (IPC
// disconnect), but a program such as etcd or `virsh event --loop` cannot: when kova is
// SIGKILLed they would run on, re-parented to init. util-linux `setpriv --pdeathsig KILL` asks
// the kernel to kill the program when the thread that forked it exits, then execs it (same
// pid). Node spawns from the main thread, which lives as long as the process.
import { accessSync, constants } from 'node:fs';

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

let setpriv: string | null | undefined;

/** `setpriv`'s path, or undefined where util-linux lacks it (then only clean exits stop children). */
export function setprivPath(): string | undefined {
  if (setpriv === undefined) setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find(executable) ?? null;
  return setpriv ?? undefined;
}

/** The command and arguments that run `cmd args` so that it is killed when this process dies. */
export function dieWithParent(cmd: string, args: readonly string[]): [string, string[]] {
  const wrapper = setprivPath();
  return wrapper ? [wrapper, ['--pdeathsig', 'KILL', '--', cmd, ...args]] : [cmd, [...args]];
}
