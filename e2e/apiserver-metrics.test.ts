// GET /metrics of a real `kova up` with two API workers (node:cluster): whichever worker a scrape
// lands on, the answer is the sum of every worker's metrics (the primary aggregates them), read
// with the real kubectl (`get --raw /metrics`) as the admin and as a system:monitoring user; a
// worker that does not answer is left out instead of hanging the scrape.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { readFile, readdir } from 'node:fs/promises';
import { createUser, startKova } from './harness.js';
import type { Kova } from './harness.js';

let kova: Kova;
let token: string;
let ca: string;

before(async () => {
  kova = await startKova(['--api-workers', '2', '--no-agents', '--no-controllers']);
  token = (await readFile(`${kova.dataDir}/pki/token`, 'utf8')).trim();
  ca = await readFile(`${kova.dataDir}/pki/ca.crt`, 'utf8');
});

after(async () => {
  await kova?.stop();
});

/** One request on a connection of its own: the primary hands each new connection to the next worker. */
function get(path: string, timeoutMs = 20_000): Promise<{ code: number; body: string }> {
  const url = new URL(path, kova.url);
  return new Promise((resolve, reject) => {
    const req = https.request({ host: url.hostname, port: url.port, path, ca, agent: false, headers: { Authorization: `Bearer ${token}` } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ code: res.statusCode!, body }));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${path}: no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

const LIST_NAMESPACES = { verb: 'LIST', dry_run: '', group: '', version: 'v1', resource: 'namespaces', subresource: '', scope: 'cluster', component: 'apiserver', code: '200' };

/** A sample's value in a text exposition, its labels in any order; 0 when absent. */
function value(text: string, name: string, labels: Record<string, string>): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).sort().join(',');
  for (const line of text.split('\n')) {
    const m = /^([\w:]+)\{(.*)\} (\S+)$/.exec(line);
    if (m?.[1] === name && m[2]!.split(/,(?=\w+=")/).sort().join(',') === want) return Number(m[3]);
  }
  return 0;
}

/** PIDs of the API worker processes (children of `kova up` run as `kova api-worker`). */
async function workerPids(parent: number): Promise<number[]> {
  const out: number[] = [];
  for (const d of await readdir('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = await readFile(`/proc/${d}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== parent) continue;
      if ((await readFile(`/proc/${d}/cmdline`, 'utf8')).split('\0').includes('api-worker')) out.push(Number(d));
    } catch {
      // the process ended meanwhile
    }
  }
  return out;
}

test('every scrape, on either worker, counts the requests both workers served', async () => {
  const before = value((await get('/metrics')).body, 'apiserver_request_total', LIST_NAMESPACES);
  // Fresh connections alternate between the two workers: each serves about half of them.
  const n = 40;
  for (let i = 0; i < n; i++) assert.equal((await get('/api/v1/namespaces')).code, 200);
  // Scrapes land on both workers too; each must see all n lists (one worker alone saw about n/2).
  for (let i = 0; i < 4; i++) {
    const r = await get('/metrics');
    assert.equal(r.code, 200, r.body);
    assert.equal(value(r.body, 'apiserver_request_total', LIST_NAMESPACES) - before, n, `scrape ${i}`);
  }
  // Process metrics are summed across the workers too: the CPU of both.
  assert.match((await get('/metrics')).body, /^process_cpu_seconds_total \d/m);
});

test('kubectl get --raw /metrics: the admin and the group system:monitoring read it, another user is forbidden', async () => {
  const admin = await kova.k(['get', '--raw', '/metrics']);
  assert.match(admin, /^# TYPE apiserver_request_duration_seconds histogram$/m);
  assert.ok(value(admin, 'etcd_request_duration_seconds_count', { operation: 'list', type: 'namespaces' }) > 0, 'etcd lists of namespaces');
  // kova user refuses system: groups (kova's own): Prometheus's identity here is the admin's impersonation.
  assert.match(await kova.k(['get', '--raw', '/metrics', '--as', 'prometheus', '--as-group', 'system:monitoring']), /^apiserver_request_total\{/m);
  const nobody = await createUser(kova, 'nobody');
  const denied = await nobody.kubectl(['get', '--raw', '/metrics']);
  assert.notEqual(denied.code, 0);
  assert.match(denied.stderr, /forbidden/i);
});

test('a worker that does not answer is left out of the aggregate, not waited for', async () => {
  const pids = await workerPids(kova.proc.pid!);
  assert.equal(pids.length, 2, kova.output());
  const [stopped] = pids;
  process.kill(stopped!, 'SIGSTOP');
  try {
    // Scrapes handed to the stopped worker cannot be answered; those on the other one must be.
    const results = await Promise.allSettled(Array.from({ length: 4 }, () => get('/metrics', 8_000)));
    const answered = results.filter((r): r is PromiseFulfilledResult<{ code: number; body: string }> => r.status === 'fulfilled');
    assert.ok(answered.length >= 1, results.map((r) => (r.status === 'rejected' ? String(r.reason) : r.value.code)).join(', '));
    for (const a of answered) {
      assert.equal(a.value.code, 200, a.value.body);
      assert.match(a.value.body, /^apiserver_request_total\{/m);
    }
  } finally {
    process.kill(stopped!, 'SIGCONT');
  }
});
