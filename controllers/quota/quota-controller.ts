// The ResourceQuota controller, as kube-controller-manager's: recomputes each quota's
// status.used from the objects actually in its namespace and sets status.hard = spec.hard. The
// API server charges quotas atomically with creates; this controller releases what deletions
// freed and repairs any drift (a quota created after its objects, a status edited by hand).
// Level-triggered: a quota is recomputed when it is added, when its spec.hard differs from
// status.hard, when a counted object in its namespace is deleted, and every resync period.
//
// Exactness: the quota is read first, the objects listed after (a consistent read at a newer
// revision), and status is written conditionally on the quota's resourceVersion. A charge made
// before the read is in the list; one made after changed the quota, so the write gets 409 and
// the reconcile starts over.
import type { ApiClient, KObject, Kind } from '../../client/client.js';
import { ADDRESS_CLAIMS, EVENTS, FLAVORS, FLOATING_IPS, IMAGES, INSTANCES, isConflict, KEYPAIRS, KovaClient, LEASES, NETWORKS, PORTS, ROUTERS, SECURITY_GROUPS, VOLUMES } from '../../client/client.js';
import { discoverKinds } from '../../client/discovery.js';
import { controllerFor, withDefaults } from '../../client/controller.js';
import type { ControllerHandle, ControllerStartOptions, Reconciler, Request, Result } from '../../client/controller.js';
import { formatUsage, namespaceUsage } from '../../api/quota-usage.js';
import type { InstanceSize } from '../../api/quota-usage.js';

export const RESOURCE_QUOTAS: Kind = { group: '', version: 'v1', plural: 'resourcequotas', kind: 'ResourceQuota', namespaced: true };
export const CONFIG_MAPS: Kind = { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap', namespaced: true };
export const SECRETS: Kind = { group: '', version: 'v1', plural: 'secrets', kind: 'Secret', namespaced: true };

/** kube-controller-manager's --resource-quota-sync-period default. */
export const DEFAULT_RESYNC_MS = 5 * 60_000;

/**
 * The kinds quotas can count when discovery is not at hand (the fake client); with a KovaClient
 * they come from discovery, as the API server counts every namespaced kind it serves.
 * Deletions of the kinds below wake the controller at once (their informers are shared with the
 * other controllers); the rest are caught up by the resync.
 */
export const COUNTED_KINDS: readonly Kind[] = [
  INSTANCES, VOLUMES, FLOATING_IPS, PORTS, NETWORKS, ROUTERS, SECURITY_GROUPS, KEYPAIRS, IMAGES, ADDRESS_CLAIMS, RESOURCE_QUOTAS, CONFIG_MAPS, SECRETS, EVENTS, LEASES,
];
const WATCHED_FOR_DELETIONS: readonly Kind[] = [INSTANCES, VOLUMES, FLOATING_IPS, PORTS, NETWORKS];

interface QuotaFields {
  spec?: { hard?: Record<string, string | number> };
  status?: { hard?: Record<string, string | number>; used?: Record<string, string | number> };
}

/** Status writes retried on 409 within one reconcile before the work queue's back-off takes over. */
const STATUS_ATTEMPTS = 5;

export class QuotaReconciler implements Reconciler {
  readonly name = 'resourcequota';
  constructor(
    private readonly client: ApiClient,
    private readonly resyncMs = DEFAULT_RESYNC_MS,
    private readonly kinds: () => Promise<readonly Kind[]> = async () => COUNTED_KINDS,
  ) {}

  async reconcile(req: Request, signal: AbortSignal): Promise<Result | void> {
    for (let attempt = 0; ; attempt++) {
      const quota = await this.client.get(RESOURCE_QUOTAS, req.namespace, req.name, signal);
      if (!quota) return;
      const q = quota as KObject & QuotaFields;
      const hard = { ...(q.spec?.hard ?? {}) };
      const names = Object.keys(hard);
      const totals = await namespaceUsage(
        await this.kinds(), names,
        async (kind) => (await this.client.list(kind, req.namespace, {}, signal)).items,
        async (name) => (await this.client.get(FLAVORS, undefined, name, signal))?.spec as InstanceSize | undefined,
      );
      const used = Object.fromEntries(names.map((n) => [n, formatUsage(n, totals[n] ?? 0)]));
      if (sameMap(q.status?.hard, hard) && sameMap(q.status?.used, used)) return { requeueAfterMs: this.resyncMs };
      try {
        await this.client.replaceStatus(RESOURCE_QUOTAS, { ...quota, status: { ...(q.status ?? {}), hard, used } });
        return { requeueAfterMs: this.resyncMs };
      } catch (e) {
        // A create charged the quota meanwhile: count again.
        if (isConflict(e) && attempt < STATUS_ATTEMPTS) continue;
        throw e;
      }
    }
  }
}

function sameMap(a: Record<string, unknown> | undefined, b: Record<string, unknown>): boolean {
  const ak = Object.keys(a ?? {});
  return ak.length === Object.keys(b).length && ak.every((k) => String(a![k]) === String(b[k]));
}

/** True when the quota's status does not reflect its spec yet (new, or spec.hard edited). */
function stale(q: KObject): boolean {
  const { spec, status } = q as QuotaFields;
  const hard = spec?.hard ?? {};
  return !sameMap(status?.hard, hard) || Object.keys(hard).some((k) => status?.used?.[k] === undefined);
}

export interface QuotaControllerOptions extends ControllerStartOptions {
  /** Every quota is recomputed this often (default 5 minutes, kube's --resource-quota-sync-period). */
  resyncMs?: number;
}

export async function startQuotaController(opts: QuotaControllerOptions): Promise<ControllerHandle> {
  const { client, signal, log, informers } = withDefaults(opts);
  const quotas = informers.for(RESOURCE_QUOTAS);
  const builder = controllerFor(new QuotaReconciler(client, opts.resyncMs ?? DEFAULT_RESYNC_MS, countedKinds(client)), { workers: opts.workers ?? 2, log })
    .watches(quotas, undefined, ['add'])
    .watches(quotas, (q) => (stale(q) ? { namespace: q.metadata.namespace, name: q.metadata.name! } : undefined), ['update']);
  // A deletion frees what the object used: recompute the quotas of its namespace.
  const inNamespace = (o: KObject) => quotas.list(o.metadata.namespace).map((q) => ({ namespace: q.metadata.namespace, name: q.metadata.name! }));
  for (const kind of WATCHED_FOR_DELETIONS) builder.watches(informers.for(kind), inNamespace, ['delete']);
  return builder.start(signal);
}

/** The namespaced, listable kinds from discovery (once; again after a failure), or COUNTED_KINDS. */
function countedKinds(client: ApiClient): () => Promise<readonly Kind[]> {
  if (!(client instanceof KovaClient)) return async () => COUNTED_KINDS;
  let kinds: Promise<Kind[]> | undefined;
  return () => {
    kinds ??= discoverKinds(client).then((all) => all.filter((k) => k.namespaced && k.verbs.includes('list')));
    kinds.catch(() => (kinds = undefined));
    return kinds;
  };
}
