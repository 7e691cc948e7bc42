// Field ownership (`metadata.managedFields`) and server-side apply, modelled on
// sigs.k8s.io/structured-merge-diff (merge.Updater) and apimachinery's fieldmanager:
//
// - Every write records which manager owns which fields, as fieldsV1 sets.
// - Update (create/update/patch): the fields whose values changed become owned by the writer
//   (operation Update, one entry per manager + apiVersion + subresource); other managers lose them
//   without conflict. Removed fields are dropped from every manager.
// - Apply: the object becomes live merged with the applied configuration; the applier's set becomes
//   exactly the fields of its configuration; fields it applied last time but no longer applies, and
//   that nobody else owns, are removed from the object. Changing a field another manager owns is a
//   conflict unless `force`, which moves ownership to the applier.
//
// Without schemas, the list types come from a `listKeys` callback (the server derives it from
// `x-kubernetes-list-type` / `x-kubernetes-list-map-keys`), built-ins for ObjectMeta, and a default
// that keys any `conditions` list by `type`; every other list is atomic (one leaf).
import type { KObject, ManagedFieldsEntry } from '../../api/types.js';
import { cloneJson, deepEqual, isPlainObject, setMember } from './json-util.js';
import type { JsonObject } from './json-util.js';
import { compareElements, FieldSet, fieldElement, keyElement, pathToString, valueElement } from './field-set.js';
import type { FieldPath, PathElement } from './field-set.js';

export { FieldSet, fromFieldsV1, toFieldsV1, pathToString } from './field-set.js';
export type { FieldPath, PathElement } from './field-set.js';

/** Key field names of an associative list, `'set'` for a set of primitives, or `'atomic'`. */
export type ListType = readonly string[] | 'set' | 'atomic';

/**
 * Tells the list type at `path`: field names from the object root, list items omitted
 * (`['spec','networks']`, `['spec','disks','mounts']`). `undefined` = use the default
 * (`conditions` lists keyed by `type`, anything else atomic).
 */
export type ListKeysFn = (path: readonly string[]) => ListType | undefined;

/** List types of ObjectMeta, which no CRD schema describes. */
const BUILTIN_LIST_TYPES: Readonly<Record<string, ListType>> = {
  'metadata.finalizers': 'set',
  'metadata.ownerReferences': ['uid'],
};

/** The default: any list named `conditions` is a map keyed by `type`. */
export const defaultListKeys: ListKeysFn = (path) => (path[path.length - 1] === 'conditions' ? ['type'] : undefined);

export function resolveListType(path: readonly string[], listKeys?: ListKeysFn): ListType {
  return BUILTIN_LIST_TYPES[path.join('.')] ?? listKeys?.(path) ?? defaultListKeys(path) ?? 'atomic';
}

/**
 * Fields never tracked in managed fields (apimachinery `stripMeta`): exact members only, so a
 * manager still owns `.metadata.labels.x`.
 */
const STRIPPED: FieldPath[] = [
  ['f:apiVersion'],
  ['f:kind'],
  ['f:metadata'],
  ...['name', 'namespace', 'creationTimestamp', 'selfLink', 'uid', 'clusterName', 'generation', 'managedFields', 'resourceVersion', 'deletionTimestamp', 'deletionGracePeriodSeconds'].map(
    (f) => ['f:metadata', `f:${f}`],
  ),
];

function stripMeta(set: FieldSet): FieldSet {
  for (const p of STRIPPED) set.remove(p);
  return set;
}

