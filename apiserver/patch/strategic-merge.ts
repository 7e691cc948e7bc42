// "Light" strategic merge patch (`application/strategic-merge-patch+json`) for the few built-in
// kinds kubectl sends SMP to (Namespace, Event, Lease); see kube-api-notes §5.
//
// Semantics: a JSON merge patch (null deletes, maps merge) plus:
// - `$patch: replace` on a map replaces the map with the patch's other members;
//   `$patch: delete` on a map deletes it; `$patch: merge` is the default.
// - Lists declared `patchStrategy: merge` (see BUILTIN_SMP_LISTS) are merged:
//   - lists of maps by their merge key: patch items replace/merge the live item with the same key,
//     new items are appended, `{<key>: x, $patch: delete}` removes an item, and an item
//     `{$patch: replace}` makes the rest of the patch list replace the whole list;
//   - lists of primitives as ordered sets (live order, then new values), and
//     `$deleteFromPrimitiveList/<field>: [...]` removes values.
//   Any other list is replaced whole, as in a merge patch.
// - `$setElementOrder/<field>` and `$retainKeys` are dropped (ordering hints and key pruning
//   directives we do not implement).
import { cloneJson, deepEqual, isPlainObject, setMember } from './json-util.js';
import type { JsonObject } from './json-util.js';
import { PatchError } from './errors.js';

/** How a list field is patched: merged by `mergeKey` (maps) or as a set (primitives). */
export interface SmpListStrategy {
  strategy: 'merge';
  /** Merge key for lists of maps; absent for lists of primitives. */
  mergeKey?: string;
}

/**
 * Decides the strategy of the list at `path` (field names from the object root; list items do not
 * appear, so `['spec','containers','ports']` is the ports list of any container).
 * `undefined` means "replace" (atomic list).
 */
export type SmpListStrategyFn = (path: readonly string[]) => SmpListStrategy | undefined;

/**
 * Built-in `patchStrategy: merge` lists that matter for kova's built-in kinds, from the
 * Kubernetes API types (ObjectMeta, NamespaceStatus). Namespace `spec.finalizers` is
 * `+listType=atomic` without a patch strategy, so it is replaced like any other list.
 */
export const BUILTIN_SMP_LISTS: Readonly<Record<string, SmpListStrategy>> = {
  'metadata.finalizers': { strategy: 'merge' },
  'metadata.ownerReferences': { strategy: 'merge', mergeKey: 'uid' },
  'status.conditions': { strategy: 'merge', mergeKey: 'type' },
};

export const builtinSmpListStrategy: SmpListStrategyFn = (path) => BUILTIN_SMP_LISTS[path.join('.')];

const DIRECTIVE = '$patch';
const SET_ORDER = '$setElementOrder/';
const DELETE_PRIMITIVE = '$deleteFromPrimitiveList/';
const RETAIN_KEYS = '$retainKeys';

/** Applies a strategic merge patch to `target` (not modified) and returns the result. */
export function applyStrategicMergePatch(target: unknown, patch: unknown, opts: { listStrategy?: SmpListStrategyFn } = {}): unknown {
  if (!isPlainObject(patch)) throw new PatchError('Malformed', 'a strategic merge patch must be a JSON object');
  const strategy = opts.listStrategy ?? builtinSmpListStrategy;
  const out = mergeMap(isPlainObject(target) ? target : {}, patch, [], strategy);
  return out === DELETED ? {} : out;
}

const DELETED = Symbol('deleted');

