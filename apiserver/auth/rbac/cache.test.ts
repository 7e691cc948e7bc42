// The RBAC cache against a real etcd: bindings and roles written to the store take effect
// through the watch within a second, deletions stop allowing, a watch killed by compaction is
// replaced by a relist, and a few hundred bindings keep a decision a lookup.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { KObject } from '../../../api/types.js';
import { EtcdClient } from '../../../store/etcd/client.js';
import { Store, type ListOptions, type ListResult } from '../../../store/store.js';
import { startTestEtcd, waitFor, type TestEtcd } from '../../../testing/etcd.js';
import { storageKey } from '../../keys.js';
import type { RequestAttributes } from '../types.js';
import { NOT_READY_REASON, RbacAuthorizer } from './authorizer.js';
import { RBAC_PREFIX, RbacCache } from './cache.js';

const G = 'rbac.authorization.k8s.io';
const key = (plural: string, ns: string | undefined, name: string) => storageKey({ group: G, plural, namespaced: !!ns }, ns, name);
const clusterRole = (name: string, rules: unknown[]): KObject => ({ apiVersion: `${G}/v1`, kind: 'ClusterRole', metadata: { name }, rules });
const roleBinding = (ns: string, name: string, roleName: string, subjects: unknown[], kind = 'ClusterRole'): KObject => ({
  apiVersion: `${G}/v1`, kind: 'RoleBinding', metadata: { name, namespace: ns }, roleRef: { apiGroup: G, kind, name: roleName }, subjects,
});
const user = (name: string, ...groups: string[]) => ({ name, groups: [...groups, 'system:authenticated'] });
const create = (who: ReturnType<typeof user>, ns: string): RequestAttributes => ({
  user: who, verb: 'create', resourceRequest: true, path: `/apis/kova.dev/v1alpha1/namespaces/${ns}/instances`,
  apiGroup: 'kova.dev', apiVersion: 'v1alpha1', resource: 'instances', subresource: '', namespace: ns, name: '',
});

let etcd: TestEtcd;
let store: Store;

before(async () => {
  etcd = await startTestEtcd();
  store = Store.connect(etcd.endpoints);
  await store.create(key('clusterroles', undefined, 'edit'), clusterRole('edit', [{ verbs: ['*'], apiGroups: ['kova.dev'], resources: ['instances'] }]));
});

after(async () => {
  await store?.close();
  await etcd?.cleanup();
});