/** Metadata a client cannot meaningfully apply or own; removed from configurations and compares. */
const SYSTEM_METADATA = ['uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'managedFields', 'selfLink'];

function withoutManagedFields<T>(obj: T): T {
  const out = cloneJson(obj);
  if (isPlainObject(out) && isPlainObject(out.metadata)) delete out.metadata.managedFields;
  return out;
}

/**
 * Items of a list keyed by their path elements, or undefined when the list is atomic or cannot be
 * keyed (an item lacks a key field, or a "set" holds non-primitives): such lists are treated as atomic.
 * Repeated keys keep their first item.
 */
function indexList(list: unknown[], type: ListType): Array<[PathElement, unknown]> | undefined {
  if (type === 'atomic') return undefined;
  const out: Array<[PathElement, unknown]> = [];
  const seen = new Set<PathElement>();
  for (const item of list) {
    let e: PathElement;
    if (type === 'set') {
      if (item !== null && typeof item === 'object') return undefined;
      e = valueElement(item);
    } else {
      if (!isPlainObject(item)) return undefined;
      const key: JsonObject = {};
      for (const k of type) {
        const v = item[k];
        if (v === undefined || (v !== null && typeof v === 'object')) return undefined;
        key[k] = v;
      }
      e = keyElement(key);
    }
    if (seen.has(e)) continue;
    seen.add(e);
    out.push([e, item]);
  }
  return out;
}

/** `metadata.managedFields` is never part of a field set or comparison. */
const isManagedFieldsKey = (names: readonly string[], key: string) => key === 'managedFields' && names.length === 1 && names[0] === 'metadata';

const isEmptyObject = (v: unknown) => isPlainObject(v) && Object.values(v).every((x) => x === undefined);

export interface FieldSetOptions {
  listKeys?: ListKeysFn;
}

/**
 * The fields an applied configuration sets (structured-merge-diff `ToFieldSet`): scalar leaves,
 * `null`s and empty maps, atomic lists as one leaf, and list items of keyed lists / sets (the item
 * itself and, for maps, its fields). apiVersion, kind and system metadata are left out.
 */
export function fieldSetOf(obj: unknown, opts: FieldSetOptions = {}): FieldSet {
  const set = new FieldSet();
  const walk = (v: unknown, path: PathElement[], names: string[]) => {
    if (isPlainObject(v)) {
      for (const [k, x] of Object.entries(v)) {
        if (x === undefined || isManagedFieldsKey(names, k)) continue;
        const p = [...path, fieldElement(k)];
        if (x === null || isEmptyObject(x)) set.insert(p);
        else walk(x, p, [...names, k]);
      }
    } else if (Array.isArray(v)) {
      const type = resolveListType(names, opts.listKeys);
      const items = indexList(v, type);
      if (!items) {
        set.insert(path);
        return;
      }
      for (const [e, item] of items) {
        const p = [...path, e];
        set.insert(p);
        if (isPlainObject(item)) walk(item, p, names);
      }
    } else {
      set.insert(path);
    }
  };
  walk(obj, [], []);
  return stripMeta(set);
}

export interface Comparison {
  /** Fields present only in the new object (maps and list items included, as in SMD). */
  added: FieldSet;
  /** Leaves present in both with different values. */
  modified: FieldSet;
  /** Fields present only in the old object. */
  removed: FieldSet;
}

type Kind = 'absent' | 'map' | 'list' | 'scalar';
const kindOf = (v: unknown): Kind => (v === undefined ? 'absent' : isPlainObject(v) ? 'map' : Array.isArray(v) ? 'list' : 'scalar');

/**
 * structured-merge-diff `TypedValue.Compare`: leaves (scalars, atomic lists, empty maps/lists) are
 * added/removed/modified; maps and list items are added/removed as wholes in addition to their leaves.
 */
export function compareObjects(oldObj: unknown, newObj: unknown, opts: FieldSetOptions = {}): Comparison {
  const c: Comparison = { added: new FieldSet(), modified: new FieldSet(), removed: new FieldSet() };
  const leaf = (l: unknown, r: unknown, path: FieldPath) => {
    if (path.length === 0) return;
    if (l === undefined) c.added.insert(path);
    else if (r === undefined) c.removed.insert(path);
    else if (!deepEqual(l, r)) c.modified.insert(path);
  };
  const post = (l: unknown, r: unknown, path: FieldPath) => {
    if (path.length === 0) return;
    if (l === undefined) c.added.insert(path);
    else if (r === undefined) c.removed.insert(path);
  };
  const cmp = (l: unknown, r: unknown, path: PathElement[], names: string[]) => {
    const kl = kindOf(l);
    const kr = kindOf(r);
    if ((kl === 'map' || kl === 'absent') && (kr === 'map' || kr === 'absent')) {
      const lo = (l ?? {}) as JsonObject;
      const ro = (r ?? {}) as JsonObject;
      if (isEmptyObject(lo) && isEmptyObject(ro)) return leaf(l, r, path);
      const keys = [...new Set([...Object.keys(lo), ...Object.keys(ro)])];
      for (const k of keys) {
        if ((lo[k] === undefined && ro[k] === undefined) || isManagedFieldsKey(names, k)) continue;
        cmp(lo[k], ro[k], [...path, fieldElement(k)], [...names, k]);
      }
      return post(l, r, path);
    }
    if ((kl === 'list' || kl === 'absent') && (kr === 'list' || kr === 'absent')) {
      const ll = (l ?? []) as unknown[];
      const rl = (r ?? []) as unknown[];
      const type = resolveListType(names, opts.listKeys);
      const li = indexList(ll, type);
      const ri = indexList(rl, type);
      if ((ll.length === 0 && rl.length === 0) || !li || !ri) return leaf(l, r, path);
      const lm = new Map(li);
      const rm = new Map(ri);
      for (const e of new Set([...lm.keys(), ...rm.keys()])) {
        const p = [...path, e];
        if (type === 'set') leaf(lm.has(e) ? lm.get(e) : undefined, rm.has(e) ? rm.get(e) : undefined, p);
        else cmp(lm.get(e), rm.get(e), p, names);
      }
      return post(l, r, path);
    }
    return leaf(l, r, path);
  };
  cmp(oldObj, newObj, [], []);
  stripMeta(c.added);
  stripMeta(c.modified);
  stripMeta(c.removed);
  return c;
}

/** Members of metadata that stripMeta drops (apiVersion, kind and metadata itself are dropped at the root). */
const STRIPPED_METADATA = new Set(STRIPPED.filter((p) => p.length === 2).map((p) => p[1]!.slice(2)));
const byCodeUnits = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The fieldsV1 an Update that creates `obj` owns: what `compareObjects({}, obj)` marks added,
 * minus stripMeta, serialized as FieldSet.toFieldsV1 does, but in one walk with no path arrays
 * or tries (every create pays for this). A differential test keeps it equal to the general path.
 */
export function createdFieldsV1(obj: JsonObject, listKeys?: ListKeysFn): Record<string, unknown> {
  return mapFieldsV1(obj, [], listKeys, {});
}

/**
 * Adds the fields of map `o` at path `names` to `out`. `names` is one stack for the whole walk
 * (pushed and popped, never kept), and callers that need `'.'` first put it in `out` themselves,
 * so that no path or set is copied per field.
 */
function mapFieldsV1(o: JsonObject, names: string[], listKeys: ListKeysFn | undefined, out: Record<string, unknown>): Record<string, unknown> {
  const root = names.length === 0;
  const inMetadata = names.length === 1 && names[0] === 'metadata';
  const keys = Object.keys(o).sort(byCodeUnits);
  for (const k of keys) {
    const v = o[k];
    if (v === undefined || (inMetadata && k === 'managedFields')) continue;
    const stripped = root ? k === 'apiVersion' || k === 'kind' || k === 'metadata' : inMetadata && STRIPPED_METADATA.has(k);
    names.push(k);
    const inner = childFieldsV1(v, names, listKeys, stripped ? {} : { '.': {} });
    names.pop();
    if (inner === undefined) {
      if (!stripped) out[`f:${k}`] = {};
    } else if (!stripped || Object.keys(inner).length) {
      out[`f:${k}`] = inner;
    }
  }
  return out;
}

/**
 * The children of a new value added to `out`, or undefined when it is a leaf (scalar, empty
 * map, empty or atomic list).
 */
function childFieldsV1(v: unknown, names: string[], listKeys: ListKeysFn | undefined, out: Record<string, unknown>): Record<string, unknown> | undefined {
  if (isPlainObject(v)) return isEmptyObject(v) ? undefined : mapFieldsV1(v, names, listKeys, out);
  if (!Array.isArray(v) || v.length === 0) return undefined;
  const type = resolveListType(names, listKeys);
  const items = indexList(v, type);
  if (!items) return undefined;
  items.sort((a, b) => compareElements(a[0], b[0]));
  for (const [e, item] of items) {
    out[e] = type !== 'set' && isPlainObject(item) && !isEmptyObject(item) ? mapFieldsV1(item, names, listKeys, { '.': {} }) : {};
  }
  return out;
}

const REMOVE = Symbol('remove');

/** The applied value as it lands in the object: nulls mean "unset" and are dropped from maps. */
function dropNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(dropNulls);
  if (isPlainObject(v)) {
    const out: JsonObject = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined && x !== null) setMember(out, k, dropNulls(x));
    return out;
  }
  return v;
}

