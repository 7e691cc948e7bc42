// The data-dir lock of kova up: refuse while the recorded kova up lives, stop the recorded
// children of a dead one (only if they are still those processes), release on exit.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AlreadyRunningError, InstanceLock, LOCK_FILE, procInfo } from './instance-lock.js';

const procs: ChildProcess[] = [];
const dirs: string[] = [];
after(async () => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'kova-lock-'));
  dirs.push(d);
  return d;
}

/** A long-running node process whose command line carries `args` (what the lock checks). */
function fake(args: string[]): Promise<ChildProcess> {
  const p = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', ...args], { stdio: 'ignore' });
  procs.push(p);
  return new Promise((resolve, reject) => p.once('spawn', () => resolve(p)).once('error', reject));
}

const exited = (p: ChildProcess) => new Promise((r) => (p.exitCode !== null || p.signalCode !== null ? r(undefined) : p.once('exit', r)));

async function writeLock(dir: string, up: { pid: number; start: number }, children: Record<string, { pid: number; start: number }>) {
  await writeFile(join(dir, LOCK_FILE), JSON.stringify({ ...up, dataDir: dir, children }));
}

const ref = (p: ChildProcess) => ({ pid: p.pid!, start: procInfo(p.pid!)!.start });

test('a live kova up holding the lock makes acquire refuse, naming the pid', async () => {
  const dir = await tempDir();
  const up = await fake(['up', '--data-dir', dir]);
  await writeLock(dir, ref(up), {});
  await assert.rejects(InstanceLock.acquire(dir), (e: Error) => e instanceof AlreadyRunningError && e.message.includes(`(pid ${up.pid})`) && /stop it first/.test(e.message));
});

/** A `kova up` that was SIGKILLed (its lock record), and a components child it left running. */
async function deadUpWithComponents(dir: string) {
  const deadUp = await fake(['up']);
  const deadRef = ref(deadUp);
  deadUp.kill('SIGKILL');
  await exited(deadUp);
  return { deadRef, components: await fake(['components', '--data-dir', dir]) };
}

test('a dead kova up: its recorded children are stopped, impostors are left alone', async () => {
  const dir = await tempDir();
  const { deadRef, components } = await deadUpWithComponents(dir);
  // Recorded as etcd, but its command line is not etcd's: a reused pid must not be killed.
  const impostor = await fake(['something-else']);
  await writeLock(dir, deadRef, { components: ref(components), etcd: ref(impostor) });
  const said: string[] = [];
  const lock = await InstanceLock.acquire(dir, (m) => said.push(m), 2000);
  await exited(components);
  assert.equal(components.signalCode, 'SIGTERM');
  assert.equal(impostor.exitCode, null);
  assert.equal(impostor.signalCode, null);
  assert.match(said.join('\n'), new RegExp(`stopping components \\(pid ${components.pid}\\)`));
  const rec = JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8'));
  assert.equal(rec.pid, process.pid);

  // The holder records children and removes the lock on release.
  lock.record('components', impostor.pid);
  assert.equal(JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')).children.components.pid, impostor.pid);
  lock.release();
  assert.equal(existsSync(join(dir, LOCK_FILE)), false);
});

test('a recorded child with the right command line but another start time is not that child', async () => {
  const dir = await tempDir();
  const { deadRef, components } = await deadUpWithComponents(dir);
  await writeLock(dir, deadRef, { components: { pid: components.pid!, start: ref(components).start - 1 } });
  (await InstanceLock.acquire(dir, () => undefined, 2000)).release();
  assert.equal(components.exitCode, null);
  assert.equal(components.signalCode, null);
});

test('an unreadable lock file counts as stale', async () => {
  const dir = await tempDir();
  await writeFile(join(dir, LOCK_FILE), '{"pid": 12');
  const lock = await InstanceLock.acquire(dir);
  lock.release();
});
