// ResourceQuota enforcement, atomic with the write it charges (kube-apiserver's quota admission,
// without its window between charging and creating): a create of a counted kind in a namespace
// with quotas checks every quota that tracks what the object uses (hard ≥ used + delta) and
// writes the object AND each quota's new status.used in one etcd transaction, compared on the
// quotas' mod revisions. A lost race re-reads (from the failed transaction itself) and retries,
// so 32 concurrent creates against count/instances.kova.dev=10 admit exactly 10.
//
// The quotas of each namespace come from a watch-fed cache: a namespace without quotas (or with
// quotas that track nothing the object uses) costs one map lookup and takes the plain create.
// Releases (deletions) are the quota controller's: it recomputes status.used from the objects.
import type { Registry } from '../../api/registry.js';
import type { KObject, ResourceInfo } from '../../api/types.js';
import { qualifiedResource } from '../../api/types.js';
import {
  chargeableNames, flavorOf, formatUsage, isInstanceKind, isVolumeKind, namespaceUsage, objectUsage, quantityOf, REQUESTS_MEMORY, REQUESTS_VCPUS, usageBasis,
} from '../../api/quota-usage.js';
import type { InstanceSize, Usage } from '../../api/quota-usage.js';
import type { Store, WatchHandle } from '../../store/store.js';
import { StoreError } from '../../store/store.js';
import { storageKey, storagePrefix } from '../keys.js';
import { jsonEqual } from '../object-rules.js';
import { ApiError, conflict } from '../status.js';

/** Transaction attempts before giving up (each lost race means another write went through). */
const MAX_ATTEMPTS = 100;
/** Wait before restarting a failed quota watch. */
const REWATCH_MS = 1000;

const QUOTA_RES = { group: '', plural: 'resourcequotas', namespaced: true } as const;

interface QuotaSpecStatus {
  spec?: { hard?: Record<string, unknown> };
  status?: { hard?: Record<string, unknown>; used?: Record<string, unknown> };
}

export class QuotaCharger {
  /** namespace → quota name → quota, while the watch runs. */
  private readonly byNamespace = new Map<string, Map<string, KObject>>();
  private watch?: WatchHandle;
  private stopped = false;
  private retry?: NodeJS.Timeout;
  readonly stats = { charged: 0, conflicts: 0, refused: 0 };

  constructor(
    private readonly store: Store,
    private readonly registry: Registry,
  ) {}

  async start(): Promise<void> {
    const prefix = storagePrefix(QUOTA_RES);
    const { items, revision } = await this.store.list(prefix);
    this.byNamespace.clear();
    for (const q of items) this.remember(q);
    this.watch = await this.store.watch(prefix, revision, (e) => {
      if (e.type === 'DELETED') this.forget(e.object);
      else this.remember(e.object);
    }, () => {
      // Without the watch every charge reads the namespace's quotas live, until it is back.
      this.watch = undefined;
      this.byNamespace.clear();
      this.rewatchLater();
    });
    if (this.stopped) await this.stop(); // stopped while (re)starting
  }

  private rewatchLater(): void {
    if (!this.stopped) this.retry = setTimeout(() => void this.start().catch(() => this.rewatchLater()), REWATCH_MS);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    await this.watch?.close();
  }

  private remember(q: KObject): void {
    const ns = q.metadata.namespace!;
    let m = this.byNamespace.get(ns);
    if (!m) this.byNamespace.set(ns, (m = new Map()));
    // A copy read by a failed transaction may be older than what the watch delivered since.
    const known = m.get(q.metadata.name!);
    if (known && Number(known.metadata.resourceVersion) > Number(q.metadata.resourceVersion)) return;
    m.set(q.metadata.name!, q);
  }

  private forget(q: KObject): void {
    const m = this.byNamespace.get(q.metadata.namespace!);
    m?.delete(q.metadata.name!);
    if (m?.size === 0) this.byNamespace.delete(q.metadata.namespace!);
  }

  /**
   * Whether a write of `info` in `ns` may need charging: a quota there tracks something such an
   * object uses. Synchronous and cheap: the no-quota path of every create asks it. Without the
   * watch (failed, restarting) the answer is "maybe" and the charge path reads live.
   */
  applies(info: ResourceInfo, ns: string | undefined): boolean {
    if (!ns || !info.namespaced) return false;
    if (!this.watch) return true;
    const quotas = this.byNamespace.get(ns);
    if (!quotas) return false;
    const names = chargeableNames(info);
    for (const q of quotas.values()) {
      const hard = (q as QuotaSpecStatus).spec?.hard;
      if (hard && names.some((n) => n in hard)) return true;
    }
    return false;
  }