/**
 * structured-merge-diff `Merge` of live (lhs) with config (rhs): maps merge, keyed lists and sets
 * merge item by item (rhs order for shared items, lhs-only items keep their place), everything
 * else takes the rhs value.
 */
function mergeValues(l: unknown, r: unknown, names: string[], listKeys?: ListKeysFn): unknown {
  if (r === null) return REMOVE;
  if (isPlainObject(r)) {
    const out: JsonObject = isPlainObject(l) ? cloneJson(l) : {};
    for (const [k, v] of Object.entries(r)) {
      if (v === undefined) continue;
      const m = mergeValues(Object.prototype.hasOwnProperty.call(out, k) ? out[k] : undefined, v, [...names, k], listKeys);
      if (m === REMOVE) delete out[k];
      else setMember(out, k, m);
    }
    return out;
  }
  if (Array.isArray(r) && Array.isArray(l)) {
    const type = resolveListType(names, listKeys);
    const li = indexList(l, type);
    const ri = indexList(r, type);
    if (!li || !ri) return dropNulls(r);
    const lm = new Map(li);
    const rm = new Map(ri);
    const mergeItem = (e: PathElement): unknown => {
      if (!rm.has(e)) return cloneJson(lm.get(e));
      if (type === 'set' || !lm.has(e)) return dropNulls(rm.get(e));
      return mergeValues(lm.get(e), rm.get(e), names, listKeys);
    };
    const lOrder = li.map(([e]) => e);
    const rOrder = ri.map(([e]) => e);
    const shared = rOrder.filter((e) => lm.has(e));
    let nextShared = 0;
    const out: unknown[] = [];
    let lI = 0;
    let rI = 0;
    while (lI < lOrder.length || rI < rOrder.length) {
      if (lI < lOrder.length && rI < rOrder.length) {
        const e = lOrder[lI];
        if (e === rOrder[rI]) {
          out.push(mergeItem(e));
          lI++;
          rI++;
          nextShared++;
          continue;
        }
        if (rm.has(e) && shared[nextShared] !== e) {
          lI++; // a shared item placed later by rhs: emitted when rhs reaches it
          continue;
        }
      }
      if (lI < lOrder.length && !rm.has(lOrder[lI])) {
        out.push(mergeItem(lOrder[lI]));
        lI++;
        continue;
      }
      if (rI < rOrder.length) {
        const e = rOrder[rI];
        out.push(mergeItem(e));
        rI++;
        if (shared[nextShared] === e) nextShared++;
        continue;
      }
      lI++; // only shared lhs items that rhs already emitted remain
    }
    return out;
  }
  return dropNulls(r);
}

