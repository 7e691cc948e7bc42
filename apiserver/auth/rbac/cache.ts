// An in-process copy of every Role, ClusterRole, RoleBinding and ClusterRoleBinding, kept fresh
// by one etcd watch on the RBAC group's key prefix (list, then watch from the list's revision;
// relist with back-off when the watch dies, e.g. after compaction), like the informers behind
// kube-apiserver's RBAC authorizer. Bindings are indexed by the user and group names they
// name, cluster-wide and per namespace, so authorizing a request is a few map lookups however
// many bindings exist.
import type { KObject } from '../../../api/types.js';
import type { Store, StoreError, WatchEvent, WatchHandle } from '../../../store/store.js';
import { REGISTRY_ROOT } from '../../keys.js';
import type { PolicyRule } from '../types.js';
import { RBAC_GROUP, serviceAccountUser, toPolicyRules, type RoleRef, type Subject } from './rules.js';

/** Every RBAC object lives under this etcd prefix (`/registry/rbac.authorization.k8s.io/roles/...`). */
export const RBAC_PREFIX = `${REGISTRY_ROOT}${RBAC_GROUP}/`;

export interface CachedBinding {
  kind: 'RoleBinding' | 'ClusterRoleBinding';
  /** '' for a ClusterRoleBinding. */
  namespace: string;
  name: string;
  roleRef: RoleRef;
  subjects: Subject[];
}

type Index = Map<string, Set<CachedBinding>>;

/** One consistent snapshot of the RBAC objects and their indexes (replaced whole on a relist). */
export class RbacState {
  /** Roles by `namespace/name`. */
  readonly roles = new Map<string, PolicyRule[]>();
  readonly clusterRoles = new Map<string, PolicyRule[]>();
  /** ClusterRoleBindings by name, RoleBindings by `namespace/name`. */
  readonly clusterRoleBindings = new Map<string, CachedBinding>();
  readonly roleBindings = new Map<string, CachedBinding>();
  /** Cluster-wide bindings by the user names and group names their subjects name. */
  readonly clusterByUser: Index = new Map();
  readonly clusterByGroup: Index = new Map();
  /** RoleBindings per namespace, by user and group name. */
  readonly nsByUser = new Map<string, Index>();
  readonly nsByGroup = new Map<string, Index>();

  role(namespace: string, name: string): PolicyRule[] | undefined {
    return this.roles.get(`${namespace}/${name}`);
  }

  apply(type: WatchEvent['type'], o: KObject): void {
    const ns = o.metadata?.namespace ?? '';
    const name = o.metadata?.name;
    if (!name) return;
    const deleted = type === 'DELETED';
    switch (o.kind) {
      case 'Role':
        if (deleted) this.roles.delete(`${ns}/${name}`);
        else this.roles.set(`${ns}/${name}`, toPolicyRules(o.rules));
        return;
      case 'ClusterRole':
        if (deleted) this.clusterRoles.delete(name);
        else this.clusterRoles.set(name, toPolicyRules(o.rules));
        return;
      case 'RoleBinding':
      case 'ClusterRoleBinding': {
        const cluster = o.kind === 'ClusterRoleBinding';
        const byName = cluster ? this.clusterRoleBindings : this.roleBindings;
        const key = cluster ? name : `${ns}/${name}`;
        const old = byName.get(key);
        if (old) this.unindex(old);
        if (deleted) {
          byName.delete(key);
          return;
        }
        const b = toBinding(o, cluster ? '' : ns);
        byName.set(key, b);
        this.index(b);
        return;
      }
    }
  }

  private indexes(b: CachedBinding, create: boolean): [Index, Index] | undefined {
    if (b.kind === 'ClusterRoleBinding') return [this.clusterByUser, this.clusterByGroup];
    let users = this.nsByUser.get(b.namespace);
    let groups = this.nsByGroup.get(b.namespace);
    if (!users || !groups) {
      if (!create) return undefined;
      this.nsByUser.set(b.namespace, (users = new Map()));
      this.nsByGroup.set(b.namespace, (groups = new Map()));
    }
    return [users, groups];
  }

  private index(b: CachedBinding): void {
    const [users, groups] = this.indexes(b, true)!;
    for (const { index, name } of subjectKeys(b, users, groups)) {
      let set = index.get(name);
      if (!set) index.set(name, (set = new Set()));
      set.add(b);
    }
  }

  private unindex(b: CachedBinding): void {
    const ix = this.indexes(b, false);
    if (!ix) return;
    for (const { index, name } of subjectKeys(b, ix[0], ix[1])) {
      const set = index.get(name);
      if (!set) continue;
      set.delete(b);
      if (!set.size) index.delete(name);
    }
    if (b.kind === 'RoleBinding' && !ix[0].size && !ix[1].size) {
      this.nsByUser.delete(b.namespace);
      this.nsByGroup.delete(b.namespace);
    }
  }
}

/** The index entries of a binding: User and ServiceAccount subjects by user name, Group subjects by group name. */
function subjectKeys(b: CachedBinding, users: Index, groups: Index): Array<{ index: Index; name: string }> {
  const out: Array<{ index: Index; name: string }> = [];
  for (const s of b.subjects) {
    if (s.kind === 'User') out.push({ index: users, name: s.name });
    else if (s.kind === 'Group') out.push({ index: groups, name: s.name });
    else if (s.kind === 'ServiceAccount') {
      const ns = s.namespace || b.namespace;
      if (ns) out.push({ index: users, name: serviceAccountUser(ns, s.name) });
    }
  }
  return out;
}

