// A PATCH that loses a race with another writer (a controller writing status between the
// patch's read and its write, as kubectl label met in the tenancy suite) is re-applied to the
// fresh object, as kube-apiserver does; one that names a resourceVersion is a precondition and
// gets the 409. Real etcd and the real ResourceStore; the race is made with the admission hook
// that runs between the read and the write.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { KObject, ResourceInfo } from '../api/types.js';
import { startTestResourceStore } from '../testing/resource-store.js';
import type { TestResourceStore } from '../testing/resource-store.js';
import { patchNamesResourceVersion } from './resource-store.js';

describe('patch against a concurrent writer', () => {
  let env: TestResourceStore;
  let flavors: ResourceInfo;
  before(async () => {
    env = await startTestResourceStore();
    flavors = env.registry.lookup('kova.dev', 'v1alpha1', 'flavors')!;
  });
  after(() => env?.stop());

  /** An admitResult hook that, the first time, writes the object behind the patch's back. */
  const racer = (name: string) => {
    let raced = 0;
    return {
      get raced() {
        return raced;
      },
      admitResult: async () => {
        if (raced++ > 0) return;
        const cur = await env.resources.get(flavors, undefined, name);
        await env.resources.update(flavors, undefined, name, { ...cur, metadata: { ...cur.metadata, annotations: { ...cur.metadata.annotations, other: 'writer' } } } as KObject);
      },
    };
  };

  it('re-applies a merge or JSON patch without a resourceVersion to the fresh object', async () => {
    for (const [i, type, patch] of [[1, 'merge', { metadata: { labels: { tier: 'gold' } } }], [2, 'json', [{ op: 'add', path: '/metadata/labels', value: { tier: 'gold' } }]]] as const) {
      const name = `race-${i}`;
      await env.resources.create(flavors, undefined, { apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: { name }, spec: { vcpus: 1, memory: '64Mi', disk: '1Gi' } } as KObject);
      const r = racer(name);
      const out = await env.resources.patch(flavors, undefined, name, type, patch, { admitResult: r.admitResult });
      assert.equal(r.raced, 2, `${type}: one lost race, one retry`);
      assert.equal(out.metadata.labels?.tier, 'gold');
      assert.equal(out.metadata.annotations?.other, 'writer', `${type}: the other writer's change is kept`);
    }
  });

  it('answers 409 when the patch names the resourceVersion it was made against', async () => {
    const name = 'race-3';
    const made = await env.resources.create(flavors, undefined, { apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: { name }, spec: { vcpus: 1, memory: '64Mi', disk: '1Gi' } } as KObject);
    const r = racer(name);
    await assert.rejects(
      env.resources.patch(flavors, undefined, name, 'merge', { metadata: { resourceVersion: made.metadata.resourceVersion, labels: { tier: 'gold' } } }, { admitResult: r.admitResult }),
      (e: { code?: number }) => e.code === 409,
    );
    assert.equal(r.raced, 1, 'not retried');
  });

  it('tells a precondition from a patch that leaves the resourceVersion alone', () => {
    assert.equal(patchNamesResourceVersion('merge', { metadata: { labels: {} } }), false);
    assert.equal(patchNamesResourceVersion('merge', { metadata: { resourceVersion: '12' } }), true);
    assert.equal(patchNamesResourceVersion('merge', { metadata: { resourceVersion: null } }), false);
    assert.equal(patchNamesResourceVersion('strategic', { metadata: { resourceVersion: '12' } }), true);
    assert.equal(patchNamesResourceVersion('json', [{ op: 'test', path: '/metadata/resourceVersion', value: '12' }]), true);
    assert.equal(patchNamesResourceVersion('json', [{ op: 'remove', path: '/metadata/resourceVersion' }]), false);
    assert.equal(patchNamesResourceVersion('json', [{ op: 'add', path: '/metadata/labels', value: {} }]), false);
    assert.equal(patchNamesResourceVersion('merge', 'not an object'), false);
  });
});
