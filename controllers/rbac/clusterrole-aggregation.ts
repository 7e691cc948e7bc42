// The clusterrole-aggregation controller, as kube-controller-manager's: every ClusterRole with an
// aggregationRule holds the union of the rules of the ClusterRoles its selectors match. Level
// triggered: any ClusterRole change requeues every aggregating role, and a reconcile recomputes
// from the informer's cache and writes only when the rules differ (a conflict retries).
import type { Kind, KObject } from '../../client/client.js';
import { controllerFor, withDefaults } from '../../client/controller.js';
import type { ControllerHandle, ControllerStartOptions, Reconciler, Request } from '../../client/controller.js';
import type { ApiClient } from '../../client/client.js';
import type { Informer } from '../../client/informer.js';
import type { PolicyRule } from '../../api/rbac-aggregation.js';
import { aggregatedRules, aggregationSelectors, sameRules } from '../../api/rbac-aggregation.js';

export const CLUSTER_ROLES: Kind = { group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'clusterroles', kind: 'ClusterRole', namespaced: false };

export class ClusterRoleAggregationReconciler implements Reconciler {
  readonly name = 'clusterrole-aggregation';
  constructor(
    private readonly client: ApiClient,
    private readonly roles: Pick<Informer<KObject>, 'get' | 'list'>,
  ) {}

  async reconcile(req: Request): Promise<void> {
    const cached = this.roles.get(undefined, req.name);
    if (!cached || !aggregationSelectors(cached)) return;
    const want = aggregatedRules(cached, this.roles.list());
    if (!want || sameRules(want, cached.rules as PolicyRule[] | undefined)) return;
    // Written on the object as read, so a newer aggregationRule is never overwritten blindly.
    await this.client.updateWithRetry<KObject>(CLUSTER_ROLES, undefined, req.name, (fresh) => {
      const rules = aggregatedRules(fresh, this.roles.list());
      if (!rules || sameRules(rules, fresh.rules as PolicyRule[] | undefined)) return false;
      fresh.rules = rules;
    });
  }
}

/** Starts the ClusterRole informer and the workers; resolves once synced. */
export async function startClusterRoleAggregationController(opts: ControllerStartOptions): Promise<ControllerHandle> {
  const { client, signal, log, informers } = withDefaults(opts);
  const roles = informers.for(CLUSTER_ROLES);
  const aggregating = (): Request[] => roles.list().filter((r) => aggregationSelectors(r)).map((r) => ({ name: r.metadata.name! }));
  return controllerFor(new ClusterRoleAggregationReconciler(client, roles), { workers: opts.workers ?? 1, log })
    // Any change may add to or take from any aggregating role (labels, rules, the role itself).
    .watches(roles, (r) => [...aggregating(), { name: r.metadata.name! }])
    .start(signal);
}