/** Finds the child of `container` addressed by element `e`, with a remover for it. */
function childOf(container: unknown, e: PathElement): { value: unknown; remove: () => void } | undefined {
  const body = e.slice(2);
  if (e[0] === 'f' && isPlainObject(container)) {
    if (container[body] === undefined) return undefined;
    return { value: container[body], remove: () => delete container[body] };
  }
  if ((e[0] === 'k' || e[0] === 'v') && Array.isArray(container)) {
    const want = JSON.parse(body) as unknown;
    const idx = container.findIndex((item) => {
      if (e[0] === 'v') return deepEqual(item, want);
      return isPlainObject(item) && Object.entries(want as JsonObject).every(([k, v]) => deepEqual(item[k], v));
    });
    if (idx < 0) return undefined;
    return { value: container[idx], remove: () => container.splice(idx, 1) };
  }
  return undefined;
}

function lookup(obj: unknown, path: FieldPath): { value: unknown; remove: () => void } | undefined {
  let cur: unknown = obj;
  let found: { value: unknown; remove: () => void } | undefined;
  for (const e of path) {
    found = childOf(cur, e);
    if (!found) return undefined;
    cur = found.value;
  }
  return found;
}

/**
 * Removes from `obj` the fields of `lastSet` nobody owns any more (`owned` has neither the field nor
 * anything below it), then containers left empty by that which nobody owns either.
 */
