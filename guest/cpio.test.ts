import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { lstat, mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { buildCpio } from './cpio.js';

const run = promisify(execFile);

describe('buildCpio', () => {
  it('writes an archive that cpio unpacks with modes, links and device nodes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kova-cpio-'));
    try {
      const odd = Buffer.from('abcde'); // a length that needs padding
      const archive = buildCpio([
        { type: 'dir', path: 'etc' },
        { type: 'dir', path: 'root', mode: 0o700 },
        { type: 'file', path: 'etc/odd', data: odd },
        { type: 'file', path: '/init', data: Buffer.from('#!/bin/sh\n'), mode: 0o755 },
        { type: 'symlink', path: 'sh', target: 'init' },
        { type: 'chardev', path: 'console', major: 5, minor: 1 },
      ]);
      assert.equal(archive.length % 4, 0);
      await writeFile(join(dir, 'a.cpio'), archive);
      const out = join(dir, 'out');
      await run('mkdir', [out]);
      // busybox is a kova host dependency (hack/install-host-deps.sh).
      await run('sh', ['-c', 'cd "$1" && busybox cpio -i -d < "$2"', 'sh', out, join(dir, 'a.cpio')]);
      assert.deepEqual(await readFile(join(out, 'etc/odd')), odd);
      assert.equal((await lstat(join(out, 'init'))).mode & 0o777, 0o755);
      assert.equal((await lstat(join(out, 'root'))).mode & 0o777, 0o700);
      assert.equal(await readlink(join(out, 'sh')), 'init');
      const dev = await lstat(join(out, 'console'));
      assert.ok(dev.isCharacterDevice());
      assert.equal(dev.rdev, (5 << 8) | 1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses paths that climb out of the archive', () => {
    assert.throws(() => buildCpio([{ type: 'dir', path: '../etc' }]), /bad cpio path/);
  });
});
