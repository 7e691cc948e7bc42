// The Instance `binding` subresource: places an instance on a host and charges the host's
// resources in one etcd transaction, like pods/binding plus a Placement claim. Because the check
// "allocatable − allocated ≥ request" and both writes happen under compare-and-swap on both
// objects, two schedulers (or one with a stale cache) can never overbook a host.
// Refusals follow api/binding.ts: 409 with typed details.causes when the state of the instance,
// host or flavor prevents the binding, 404 for a missing instance or host, 422 for a bad body.
import { BindingCauses } from '../api/binding.js';
import type { BindingCause } from '../api/binding.js';
import { setCondition } from '../api/conditions.js';
import type { Flavor, Host, HostAllocation, Instance } from '../api/kinds/index.js';
import { isDNS1123LabelOK } from '../api/name-validation.js';
import { formatQuantity } from '../api/quantity.js';
import { formatResources, instanceRequest, parseLenient, subtract, sumQuantities } from '../api/resources.js';
import type { Resources } from '../api/resources.js';
import type { KObject, ResourceInfo } from '../api/types.js';
import { INSTANCE_FINALIZER, qualifiedResource } from '../api/types.js';
import { StoreError } from '../store/store.js';
import type { ResourceStore } from './resource-store.js';
import { storeToApiError } from './resource-store.js';
import { ApiError, badRequest, invalid, notFound } from './status.js';

/** Compare-and-swap attempts before answering 409 (many binds racing for one host serialize here). */
const MAX_ATTEMPTS = 100;
const FLAVOR_TTL_MS = 1000;

interface BindingBody {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string };
  target?: { name?: string; kind?: string };
}

const INSTANCE_RES = { group: 'kova.dev', plural: 'instances', kind: 'Instance' };

/** 409 Conflict on the instance; `message` defaults to kube's "Operation cannot be fulfilled on …: why". */
function refused(name: string, why: string, causes: BindingCause[], message = `Operation cannot be fulfilled on ${qualifiedResource(INSTANCE_RES)} "${name}": ${why}`): ApiError {
  return new ApiError(409, 'Conflict', message, { name, group: 'kova.dev', kind: 'instances', causes });
}

/** The resources an Instance asks for (its Flavor's, or spec.resources), counted as the scheduler counts them. */
function requestOf(instance: Instance, flavor: Flavor | undefined): Resources {
  const name = instance.metadata.name ?? '';
  const sizeField = flavor ? 'spec.flavor' : 'spec.resources';
  const r = instanceRequest(instance, () => flavor);
  if ('flavorNotFound' in r) {
    const why = `flavor "${r.flavorNotFound}" not found`;
    throw refused(name, why, [{ reason: BindingCauses.FlavorNotFound, message: why, field: 'spec.flavor' }]);
  }
  if ('invalid' in r) {
    const why = `cannot size the instance: ${r.invalid}`;
    throw refused(name, why, [{ reason: BindingCauses.InvalidResources, message: r.invalid, field: sizeField }]);
  }
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
    const why = `cannot size the instance: ${src} requests ${bad.map(([k, , q]) => `${k} ${q}`).join(', ')}; every request must be a finite amount of at least 0`;
    throw refused(name, why, bad.map(([k, , q]) => ({
      reason: BindingCauses.InvalidResources,
      message: `${src} requests ${k} ${q}; it must be a finite amount of at least 0`,
      field: flavor ? 'spec.flavor' : `spec.resources.${k}`,
    })));
  }
  return r.req;
}

/**
 * Why `req` does not fit on `host` given its allocations: the 409's message and one cause per
 * short dimension (vcpus, memory, disk), or undefined when it fits. The message keeps the form
 * "insufficient memory (requested 512Mi, free 256Mi) on host h1" for people; programs read the
 * causes. `flavor` names the Flavor the request came from (the causes' field).
 */
