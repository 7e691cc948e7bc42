// Default quotas for new projects, like Nova's and Cinder's quota defaults: the ConfigMap
// kova-system/quota-defaults holds resource names → quantities (kova up seeds Nova-like values),
// and every namespace gets a ResourceQuota `default` with them as spec.hard, once. The namespace
// is then annotated kova.dev/default-quota=applied, so deleting or editing that quota sticks
// (deleting it lifts the limits, as deleting a ResourceQuota does in Kubernetes).
//
// Not for the system namespaces (kube-system, kube-public, kube-node-lease, kova-system): they
// hold the cloud's own objects. `default` is a project like any other and gets the defaults (in
// OpenStack every project, admin's too, has the default quotas). A namespace created with the
// annotation kova.dev/default-quota=none never gets one. Changing the ConfigMap affects
// namespaces that have not got their quota yet, not existing quotas.
import type { ApiClient, KObject } from '../../client/client.js';
import { isAlreadyExists, NAMESPACES, StatusError } from '../../client/client.js';
import { controllerFor, withDefaults } from '../../client/controller.js';
import type { ControllerHandle, ControllerStartOptions, Reconciler, Request } from '../../client/controller.js';
import { CONFIG_MAPS, RESOURCE_QUOTAS } from '../quota/quota-controller.js';

export const QUOTA_DEFAULTS_NAMESPACE = 'kova-system';
export const QUOTA_DEFAULTS_CONFIGMAP = 'quota-defaults';
export const DEFAULT_QUOTA_NAME = 'default';
export const DEFAULT_QUOTA_ANNOTATION = 'kova.dev/default-quota';
/** Annotations of a namespace that never gets the default quota (sized beyond it on purpose: scale runs). */
export const NO_DEFAULT_QUOTA: Readonly<Record<string, string>> = { [DEFAULT_QUOTA_ANNOTATION]: 'none' };
export const SYSTEM_NAMESPACES_WITHOUT_QUOTA: readonly string[] = ['kube-system', 'kube-public', 'kube-node-lease', 'kova-system'];

export class DefaultQuotaReconciler implements Reconciler {
  readonly name = 'default-quota';
  private warned = false;
  constructor(
    private readonly client: ApiClient,
    private readonly log: (msg: string) => void = () => undefined,
  ) {}

  async reconcile(req: Request, signal: AbortSignal): Promise<void> {
    if (SYSTEM_NAMESPACES_WITHOUT_QUOTA.includes(req.name)) return;
    const ns = await this.client.get(NAMESPACES, undefined, req.name, signal);
    if (!ns || ns.metadata.deletionTimestamp || ns.metadata.annotations?.[DEFAULT_QUOTA_ANNOTATION]) return;
    const defaults = await this.client.get(CONFIG_MAPS, QUOTA_DEFAULTS_NAMESPACE, QUOTA_DEFAULTS_CONFIGMAP, signal);
    const hard = (defaults?.data ?? {}) as Record<string, string>;
    if (!Object.keys(hard).length) return; // no defaults configured: nothing to apply (yet)
    try {
      await this.client.create(RESOURCE_QUOTAS, {
        apiVersion: 'v1', kind: 'ResourceQuota',
        metadata: { name: DEFAULT_QUOTA_NAME, namespace: req.name, labels: { [DEFAULT_QUOTA_ANNOTATION]: 'true' } },
        spec: { hard },
      });
    } catch (e) {
      if (!isAlreadyExists(e)) throw e; // a crash after the create and before the annotation
    }
    try {
      await this.client.mergePatch(NAMESPACES, undefined, req.name, { metadata: { annotations: { [DEFAULT_QUOTA_ANNOTATION]: 'applied' } } });
    } catch (e) {
      // Without the right to patch namespaces the quota is still there; only "once" is lost
      // (a deleted default quota comes back). Said once, not retried forever.
      if (!(e instanceof StatusError && e.code === 403)) throw e;
      if (!this.warned) this.log(`default-quota: cannot annotate namespaces (${e.message}); grant patch on namespaces to the controllers`);
      this.warned = true;
    }
  }
}

/** Namespaces without the annotation, on add, and all of them again when the defaults change. */
export async function startDefaultQuotaController(opts: ControllerStartOptions): Promise<ControllerHandle> {
  const { client, signal, log, informers } = withDefaults(opts);
  const namespaces = informers.for(NAMESPACES);
  const pending = (n: KObject) => (n.metadata.annotations?.[DEFAULT_QUOTA_ANNOTATION] || n.metadata.deletionTimestamp ? undefined : { name: n.metadata.name! });
  return controllerFor(new DefaultQuotaReconciler(client, log), { workers: opts.workers ?? 2, log })
    .watches(namespaces, pending, ['add', 'update'])
    .watches(
      informers.for(CONFIG_MAPS, { namespace: QUOTA_DEFAULTS_NAMESPACE, fieldSelector: `metadata.name=${QUOTA_DEFAULTS_CONFIGMAP}` }),
      () => namespaces.list().flatMap((n) => pending(n) ?? []),
      ['add', 'update'],
    )
    .start(signal);
}

/** What `kova up` seeds: Nova's, Cinder's and Neutron's classic defaults. */
export const SEEDED_QUOTA_DEFAULTS: Readonly<Record<string, string>> = {
  'count/instances.kova.dev': '10',
  'requests.vcpus': '20',
  'requests.memory': '50Gi',
  'count/volumes.kova.dev': '10',
  'requests.storage': '1000Gi',
  'count/floatingips.kova.dev': '10',
};

/** Creates kova-system/quota-defaults unless it exists (an admin's edits are kept). True when created. */
export async function seedQuotaDefaults(client: ApiClient): Promise<boolean> {
  try {
    await client.create(CONFIG_MAPS, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: QUOTA_DEFAULTS_CONFIGMAP, namespace: QUOTA_DEFAULTS_NAMESPACE }, data: { ...SEEDED_QUOTA_DEFAULTS } });
    return true;
  } catch (e) {
    if (isAlreadyExists(e)) return false;
    throw e;
  }
}
