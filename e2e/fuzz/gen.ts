// Deterministic random values and schema-aware object generators for the API fuzzer: valid
// objects from each kind's openAPIV3Schema, and mutations of them that a server must reject
// with a 4xx (wrong types, missing required fields, extreme numbers and strings, deep nesting).
import type { JSONSchema, ResourceInfo } from '../../api/types.js';

type Json = unknown;
type Rec = Record<string, unknown>;

/** sfc32 seeded through splitmix32: the same seed gives the same run on every Node version. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(seed: number) {
    let s = seed >>> 0;
    const next = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
  }
  /** Uniform in [0, 1). */
  next(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)];
  }
  /** Picks by weight: `[[w, v], ...]`. */
  weighted<T>(xs: ReadonlyArray<readonly [number, T]>): T {
    let total = 0;
    for (const [w] of xs) total += w;
    let x = this.next() * total;
    for (const [w, v] of xs) {
      if ((x -= w) < 0) return v;
    }
    return xs[xs.length - 1][1];
  }
  /** A fork with its own stream, so one request's generation does not shift the others. */
  fork(): Rng {
    return new Rng(Math.floor(this.next() * 4294967296));
  }
}

const LOWER = 'abcdefghijklmnopqrstuvwxyz';
const ALNUM = 'abcdefghijklmnopqrstuvwxyz0123456789';

export function dnsLabel(r: Rng, max = 12): string {
  const n = r.int(1, max);
  let s = LOWER[r.int(0, 25)];
  for (let i = 1; i < n; i++) s += r.chance(0.1) && i < n - 1 ? '-' : ALNUM[r.int(0, 35)];
  return s;
}

/** Strings a server must treat carefully: unicode, control characters, path and quote tricks. */
export const NASTY_STRINGS: readonly string[] = [
  '',
  ' ',
  '\u0000',
  '\u0000abc',
  'a\nb',
  '\r\n\r\n',
  '\t',
  '\u202e\u0633\u0644\u0627\u0645',
  'é',
  'Ω≈ç√∫',
  '😀👍🏽',
  '\ud800',
  '\udfff\ud800',
  '\ufeff',
  '..',
  '.',
  '../../etc/passwd',
  '%2e%2e',
  '%zz',
  '//[',
  'a/b',
  '"quoted"',
  "'; DROP TABLE x; --",
  '${jndi:ldap://x}',
  '<script>',
  '{{.}}',
  '\\',
  '-',
  'A',
  'UPPER',
  '0',
  '-1',
  'true',
  'null',
  '1e400',
  'x'.repeat(63),
  'x'.repeat(64),
  'x'.repeat(253),
  'x'.repeat(254),
  'x'.repeat(1000),
];

function long(r: Rng): string {
  return r.pick(['a', 'é', '😀', '\u0000', 'ab-']).repeat(r.pick([300, 5000, 40_000, 120_000]));
}

export function nastyString(r: Rng): string {
  return r.chance(0.08) ? long(r) : r.pick(NASTY_STRINGS);
}

export const EXTREME_NUMBERS: readonly number[] = [
  0, -0, -1, 1, 0.5, -0.5, 2147483647, 2147483648, -2147483649, 4294967296, 9007199254740991, 9007199254740993, -9007199254740993, 1e21, 1e308, -1e308, 5e-324, 1.7976931348623157e308,
];

// Generators for the patterns the CRDs use; other patterns are tried with a few candidates.
const PATTERN_GENS: Array<[RegExp, (r: Rng) => string]> = [
  // Quantities: mostly sizes a kind accepts (memory and disk have lower bounds of 16Mi and up).
  [/\[KMGTPE\]i/, (r) => (r.chance(0.8) ? `${r.int(1, 8)}Gi` : `${r.int(1, 64)}${r.pick(['', 'Mi', 'Gi', 'k', 'M', 'G', 'm'])}`)],
  [/\[0-9\]\{1,3\}\(\\\.\[0-9\]\{1,3\}\)\{3\}\/\[0-9\]\{1,2\}/, (r) => `10.${r.int(0, 255)}.${r.int(0, 255)}.0/${r.pick([16, 24, 28])}`],
  [/\[0-9A-Fa-f\]\{2\}:/, (r) => Array.from({ length: 6 }, () => r.int(0, 255).toString(16).padStart(2, '0')).join(':')],
  [/\[a-f0-9\]\{64\}/, (r) => Array.from({ length: 64 }, () => '0123456789abcdef'[r.int(0, 15)]).join('')],
  [/ssh-rsa/, (r) => `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${'A'.repeat(r.int(10, 40))} fuzz@kova`],
  [/https\?/, (r) => `https://example.com/${dnsLabel(r)}.qcow2`],
  [/\^\[0-9a-f\.:\]/, (r) => `10.0.${r.int(0, 255)}.${r.int(1, 254)}`],
  [/^\^\/$/, (r) => `/${dnsLabel(r)}`],
];

