// The audit log on a real file system: the Event shape, permissions, size-based rotation with a
// bounded number of backups, a bounded buffer, two processes appending to one log, and the reader.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { AuditEntry } from '../auth/hooks.js';
import type { RequestAttributes, UserInfo } from '../auth/types.js';
import { auditEvent, microTime } from './event.js';
import type { AuditEvent } from './event.js';
import { AuditLog, ROTATED_FILE } from './log.js';
import { parseSince, readAuditLog } from './reader.js';
import { auditTable } from '../../cli/audit.js';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'kova-audit-'));
  dirs.push(d);
  return d;
}
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const alice: UserInfo = { name: 'alice', uid: 'u-1', groups: ['dev', 'system:authenticated'] };
const admin: UserInfo = { name: 'kova-admin', groups: ['system:masters', 'system:authenticated'] };

function attrs(over: Partial<RequestAttributes> = {}): RequestAttributes {
  return {
    user: alice, verb: 'create', resourceRequest: true, path: '/apis/kova.dev/v1alpha1/namespaces/demo/instances',
    apiGroup: 'kova.dev', apiVersion: 'v1alpha1', resource: 'instances', subresource: '', namespace: 'demo', name: '', ...over,
  };
}

function entry(over: Partial<AuditEntry> = {}): AuditEntry {
  const received = new Date('2026-12-05T01:02:03.456Z');
  return {
    requestURI: '/apis/kova.dev/v1alpha1/namespaces/demo/instances?fieldManager=kubectl-create',
    method: 'POST', user: alice, attributes: attrs(), code: 201, sourceIPs: ['127.0.0.1'], userAgent: 'kubectl/v1.32.0',
    received, completed: new Date(received.getTime() + 7), ...over,
  };
}

