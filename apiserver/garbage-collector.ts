// ownerReferences garbage collection, the kube-controller-manager way in miniature:
// - background: a dependent whose owners are all gone is deleted;
// - foreground: an owner carrying `foregroundDeletion` loses that finalizer once its
//   dependents are gone (it deletes them first);
// - orphan: an owner carrying `orphan` has its references removed from dependents, then the
//   finalizer is dropped.
// A graph of the objects that can matter (with owners, or an orphan/foreground finalizer) is
// kept from one watch over the whole registry. That watch is cheap: writes that cannot matter
// are dropped before they are decoded, and deletions arrive by key without etcd reading every
// previous value (no prev_kv), which is why dependents are indexed by their owners' keys. Every
// decision to delete is re-checked with a live read, so a stale graph never deletes wrongly.
import type { KObject, OwnerReference, ResourceInfo } from '../api/types.js';
import { REGISTRY_ROOT, storageKey } from './keys.js';
import type { ResourceStore } from './resource-store.js';
import { RetryQueue } from './retry-queue.js';
import { ApiError } from './status.js';

interface Node {
  info: ResourceInfo;
  namespace?: string;
  name: string;
  uid: string;
  /** Its etcd key. */
  key: string;
  owners: OwnerReference[];
  /** The etcd keys its owners have (or had) under the names it references. */
  ownerKeys: string[];
  deleting: boolean;
  finalizers: string[];
}

const RETRY_MS = 500;
const LIST_PAGE = 1000;

/** Stored values that can matter to the collector contain one of these (false positives only cost a decode). */
const MARKERS = ['"ownerReferences"', '"orphan"', '"foregroundDeletion"'].map((m) => Buffer.from(m));
const mayMatter = (value: Buffer) => MARKERS.some((m) => value.includes(m));
const matters = (n: Pick<Node, 'owners' | 'finalizers'>) => n.owners.length > 0 || n.finalizers.includes('orphan') || n.finalizers.includes('foregroundDeletion');

export class GarbageCollector {
  private readonly nodes = new Map<string, Node>();
  /** etcd key → uid of the node stored there. */
  private readonly byKey = new Map<string, string>();
  /** owner etcd key → uids of the dependents that reference that name. */
  private readonly dependents = new Map<string, Set<string>>();
  private readonly queue = new RetryQueue((uid) => this.process(uid), (_uid, e) => this.log(`garbage collector: ${e.message}`), RETRY_MS);
  private stopped = false;
  private watch?: { close(): Promise<void> };

  constructor(private readonly rs: ResourceStore, private readonly log: (m: string) => void = () => undefined) {}

  async start(): Promise<void> {
    let page = await this.rs.store.list(REGISTRY_ROOT, { limit: LIST_PAGE });
    const revision = page.revision;
    for (;;) {
      for (const o of page.items) this.upsert(o);
      if (!page.continueToken) break;
      page = await this.rs.store.list(REGISTRY_ROOT, { limit: LIST_PAGE, continueToken: page.continueToken });
    }
    this.watch = await this.rs.store.watch(REGISTRY_ROOT, revision, (e) => this.upsert(e.object), (err) => {
      this.log(`garbage collector watch failed (${err.message}); resyncing`);
      if (!this.stopped) this.later(() => void this.restart());
    }, {
      // Most writes (a status update, an object without owners) cannot concern the collector;
      // a key it holds must still be seen, in case the object stopped mattering.
      skipPut: (key, value) => !mayMatter(value) && !this.byKey.has(key.toString()),
      onDeletedKey: (key) => this.deleted(key.toString()),
    });
  }