function patternString(pattern: string, r: Rng, maxLength?: number): string {
  let re: RegExp | undefined;
  try {
    re = new RegExp(pattern, 'u');
  } catch {
    re = undefined;
  }
  for (const [key, gen] of PATTERN_GENS) {
    if (key.test(pattern)) {
      const s = gen(r);
      if (!re || re.test(s)) return s;
    }
  }
  const candidates = [dnsLabel(r, Math.min(maxLength ?? 12, 12)), `${dnsLabel(r)}.${dnsLabel(r)}`, `/${dnsLabel(r)}`, `${r.int(0, 999)}`, 'A_b:c', '10.0.0.1', ''];
  for (const c of candidates) if (!re || re.test(c)) return c;
  return dnsLabel(r);
}

function formatString(format: string, r: Rng): string | undefined {
  switch (format) {
    case 'date-time':
      return new Date(Date.UTC(2026, r.int(0, 11), r.int(1, 28), r.int(0, 23), r.int(0, 59), r.int(0, 59))).toISOString().replace(/\.\d+Z$/, 'Z');
    case 'ipv4':
      return `10.${r.int(0, 255)}.${r.int(0, 255)}.${r.int(1, 254)}`;
    case 'cidr':
      return `10.${r.int(0, 255)}.0.0/16`;
    default:
      return undefined;
  }
}

/** A value valid against `s` (as far as the generator understands the schema). */
export function validValue(s: JSONSchema | undefined, r: Rng, depth = 0): Json {
  if (!s) return dnsLabel(r);
  if (Array.isArray(s.enum) && s.enum.length) return structuredClone(r.pick(s.enum));
  if (s['x-kubernetes-int-or-string'] === true) {
    const pat = (s.pattern ?? (s.anyOf as Rec[] | undefined)?.find((b) => typeof b.pattern === 'string')?.pattern) as string | undefined;
    return pat && r.chance(0.85) ? patternString(pat, r) : r.int(1, 8);
  }
  const branches = (s.oneOf ?? s.anyOf) as JSONSchema[] | undefined;
  if (Array.isArray(branches) && branches.length && !s.type) return validValue(r.pick(branches), r, depth);
  switch (s.type) {
    case 'object': {
      const out: Rec = {};
      const props = (s.properties ?? {}) as Record<string, JSONSchema>;
      const required = new Set((s.required as string[] | undefined) ?? []);
      // oneOf/anyOf of `required` lists ("exactly one of a or b"): one branch's fields, none of the others'.
      const excluded = new Set<string>();
      const alts = (s.oneOf ?? s.anyOf) as JSONSchema[] | undefined;
      if (Array.isArray(alts) && alts.some((b) => Array.isArray(b.required))) {
        const chosen = r.pick(alts);
        for (const b of alts) for (const k of (b.required as string[] | undefined) ?? []) excluded.add(k);
        for (const k of (chosen.required as string[] | undefined) ?? []) {
          excluded.delete(k);
          required.add(k);
        }
      }
      for (const [k, ps] of Object.entries(props)) {
        if (excluded.has(k)) continue;
        if (required.has(k) || (depth < 6 && r.chance(0.5))) out[k] = validValue(ps, r, depth + 1);
      }
      const ap = s.additionalProperties;
      if (ap && typeof ap === 'object' && depth < 6) {
        for (let i = r.int(0, 2); i > 0; i--) out[dnsLabel(r)] = validValue(ap as JSONSchema, r, depth + 1);
      }
      return out;
    }
    case 'array': {
      const min = (s.minItems as number | undefined) ?? 0;
      const max = Math.min((s.maxItems as number | undefined) ?? 3, Math.max(min, 3));
      const n = depth >= 6 ? min : r.int(min, max);
      const items = Array.from({ length: n }, () => validValue(s.items as JSONSchema | undefined, r, depth + 1));
      // list-type=map/set: keys must be unique; keep the first item per key.
      const keys = s['x-kubernetes-list-map-keys'] as string[] | undefined;
      if (s['x-kubernetes-list-type'] === 'map' && keys) {
        const seen = new Set<string>();
        return items.filter((it) => {
          const k = JSON.stringify(keys.map((key) => (it as Rec)?.[key]));
          return !seen.has(k) && seen.add(k);
        });
      }
      if (s['x-kubernetes-list-type'] === 'set') return [...new Map(items.map((i) => [JSON.stringify(i), i])).values()];
      return items;
    }
    case 'string': {
      if (typeof s.pattern === 'string') return patternString(s.pattern, r, s.maxLength as number | undefined);
      const f = typeof s.format === 'string' ? formatString(s.format, r) : undefined;
      if (f !== undefined) return f;
      const min = (s.minLength as number | undefined) ?? 0;
      const max = (s.maxLength as number | undefined) ?? 20;
      let v = dnsLabel(r, Math.max(1, Math.min(max, 20)));
      while (v.length < min) v += 'a';
      return v.slice(0, max);
    }
    case 'integer': {
      const lo = (s.minimum as number | undefined) ?? 0;
      const hi = (s.maximum as number | undefined) ?? lo + 100;
      return r.int(lo, Math.min(hi, lo + 1000));
    }
    case 'number': {
      const lo = (s.minimum as number | undefined) ?? 0;
      return lo + r.next() * 100;
    }
    case 'boolean':
      return r.chance(0.5);
    default:
      if (s['x-kubernetes-preserve-unknown-fields']) return { [dnsLabel(r)]: dnsLabel(r) };
      return dnsLabel(r);
  }
}

