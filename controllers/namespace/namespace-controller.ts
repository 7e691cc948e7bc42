// Namespace deletion, as kube-controller-manager's namespace controller does it. Deleting a
// namespace makes the API server mark it Terminating (deletionTimestamp, status.phase) while
// its spec.finalizers still hold `kubernetes`; this controller then deletes the namespace's
// content of every namespaced kind (finalizers honoured: it waits for them), and once nothing
// is left removes `kubernetes` through the namespaces/finalize subresource, which lets the API
// server remove the namespace.
import type { KObject, Kind, KovaClient } from '../../client/client.js';
import { NAMESPACES } from '../../client/client.js';
import { controllerFor, withDefaults } from '../../client/controller.js';
import type { ControllerHandle, ControllerStartOptions } from '../../client/controller.js';
import type { Reconciler, Request, Result } from '../../client/controller.js';
import { discoverKinds } from '../../client/discovery.js';
import { MetadataClient } from '../../client/metadata.js';
import { SharedInformers } from '../../client/shared-informers.js';

export const NAMESPACE_FINALIZER = 'kubernetes';
/** How soon a namespace whose content is still going away is looked at again. */
export const CONTENT_RECHECK_MS = 500;

/** What the reconciler needs of the API, so unit tests can run it on the fake client. */
export interface NamespaceApi {
  getNamespace(name: string): Promise<KObject | undefined>;
  /** The namespaced kinds to empty (listable and deletable). */
  kinds(): Promise<readonly Kind[]>;
  /** Name, uid and deletion state of each object of `kind` in `namespace`. */
  listMeta(kind: Kind, namespace: string): Promise<Array<{ metadata: KObject['metadata'] }>>;
  delete(kind: Kind, namespace: string, name: string, uid: string | undefined): Promise<void>;
  /** PUT namespaces/<name>/finalize with these spec.finalizers. */
  finalize(ns: KObject, finalizers: string[]): Promise<void>;
}

export class NamespaceReconciler implements Reconciler {
  readonly name = 'namespace';
  constructor(private readonly api: NamespaceApi) {}

  async reconcile(req: Request): Promise<Result | void> {
    const ns = await this.api.getNamespace(req.name);
    if (!ns || !ns.metadata.deletionTimestamp) return;
    const finalizers = (ns.spec as { finalizers?: string[] } | undefined)?.finalizers ?? [];
    if (!finalizers.includes(NAMESPACE_FINALIZER)) return;
    let remaining = 0;
    for (const kind of await this.api.kinds()) {
      const items = await this.api.listMeta(kind, req.name);
      remaining += items.length;
      for (const o of items) {
        if (o.metadata.deletionTimestamp) continue; // waiting for its own finalizers
        await this.api.delete(kind, req.name, o.metadata.name!, o.metadata.uid);
      }
    }
    if (remaining > 0) return { requeueAfterMs: CONTENT_RECHECK_MS };
    await this.api.finalize(ns, finalizers.filter((f) => f !== NAMESPACE_FINALIZER));
  }
}

/** The API through a KovaClient: kinds from discovery, content listed in metadata form. */
export function namespaceApi(client: KovaClient, metadata = new MetadataClient(client)): NamespaceApi {
  let kinds: Promise<Kind[]> | undefined;
  return {
    getNamespace: (name) => client.get(NAMESPACES, undefined, name),
    kinds: () => {
      kinds ??= discoverKinds(client).then((all) => all.filter((k) => k.namespaced && k.verbs.includes('list') && k.verbs.includes('delete')));
      // A failed discovery is tried again on the next reconcile.
      kinds.catch(() => (kinds = undefined));
      return kinds;
    },
    listMeta: async (kind, namespace) => (await metadata.list(kind, namespace)).items,
    delete: async (kind, namespace, name, uid) => {
      await client.delete(kind, namespace, name, { propagationPolicy: 'Background', ...(uid ? { preconditions: { uid } } : {}) }).catch((e) => {
        // Replaced by a new object of the same name: the next pass deletes that one.
        if (!(e && typeof e === 'object' && (e as { code?: number }).code === 409)) throw e;
      });
    },
    finalize: async (ns, finalizers) => {
      await client.request({
        method: 'PUT',
        path: client.objectPath(NAMESPACES, undefined, ns.metadata.name!) + '/finalize',
        body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns.metadata.name, resourceVersion: ns.metadata.resourceVersion }, spec: { finalizers } },
      });
    },
  };
}

export interface NamespaceControllerOptions extends ControllerStartOptions {
  client: KovaClient;
  /** Defaults to namespaceApi(client). */
  api?: NamespaceApi;
}

/** Starts the Namespace informer and workers; resolves once synced. Only namespaces being deleted are queued. */
export async function startNamespaceController(opts: NamespaceControllerOptions): Promise<ControllerHandle> {
  const { client, signal, log, informers } = withDefaults(opts);
  return controllerFor(new NamespaceReconciler(opts.api ?? namespaceApi(client)), { workers: opts.workers ?? 2, log })
    .watches(informers.for(NAMESPACES), (ns) => (ns.metadata.deletionTimestamp ? { name: ns.metadata.name! } : undefined), ['add', 'update'])
    .start(signal);
}
