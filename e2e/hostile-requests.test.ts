// The crash regression of issue #12 against a real `kova up` with two API workers: a flood of
// malformed requests (one used to kill a worker, and the only process without workers) leaves
// every process up and legitimate calls succeeding; a worker that does die is replaced.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import tls from 'node:tls';
import { eventually, startKova } from './harness.js';
import type { Kova } from './harness.js';

let kova: Kova;
let port: number;

before(async () => {
  kova = await startKova(['--api-workers', '2', '--no-agents', '--no-controllers', '--verbose']);
  port = Number(new URL(kova.url).port);
});

after(async () => {
  await kova?.stop();
});

/** Writes raw bytes over TLS (no certificate check: the request is the point) and reads the answer. */
function raw(bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => s.write(bytes));
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => resolve(out));
    s.setTimeout(10_000, () => s.destroy());
  });
}

/** PIDs of the API worker processes (children of `kova up` run as `kova api-worker`). */
async function workerPids(parent: number): Promise<number[]> {
  const out: number[] = [];
  for (const d of await readdir('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = await readFile(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== parent) continue;
      const cmdline = (await readFile(`/proc/${d}/cmdline`, 'utf8')).split('\0');
      if (cmdline.includes('api-worker')) out.push(Number(d));
    } catch {
      // the process ended meanwhile
    }
  }
  return out.sort();
}

test('malformed requests, authenticated or not, crash no API process; legitimate calls keep working', async () => {
  const before = await workerPids(kova.proc.pid!);
  assert.equal(before.length, 2, kova.output());
  const hostile = [
    'GET //[ HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET http://[ HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /version HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n',
    `GET //[ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${(await readFile(`${kova.dataDir}/pki/token`, 'utf8')).trim()}\r\n\r\n`,
  ];
  for (let round = 0; round < 10; round++) {
    const answers = await Promise.all(hostile.map((h) => raw(h)));
    for (const a of answers) assert.match(a, /^HTTP\/1\.1 4\d\d /, a);
    await kova.k(['get', 'namespaces', 'default', '-o', 'name']);
  }
  assert.equal(kova.proc.exitCode, null, kova.output());
  assert.deepEqual(await workerPids(kova.proc.pid!), before, `no worker may have died:\n${kova.output()}`);
  assert.doesNotMatch(kova.output(), /exited with|unhandled promise rejection|uncaught exception/);
});

test('a worker that dies is replaced and the API keeps answering', async () => {
  const [victim, survivor] = await workerPids(kova.proc.pid!);
  process.kill(victim, 'SIGKILL');
  await eventually(() => /API worker \d+ exited with SIGKILL; starting another/.test(kova.output()), 15_000, 'the primary to notice the dead worker');
  const now = await eventually(async () => {
    const pids = await workerPids(kova.proc.pid!);
    return pids.length === 2 && !pids.includes(victim) && pids;
  }, 15_000, 'a replacement worker');
  assert.ok(now.includes(survivor));
  // Both processes serve: enough calls that each worker answers some.
  for (let i = 0; i < 10; i++) await kova.k(['get', 'namespaces', '-o', 'name']);
  assert.equal(kova.proc.exitCode, null);
});
