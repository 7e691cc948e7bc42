// One `kova up` per data directory. DATA_DIR/kova.pid records the running kova up and the
// children it supervises (etcd, the components process), each as pid + start time, so that a
// later kova up can tell a live instance (refuse to start) from a dead one whose children may
// still run (stop them first). A pid alone is not an identity: pids get reused, so a process
// counts only when its start time and command line match what was recorded.
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const LOCK_FILE = 'kova.pid';

export type ChildName = 'etcd' | 'components';

interface ProcRef {
  pid: number;
  /** Start time in clock ticks since boot (/proc/PID/stat field 22). */
  start: number;
}

interface LockRecord extends ProcRef {
  dataDir: string;
  children: Partial<Record<ChildName, ProcRef>>;
}

interface ProcInfo {
  start: number;
  cmdline: string[];
}

/** Start time and argv of a live (not zombie) process, or undefined. */
export function procInfo(pid: number): ProcInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name (which may contain spaces): state is field 3.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (rest[0] === 'Z' || rest[0] === 'X') return undefined;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    return { start: Number(rest[19]), cmdline };
  } catch {
    return undefined;
  }
}

function hasDataDir(argv: string[], dir: string): boolean {
  return argv.some((a, i) => (a === '--data-dir' && argv[i + 1] !== undefined && resolve(argv[i + 1]!) === dir) || (a.startsWith('--data-dir=') && resolve(a.slice(11)) === dir));
}

/** Whether argv is what kova starts under that name for this data dir. */
function looksLike(what: 'up' | ChildName, argv: string[], dataDir: string): boolean {
  switch (what) {
    case 'up':
      return argv.includes('up') || argv.includes('apiserver');
    case 'components':
      return argv.includes('components') && hasDataDir(argv, dataDir);
    case 'etcd':
      return /(^|\/)etcd$/.test(argv[0] ?? '') && hasDataDir(argv, join(dataDir, 'etcd'));
  }
}

/** The recorded process if it still runs (same start time and the expected command line). */
function stillRunning(ref: ProcRef | undefined, what: 'up' | ChildName, dataDir: string): boolean {
  if (!ref || !Number.isInteger(ref.pid) || ref.pid <= 0) return false;
  const p = procInfo(ref.pid);
  return p !== undefined && p.start === ref.start && looksLike(what, p.cmdline, dataDir);
}

async function terminate(pid: number, graceMs: number): Promise<void> {
  const info = procInfo(pid);
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const until = Date.now() + graceMs;
  while (Date.now() < until) {
    const now = procInfo(pid);
    if (!now || now.start !== info?.start) return;
    await sleep(50);
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

export class AlreadyRunningError extends Error {}

export class InstanceLock {
  readonly path: string;
  #record: LockRecord;
  #held = true;

  private constructor(path: string, record: LockRecord) {
    this.path = path;
    this.#record = record;
  }

  /**
   * Takes DATA_DIR/kova.pid. Throws AlreadyRunningError when a live kova up holds it; stops the
   * recorded children of a dead one first. `dataDir` must exist.
   */
  static async acquire(dataDirIn: string, say: (m: string) => void = () => undefined, graceMs = 10_000): Promise<InstanceLock> {
    const dataDir = resolve(dataDirIn);
    const path = join(dataDir, LOCK_FILE);
    const self = procInfo(process.pid);
    const record: LockRecord = { pid: process.pid, start: self?.start ?? 0, dataDir, children: {} };
    for (let attempt = 0; ; attempt++) {
      try {
        writeFileSync(path, JSON.stringify(record) + '\n', { flag: 'wx', mode: 0o644 });
        return new InstanceLock(path, record);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 3) throw e;
      }
      let old: Partial<LockRecord> = {};
      try {
        old = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockRecord>;
      } catch {
        /* unreadable or half-written: nothing to verify, treat as stale */
      }
      if (stillRunning(old as ProcRef, 'up', dataDir)) {
        throw new AlreadyRunningError(
          `kova is already running with data directory ${dataDir} (pid ${old.pid}); ` +
          `stop it first (Ctrl-C in its terminal, or kill ${old.pid}) or use another --data-dir`);
      }
      for (const name of ['components', 'etcd'] as const) {
        const ref = old.children?.[name];
        if (!stillRunning(ref, name, dataDir)) continue;
        say(`stopping ${name} (pid ${ref!.pid}) left running by a kova that exited (pid ${old.pid})`);
        await terminate(ref!.pid, graceMs);
      }
      rmSync(path, { force: true });
    }
  }

  /** Records the current pid of a supervised child (undefined: none running). */
  record(name: ChildName, pid: number | undefined): void {
    if (!this.#held) return;
    const info = pid === undefined ? undefined : procInfo(pid);
    if (pid === undefined || !info) delete this.#record.children[name];
    else this.#record.children[name] = { pid, start: info.start };
    // Atomic replace: a concurrent reader never sees a half-written record.
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.#record) + '\n', { mode: 0o644 });
    renameSync(tmp, this.path);
  }

  /** Removes the lock file if it is still this process's. Idempotent, synchronous (exit handlers). */
  release(): void {
    if (!this.#held) return;
    this.#held = false;
    try {
      const cur = JSON.parse(readFileSync(this.path, 'utf8')) as Partial<LockRecord>;
      if (cur.pid === this.#record.pid && cur.start === this.#record.start) rmSync(this.path, { force: true });
    } catch {
      /* already gone */
    }
  }
}
