// The watch protocol byte for byte as client-go and client-node rely on it: resourceVersion
// semantics, bookmarks (periodic and initial-events-end), timeoutSeconds, 410 Expired as an
// ERROR event for compacted versions, and selector transitions reported as ADDED/DELETED.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startControlPlane } from '../cli/control-plane.js';
import type { ControlPlane } from '../cli/control-plane.js';
import { apiClient } from './api-client.js';
import type { Obj } from './api-client.js';
import { eventually } from './harness.js';

const NS = '/apis/kova.dev/v1alpha1/namespaces/w/instances';

describe('watch protocol', () => {
  let cp: ControlPlane;
  let dir: string;
  let api: Awaited<ReturnType<typeof apiClient>>;
  const create = async (name: string, labels: Record<string, string> = {}) => {
    const r = await api('POST', NS, { apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', metadata: { name, labels }, spec: { flavor: 'f', image: 'i' } });
    assert.equal(r.code, 201, JSON.stringify(r.body));
    return r.body;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kova-watch-'));
    cp = await startControlPlane({ dataDir: dir, listen: '127.0.0.1:0', bookmarkIntervalMs: 300 });
    api = await apiClient(cp.kubeconfig);
    await api('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'w' } });
  });
  after(async () => {
    await cp?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('streams changes after a resourceVersion, with DELETED carrying the deletion revision', async () => {
    const a = await create('a');
    const w = api.watch(`${NS}?watch=true&resourceVersion=${a.metadata.resourceVersion}`);
    const b = await create('b');
    const del = await api('DELETE', `${NS}/a`);
    assert.equal(del.code, 200);
    await eventually(() => w.events.length >= 2);
    w.close();
    assert.deepEqual(w.events.map((e) => [e.type, e.object.metadata.name]), [['ADDED', 'b'], ['DELETED', 'a']]);
    assert.equal(w.events[0].object.metadata.resourceVersion, b.metadata.resourceVersion);
    assert.ok(Number(w.events[1].object.metadata.resourceVersion) > Number(b.metadata.resourceVersion), 'deletion revision is newer');
  });

  it('sends periodic bookmarks and the initial-events-end bookmark', async () => {
    await create('c');
    const w = api.watch(`${NS}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan`);
    await eventually(() => w.events.filter((e) => e.type === 'BOOKMARK').length >= 2, 5000, 'two bookmarks');
    w.close();
    const firstBookmark = w.events.findIndex((e) => e.type === 'BOOKMARK');
    const initial = w.events.slice(0, firstBookmark);
    assert.ok(initial.every((e) => e.type === 'ADDED'));
    assert.deepEqual(initial.map((e) => e.object.metadata.name).sort(), ['b', 'c']);
    const bm = w.events[firstBookmark].object;
    assert.equal(bm.kind, 'Instance');
    assert.equal(bm.metadata.annotations['k8s.io/initial-events-end'], 'true');
    assert.ok(Number(bm.metadata.resourceVersion) > 0);
    const periodic = w.events.slice(firstBookmark + 1).find((e) => e.type === 'BOOKMARK');
    assert.ok(periodic, 'a periodic bookmark follows');
    assert.equal(periodic.object.metadata.annotations, undefined);
  });

  it('ends the stream after timeoutSeconds', async () => {
    const t0 = Date.now();
    const w = api.watch(`${NS}?watch=true&timeoutSeconds=1`);
    await w.ended;
    const took = Date.now() - t0;
    assert.ok(took >= 900 && took < 5000, `closed after ${took} ms`);
  });

  it('answers a compacted resourceVersion with a 410 Expired ERROR event', async () => {
    const old = (await create('d')).metadata.resourceVersion;
    await create('e');
    await create('e2'); // the watch would start at e's revision: compact past it
    await cp.resources.store.compact(await cp.resources.store.currentRevision());
    const w = api.watch(`${NS}?watch=true&resourceVersion=${old}`);
    await w.ended;
    assert.equal(w.status(), 200);
    assert.equal(w.events.length, 1, JSON.stringify(w.events));
    const e = w.events[0];
    assert.equal(e.type, 'ERROR');
    assert.equal(e.object.kind, 'Status');
    assert.equal(e.object.code, 410);
    assert.equal(e.object.reason, 'Expired');
  });

  it('reports objects entering and leaving a label selector as ADDED and DELETED', async () => {
    const rv = (await api('GET', `${NS}?limit=1`)).body.metadata.resourceVersion;
    const w = api.watch(`${NS}?watch=true&labelSelector=tier%3Dweb&resourceVersion=${rv}`);
    await create('f', { tier: 'db' });
    const patch = (labels: Obj) => api('PATCH', `${NS}/f`, { metadata: { labels } }, 'application/merge-patch+json');
    assert.equal((await patch({ tier: 'web' })).code, 200);
    assert.equal((await patch({ tier: 'web', x: '1' })).code, 200);
    assert.equal((await patch({ tier: 'db' })).code, 200);
    await eventually(() => w.events.length >= 3);
    await new Promise((r) => setTimeout(r, 200));
    w.close();
    assert.deepEqual(w.events.map((e) => e.type), ['ADDED', 'MODIFIED', 'DELETED']);
  });
});
