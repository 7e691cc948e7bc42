// The Instance `binding` subresource: places an instance on a host and charges the host's
// resources in one etcd transaction, like pods/binding plus a Placement claim. Because the check
// "allocatable − allocated ≥ request" and both writes happen under compare-and-swap on both
// objects, two schedulers (or one with a stale cache) can never overbook a host.
// Refusals follow api/binding.ts: 409 with typed details.causes when the state of the instance,
// host or flavor prevents the binding, 404 for a missing instance or host, 422 for a bad body.
import { planBinding } from '../api/binding.js';
import type { Flavor, Host, Instance } from '../api/kinds/index.js';
import { isDNS1123LabelOK } from '../api/name-validation.js';
import type { KObject, ResourceInfo } from '../api/types.js';
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
      // The flavor only matters for an instance still to be charged.
      const flavorName = instance.status?.hostName ? undefined : instance.spec?.flavor;
      const plan = planBinding(instance, host, flavorName ? await this.flavor(flavorName) : undefined);
      if ('alreadyBound' in plan) return { object: instance, created: false };
      if ('refused' in plan) throw new ApiError(409, 'Conflict', plan.refused.message, { name, group: 'kova.dev', kind: 'instances', causes: plan.refused.causes });
      const { instance: nextInstance, host: nextHost } = plan;
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