export interface Scope {
  namespaces: string[];
}

/** A valid object of `info` named `name` (in `namespace` when namespaced). */
export function validObject(info: ResourceInfo, r: Rng, name: string, namespace?: string): Rec {
  const base = (info.schema ? validValue(info.schema, r) : {}) as Rec;
  const obj: Rec = { ...base };
  obj.apiVersion = info.group ? `${info.group}/${info.version}` : info.version;
  obj.kind = info.kind;
  const labels: Rec = {};
  for (let i = r.int(0, 3); i > 0; i--) labels[r.pick(['app', 'tier', 'fuzz', 'kova.dev/role'])] = r.pick(['a', 'b', 'web', 'db', '']);
  obj.metadata = { name, ...(namespace && info.namespaced ? { namespace } : {}), ...(Object.keys(labels).length ? { labels } : {}) };
  if (info.statusSubresource && r.chance(0.7)) delete obj.status;
  return obj;
}

/** A JSON value of a random type, sometimes nested. */
export function randomJson(r: Rng, depth = 0): Json {
  switch (r.int(0, depth > 3 ? 5 : 7)) {
    case 0:
      return null;
    case 1:
      return r.chance(0.5);
    case 2:
      return r.pick(EXTREME_NUMBERS);
    case 3:
      return r.int(-5, 100);
    case 4:
    case 5:
      return r.chance(0.5) ? nastyString(r) : dnsLabel(r);
    case 6:
      return Array.from({ length: r.int(0, 3) }, () => randomJson(r, depth + 1));
    default: {
      const o: Rec = {};
      for (let i = r.int(0, 3); i > 0; i--) o[r.chance(0.2) ? nastyString(r) : dnsLabel(r)] = randomJson(r, depth + 1);
      return o;
    }
  }
}

/** Every path (as keys) to a node inside `v`, the root included. */
export function paths(v: Json, prefix: Array<string | number> = [], out: Array<Array<string | number>> = []): Array<Array<string | number>> {
  out.push(prefix);
  if (out.length > 2000) return out;
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...prefix, i], out));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) paths(x, [...prefix, k], out);
  return out;
}

