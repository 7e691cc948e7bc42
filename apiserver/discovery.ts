// Discovery documents: legacy (/api, /apis, /api/v1, /apis/<g>/<v>) and aggregated (v2),
// derived from the registry so CRD files stay the single source of truth.
import type { Registry } from '../api/registry.js';
import type { ResourceInfo } from '../api/types.js';
import { groupVersion } from '../api/types.js';
import { REVIEW_RESOURCES } from './auth/reviews.js';
import type { ReviewResource } from './auth/reviews.js';
import { usageDiscovery } from './metering/usage-api.js';

export const SERVER_VERSION = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.0-kova',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2026-11-25T00:00:00Z',
  goVersion: 'go1.23.0',
  compiler: 'gc',
  platform: 'linux/amd64',
};

const RW_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

/**
 * Whether DELETE on the collection is served. Like kube-apiserver, namespaces have no
 * deletecollection: one request must not be able to delete every project.
 */
export function supportsDeleteCollection(r: ResourceInfo): boolean {
  return !(r.group === '' && r.kind === 'Namespace');
}

function verbsOf(r: ResourceInfo): string[] {
  return supportsDeleteCollection(r) ? RW_VERBS : RW_VERBS.filter((v) => v !== 'deletecollection');
}

/** Groups served besides the registry's: the create-only reviews of authorization.k8s.io and authentication.k8s.io. */
function reviewsOf(gv: string): ReviewResource[] {
  return REVIEW_RESOURCES.filter((r) => `${r.group}/${r.version}` === gv);
}

function groupsOf(registry: Registry): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const r of registry.all()) {
    if (!r.group) continue;
    const vs = groups.get(r.group) ?? [];
    if (!vs.includes(r.version)) vs.push(r.version);
    groups.set(r.group, vs);
  }
  for (const r of REVIEW_RESOURCES) {
    const vs = groups.get(r.group) ?? [];
    if (!vs.includes(r.version)) vs.push(r.version);
    groups.set(r.group, vs);
  }
  return groups;
}

export function apiVersions(serverAddress: string) {
  return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
}

export function apiGroupList(registry: Registry) {
  const groups = [...groupsOf(registry)].map(([name, versions]) => {
    const vs = versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
    return { name, versions: vs, preferredVersion: vs[0] };
  });
  return { kind: 'APIGroupList', apiVersion: 'v1', groups };
}

function resourceEntries(r: ResourceInfo) {
  const main: Record<string, unknown> = {
    name: r.plural,
    singularName: r.singular,
    namespaced: r.namespaced,
    kind: r.kind,
    verbs: verbsOf(r),
  };
  if (r.shortNames.length) main.shortNames = r.shortNames;
  if (r.categories.length) main.categories = r.categories;
  const out = [main];
  if (r.statusSubresource) out.push({ name: `${r.plural}/status`, singularName: '', namespaced: r.namespaced, kind: r.kind, verbs: ['get', 'patch', 'update'] });
  if (hasBinding(r)) out.push({ name: `${r.plural}/binding`, singularName: '', namespaced: r.namespaced, kind: 'Binding', verbs: ['create'] });
  return out;
}

/** Instances have a `binding` subresource (like pods/binding): see apiserver/binding.ts. */
function hasBinding(r: ResourceInfo): boolean {
  return r.group === 'kova.dev' && r.plural === 'instances';
}

/** APIResourceList for one group-version, or undefined when it is not served. */
export function apiResourceList(registry: Registry, gv: string) {
  const reviews = reviewsOf(gv);
  if (reviews.length) {
    return {
      kind: 'APIResourceList', apiVersion: 'v1', groupVersion: gv,
      resources: reviews.map((r) => ({ name: r.resource, singularName: r.singular, namespaced: false, kind: r.kind, verbs: ['create'] })),
    };
  }
  const rs = registry.byGroupVersion(gv);
  if (!rs.length) return undefined;
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: gv, resources: [...rs.flatMap(resourceEntries), ...usageDiscovery(gv).legacy] };
}

export const AGGREGATED_CONTENT_TYPE = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList';

/** True when the Accept header asks for aggregated discovery v2 (kubectl ≥ 1.30 asks first). */
export function wantsAggregated(accept: string | undefined): boolean {
  return !!accept && /g=apidiscovery\.k8s\.io;v=v2;as=APIGroupDiscoveryList/.test(accept.replace(/\s+/g, ''));
}

function aggregatedResource(r: ResourceInfo) {
  const d: Record<string, unknown> = {
    resource: r.plural,
    responseKind: { group: r.group, version: r.version, kind: r.kind },
    scope: r.namespaced ? 'Namespaced' : 'Cluster',
    singularResource: r.singular,
    verbs: verbsOf(r),
  };
  if (r.shortNames.length) d.shortNames = r.shortNames;
  if (r.categories.length) d.categories = r.categories;
  if (r.statusSubresource) {
    d.subresources = [{ subresource: 'status', responseKind: { group: r.group, version: r.version, kind: r.kind }, verbs: ['get', 'patch', 'update'] }];
  }
  if (hasBinding(r)) {
    d.subresources = [...((d.subresources as unknown[]) ?? []), { subresource: 'binding', responseKind: { group: r.group, version: r.version, kind: 'Binding' }, verbs: ['create'] }];
  }
  return d;
}

/** Aggregated discovery for /api (core only) or /apis (every named group). */
export function aggregatedDiscovery(registry: Registry, legacy: boolean) {
  const items: unknown[] = [];
  if (legacy) {
    items.push({ metadata: { name: '' }, versions: [{ version: 'v1', freshness: 'Current', resources: registry.byGroupVersion('v1').map(aggregatedResource) }] });
  } else {
    for (const [name, versions] of groupsOf(registry)) {
      items.push({
        metadata: { name },
        versions: versions.map((v) => ({
          version: v,
          freshness: 'Current',
          resources: [
            ...reviewsOf(`${name}/${v}`).map((r) => ({ resource: r.resource, responseKind: { group: r.group, version: r.version, kind: r.kind }, scope: 'Cluster', singularResource: r.singular, verbs: ['create'] })),
            ...registry.byGroupVersion(`${name}/${v}`).map(aggregatedResource),
            ...usageDiscovery(`${name}/${v}`).aggregated,
          ],
        })),
      });
    }
  }
  return { kind: 'APIGroupDiscoveryList', apiVersion: 'apidiscovery.k8s.io/v2', metadata: {}, items };
}

export { groupVersion };