function toBinding(o: KObject, namespace: string): CachedBinding {
  const ref = (o.roleRef ?? {}) as Partial<RoleRef>;
  const subjects: Subject[] = [];
  if (Array.isArray(o.subjects)) {
    for (const s of o.subjects as Array<Partial<Subject>>) {
      if (!s || typeof s.kind !== 'string' || typeof s.name !== 'string') continue;
      subjects.push({ kind: s.kind, name: s.name, apiGroup: s.apiGroup, namespace: s.namespace });
    }
  }
  return {
    kind: o.kind as CachedBinding['kind'],
    namespace,
    name: o.metadata.name!,
    roleRef: { apiGroup: ref.apiGroup ?? '', kind: ref.kind ?? '', name: ref.name ?? '' },
    subjects,
  };
}

export interface RbacCacheOptions {
  /** First retry delay after a failed list or a dead watch; doubles up to maxBackoffMs. Default 200 ms. */
  minBackoffMs?: number;
  /** Default 10 s. */
  maxBackoffMs?: number;
  /** Objects per etcd range while listing. Default 1000. */
  pageSize?: number;
  log?: (msg: string) => void;
}

export class RbacCache {
  /** The current snapshot; replaced by a relist, mutated in place by watch events. */
  state = new RbacState();
  /** Introspection for tests: how often the cache listed, and how many events it applied. */
  readonly stats = { lists: 0, events: 0, watchErrors: 0 };
  private watch?: WatchHandle;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private backoffMs: number;
  private synced = false;
  private generation = 0;
  private readonly readyWaiters: Array<() => void> = [];
  private readonly opts: Required<Omit<RbacCacheOptions, 'log'>> & Pick<RbacCacheOptions, 'log'>;

  constructor(private readonly store: Store, opts: RbacCacheOptions = {}) {
    this.opts = { minBackoffMs: opts.minBackoffMs ?? 200, maxBackoffMs: opts.maxBackoffMs ?? 10_000, pageSize: opts.pageSize ?? 1000, log: opts.log };
    this.backoffMs = this.opts.minBackoffMs;
  }

  /** True once the first list has completed (the cache then always answers from some snapshot). */
  get ready(): boolean {
    return this.synced;
  }

  /** Starts listing and watching; resolves when the first list is in (retrying until it is, or until stop()). */
  start(): Promise<void> {
    const ready = this.whenReady();
    void this.sync();
    return ready;
  }

  whenReady(): Promise<void> {
    if (this.synced || this.stopped) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const w of this.readyWaiters.splice(0)) w();
    const w = this.watch;
    this.watch = undefined;
    await w?.close();
  }

  /** Lists everything into a fresh snapshot, swaps it in, and watches from the list's revision. */
  private async sync(): Promise<void> {
    if (this.stopped) return;
    try {
      const fresh = new RbacState();
      let revision: string | undefined;
      let continueToken: string | undefined;
      do {
        const page = await this.store.list(RBAC_PREFIX, { limit: this.opts.pageSize, continueToken });
        for (const o of page.items) fresh.apply('ADDED', o);
        revision ??= page.revision;
        continueToken = page.continueToken;
      } while (continueToken && !this.stopped);
      if (this.stopped) return;
      this.stats.lists++;
      this.state = fresh;
      // Events can arrive before watch() resolves; the generation tells this watch's events
      // (and its failure) from those of a watch a relist has replaced.
      const gen = ++this.generation;
      const handle = await this.store.watch(
        RBAC_PREFIX,
        revision,
        (e) => {
          if (gen !== this.generation) return;
          this.stats.events++;
          this.state.apply(e.type, e.object);
        },
        (err) => this.watchFailed(gen, err),
      );
      if (this.stopped || gen !== this.generation) {
        await handle.close();
        return;
      }
      this.watch = handle;
      this.backoffMs = this.opts.minBackoffMs;
      this.markReady();
    } catch (e) {
      this.opts.log?.(`rbac cache: list/watch of ${RBAC_PREFIX} failed, retrying in ${this.backoffMs} ms: ${(e as Error)?.message ?? e}`);
      this.retryLater();
    }
  }

  private watchFailed(gen: number, err: StoreError): void {
    if (this.stopped || gen !== this.generation) return;
    this.generation++;
    this.stats.watchErrors++;
    const dead = this.watch;
    this.watch = undefined;
    void dead?.close().catch(() => undefined);
    this.opts.log?.(`rbac cache: watch ended (${err.code}: ${err.message}); relisting`);
    // History gone (compaction): relist at once; anything else (etcd away) with back-off.
    if (err.code === 'Expired') void this.sync();
    else this.retryLater();
  }

  private retryLater(): void {
    if (this.stopped) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.opts.maxBackoffMs);
    this.timer = setTimeout(() => void this.sync(), delay);
    this.timer.unref?.();
  }

  private markReady(): void {
    if (this.synced) return;
    this.synced = true;
    for (const w of this.readyWaiters.splice(0)) w();
  }
}
