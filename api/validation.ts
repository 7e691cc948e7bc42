// Schema validation, defaulting and pruning of API objects, the way apiextensions-apiserver
// treats custom resources (and close enough for kova's built-in kinds):
//
//   prune (drop unknown fields) → applyDefaults → validate (+ validateMetadata)
//
// Causes carry apiserver-style field paths (`spec.networks[0].ip`) and messages
// (`Invalid value: -1: spec.resources.vcpus in body should be greater than or equal to 1`).
import { isIPv4, isIPv6 } from 'node:net';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { OBJECT_META_SCHEMA } from './builtin-kinds.js';
import { pathSegmentNameErrors, RBAC_GROUP, RBAC_KINDS, rbacCauses } from './builtin-kinds-rbac.js';
import { hasHostBits, intToIPv4, ipv4ToInt, isIPv4 as isStrictIPv4, macProblem, parseIPv4CIDR, type IPv4Net } from './net/ipv4.js';
import { DNS1123_LABEL_PATTERN, isDNS1123Label, isDNS1123Subdomain, isQualifiedName, isValidLabelValue } from './name-validation.js';
import { NONNEGATIVE_QUANTITY_PATTERN, QUANTITY_PATTERN, QUANTITY_REGEXP, formatQuantity, parseQuantity } from './quantity.js';
import type { Registry } from './registry.js';
import type { FieldCause, JSONSchema, KObject, ResourceInfo } from './types.js';

type Rec = Record<string, unknown>;
type Seg = string | number;

const isObj = (v: unknown): v is Rec => typeof v === 'object' && v !== null && !Array.isArray(v);

// ---------------------------------------------------------------------------------------------
// Field paths and value formatting (apimachinery pkg/util/validation/field)

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `spec.networks[0].ip`; map keys that are not identifiers are bracketed: `metadata.labels[kova.dev/zone]`. */
export function fieldPath(segs: readonly Seg[]): string {
  let out = '';
  for (const s of segs) {
    if (typeof s === 'number') out += `[${s}]`;
    else if (IDENT.test(s)) out += out ? `.${s}` : s;
    else out += `[${s}]`;
  }
  return out;
}

/** A bad value as field.ErrorBody prints it: strings quoted, scalars bare, objects as "object". */
function showValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return Array.isArray(v) ? '"array"' : '"object"';
}

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

export const causes = {
  required: (field: string, detail = ''): FieldCause => ({ reason: 'FieldValueRequired', field, message: detail ? `Required value: ${detail}` : 'Required value' }),
  invalid: (field: string, value: unknown, detail: string): FieldCause => ({ reason: 'FieldValueInvalid', field, message: `Invalid value: ${showValue(value)}: ${detail}` }),
  typeInvalid: (field: string, value: unknown, detail: string): FieldCause => ({ reason: 'FieldValueTypeInvalid', field, message: `Invalid value: ${showValue(value)}: ${detail}` }),
  notSupported: (field: string, value: unknown, allowed: unknown[]): FieldCause => ({
    reason: 'FieldValueNotSupported',
    field,
    message: `Unsupported value: ${showValue(value)}: supported values: ${allowed.map((a) => JSON.stringify(typeof a === 'string' ? a : JSON.stringify(a))).join(', ')}`,
  }),
  forbidden: (field: string, detail: string): FieldCause => ({ reason: 'FieldValueForbidden', field, message: `Forbidden: ${detail}` }),
  tooLong: (field: string, max: number): FieldCause => ({ reason: 'FieldValueTooLong', field, message: `Too long: may not be more than ${max} ${max === 1 ? 'byte' : 'bytes'}` }),
  tooMany: (field: string, actual: number, max: number): FieldCause => ({ reason: 'FieldValueTooMany', field, message: `Too many: ${actual}: must have at most ${max} ${max === 1 ? 'item' : 'items'}` }),
  duplicate: (field: string, value: unknown): FieldCause => ({
    reason: 'FieldValueDuplicate',
    field,
    message: `Duplicate value: ${typeof value === 'object' && value !== null ? JSON.stringify(value) : showValue(value)}`,
  }),
};

// ---------------------------------------------------------------------------------------------
// Formats (the subset of apiextensions' supported formats that kova schemas use, plus common ones)

const DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*\.?$/;
const MAC = /^([0-9A-Fa-f]{2}([:-])){5}[0-9A-Fa-f]{2}$|^([0-9A-Fa-f]{2}([:-])){7}[0-9A-Fa-f]{2}$|^([0-9A-Fa-f]{4}\.){2}[0-9A-Fa-f]{4}$/;

function isCidr(s: string): boolean {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(s);
  if (!m) return false;
  const bits = Number(m[2]);
  if (isIPv4(m[1])) return bits <= 32;
  return isIPv6(m[1]) && bits <= 128;
}

function isUri(s: string): boolean {
  try {
    return !!new URL(s).protocol;
  } catch {
    return false;
  }
}

const STRING_FORMATS: Record<string, (s: string) => boolean> = {
  'date-time': (s) => DATE_TIME.test(s) && !Number.isNaN(Date.parse(s.replace(' ', 'T'))),
  date: (s) => /^\d{4}-\d{2}-\d{2}$/.test(s) && !Number.isNaN(Date.parse(s)),
  byte: (s) => BASE64.test(s),
  ipv4: (s) => isIPv4(s),
  ipv6: (s) => isIPv6(s),
  cidr: isCidr,
  mac: (s) => MAC.test(s),
  uri: isUri,
  hostname: (s) => HOSTNAME.test(s),
  uuid: (s) => UUID.test(s),
  email: (s) => /^[^@\s]+@[^@\s]+$/.test(s),
  password: () => true,
};

