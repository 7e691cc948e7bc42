// The Router reconciler: readiness of its external network (the masquerading itself is done by
// the node agents on each instance host).
import type { ApiClient } from '../../client/client.js';
import type { Reconciler, Request } from '../../client/controller.js';
import { setCondition } from '../../api/conditions.js';
import { ROUTERS } from '../../api/kinds/index.js';
import type { Router } from '../../api/kinds/index.js';
import { sameStatus } from './caches.js';
import type { NetworkCaches } from './caches.js';

export class RouterReconciler implements Reconciler {
  readonly name = 'router';
  constructor(private readonly client: ApiClient, private readonly c: NetworkCaches) {}
  async reconcile(req: Request): Promise<void> {
    const ns = req.namespace!;
    const r = this.c.routers.get(ns, req.name);
    if (!r || r.metadata.deletionTimestamp) return;
    const ext = this.c.networks.get(ns, r.spec.externalNetwork);
    const cond = !ext
      ? { status: 'False' as const, reason: 'NetworkNotFound', message: `network ${r.spec.externalNetwork} does not exist` }
      : !ext.spec.external
        ? { status: 'False' as const, reason: 'NotExternal', message: `network ${r.spec.externalNetwork} is not external` }
        : { status: 'True' as const, reason: 'Configured', message: 'outbound traffic is masqueraded on each instance host' };
    const mk = (prev: Router['status']): Router['status'] => ({
      ...prev,
      phase: cond.status === 'True' ? 'Ready' : 'Failed',
      observedGeneration: r.metadata.generation,
      conditions: setCondition(prev?.conditions, { type: 'Ready', ...cond, observedGeneration: r.metadata.generation }),
    });
    if (sameStatus(r.status, mk(r.status))) return;
    await this.client.updateStatus<Router>(ROUTERS, ns, req.name, (fresh) => {
      const next = mk(fresh.status);
      if (sameStatus(fresh.status, next)) return false;
      fresh.status = next;
    });
  }
}
