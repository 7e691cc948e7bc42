import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { sshFingerprint } from './fingerprint.js';
import { planKeyPairStatus } from './keypair-controller.js';

const run = promisify(execFile);

describe('sshFingerprint', () => {
  it('matches ssh-keygen -l for ed25519 and rsa keys', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kova-fp-'));
    try {
      for (const t of ['ed25519', 'rsa']) {
        const f = join(dir, t);
        await run('ssh-keygen', ['-q', '-t', t, '-N', '', '-f', f]);
        const want = (await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${f}.pub`])).stdout.split(' ')[1];
        assert.equal(sshFingerprint(await readFile(`${f}.pub`, 'utf8')), want);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects a blob of another type and bad base64', () => {
    const ed = 'AAAAC3NzaC1lZDI1NTE5AAAAIJv0Yx7s1y3m6uQh0Qf0vGz2n9m0sQe0cH7X3Zk1b2c3';
    assert.match(sshFingerprint(`ssh-ed25519 ${ed} me`), /^SHA256:[A-Za-z0-9+/]{43}$/);
    assert.throws(() => sshFingerprint(`ssh-rsa ${ed}`), /not a ssh-rsa key \(it says ssh-ed25519\)/);
    assert.throws(() => sshFingerprint('ssh-ed25519 !!!'), /base64/);
    const bad = planKeyPairStatus('ssh-rsa AAAA', 3);
    assert.equal(bad.fingerprint, undefined);
    assert.deepEqual({ ...bad.cond, message: undefined }, { type: 'Ready', status: 'False', reason: 'InvalidKey', message: undefined, observedGeneration: 3 });
  });
});