const NUMBER_FORMATS: Record<string, (n: number) => boolean> = {
  int32: (n) => Number.isInteger(n) && n >= -2147483648 && n <= 2147483647,
  int64: (n) => Number.isInteger(n),
  float: () => true,
  double: () => true,
};

/** apiextensions normalises format names by dropping dashes (datetime = date-time). */
function normalizeFormat(f: string): string | undefined {
  const plain = f.replace(/-/g, '');
  for (const k of [...Object.keys(STRING_FORMATS), ...Object.keys(NUMBER_FORMATS)]) if (k.replace(/-/g, '') === plain) return k;
  return undefined;
}

function newAjv(): Ajv {
  const ajv = new Ajv({ allErrors: true, strict: false, verbose: true, validateFormats: true, unicodeRegExp: false });
  for (const [name, validate] of Object.entries(STRING_FORMATS)) ajv.addFormat(name, { type: 'string', validate });
  for (const [name, validate] of Object.entries(NUMBER_FORMATS)) ajv.addFormat(name, { type: 'number', validate });
  return ajv;
}

/**
 * An int-or-string quantity field (memory, disk, size): its `minimum`/`maximum` bound the
 * quantity's value in both forms (`1073741824` and `"1Gi"`), which a JSON-schema `minimum` alone
 * cannot do for strings. kova checks these in code (quantityCauses); the CRD keeps the pattern and
 * the bounds so a real cluster at least refuses negative strings and out-of-range integers.
 */
function isQuantitySchema(s: unknown): s is JSONSchema {
  return isObj(s) && s['x-kubernetes-int-or-string'] === true && (s.pattern === NONNEGATIVE_QUANTITY_PATTERN || s.pattern === QUANTITY_PATTERN);
}

function isIntOrStringAnyOf(a: unknown): boolean {
  return Array.isArray(a) && a.length === 2 && isObj(a[0]) && a[0].type === 'integer' && isObj(a[1]) && a[1].type === 'string';
}

/**
 * The schema ajv compiles: Kubernetes extensions and annotations removed, int-or-string as a
 * type union, unsupported formats dropped (apiextensions ignores them too), and root metadata
 * left to validateMetadata.
 */
