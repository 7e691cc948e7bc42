// List semantics for server-side apply, read from the kind's structural schema
// (`x-kubernetes-list-type` / `x-kubernetes-list-map-keys`), as structured-merge-diff does.
import type { JSONSchema, ResourceInfo } from '../api/types.js';
import type { ListKeysFn, ListType } from './patch/managed-fields.js';

function schemaAt(root: JSONSchema | undefined, path: readonly string[]): JSONSchema | undefined {
  let s = root;
  for (const name of path) {
    // List items are omitted from the path: step through `items` transparently.
    while (s && s.type === 'array') s = s.items as JSONSchema | undefined;
    const props = s?.properties as Record<string, JSONSchema> | undefined;
    s = props?.[name] ?? (s?.additionalProperties && typeof s.additionalProperties === 'object' ? (s.additionalProperties as JSONSchema) : undefined);
    if (!s) return undefined;
  }
  return s;
}

const cache = new WeakMap<ResourceInfo, Map<string, ListType | undefined>>();

export function listKeysFor(info: ResourceInfo): ListKeysFn {
  let memo = cache.get(info);
  if (!memo) cache.set(info, (memo = new Map()));
  const m = memo;
  return (path) => {
    const k = path.join('.');
    if (m.has(k)) return m.get(k);
    const s = schemaAt(info.schema, path);
    let t: ListType | undefined;
    const lt = s?.['x-kubernetes-list-type'];
    if (lt === 'map') t = (s?.['x-kubernetes-list-map-keys'] as string[] | undefined) ?? undefined;
    else if (lt === 'set') t = 'set';
    else if (lt === 'atomic') t = 'atomic';
    m.set(k, t);
    return t;
  };
}
