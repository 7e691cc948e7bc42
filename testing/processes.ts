// What /proc says about a process, for tests of children that must die with their parent (Linux).
import { readFile } from 'node:fs/promises';

/** State letter and parent pid of `pid`, or undefined once it is gone (reaped). */
export async function procStat(pid: number): Promise<{ state: string; ppid: number } | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return undefined;
  // Fields after the command name (which may hold spaces and parentheses): state, ppid, ...
  const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: state!, ppid: Number(ppid) };
}

/** Whether `pid` runs: neither gone nor a zombie waiting to be reaped. */
export async function isAlive(pid: number): Promise<boolean> {
  const s = await procStat(pid);
  return s !== undefined && s.state !== 'Z';
}

/** Whether `pid` is gone (or a zombie) within `ms`. */
export async function goneWithin(pid: number, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; ; await new Promise((r) => setTimeout(r, 50))) {
    if (!(await isAlive(pid))) return true;
    if (Date.now() >= end) return false;
  }
}

/** Children of `pid`, from /proc/PID/task/PID/children. */
export async function childrenOf(pid: number): Promise<number[]> {
  const s = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  return s.split(' ').filter(Boolean).map(Number);
}
