// The SecurityGroup reconciler: its small status (rule count, ports using it).
import type { ApiClient } from '../../client/client.js';
import type { Reconciler, Request } from '../../client/controller.js';
import { SECURITY_GROUPS } from '../../api/kinds/index.js';
import type { SecurityGroup } from '../../api/kinds/index.js';
import { DEFAULT_SECURITY_GROUP } from '../../api/net/rules.js';
import type { NetworkCaches } from './caches.js';

export class SecurityGroupReconciler implements Reconciler {
  readonly name = 'securitygroup';
  constructor(private readonly client: ApiClient, private readonly c: NetworkCaches) {}
  async reconcile(req: Request): Promise<void> {
    const sg = this.c.securityGroups.get(req.namespace, req.name);
    if (!sg || sg.metadata.deletionTimestamp) return;
    const ruleCount = sg.spec?.rules?.length ?? 0;
    const ports = this.c.ports.list(req.namespace).filter((p) => (p.spec.securityGroups ?? [DEFAULT_SECURITY_GROUP]).includes(req.name)).length;
    const s = sg.status ?? {};
    if (s.ruleCount === ruleCount && s.ports === ports && s.observedGeneration === sg.metadata.generation) return;
    await this.client.updateStatus<SecurityGroup>(SECURITY_GROUPS, req.namespace, req.name, (fresh) => {
      fresh.status = { ...fresh.status, ruleCount: fresh.spec?.rules?.length ?? 0, ports, observedGeneration: fresh.metadata.generation };
    });
  }
}
