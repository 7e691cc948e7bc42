import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { LogFile, LogFiles, verbosity, logLevel } from './process-logging.js';

test('a log file rotates at its cap: NAME.log.1 holds the older lines, never more than two files', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kova-logs-'));
  try {
    const f = new LogFile(join(dir, 'x.log'), 1000);
    const line = `${'a'.repeat(99)}\n`;
    for (let i = 0; i < 25; i++) f.write(line);
    f.close();
    assert.ok(existsSync(join(dir, 'x.log.1')));
    assert.ok(statSync(join(dir, 'x.log')).size <= 1000);
    assert.ok(statSync(join(dir, 'x.log.1')).size <= 1000);
    assert.ok(!existsSync(join(dir, 'x.log.2')));
    assert.equal(statSync(join(dir, 'x.log')).mode & 0o777, 0o600);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('children\'s lines: JSON kept as is, raw lines wrapped into JSON and shown; warnings shown readable, info only with -v', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kova-logs-'));
  try {
    const shown: string[] = [];
    const logs = new LogFiles(join(dir, 'logs'), { verbose: false, terminal: (l) => shown.push(l) });
    const s = new PassThrough();
    logs.pipe(s, 'components', 'components');
    const info = JSON.stringify({ level: 30, time: Date.parse('2026-01-02T03:04:05.678Z'), component: 'agent', msg: 'quiet' });
    const warn = JSON.stringify({ level: 40, time: Date.parse('2026-01-02T03:04:05.678Z'), component: 'controller/instance', msg: 'loud' });
    s.write(`${info}\n${warn.slice(0, 10)}`); // a line split across chunks
    s.write(`${warn.slice(10)}\nplain text from a last-resort handler\n`);
    s.end();
    await new Promise((r) => setImmediate(r));
    logs.close();
    const lines = readFileSync(join(dir, 'logs', 'components.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(lines.map((l) => l.msg), ['quiet', 'loud', 'plain text from a last-resort handler']);
    assert.equal(lines[2]!.component, 'components');
    assert.equal(lines[2]!.level, 30);
    assert.deepEqual(shown, ['03:04:05.678 WARN  controller/instance: loud\n', 'plain text from a last-resort handler\n']);
    assert.ok(!shown.some((l) => l.startsWith('{')), 'no JSON on the terminal');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('--v: 0 is info, -v or --v>=1 debug; bad values are refused naming the flag', () => {
  assert.equal(logLevel(verbosity({})), 'info');
  assert.equal(logLevel(verbosity({ verbose: true })), 'debug');
  assert.equal(logLevel(verbosity({ v: '2' })), 'debug');
  assert.throws(() => verbosity({ v: 'x' }), /--v must be/);
  assert.throws(() => verbosity({ v: '11' }), /--v must be/);
});