describe('audit Event', () => {
  it('renders an answered request as audit.k8s.io/v1 Event at level Metadata', () => {
    const e = auditEvent(entry(), 'id-1');
    assert.deepEqual(e, {
      kind: 'Event', apiVersion: 'audit.k8s.io/v1', level: 'Metadata', auditID: 'id-1', stage: 'ResponseComplete',
      requestURI: '/apis/kova.dev/v1alpha1/namespaces/demo/instances?fieldManager=kubectl-create', verb: 'create',
      user: { username: 'alice', uid: 'u-1', groups: ['dev', 'system:authenticated'] },
      sourceIPs: ['127.0.0.1'], userAgent: 'kubectl/v1.32.0',
      objectRef: { resource: 'instances', namespace: 'demo', apiGroup: 'kova.dev', apiVersion: 'v1alpha1' },
      responseStatus: { metadata: {}, code: 201 },
      requestReceivedTimestamp: '2026-12-05T01:02:03.456000Z', stageTimestamp: '2026-12-05T01:02:03.463000Z',
    });
    assert.match(auditEvent(entry()).auditID, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  });

  it('names the impersonator as user and the impersonated as impersonatedUser', () => {
    const e = auditEvent(entry({ authenticatedUser: admin, user: alice }));
    assert.equal(e.user.username, 'kova-admin');
    assert.deepEqual(e.impersonatedUser, { username: 'alice', uid: 'u-1', groups: ['dev', 'system:authenticated'] });
    // A refused impersonation: no effective user, the authenticated one is still named.
    const refused = auditEvent(entry({ authenticatedUser: alice, user: undefined, attributes: undefined, code: 403 }));
    assert.equal(refused.user.username, 'alice');
    assert.equal(refused.impersonatedUser, undefined);
    assert.equal(refused.verb, 'post');
  });

  it('keeps subresources and cluster scope, and uses the method for non-resource requests', () => {
    const status = auditEvent(entry({ attributes: attrs({ verb: 'patch', subresource: 'status', name: 'web', apiGroup: 'kova.dev' }) }));
    assert.deepEqual(status.objectRef, { resource: 'instances', namespace: 'demo', name: 'web', apiGroup: 'kova.dev', apiVersion: 'v1alpha1', subresource: 'status' });
    const ns = auditEvent(entry({ attributes: attrs({ verb: 'delete', apiGroup: '', apiVersion: 'v1', resource: 'namespaces', namespace: 'demo', name: 'demo' }) }));
    assert.deepEqual(ns.objectRef, { resource: 'namespaces', namespace: 'demo', name: 'demo', apiVersion: 'v1' });
    const nonResource = auditEvent(entry({ method: 'PUT', attributes: { ...attrs(), resourceRequest: false, verb: 'put', path: '/metrics' } }));
    assert.equal(nonResource.verb, 'put');
    assert.equal(nonResource.objectRef, undefined);
    assert.equal(microTime(new Date('2026-01-02T03:04:05Z')), '2026-01-02T03:04:05.000000Z');
  });

  it('formats MicroTime as toISOString with three more digits, within a second and across seconds', () => {
    const base = Date.parse('2026-12-05T18:59:59.990Z');
    const times = [base, base + 1, base + 9, base + 10, base + 11, base + 5, base + 1000, -1, -999, -1000, 0, Date.parse('0000-01-01T00:00:00.007Z'), Date.parse('9999-12-31T23:59:59.999Z'), Date.parse('+010000-01-01T00:00:00.123Z'), Date.parse('-000001-06-01T00:00:00.5Z'), base];
    for (const t of times) {
      const d = new Date(t);
      assert.equal(microTime(d), d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z'), d.toISOString());
    }
    assert.throws(() => microTime(new Date(NaN)), RangeError);
  });
});

describe('AuditLog', () => {
  it('writes one JSON line per entry to audit/audit.log, dir 700 and file 600', async () => {
    const dir = join(await tempDir(), 'audit');
    const log = await AuditLog.open({ dir });
    for (let i = 0; i < 50; i++) log.record(entry({ attributes: attrs({ name: `vm-${i}` }) }));
    await log.close();
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    assert.equal((await stat(join(dir, 'audit.log'))).mode & 0o777, 0o600);
    const lines = (await readFile(join(dir, 'audit.log'), 'utf8')).trimEnd().split('\n');
    assert.equal(lines.length, 50);
    assert.deepEqual(lines.map((l) => (JSON.parse(l) as AuditEvent).objectRef?.name), Array.from({ length: 50 }, (_, i) => `vm-${i}`));
    assert.equal(log.stats.written, 50);
  });

  it('keeps lines whole and in order across many batches, a line larger than a batch and multi-byte text', async () => {
    const dir = join(await tempDir(), 'audit');
    const log = await AuditLog.open({ dir });
    const agent = (i: number) => (i === 700 ? 'h'.repeat(300 * 1024) : `kubectl/é ${'x'.repeat(i % 997)}`);
    for (let i = 0; i < 1500; i++) {
      log.record(entry({ attributes: attrs({ name: `vm-${i}` }), userAgent: agent(i) }));
      if (i % 400 === 0) await new Promise((r) => setTimeout(r, 60)); // a timed batch in between
    }
    await log.close();
    const lines = (await readFile(join(dir, 'audit.log'), 'utf8')).trimEnd().split('\n');
    assert.equal(lines.length, 1500);
    const events = lines.map((l) => JSON.parse(l) as AuditEvent);
    assert.deepEqual(events.map((e) => e.objectRef?.name), Array.from({ length: 1500 }, (_, i) => `vm-${i}`));
    assert.deepEqual(events.map((e) => e.userAgent), Array.from({ length: 1500 }, (_, i) => agent(i)));
    assert.deepEqual([log.stats.written, log.stats.dropped], [1500, 0]);
  });

  it('names the object a create made, from its body, as kube-apiserver completes objectRef', async () => {
    const dir = join(await tempDir(), 'audit');
    const log = await AuditLog.open({ dir });
    const a = attrs();
    await log.objectNames.admit(a, { apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', metadata: { name: 'web-9' } });
    log.record(entry({ attributes: a }));
    log.record(entry({ attributes: attrs() })); // another request: no name
    await log.close();
    const [first, second] = (await readFile(join(dir, 'audit.log'), 'utf8')).trimEnd().split('\n').map((l) => JSON.parse(l) as AuditEvent);
    assert.equal(first!.objectRef?.name, 'web-9');
    assert.equal(second!.objectRef?.name, undefined);
  });

  it('tightens the mode of an existing log file', async () => {
    const dir = join(await tempDir(), 'audit');
    const first = await AuditLog.open({ dir });
    await first.close();
    await writeFile(join(dir, 'audit.log'), '', { mode: 0o644 });
    const { chmod } = await import('node:fs/promises');
    await chmod(join(dir, 'audit.log'), 0o644);
    await chmod(dir, 0o755);
    const again = await AuditLog.open({ dir });
    await again.close();
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    assert.equal((await stat(join(dir, 'audit.log'))).mode & 0o777, 0o600);
  });

  it('rotates by size and keeps at most maxBackups rotated files', async () => {
    const dir = join(await tempDir(), 'audit');
    const maxFileBytes = 8 * 1024;
    const log = await AuditLog.open({ dir, maxFileBytes, maxBackups: 3 });
    let recorded = 0;
    for (let i = 0; i < 400; i++) {
      log.record(entry({ attributes: attrs({ name: `vm-${i}` }) }));
      recorded++;
      // Small batches, so each file ends close to the limit; rotated names differ by millisecond.
      if (i % 10 === 9) {
        await log.flush();
        await new Promise((r) => setTimeout(r, 2));
      }
    }
    await log.close();
    const files = await readdir(dir);
    const rotated = files.filter((f) => ROTATED_FILE.test(f));
    assert.ok(log.stats.rotations > 3, `rotations ${log.stats.rotations}`);
    assert.equal(rotated.length, 3, files.join(' '));
    assert.deepEqual(files.filter((f) => !ROTATED_FILE.test(f)), ['audit.log']);
    let total = 0;
    for (const f of files) {
      const size = (await stat(join(dir, f))).size;
      total += size;
      // One batch (10 lines of ~500 bytes) at most past the limit.
      assert.ok(size < maxFileBytes + 10 * 600, `${f}: ${size} bytes`);
      if (f !== 'audit.log') assert.ok(size >= maxFileBytes, `${f} rotated early: ${size}`);
    }
    assert.ok(total < 4 * (maxFileBytes + 6000), `total ${total}`);
    // What is left is the newest events, in order, with none cut.
    const { events, skipped } = await readAuditLog(dir);
    assert.equal(skipped, 0);
    const names = events.map((e) => Number(e.objectRef!.name!.slice(3)));
    assert.equal(names.at(-1), recorded - 1);
    assert.deepEqual(names, Array.from({ length: names.length }, (_, i) => recorded - names.length + i));
  });

  it('drops and counts entries when its buffer is full, without throwing or blocking', async () => {
    const dir = join(await tempDir(), 'audit');
    const logged: string[] = [];
    const log = await AuditLog.open({ dir, maxBufferBytes: 4096, log: (m) => logged.push(m) });
    const t0 = performance.now();
    for (let i = 0; i < 1000; i++) log.record(entry());
    assert.ok(performance.now() - t0 < 1000);
    await log.close();
    assert.ok(log.stats.dropped > 0, 'nothing dropped');
    assert.equal(log.stats.written + log.stats.dropped, 1000);
    const lines = (await readFile(join(dir, 'audit.log'), 'utf8')).trimEnd().split('\n');
    assert.equal(lines.length, log.stats.written);
    assert.match(logged[0]!, /audit: dropped \d+ event\(s\) \(buffer full\)/);
  });

  it('several processes append whole lines to one log and rotate it between them', async () => {
    const dir = join(await tempDir(), 'audit');
    const script = `
      const { AuditLog } = await import(${JSON.stringify(new URL('./log.js', import.meta.url).href)});
      const log = await AuditLog.open({ dir: process.argv[1], maxFileBytes: 64 * 1024, maxBackups: 100 });
      const user = { name: 'writer-' + process.pid, groups: [] };
      for (let i = 0; i < 3000; i++) {
        const t = new Date();
        log.record({ requestURI: '/x/' + i + '/' + 'y'.repeat(i % 300), method: 'POST', user, code: 201, sourceIPs: [], received: t, completed: t });
        if (i % 50 === 0) await new Promise((r) => setImmediate(r));
      }
      await log.close();
      process.stdout.write(JSON.stringify(log.stats));
    `;
    const run = () => promisify(execFile)(process.execPath, ['--input-type=module', '-e', script, dir]);
    const outs = await Promise.all([run(), run(), run()]);
    const stats = outs.map((o) => JSON.parse(o.stdout) as { written: number; dropped: number; rotations: number });
    assert.ok(stats.reduce((n, s) => n + s.rotations, 0) > 0, 'no rotation happened');
    const { events, skipped } = await readAuditLog(dir);
    assert.equal(skipped, 0, 'a line was cut or interleaved');
    assert.equal(events.length, stats.reduce((n, s) => n + s.written, 0));
    assert.equal(events.length, 9000);
    const perWriter = new Map<string, number>();
    for (const e of events) perWriter.set(e.user.username, (perWriter.get(e.user.username) ?? 0) + 1);
    assert.deepEqual([...perWriter.values()], [3000, 3000, 3000]);
  });
});

describe('reading the audit log', () => {
  it('filters by time, user (or impersonated user), verb and namespace across rotated files', async () => {
    const dir = join(await tempDir(), 'audit');
    const log = await AuditLog.open({ dir, maxFileBytes: 2048 });
    const now = Date.now();
    const at = (minutesAgo: number) => new Date(now - minutesAgo * 60_000);
    log.record(entry({ received: at(120), completed: at(120), attributes: attrs({ name: 'old' }) }));
    log.record(entry({ received: at(20), completed: at(20), attributes: attrs({ verb: 'delete', name: 'gone' }), method: 'DELETE', code: 200 }));
    log.record(entry({ received: at(10), completed: at(10), user: admin, attributes: attrs({ user: admin, namespace: 'other', name: 'x' }) }));
    log.record(entry({ received: at(5), completed: at(5), authenticatedUser: admin, user: alice, attributes: attrs({ verb: 'update', name: 'imp' }), method: 'PUT', code: 403 }));
    for (let i = 0; i < 20; i++) {
      await log.flush();
      log.record(entry({ received: at(1), completed: at(1), user: { name: 'bob', groups: [] }, attributes: attrs({ user: { name: 'bob', groups: [] }, name: `b${i}`, namespace: 'b' }) }));
    }
    await log.close();
    assert.ok(log.stats.rotations > 0);
    const names = async (f: Parameters<typeof readAuditLog>[1]) => (await readAuditLog(dir, f)).events.map((e) => e.objectRef?.name);
    assert.deepEqual(await names({ user: 'alice' }), ['old', 'gone', 'imp']);
    assert.deepEqual(await names({ user: 'kova-admin' }), ['x', 'imp']);
    assert.deepEqual(await names({ since: parseSince('30m'), namespace: 'demo' }), ['gone', 'imp']);
    assert.deepEqual(await names({ verb: 'delete' }), ['gone']);
    assert.equal((await names({ user: 'bob' })).length, 20);
    assert.deepEqual(await names({ since: parseSince('2m'), user: 'alice' }), []);
    const table = auditTable((await readAuditLog(dir, { user: 'kova-admin' })).events);
    const rows = table.trimEnd().split('\n');
    assert.match(rows[0]!, /^TIME\s+USER\s+VERB\s+RESOURCE\s+OBJECT\s+CODE$/);
    assert.match(rows[2]!, /kova-admin \(as alice\)\s+update\s+instances\.kova\.dev\s+demo\/imp\s+403$/);
  });

  it('parses --since as a duration or an RFC 3339 time, and names a bad value', () => {
    const now = new Date('2026-12-05T12:00:00Z');
    assert.equal(parseSince('1h', now).toISOString(), '2026-12-05T11:00:00.000Z');
    assert.equal(parseSince('1h30m', now).toISOString(), '2026-12-05T10:30:00.000Z');
    assert.equal(parseSince('45s', now).toISOString(), '2026-12-05T11:59:15.000Z');
    assert.equal(parseSince('2026-12-05T10:00:00+01:00', now).toISOString(), '2026-12-05T09:00:00.000Z');
    assert.throws(() => parseSince('yesterday', now), /--since must be a duration .* got "yesterday"/);
    assert.throws(() => parseSince('1y', now), /--since/);
  });
});