function setAt(root: Rec, path: Array<string | number>, value: Json | typeof DELETE): void {
  let cur: any = root; // eslint-disable-line @typescript-eslint/no-explicit-any
  for (let i = 0; i < path.length - 1 && cur !== null && typeof cur === 'object'; i++) cur = cur[path[i]];
  // An earlier mutation may have replaced a container on the way by a scalar: nothing to set.
  if (cur === null || typeof cur !== 'object') return;
  const last = path[path.length - 1];
  if (value === DELETE) {
    if (Array.isArray(cur)) cur.splice(last as number, 1);
    else delete cur[last];
  } else cur[last] = value;
}
const DELETE = Symbol('delete');

/** Nested arrays/objects `depth` levels deep (built iteratively: the generator must not overflow). */
export function deep(depth: number, asObject: boolean): Json {
  let v: Json = 1;
  for (let i = 0; i < depth; i++) v = asObject ? { a: v } : [v];
  return v;
}

/** Raw JSON text `depth` levels deep, for depths JSON.stringify could not produce. */
export function deepText(depth: number, asObject: boolean): string {
  return asObject ? '{"a":'.repeat(depth) + '1' + '}'.repeat(depth) : '['.repeat(depth) + '1' + ']'.repeat(depth);
}

export type Mutation = { what: string; obj: Rec };

/** One random mutation of a (valid) object; the result is a new object. */
export function mutate(obj: Rec, info: ResourceInfo, r: Rng): Mutation {
  const o = structuredClone(obj) as Rec;
  const meta = (o.metadata ?? {}) as Rec;
  const inner = paths(o).filter((p) => p.length > 0);
  const at = inner.length ? r.pick(inner) : ['spec'];
  const kind = r.int(0, 19);
  switch (kind) {
    case 0:
      setAt(o, at, randomJson(r));
      return { what: `wrong type at ${at.join('.')}`, obj: o };
    case 1: {
      const req = requiredPaths(info.schema);
      const p = req.length ? r.pick(req) : at;
      try {
        setAt(o, p, DELETE);
      } catch {
        /* path absent */
      }
      return { what: `deleted ${p.join('.')}`, obj: o };
    }
    case 2:
      setAt(o, at, r.pick(EXTREME_NUMBERS));
      return { what: `extreme number at ${at.join('.')}`, obj: o };
    case 3:
      setAt(o, at, nastyString(r));
      return { what: `nasty string at ${at.join('.')}`, obj: o };
    case 4:
      setAt(o, at, deep(r.pick([50, 500, 1500]), r.chance(0.5)));
      return { what: `deep nesting at ${at.join('.')}`, obj: o };
    case 5:
      o.metadata = r.pick<Json>(['a-string', null, [], 42, true, [meta]]);
      return { what: `metadata is ${JSON.stringify(o.metadata).slice(0, 20)}`, obj: o };
    case 6:
      meta.name = r.chance(0.3) ? randomJson(r) : nastyString(r);
      return { what: 'bad name', obj: o };
    case 7:
      meta.namespace = r.chance(0.3) ? randomJson(r) : nastyString(r);
      return { what: 'bad namespace', obj: o };
    case 8: {
      const labels: Rec = {};
      const n = r.pick([1, 100, 3000]);
      for (let i = 0; i < n; i++) labels[r.chance(0.5) ? `k${i}` : `${nastyString(r).slice(0, 300)}${i}`] = r.chance(0.5) ? nastyString(r).slice(0, 5000) : 'v';
      meta.labels = labels;
      return { what: `${n} odd labels`, obj: o };
    }
    case 9:
      meta.annotations = { big: 'x'.repeat(r.pick([100, 300_000, 1_000_000])), [nastyString(r).slice(0, 100) || 'e']: 'v' };
      return { what: 'large annotations', obj: o };
    case 10:
      o.kind = r.pick([info.kind.toLowerCase(), 'Pod', '', 42, null, `${info.kind}List`]);
      return { what: 'wrong kind', obj: o };
    case 11:
      o.apiVersion = r.pick(['v1', 'kova.dev/v1', 'kova.dev/v1alpha1', 'apps/v1', '', '/', 7]);
      return { what: 'wrong apiVersion', obj: o };
    case 12:
      meta[r.pick(['resourceVersion', 'uid', 'generation', 'creationTimestamp', 'deletionTimestamp', 'finalizers', 'ownerReferences', 'managedFields', 'generateName', 'deletionGracePeriodSeconds'])] = randomJson(r);
      return { what: 'odd metadata field', obj: o };
    case 13:
      meta.ownerReferences = Array.from({ length: r.int(1, 3) }, () => ({ apiVersion: r.pick(['v1', 'kova.dev/v1alpha1', '']), kind: r.pick(['Instance', 'Namespace', '', 'X']), name: r.chance(0.5) ? dnsLabel(r) : nastyString(r), uid: r.pick(['', 'u', '00000000-0000-0000-0000-000000000000']), ...(r.chance(0.5) ? { controller: randomJson(r), blockOwnerDeletion: randomJson(r) } : {}) }));
      return { what: 'odd ownerReferences', obj: o };
    case 14:
      meta.finalizers = Array.from({ length: r.int(1, 4) }, () => r.pick(['kova.dev/fuzz', 'a', '', 'A/B/C', nastyString(r)]));
      return { what: 'finalizers', obj: o };
    case 15:
      o[r.chance(0.5) ? dnsLabel(r) : nastyString(r)] = randomJson(r);
      return { what: 'unknown field at top', obj: o };
    case 16: {
      const parent = at.slice(0, -1);
      const p = [...parent, r.chance(0.5) ? dnsLabel(r) : nastyString(r)];
      try {
        setAt(o, p, randomJson(r));
      } catch {
        /* parent not a container */
      }
      return { what: `unknown field at ${parent.join('.')}`, obj: o };
    }
    case 17:
      meta.generateName = r.chance(0.5) ? `${dnsLabel(r)}-` : nastyString(r);
      if (r.chance(0.5)) delete meta.name;
      return { what: 'generateName', obj: o };
    case 18:
      o.status = randomJson(r);
      return { what: 'random status', obj: o };
    default:
      for (const p of inner.slice(0, 50)) if (r.chance(0.2)) setAt(o, p, randomJson(r));
      return { what: 'many wrong types', obj: o };
  }
}

