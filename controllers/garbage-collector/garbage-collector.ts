// ownerReferences garbage collection, as kube-controller-manager's garbage collector does it:
// - background: a dependent whose owners are all gone is deleted;
// - foreground: an owner carrying `foregroundDeletion` has its dependents deleted (those that
//   block it, `blockOwnerDeletion`, in the foreground too) and loses the finalizer once no
//   blocking dependent is left;
// - orphan: an owner carrying `orphan` has its references removed from its dependents, then
//   loses the finalizer.
// It follows every kind through metadata-only lists and watches (PartialObjectMetadata: no
// spec, no status), keeps the uid of every object and the objects that can matter, and acts
// through the API. A deletion is decided on live reads (the dependent is read again, and so is
// a missing owner unless the watches reported its deletion; the delete carries the dependent's
// uid and resourceVersion), so a stale graph never deletes wrongly. Events are left out, as
// kube's collector ignores them.
import type { OwnerReference } from '../../api/types.js';
import { StatusError, isNotFound } from '../../client/client.js';
import type { KObject, Kind, KovaClient } from '../../client/client.js';
import { Controller } from '../../client/controller.js';
import type { Reconciler, Request, Result } from '../../client/controller.js';
import { discoverKinds, groupOf, kindIndex } from '../../client/discovery.js';
import type { DiscoveredKind } from '../../client/discovery.js';
import { MetadataClient, MetadataWatcher } from '../../client/metadata.js';
import { FOREGROUND, GcGraph, ORPHAN } from './graph.js';
import type { GcNode } from './graph.js';

const FIELD_MANAGER = 'garbage-collector';
/** How soon an owner waiting for dependents in the foreground looks again without an event. */
const FOREGROUND_RECHECK_MS = 1000;

/** Kinds the collector follows: those it can list, watch and delete, except Events (kube's ignored resources). */
export function collectableKinds(kinds: readonly DiscoveredKind[]): DiscoveredKind[] {
  return kinds.filter((k) => ['list', 'watch', 'delete'].every((v) => k.verbs.includes(v)) && k.kind !== 'Event');
}

class GarbageCollectorReconciler implements Reconciler {
  readonly name = 'garbage-collector';
  private readonly byKind: Map<string, Kind>;

  constructor(
    private readonly client: KovaClient,
    private readonly graph: GcGraph,
    kinds: readonly Kind[],
    private readonly log: (m: string) => void,
  ) {
    this.byKind = kindIndex(kinds);
  }

  /** The key is the uid of a node. */
  async reconcile(req: Request): Promise<Result | void> {
    const node = this.graph.nodes.get(req.name);
    if (!node) return;
    if (node.deleting && node.finalizers.includes(ORPHAN)) return this.orphanDependents(node);
    if (node.deleting && node.finalizers.includes(FOREGROUND)) return this.deleteDependentsFirst(node);
    if (node.owners.length) return this.checkOwners(node);
  }

  private ownerKind(ref: OwnerReference): Kind | undefined {
    return this.byKind.get(`${groupOf(ref.apiVersion)}/${ref.kind}`);
  }

  /**
   * Is the owner `ref` names (same uid) there? The graph answers yes, and no for an owner whose
   * deletion its watches reported; any other no is confirmed live.
   */
  private async ownerExists(dep: Pick<GcNode, 'namespace'>, ref: OwnerReference): Promise<boolean> {
    if (this.graph.has(ref.uid)) return true;
    if (this.graph.wasDeleted(ref.uid)) return false;
    const kind = this.ownerKind(ref);
    // Not an answer about the owner: retried with back-off, never a reason to delete.
    if (!kind) throw new Error(`owner reference to unknown kind ${ref.kind} (${ref.apiVersion})`);
    // A namespaced owner lives in its dependent's namespace; a cluster-scoped dependent cannot have one.
    if (kind.namespaced && !dep.namespace) return false;
    const owner = await this.client.get(kind, kind.namespaced ? dep.namespace : undefined, ref.name);
    return !!owner && owner.metadata.uid === ref.uid;
  }

  private async checkOwners(node: GcNode): Promise<void> {
    // The usual case costs no request: every owner is in the graph.
    if (node.owners.every((r) => this.graph.has(r.uid))) return;
    const live = await this.client.get(node.kind, node.namespace, node.name);
    if (!live || live.metadata.uid !== node.uid) return;
    const owners = live.metadata.ownerReferences ?? [];
    if (!owners.length) return;
    const absent = new Set<string>();
    for (const ref of owners) if (!(await this.ownerExists(node, ref))) absent.add(ref.uid);
    if (!absent.size) return;
    if (absent.size === owners.length) {
      if (live.metadata.deletionTimestamp) return;
      this.log(`garbage collector: deleting ${node.kind.kind} ${node.namespace ? `${node.namespace}/` : ''}${node.name}: all owners are gone`);
      // The resourceVersion precondition: an owner reference added since the read keeps it.
      await this.client.delete(node.kind, node.namespace, node.name, {
        propagationPolicy: 'Background', preconditions: { uid: node.uid, resourceVersion: live.metadata.resourceVersion },
      });
      return;
    }
    await this.editLive(node, (o) => {
      o.metadata.ownerReferences = (o.metadata.ownerReferences ?? []).filter((r) => !absent.has(r.uid));
    });
  }