describe('RbacCache on etcd', () => {
  it('a new RoleBinding allows within a second, a deleted one stops allowing, a role change applies', async () => {
    const cache = new RbacCache(store);
    await cache.start();
    const authz = new RbacAuthorizer(cache);
    try {
      const alice = user('alice');
      assert.equal(authz.authorize(create(alice, 'demo')).allowed, false);
      const t0 = Date.now();
      await store.create(key('rolebindings', 'demo', 'alice-edit'), roleBinding('demo', 'alice-edit', 'edit', [{ kind: 'User', apiGroup: G, name: 'alice' }]));
      await waitFor(() => authz.authorize(create(alice, 'demo')).allowed, 'the binding to take effect', 1000);
      const took = Date.now() - t0;
      assert.equal(authz.authorize(create(alice, 'demo')).reason, 'RBAC: allowed by RoleBinding "alice-edit/demo" of ClusterRole "edit" to User "alice"');
      assert.equal(authz.authorize(create(alice, 'other')).allowed, false, 'only in its namespace');

      // The role is read at decision time: narrowing it applies at once to every binding.
      const cr = (await store.get(key('clusterroles', undefined, 'edit')))!;
      await store.update(key('clusterroles', undefined, 'edit'), { ...cr, rules: [{ verbs: ['get'], apiGroups: ['kova.dev'], resources: ['instances'] }] }, cr.metadata.resourceVersion!);
      await waitFor(() => !authz.authorize(create(alice, 'demo')).allowed, 'the narrowed role to apply', 1000);
      const cr2 = (await store.get(key('clusterroles', undefined, 'edit')))!;
      await store.update(key('clusterroles', undefined, 'edit'), { ...cr2, rules: cr.rules }, cr2.metadata.resourceVersion!);
      await waitFor(() => authz.authorize(create(alice, 'demo')).allowed, 'the widened role to apply', 1000);

      await store.delete(key('rolebindings', 'demo', 'alice-edit'));
      await waitFor(() => !authz.authorize(create(alice, 'demo')).allowed, 'the deletion to take effect', 1000);
      assert.equal(authz.authorize(create(alice, 'demo')).reason, '');
      console.log(`binding effective after ${took} ms`);

      // A group binding, and a binding whose subjects change from one user to another.
      await store.create(key('rolebindings', 'demo', 'devs'), roleBinding('demo', 'devs', 'edit', [{ kind: 'Group', apiGroup: G, name: 'devs' }]));
      await waitFor(() => authz.authorize(create(user('bob', 'devs'), 'demo')).allowed, 'the group binding', 1000);
      const devs = (await store.get(key('rolebindings', 'demo', 'devs')))!;
      await store.update(key('rolebindings', 'demo', 'devs'), { ...devs, subjects: [{ kind: 'User', apiGroup: G, name: 'carol' }] }, devs.metadata.resourceVersion!);
      await waitFor(() => authz.authorize(create(user('carol'), 'demo')).allowed, 'the new subject', 1000);
      assert.equal(authz.authorize(create(user('bob', 'devs'), 'demo')).allowed, false, 'the old subject lost it');
      await store.delete(key('rolebindings', 'demo', 'devs'));
      await waitFor(() => !authz.authorize(create(user('carol'), 'demo')).allowed, 'deleted', 1000);
      assert.equal(cache.state.nsByUser.size + cache.state.nsByGroup.size, 0, 'empty namespace indexes are dropped');
    } finally {
      await cache.stop();
    }
  });

  it('with a few hundred bindings, a decision visits only the bindings naming the user', async () => {
    const N = 300;
    await Promise.all(Array.from({ length: N }, (_, i) =>
      store.create(key('rolebindings', `p${i % 20}`, `b${i}`), roleBinding(`p${i % 20}`, `b${i}`, 'edit', [{ kind: 'User', name: `user-${i}` }, { kind: 'Group', name: `team-${i % 7}` }]))));
    const cache = new RbacCache(store, { pageSize: 50 }); // several pages
    await cache.start();
    const authz = new RbacAuthorizer(cache);
    try {
      assert.equal(cache.state.roleBindings.size, N);
      const u = user('user-42');
      const before = { ...authz.stats };
      assert.equal(authz.authorize(create(u, 'p2')).allowed, true);
      assert.equal(authz.stats.bindingsVisited - before.bindingsVisited, 1);
      const mid = { ...authz.stats };
      assert.equal(authz.authorize(create(u, 'p3')).allowed, false);
      assert.equal(authz.stats.bindingsVisited - mid.bindingsVisited, 0);
      // A group shared by ~43 bindings over 20 namespaces: only that namespace's share is visited.
      const g = { name: 'nobody', groups: ['team-3', 'system:authenticated'] };
      const mid2 = { ...authz.stats };
      assert.equal(authz.authorize(create(g, 'p5')).allowed, true);
      assert.ok(authz.stats.bindingsVisited - mid2.bindingsVisited <= 3, `visited ${authz.stats.bindingsVisited - mid2.bindingsVisited}`);
    } finally {
      await cache.stop();
      await Promise.all(Array.from({ length: N }, (_, i) => store.delete(key('rolebindings', `p${i % 20}`, `b${i}`))));
    }
  });

  it('relists when its watch dies because the listed revision was compacted', async () => {
    // A store whose first list is followed by a write and a compaction, so etcd refuses the
    // watch from the listed revision ("required revision has been compacted").
    let first = true;
    class CompactingStore extends Store {
      override async list(prefix: string, opts?: ListOptions): Promise<ListResult> {
        const out = await super.list(prefix, opts);
        if (first && prefix === RBAC_PREFIX) {
          first = false;
          await this.create(key('rolebindings', 'late', 'dave'), roleBinding('late', 'dave', 'edit', [{ kind: 'User', name: 'dave' }]));
          await this.create(key('rolebindings', 'late', 'erin'), roleBinding('late', 'erin', 'edit', [{ kind: 'User', name: 'erin' }]));
          // Keeps only the last revision: the watch would start at the one before.
          await this.compact(await this.currentRevision());
        }
        return out;
      }
    }
    const s = new CompactingStore(new EtcdClient(etcd.endpoints));
    const logs: string[] = [];
    const cache = new RbacCache(s, { minBackoffMs: 10, log: (m) => logs.push(m) });
    try {
      await cache.start();
      await waitFor(() => cache.stats.lists >= 2, 'a relist');
      assert.ok(cache.stats.watchErrors >= 1);
      assert.match(logs.join('\n'), /watch ended \(Expired/);
      const authz = new RbacAuthorizer(cache);
      assert.equal(authz.authorize(create(user('dave'), 'late')).allowed, true, 'the relist saw the binding written after the first list');
      // And the new watch works.
      await s.delete(key('rolebindings', 'late', 'dave'));
      await s.delete(key('rolebindings', 'late', 'erin'));
      await waitFor(() => !authz.authorize(create(user('dave'), 'late')).allowed, 'the deletion after relist', 1000);
    } finally {
      await cache.stop();
      await s.close();
    }
  });

  it('denies with a reason while it has not listed, and stop() releases start()', async () => {
    const dead = Store.connect(['http://127.0.0.1:9']);
    const cache = new RbacCache(dead, { minBackoffMs: 10, maxBackoffMs: 50 });
    const started = cache.start();
    const authz = new RbacAuthorizer(cache);
    try {
      assert.equal(cache.ready, false);
      assert.deepEqual(authz.authorize(create(user('alice'), 'demo')), { allowed: false, reason: NOT_READY_REASON });
      assert.equal(authz.authorize(create({ name: 'root', groups: ['system:masters'] }, 'demo')).allowed, true);
      const rules = authz.rulesFor(user('alice'), 'demo');
      assert.equal(rules.incomplete, true);
    } finally {
      await cache.stop();
      await started;
      await dead.close();
    }
  });
});
