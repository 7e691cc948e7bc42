// `kova migrate` (and `kubectl kova migrate`) as a user runs it, against the real API server on a
// real etcd with migration admission. No migration controller runs here: the test writes the
// Migration's status itself, as the controller and hosts would, and checks what the command
// prints and how it exits: the name; with --wait a line per phase and progress until
// Succeeded (0) or Failed (1, with the reason and message); deleted or timed out (1); and the
// API server's 422s and the command's own refusals of bad flags.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../testing/etcd.js';
import { jsonRequest, startTestResourceStore } from '../testing/resource-store.js';
import type { TestResourceStore } from '../testing/resource-store.js';
import { ApiServer } from '../apiserver/server.js';
import { MigrationAdmission } from '../apiserver/auth/migration-admission.js';
import { describeMigration, humanBytes, parseDuration } from './migrate.js';
import type { Migration } from '../api/kinds/migration.js';

const KOVA = fileURLToPath(new URL('./kova.js', import.meta.url));
const PLUGIN = fileURLToPath(new URL('./kubectl-kova.js', import.meta.url));
const API = '/apis/kova.dev/v1alpha1';
const at = (plural: string, name = '') => `${API}/namespaces/demo/${plural}${name ? `/${name}` : ''}`;

let env: TestResourceStore;
let server: ApiServer;
let base: string;
let dir: string;
let kubeconfig: string;
const children = new Set<ChildProcess>();

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `kova ARGS` to the end. */
function kova(args: string[], extraEnv: Record<string, string> = {}, file = process.execPath, pre: string[] = [KOVA]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, [...pre, ...args], { env: { ...process.env, KUBECONFIG: kubeconfig, ...extraEnv }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
    });
  });
}