export function insufficiency(host: Host, allocs: readonly HostAllocation[], req: Resources, flavor?: string): { message: string; causes: BindingCause[] } | undefined {
  const allocatable = host.status?.allocatable;
  if (!allocatable) {
    const why = 'the host reports no allocatable resources yet';
    return { message: `insufficient resources: ${why}`, causes: [{ reason: BindingCauses.NoAllocatable, message: why, field: 'target.name' }] };
  }
  const free = subtract(parseLenient(allocatable), sumQuantities(allocs));
  const short: Array<[BindingCause['reason'], string, string]> = [];
  if (req.vcpus > free.vcpus) short.push([BindingCauses.InsufficientVCPUs, 'vcpus', `requested ${req.vcpus}, free ${free.vcpus}`]);
  if (req.memoryBytes > free.memoryBytes) short.push([BindingCauses.InsufficientMemory, 'memory', `requested ${formatQuantity(req.memoryBytes)}, free ${formatQuantity(Math.max(0, free.memoryBytes))}`]);
  if (req.diskBytes > free.diskBytes) short.push([BindingCauses.InsufficientDisk, 'disk', `requested ${formatQuantity(req.diskBytes)}, free ${formatQuantity(Math.max(0, free.diskBytes))}`]);
  if (!short.length) return undefined;
  const on = `on host ${host.metadata.name}`;
  return {
    message: `insufficient ${short.map(([, dim, amounts]) => `${dim} (${amounts})`).join(', ')} ${on}`,
    causes: short.map(([reason, dim, amounts]) => ({ reason, message: `insufficient ${dim} (${amounts}) ${on}`, field: flavor ? 'spec.flavor' : `spec.resources.${dim}` })),
  };
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
      const bound = instance.status?.hostName;
      if (bound === target) return { object: instance, created: false };
      if (bound) {
        throw refused(name, `instance is already bound to host ${bound}`, [{ reason: BindingCauses.AlreadyBound, message: `bound to host ${bound}`, field: 'status.hostName' }]);
      }
      if (instance.metadata.deletionTimestamp) {
        throw refused(name, 'instance is being deleted', [{ reason: BindingCauses.InstanceTerminating, message: 'the instance is being deleted', field: 'metadata.deletionTimestamp' }]);
      }
      if (host.spec?.fenced) throw refused(name, `host ${target} is fenced`, [{ reason: BindingCauses.HostFenced, message: `host ${target} is fenced`, field: 'target.name' }]);
      // A host its controller declared not ready (heartbeats stopped) would leave the instance
      // waiting for an agent that is gone; one without the condition yet is not refused.
      const ready = host.status?.conditions?.find((c) => c.type === 'Ready');
      if (ready?.status === 'False') {
        const why = `host ${target} is not ready${ready.reason ? ` (${ready.reason})` : ''}`;
        throw refused(name, why, [{ reason: BindingCauses.HostNotReady, message: why, field: 'target.name' }]);
      }
      const flavorName = instance.spec?.flavor;
      const flavor = flavorName ? await this.flavor(flavorName) : undefined;
      const req = requestOf(instance, flavor);

      const hostStatus = host.status ?? {};
      const uid = instance.metadata.uid!;
      const allocs = (hostStatus.allocations ?? []).filter((a) => a.uid !== uid);
      const short = insufficiency(host, allocs, req, flavorName);
      if (short) throw refused(name, '', short.causes, short.message);

      const entry: HostAllocation = { uid, instance: `${ns}/${name}`, ...formatResources(req) };
      const nextAllocs = [...allocs, entry];
      const nextHost: Host = { ...host, status: { ...hostStatus, allocations: nextAllocs, allocated: formatResources(sumQuantities(nextAllocs)) } };

      const st = instance.status ?? {};
      const finalizers = instance.metadata.finalizers ?? [];
      const nextInstance: Instance = {
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
  private async read(ns: string, name: string, host: string): Promise<[Instance, Host]> {
    let got: Array<KObject | undefined>;
    try {
      got = await this.rs.store.getMany([this.rs.key(this.instances, ns, name), this.rs.key(this.hosts, undefined, host)]);
    } catch (e) {
      return storeToApiError(e, this.instances, name);
    }
    if (!got[0]) throw notFound(this.instances, name);
    if (!got[1]) throw notFound(this.hosts, host);
    // The store holds what admission let through: objects of these kinds.
    return [got[0] as Instance, got[1] as Host];
  }

  /**
   * Flavors are read often and change rarely: a second of staleness is harmless because the
   * allocation records what was charged, and the host check runs under compare-and-swap.
   */
  private readonly flavors_ = new Map<string, { at: number; flavor: Flavor | undefined }>();
  private async flavor(name: string): Promise<Flavor | undefined> {
    const hit = this.flavors_.get(name);
    if (hit && Date.now() - hit.at < FLAVOR_TTL_MS) return hit.flavor;
    const flavor = await this.rs.get(this.flavors, undefined, name).then(
      (f) => f as Flavor,
      (e) => (e instanceof ApiError && e.code === 404 ? undefined : Promise.reject(e)),
    );
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
    if (!isDNS1123LabelOK(t)) {
      throw invalid(res, name, [{ reason: 'FieldValueInvalid', field: 'target.name', message: `Invalid value: "${t}": must be a host name (DNS-1123 label)` }]);
    }
    if (b.target?.kind !== undefined && b.target.kind !== 'Host') {
      throw invalid(res, name, [{ reason: 'FieldValueNotSupported', field: 'target.kind', message: `Unsupported value: "${b.target.kind}": supported values: "Host"` }]);
    }
    return b;
  }
}
