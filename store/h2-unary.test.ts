// The hand-framed HTTP/2 client against another implementation: node:http2's server (nghttp2),
// which Huffman-codes and indexes the headers it sends, enforces flow control, and resets and
// closes streams as a real server does. etcd itself is the peer in etcd-kv.test.ts.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { H2Connection, TransportError } from './h2-unary.js';
import type { UnaryReply } from './h2-unary.js';
import { encodeHeaders, HpackDecoder, HpackError } from './hpack.js';

let server: http2.Http2Server;
let url: URL;
let served = 0;
const sessions = new Set<http2.ServerHttp2Session>();

before(async () => {
  server = http2.createServer();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined); // the streams this server resets itself
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const body = Buffer.concat(chunks);
      const path = headers[':path'];
      if (path === '/echo') {
        // A long message different every call: nghttp2 indexes it, so the dynamic table churns.
        const n = served++;
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': encodeURIComponent(`call ${n} done ✓ ${'x'.repeat(n % 300)}`) }));
        stream.end(body);
      } else if (path === '/big') {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(Buffer.alloc(300_000, 7));
      } else if (path === '/fail') {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5', 'grpc-message': encodeURIComponent('key not found: /a b') }, { endStream: true });
      } else if (path === '/reset') {
        stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      } else if (path === '/no-status') {
        stream.respond({ ':status': 503 }, { endStream: true });
      }
      // '/hang' never answers.
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});

after(async () => {
  for (const s of sessions) s.destroy();
  await new Promise((r) => server.close(r));
});

function call(conn: H2Connection, path: string, body: Buffer): Promise<UnaryReply> {
  return new Promise((resolve, reject) => conn.call(path, body, (err, reply) => (err ? reject(err) : resolve(reply!))));
}

