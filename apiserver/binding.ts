// The Instance `binding` subresource: places an instance on a host and charges the host's
// resources in one etcd transaction, like pods/binding plus a Placement claim. Because the check
// "allocatable − allocated ≥ request" and both writes happen under compare-and-swap on both
// objects, two schedulers (or one with a stale cache) can never overbook a host.
import { setCondition } from '../api/conditions.js';
import { formatQuantity } from '../api/quantity.js';
import { formatResources, instanceRequest, parseLenient, subtract, sumQuantities } from '../api/resources.js';
import type { ResourceQuantities, Resources } from '../api/resources.js';
import type { Condition, KObject, ResourceInfo } from '../api/types.js';
import { INSTANCE_FINALIZER } from '../api/types.js';
import { StoreError } from '../store/store.js';
import type { ResourceStore } from './resource-store.js';
import { storeToApiError } from './resource-store.js';
import { ApiError, badRequest, conflict, invalid, notFound } from './status.js';

/** Compare-and-swap attempts before answering 409 (many binds racing for one host serialize here). */
const MAX_ATTEMPTS = 100;
const FLAVOR_TTL_MS = 1000;

export interface Allocation {
  uid: string;
  instance: string;
  vcpus: number;
  memory: string;
  disk: string;
}

interface BindingBody {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string };
  target?: { name?: string; kind?: string };
}

/** The resources an Instance asks for (its Flavor's, or spec.resources), counted as the scheduler counts them. */
function requestOf(instance: KObject, flavor: KObject | undefined): Resources {
  const r = instanceRequest(instance, () => flavor);
  if ('flavorNotFound' in r) throw conflictMsg(instance, `flavor "${r.flavorNotFound}" not found`);
  if ('invalid' in r) throw conflictMsg(instance, `cannot size the instance: ${r.invalid}`);
  // Admission refuses negative and absurd sizes; an object stored before it did (or written
  // around it) must still never be charged: a negative charge frees room that is not there.
  const shown: Array<[string, number, string]> = [
    ['vcpus', r.req.vcpus, String(r.req.vcpus)],
    ['memory', r.req.memoryBytes, Number.isFinite(r.req.memoryBytes) ? formatQuantity(r.req.memoryBytes) : String(r.req.memoryBytes)],
    ['disk', r.req.diskBytes, Number.isFinite(r.req.diskBytes) ? formatQuantity(r.req.diskBytes) : String(r.req.diskBytes)],
  ];
  const bad = shown.filter(([, n]) => !(n >= 0) || !Number.isFinite(n));
  if (bad.length) {
    const src = flavor ? `flavor ${flavor.metadata.name}` : 'spec.resources';
    throw conflictMsg(instance, `cannot size the instance: ${src} requests ${bad.map(([k, , q]) => `${k} ${q}`).join(', ')}; every request must be a finite amount of at least 0`);
  }
  return r.req;
}

/** Why `req` does not fit on `host` given its allocations, or undefined when it fits. */
export function insufficiency(host: KObject, allocs: Allocation[], req: Resources): string | undefined {
  const status = (host.status ?? {}) as { allocatable?: ResourceQuantities };
  if (!status.allocatable) return 'insufficient resources: the host reports no allocatable resources yet';
  const free = subtract(parseLenient(status.allocatable), sumQuantities(allocs));
  const short: string[] = [];
  if (req.vcpus > free.vcpus) short.push(`vcpus (requested ${req.vcpus}, free ${free.vcpus})`);
  if (req.memoryBytes > free.memoryBytes) short.push(`memory (requested ${formatQuantity(req.memoryBytes)}, free ${formatQuantity(Math.max(0, free.memoryBytes))})`);
  if (req.diskBytes > free.diskBytes) short.push(`disk (requested ${formatQuantity(req.diskBytes)}, free ${formatQuantity(Math.max(0, free.diskBytes))})`);
  return short.length ? `insufficient ${short.join(', ')} on host ${host.metadata.name}` : undefined;
}

function conflictMsg(instance: KObject, why: string): ApiError {
  return conflict({ group: 'kova.dev', plural: 'instances', kind: 'Instance' }, instance.metadata.name ?? '', why);
}

export class Binder {
  constructor(
    private readonly rs: ResourceStore,
    private readonly instances: ResourceInfo,
    private readonly hosts: ResourceInfo,
    private readonly flavors: ResourceInfo,
  ) {}

