// The stored object a request names, for admission checks that compare a write with what it
// replaces.
import type { KObject } from '../../api/types.js';
import type { ResourceStore } from '../resource-store.js';
import { ApiError } from '../status.js';
import type { RequestAttributes } from './types.js';

/** The object `a` names as stored now, or undefined when there is none (a create, or a 404). */
export async function storedObject(resources: ResourceStore, a: RequestAttributes): Promise<KObject | undefined> {
  const info = resources.registry.lookup(a.apiGroup, a.apiVersion, a.resource);
  if (!info || !a.name) return undefined;
  try {
    return await resources.get(info, a.namespace || undefined, a.name);
  } catch (e) {
    if (e instanceof ApiError && e.code === 404) return undefined;
    throw e;
  }
}