  private async orphanDependents(owner: GcNode): Promise<void> {
    for (const dep of this.graph.dependentsOf(owner.uid)) {
      await this.editLive(dep, (o) => {
        const refs = (o.metadata.ownerReferences ?? []).filter((r) => r.uid !== owner.uid);
        if (refs.length) o.metadata.ownerReferences = refs;
        else delete o.metadata.ownerReferences;
      });
    }
    await this.removeFinalizer(owner, ORPHAN);
  }

  private async deleteDependentsFirst(owner: GcNode): Promise<Result | void> {
    const deps = this.graph.dependentsOf(owner.uid);
    const blocks = (d: GcNode) => !!d.owners.find((r) => r.uid === owner.uid)?.blockOwnerDeletion;
    for (const dep of deps) {
      if (dep.deleting) continue;
      await this.client.delete(dep.kind, dep.namespace, dep.name, {
        propagationPolicy: blocks(dep) ? 'Foreground' : 'Background', preconditions: { uid: dep.uid },
      }).catch(ignoreGoneOrChanged);
    }
    // Each dependent's deletion event queues the owner again; the recheck is a safety net.
    if (deps.some(blocks)) return { requeueAfterMs: FOREGROUND_RECHECK_MS };
    await this.removeFinalizer(owner, FOREGROUND);
  }

  private removeFinalizer(node: GcNode, finalizer: string): Promise<void> {
    return this.editLive(node, (o) => {
      o.metadata.finalizers = (o.metadata.finalizers ?? []).filter((f) => f !== finalizer);
    });
  }

  /** Read-modify-write of the live object with the node's uid, retried on conflicts. */
  private async editLive(node: GcNode, edit: (o: KObject) => void): Promise<void> {
    await this.client.updateWithRetry(node.kind, node.namespace, node.name, (o) => {
      if (o.metadata.uid !== node.uid) return false;
      edit(o);
    }, { fieldManager: FIELD_MANAGER });
  }
}

function ignoreGoneOrChanged(e: unknown) {
  if (isNotFound(e) || (e instanceof StatusError && e.code === 409)) return;
  throw e;
}

export interface GarbageCollectorOptions {
  client: KovaClient;
  signal: AbortSignal;
  log?: (msg: string) => void;
  /** Parallel workers (default 20, as kube-controller-manager's --concurrent-gc-syncs). */
  workers?: number;
}

export interface GarbageCollector {
  controller: Controller;
  graph: GcGraph;
  metadata: MetadataClient;
  watchers: MetadataWatcher[];
  /** Resolves once `signal` aborted and everything stopped. */
  done: Promise<void>;
}

/** Discovers the kinds, syncs a metadata watch of each, then runs the workers. */
export async function startGarbageCollector(opts: GarbageCollectorOptions): Promise<GarbageCollector> {
  return prepareGarbageCollector(opts).run(opts.signal);
}

/**
 * A garbage collector whose graph is kept current (its metadata watches run until `signal`
 * aborts) but whose workers do not run yet: a standby's, ready for the term it may win
 * (controllers/manager.ts). What changes meanwhile is queued (by uid) for the workers.
 */
export interface PreparedGarbageCollector {
  /** Whether every kind has been listed (the graph is complete). */
  hasSynced(): boolean;
  /**
   * Waits until every kind is listed, then runs the workers until `signal` aborts (the
   * watches end with the signal given to prepareGarbageCollector).
   */
  run(signal: AbortSignal): Promise<GarbageCollector>;
}

export function prepareGarbageCollector(opts: GarbageCollectorOptions): PreparedGarbageCollector {
  const { client, signal } = opts;
  const log = opts.log ?? ((m: string) => console.error(m));
  const prepared = (async () => {
    const kinds = collectableKinds(await discoverKinds(client, signal));
    const graph = new GcGraph();
    const controller = new Controller(new GarbageCollectorReconciler(client, graph, kinds, log), { workers: opts.workers ?? 20, log });
    const enqueue = (uids: string[]) => {
      for (const uid of uids) controller.enqueueKey(uid);
    };
    const metadata = new MetadataClient(client);
    const watchers = kinds.map((kind) => new MetadataWatcher(metadata, kind, {
      replace: (items) => enqueue(graph.replace(kind, items)),
      event: (type, obj) => enqueue(type === 'DELETED' ? graph.remove(obj.metadata.uid!) : graph.upsert(kind, obj)),
      skipLine: (type, line) => (type === 'ADDED' ? graph.addedPlain(kind, line) : graph.unchangedPlain(line)),
    }, signal, log));
    const synced = Promise.all(watchers.map((w) => w.waitForSync()));
    const done = Promise.all(watchers.map((w) => w.done)).then(() => metadata.close());
    return { kinds, graph, controller, metadata, watchers, synced, done };
  })();
  let synced = false;
  prepared.then((p) => p.synced).then(() => (synced = true), () => undefined);
  // A standby whose discovery failed learns it when it leads (run rejects); until then, no unhandled rejection.
  prepared.catch(() => undefined);
  return {
    hasSynced: () => synced,
    async run(runSignal) {
      const p = await prepared;
      // Workers start once every kind is listed, so owners are found in the graph, not by reads.
      await Promise.race([p.synced, p.done]);
      if (!runSignal.aborted) log(`garbage collector: following ${p.kinds.length} kinds (${p.graph.size} objects, ${p.graph.nodes.size} with owners or deletion finalizers)`);
      return {
        controller: p.controller, graph: p.graph, metadata: p.metadata, watchers: p.watchers,
        done: Promise.all([p.controller.start(runSignal), p.done]).then(() => undefined),
      };
    },
  };
}
