// What a ResourceQuota counts, shared by the API server (which charges quotas atomically with
// creates and updates) and the quota controller (which recomputes status.used from the objects):
//
//   count/<plural>.<group>   objects of any namespaced kind (count/instances.kova.dev,
//                            count/volumes.kova.dev, count/configmaps for the core group)
//   requests.vcpus           an Instance's vCPUs (its Flavor's, or spec.resources')   — Nova cores
//   requests.memory          an Instance's memory in bytes                            — Nova ram
//   requests.storage         a Volume's spec.size                                     — Cinder gigabytes
//
// Usage depends on an object's spec only, so status writes never change it.
import { formatQuantity, parseQuantity } from './quantity.js';
import type { FieldCause, KObject, ResourceInfo } from './types.js';

export const REQUESTS_VCPUS = 'requests.vcpus';
export const REQUESTS_MEMORY = 'requests.memory';
export const REQUESTS_STORAGE = 'requests.storage';
const COUNT = 'count/';

/** Resource name → amount (vCPUs, bytes or objects). */
export type Usage = Record<string, number>;

/** The size of an Instance: its Flavor's spec or its own spec.resources. */
export interface InstanceSize {
  vcpus: number;
  memory: string | number;
}

type Kind = Pick<ResourceInfo, 'group' | 'plural'>;

export const isInstanceKind = (r: Kind): boolean => r.group === 'kova.dev' && r.plural === 'instances';
export const isVolumeKind = (r: Kind): boolean => r.group === 'kova.dev' && r.plural === 'volumes';
export const isResourceQuotaKind = (r: Kind): boolean => r.group === '' && r.plural === 'resourcequotas';

/** `count/instances.kova.dev`, `count/configmaps`. */
export function countName(r: Kind): string {
  return `${COUNT}${r.group ? `${r.plural}.${r.group}` : r.plural}`;
}

/** The resource names an object of kind `r` can charge (whatever its spec). */
export function chargeableNames(r: Kind): string[] {
  if (isInstanceKind(r)) return [countName(r), REQUESTS_VCPUS, REQUESTS_MEMORY];
  if (isVolumeKind(r)) return [countName(r), REQUESTS_STORAGE];
  return [countName(r)];
}

/** The part of an object its usage depends on: an update that keeps it charges nothing. */
export function usageBasis(r: Kind, o: KObject): unknown {
  const spec = o.spec as Record<string, unknown> | undefined;
  if (isInstanceKind(r)) return [spec?.flavor, spec?.resources];
  if (isVolumeKind(r)) return spec?.size;
  return undefined;
}

/** The Flavor an Instance is sized by, when it names one (undefined with spec.resources). */
export function flavorOf(r: Kind, o: KObject): string | undefined {
  if (!isInstanceKind(r)) return undefined;
  const spec = o.spec as { flavor?: unknown; resources?: unknown } | undefined;
  return !spec?.resources && typeof spec?.flavor === 'string' ? spec.flavor : undefined;
}

const amount = (q: unknown): number => {
  if (typeof q !== 'string' && typeof q !== 'number') return 0;
  try {
    const v = parseQuantity(q);
    // `1e400` matches the quantity pattern but is no finite number: as large as can be.
    return Number.isFinite(v) ? v : v > 0 ? Number.MAX_VALUE : 0;
  } catch {
    return 0;
  }
};

/**
 * What one object charges. `flavor` is the Flavor's spec when flavorOf() names one (undefined
 * when it does not exist: the Instance then charges no vCPUs or memory, only its count).
 */
export function objectUsage(r: Kind, o: KObject, flavor?: InstanceSize): Usage {
  const u: Usage = { [countName(r)]: 1 };
  const spec = o.spec as Record<string, unknown> | undefined;
  if (isInstanceKind(r)) {
    const size = (spec?.resources as InstanceSize | undefined) ?? flavor;
    if (size) {
      u[REQUESTS_VCPUS] = amount(size.vcpus);
      u[REQUESTS_MEMORY] = amount(size.memory);
    }
  } else if (isVolumeKind(r)) {
    u[REQUESTS_STORAGE] = amount(spec?.size);
  }
  return u;
}