function prune(obj: JsonObject, lastSet: FieldSet, owned: FieldSet): void {
  const gone = lastSet.paths().filter((p) => !owned.hasAtOrBelow(p));
  // Outermost first: a list item must be found by its key before its fields are gone.
  gone.sort((a, b) => a.length - b.length);
  for (const p of gone) lookup(obj, p)?.remove();
  for (const p of gone) {
    for (let n = p.length - 1; n >= 1; n--) {
      const anc = p.slice(0, n);
      const at = lookup(obj, anc);
      if (!at) continue;
      const empty = (isPlainObject(at.value) && Object.keys(at.value).length === 0) || (Array.isArray(at.value) && at.value.length === 0);
      if (!empty || owned.hasAtOrBelow(anc)) break;
      at.remove();
    }
  }
}

interface Manager {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time?: string;
  subresource?: string;
  set: FieldSet;
}

function decodeManagers(entries: unknown): Manager[] {
  if (!Array.isArray(entries)) return [];
  const out: Manager[] = [];
  for (const e of entries) {
    if (!isPlainObject(e)) continue;
    if (e.operation !== 'Apply' && e.operation !== 'Update') continue;
    out.push({
      manager: typeof e.manager === 'string' ? e.manager : '',
      operation: e.operation,
      apiVersion: typeof e.apiVersion === 'string' ? e.apiVersion : '',
      time: typeof e.time === 'string' ? e.time : undefined,
      subresource: typeof e.subresource === 'string' && e.subresource ? e.subresource : undefined,
      set: FieldSet.fromFieldsV1(e.fieldsV1),
    });
  }
  return out;
}

function encodeManager(m: Manager): ManagedFieldsEntry {
  // Key order as kube-apiserver writes entries.
  return {
    manager: m.manager,
    operation: m.operation,
    apiVersion: m.apiVersion,
    ...(m.time ? { time: m.time } : {}),
    fieldsType: 'FieldsV1',
    fieldsV1: m.set.toFieldsV1(),
    ...(m.subresource ? { subresource: m.subresource } : {}),
  };
}

const seconds = (t?: string) => (t ? Math.floor(Date.parse(t) / 1000) || 0 : 0);
const cmpStr = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** apimachinery's order: operation (Apply first), time, manager, apiVersion, subresource. */
function sortManagers(ms: Manager[]): Manager[] {
  return ms.sort(
    (p, q) =>
      cmpStr(p.operation, q.operation) ||
      seconds(p.time) - seconds(q.time) ||
      cmpStr(p.manager, q.manager) ||
      cmpStr(p.apiVersion, q.apiVersion) ||
      cmpStr(p.subresource ?? '', q.subresource ?? ''),
  );
}

