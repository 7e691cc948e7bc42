// A component started by kova up stops when kova up is gone, also when kova up died while the
// component was still loading its modules (before its 'disconnect' listener existed).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { goneWithin, isAlive } from '../testing/processes.js';

const KOVA = fileURLToPath(new URL('./kova.js', import.meta.url));

describe('kova controllers whose parent exits during its start', () => {
  let dir: string;
  let pid = 0;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kova-parent-exit-'));
    // An API server that is not there: the controllers keep campaigning, so only the parent's
    // death can end the process.
    await writeFile(join(dir, 'kubeconfig'), [
      'apiVersion: v1', 'kind: Config', 'current-context: c',
      'clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]',
      'users: [{name: u, user: {token: t}}]',
      'contexts: [{name: c, context: {cluster: c, user: u}}]', '',
    ].join('\n'));
  });
  after(async () => {
    if (pid && (await isAlive(pid))) process.kill(pid, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  it('stops by itself (no orphan left running)', async () => {
    // The parent spawns it with an IPC channel, as kova up does, and exits at once.
    const parent = spawn(process.execPath, ['-e', `
      const { spawn } = require('node:child_process');
      const c = spawn(process.execPath, ${JSON.stringify([KOVA, 'controllers', '--kubeconfig', join(dir, 'kubeconfig'), '--data-dir', dir])}, { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
      process.stdout.write(String(c.pid));
      process.exit(0);
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    parent.stdout.on('data', (d) => (out += d));
    await new Promise((r) => parent.on('close', r));
    pid = Number(out);
    assert.ok(pid > 0, `child pid from the parent: ${out}`);
    // ORPHAN_STOP_MS (10 s) bounds its shutdown.
    assert.equal(await goneWithin(pid, 20_000), true, `kova controllers (pid ${pid}) still runs after its parent exited`);
  });
});
