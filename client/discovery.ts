// API discovery for controllers that work on every kind (garbage collector, namespace
// controller), as kube-controller-manager's use discovery: the kinds come from the API server
// (/api/v1 and each group's preferred version), so CRDs need no list in the controllers.
import type { Kind, KovaClient } from './client.js';

export interface DiscoveredKind extends Kind {
  verbs: string[];
}

interface ApiResourceList {
  resources?: Array<{ name: string; kind: string; namespaced: boolean; verbs?: string[] }>;
}

interface ApiGroupList {
  groups?: Array<{ name: string; preferredVersion?: { version: string }; versions?: Array<{ version: string }> }>;
}

/** Every resource (no subresources) the server serves, with its verbs. */
export async function discoverKinds(client: KovaClient, signal?: AbortSignal): Promise<DiscoveredKind[]> {
  const out: DiscoveredKind[] = [];
  const add = (group: string, version: string, list: ApiResourceList) => {
    for (const r of list.resources ?? []) {
      if (r.name.includes('/')) continue;
      out.push({ group, version, plural: r.name, kind: r.kind, namespaced: r.namespaced, verbs: r.verbs ?? [] });
    }
  };
  add('', 'v1', await client.request<ApiResourceList>({ method: 'GET', path: '/api/v1', signal }));
  const groups = await client.request<ApiGroupList>({ method: 'GET', path: '/apis', signal });
  for (const g of groups.groups ?? []) {
    const version = g.preferredVersion?.version ?? g.versions?.[0]?.version;
    if (!version) continue;
    add(g.name, version, await client.request<ApiResourceList>({ method: 'GET', path: `/apis/${g.name}/${version}`, signal }));
  }
  return out;
}

/** group + kind → resource: how an ownerReference (apiVersion, kind) finds its collection. */
export function kindIndex(kinds: readonly Kind[]): Map<string, Kind> {
  const m = new Map<string, Kind>();
  for (const k of kinds) m.set(`${k.group}/${k.kind}`, k);
  return m;
}

export function groupOf(apiVersion: string): string {
  const i = apiVersion.indexOf('/');
  return i < 0 ? '' : apiVersion.slice(0, i);
}