/** Manager identity (apimachinery BuildManagerIdentifier): appliers are not split by apiVersion. */
function sameIdentity(m: Manager, manager: string, operation: 'Apply' | 'Update', apiVersion: string, subresource?: string): boolean {
  return m.manager === manager && m.operation === operation && (m.subresource ?? '') === (subresource ?? '') && (operation === 'Apply' || m.apiVersion === apiVersion);
}

export interface ApplyConflict {
  manager: string;
  /** The conflicting entry's operation; `Update` owners are printed with `using <apiVersion>`. Default Update. */
  operation?: 'Apply' | 'Update';
  /** The conflicting entry's apiVersion; defaults to the apiVersion passed to conflictMessage. */
  apiVersion?: string;
  subresource?: string;
  /** `.spec.flavor`, `.status.conditions[type="Ready"].status`. */
  field: string;
}

export interface ApplyArgs {
  /** The stored object, or undefined when apply creates it. */
  live: KObject | undefined;
  /** The applied configuration (apiVersion, kind, metadata.name and the fields the manager wants). */
  applied: KObject;
  manager: string;
  force: boolean;
  /** Group-version of the request, recorded in the entry. */
  apiVersion: string;
  /** RFC 3339 time for the entry. */
  now: string;
  listKeys?: ListKeysFn;
  /** `'status'` for an apply to /status: only `.status` of the configuration is applied. */
  subresource?: string;
  /** The kind has a status subresource: an apply to the main resource ignores `.status`. */
  statusSubresource?: boolean;
}

export type ApplyResult = { object: KObject; managedFields: ManagedFieldsEntry[] } | { conflicts: ApplyConflict[] };

/** The part of an applied configuration that is merged and owned. */
function scopeConfiguration(applied: KObject, subresource?: string, statusSubresource?: boolean): JsonObject {
  const cfg = cloneJson(applied) as unknown as JsonObject;
  const md: JsonObject = isPlainObject(cfg.metadata) ? cfg.metadata : {};
  for (const f of SYSTEM_METADATA) delete md[f];
  cfg.metadata = md;
  if (subresource === 'status') {
    const scoped: JsonObject = { apiVersion: cfg.apiVersion, kind: cfg.kind, metadata: {} };
    for (const f of ['name', 'namespace']) if (md[f] !== undefined) (scoped.metadata as JsonObject)[f] = md[f];
    if (cfg.status !== undefined) scoped.status = cfg.status;
    return scoped;
  }
  if (statusSubresource && !subresource) delete cfg.status;
  return cfg;
}

/**
 * Server-side apply. Returns the merged object (with `metadata.managedFields` set to the new
 * entries) and the entries, or the conflicts when another manager owns a field whose value the
 * configuration changes and `force` is false. The caller still validates and persists.
 */