function mergeMap(target: JsonObject, patch: JsonObject, path: string[], strategy: SmpListStrategyFn): JsonObject | typeof DELETED {
  const directive = patch[DIRECTIVE];
  if (directive !== undefined) {
    if (directive === 'delete') return DELETED;
    if (directive === 'replace') return cleanDirectives(patch, path, strategy) as JsonObject;
    if (directive !== 'merge') throw new PatchError('Malformed', `Unknown patch type: ${String(directive)} in map patch at ${fieldPath(path)}`);
  }
  const out = cloneJson(target);
  // Deletions from primitive lists are applied after the list itself was merged.
  const deletions: Array<[string, unknown]> = [];
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined || k === DIRECTIVE || k === RETAIN_KEYS || k.startsWith(SET_ORDER)) continue;
    if (k.startsWith(DELETE_PRIMITIVE)) {
      deletions.push([k.slice(DELETE_PRIMITIVE.length), v]);
      continue;
    }
    if (v === null) {
      delete out[k];
      continue;
    }
    const childPath = [...path, k];
    const cur = Object.prototype.hasOwnProperty.call(out, k) ? out[k] : undefined;
    if (isPlainObject(v)) {
      const merged = mergeMap(isPlainObject(cur) ? cur : {}, v, childPath, strategy);
      if (merged === DELETED) delete out[k];
      else setMember(out, k, merged);
    } else if (Array.isArray(v)) {
      setMember(out, k, mergeList(Array.isArray(cur) ? cur : [], v, childPath, strategy));
    } else {
      setMember(out, k, v);
    }
  }
  for (const [field, values] of deletions) {
    if (!Array.isArray(values)) throw new PatchError('Malformed', `${DELETE_PRIMITIVE}${field} must be a list`);
    const cur = out[field];
    if (Array.isArray(cur)) out[field] = cur.filter((x) => !values.some((d) => deepEqual(d, x)));
  }
  return out;
}

function mergeList(target: unknown[], patch: unknown[], path: string[], strategy: SmpListStrategyFn): unknown[] {
  const s = strategy(path);
  if (!s) return cleanDirectives(patch, path, strategy) as unknown[];
  // An item {$patch: replace} turns the rest of the patch into the whole list.
  if (patch.some((p) => isPlainObject(p) && p[DIRECTIVE] === 'replace')) {
    return patch.filter((p) => !(isPlainObject(p) && p[DIRECTIVE] === 'replace')).map((p) => cleanDirectives(p, path, strategy));
  }
  if (s.mergeKey === undefined) {
    // Primitive set: keep live order, append new values, no duplicates.
    const out = cloneJson(target);
    for (const p of patch) {
      if (isPlainObject(p) || Array.isArray(p)) return cleanDirectives(patch, path, strategy) as unknown[];
      if (!out.some((x) => deepEqual(x, p))) out.push(p);
    }
    return out;
  }
  const key = s.mergeKey;
  // Items without the merge key cannot be matched: fall back to replacing the list.
  if (!patch.every((p) => isPlainObject(p) && (p[key] !== undefined || p[DIRECTIVE] !== undefined))) {
    return cleanDirectives(patch, path, strategy) as unknown[];
  }
  const out = cloneJson(target);
  for (const p of patch as JsonObject[]) {
    const id = p[key];
    const idx = out.findIndex((x) => isPlainObject(x) && deepEqual(x[key], id));
    if (p[DIRECTIVE] === 'delete') {
      if (id === undefined) throw new PatchError('Malformed', `delete directive in list ${fieldPath(path)} needs the merge key "${key}"`);
      if (idx >= 0) out.splice(idx, 1);
      continue;
    }
    if (id === undefined) continue;
    if (idx >= 0) {
      const merged = mergeMap(out[idx] as JsonObject, p, path, strategy);
      if (merged === DELETED) out.splice(idx, 1);
      else out[idx] = merged;
    } else {
      out.push(cleanDirectives(p, path, strategy));
    }
  }
  return out;
}

/** A patch value used as a literal: directives removed, nulls dropped from maps. */
function cleanDirectives(v: unknown, path: string[], strategy: SmpListStrategyFn): unknown {
  if (Array.isArray(v)) {
    return v.filter((x) => !(isPlainObject(x) && x[DIRECTIVE] === 'delete')).map((x) => cleanDirectives(x, path, strategy));
  }
  if (isPlainObject(v)) {
    const out: JsonObject = {};
    for (const [k, x] of Object.entries(v)) {
      if (x === undefined || x === null || k === DIRECTIVE || k === RETAIN_KEYS || k.startsWith(SET_ORDER) || k.startsWith(DELETE_PRIMITIVE)) continue;
      setMember(out, k, cleanDirectives(x, [...path, k], strategy));
    }
    return out;
  }
  return v;
}

function fieldPath(path: string[]): string {
  return path.length ? path.join('.') : '<root>';
}
