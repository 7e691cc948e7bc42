// The garbage collector against a real etcd: it keeps only objects that can matter and drops
// other changes before decoding them, so these cases check it still sees every change that
// turns an object into one that matters, or back.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Registry } from '../api/registry.js';
import type { KObject, ResourceInfo } from '../api/types.js';
import { Validator } from '../api/validation.js';
import { Store } from '../store/store.js';
import { startTestEtcd, waitFor, type TestEtcd } from '../testing/etcd.js';
import { GarbageCollector } from './garbage-collector.js';
import { ResourceStore } from './resource-store.js';
import { ApiError } from './status.js';

let env: TestEtcd;
let store: Store;
let rs: ResourceStore;
let gc: GarbageCollector;
let flavors: ResourceInfo;

before(async () => {
  env = await startTestEtcd();
  store = Store.connect(env.endpoints);
  const registry = await Registry.load();
  rs = new ResourceStore(store, registry, new Validator(registry));
  flavors = registry.lookup('kova.dev', 'v1alpha1', 'flavors')!;
  gc = new GarbageCollector(rs);
  await gc.start();
});

after(async () => {
  await gc?.stop();
  await store?.close();
  await env?.cleanup();
});

const flavor = (name: string, owner?: KObject): KObject => ({
  apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor',
  metadata: { name, ...(owner ? { ownerReferences: [ref(owner)] } : {}) },
  spec: { vcpus: 1, memory: '1Gi', disk: '1Gi' },
});
const ref = (o: KObject) => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', name: o.metadata.name!, uid: o.metadata.uid! });
const exists = (name: string) => rs.get(flavors, undefined, name).then(() => true, (e) => {
  if (e instanceof ApiError && e.code === 404) return false;
  throw e;
});

describe('garbage collector', () => {
  it('collects a dependent whose owner reference was added after it was created', async () => {
    const owner = await rs.create(flavors, undefined, flavor('owner-late'));
    const dep = await rs.create(flavors, undefined, flavor('dep-late'));
    await rs.update(flavors, undefined, 'dep-late', { ...dep, metadata: { ...dep.metadata, ownerReferences: [ref(owner)] } });
    await rs.delete(flavors, undefined, 'owner-late');
    await waitFor(async () => !(await exists('dep-late')), 'the dependent to be collected');
  });

  it('keeps a dependent whose owner reference was removed before the owner went', async () => {
    const owner = await rs.create(flavors, undefined, flavor('owner-gone'));
    const dep = await rs.create(flavors, undefined, flavor('dep-freed', owner));
    const { ownerReferences: _, ...meta } = dep.metadata;
    await rs.update(flavors, undefined, 'dep-freed', { ...dep, metadata: meta });
    // A control pair: proves the collector has acted on the owner's deletion before the check.
    const control = await rs.create(flavors, undefined, flavor('dep-control', owner));
    assert.ok(control.metadata.ownerReferences);
    await rs.delete(flavors, undefined, 'owner-gone');
    await waitFor(async () => !(await exists('dep-control')), 'the control dependent to be collected');
    assert.equal(await exists('dep-freed'), true, 'a stale owner reference must not get the freed object deleted');
  });
});