  /** Whether an update from `current` to `next` changes what the object charges. */
  updateApplies(info: ResourceInfo, current: KObject, next: KObject): boolean {
    return (isInstanceKind(info) || isVolumeKind(info)) && this.applies(info, current.metadata.namespace) && !jsonEqual(usageBasis(info, current), usageBasis(info, next));
  }

  /** Creates `obj` at `key` and charges the namespace's quotas in one transaction; dryRun checks only. */
  async create(info: ResourceInfo, key: string, obj: KObject, dryRun = false): Promise<KObject> {
    const ns = obj.metadata.namespace!;
    const delta = await this.usage(info, obj, ns);
    const out = await this.charge(info, ns, obj.metadata.name!, delta, dryRun, async (quotas) => {
      const writes = [{ key, obj }, ...quotas.map((q) => ({ key: storageKey(QUOTA_RES, ns, q.next.metadata.name!), obj: q.next, expectedRevision: q.current.metadata.resourceVersion! }))];
      const r = await this.store.writeAll(writes);
      if ('stored' in r) return { done: r.stored[0]! };
      if (r.current[0]) throw new StoreError('AlreadyExists', `${key} already exists`);
      return { fresh: r.current.slice(1) };
    });
    return out ?? obj;
  }

  /** Writes `next` over `current` (CAS on both) charging the change in usage; dryRun checks only. */
  async update(info: ResourceInfo, key: string, current: KObject, next: KObject, dryRun = false): Promise<KObject> {
    const ns = current.metadata.namespace!;
    const [before, after] = await Promise.all([this.usage(info, current, ns), this.usage(info, next, ns)]);
    const delta: Usage = {};
    for (const k of new Set([...Object.keys(before), ...Object.keys(after)])) {
      const d = (after[k] ?? 0) - (before[k] ?? 0);
      if (d !== 0) delta[k] = d;
    }
    const out = await this.charge(info, ns, current.metadata.name!, delta, dryRun, async (quotas) => {
      const writes = [
        { key, obj: next, expectedRevision: current.metadata.resourceVersion! },
        ...quotas.map((q) => ({ key: storageKey(QUOTA_RES, ns, q.next.metadata.name!), obj: q.next, expectedRevision: q.current.metadata.resourceVersion! })),
      ];
      const r = await this.store.writeAll(writes);
      if ('stored' in r) return { done: r.stored[0]! };
      const now = r.current[0];
      if (!now) throw new StoreError('NotFound', `${key} not found`);
      if (now.metadata.resourceVersion !== current.metadata.resourceVersion) throw new StoreError('Conflict', `${key}: the object has been modified`, { current: now });
      return { fresh: r.current.slice(1) };
    });
    return out ?? next;
  }

  /**
   * The check-and-write loop: plans each quota's new status from the freshest copy known, and
   * calls `write` with them; `write` answers with the stored object or the quotas as they are
   * now (undefined: deleted), and the loop tries again with those. dryRun: checks, writes nothing.
   */
  private async charge(
    info: ResourceInfo, ns: string, name: string, delta: Usage, dryRun: boolean,
    write: (quotas: Array<{ current: KObject; next: KObject }>) => Promise<{ done: KObject } | { fresh: Array<KObject | undefined> }>,
  ): Promise<KObject | undefined> {
    let quotas = await this.quotasOf(ns);
    for (let attempt = 0; ; attempt++) {
      const plans: Array<{ current: KObject; next: KObject }> = [];
      for (const q of quotas.sort((a, b) => a.metadata.name!.localeCompare(b.metadata.name!))) {
        const next = await this.plan(info, ns, name, q, delta);
        if (next) plans.push({ current: q, next });
      }
      if (dryRun) return undefined; // checked, not charged
      const r = await write(plans);
      if ('done' in r) {
        this.stats.charged++;
        return r.done;
      }
      this.stats.conflicts++;
      if (attempt >= MAX_ATTEMPTS) throw conflict({ group: '', plural: 'resourcequotas', kind: 'ResourceQuota' }, plans[0]?.current.metadata.name ?? '', 'too many concurrent writes charging the quota; please try again');
      quotas = [];
      plans.forEach((p, i) => {
        const now = r.fresh[i];
        if (now) {
          quotas.push(now);
          this.remember(now);
        } else {
          this.forget(p.current); // deleted meanwhile
        }
      });
      // Spread out racers after a few losses so they stop colliding in lockstep.
      if (attempt >= 2) await new Promise((res) => setTimeout(res, Math.random() * Math.min(50, 2 ** attempt)));
    }
  }

