// importImage against real files, a real HTTP server and real qemu-img.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ImportError, importImage, storePath } from './import.js';

const run = promisify(execFile);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('importImage', () => {
  let dir: string;
  let store: string;
  let qcow2: Buffer;
  let server: Server;
  let base: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kova-import-'));
    store = join(dir, 'store');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', join(dir, 'disk.qcow2'), '64M']);
    qcow2 = await readFile(join(dir, 'disk.qcow2'));
    // Served slowly in chunks so progress is reported more than once.
    server = createServer((req, res) => {
      if (req.url === '/disk.qcow2') {
        res.writeHead(200, { 'content-length': String(qcow2.length) });
        let off = 0;
        const step = Math.ceil(qcow2.length / 4);
        const tick = () => {
          if (off >= qcow2.length) return void res.end();
          res.write(qcow2.subarray(off, off + step));
          off += step;
          setTimeout(tick, 30);
        };
        tick();
      } else if (req.url === '/moved') {
        res.writeHead(302, { location: '/disk.qcow2' }).end();
      } else {
        res.writeHead(404).end('not found');
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = server.address() as { port: number };
    base = `http://127.0.0.1:${addr.port}`;
  });
  after(async () => {
    server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('imports a file into <store>/<sha256>.<format> and reports size and virtual size', async () => {
    const out = await importImage({ source: { file: { path: join(dir, 'disk.qcow2') } }, storeDir: store, sha256: sha(qcow2), tempName: 'a' });
    assert.equal(out.sha256, sha(qcow2));
    assert.equal(out.format, 'qcow2');
    assert.equal(out.path, storePath(store, sha(qcow2), 'qcow2'));
    assert.equal(out.size, qcow2.length);
    assert.equal(out.virtualSize, 64 * 1024 * 1024);
    assert.deepEqual(await readFile(out.path), qcow2);
    assert.deepEqual((await readdir(store)).filter((f) => f.startsWith('.')), [], 'no temporary file left');
  });

  it('downloads over HTTP (following a redirect), hashing while streaming, with progress', async () => {
    const seen: number[] = [];
    const out = await importImage({ source: { http: { url: `${base}/moved` } }, storeDir: store, tempName: 'b', onProgress: (p) => seen.push(p), progressEveryMs: 0 });
    assert.equal(out.sha256, sha(qcow2), 'digest computed without spec.sha256');
    assert.ok(seen.length >= 2, `progress reported ${seen.length} times`);
    assert.ok(seen.every((p, i) => p >= 0 && p <= 99 && (i === 0 || p >= seen[i - 1])), `progress ${seen}`);
  });

  it('rejects a checksum mismatch with expected and actual digests', async () => {
    const wrong = 'a'.repeat(64);
    const err = await importImage({ source: { http: { url: `${base}/disk.qcow2` } }, storeDir: store, sha256: wrong, tempName: 'c' }).catch((e) => e);
    assert.ok(err instanceof ImportError);
    assert.equal(err.reason, 'ChecksumMismatch');
    assert.match(err.message, new RegExp(`expected sha256 ${wrong}.*actual ${sha(qcow2)}`));
    assert.equal(err.actualSha256, sha(qcow2));
  });

  it('rejects a file that is no disk image as UnsupportedFormat, but accepts it as raw when told', async () => {
    const junk = Buffer.concat([Buffer.from('<html>not an image</html>\n'), randomBytes(5000)]);
    await writeFile(join(dir, 'junk.img'), junk);
    const err = await importImage({ source: { file: { path: join(dir, 'junk.img') } }, storeDir: store, tempName: 'd' }).catch((e) => e);
    assert.ok(err instanceof ImportError);
    assert.equal(err.reason, 'UnsupportedFormat');
    assert.match(err.message, /unsupported image format/);
    const vdi = join(dir, 'disk.vdi');
    await run('qemu-img', ['create', '-q', '-f', 'vdi', vdi, '16M']);
    const err2 = await importImage({ source: { file: { path: vdi } }, storeDir: store, tempName: 'e' }).catch((e) => e);
    assert.equal(err2.reason, 'UnsupportedFormat');
    assert.match(err2.message, /"vdi"/);
    const raw = Buffer.alloc(1024 * 1024);
    await writeFile(join(dir, 'blank.raw'), raw);
    const ok = await importImage({ source: { file: { path: join(dir, 'blank.raw') } }, storeDir: store, format: 'raw', tempName: 'f' });
    assert.equal(ok.format, 'raw');
  });

  it('reports an unreachable source as SourceUnavailable', async () => {
    const e1 = await importImage({ source: { http: { url: `${base}/missing` } }, storeDir: store, tempName: 'g' }).catch((e) => e);
    assert.equal(e1.reason, 'SourceUnavailable');
    assert.match(e1.message, /HTTP 404/);
    const e2 = await importImage({ source: { file: { path: join(dir, 'nope') } }, storeDir: store, tempName: 'h' }).catch((e) => e);
    assert.equal(e2.reason, 'SourceUnavailable');
  });
});