  /** POST .../instances/{name}/binding. Returns the bound Instance (201), or it as is when already bound there. */
  async bind(ns: string, name: string, body: unknown, opts: { dryRun?: boolean } = {}): Promise<{ object: KObject; created: boolean }> {
    const b = this.parse(name, body);
    const target = b.target!.name!;
    const store = this.rs.store;
    for (let attempt = 0; ; attempt++) {
      const [instance, host] = await this.read(ns, name, target);
      const bound = (instance.status as { hostName?: string } | undefined)?.hostName;
      if (bound === target) return { object: instance, created: false };
      if (bound) throw conflictMsg(instance, `instance is already bound to host ${bound}`);
      if (instance.metadata.deletionTimestamp) throw conflictMsg(instance, 'instance is being deleted');
      if ((host.spec as { fenced?: boolean } | undefined)?.fenced) throw conflictMsg(instance, `host ${target} is fenced`);
      const flavorName = (instance.spec as { flavor?: string } | undefined)?.flavor;
      const flavor = flavorName ? await this.flavor(flavorName) : undefined;
      const req = requestOf(instance, flavor);

      const hostStatus = (host.status ?? {}) as Record<string, unknown> & { allocations?: Allocation[] };
      const uid = instance.metadata.uid!;
      const allocs = (hostStatus.allocations ?? []).filter((a) => a.uid !== uid);
      const why = insufficiency(host, allocs, req);
      // The message starts with "insufficient" so schedulers can tell "host full" from a race.
      if (why) throw new ApiError(409, 'Conflict', why, { name, group: 'kova.dev', kind: 'instances' });

      const entry: Allocation = { uid, instance: `${ns}/${name}`, ...formatResources(req) };
      const nextAllocs = [...allocs, entry];
      const nextHost: KObject = { ...host, status: { ...hostStatus, allocations: nextAllocs, allocated: formatResources(sumQuantities(nextAllocs)) } };

      const st = (instance.status ?? {}) as Record<string, unknown> & { conditions?: Condition[]; phase?: string };
      const finalizers = instance.metadata.finalizers ?? [];
      const nextInstance: KObject = {
        ...instance,
        metadata: { ...instance.metadata, finalizers: finalizers.includes(INSTANCE_FINALIZER) ? finalizers : [...finalizers, INSTANCE_FINALIZER] },
        status: {
          ...st,
          hostName: target,
          phase: !st.phase || st.phase === 'Pending' || st.phase === 'Scheduling' ? 'Provisioning' : st.phase,
          conditions: setCondition(st.conditions, { type: 'Scheduled', status: 'True', reason: 'Scheduled', message: `bound to host ${target}` }),
        },
      };
      if (opts.dryRun) return { object: nextInstance, created: true };
      try {
        const [out] = await store.updateMany([
          { key: this.rs.key(this.instances, ns, name), obj: nextInstance, expectedRevision: instance.metadata.resourceVersion! },
          { key: this.rs.key(this.hosts, undefined, target), obj: nextHost, expectedRevision: host.metadata.resourceVersion! },
        ]);
        return { object: out, created: true };
      } catch (e) {
        if (e instanceof StoreError && e.code === 'Conflict' && attempt < MAX_ATTEMPTS) {
          // Spread out racers after a few losses so they stop colliding in lockstep.
          if (attempt >= 3) await new Promise((r) => setTimeout(r, Math.random() * Math.min(50, 2 ** attempt)));
          continue;
        }
        if (e instanceof StoreError && e.code === 'NotFound') continue; // re-read: the next get reports which one is gone
        storeToApiError(e, this.instances, name);
      }
    }
  }

  /** The instance and the host, read in one etcd round trip. */
  private async read(ns: string, name: string, host: string): Promise<[KObject, KObject]> {
    let got: Array<KObject | undefined>;
    try {
      got = await this.rs.store.getMany([this.rs.key(this.instances, ns, name), this.rs.key(this.hosts, undefined, host)]);
    } catch (e) {
      return storeToApiError(e, this.instances, name);
    }
    if (!got[0]) throw notFound(this.instances, name);
    if (!got[1]) throw notFound(this.hosts, host);
    return [got[0], got[1]];
  }

  /**
   * Flavors are read often and change rarely: a second of staleness is harmless because the
   * allocation records what was charged, and the host check runs under compare-and-swap.
   */
  private readonly flavors_ = new Map<string, { at: number; flavor: KObject | undefined }>();
  private async flavor(name: string): Promise<KObject | undefined> {
    const hit = this.flavors_.get(name);
    if (hit && Date.now() - hit.at < FLAVOR_TTL_MS) return hit.flavor;
    const flavor = await this.rs.get(this.flavors, undefined, name).catch((e) => (e instanceof ApiError && e.code === 404 ? undefined : Promise.reject(e)));
    if (this.flavors_.size > 10_000) this.flavors_.clear();
    this.flavors_.set(name, { at: Date.now(), flavor });
    return flavor;
  }

  private parse(name: string, body: unknown): BindingBody {
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw badRequest('the request body must be a Binding object');
    const b = body as BindingBody;
    if (b.kind !== undefined && b.kind !== 'Binding') throw badRequest(`the kind in the data (${b.kind}) must be Binding`);
    if (b.metadata?.name !== undefined && b.metadata.name !== name) {
      throw badRequest(`the name of the binding (${b.metadata.name}) does not match the instance on the URL (${name})`);
    }
    const res = { group: 'kova.dev', kind: 'Binding', plural: 'bindings' };
    const t = b.target?.name;
    if (typeof t !== 'string' || !t) throw invalid(res, name, [{ reason: 'FieldValueRequired', field: 'target.name', message: 'Required value: the host to bind to' }]);
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(t) || t.length > 63) {
      throw invalid(res, name, [{ reason: 'FieldValueInvalid', field: 'target.name', message: `Invalid value: "${t}": must be a host name (DNS-1123 label)` }]);
    }
    if (b.target?.kind !== undefined && b.target.kind !== 'Host') {
      throw invalid(res, name, [{ reason: 'FieldValueNotSupported', field: 'target.kind', message: `Unsupported value: "${b.target.kind}": supported values: "Host"` }]);
    }
    return b;
  }
}
