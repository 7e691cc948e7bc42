// virsh shells against the real libvirtd (qemu:///system): the same answers as a virsh process
// per command, errors told apart per command, bounds, and recovery from a shell killed outside.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Virsh, VirshError } from './virsh.js';
import { shellLine, ShellUnavailable, VirshShellPool } from './virsh-shell.js';

const run = promisify(execFile);
const URI = 'qemu:///system';
const oneOff = async (...args: string[]) => (await run('virsh', ['-q', '-c', URI, ...args])).stdout;
/** virsh's interactive mode drops one trailing newline of some outputs; nothing else differs. */
const same = (a: string, b: string) => assert.equal(a.trimEnd(), b.trimEnd());

describe('virsh shell command lines', () => {
  it('quotes every argument and refuses what cannot be quoted', () => {
    assert.equal(shellLine(['dumpxml', '--inactive', 'kova-a.b']), "'dumpxml' '--inactive' 'kova-a.b'");
    assert.equal(shellLine(['attach-device', 'd', '/tmp/x y/disk.xml', '--live']), "'attach-device' 'd' '/tmp/x y/disk.xml' '--live'");
    assert.equal(shellLine(['echo', 'a;b', '#c', '$d', '"e"', '\\f']), "'echo' 'a;b' '#c' '$d' '\"e\"' '\\f'");
    for (const bad of ["it's", 'a\nb', 'a\rb', 'tab\there', 'nul\0', 'é', '\x7f']) assert.equal(shellLine(['dumpxml', bad]), undefined, JSON.stringify(bad));
    assert.equal(shellLine([]), undefined);
  });
});

describe('virsh shells (real libvirtd)', () => {
  const virsh = new Virsh(URI, { shells: true });
  const name = `kova-shelltest-${randomBytes(4).toString('hex')}`;
  let dir = '';
  after(async () => {
    await oneOff('undefine', name).catch(() => undefined);
    virsh.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('answers as a virsh process does, large outputs included', async () => {
    dir = await mkdtemp(join(tmpdir(), 'kova-shelltest-'));
    const xml = join(dir, 'dom.xml');
    await writeFile(xml, `<domain type='qemu'><name>${name}</name><memory unit='MiB'>64</memory><os><type arch='x86_64'>hvm</type></os><description>${'x'.repeat(200_000)}</description></domain>`);
    await virsh.run('define', xml);
    same(await virsh.run('dumpxml', '--inactive', name), await oneOff('dumpxml', '--inactive', name));
    same(await virsh.run('domstate', '--reason', name), await oneOff('domstate', '--reason', name));
    same(await virsh.run('dominfo', name), await oneOff('dominfo', name));
    assert.match(await virsh.run('list', '--all', '--name'), new RegExp(`^${name}$`, 'm'));
  });

  it('reports a failed command as its own error and goes on', async () => {
    const err = await virsh.run('dumpxml', 'kova-no-such-domain').then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof VirshError && err.noDomain, String(err));
    assert.match(err.message, /kova-no-such-domain/);
    same(await virsh.run('domstate', name), 'shut off\n');
    // An argument the shell cannot take runs in a process of its own, with the same error.
    const quoted = await virsh.run('dumpxml', "no'such").then(() => undefined, (e: unknown) => e);
    assert.ok(quoted instanceof VirshError && quoted.noDomain, String(quoted));
  });

  it('runs concurrent commands on a bounded number of shells, each with its own answer', async () => {
    const pool = new VirshShellPool(URI, { max: 2 });
    try {
      const line = shellLine(['domstate', name])!;
      const missing = shellLine(['domstate', 'kova-no-such-domain'])!;
      const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => pool.run(i % 3 === 0 ? missing : line, { timeoutMs: 30_000, maxBuffer: 1 << 20 })));
      results.forEach((r, i) => {
        if (i % 3 === 0) assert.equal(r.status, 'rejected', `command ${i}`);
        else assert.deepEqual(r.status === 'fulfilled' ? r.value.trim() : r, 'shut off', `command ${i}`);
      });
      assert.ok(pool.size <= 2, `${pool.size} shells`);
    } finally {
      pool.close();
    }
    await assert.rejects(pool.run(shellLine(['version'])!, { timeoutMs: 1000, maxBuffer: 1 << 20 }), ShellUnavailable);
  });

  it('bounds the output: a command printing more than allowed fails, and the next runs', async () => {
    await assert.rejects(virsh.runWith({ maxBuffer: 1000 }, 'dumpxml', '--inactive', name), (e: unknown) => e instanceof VirshError && /exceeded/.test(e.message));
    same(await virsh.run('domstate', name), 'shut off\n');
  });

  it('recovers from its shells being killed', async () => {
    await virsh.run('domstate', name);
    const { stdout } = await run('pgrep', ['-P', String(process.pid), '-x', 'virsh']);
    const pids = stdout.split('\n').filter(Boolean).map(Number);
    assert.ok(pids.length >= 1, 'a shell runs as a child of this process');
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 3; i++) same(await virsh.run('domstate', name), 'shut off\n');
  });
});