export function applyConfiguration(args: ApplyArgs): ApplyResult {
  const { live, manager, force, apiVersion, now, listKeys, subresource } = args;
  const liveBase = live ? (withoutManagedFields(live) as unknown as JsonObject) : ({} as JsonObject);
  const managers = live ? decodeManagers(live.metadata?.managedFields) : [];
  if (live && managers.length === 0) {
    // An object that predates field management: someone owns what is there (apimachinery does the same).
    const set = fieldSetOf(liveBase, { listKeys });
    if (!set.isEmpty()) managers.push({ manager: 'before-first-apply', operation: 'Update', apiVersion, time: now, set });
  }
  const config = scopeConfiguration(args.applied, subresource, args.statusSubresource);
  const merged = mergeValues(liveBase, config, [], listKeys) as JsonObject;
  const newSet = fieldSetOf(config, { listKeys });

  const idx = managers.findIndex((m) => sameIdentity(m, manager, 'Apply', apiVersion, subresource));
  const previous = idx >= 0 ? managers[idx] : undefined;
  const others = managers.filter((_, i) => i !== idx);

  if (previous && !previous.set.isEmpty()) {
    const owned = others.reduce((acc, m) => acc.union(m.set), newSet);
    prune(merged, previous.set, owned);
  }

  const c = compareObjects(liveBase, merged, { listKeys });
  const changed = c.added.union(c.modified);
  const conflicts: ApplyConflict[] = [];
  const taken = new Map<Manager, FieldSet>();
  for (const m of others) {
    const inter = m.set.intersection(changed);
    if (inter.isEmpty()) continue;
    taken.set(m, inter);
    for (const p of inter.paths()) {
      const cf: ApplyConflict = { manager: m.manager, operation: m.operation, apiVersion: m.apiVersion, field: pathToString(p) };
      if (m.subresource) cf.subresource = m.subresource;
      conflicts.push(cf);
    }
  }
  if (conflicts.length && !force) return { conflicts: sortConflicts(conflicts) };
  for (const m of others) {
    const t = taken.get(m);
    if (t) m.set = m.set.difference(t);
    m.set = m.set.difference(c.removed);
  }

  const unchanged = previous && deepEqual(merged, liveBase) && previous.set.equals(newSet);
  const applier: Manager = { manager, operation: 'Apply', apiVersion, time: unchanged ? previous.time ?? now : now, set: newSet };
  if (subresource) applier.subresource = subresource;
  const entries = sortManagers([applier, ...others].filter((m) => !m.set.isEmpty())).map(encodeManager);

  const object = merged as unknown as KObject;
  if (!isPlainObject(object.metadata)) object.metadata = {};
  if (entries.length) object.metadata.managedFields = entries;
  else delete object.metadata.managedFields;
  return { object, managedFields: entries };
}

function sortConflicts(cs: ApplyConflict[]): ApplyConflict[] {
  return cs.sort((a, b) => cmpStr(a.manager, b.manager) || cmpStr(a.operation ?? '', b.operation ?? ''));
}

export interface UpdateArgs {
  /** The stored object before the write; undefined for create. */
  old: KObject | undefined;
  /** The object about to be stored. */
  updated: KObject;
  manager: string;
  operation?: 'Update';
  apiVersion: string;
  now: string;
  /** `'status'` for writes to /status (recorded in the entry). */
  subresource?: string;
  listKeys?: ListKeysFn;
  /** Cap on Update entries; older ones are merged into `ancient-changes` (apimachinery: 10). */
  maxUpdateManagers?: number;
}

/**
 * Managed fields after an ordinary create/update/patch: the fields whose values changed become
 * owned by `manager` (operation Update), leaving every other manager; removed fields leave everyone.
 *
 * The starting entries are the incoming object's `metadata.managedFields` when it carries any (a
 * client may rewrite them; `[{}]` clears them) and the request is not to a subresource, else the
 * old object's.
 */
export function updateManagedFields(args: UpdateArgs): ManagedFieldsEntry[] {
  const { old, updated, manager, apiVersion, now, subresource, listKeys } = args;
  const incoming = updated.metadata?.managedFields as unknown;
  let base: unknown = old?.metadata?.managedFields ?? [];
  if (!subresource && Array.isArray(incoming) && incoming.length > 0) {
    const reset = incoming.length === 1 && isPlainObject(incoming[0]) && Object.keys(incoming[0]).length === 0;
    base = reset ? [] : incoming;
  }
  if (!old && Array.isArray(base) && base.length === 0) {
    // A create with no managers yet: everything in the object is this manager's.
    const fieldsV1 = createdFieldsV1(updated as unknown as JsonObject, listKeys);
    if (!Object.keys(fieldsV1).length) return [];
    return [{ manager, operation: 'Update', apiVersion, ...(now ? { time: now } : {}), fieldsType: 'FieldsV1', fieldsV1, ...(subresource ? { subresource } : {}) }];
  }
  const managers = decodeManagers(base);
  const c = compareObjects(old ?? {}, updated, { listKeys });
  const changed = c.added.union(c.modified);
  for (const m of managers) m.set = m.set.difference(changed).difference(c.removed);
  if (!changed.isEmpty()) {
    const mine = managers.find((m) => sameIdentity(m, manager, 'Update', apiVersion, subresource));
    if (mine) {
      mine.set = mine.set.union(changed);
      mine.time = now;
    } else {
      const m: Manager = { manager, operation: 'Update', apiVersion, time: now, set: changed };
      if (subresource) m.subresource = subresource;
      managers.push(m);
    }
  }
  const kept = capUpdateManagers(
    managers.filter((m) => !m.set.isEmpty()),
    args.maxUpdateManagers ?? 10,
  );
  return sortManagers(kept).map(encodeManager);
}

