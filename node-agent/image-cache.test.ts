// ImageCache with real files and a real HTTP server: filled once per image, by a hardlink
// from the image store on the same host, or by downloading again with the digest checked.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ImageCache, imageReadiness } from './image-cache.js';
import type { Image } from '../api/kinds/index.js';
import { resolveImage } from '../api/image-visibility.js';

const run = promisify(execFile);

describe('ImageCache', () => {
  let dir: string;
  let bytes: Buffer;
  let digest: string;
  let server: Server;
  let url: string;
  let served = 0;
  let serve = (): Buffer => bytes;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kova-cache-'));
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', join(dir, 'img.qcow2'), '32M']);
    bytes = await readFile(join(dir, 'img.qcow2'));
    digest = createHash('sha256').update(bytes).digest('hex');
    server = createServer((_req, res) => {
      served++;
      res.end(serve());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}/img.qcow2`;
  });
  after(async () => {
    server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('hardlinks from the image store once, then hits; concurrent callers share the fill', async () => {
    const store = join(dir, 'store');
    await mkdir(store);
    await writeFile(join(store, `${digest}.qcow2`), bytes);
    const cache = new ImageCache({ cacheDir: join(dir, 'c1'), storeDir: store });
    const ref = { name: 'ns/img', sha256: digest, format: 'qcow2' as const, source: { http: { url } }, virtualSize: 32 << 20 };
    const [a, b] = await Promise.all([cache.ensure(ref), cache.ensure(ref)]);
    assert.equal(a, b, 'one fill for both callers');
    assert.equal(a.how, 'linked');
    assert.equal((await stat(a.path)).ino, (await stat(join(store, `${digest}.qcow2`))).ino);
    assert.equal((await cache.ensure(ref)).how, 'cached');
    assert.deepEqual(cache.describe(a.path), { format: 'qcow2', virtualSize: 32 << 20 });
    assert.equal(cache.describe('/elsewhere/x.qcow2'), undefined);
    assert.equal(served, 0, 'nothing downloaded');
  });

  it('downloads again when the store is not on this host, and refuses other bytes', async () => {
    const cache = new ImageCache({ cacheDir: join(dir, 'c2'), storeDir: join(dir, 'no-store') });
    const ref = { name: 'ns/img', sha256: digest, format: 'qcow2' as const, source: { http: { url } } };
    const got = await cache.ensure(ref);
    assert.equal(got.how, 'imported');
    assert.deepEqual(await readFile(got.path), bytes);
    assert.equal(served, 1);

    const other = new ImageCache({ cacheDir: join(dir, 'c3') });
    serve = () => Buffer.concat([bytes, Buffer.alloc(512)]);
    await assert.rejects(other.ensure(ref), /checksum mismatch/);
    await assert.rejects(stat(other.pathOf(digest, 'qcow2')), /ENOENT/);
    serve = () => bytes;
  });

  it('imageReadiness says why an instance waits', () => {
    const missing = resolveImage('ns', 'img', { get: () => undefined, list: () => [] });
    assert.deepEqual(imageReadiness(missing), { waitReason: 'ImageNotFound', message: 'image "img" not found in namespace ns, and no Public image or image Shared with ns has that name' });
    assert.deepEqual(imageReadiness({ reason: 'ImageAmbiguous', message: 'm' }), { waitReason: 'ImageAmbiguous', message: 'm' });
    const importing: Image = { apiVersion: 'kova.dev/v1alpha1', kind: 'Image', metadata: { namespace: 'ns', name: 'img' }, spec: { source: { http: { url } } }, status: { phase: 'Failed', conditions: [{ type: 'Ready', status: 'False', message: 'checksum mismatch' }] } };
    assert.deepEqual(imageReadiness({ image: importing, access: 'Own' }), { waitReason: 'ImageNotReady', message: 'image ns/img is Failed, not Ready: checksum mismatch' });
    const ready: Image = { apiVersion: 'kova.dev/v1alpha1', kind: 'Image', metadata: { namespace: 'pub', name: 'img' }, spec: { source: { http: { url } } }, status: { phase: 'Ready', sha256: digest, format: 'qcow2', virtualSize: 5 } };
    assert.deepEqual(imageReadiness({ image: ready, access: 'Public' }), { ref: { name: 'pub/img', sha256: digest, format: 'qcow2', source: { http: { url } }, virtualSize: 5 } });
  });
});