/** `kova ARGS` in the background: its output so far, and its exit. */
function started(args: string[]) {
  const child = spawn(process.execPath, [KOVA, ...args], { env: { ...process.env, KUBECONFIG: kubeconfig }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const out = { stdout: '', stderr: '' };
  child.stdout!.on('data', (d: Buffer) => (out.stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out.stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => {
    children.delete(child);
    resolve(code);
  }));
  const lines = () => out.stdout.split('\n').filter(Boolean);
  /** Waits until the command has printed `line` (a whole line). */
  const printed = (line: string) => waitFor(() => lines().includes(line), `kova printed ${JSON.stringify(line)}; it printed:\n${out.stdout}${out.stderr}`, 15_000);
  return { out, lines, printed, exited };
}

async function api(method: string, path: string, body?: unknown, contentType?: string): Promise<Record<string, any>> {
  const r = await jsonRequest(base, method, path, body, contentType);
  assert.ok(r.code < 300, `${method} ${path}: ${r.code} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Writes a Migration's (or an Instance's) status as the controller would. */
async function setStatus(plural: string, name: string, status: Record<string, unknown>): Promise<void> {
  const cur = await api('GET', at(plural, name));
  await api('PUT', `${at(plural, name)}/status`, { ...cur, status });
}

const failed = (reason: string, message: string) => [{ type: 'Failed', status: 'True', reason, message, lastTransitionTime: '2026-01-01T00:00:00Z' }];
const succeeded = [{ type: 'Succeeded', status: 'True', reason: 'Migrated', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' }];

before(async () => {
  env = await startTestResourceStore(['demo']);
  await waitFor(async () => (await env.resources.namespaces.state('demo')) === 'active', 'namespace demo');
  server = new ApiServer({ registry: env.registry, resources: env.resources, admission: [new MigrationAdmission(env.resources)], log: () => undefined });
  base = `http://127.0.0.1:${(await server.listen('127.0.0.1', 0)).port}`;
  dir = await mkdtemp(join(tmpdir(), 'kova-migrate-'));
  kubeconfig = join(dir, 'kubeconfig');
  await writeFile(kubeconfig, `apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "${base}", insecure-skip-tls-verify: true}}]
users: [{name: test, user: {}}]
contexts: [{name: test, context: {cluster: test, user: test}}]
current-context: test
`);
  for (const h of ['host-a', 'host-b']) await api('POST', `${API}/hosts`, { apiVersion: 'kova.dev/v1alpha1', kind: 'Host', metadata: { name: h }, spec: {} });
  for (const name of ['web', 'db', 'cache']) {
    await api('POST', at('instances'), { apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', metadata: { name }, spec: { flavor: 'm1.tiny', image: 'tiny' } });
    await setStatus('instances', name, { hostName: 'host-a', phase: 'Running' });
  }
});

after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await server?.close();
  await env?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('kova migrate', () => {
  test('creates a Migration with the flags as its spec and prints its name', async () => {
    const r = await kova(['migrate', 'web', '-n', 'demo', '--to', 'host-b', '--post-copy', '--auto-converge', '--bandwidth', '64Mi']);
    assert.equal(r.code, 0, r.stderr);
    const name = r.stdout.trim();
    assert.match(name, /^web-[a-z0-9]{5}$/);
    const m = await api('GET', at('migrations', name));
    assert.deepEqual(m.spec, { instance: 'web', targetHost: 'host-b', allowPostCopy: true, allowAutoConverge: true, bandwidth: '64Mi', completionTimeoutPerGiB: 150, progressTimeoutSeconds: 150 });
    assert.equal(m.metadata.generateName, 'web-');
    assert.equal(m.metadata.managedFields[0].manager, 'kova-cli');
    await setStatus('migrations', name, { phase: 'Failed', conditions: failed('Test', 'made by the test') });
    const cold = await kova(['migrate', 'web', '-n', 'demo', '--cold']);
    assert.equal(cold.code, 0, cold.stderr);
    assert.deepEqual((await api('GET', at('migrations', cold.stdout.trim()))).spec, { instance: 'web', mode: 'Cold', completionTimeoutPerGiB: 150, progressTimeoutSeconds: 150 });
    await setStatus('migrations', cold.stdout.trim(), { phase: 'Failed' });
  });

  test('the API server\'s refusals are printed as they come, with exit 1', async () => {
    const cases: Array<[string[], string | RegExp]> = [
      [['migrate', 'nope', '-n', 'demo'], 'kova: error: Migration.kova.dev "nope-" is invalid: spec.instance: Not found: "nope"'],
      [['migrate', 'web', '-n', 'demo', '--to', 'host-a'], 'kova: error: Migration.kova.dev "web-" is invalid: spec.targetHost: Invalid value: "host-a": instance "web" already runs on host "host-a"'],
      [['migrate', 'web', '-n', 'demo', '--to', 'host-z'], 'kova: error: Migration.kova.dev "web-" is invalid: spec.targetHost: Not found: "host-z"'],
      // Schema validation runs after the name is generated, so that name is in its message.
      [['migrate', 'web', '-n', 'demo', '--bandwidth', '1Ki'], /^kova: error: Migration\.kova\.dev "web-[a-z0-9]{5}" is invalid: spec\.bandwidth: Invalid value: "1Ki": spec\.bandwidth in body should be greater than or equal to 1Mi$/],
    ];
    for (const [args, want] of cases) {
      const r = await kova(args);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stdout}`);
      if (typeof want === 'string') assert.equal(r.stderr.trim(), want);
      else assert.match(r.stderr.trim(), want);
      assert.equal(r.stdout, '');
    }
    // A second one while the first is in flight names the first.
    const first = (await kova(['migrate', 'db', '-n', 'demo'])).stdout.trim();
    const second = await kova(['migrate', 'db', '-n', 'demo']);
    assert.equal(second.code, 1);
    assert.equal(second.stderr.trim(), `kova: error: Migration.kova.dev "db-" is invalid: spec.instance: Forbidden: in-flight migration detected: Migration "${first}" of instance "db" is in phase Pending; wait for it to end, or delete it to abort it`);
    await setStatus('migrations', first, { phase: 'Failed' });
  });

  test('bad flags are refused before anything is sent', async () => {
    const before = (await api('GET', at('migrations'))).items.length;
    const cases: Array<[string[], RegExp]> = [
      [['migrate'], /^kova: error: usage: kova migrate NAME /],
      [['migrate', 'web', 'db'], /^kova: error: usage: kova migrate NAME /],
      [['migrate', 'Web_1'], /NAME must be a DNS label .* got "Web_1"/],
      [['migrate', 'web', '--to', 'host_b'], /--to must be a DNS label/],
      [['migrate', 'web', '--bandwidth', 'fast'], /--bandwidth must be a quantity of bytes per second such as 64Mi or 1Gi, got "fast"/],
      [['migrate', 'web', '--timeout', '5m'], /--timeout is how long --wait waits: give --wait too/],
      [['migrate', 'web', '--wait', '--timeout', 'soon'], /--timeout must be a duration such as 90s, 10m or 1h30m, got "soon"/],
      [['migrate', 'web', '--cold', '--post-copy'], /--post-copy and --auto-converge are for live migration, not with --cold/],
      [['migrate', 'web', '--live'], /Unknown option '--live'/],
    ];
    for (const [args, want] of cases) {
      const r = await kova([...args, '-n', 'demo']);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stdout}`);
      assert.match(r.stderr.trim(), want);
    }
    assert.equal((await api('GET', at('migrations'))).items.length, before, 'nothing created');
  });

  test('--wait follows the phases and progress and exits 0 once it Succeeded', async () => {
    const run = started(['migrate', 'web', '-n', 'demo', '--to', 'host-b', '--wait']);
    await waitFor(() => run.lines().length > 0, `the name; got ${JSON.stringify(run.out)}`, 15_000);
    const name = run.lines()[0]!;
    assert.match(name, /^web-[a-z0-9]{5}$/);
    await run.printed(`${name}: Pending`);
    const steps: Array<[Record<string, unknown>, string]> = [
      [{ phase: 'Scheduling', sourceHost: 'host-a' }, `${name}: Scheduling from host-a`],
      [{ phase: 'PreparingTarget', sourceHost: 'host-a', targetHost: 'host-b' }, `${name}: PreparingTarget host-a → host-b`],
      [{ phase: 'Running', sourceHost: 'host-a', targetHost: 'host-b', progress: 0 }, `${name}: Running host-a → host-b 0%`],
      [{ phase: 'Running', sourceHost: 'host-a', targetHost: 'host-b', progress: 40, dataProcessedBytes: 429496730, dataTotalBytes: 1073741824 }, `${name}: Running host-a → host-b 40% (409.6 MiB of 1.0 GiB)`],
      [{ phase: 'Succeeded', sourceHost: 'host-a', targetHost: 'host-b', mode: 'Live', storage: 'BlockCopy', downtimeMs: 42, dataProcessedBytes: 1100000000, conditions: succeeded }, `${name}: Succeeded: host-a → host-b (Live, BlockCopy, downtime 42 ms, 1.0 GiB sent)`],
    ];
    for (const [status, line] of steps) {
      await setStatus('migrations', name, status);
      await run.printed(line);
    }
    assert.equal(await run.exited, 0, run.out.stderr);
    assert.deepEqual(run.lines(), [name, `${name}: Pending`, ...steps.map(([, line]) => line)], 'a line per change, none repeated');
  });

  test('--wait exits 1 with the Failed condition\'s reason and message', async () => {
    const run = started(['migrate', 'db', '-n', 'demo', '--wait', '--timeout', '1m']);
    await waitFor(() => run.lines().length > 0, 'the name', 15_000);
    const name = run.lines()[0]!;
    await setStatus('migrations', name, { phase: 'Running', sourceHost: 'host-a', targetHost: 'host-b', progress: 10 });
    await run.printed(`${name}: Running host-a → host-b 10%`);
    await setStatus('migrations', name, { phase: 'Failed', sourceHost: 'host-a', targetHost: 'host-b', conditions: failed('ProgressTimeout', 'no progress for 150 s; aborted, the instance stays on host-a') });
    await run.printed(`${name}: Failed: host-a → host-b ProgressTimeout: no progress for 150 s; aborted, the instance stays on host-a`);
    assert.equal(await run.exited, 1);
  });

  test('--wait exits 1 when the migration is deleted (aborted) or the timeout passes', async () => {
    const run = started(['migrate', 'cache', '-n', 'demo', '--wait']);
    await waitFor(() => run.lines().length > 0, 'the name', 15_000);
    const name = run.lines()[0]!;
    await setStatus('migrations', name, { phase: 'Running', sourceHost: 'host-a', targetHost: 'host-b', progress: 5 });
    await run.printed(`${name}: Running host-a → host-b 5%`);
    await api('DELETE', at('migrations', name));
    assert.equal(await run.exited, 1);
    assert.equal(run.out.stderr.trim(), `kova: migration demo/${name} was deleted before it ended (aborted); instance cache stays where it was, on host-a`);

    const t0 = Date.now();
    const slow = await kova(['migrate', 'cache', '-n', 'demo', '--wait', '--timeout', '1500ms']);
    assert.equal(slow.code, 1);
    const slowName = slow.stdout.split('\n')[0];
    assert.ok(Date.now() - t0 >= 1500);
    assert.equal(slow.stderr.trim(), `kova: timed out after 1500ms waiting for migration demo/${slowName} (phase Pending); it goes on: kubectl delete migration ${slowName} -n demo aborts it`);
    await setStatus('migrations', slowName!, { phase: 'Failed' });
  });

  test('kubectl kova migrate is the same command', async () => {
    const bin = await mkdtemp(join(tmpdir(), 'kova-migrate-bin-'));
    try {
      await chmod(PLUGIN, 0o755);
      await symlink(PLUGIN, join(bin, 'kubectl-kova'));
      const r = await kova(['kova', 'migrate', 'cache', '-n', 'demo', '--to', 'host-b'], { PATH: `${bin}:${process.env.PATH}` }, 'kubectl', []);
      assert.equal(r.code, 0, r.stderr);
      const m = await api('GET', at('migrations', r.stdout.trim()));
      assert.deepEqual([m.spec.instance, m.spec.targetHost], ['cache', 'host-b']);
    } finally {
      await rm(bin, { recursive: true, force: true });
    }
  });
});

describe('kova migrate helpers', () => {
  test('durations as Go writes them', () => {
    assert.equal(parseDuration('90s'), 90_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('1.5m'), 90_000);
    for (const bad of ['', '10', '5 m', '-1s', '1d', '0s', 'm']) assert.throws(() => parseDuration(bad), /--timeout must be/, bad);
  });

  test('bytes and lines', () => {
    assert.deepEqual([0, 1023, 1024, 1536, 1048576, 5 * 2 ** 30, 3 * 2 ** 40].map(humanBytes), ['0 B', '1023 B', '1.0 KiB', '1.5 KiB', '1.0 MiB', '5.0 GiB', '3.0 TiB']);
    const m = (status: Migration['status'], deleting = false): Migration => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'Migration', metadata: { name: 'm', ...(deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}) }, spec: { instance: 'web' }, status });
    assert.equal(describeMigration(m(undefined)), 'm: Pending');
    assert.equal(describeMigration(m({ phase: 'Running', sourceHost: 'a', targetHost: 'b', progress: 50 }, true)), 'm: Running a → b 50% (aborting)');
    assert.equal(describeMigration(m({ phase: 'Failed' })), 'm: Failed:');
    assert.equal(describeMigration(m({ phase: 'Succeeded', sourceHost: 'a', targetHost: 'b' })), 'm: Succeeded: a → b');
  });
});
