import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { launch, LaunchError, stopLauncherProcess } from './launcher.js';
import { childrenOf, goneWithin, procStat } from '../testing/processes.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function failure(p: Promise<unknown>): Promise<LaunchError> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  assert.ok(e instanceof LaunchError, `expected a LaunchError, got ${String(e)}`);
  return e;
}

test('launch runs the program in the launcher process, a child of this one', async () => {
  const { stdout } = await launch('sh', ['-c', 'echo $PPID']);
  const launcherPid = Number(stdout.trim());
  assert.notEqual(launcherPid, process.pid);
  assert.equal((await procStat(launcherPid))?.ppid, process.pid);
});

test('stdout and stderr of a program that succeeds; stdin gets the input, or is closed', async () => {
  assert.deepEqual(await launch('sh', ['-c', 'echo out; echo err >&2']), { stdout: 'out\n', stderr: 'err\n' });
  assert.equal((await launch('cat', [], { input: 'héllo\nworld' })).stdout, 'héllo\nworld');
  // No input: cat sees end of file at once instead of waiting.
  assert.equal((await launch('cat', [])).stdout, '');
  // Arguments are passed as they are, never through a shell.
  assert.equal((await launch('printf', ['%s|', '$(echo no)', 'a b', ';'])).stdout, '$(echo no)|a b|;|');
});

test('a failing program rejects as execFile does: exit status, output, message', async () => {
  const e = await failure(launch('sh', ['-c', 'echo partial; echo bad thing >&2; exit 3']));
  assert.equal(e.code, 3);
  assert.equal(e.stdout, 'partial\n');
  assert.equal(e.stderr, 'bad thing\n');
  assert.match(e.message, /^Command failed: sh -c .*\nbad thing/);
  assert.equal(e.killed, false);
});

test('a missing program is an errno code (it never ran)', async () => {
  const e = await failure(launch('/nonexistent/kova-no-such-program', ['x']));
  assert.equal(e.code, 'ENOENT');
});

test('the timeout kills the program; maxBuffer bounds its output', async () => {
  const t0 = Date.now();
  const e = await failure(launch('sleep', ['30'], { timeout: 200 }));
  assert.equal(e.killed, true);
  assert.equal(e.signal, 'SIGTERM');
  assert.ok(Date.now() - t0 < 10_000);
  const big = await failure(launch('head', ['-c', '100000', '/dev/zero'], { maxBuffer: 1000 }));
  assert.equal(big.code, 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER');
});

test('aborting the signal kills the program (killSignal); an aborted signal starts nothing', async () => {
  const ac = new AbortController();
  const t0 = Date.now();
  const p = launch('sleep', ['30'], { signal: ac.signal });
  setTimeout(() => ac.abort(), 200);
  const e = await failure(p);
  assert.equal(e.killed, true);
  assert.equal(e.signal, 'SIGTERM');
  assert.ok(Date.now() - t0 < 10_000);
  const hard = new AbortController();
  const q = launch('sh', ['-c', 'trap "" TERM; sleep 30'], { signal: hard.signal, killSignal: 'SIGKILL' });
  setTimeout(() => hard.abort(), 200);
  assert.equal((await failure(q)).signal, 'SIGKILL');
  const before = new AbortController();
  before.abort();
  assert.equal((await failure(launch('touch', ['/tmp/kova-launcher-never'], { signal: before.signal }))).code, 'ABORT_ERR');
  await assert.rejects(readFile('/tmp/kova-launcher-never'), 'the program never ran');
});

test('environment: the caller\'s current process.env, or the one given', async () => {
  process.env.KOVA_LAUNCHER_TEST = 'now';
  try {
    assert.equal((await launch('sh', ['-c', 'echo $KOVA_LAUNCHER_TEST'])).stdout, 'now\n');
    assert.equal((await launch('sh', ['-c', 'echo $KOVA_LAUNCHER_TEST'], { env: { PATH: process.env.PATH, KOVA_LAUNCHER_TEST: 'given' } })).stdout, 'given\n');
  } finally {
    delete process.env.KOVA_LAUNCHER_TEST;
  }
});

test('many programs at once each get their own answer', async () => {
  const outs = await Promise.all(Array.from({ length: 40 }, (_, i) => launch('sh', ['-c', `sleep 0.0${i % 10}; echo ${i}`])));
  assert.deepEqual(outs.map((o) => o.stdout.trim()), Array.from({ length: 40 }, (_, i) => String(i)));
});

test('a launcher process that dies fails the calls it had; the next call starts another', async () => {
  const running = launch('sleep', ['30']);
  await sleep(200);
  stopLauncherProcess();
  const e = await failure(running);
  assert.equal(e.code, 'ELAUNCHER');
  assert.equal((await launch('echo', ['again'])).stdout, 'again\n');
});

test('the launcher process and its programs die with their parent, even a SIGKILLed one', async () => {
  const launcherUrl = new URL('./launcher.js', import.meta.url).href;
  const script = `import { launch } from ${JSON.stringify(launcherUrl)};
    const p = launch('sleep', ['60']);
    setTimeout(() => {}, 60_000);
    void p;`;
  const parent = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'inherit'] });
  try {
    // The program's output goes back over IPC: the pids come from /proc.
    let launcherPid: number | undefined;
    let programPid: number | undefined;
    for (let i = 0; i < 100 && programPid === undefined; i++) {
      await sleep(100);
      const kids = await childrenOf(parent.pid!);
      launcherPid = kids[0];
      if (launcherPid !== undefined) programPid = (await childrenOf(launcherPid))[0];
    }
    assert.ok(launcherPid !== undefined && programPid !== undefined, 'the launcher process and its program started');
    parent.kill('SIGKILL');
    assert.ok(await goneWithin(launcherPid, 5000), 'the launcher process died with its parent');
    assert.ok(await goneWithin(programPid, 5000), 'its program died with it');
  } finally {
    parent.kill('SIGKILL');
  }
});
