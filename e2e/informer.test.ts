// @kubernetes/client-node informers against kova: list + watch, updates and deletes, and a
// relist after the watch's resourceVersion was compacted away (410 Expired).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { startControlPlane } from '../cli/control-plane.js';
import type { ControlPlane } from '../cli/control-plane.js';
import { eventually } from './harness.js';

const GROUP = { group: 'kova.dev', version: 'v1alpha1' };

describe('client-node informer', () => {
  let cp: ControlPlane;
  let dir: string;
  let kc: k8s.KubeConfig;
  let api: k8s.CustomObjectsApi;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kova-informer-'));
    cp = await startControlPlane({ dataDir: dir, listen: '127.0.0.1:0' });
    kc = new k8s.KubeConfig();
    kc.loadFromFile(cp.kubeconfig);
    api = kc.makeApiClient(k8s.CustomObjectsApi);
    await kc.makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: 'inf' } } });
  });
  after(async () => {
    await cp?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const flavor = (name: string, vcpus = 1) => ({
    apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: { name }, spec: { vcpus, memory: '1Gi', disk: '1Gi' },
  });
  const inst = (name: string) => ({
    apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', metadata: { name, namespace: 'inf' }, spec: { flavor: 'f1', image: 'tiny' },
  });

  it('lists, watches, and relists after 410 Expired', async () => {
    await api.createClusterCustomObject({ ...GROUP, plural: 'flavors', body: flavor('f1') });
    await api.createNamespacedCustomObject({ ...GROUP, namespace: 'inf', plural: 'instances', body: inst('a') });
    const path = '/apis/kova.dev/v1alpha1/namespaces/inf/instances';
    const informer = k8s.makeInformer<k8s.KubernetesObject>(kc, path, () =>
      api.listNamespacedCustomObject({ ...GROUP, namespace: 'inf', plural: 'instances' }) as never);
    const events: string[] = [];
    const errors: unknown[] = [];
    informer.on('add', (o) => events.push(`add ${o.metadata?.name}`));
    informer.on('update', (o) => events.push(`update ${o.metadata?.name}`));
    informer.on('delete', (o) => events.push(`delete ${o.metadata?.name}`));
    informer.on('error', (e) => errors.push(e));
    await informer.start();
    try {
      await eventually(() => informer.list().length === 1, 10_000, 'initial list');

      await api.createNamespacedCustomObject({ ...GROUP, namespace: 'inf', plural: 'instances', body: inst('b') });
      await api.patchNamespacedCustomObject({ ...GROUP, namespace: 'inf', plural: 'instances', name: 'a', body: { metadata: { labels: { x: 'y' } } } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
      await eventually(() => events.includes('add b') && events.includes('update a'), 10_000, 'watch events for b and a');
      await api.deleteNamespacedCustomObject({ ...GROUP, namespace: 'inf', plural: 'instances', name: 'b' });
      await eventually(() => events.includes('delete b'), 10_000, 'delete event');

      // Move the global revision on with other kinds, compact past the informer's last RV, then
      // close watches as a server timeout would: the informer re-watches, gets 410 and relists.
      const listsBefore = cp.apiserver!.stats.list;
      for (let i = 0; i < 5; i++) await api.createClusterCustomObject({ ...GROUP, plural: 'flavors', body: flavor(`churn-${i}`) });
      const rev = await cp.resources.store.currentRevision();
      await cp.resources.store.compact(rev);
      cp.apiserver!.closeWatches();
      await eventually(() => cp.apiserver!.stats.watchExpired >= 1, 10_000, 'a watch answered with 410 Expired');
      await eventually(() => cp.apiserver!.stats.list > listsBefore, 10_000, 'informer relist');

      // The informer keeps working after the relist.
      await api.createNamespacedCustomObject({ ...GROUP, namespace: 'inf', plural: 'instances', body: inst('c') });
      await eventually(() => informer.list().map((o) => o.metadata?.name).sort().join(',') === 'a,c', 10_000, 'cache a,c after relist');
      assert.deepEqual(errors, []);
    } finally {
      await informer.stop();
    }
  });
});