describe('H2Connection', () => {
  it('decodes header blocks as nghttp2 encodes them, across table churn', async () => {
    const conn = new H2Connection(url, () => undefined);
    const first = served;
    const seen = new Set<number>();
    for (let batch = 0; batch < 6; batch++) {
      const replies = await Promise.all(Array.from({ length: 100 }, (_, i) => call(conn, '/echo', Buffer.from(`req ${batch}.${i}`))));
      for (let i = 0; i < replies.length; i++) {
        const r = replies[i]!;
        assert.equal(r.code, 0);
        assert.equal(r.body.toString(), `req ${batch}.${i}`);
        const n = Number(/^call (\d+) done/.exec(r.message)?.[1]);
        assert.equal(r.message, `call ${n} done ✓ ${'x'.repeat(n % 300)}`);
        seen.add(n);
      }
    }
    assert.equal(seen.size, 600);
    assert.equal(Math.min(...seen), first);
    conn.destroy();
  });

  it('sends a body larger than the windows and receives one larger than a frame', async () => {
    const conn = new H2Connection(url, () => undefined);
    const big = Buffer.alloc(200_000);
    for (let i = 0; i < big.length; i++) big[i] = i % 251;
    const [echo, down] = await Promise.all([call(conn, '/echo', big), call(conn, '/big', Buffer.from('x'))]);
    assert.ok(echo.body.equals(big));
    assert.equal(down.body.length, 300_000);
    assert.ok(down.body.every((b) => b === 7));
    conn.destroy();
  });

  it('reports a trailers-only status, a reset stream and a reply without a gRPC status', async () => {
    const conn = new H2Connection(url, () => undefined);
    const failed = await call(conn, '/fail', Buffer.from('x'));
    assert.equal(failed.code, 5);
    assert.equal(failed.message, 'key not found: /a b');
    await assert.rejects(call(conn, '/reset', Buffer.from('x')), (e) => e instanceof TransportError && /reset the stream \(HTTP\/2 error 2\)/.test(e.message));
    await assert.rejects(call(conn, '/no-status', Buffer.from('x')), (e) => e instanceof TransportError && /without a gRPC status \(HTTP 503\)/.test(e.message));
    // The connection is still good.
    assert.equal((await call(conn, '/echo', Buffer.from('after'))).body.toString(), 'after');
    conn.destroy();
  });

  it('cancels a call, fails calls in flight when the connection goes, and stops being usable on GOAWAY', async () => {
    let gone = 0;
    const conn = new H2Connection(url, () => gone++);
    let hungDone = false;
    const id = conn.call('/hang', Buffer.from('x'), () => (hungDone = true));
    conn.cancel(id);
    assert.equal((await call(conn, '/echo', Buffer.from('still'))).body.toString(), 'still');
    assert.equal(hungDone, false);

    const inFlight = call(conn, '/hang', Buffer.from('x'));
    for (const s of sessions) s.goaway(http2.constants.NGHTTP2_NO_ERROR, 0);
    await assert.rejects(inFlight, (e) => e instanceof TransportError && /GOAWAY/.test(e.message));
    assert.equal(conn.usable, false);
    assert.ok(gone >= 1);
    assert.throws(() => conn.call('/echo', Buffer.from('x'), () => undefined), TransportError);
    conn.destroy();
  });

  // A protocol bug tends to hang a call rather than fail it: this case is bounded.
  it('waits for the server\'s concurrent stream limit instead of overrunning it', { timeout: 10_000 }, async () => {
    const limited = http2.createServer({ settings: { maxConcurrentStreams: 2 } });
    let open = 0;
    let most = 0;
    limited.on('stream', (stream) => {
      open++;
      most = Math.max(most, open);
      stream.on('close', () => open--);
      stream.resume();
      stream.on('end', () => setTimeout(() => {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end('ok');
      }, 5));
    });
    await new Promise<void>((r) => limited.listen(0, '127.0.0.1', r));
    const conn = new H2Connection(new URL(`http://127.0.0.1:${(limited.address() as AddressInfo).port}`), () => undefined);
    const sessions = new Set<http2.ServerHttp2Session>();
    limited.on('session', (s) => sessions.add(s));
    try {
      await call(conn, '/first', Buffer.from('x')); // the server's SETTINGS are in by now
      const replies = await Promise.all(Array.from({ length: 10 }, () => call(conn, '/x', Buffer.from('x'))));
      assert.deepEqual(replies.map((r) => r.body.toString()), Array(10).fill('ok'));
      assert.equal(most, 2);
    } finally {
      conn.destroy();
      for (const s of sessions) s.destroy();
      await new Promise((r) => limited.close(r));
    }
  });

  it('an idle connection does not keep its process alive', async () => {
    const modURL = new URL('./h2-unary.js', import.meta.url).href;
    const child = spawn(process.execPath, ['--input-type=module', '-e', `
      import { H2Connection } from ${JSON.stringify(modURL)};
      const conn = new H2Connection(new URL(${JSON.stringify(url.href)}), () => {});
      conn.call('/echo', Buffer.from('hi'), (err, r) => console.log(err ? 'error ' + err.message : 'reply ' + r.body));
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    assert.equal(code, 0);
    assert.equal(out.trim(), 'reply hi');
  });
});

describe('HPACK', () => {
  it('decodes the RFC 7541 C.4 requests (Huffman, dynamic table across blocks)', () => {
    const d = new HpackDecoder();
    const hex = (s: string) => Buffer.from(s.replace(/\s/g, ''), 'hex');
    assert.deepEqual(d.decode(hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff')), [
      [':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'],
    ]);
    assert.deepEqual(d.decode(hex('8286 84be 5886 a8eb 1064 9cbf')), [
      [':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'], ['cache-control', 'no-cache'],
    ]);
    assert.deepEqual(d.decode(hex('8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf')), [
      [':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value'],
    ]);
  });

  it('round-trips literals it encodes and rejects malformed blocks', () => {
    const block = encodeHeaders([[4, '/etcdserverpb.KV/Txn'], ['te', 'trailers'], ['x-long', 'v'.repeat(300)]]);
    assert.deepEqual(new HpackDecoder().decode(block), [[':path', '/etcdserverpb.KV/Txn'], ['te', 'trailers'], ['x-long', 'v'.repeat(300)]]);
    assert.throws(() => new HpackDecoder().decode(Buffer.from([0xbe])), HpackError); // empty dynamic table
    assert.throws(() => new HpackDecoder().decode(Buffer.from([0x04, 0x85, 0xff])), HpackError); // truncated string
    assert.throws(() => new HpackDecoder().decode(Buffer.from([0x04, 0x81, 0x00])), HpackError); // bad Huffman padding
  });
});
