// ownerReferences garbage collection, the kube-controller-manager way in miniature:
// - background: a dependent whose owners are all gone is deleted;
// - foreground: an owner carrying `foregroundDeletion` loses that finalizer once its
//   dependents are gone (it deletes them first);
// - orphan: an owner carrying `orphan` has its references removed from dependents, then the
//   finalizer is dropped.
// A graph of uid → object identity is kept from one watch over the whole registry, holding
// only objects that can matter (with owners, or an orphan/foreground finalizer); the watch drops
// other changes before decoding them. Every decision to delete is re-checked with a live read,
// so a stale graph never deletes wrongly.
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
  owners: OwnerReference[];
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
  /** owner uid → dependent uids. */
  private readonly dependents = new Map<string, Set<string>>();
  /** etcd keys whose last seen value may matter: a later change to them must be seen even if it no longer does. */
  private readonly tracked = new Set<string>();
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
    for (const uid of this.nodes.keys()) this.enqueue(uid);
    this.watch = await this.rs.store.watch(REGISTRY_ROOT, revision, (e) => {
      if (e.type === 'DELETED') this.remove(e.object);
      else this.upsert(e.object);
    }, (err) => {
      this.log(`garbage collector watch failed (${err.message}); resyncing`);
      if (!this.stopped) this.later(() => void this.restart());
    }, { skipPut: (key, value) => this.skip(key, value) });
  }

  /** Most writes (a status update, an object without owners) cannot concern the collector. */
  private skip(key: Buffer, value: Buffer): boolean {
    const k = key.toString();
    if (mayMatter(value)) {
      this.tracked.add(k);
      return false;
    }
    return !this.tracked.delete(k);
  }

  private async restart() {
    await this.watch?.close().catch(() => undefined);
    this.nodes.clear();
    this.dependents.clear();
    this.tracked.clear();
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

  private infoOf(o: KObject): ResourceInfo | undefined {
    const group = o.apiVersion.includes('/') ? o.apiVersion.split('/')[0] : '';
    return this.rs.registry.byKind(group, o.kind);
  }

  private upsert(o: KObject) {
    const uid = o.metadata.uid;
    const info = this.infoOf(o);
    if (!uid || !info) return;
    const prev = this.nodes.get(uid);
    if (prev) for (const r of prev.owners) this.dropDependent(r.uid, uid);
    const node: Node = {
      info, namespace: o.metadata.namespace, name: o.metadata.name!, uid,
      owners: o.metadata.ownerReferences ?? [], deleting: !!o.metadata.deletionTimestamp, finalizers: o.metadata.finalizers ?? [],
    };
    if (!matters(node)) {
      this.nodes.delete(uid);
      this.tracked.delete(storageKey(info, node.namespace, node.name));
      return;
    }
    this.nodes.set(uid, node);
    this.tracked.add(storageKey(info, node.namespace, node.name));
    for (const r of node.owners) {
      const set = this.dependents.get(r.uid) ?? new Set();
      set.add(uid);
      this.dependents.set(r.uid, set);
    }
    this.enqueue(uid);
  }

  private dropDependent(owner: string, dependent: string) {
    const set = this.dependents.get(owner);
    if (set?.delete(dependent) && !set.size) this.dependents.delete(owner);
  }

  private remove(o: KObject) {
    const uid = o.metadata.uid;
    if (!uid) return;
    const node = this.nodes.get(uid);
    this.nodes.delete(uid);
    const info = this.infoOf(o);
    if (info) this.tracked.delete(storageKey(info, o.metadata.namespace, o.metadata.name!));
    if (node) for (const r of node.owners) this.dropDependent(r.uid, uid);
    // Dependents of a vanished owner, and owners waiting on their last dependent.
    for (const d of this.dependents.get(uid) ?? []) this.enqueue(d);
    if (node) for (const r of node.owners) this.enqueue(r.uid);
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
    const [group] = ref.apiVersion.includes('/') ? ref.apiVersion.split('/') : [''];
    const info = this.rs.registry.byKind(group, ref.kind);
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
    for (const d of [...(this.dependents.get(owner.uid) ?? [])]) {
      const dep = this.nodes.get(d);
      if (!dep) continue;
      await this.editLive(dep, (o) => {
        o.metadata.ownerReferences = (o.metadata.ownerReferences ?? []).filter((r) => r.uid !== owner.uid);
        if (!o.metadata.ownerReferences.length) delete o.metadata.ownerReferences;
      });
    }
    await this.removeFinalizer(owner, 'orphan');
  }

  private async deleteDependentsFirst(owner: Node) {
    const deps = [...(this.dependents.get(owner.uid) ?? [])].map((d) => this.nodes.get(d)).filter((n): n is Node => !!n);
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
