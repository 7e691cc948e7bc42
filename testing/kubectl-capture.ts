// A throwaway HTTP server that plays just enough of an API server for the real kubectl to send
// one write: discovery of the core group's given resources, then every POST is captured and
// echoed back (decoded from protobuf, the way kubectl's typed generators send bodies).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { decodeK8sProtobuf, isK8sProtobufContentType } from '../apiserver/protobuf.js';

const run = promisify(execFile);
export const KUBECTL = '/usr/bin/kubectl';

export interface CapturedPost {
  method: string;
  url: string;
  contentType: string | undefined;
  body: Buffer;
}

/** A core/v1 resource as discovery lists it. */
export interface CoreResource {
  name: string;
  kind: string;
  namespaced: boolean;
  shortNames?: string[];
}

export interface KubectlCapture {
  /** A scratch directory (kubectl's HOME and cache), removed by stop(). */
  dir: string;
  /** Runs kubectl against the server; asserts it POSTed exactly once, in protobuf, and returns that POST. */
  kubectl(args: string[]): Promise<{ stdout: string; post: CapturedPost }>;
  stop(): Promise<void>;
}

export async function startKubectlCapture(resources: CoreResource[]): Promise<KubectlCapture> {
  const dir = await mkdtemp(join(tmpdir(), 'kova-kubectl-capture-'));
  const posts: CapturedPost[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const json = (status: number, obj: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(obj));
      };
      const path = (req.url ?? '').split('?')[0];
      if (req.method === 'GET') {
        if (path === '/version') return json(200, { major: '1', minor: '32', gitVersion: 'v1.32.0' });
        if (path === '/api') return json(200, { kind: 'APIVersions', versions: ['v1'] });
        if (path === '/apis') return json(200, { kind: 'APIGroupList', apiVersion: 'v1', groups: [] });
        if (path === '/api/v1') {
          const list = resources.map((r) => ({ singularName: '', verbs: ['create', 'get', 'list'], ...r }));
          return json(200, { kind: 'APIResourceList', groupVersion: 'v1', resources: list });
        }
        return json(404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 });
      }
      posts.push({ method: req.method ?? '', url: req.url ?? '', contentType: req.headers['content-type'], body });
      try {
        const obj = isK8sProtobufContentType(req.headers['content-type']) ? decodeK8sProtobuf(body).object : JSON.parse(body.toString('utf8'));
        json(201, obj);
      } catch (e) {
        json(415, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'UnsupportedMediaType', message: String(e), code: 415 });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    dir,
    async kubectl(args) {
      const before = posts.length;
      const { stdout } = await run(KUBECTL, [
        '--server', `http://127.0.0.1:${port}`, '--insecure-skip-tls-verify', '--cache-dir', join(dir, 'cache'), ...args,
      ], { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir, KUBECONFIG: join(dir, 'no-kubeconfig') }, timeout: 30_000 });
      assert.equal(posts.length, before + 1, `kubectl ${args.join(' ')} should POST exactly once`);
      const post = posts[posts.length - 1]!;
      assert.ok(isK8sProtobufContentType(post.contentType), `kubectl sent ${post.contentType}, expected protobuf`);
      assert.deepEqual([...post.body.subarray(0, 4)], [0x6b, 0x38, 0x73, 0x00]);
      return { stdout, post };
    },
    async stop() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