/** Merges the oldest Update entries into `ancient-changes` (per apiVersion) until at most `max` remain. */
function capUpdateManagers(ms: Manager[], max: number): Manager[] {
  const updaters = ms.filter((m) => m.operation === 'Update');
  if (updaters.length <= max) return ms;
  updaters.sort((a, b) => seconds(a.time) - seconds(b.time));
  const merge = updaters.slice(0, updaters.length - max + 1);
  const out = ms.filter((m) => !merge.includes(m));
  const buckets = new Map<string, Manager>();
  for (const m of merge) {
    let b = buckets.get(m.apiVersion);
    if (!b) {
      b = { manager: 'ancient-changes', operation: 'Update', apiVersion: m.apiVersion, time: m.time, set: new FieldSet() };
      buckets.set(m.apiVersion, b);
      out.push(b);
    }
    b.set = b.set.union(m.set);
    if (seconds(m.time) >= seconds(b.time)) b.time = m.time;
  }
  return out;
}

/**
 * The manager name kube-apiserver uses when a write names none: the user agent up to the first
 * `/` (`kubectl/v1.32.4 (linux/amd64) kubernetes/abc` → `kubectl`), cut to 128 characters.
 */
export function managerFromUserAgent(userAgent: string | undefined): string {
  return (userAgent ?? '').split('/')[0].slice(0, 128);
}

function printManager(c: ApplyConflict, apiVersion?: string): string {
  let s = JSON.stringify(c.manager);
  if (c.subresource) s += ` with subresource ${JSON.stringify(c.subresource)}`;
  if ((c.operation ?? 'Update') === 'Update') s += ` using ${c.apiVersion ?? apiVersion ?? ''}`;
  return s;
}

export interface ConflictCause {
  reason: 'FieldManagerConflict';
  message: string;
  field: string;
}

/**
 * The 409 message and causes kube-apiserver returns for apply conflicts (apimachinery
 * `managedfields/internal/conflict.go`):
 *   Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using kova.dev/v1alpha1: .spec.flavor
 *   Apply failed with 2 conflicts: conflicts with "a" using v1:\n- .spec.x\n- .spec.y
 * Managers that own fields through Apply are printed without `using …`, as in Kubernetes.
 */
export function conflictMessage(conflicts: ApplyConflict[], apiVersion?: string): { message: string; causes: ConflictCause[] } {
  const causes = conflicts.map((c) => ({ reason: 'FieldManagerConflict' as const, message: `conflict with ${printManager(c, apiVersion)}`, field: c.field }));
  if (conflicts.length === 1) {
    return { message: `Apply failed with 1 conflict: conflict with ${printManager(conflicts[0], apiVersion)}: ${conflicts[0].field}`, causes };
  }
  const groups = new Map<string, string[]>();
  for (const c of conflicts) {
    const k = printManager(c, apiVersion);
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push(c.field);
  }
  const lines: string[] = [];
  for (const k of [...groups.keys()].sort()) {
    lines.push(`conflicts with ${k}:`);
    for (const f of groups.get(k)!) lines.push(`- ${f}`);
  }
  return { message: `Apply failed with ${conflicts.length} conflicts: ${lines.join('\n')}`, causes };
}