/** Bytes are printed with binary suffixes (50Gi), counts and vCPUs as plain numbers. */
export function formatUsage(name: string, n: number): string {
  return formatQuantity(n, name === REQUESTS_MEMORY || name === REQUESTS_STORAGE ? 'BinarySI' : 'DecimalSI');
}

/** Parses a ResourceList value; 0 for anything that is not a quantity (validation refuses those). */
export function quantityOf(q: unknown): number {
  return amount(q);
}

/** `count/<resource>[.<group>]`: the resource part must be a DNS-1123 subdomain-ish name. */
const COUNT_NAME = /^count\/[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** True for the resource names kova can track. */
export function isTrackedName(name: string): boolean {
  return name === REQUESTS_VCPUS || name === REQUESTS_MEMORY || name === REQUESTS_STORAGE || COUNT_NAME.test(name);
}

/**
 * What the schema cannot say about a ResourceQuota: only names kova tracks, and no scopes
 * (they select pods by pod properties, which kova's kinds do not have).
 */
export function resourceQuotaCauses(o: KObject): FieldCause[] {
  const out: FieldCause[] = [];
  const spec = (o.spec ?? {}) as { hard?: Record<string, unknown>; scopes?: unknown[]; scopeSelector?: { matchExpressions?: unknown[] } };
  for (const name of Object.keys(spec.hard ?? {})) {
    if (!isTrackedName(name)) {
      out.push({
        reason: 'FieldValueInvalid',
        field: `spec.hard[${name}]`,
        message: `Invalid value: ${JSON.stringify(name)}: must be count/<resource>.<group> (count/instances.kova.dev), count/<resource> for core kinds, ${REQUESTS_VCPUS}, ${REQUESTS_MEMORY} or ${REQUESTS_STORAGE}`,
      });
    }
  }
  if (spec.scopes?.length) {
    out.push({ reason: 'FieldValueForbidden', field: 'spec.scopes', message: 'Forbidden: quota scopes select pods; kova supports unscoped quotas only' });
  }
  if (spec.scopeSelector?.matchExpressions?.length) {
    out.push({ reason: 'FieldValueForbidden', field: 'spec.scopeSelector', message: 'Forbidden: quota scopes select pods; kova supports unscoped quotas only' });
  }
  return out;
}

type NamespacedKind = Kind & { namespaced: boolean };

/** The namespaced kind (of `kinds`) whose objects a resource name counts. */
export function kindFor<K extends NamespacedKind>(kinds: readonly K[], name: string): K | undefined {
  if (name === REQUESTS_VCPUS || name === REQUESTS_MEMORY) return kinds.find(isInstanceKind);
  if (name === REQUESTS_STORAGE) return kinds.find(isVolumeKind);
  return kinds.find((r) => r.namespaced && countName(r) === name);
}

/**
 * Totals of `names` over one namespace's objects, which `list` returns per kind (each kind
 * listed once, each Flavor looked up once). Names of kinds not in `kinds` total 0.
 */
export async function namespaceUsage<K extends NamespacedKind>(
  kinds: readonly K[], names: readonly string[],
  list: (kind: K) => Promise<KObject[]>,
  flavor: (name: string) => Promise<InstanceSize | undefined>,
): Promise<Usage> {
  const wanted = new Map<string, K>();
  for (const n of names) {
    const k = kindFor(kinds, n);
    if (k) wanted.set(countName(k), k);
  }
  const totals: Usage = Object.fromEntries(names.map((n) => [n, 0]));
  const flavors = new Map<string, Promise<InstanceSize | undefined>>();
  for (const kind of wanted.values()) {
    for (const o of await list(kind)) {
      const f = flavorOf(kind, o);
      let size: InstanceSize | undefined;
      if (f) {
        if (!flavors.has(f)) flavors.set(f, flavor(f));
        size = await flavors.get(f);
      }
      for (const [k, v] of Object.entries(objectUsage(kind, o, size))) if (k in totals) totals[k] += v;
    }
  }
  return totals;
}