  /**
   * The quota with `delta` added to status.used (and status.hard = spec.hard), or a 403 when a
   * resource it limits would exceed its hard value. undefined when the quota tracks nothing
   * of `delta`. Used values it has never recorded are counted from the namespace first.
   */
  private async plan(info: ResourceInfo, ns: string, name: string, q: KObject, delta: Usage): Promise<KObject | undefined> {
    const { spec, status } = q as QuotaSpecStatus;
    const hard = spec?.hard ?? {};
    const tracked = Object.keys(delta).filter((k) => k in hard);
    if (!tracked.length) return undefined;
    const used: Record<string, unknown> = { ...(status?.used ?? {}) };
    const unknown = Object.keys(hard).filter((k) => used[k] === undefined);
    if (unknown.length) Object.assign(used, await this.count(ns, unknown));
    const exceeded = tracked.filter((k) => delta[k]! > 0 && quantityOf(used[k]) + delta[k]! > quantityOf(hard[k]));
    if (exceeded.length) {
      this.stats.refused++;
      const list = (f: (k: string) => string) => exceeded.sort().map((k) => `${k}=${f(k)}`).join(',');
      const msg = `exceeded quota: ${q.metadata.name}, requested: ${list((k) => formatUsage(k, delta[k]!))}, used: ${list((k) => formatUsage(k, quantityOf(used[k])))}, limited: ${list((k) => String(hard[k]))}`;
      throw new ApiError(403, 'Forbidden', `${qualifiedResource(info)} ${JSON.stringify(name)} is forbidden: ${msg}`, { name, group: info.group, kind: info.plural });
    }
    for (const k of tracked) used[k] = formatUsage(k, Math.max(0, quantityOf(used[k]) + delta[k]!));
    return { ...q, status: { ...(status ?? {}), hard: { ...hard }, used } };
  }

  /** The namespace's quotas: from the cache, or read live while the watch is down. */
  private async quotasOf(ns: string): Promise<KObject[]> {
    if (this.watch) return [...(this.byNamespace.get(ns)?.values() ?? [])];
    return (await this.store.list(storagePrefix(QUOTA_RES, ns))).items;
  }

  /** What `o` charges; a missing Flavor is refused only where a quota limits vCPUs or memory. */
  private async usage(info: ResourceInfo, o: KObject, ns: string): Promise<Usage> {
    const flavorName = flavorOf(info, o);
    if (!flavorName) return objectUsage(info, o);
    const size = await this.flavor(flavorName);
    if (!size) {
      const limiting = (await this.quotasOf(ns)).find((q) => {
        const hard = (q as QuotaSpecStatus).spec?.hard ?? {};
        return REQUESTS_VCPUS in hard || REQUESTS_MEMORY in hard;
      });
      if (limiting) {
        throw new ApiError(403, 'Forbidden', `${qualifiedResource(info)} ${JSON.stringify(o.metadata.name)} is forbidden: failed quota: ${limiting.metadata.name}: flavor ${JSON.stringify(flavorName)} not found, so ${REQUESTS_VCPUS} and ${REQUESTS_MEMORY} cannot be computed`, {
          name: o.metadata.name, group: info.group, kind: info.plural,
        });
      }
    }
    return objectUsage(info, o, size);
  }

  private async flavor(name: string): Promise<InstanceSize | undefined> {
    const flavors = this.registry.lookup('kova.dev', 'v1alpha1', 'flavors');
    if (!flavors) return undefined;
    const f = await this.store.get(storageKey(flavors, undefined, name));
    return f?.spec as InstanceSize | undefined;
  }

  /** Usage of `names` in `ns`, counted from the objects now in etcd. */
  private async count(ns: string, names: string[]): Promise<Record<string, string>> {
    const totals = await namespaceUsage(this.registry.all(), names, (info) => listAll(this.store, storagePrefix(info, ns)), (n) => this.flavor(n));
    return Object.fromEntries(names.map((k) => [k, formatUsage(k, totals[k] ?? 0)]));
  }
}

async function listAll(store: Store, prefix: string): Promise<KObject[]> {
  const out: KObject[] = [];
  let token: string | undefined;
  do {
    const page = await store.list(prefix, { limit: 1000, continueToken: token });
    out.push(...page.items);
    token = page.continueToken;
  } while (token);
  return out;
}
