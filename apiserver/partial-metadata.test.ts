// Metadata-only answers (PartialObjectMetadata / PartialObjectMetadataList) as kube-apiserver
// gives them to client-go's metadata client: the shapes, the 406s for a form that does not fit
// the request, and watches whose events carry metadata only.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { defaultCrdDir, Registry } from '../api/registry.js';
import { Validator } from '../api/validation.js';
import { Store } from '../store/store.js';
import { startTestEtcd, waitFor } from '../testing/etcd.js';
import type { TestEtcd } from '../testing/etcd.js';
import { metadataTarget } from './partial-metadata.js';
import { ResourceStore } from './resource-store.js';
import { ApiServer } from './server.js';

const META = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1';
const META_LIST = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1';
const FLAVORS = '/apis/kova.dev/v1alpha1/flavors';

let etcd: TestEtcd;
let store: Store;
let server: ApiServer;
let base: string;

before(async () => {
  etcd = await startTestEtcd();
  store = Store.connect(etcd.endpoints);
  const registry = await Registry.load(defaultCrdDir());
  const resources = new ResourceStore(store, registry, new Validator(registry));
  await resources.namespaces.start();
  server = new ApiServer({ registry, resources });
  base = `http://127.0.0.1:${(await server.listen('127.0.0.1', 0)).port}`;
  for (const name of ['pm-a', 'pm-b']) {
    const r = await fetch(base + FLAVORS, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: { name, labels: { t: 'pm' } }, spec: { vcpus: 1, memory: '1Gi', disk: '1Gi' } }) });
    assert.equal(r.status, 201);
  }
});

after(async () => {
  await server?.close();
  await server?.resources.namespaces.stop();
  await store?.close();
  await etcd?.cleanup();
});

const get = async (path: string, accept: string) => {
  const r = await fetch(base + path, { headers: { accept } });
  return { status: r.status, body: await r.json() as Record<string, any> };
};

describe('PartialObjectMetadata', () => {
  it('lists as PartialObjectMetadataList: list metadata kept, each item its ObjectMeta only', async () => {
    const { status, body } = await get(`${FLAVORS}?labelSelector=t%3Dpm&limit=1`, META_LIST);
    assert.equal(status, 200);
    assert.equal(body.kind, 'PartialObjectMetadataList');
    assert.equal(body.apiVersion, 'meta.k8s.io/v1');
    assert.ok(body.metadata.resourceVersion);
    assert.ok(body.metadata.continue, 'paging works as for full lists');
    assert.equal(body.items.length, 1);
    const item = body.items[0];
    assert.deepEqual(Object.keys(item).sort(), ['apiVersion', 'kind', 'metadata']);
    assert.equal(item.kind, 'PartialObjectMetadata');
    assert.equal(item.apiVersion, 'meta.k8s.io/v1');
    assert.equal(item.metadata.name, 'pm-a');
    assert.ok(item.metadata.uid && item.metadata.resourceVersion && item.metadata.creationTimestamp);
  });

  it('gets one object as PartialObjectMetadata, in the version asked for', async () => {
    const v1 = await get(`${FLAVORS}/pm-a`, META);
    assert.equal(v1.status, 200);
    assert.deepEqual({ kind: v1.body.kind, apiVersion: v1.body.apiVersion, name: v1.body.metadata.name, spec: v1.body.spec }, { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', name: 'pm-a', spec: undefined });
    const beta = await get(`${FLAVORS}/pm-a`, 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1');
    assert.equal(beta.body.apiVersion, 'meta.k8s.io/v1beta1');
  });

  it('answers 406 when the form does not fit the request, and falls back to a later plain range', async () => {
    const single = await get(`${FLAVORS}/pm-a`, META_LIST);
    assert.equal(single.status, 406);
    assert.match(single.body.message, /you requested PartialObjectMetadataList, but the requested object is not a list/);
    const list = await get(FLAVORS, META);
    assert.equal(list.status, 406);
    assert.match(list.body.message, /you requested PartialObjectMetadata, but the requested object is a list/);
    const badVersion = await get(FLAVORS, 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v2');
    assert.equal(badVersion.status, 406);
    assert.equal(badVersion.body.reason, 'NotAcceptable');
    const fallback = await get(`${FLAVORS}/pm-a`, 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v2, application/json');
    assert.equal(fallback.status, 200);
    assert.equal(fallback.body.kind, 'Flavor');
    assert.equal(metadataTarget('application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,' + META)?.kind, 'PartialObjectMetadata');
  });

  it('a delete answers with the metadata of the deleted object', async () => {
    const r = await fetch(`${base}${FLAVORS}/pm-b`, { method: 'DELETE', headers: { accept: META } });
    assert.equal(r.status, 200);
    const body = await r.json() as Record<string, any>;
    assert.equal(body.kind, 'PartialObjectMetadata');
    assert.equal(body.metadata.name, 'pm-b');
  });

  it('watches send PartialObjectMetadata events', async () => {
    const ac = new AbortController();
    const r = await fetch(`${base}${FLAVORS}?watch=true`, { headers: { accept: META }, signal: ac.signal });
    assert.equal(r.status, 200);
    const events: Array<{ type: string; object: Record<string, any> }> = [];
    const reading = (async () => {
      let buf = '';
      try {
        for await (const chunk of r.body!) {
          buf += Buffer.from(chunk).toString('utf8');
          for (let i; (i = buf.indexOf('\n')) >= 0; buf = buf.slice(i + 1)) events.push(JSON.parse(buf.slice(0, i)));
        }
      } catch {
        // aborted
      }
    })();
    await waitFor(() => events.some((e) => e.object.metadata?.name === 'pm-a'), 'the initial ADDED event');
    const patched = await fetch(`${base}${FLAVORS}/pm-a`, { method: 'PATCH', headers: { 'content-type': 'application/merge-patch+json' }, body: JSON.stringify({ metadata: { labels: { changed: 'yes' } } }) });
    assert.equal(patched.status, 200);
    await waitFor(() => events.some((e) => e.type === 'MODIFIED'), 'the MODIFIED event');
    ac.abort();
    await reading;
    for (const e of events) {
      assert.equal(e.object.kind, 'PartialObjectMetadata');
      assert.equal(e.object.apiVersion, 'meta.k8s.io/v1');
      assert.equal(e.object.spec, undefined);
    }
    assert.equal(events.find((e) => e.type === 'MODIFIED')!.object.metadata.labels.changed, 'yes');
  });
});