  private async restart() {
    await this.watch?.close().catch(() => undefined);
    this.nodes.clear();
    this.byKey.clear();
    this.dependents.clear();
    await this.start().catch((e) => {
      this.log(`garbage collector resync: ${e}`);
      this.later(() => void this.restart());
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.queue.stop();
    await this.watch?.close();
  }

  private infoOf(apiVersion: string, kind: string): ResourceInfo | undefined {
    const group = apiVersion.includes('/') ? apiVersion.split('/')[0] : '';
    return this.rs.registry.byKind(group, kind);
  }

  /** Where the owner named by `ref` is stored (undefined for a kind this server does not serve). */
  private ownerKey(dependentNamespace: string | undefined, ref: OwnerReference): string | undefined {
    const info = this.infoOf(ref.apiVersion, ref.kind);
    return info && storageKey(info, info.namespaced ? dependentNamespace : undefined, ref.name);
  }

  private upsert(o: KObject) {
    const uid = o.metadata.uid;
    const info = this.infoOf(o.apiVersion, o.kind);
    if (!uid || !info) return;
    const key = storageKey(info, o.metadata.namespace, o.metadata.name!);
    this.forget(key);
    const owners = o.metadata.ownerReferences ?? [];
    const node: Node = {
      info, namespace: o.metadata.namespace, name: o.metadata.name!, uid, key,
      owners, ownerKeys: [...new Set(owners.map((r) => this.ownerKey(o.metadata.namespace, r)).filter((k): k is string => !!k))],
      deleting: !!o.metadata.deletionTimestamp, finalizers: o.metadata.finalizers ?? [],
    };
    if (!matters(node)) return;
    this.nodes.set(uid, node);
    this.byKey.set(key, uid);
    for (const k of node.ownerKeys) {
      const set = this.dependents.get(k) ?? new Set();
      set.add(uid);
      this.dependents.set(k, set);
    }
    this.enqueue(uid);
  }

  /** Drops the node stored at `key` from the graph; returns it. */
  private forget(key: string): Node | undefined {
    const uid = this.byKey.get(key);
    const node = uid === undefined ? undefined : this.nodes.get(uid);
    if (!node) return undefined;
    this.byKey.delete(key);
    this.nodes.delete(node.uid);
    for (const k of node.ownerKeys) {
      const set = this.dependents.get(k);
      if (set?.delete(node.uid) && !set.size) this.dependents.delete(k);
    }
    return node;
  }

  private deleted(key: string) {
    const node = this.forget(key);
    // Dependents of a vanished owner, and owners waiting on their last dependent.
    for (const d of this.dependents.get(key) ?? []) this.enqueue(d);
    if (node) for (const r of node.owners) this.enqueue(r.uid);
  }

  /** The dependents that reference `owner` itself (same uid), not an earlier object of its name. */
  private dependentsOf(owner: Node): Node[] {
    return [...(this.dependents.get(owner.key) ?? [])]
      .map((d) => this.nodes.get(d))
      .filter((n): n is Node => !!n && n.owners.some((r) => r.uid === owner.uid));
  }

  private later(fn: () => void) {
    this.queue.later(fn);
  }

  private enqueue(uid: string) {
    this.queue.add(uid);
  }

  private async live(info: ResourceInfo, ns: string | undefined, name: string): Promise<KObject | undefined> {
    try {
      return await this.rs.get(info, ns, name);
    } catch (e) {
      if (e instanceof ApiError && e.code === 404) return undefined;
      throw e;
    }
  }

  private async process(uid: string) {
    const node = this.nodes.get(uid);
    if (!node) return;
    if (node.deleting && node.finalizers.includes('orphan')) return this.orphanDependents(node);
    if (node.deleting && node.finalizers.includes('foregroundDeletion')) return this.deleteDependentsFirst(node);
    if (node.owners.length) return this.checkOwners(node);
  }

  /** Is the owner named by `ref` (same uid) still there? Live read: never trust the cache to delete. */
  private async ownerExists(dep: Node, ref: OwnerReference): Promise<boolean> {
    const info = this.infoOf(ref.apiVersion, ref.kind);
    if (!info) return false;
    const owner = await this.live(info, info.namespaced ? dep.namespace : undefined, ref.name);
    return !!owner && owner.metadata.uid === ref.uid;
  }

  private async checkOwners(node: Node) {
    const absent: string[] = [];
    for (const ref of node.owners) if (!(await this.ownerExists(node, ref))) absent.push(ref.uid);
    if (!absent.length) return;
    if (absent.length === node.owners.length) {
      if (node.deleting) return;
      this.log(`garbage collector: deleting ${node.info.kind} ${node.namespace ?? ''}/${node.name}: all owners are gone`);
      await this.rs.delete(node.info, node.namespace, node.name, { propagationPolicy: 'Background', preconditions: { uid: node.uid } }).catch(ignoreGone);
      return;
    }
    await this.editLive(node, (o) => {
      o.metadata.ownerReferences = (o.metadata.ownerReferences ?? []).filter((r) => !absent.includes(r.uid));
    });
  }

  private async orphanDependents(owner: Node) {
    for (const dep of this.dependentsOf(owner)) {
      await this.editLive(dep, (o) => {
        o.metadata.ownerReferences = (o.metadata.ownerReferences ?? []).filter((r) => r.uid !== owner.uid);
        if (!o.metadata.ownerReferences.length) delete o.metadata.ownerReferences;
      });
    }
    await this.removeFinalizer(owner, 'orphan');
  }

  private async deleteDependentsFirst(owner: Node) {
    const deps = this.dependentsOf(owner);
    for (const dep of deps) {
      if (!dep.deleting) await this.rs.delete(dep.info, dep.namespace, dep.name, { propagationPolicy: 'Foreground', preconditions: { uid: dep.uid } }).catch(ignoreGone);
    }
    if (deps.length) return this.later(() => this.enqueue(owner.uid));
    await this.removeFinalizer(owner, 'foregroundDeletion');
  }

  private async removeFinalizer(node: Node, finalizer: string) {
    await this.editLive(node, (o) => {
      o.metadata.finalizers = (o.metadata.finalizers ?? []).filter((f) => f !== finalizer);
    });
  }

  /** Read-modify-write of the live object with the same uid, retried on conflicts. */
  private async editLive(node: Node, edit: (o: KObject) => void) {
    for (let i = 0; i < 5; i++) {
      const o = await this.live(node.info, node.namespace, node.name);
      if (!o || o.metadata.uid !== node.uid) return;
      edit(o);
      try {
        await this.rs.update(node.info, node.namespace, node.name, o, { fieldManager: 'garbage-collector' });
        return;
      } catch (e) {
        if (e instanceof ApiError && e.code === 409) continue;
        if (e instanceof ApiError && e.code === 404) return;
        throw e;
      }
    }
  }
}

function ignoreGone(e: unknown) {
  if (e instanceof ApiError && (e.code === 404 || e.code === 409)) return;
  throw e;
}