function requiredPaths(s: JSONSchema | undefined, prefix: string[] = [], out: string[][] = []): string[][] {
  if (!s || s.type !== 'object') return out;
  const props = (s.properties ?? {}) as Record<string, JSONSchema>;
  for (const k of (s.required as string[] | undefined) ?? []) out.push([...prefix, k]);
  for (const [k, ps] of Object.entries(props)) if (prefix.length < 3) requiredPaths(ps, [...prefix, k], out);
  return out;
}

/** A JSON text with a duplicated key (JSON.stringify cannot produce one). */
export function withDuplicateKey(obj: Rec, r: Rng): string {
  const text = JSON.stringify(obj);
  const key = r.pick(['metadata', 'spec', 'kind', 'apiVersion', 'status']);
  const dup = JSON.stringify(r.chance(0.5) ? randomJson(r) : obj[key] ?? null);
  return r.chance(0.5) ? `{"${key}":${dup},${text.slice(1)}` : `${text.slice(0, -1)},"${key}":${dup}}`;
}

/** Breaks a JSON text: truncation, garbage, a lone BOM, a trailing comma... */
export function breakText(text: string, r: Rng): string {
  switch (r.int(0, 7)) {
    case 0:
      return text.slice(0, r.int(0, Math.max(0, text.length - 1)));
    case 1:
      return `${text},`;
    case 2:
      return `\ufeff${text}`;
    case 3:
      return text.replace(/"/g, "'");
    case 4:
      return r.pick(['', ' ', 'null', '[]', '0', '"str"', 'true', '{}', '{"a":NaN}', '{"a":1e99999}', '\u0000', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{"x":1}}}']);
    case 5:
      return `${text}${text}`;
    case 6:
      return text.replace(/:/, '::');
    default:
      return Array.from({ length: r.int(1, 200) }, () => String.fromCharCode(r.int(0, 0xffff))).join('');
  }
}

/** A YAML rendering of `v` good enough for apply patches (JSON is valid YAML), sometimes mangled. */
export function yamlish(v: Json, r: Rng): string {
  if (r.chance(0.8)) return JSON.stringify(v, null, r.chance(0.5) ? 2 : undefined);
  return r.pick([
    'a: [',
    'metadata: *ref',
    '&a [*a]',
    'a: &a [*a, *a, *a]\nb: &b [*a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c]',
    '!!binary AAAA',
    '---\na: 1\n---\nb: 2',
    '? [a]\n: b',
    'kind: !!js/function "f"',
    '\t- tab',
    'a: 1\na: 2',
  ]);
}