function toAjvSchema(s: unknown, root = false): unknown {
  if (!isObj(s)) return s;
  const out: Rec = {};
  for (const [k, v] of Object.entries(s)) {
    if (k.startsWith('x-kubernetes-') || ['description', 'example', 'externalDocs', 'title', 'default', '$schema'].includes(k)) continue;
    if (k === 'properties' && isObj(v)) out.properties = Object.fromEntries(Object.entries(v).map(([p, ps]) => [p, toAjvSchema(ps)]));
    else if (k === 'items' || k === 'not' || (k === 'additionalProperties' && isObj(v))) out[k] = toAjvSchema(v);
    else if ((k === 'allOf' || k === 'anyOf' || k === 'oneOf') && Array.isArray(v)) out[k] = v.map((x) => toAjvSchema(x));
    else if (k === 'format') {
      const f = normalizeFormat(String(v));
      if (f) out.format = f;
    } else out[k] = v;
  }
  if (s['x-kubernetes-int-or-string'] === true) {
    if (isIntOrStringAnyOf(out.anyOf)) delete out.anyOf;
    out.type = ['integer', 'string'];
    // Pattern and bounds of quantities are checked in code, on the parsed value (quantityCauses).
    if (isQuantitySchema(s)) for (const k of ['pattern', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum']) delete out[k];
  }
  if (root && isObj(out.properties) && 'metadata' in out.properties) out.properties = { ...out.properties, metadata: { type: 'object' } };
  return out;
}

// ---------------------------------------------------------------------------------------------
// ajv errors → causes

function segmentsOf(instancePath: string, data: unknown): Seg[] {
  if (!instancePath) return [];
  const segs: Seg[] = [];
  let cur: unknown = data;
  for (const raw of instancePath.slice(1).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(cur)) {
      segs.push(Number(key));
      cur = cur[Number(key)];
    } else {
      segs.push(key);
      cur = isObj(cur) ? cur[key] : undefined;
    }
  }
  return segs;
}

const JUNCTOR_BRANCH = /\/(oneOf|anyOf)\/\d+\/|\/not\//;

function oneOfMessage(path: string, schema: unknown): string {
  const branches = isObj(schema) && Array.isArray(schema.oneOf) ? schema.oneOf : [];
  const names = branches.map((b) =>
    isObj(b) && Object.keys(b).length === 1 && Array.isArray(b.required) && b.required.length === 1 ? String(b.required[0]) : undefined,
  );
  if (names.length > 1 && names.every((n) => n !== undefined)) {
    const full = names.map((n) => (path ? `${path}.${n}` : n!));
    const list = full.length === 2 ? `${full[0]} or ${full[1]}` : `${full.slice(0, -1).join(', ')} or ${full[full.length - 1]}`;
    return `exactly one of ${list} must be set`;
  }
  return `${path || 'body'} in body must validate one and only one schema (oneOf)`;
}

function toCause(e: ErrorObject, data: unknown): FieldCause | undefined {
  const segs = segmentsOf(e.instancePath, data);
  const path = fieldPath(segs);
  const at = path || 'body';
  const v = e.data;
  const p = e.params as Rec;
  switch (e.keyword) {
    case 'required':
      return causes.required(fieldPath([...segs, String(p.missingProperty)]));
    case 'enum':
      return causes.notSupported(path, v, (p.allowedValues as unknown[]) ?? []);
    case 'const':
      return causes.notSupported(path, v, [p.allowedValue]);
    case 'type':
      return causes.typeInvalid(path, v, `${at} in body must be of type ${String(p.type).replace(/,/g, ',')}: "${jsonType(v)}"`);
    case 'minimum':
    case 'exclusiveMinimum':
    case 'maximum':
    case 'exclusiveMaximum': {
      const cmp = p.comparison === '>=' ? 'greater than or equal to' : p.comparison === '>' ? 'greater than' : p.comparison === '<=' ? 'less than or equal to' : 'less than';
      return causes.invalid(path, v, `${at} in body should be ${cmp} ${String(p.limit)}`);
    }
    case 'maxLength':
      return causes.tooLong(path, Number(p.limit));
    case 'minLength':
      return causes.invalid(path, v, `${at} in body should be at least ${String(p.limit)} chars long`);
    case 'maxItems':
      return causes.tooMany(path, Array.isArray(v) ? v.length : -1, Number(p.limit));
    case 'minItems':
      return causes.invalid(path, v, `${at} in body should have at least ${String(p.limit)} items`);
    case 'maxProperties':
      return causes.tooMany(path, isObj(v) ? Object.keys(v).length : -1, Number(p.limit));
    case 'minProperties':
      return causes.invalid(path, v, `${at} in body should have at least ${String(p.limit)} properties`);
    case 'pattern':
      return causes.invalid(path, v, `${at} in body should match '${String(p.pattern)}'`);
    case 'format':
      return causes.invalid(path, v, `${at} in body must be of type ${String(p.format)}: ${JSON.stringify(v)}`);
    case 'multipleOf':
      return causes.invalid(path, v, `${at} in body should be a multiple of ${String(p.multipleOf)}`);
    case 'oneOf':
      return causes.invalid(path, v, oneOfMessage(path, e.parentSchema));
    case 'anyOf':
      return causes.invalid(path, v, `${at} in body must validate at least one schema (anyOf)`);
    case 'not':
      return causes.invalid(path, v, `${at} in body must not validate the schema (not)`);
    default:
      return causes.invalid(path, v, `${at} in body ${e.message ?? 'is invalid'}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Walking objects along a structural schema (pruning, unknown fields, list-type checks)

/** A schema that describes an object's fields (as opposed to a scalar or array schema). */
function describesObject(s: JSONSchema): boolean {
  return s.type === 'object' || isObj(s.properties) || s.additionalProperties !== undefined || s['x-kubernetes-preserve-unknown-fields'] === true;
}

interface WalkHooks {
  /** A field the schema does not know; return true to delete it. */
  unknown?(path: Seg[], parent: Rec, key: string): boolean | void;
  /** Every array with its schema (for list-type checks); `path` is the shared stack: copy to keep it. */
  array?(path: Seg[], value: unknown[], schema: JSONSchema): void;
  /** Every known scalar field with its schema (for quantity checks); `path` is the shared stack: copy to keep it. */
  scalar?(path: Seg[], value: unknown, schema: JSONSchema): void;
}

/**
 * What the walks read of a schema node (walk and defaulting), built once per node: every write
 * walks every field, and reading the schema's own members each time costs more than the work.
 */
interface SchemaPlan {
  describesObject: boolean;
  props: Readonly<Record<string, JSONSchema>>;
  /** `props` in order, and their names. */
  propEntries: ReadonlyArray<readonly [string, JSONSchema]>;
  propNames: ReadonlySet<string>;
  items?: JSONSchema;
  /** additionalProperties as a schema. */
  additional?: JSONSchema;
  /** Unknown members are known anyway (additionalProperties: true, preserve-unknown-fields). */
  keepsUnknown: boolean;
  embedded: boolean;
}
const schemaPlans = new WeakMap<JSONSchema, SchemaPlan>();

function schemaPlan(schema: JSONSchema): SchemaPlan {
  let plan = schemaPlans.get(schema);
  if (!plan) {
    const ap = schema.additionalProperties;
    const props = isObj(schema.properties) ? (schema.properties as Record<string, JSONSchema>) : {};
    const propEntries = Object.entries(props);
    plan = {
      describesObject: describesObject(schema),
      props,
      propEntries,
      propNames: new Set(propEntries.map(([k]) => k)),
      items: isObj(schema.items) ? (schema.items as JSONSchema) : undefined,
      additional: isObj(ap) ? (ap as JSONSchema) : undefined,
      keepsUnknown: ap === true || schema['x-kubernetes-preserve-unknown-fields'] === true,
      embedded: schema['x-kubernetes-embedded-resource'] === true,
    };
    schemaPlans.set(schema, plan);
  }
  return plan;
}

/** `path` is a stack shared by the whole walk (pushed and popped), copied only when a hook keeps it. */
function walk(value: unknown, schema: JSONSchema | undefined, path: Seg[], hooks: WalkHooks): void {
  if (!schema) return;
  if (Array.isArray(value)) {
    hooks.array?.(path, value, schema);
    const items = schemaPlan(schema).items;
    if (items) {
      for (let i = 0; i < value.length; i++) {
        path.push(i);
        walk(value[i], items, path, hooks);
        path.pop();
      }
    }
    return;
  }
  if (!isObj(value)) {
    if (value !== null && value !== undefined) hooks.scalar?.(path, value, schema);
    return;
  }
  const plan = schemaPlan(schema);
  if (!plan.describesObject) return;
  const { props, propNames, additional, embedded } = plan;
  for (const key of Object.keys(value)) {
    const sub = propNames.has(key) ? props[key] : undefined;
    path.push(key);
    if (embedded && key === 'metadata' && !sub) walk(value[key], OBJECT_META_SCHEMA, path, hooks);
    else if (sub) walk(value[key], sub, path, hooks);
    else if (additional) walk(value[key], additional, path, hooks);
    else if (plan.keepsUnknown || (embedded && (key === 'apiVersion' || key === 'kind'))) {
      // known through additionalProperties, preserve-unknown-fields or embedded type meta
    } else if (hooks.unknown?.([...path], value, key)) delete value[key];
    path.pop();
  }
}

/** Schemas without root metadata (ObjectMeta has no schema defaults), built once per resource. */
const defaultingSchemas = new WeakMap<JSONSchema, JSONSchema>();

/** Root schemas with ObjectMeta and type meta added, built once per resource. */
const rootSchemas = new WeakMap<JSONSchema, JSONSchema>();

/** Walks a whole object: root metadata is ObjectMeta, apiVersion and kind are always known. */
function walkObject(info: ResourceInfo, obj: KObject, hooks: WalkHooks): void {
  const schema = info.schema;
  if (!schema) return;
  let root = rootSchemas.get(schema);
  if (!root) {
    root = {
      ...schema,
      properties: {
        ...(isObj(schema.properties) ? schema.properties : {}),
        apiVersion: { type: 'string' },
        kind: { type: 'string' },
        metadata: OBJECT_META_SCHEMA,
      },
    };
    rootSchemas.set(schema, root);
  }
  walk(obj, root, [], hooks);
}

/** The limit of a quantity bound as people write it: `1Mi`, `16Ti`, `0`. */
const showLimit = (n: number) => formatQuantity(n);

/**
 * Pattern and bounds of an int-or-string quantity (see isQuantitySchema). A string that is a
 * quantity with a sign is parsed, so `-1Gi` is reported as below the minimum rather than as a
 * pattern mismatch; anything else that is not a quantity gets the pattern message.
 */
function quantityCauses(segs: Seg[], value: unknown, schema: JSONSchema, out: FieldCause[]): void {
  if (!isQuantitySchema(schema)) return;
  if (typeof value !== 'string' && !(typeof value === 'number' && Number.isInteger(value))) return; // a type error already
  const path = fieldPath(segs);
  if (typeof value === 'string' && !QUANTITY_REGEXP.test(value)) {
    out.push(causes.invalid(path, value, `${path} in body should match '${String(schema.pattern)}'`));
    return;
  }
  let n: number;
  try {
    n = parseQuantity(value as string | number);
  } catch (e) {
    out.push(causes.invalid(path, value, `${path} in body must be a quantity: ${(e as Error).message}`));
    return;
  }
  const min = typeof schema.minimum === 'number' ? schema.minimum : undefined;
  const max = typeof schema.maximum === 'number' ? schema.maximum : undefined;
  // NaN cannot come out of parseQuantity; Infinity (a 400-digit string) fails the maximum.
  if (min !== undefined && !(n >= min)) out.push(causes.invalid(path, value, `${path} in body should be greater than or equal to ${showLimit(min)}`));
  else if (max !== undefined && !(n <= max)) out.push(causes.invalid(path, value, `${path} in body should be less than or equal to ${showLimit(max)}`));
  else if (min === undefined && n < 0) out.push(causes.invalid(path, value, `${path} in body should be greater than or equal to 0`));
}

function listTypeCauses(path: Seg[], value: unknown[], schema: JSONSchema, out: FieldCause[]): void {
  const lt = schema['x-kubernetes-list-type'];
  if (lt === 'set') {
    const seen = new Set<string>();
    value.forEach((x, i) => {
      const k = JSON.stringify(x);
      if (seen.has(k)) out.push(causes.duplicate(fieldPath([...path, i]), x));
      seen.add(k);
    });
  } else if (lt === 'map') {
    const keys = (schema['x-kubernetes-list-map-keys'] as string[] | undefined) ?? [];
    const seen = new Set<string>();
    value.forEach((x, i) => {
      if (!isObj(x)) return;
      const id = Object.fromEntries(keys.map((k) => [k, x[k]]));
      const k = JSON.stringify(id);
      if (seen.has(k)) out.push(causes.duplicate(fieldPath([...path, i]), id));
      seen.add(k);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Defaulting (apiextensions structural defaulting)

/** A fresh copy of a schema default (scalars need none). */
const defaultValue = (d: unknown): unknown => (typeof d === 'object' && d !== null ? structuredClone(d) : d);

function defaultNode(value: unknown, schema: JSONSchema | undefined): void {
  if (!schema) return;
  if (Array.isArray(value)) {
    const items = schemaPlan(schema).items;
    if (!items) return;
    for (let i = 0; i < value.length; i++) {
      if (value[i] === null && items.default !== undefined) value[i] = defaultValue(items.default);
      defaultNode(value[i], items);
    }
    return;
  }
  if (!isObj(value)) return;
  const plan = schemaPlan(schema);
  const props = plan.propEntries;
  for (let i = 0; i < props.length; i++) {
    const [k, ps] = props[i]!;
    const v = value[k];
    if (v === null && ps.nullable !== true) {
      // Nulls of non-nullable fields are pruned before defaulting happens (then defaulted).
      if (ps.default !== undefined) value[k] = defaultValue(ps.default);
      else delete value[k];
    } else if (v === undefined && ps.default !== undefined) {
      value[k] = defaultValue(ps.default);
    }
  }
  for (let i = 0; i < props.length; i++) {
    const [k, ps] = props[i]!;
    if (value[k] !== undefined) defaultNode(value[k], ps);
  }
  if (plan.additional) {
    for (const k of Object.keys(value)) if (!plan.propNames.has(k)) defaultNode(value[k], plan.additional);
  }
}

// ---------------------------------------------------------------------------------------------
// Metadata (apimachinery ValidateObjectMeta and pkg/util/validation)

export { DNS1123_LABEL_PATTERN, DNS1123_SUBDOMAIN_PATTERN, isDNS1123Label, isDNS1123Subdomain, isQualifiedName, isValidLabelValue } from './name-validation.js';

const TOTAL_ANNOTATION_SIZE = 256 * 1024;

/** How names of this kind are validated: Namespace and kinds whose CRD restricts metadata.name to labels use DNS-1123 labels. */
export function nameFormat(info: ResourceInfo): 'label' | 'subdomain' {
  if (!info.group && info.kind === 'Namespace') return 'label';
  const meta = isObj(info.schema?.properties) ? (info.schema!.properties as Rec).metadata : undefined;
  const name = isObj(meta) && isObj(meta.properties) ? meta.properties.name : undefined;
  return isObj(name) && name.pattern === DNS1123_LABEL_PATTERN ? 'label' : 'subdomain';
}

const maskTrailingDash = (s: string) => (s.length > 1 && s.endsWith('-') ? `${s.slice(0, -2)}a` : s);

/** ObjectMeta checks: name/generateName, namespace presence, labels, annotations, finalizers, ownerReferences. */
export function validateObjectMeta(info: ResourceInfo, obj: KObject): FieldCause[] {
  const out: FieldCause[] = [];
  const m = obj.metadata as unknown;
  if (!isObj(m)) {
    if (m !== undefined && m !== null) return [causes.typeInvalid('metadata', m, 'must be an object')];
    return [causes.required('metadata.name', 'name or generateName is required')];
  }
  const check = info.group === RBAC_GROUP ? (n: string) => pathSegmentNameErrors(n) : nameFormat(info) === 'label' ? isDNS1123Label : isDNS1123Subdomain;
  for (const f of ['name', 'generateName', 'namespace'] as const) {
    if (m[f] !== undefined && m[f] !== null && typeof m[f] !== 'string') out.push(causes.typeInvalid(`metadata.${f}`, m[f], 'must be a string'));
  }
  const name = typeof m.name === 'string' ? m.name : '';
  const gen = typeof m.generateName === 'string' ? m.generateName : '';
  if (gen) for (const msg of check(maskTrailingDash(gen))) out.push(causes.invalid('metadata.generateName', gen, msg));
  if (!name) {
    if (!gen) out.push(causes.required('metadata.name', 'name or generateName is required'));
  } else {
    for (const msg of check(name)) out.push(causes.invalid('metadata.name', name, msg));
  }
  const ns = typeof m.namespace === 'string' ? m.namespace : '';
  if (info.namespaced) {
    if (!ns) out.push(causes.required('metadata.namespace'));
    else for (const msg of isDNS1123Label(ns)) out.push(causes.invalid('metadata.namespace', ns, msg));
  } else if (ns) {
    out.push(causes.forbidden('metadata.namespace', 'not allowed on this type'));
  }

  const labels = m.labels;
  if (labels !== undefined && labels !== null) {
    if (!isObj(labels)) out.push(causes.typeInvalid('metadata.labels', labels, 'must be a map of string keys and values'));
    else {
      for (const [k, v] of Object.entries(labels)) {
        for (const msg of isQualifiedName(k)) out.push(causes.invalid('metadata.labels', k, msg));
        if (typeof v !== 'string') out.push(causes.typeInvalid(`metadata.labels[${k}]`, v, 'must be a string'));
        else for (const msg of isValidLabelValue(v)) out.push(causes.invalid('metadata.labels', v, msg));
      }
    }
  }
  const ann = m.annotations;
  if (ann !== undefined && ann !== null) {
    if (!isObj(ann)) out.push(causes.typeInvalid('metadata.annotations', ann, 'must be a map of string keys and values'));
    else {
      let size = 0;
      for (const [k, v] of Object.entries(ann)) {
        for (const msg of isQualifiedName(k.toLowerCase())) out.push(causes.invalid('metadata.annotations', k, msg));
        if (typeof v !== 'string') out.push(causes.typeInvalid(`metadata.annotations[${k}]`, v, 'must be a string'));
        size += Buffer.byteLength(k) + Buffer.byteLength(String(v));
      }
      if (size > TOTAL_ANNOTATION_SIZE) out.push(causes.tooLong('metadata.annotations', TOTAL_ANNOTATION_SIZE));
    }
  }
  const fin = m.finalizers;
  if (fin !== undefined && fin !== null) {
    if (!Array.isArray(fin)) out.push(causes.typeInvalid('metadata.finalizers', fin, 'must be a list of strings'));
    else {
      fin.forEach((f, i) => {
        if (typeof f !== 'string') out.push(causes.typeInvalid(`metadata.finalizers[${i}]`, f, 'must be a string'));
        else for (const msg of isQualifiedName(f)) out.push(causes.invalid(`metadata.finalizers[${i}]`, f, msg));
      });
      const seen = new Set<unknown>();
      fin.forEach((f, i) => {
        if (seen.has(f)) out.push(causes.duplicate(`metadata.finalizers[${i}]`, f));
        seen.add(f);
      });
    }
  }
  const owners = m.ownerReferences;
  if (owners !== undefined && owners !== null) {
    if (!Array.isArray(owners)) out.push(causes.typeInvalid('metadata.ownerReferences', owners, 'must be a list'));
    else {
      owners.forEach((o, i) => {
        const p = `metadata.ownerReferences[${i}]`;
        if (!isObj(o)) return void out.push(causes.typeInvalid(p, o, 'must be an object'));
        for (const f of ['apiVersion', 'kind', 'name', 'uid']) {
          if (typeof o[f] !== 'string' || !o[f]) out.push(causes.invalid(`${p}.${f}`, o[f] ?? '', `${f} must not be empty`));
        }
      });
      if (owners.filter((o) => isObj(o) && o.controller === true).length > 1) {
        out.push(causes.invalid('metadata.ownerReferences', 'object', 'Only one reference can have Controller set to true'));
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Kind-specific rules a structural schema cannot express (a real cluster would need CEL or an
// admission webhook for these; kova checks them in code).

type SemanticRule = (obj: KObject) => FieldCause[];

/** A CIDR must name a network: `10.0.0.1/24` is almost surely a typo for an address or `10.0.0.0/24`. */
function hostBitsCause(field: string, value: string, c: IPv4Net): FieldCause | undefined {
  if (!hasHostBits(c)) return undefined;
  return causes.invalid(field, value, `must be a network address with no host bits set (did you mean ${intToIPv4(c.network)}/${c.prefix}?)`);
}

/**
 * Network: type-specific fields, and a subnet the host side can realise (node-agent/network
 * ipam.ts and validate.ts): IPv4, no host bits, a prefix of 8 to 30 (a /31 or /32 leaves no
 * room for a gateway and instances; shorter than /8 is a mistake), a gateway inside it that is
 * neither its network nor its broadcast address.
 */
function networkRules(obj: KObject): FieldCause[] {
  const out: FieldCause[] = [];
  const spec = obj.spec;
  if (!isObj(spec)) return out;
  const t = spec.type;
  if (t === 'vlan') {
    if (spec.vlanID === undefined) out.push(causes.required('spec.vlanID', 'required when spec.type is vlan'));
    if (spec.physicalInterface === undefined) out.push(causes.required('spec.physicalInterface', 'required when spec.type is vlan'));
  } else if (spec.vlanID !== undefined) {
    out.push(causes.forbidden('spec.vlanID', 'may only be set when spec.type is vlan'));
  }
  if (t !== 'vxlan' && spec.vni !== undefined) out.push(causes.forbidden('spec.vni', 'may only be set when spec.type is vxlan'));
  if (typeof spec.cidr !== 'string') return out;
  const c = parseIPv4CIDR(spec.cidr);
  if (!c) {
    out.push(causes.invalid('spec.cidr', spec.cidr, 'must be an IPv4 subnet in CIDR notation, for example 10.20.0.0/24'));
    return out;
  }
  if (c.prefix < 8 || c.prefix > 30) {
    out.push(causes.invalid('spec.cidr', spec.cidr, 'prefix length must be between 8 and 30'));
    return out;
  }
  const hb = hostBitsCause('spec.cidr', spec.cidr, c);
  if (hb) {
    out.push(hb);
    return out;
  }
  if (typeof spec.gateway === 'string' && isStrictIPv4(spec.gateway)) {
    const gw = ipv4ToInt(spec.gateway);
    if (((gw & c.mask) >>> 0) !== c.network) out.push(causes.invalid('spec.gateway', spec.gateway, `must be inside spec.cidr ${spec.cidr}`));
    else if (gw < c.first || gw > c.last) out.push(causes.invalid('spec.gateway', spec.gateway, `must be a usable address of spec.cidr ${spec.cidr}, not its network or broadcast address`));
  }
  return out;
}

/** Port: a MAC a guest NIC can have (the agent refuses the others on the host: node-agent/network/validate.ts). */
function portRules(obj: KObject): FieldCause[] {
  const spec = obj.spec;
  if (!isObj(spec) || typeof spec.mac !== 'string') return [];
  switch (macProblem(spec.mac)) {
    case 'broadcast':
      return [causes.invalid('spec.mac', spec.mac, 'must be a unicast MAC address, not the broadcast address')];
    case 'multicast':
      return [causes.invalid('spec.mac', spec.mac, 'must be a unicast MAC address (the least significant bit of the first octet is set: a multicast address)')];
    case 'zero':
      return [causes.invalid('spec.mac', spec.mac, 'must not be all zeros')];
    default:
      return []; // fine, or not a MAC at all: the schema's pattern reports that
  }
}

/**
 * SecurityGroup: the rule combinations the node agent would refuse (the whole group would fail
 * closed on every host): a port range only with tcp or udp and not reversed, remoteCIDR an IPv4
 * range without host bits, and not both remoteCIDR and remoteGroup.
 */
function securityGroupRules(obj: KObject): FieldCause[] {
  const out: FieldCause[] = [];
  const rules = isObj(obj.spec) ? obj.spec.rules : undefined;
  if (!Array.isArray(rules)) return out;
  rules.forEach((r, i) => {
    if (!isObj(r)) return;
    const at = `spec.rules[${i}]`;
    const protocol = r.protocol ?? 'any';
    const pr = r.portRange;
    if (isObj(pr)) {
      if (protocol !== 'tcp' && protocol !== 'udp') {
        out.push(causes.forbidden(`${at}.portRange`, `may only be set when protocol is tcp or udp, not ${String(protocol)}`));
      } else if (typeof pr.min === 'number' && typeof pr.max === 'number' && pr.max < pr.min) {
        out.push(causes.invalid(`${at}.portRange.max`, pr.max, `must be greater than or equal to ${at}.portRange.min (${pr.min})`));
      }
    }
    if (typeof r.remoteCIDR === 'string') {
      const c = parseIPv4CIDR(r.remoteCIDR);
      // The schema's pattern and format let a zero-padded prefix (/08) through; the agent refuses it.
      if (!c) out.push(causes.invalid(`${at}.remoteCIDR`, r.remoteCIDR, 'must be an IPv4 range in CIDR notation, for example 10.0.0.0/8'));
      const hb = c && hostBitsCause(`${at}.remoteCIDR`, r.remoteCIDR, c);
      if (hb) out.push(hb);
      if (r.remoteGroup !== undefined) out.push(causes.forbidden(`${at}.remoteGroup`, `may not be set together with ${at}.remoteCIDR`));
    }
  });
  return out;
}

/** Image: members grant use of a Shared image; on any other visibility they would silently mean nothing. */
function imageRules(obj: KObject): FieldCause[] {
  const spec = obj.spec;
  if (!isObj(spec) || spec.members === undefined) return [];
  const v = spec.visibility ?? 'Private';
  if (v === 'Shared') return [];
  return [causes.forbidden('spec.members', `may only be set when spec.visibility is Shared, not ${String(v)}`)];
}

/**
 * Instance: something to boot. With spec.image the root disk is boot device 1, so a volume
 * cannot claim bootOrder 1 too; without one, exactly one volume must. libvirt refuses two
 * devices with the same boot order, and attaching one Volume twice means nothing: both unique.
 */
function instanceRules(obj: KObject): FieldCause[] {
  const out: FieldCause[] = [];
  const spec = obj.spec;
  if (!isObj(spec)) return out;
  const volumes = Array.isArray(spec.volumes) ? spec.volumes : [];
  const hasImage = spec.image !== undefined && spec.image !== null;
  const names = new Map<unknown, number>();
  const orders = new Map<unknown, number>();
  let bootVolumes = 0;
  volumes.forEach((v, i) => {
    if (!isObj(v)) return;
    const at = `spec.volumes[${i}]`;
    if (typeof v.volume === 'string') {
      if (names.has(v.volume)) out.push(causes.duplicate(`${at}.volume`, v.volume));
      else names.set(v.volume, i);
    }
    if (typeof v.bootOrder !== 'number') return;
    const first = orders.get(v.bootOrder);
    if (first !== undefined) out.push(causes.invalid(`${at}.bootOrder`, v.bootOrder, `must be unique: spec.volumes[${first}] has bootOrder ${v.bootOrder} too`));
    else orders.set(v.bootOrder, i);
    if (v.bootOrder !== 1) return;
    bootVolumes++;
    if (hasImage) out.push(causes.forbidden(`${at}.bootOrder`, 'the instance boots from spec.image (its root disk is boot device 1); bootOrder 1 is for an instance without an image, use 2 or more'));
  });
  if (!hasImage && bootVolumes === 0) out.push(causes.required('spec.image', 'an instance boots from an image, or from a volume with bootOrder 1'));
  return out;
}

/** VolumeType: a shared backend needs the directory every host mounts; a local one has none. */
function volumeTypeRules(obj: KObject): FieldCause[] {
  const spec = obj.spec;
  if (!isObj(spec)) return [];
  if (spec.backend === 'shared' && spec.sharedPath === undefined) return [causes.required('spec.sharedPath', 'required when spec.backend is shared')];
  if (spec.backend === 'local' && spec.sharedPath !== undefined) return [causes.forbidden('spec.sharedPath', 'may only be set when spec.backend is shared')];
  return [];
}

const SEMANTIC_RULES: Record<string, SemanticRule> = {
  'kova.dev/Image': imageRules,
  'kova.dev/Instance': instanceRules,
  'kova.dev/VolumeType': volumeTypeRules,
  'kova.dev/Network': networkRules,
  'kova.dev/Port': portRules,
  'kova.dev/SecurityGroup': securityGroupRules,
  // RBAC rule shapes and subjects (builtin-kinds-rbac.ts); roleRef's immutability is an update rule (object-rules.ts).
  ...Object.fromEntries(RBAC_KINDS.map((k) => [`${k.group}/${k.kind}`, (o: KObject) => rbacCauses(k, o)])),
};

// ---------------------------------------------------------------------------------------------
// Kind-specific rules of an update: what may not change once the object exists (kube's
// ValidateUpdate of a strategy). `old` is the stored object, `next` what would replace it.

type UpdateRule = (old: KObject, next: KObject) => FieldCause[];

const specOf = (o: KObject): Rec => (isObj(o.spec) ? o.spec : {});

const sameValue = (a: unknown, b: unknown): boolean => JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (!isObj(v)) return v;
  return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]));
}

const immutable = (field: string, value: unknown): FieldCause => causes.invalid(field, value ?? null, 'field is immutable');

function bytesOf(q: unknown): number | undefined {
  if (typeof q !== 'string' && typeof q !== 'number') return undefined;
  try {
    return parseQuantity(q);
  } catch {
    return undefined; // the schema reports it
  }
}

/**
 * Volume: a disk never shrinks (the guest's filesystem would be cut), and what it is made of and
 * where it lives are fixed at creation: spec.volumeType (set by the user or defaulted when the
 * volume is created) and spec.source.
 */
function volumeUpdateRules(old: KObject, next: KObject): FieldCause[] {
  const out: FieldCause[] = [];
  const o = specOf(old);
  const n = specOf(next);
  const from = bytesOf(o.size);
  const to = bytesOf(n.size);
  if (from !== undefined && to !== undefined && to < from) {
    out.push(causes.forbidden('spec.size', `a volume cannot shrink (from ${formatQuantity(from)} to ${formatQuantity(to)})`));
  }
  if (!sameValue(o.volumeType, n.volumeType)) out.push(immutable('spec.volumeType', n.volumeType));
  if (!sameValue(o.source, n.source)) out.push(immutable('spec.source', n.source));
  return out;
}

/** VolumeSnapshot: a point-in-time copy of one volume; another volume is another snapshot. */
function volumeSnapshotUpdateRules(old: KObject, next: KObject): FieldCause[] {
  const o = specOf(old);
  const n = specOf(next);
  if (sameValue(o, n)) return [];
  const vol = (s: Rec) => (isObj(s.source) ? s.source.volume : undefined);
  if (vol(o) !== vol(n)) return [immutable('spec.source.volume', vol(n))];
  return [immutable('spec', n)];
}

/**
 * VolumeType: its volumes' files are where the backend put them, in the format multiAttach
 * chose (raw for multiAttach, qcow2 otherwise: node-agent/volume/storage.ts volumeFormat), as
 * Cinder refuses to change the extra specs of a volume type in use.
 */
function volumeTypeUpdateRules(old: KObject, next: KObject): FieldCause[] {
  const out: FieldCause[] = [];
  const o = specOf(old);
  const n = specOf(next);
  if (o.backend !== n.backend) out.push(immutable('spec.backend', n.backend));
  if (o.sharedPath !== n.sharedPath) out.push(immutable('spec.sharedPath', n.sharedPath));
  if ((o.multiAttach ?? false) !== (n.multiAttach ?? false)) out.push(immutable('spec.multiAttach', n.multiAttach ?? false));
  return out;
}

const UPDATE_RULES: Record<string, UpdateRule> = {
  'kova.dev/Volume': volumeUpdateRules,
  'kova.dev/VolumeSnapshot': volumeSnapshotUpdateRules,
  'kova.dev/VolumeType': volumeTypeUpdateRules,
};

/**
 * What an update would change that its kind does not let change, as field causes. Run on the
 * merged result of every update verb (PUT, patches, server-side apply), main resource or status.
 */
export function validateUpdate(info: Pick<ResourceInfo, 'group' | 'kind'>, old: KObject, next: KObject): FieldCause[] {
  return UPDATE_RULES[`${info.group}/${info.kind}`]?.(old, next) ?? [];
}

/**
 * Fields defaulted at creation that an update may leave out, carried over from `old` as kube
 * strategies' PrepareForUpdate does: a Volume's spec.volumeType (the default VolumeType filled in
 * at admission), so `kubectl replace` of the original manifest does not read as a change.
 */
export function keepDefaultedFields(info: Pick<ResourceInfo, 'group' | 'kind'>, old: KObject, next: KObject): void {
  if (info.group !== 'kova.dev' || info.kind !== 'Volume') return;
  const o = specOf(old);
  if (o.volumeType !== undefined && isObj(next.spec) && (next.spec.volumeType === undefined || next.spec.volumeType === null)) next.spec.volumeType = o.volumeType;
}

// ---------------------------------------------------------------------------------------------

export interface ValidateOptions {
  /**
   * `status`: a write through the status subresource. Only causes under `status` are returned,
   * because the rest of the object is the stored one (like apiextensions' validation ratcheting).
   */
  subresource?: 'status';
}

/**
 * Validates objects against the schema of their kind. Compiles each kind's schema once. Call
 * order for a write, as apiextensions does: prune → applyDefaults → validate + validateMetadata.
 */
export class Validator {
  private readonly ajv = newAjv();
  private readonly compiled = new WeakMap<JSONSchema, ValidateFunction>();

  constructor(readonly registry?: Registry) {}

  private validatorFor(schema: JSONSchema): ValidateFunction {
    let fn = this.compiled.get(schema);
    if (!fn) {
      fn = this.ajv.compile(toAjvSchema(schema, true) as object);
      this.compiled.set(schema, fn);
    }
    return fn;
  }

  /** Compiles every kind of the registry now, so a bad schema fails at startup. */
  warm(): void {
    for (const r of this.registry?.all() ?? []) if (r.schema) this.validatorFor(r.schema);
  }

  /**
   * Schema (and kind-specific) problems of `obj`, as Kubernetes field causes. Metadata is
   * checked separately by validateMetadata.
   */
  validate(info: ResourceInfo, obj: KObject, opts: ValidateOptions = {}): FieldCause[] {
    const out: FieldCause[] = [];
    if (info.schema) {
      const fn = this.validatorFor(info.schema);
      if (!fn(obj)) {
        for (const e of fn.errors ?? []) {
          if (JUNCTOR_BRANCH.test(e.schemaPath)) continue;
          const c = toCause(e, obj);
          if (c) out.push(c);
        }
      }
      walkObject(info, obj, {
        array: (path, value, schema) => listTypeCauses(path, value, schema, out),
        scalar: (path, value, schema) => quantityCauses(path, value, schema, out),
      });
    }
    if (opts.subresource !== 'status') {
      const rule = SEMANTIC_RULES[`${info.group}/${info.kind}`];
      // Cross-field rules run on schema-valid input only: skip fields the schema already faulted.
      if (rule && !out.some((c) => c.field === 'spec' || c.field.startsWith('spec.type'))) {
        const faulted = new Set(out.map((c) => c.field));
        out.push(...rule(obj).filter((c) => !faulted.has(c.field)));
      }
    }
    const seen = new Set<string>();
    return out.filter((c) => {
      if (opts.subresource === 'status' && c.field !== 'status' && !c.field.startsWith('status.') && !c.field.startsWith('status[')) return false;
      const k = `${c.reason}\0${c.field}\0${c.message}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
  }

  /** ObjectMeta problems (name, namespace, labels, annotations, finalizers, ownerReferences). */
  validateMetadata(info: ResourceInfo, obj: KObject): FieldCause[] {
    return validateObjectMeta(info, obj);
  }

  /**
   * Structural defaulting: fills `default`s of missing fields at every level (a defaulted
   * object is then defaulted inside), replaces nulls of non-nullable fields by their default or
   * removes them, and drops null metadata fields (`creationTimestamp: null` from client-go).
   */
  applyDefaults(info: ResourceInfo, obj: KObject): void {
    const m = obj.metadata as unknown;
    if (isObj(m)) for (const k of Object.keys(m)) if (m[k] === null) delete m[k];
    if (!info.schema) return;
    let schema = defaultingSchemas.get(info.schema);
    if (!schema) {
      const { metadata: _m, ...rest } = isObj(info.schema.properties) ? (info.schema.properties as Record<string, JSONSchema>) : {};
      schema = { ...info.schema, properties: rest };
      defaultingSchemas.set(info.schema, schema);
    }
    defaultNode(obj, schema);
  }

  /** Dotted paths of fields the schema does not know, in document order (fieldValidation=Strict/Warn). */
  unknownFields(info: ResourceInfo, obj: KObject): string[] {
    const out: string[] = [];
    walkObject(info, obj, { unknown: (path) => void out.push(fieldPath(path)) });
    return out;
  }

  /** Drops the fields unknownFields reports, like apiextensions pruning. */
  prune(info: ResourceInfo, obj: KObject): void {
    walkObject(info, obj, { unknown: () => true });
  }
}
