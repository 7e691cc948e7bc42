// Process lifecycle of `kova up`: its children (etcd, API workers, the components process) die
// with it even when it is SIGKILLed, a restart on the same data dir runs exactly one components
// process, and a second kova up on a data dir in use refuses to start. A project member made
// before the crash (kova user create) works after the restart with the same kubeconfig: what a
// cloud's user sees of it (the admin does the operator's part: the project, the host checks).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { procInfo } from '../cli/instance-lock.js';
import { createUser, eventually, runKova, startKova } from './harness.js';
import type { Kova } from './harness.js';

const ARGS = ['--driver', 'sim', '--sim-hosts', '1', '--no-seed', '--api-workers', '2'];

/** Every process this file saw, killed at the end if still the same process (pid + start time). */
const seen = new Map<number, number>();
const kovas: Kova[] = [];
const dirs: string[] = [];
after(async () => {
  for (const k of kovas) await k.stop().catch(() => undefined);
  for (const [pid, start] of seen) {
    if (procInfo(pid)?.start === start) process.kill(pid, 'SIGKILL');
  }
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

interface Proc {
  pid: number;
  ppid: number;
  start: number;
  cmdline: string[];
}

async function processes(): Promise<Proc[]> {
  const out: Proc[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (!stat || rest[0] === 'Z') continue;
    const cmdline = (await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '')).split('\0').filter(Boolean);
    out.push({ pid: Number(name), ppid: Number(rest[1]), start: Number(rest[19]), cmdline });
  }
  return out;
}

async function childrenOf(pid: number): Promise<Proc[]> {
  const kids = (await processes()).filter((p) => p.ppid === pid);
  for (const k of kids) seen.set(k.pid, k.start);
  return kids;
}

const isComponents = (p: Proc, dataDir: string) => p.cmdline.includes('components') && p.cmdline.includes(dataDir);

async function start(dataDir?: string): Promise<Kova> {
  const k = await startKova(ARGS, 60_000, dataDir ? { dataDir } : {});
  kovas.push(k);
  seen.set(k.proc.pid!, procInfo(k.proc.pid!)!.start);
  return k;
}

test('a SIGKILLed kova up takes its children with it, and a restart runs one components process', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'kova-e2e-'));
  dirs.push(dataDir);
  const first = await start(dataDir);
  const kids = await childrenOf(first.proc.pid!);
  const kinds = kids.map((p) => (isComponents(p, dataDir) ? 'components' : p.cmdline.includes('api-worker') ? 'api-worker' : /(^|\/)etcd$/.test(p.cmdline[0] ?? '') ? 'etcd' : p.cmdline.join(' ')));
  assert.deepEqual(kinds.sort(), ['api-worker', 'api-worker', 'components', 'etcd'], 'kova up runs etcd, 2 API workers and the components process');

  await first.k(['create', 'namespace', 'proj']);
  const lee = await createUser(first, 'lee', ['--project', 'proj', '--role', 'member']);
  await lee.k(['create', 'configmap', 'before', '--from-literal=a=1']);

  first.proc.kill('SIGKILL');
  await eventually(() => kids.every((k) => procInfo(k.pid)?.start !== k.start), 10_000, `the children of the killed kova up to exit (${kids.map((k) => k.pid).join(', ')})`);

  const second = await start(dataDir);
  const components = (await processes()).filter((p) => isComponents(p, dataDir));
  for (const c of components) seen.set(c.pid, c.start);
  assert.equal(components.length, 1, `one components process for ${dataDir}: ${components.map((c) => c.pid).join(', ')}`);
  assert.equal(components[0]!.ppid, second.proc.pid, 'it is the restarted kova up\'s child');
  await eventually(async () => (await second.k(['get', 'hosts', '-o', 'name'])).includes('host.kova.dev/sim-0'), 30_000, 'host sim-0 to register');

  // lee's token lives in etcd, so it survives; only the address moved (these runs listen on port 0).
  const asLee = (args: string[], input?: string) => lee.k(['--server', second.url, ...args], input === undefined ? undefined : { input });
  assert.equal(JSON.parse(await asLee(['auth', 'whoami', '-o', 'json'])).status.userInfo.username, 'lee');
  assert.equal(await asLee(['get', 'configmap', 'before', '-o', 'jsonpath={.data.a}']), '1');
  await asLee(['apply', '-f', '-'], 'apiVersion: kova.dev/v1alpha1\nkind: Instance\nmetadata: {name: after, namespace: proj}\nspec: {flavor: m1.tiny, image: none, runStrategy: Halted}\n');
  assert.match(await asLee(['get', 'instances', '-o', 'name']), /^instance\.kova\.dev\/after$/m);
  const hosts = await lee.kubectl(['--server', second.url, 'get', 'hosts']);
  assert.match(hosts.stderr, /User "lee" cannot list resource "hosts" in API group "kova.dev" at the cluster scope/);

  // A clean stop takes its children down and removes the lock.
  const secondKids = await childrenOf(second.proc.pid!);
  await second.stop();
  assert.equal(second.proc.exitCode, 0);
  assert.ok(secondKids.every((k) => procInfo(k.pid)?.start !== k.start), 'no child outlives a clean stop');
  assert.equal(existsSync(join(dataDir, 'kova.pid')), false, 'the lock file is removed on a clean exit');
});

test('a second kova up on a data dir in use refuses to start', async () => {
  const k = await start();
  const err = await runKova(['up', '--data-dir', k.dataDir, '--listen', '127.0.0.1:0', ...ARGS], 20_000).then(() => undefined, (e: Error) => e);
  assert.ok(err, 'the second kova up failed');
  assert.match(err.message, new RegExp(`already running with data directory ${k.dataDir} \\(pid ${k.proc.pid}\\)`));
  assert.match(err.message, /stop it first/);
  // The first one is untouched: still serving, still the lock holder.
  await k.k(['get', 'namespaces']);
  assert.equal(JSON.parse(await readFile(join(k.dataDir, 'kova.pid'), 'utf8')).pid, k.proc.pid);
  const comps = (await processes()).filter((p) => isComponents(p, k.dataDir));
  assert.equal(comps.length, 1);
});
