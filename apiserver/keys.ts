// etcd key layout, like kube-apiserver: /registry/<group>/<resource>/<namespace>/<name>;
// core kinds drop the group (/registry/namespaces/<name>). Group names contain a dot and
// plurals never do, so the two forms cannot collide.
import type { ResourceInfo } from '../api/types.js';

type Res = Pick<ResourceInfo, 'group' | 'plural' | 'namespaced'>;

export const REGISTRY_ROOT = '/registry/';

export function resourcePrefix(info: Res): string {
  return info.group ? `${REGISTRY_ROOT}${info.group}/${info.plural}/` : `${REGISTRY_ROOT}${info.plural}/`;
}

/** Prefix listing one namespace (with trailing slash, so `demo` never matches `demo2`) or all. */
export function storagePrefix(info: Res, namespace?: string): string {
  return info.namespaced && namespace ? `${resourcePrefix(info)}${namespace}/` : resourcePrefix(info);
}

export function storageKey(info: Res, namespace: string | undefined, name: string): string {
  return info.namespaced ? `${resourcePrefix(info)}${namespace}/${name}` : `${resourcePrefix(info)}${name}`;
}
