// The `default` SecurityGroup of every project that uses networking: created with the project's
// first Network, or for a project with instances but no network yet (a Namespace reconciler).
import { isAlreadyExists, isNotFound } from '../../client/client.js';
import type { ApiClient } from '../../client/client.js';
import type { Reconciler, Request } from '../../client/controller.js';
import { SECURITY_GROUPS } from '../../api/kinds/index.js';
import type { SecurityGroup } from '../../api/kinds/index.js';
import { DEFAULT_SECURITY_GROUP } from '../../api/net/rules.js';
import type { Cache, Log, NetworkCaches } from './caches.js';

/** The `default` group: egress anywhere, ingress from its own members (Neutron's default). */
export async function ensureDefaultSecurityGroup(client: ApiClient, cache: Cache<SecurityGroup>, namespace: string, log: Log): Promise<void> {
  if (cache.get(namespace, DEFAULT_SECURITY_GROUP)) return;
  try {
    await client.create(SECURITY_GROUPS, {
      apiVersion: 'kova.dev/v1alpha1',
      kind: 'SecurityGroup',
      metadata: { name: DEFAULT_SECURITY_GROUP, namespace },
      spec: {
        rules: [
          { direction: 'egress', protocol: 'any' },
          { direction: 'ingress', protocol: 'any', remoteGroup: DEFAULT_SECURITY_GROUP },
        ],
      },
    });
    log(`network: created security group ${namespace}/${DEFAULT_SECURITY_GROUP}`);
  } catch (e) {
    if (!isAlreadyExists(e) && !isNotFound(e)) throw e; // NotFound: the namespace is going away
  }
}

/** Projects with instances but no network yet get their default group too. */
export class NamespaceDefaultsReconciler implements Reconciler {
  readonly name = 'network-defaults';
  constructor(private readonly client: ApiClient, private readonly c: NetworkCaches, private readonly log: Log) {}
  async reconcile(req: Request): Promise<void> {
    await ensureDefaultSecurityGroup(this.client, this.c.securityGroups, req.name, this.log);
  }
}
