// Field sets as in sigs.k8s.io/structured-merge-diff `fieldpath`: a trie of path elements whose
// nodes can be "members" (owned fields). Path elements are kept in their fieldsV1 text form:
//   f:<name>            a map/struct field
//   k:{"type":"Ready"}  a list item of an associative list, by its key fields (sorted, Go JSON)
//   v:"x"               a list item of a set of primitives, by value (Go JSON)
//   i:3                 a list item by index (only ever read from foreign fieldsV1; never produced)
import { goJson, isPlainObject } from './json-util.js';
import type { JsonObject } from './json-util.js';

export type PathElement = string;
export type FieldPath = readonly PathElement[];

export const fieldElement = (name: string): PathElement => `f:${name}`;

export function keyElement(fields: JsonObject): PathElement {
  const sorted: JsonObject = {};
  for (const k of Object.keys(fields).sort()) sorted[k] = fields[k];
  return `k:${goJson(sorted)}`;
}

export const valueElement = (v: unknown): PathElement => `v:${goJson(v)}`;
export const indexElement = (i: number): PathElement => `i:${i}`;

const TYPE_RANK: Record<string, number> = { f: 0, k: 1, v: 2, i: 3 };

/** Element order of structured-merge-diff: fields, then keys, then values, then indexes. */
export function compareElements(a: PathElement, b: PathElement): number {
  const ra = TYPE_RANK[a[0]] ?? 4;
  const rb = TYPE_RANK[b[0]] ?? 4;
  if (ra !== rb) return ra - rb;
  if (a[0] === 'i') return Number(a.slice(2)) - Number(b.slice(2));
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Parses one serialized element and returns it in canonical form (keys sorted, Go JSON), or
 * undefined when it is not a valid element (unknown types are ignored, as apimachinery does).
 */
export function parseElement(s: string): PathElement | undefined {
  if (s.length < 2 || s[1] !== ':') return undefined;
  const body = s.slice(2);
  try {
    switch (s[0]) {
      case 'f':
        return s;
      case 'k': {
        const v = JSON.parse(body) as unknown;
        return isPlainObject(v) ? keyElement(v) : undefined;
      }
      case 'v':
        return valueElement(JSON.parse(body));
      case 'i':
        return /^-?\d+$/.test(body) ? indexElement(Number(body)) : undefined;
      default:
        return undefined;
    }
  } catch {
    return undefined;
  }
}

/** Go's `%v` of a float64 (`strconv.FormatFloat(f, 'g', -1, 64)`). */
export function goFloat(n: number): string {
  if (!Number.isFinite(n)) return n > 0 ? '+Inf' : n < 0 ? '-Inf' : 'NaN';
  if (n === 0) return Object.is(n, -0) ? '-0' : '0';
  const [mant, expStr] = n.toExponential().split('e');
  const exp = Number(expStr);
  if (exp < -4 || exp >= 6) {
    const e = Math.abs(exp) < 10 ? `0${Math.abs(exp)}` : `${Math.abs(exp)}`;
    return `${mant}e${exp < 0 ? '-' : '+'}${e}`;
  }
  return String(n);
}

/** structured-merge-diff `value.ToString`: strings quoted, numbers and bools bare. */
function valueToString(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : goFloat(v);
  if (typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(valueToString).join(',')}]`;
  if (isPlainObject(v)) return `{${Object.entries(v).map(([k, x]) => `${k}=${valueToString(x)}`).join(',')}}`;
  return String(v);
}

/** Human form of one element as in conflict messages: `.spec`, `[type="Ready"]`, `[="x"]`, `[0]`. */
export function elementToString(e: PathElement): string {
  const body = e.slice(2);
  switch (e[0]) {
    case 'f':
      return `.${body}`;
    case 'k': {
      const fields = JSON.parse(body) as JsonObject;
      return `[${Object.entries(fields).map(([k, v]) => `${k}=${valueToString(v)}`).join(',')}]`;
    }
    case 'v':
      return `[=${valueToString(JSON.parse(body))}]`;
    case 'i':
      return `[${body}]`;
    default:
      return '{{invalid path element}}';
  }
}

/** `.spec.flavor`, `.status.conditions[type="Ready"].status` (fieldpath.Path.String()). */
export function pathToString(path: FieldPath): string {
  return path.map(elementToString).join('');
}

/** A set of field paths (members), stored as a trie. */
export class FieldSet {
  private readonly members = new Set<PathElement>();
  private readonly children = new Map<PathElement, FieldSet>();

  static of(paths: Iterable<FieldPath>): FieldSet {
    const s = new FieldSet();
    for (const p of paths) s.insert(p);
    return s;
  }

  /** Adds `path` (non-empty) as a member. */
  insert(path: FieldPath): this {
    if (path.length === 0) return this;
    let node: FieldSet = this;
    for (let i = 0; i < path.length - 1; i++) {
      let next = node.children.get(path[i]);
      if (!next) {
        next = new FieldSet();
        node.children.set(path[i], next);
      }
      node = next;
    }
    node.members.add(path[path.length - 1]);
    return this;
  }

  private nodeAt(prefix: FieldPath): FieldSet | undefined {
    let node: FieldSet | undefined = this;
    for (const e of prefix) {
      node = node.children.get(e);
      if (!node) return undefined;
    }
    return node;
  }

  /** Whether `path` itself is a member. */
  has(path: FieldPath): boolean {
    if (path.length === 0) return false;
    return this.nodeAt(path.slice(0, -1))?.members.has(path[path.length - 1]) ?? false;
  }

  /** Whether `path` is a member or has a member below it. */
  hasAtOrBelow(path: FieldPath): boolean {
    if (path.length === 0) return !this.isEmpty();
    const parent = this.nodeAt(path.slice(0, -1));
    if (!parent) return false;
    const last = path[path.length - 1];
    return parent.members.has(last) || (parent.children.get(last)?.isEmpty() === false);
  }

  /** Removes the member `path` (exactly; members below it stay). */
  remove(path: FieldPath): this {
    if (path.length === 0) return this;
    const [head, ...rest] = path;
    if (rest.length === 0) {
      this.members.delete(head);
      return this;
    }
    const child = this.children.get(head);
    if (child) {
      child.remove(rest);
      if (child.isEmpty()) this.children.delete(head);
    }
    return this;
  }

  isEmpty(): boolean {
    if (this.members.size) return false;
    for (const c of this.children.values()) if (!c.isEmpty()) return false;
    return true;
  }

  get size(): number {
    let n = this.members.size;
    for (const c of this.children.values()) n += c.size;
    return n;
  }

  /** All members in structured-merge-diff order (a node before its children). */
  paths(): FieldPath[] {
    const out: FieldPath[] = [];
    const walk = (node: FieldSet, prefix: PathElement[]) => {
      const elems = [...new Set([...node.members, ...node.children.keys()])].sort(compareElements);
      for (const e of elems) {
        if (node.members.has(e)) out.push([...prefix, e]);
        const c = node.children.get(e);
        if (c) walk(c, [...prefix, e]);
      }
    };
    walk(this, []);
    return out;
  }

  clone(): FieldSet {
    const s = new FieldSet();
    for (const m of this.members) s.members.add(m);
    for (const [e, c] of this.children) s.children.set(e, c.clone());
    return s;
  }

  union(other: FieldSet): FieldSet {
    const s = this.clone();
    for (const m of other.members) s.members.add(m);
    for (const [e, c] of other.children) {
      const mine = s.children.get(e);
      s.children.set(e, mine ? mine.union(c) : c.clone());
    }
    return s;
  }

  intersection(other: FieldSet): FieldSet {
    const s = new FieldSet();
    for (const m of this.members) if (other.members.has(m)) s.members.add(m);
    for (const [e, c] of this.children) {
      const o = other.children.get(e);
      if (!o) continue;
      const i = c.intersection(o);
      if (!i.isEmpty()) s.children.set(e, i);
    }
    return s;
  }

  /** Members of this set that are not members of `other` (exact paths, not recursive). */
  difference(other: FieldSet): FieldSet {
    const s = new FieldSet();
    for (const m of this.members) if (!other.members.has(m)) s.members.add(m);
    for (const [e, c] of this.children) {
      const o = other.children.get(e);
      const d = o ? c.difference(o) : c.clone();
      if (!d.isEmpty()) s.children.set(e, d);
    }
    return s;
  }

  equals(other: FieldSet): boolean {
    return this.difference(other).isEmpty() && other.difference(this).isEmpty();
  }

  /** The nested fieldsV1 JSON (`{"f:spec":{"f:flavor":{}}}`; `".": {}` marks a member with children). */
  toFieldsV1(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    const elems = [...new Set([...this.members, ...this.children.keys()])].sort(compareElements);
    for (const e of elems) {
      const c = this.children.get(e);
      if (c && !c.isEmpty()) {
        const inner: Record<string, unknown> = {};
        if (this.members.has(e)) inner['.'] = {};
        Object.assign(inner, c.toFieldsV1());
        out[e] = inner;
      } else {
        out[e] = {};
      }
    }
    return out;
  }

  /** Parses fieldsV1 JSON. Unknown or malformed element keys are skipped. */
  static fromFieldsV1(json: unknown): FieldSet {
    const s = new FieldSet();
    if (!isPlainObject(json)) return s;
    for (const [k, v] of Object.entries(json)) {
      if (k === '.') continue;
      const e = parseElement(k);
      if (e === undefined) continue;
      const inner = isPlainObject(v) ? v : {};
      const child = FieldSet.fromFieldsV1(inner);
      const keys = Object.keys(inner).filter((x) => x === '.' || parseElement(x) !== undefined);
      // A node is a member when marked with "." or when it has no children at all.
      if ('.' in inner || keys.length === 0 || child.isEmpty()) s.members.add(e);
      if (!child.isEmpty()) s.children.set(e, child);
    }
    return s;
  }
}

export const toFieldsV1 = (set: FieldSet): Record<string, unknown> => set.toFieldsV1();
export const fromFieldsV1 = (fieldsV1: unknown): FieldSet => FieldSet.fromFieldsV1(fieldsV1);
