// Static checks of CustomResourceDefinition files: the rules kube-apiserver applies when a CRD is
// created (apiextensions validation + structural schema invariants), so every file in crds/
// would also be accepted by a real cluster. Each problem is one string `path: message`.
import { DNS1123_LABEL, DNS1123_SUBDOMAIN } from './name-validation.js';
import type { JSONSchema } from './types.js';

/** Keys a JSONSchemaProps may have; anything else is an unknown field for a real API server. */
const SCHEMA_KEYS = new Set([
  'id', '$schema', '$ref', 'description', 'type', 'format', 'title', 'default', 'maximum', 'exclusiveMaximum',
  'minimum', 'exclusiveMinimum', 'maxLength', 'minLength', 'pattern', 'maxItems', 'minItems', 'uniqueItems',
  'multipleOf', 'enum', 'maxProperties', 'minProperties', 'required', 'items', 'allOf', 'oneOf', 'anyOf', 'not',
  'properties', 'additionalProperties', 'patternProperties', 'dependencies', 'additionalItems', 'definitions',
  'externalDocs', 'example', 'nullable', 'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-embedded-resource',
  'x-kubernetes-int-or-string', 'x-kubernetes-list-map-keys', 'x-kubernetes-list-type', 'x-kubernetes-map-type',
  'x-kubernetes-validations',
]);

const TYPES = new Set(['object', 'array', 'string', 'integer', 'number', 'boolean']);

/** String formats apiextensions validates (others are silently dropped, which hides mistakes). */
const STRING_FORMATS = new Set([
  'bsonobjectid', 'uri', 'email', 'hostname', 'ipv4', 'ipv6', 'cidr', 'mac', 'uuid', 'uuid3', 'uuid4', 'uuid5',
  'isbn', 'isbn10', 'isbn13', 'creditcard', 'ssn', 'hexcolor', 'rgbcolor', 'byte', 'password', 'date', 'duration',
  'datetime',
]);

/** Generic keys a schema under allOf/anyOf/oneOf/not must not have (structural rule). */
const NESTED_FORBIDDEN = ['type', 'default', 'title', 'description', 'nullable', 'additionalProperties'];

/** Root keys allowed when the status subresource is enabled (apiextensions allowedFieldsAtRootSchema). */
const ROOT_KEYS_WITH_STATUS = new Set([
  'description', 'type', 'format', 'title', 'maximum', 'exclusiveMaximum', 'minimum', 'exclusiveMinimum',
  'maxLength', 'minLength', 'pattern', 'maxItems', 'minItems', 'uniqueItems', 'multipleOf', 'required', 'items',
  'properties', 'externalDocs', 'example', 'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-validations',
]);

const JUNCTORS = ['allOf', 'anyOf', 'oneOf'] as const;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function isIntOrStringAnyOf(s: JSONSchema): boolean {
  const a = s.anyOf;
  return Array.isArray(a) && a.length === 2 &&
    isObj(a[0]) && Object.keys(a[0]).length === 1 && a[0].type === 'integer' &&
    isObj(a[1]) && Object.keys(a[1]).length === 1 && a[1].type === 'string';
}

/**
 * Patterns run on Go's RE2 in a real cluster and on JavaScript's engine here: reject constructs
 * either side lacks (look-around, back-references, possessive/atomic groups, \Z, named groups
 * in JavaScript syntax) and anything JavaScript cannot compile.
 */
export function portablePatternError(p: string): string | undefined {
  try {
    new RegExp(p);
  } catch (e) {
    return `must be a valid regular expression: ${(e as Error).message}`;
  }
  if (/\(\?[=!<]|\\[1-9]|\(\?>|[*+?}]\+|\\Z|\\[pP]\{/.test(p)) return 'must only use syntax shared by RE2 and JavaScript';
  return undefined;
}

interface Ctx {
  errors: string[];
}

function checkKeys(s: JSONSchema, path: string, ctx: Ctx): void {
  for (const k of Object.keys(s)) if (!SCHEMA_KEYS.has(k)) ctx.errors.push(`${path}.${k}: unknown field (a real API server rejects it)`);
  for (const k of ['id', '$ref', '$schema', 'definitions', 'dependencies', 'additionalItems', 'patternProperties']) {
    if (k in s) ctx.errors.push(`${path}.${k}: Forbidden: ${k} is not supported`);
  }
  if (s.uniqueItems === true) ctx.errors.push(`${path}.uniqueItems: Forbidden: uniqueItems cannot be set to true`);
  if (s.type === 'null') ctx.errors.push(`${path}.type: Forbidden: type cannot be set to null, use nullable as an alternative`);
  if (typeof s.pattern === 'string') {
    const err = portablePatternError(s.pattern);
    if (err) ctx.errors.push(`${path}.pattern: ${err}`);
  }
  if (s.format !== undefined) {
    const f = String(s.format);
    const t = s.type;
    const ok = t === 'integer' ? f === 'int32' || f === 'int64'
      : t === 'number' ? f === 'float' || f === 'double'
      : t === undefined || t === 'string' ? STRING_FORMATS.has(f.replace(/-/g, ''))
      : false;
    if (!ok) ctx.errors.push(`${path}.format: ${JSON.stringify(f)} is not a format apiextensions validates for type ${String(t ?? '(none)')}`);
  }
  if (s.enum !== undefined && (!Array.isArray(s.enum) || s.enum.length === 0)) ctx.errors.push(`${path}.enum: must be a non-empty list`);
  if (s.required !== undefined) {
    if (!Array.isArray(s.required) || s.required.some((r) => typeof r !== 'string')) ctx.errors.push(`${path}.required: must be a list of strings`);
  }
}

/** A schema reached through allOf/anyOf/oneOf/not: value validations only. `shape` is its structural counterpart. */
function checkNested(s: unknown, shape: JSONSchema | undefined, path: string, ctx: Ctx): void {
  if (!isObj(s)) {
    ctx.errors.push(`${path}: must be a schema object`);
    return;
  }
  checkKeys(s, path, ctx);
  for (const k of NESTED_FORBIDDEN) if (k in s) ctx.errors.push(`${path}.${k}: Forbidden: must be empty to be structural`);
  for (const k of Object.keys(s)) if (k.startsWith('x-kubernetes-')) ctx.errors.push(`${path}.${k}: Forbidden: must be undefined to be structural`);
  if (isObj(s.properties)) {
    if ('metadata' in s.properties) ctx.errors.push(`${path}.properties[metadata]: Forbidden: must not be specified in a nested context`);
    const shapeProps = shape && isObj(shape.properties) ? shape.properties : {};
    for (const [k, v] of Object.entries(s.properties)) {
      const sub = shapeProps[k];
      if (!isObj(sub)) ctx.errors.push(`${path}.properties[${k}]: Required: because it is defined in a value validation, it must also be specified structurally`);
      checkNested(v, isObj(sub) ? sub : undefined, `${path}.properties[${k}]`, ctx);
    }
  }
  if ('items' in s) {
    if (!shape || !isObj(shape.items)) ctx.errors.push(`${path}.items: Required: must also be specified structurally`);
    checkNested(s.items, shape && isObj(shape.items) ? shape.items : undefined, `${path}.items`, ctx);
  }
  for (const j of JUNCTORS) {
    if (j in s) {
      if (!Array.isArray(s[j])) ctx.errors.push(`${path}.${j}: must be a list`);
      else (s[j] as unknown[]).forEach((x, i) => checkNested(x, shape, `${path}.${j}[${i}]`, ctx));
    }
  }
  if ('not' in s) checkNested(s.not, shape, `${path}.not`, ctx);
}

type Level = 'root' | 'item' | 'field';

function checkNode(s: unknown, level: Level, path: string, ctx: Ctx, inMeta: boolean): void {
  if (!isObj(s)) {
    ctx.errors.push(`${path}: must be a schema object`);
    return;
  }
  checkKeys(s, path, ctx);
  const intOrString = s['x-kubernetes-int-or-string'] === true;
  const preserve = s['x-kubernetes-preserve-unknown-fields'] === true;
  if ('x-kubernetes-preserve-unknown-fields' in s && !preserve) ctx.errors.push(`${path}.x-kubernetes-preserve-unknown-fields: must be true or undefined`);
  if (intOrString && preserve) ctx.errors.push(`${path}.x-kubernetes-preserve-unknown-fields: must be false if x-kubernetes-int-or-string is true`);

  if (s.type !== undefined && !TYPES.has(String(s.type))) ctx.errors.push(`${path}.type: Unsupported value: ${JSON.stringify(s.type)}`);
  if (s.type === undefined && !intOrString && !preserve) {
    const why = level === 'root' ? 'must not be empty at the root' : level === 'item' ? 'must not be empty for specified array items' : 'must not be empty for specified object fields';
    ctx.errors.push(`${path}.type: Required value: ${why}`);
  }
  if (intOrString && s.type !== undefined) ctx.errors.push(`${path}.type: must be empty when x-kubernetes-int-or-string is true`);
  if (level === 'root' && s.type !== 'object') ctx.errors.push(`${path}.type: must be object at the root`);
  if (level === 'root' && s.nullable === true) ctx.errors.push(`${path}.nullable: Forbidden: nullable cannot be true at the root`);
  if (inMeta && 'default' in s) ctx.errors.push(`${path}.default: Forbidden: must not be set in top-level metadata, apiVersion or kind`);

  if (s.type === 'array' && s.items === undefined) ctx.errors.push(`${path}.items: Required value: must be specified`);
  if (s.items !== undefined && Array.isArray(s.items)) ctx.errors.push(`${path}.items: Forbidden: items must be a schema object and not an array`);
  if (s.items !== undefined && s.type !== 'array') ctx.errors.push(`${path}.items: only allowed with type array`);
  if (isObj(s.properties) && s.type !== 'object' && !preserve) ctx.errors.push(`${path}.properties: only allowed with type object`);

  if (s.additionalProperties !== undefined) {
    if (level === 'root') ctx.errors.push(`${path}.additionalProperties: Forbidden: must not be used at the root`);
    if (isObj(s.properties) && Object.keys(s.properties).length > 0) {
      ctx.errors.push(`${path}.additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive`);
    }
    if (s.additionalProperties === false) ctx.errors.push(`${path}.additionalProperties: Forbidden: false is not allowed (unknown fields are pruned)`);
    if (isObj(s.additionalProperties)) checkNode(s.additionalProperties, 'field', `${path}.additionalProperties`, ctx, false);
  }

  if (isObj(s.properties)) {
    for (const [k, v] of Object.entries(s.properties)) {
      const p = `${path}.properties[${k}]`;
      const meta = level === 'root' && (k === 'metadata' || k === 'apiVersion' || k === 'kind');
      if (level === 'root' && k === 'metadata') checkRootMetadata(v, p, ctx);
      else checkNode(v, 'field', p, ctx, meta || inMeta);
      if (level === 'root' && (k === 'apiVersion' || k === 'kind') && isObj(v) && v.type !== 'string') ctx.errors.push(`${p}.type: must be string`);
    }
  }
  if (isObj(s.items)) checkNode(s.items, 'item', `${path}.items`, ctx, inMeta);

  // Junctors: value validations only, except the int-or-string anyOf.
  for (const j of JUNCTORS) {
    if (!(j in s)) continue;
    if (j === 'anyOf' && intOrString && isIntOrStringAnyOf(s)) continue;
    if (!Array.isArray(s[j])) ctx.errors.push(`${path}.${j}: must be a list`);
    else (s[j] as unknown[]).forEach((x, i) => checkNested(x, s, `${path}.${j}[${i}]`, ctx));
  }
  if ('not' in s) checkNested(s.not, s, `${path}.not`, ctx);

  checkListType(s, path, ctx);
  if (s['x-kubernetes-map-type'] !== undefined) {
    if (s.type !== 'object') ctx.errors.push(`${path}.type: must be object if x-kubernetes-map-type is specified`);
    if (!['atomic', 'granular'].includes(String(s['x-kubernetes-map-type']))) ctx.errors.push(`${path}.x-kubernetes-map-type: Unsupported value`);
  }
  if (s['x-kubernetes-embedded-resource'] === true && s.type !== 'object') ctx.errors.push(`${path}.type: must be object if x-kubernetes-embedded-resource is true`);
}

function checkListType(s: JSONSchema, path: string, ctx: Ctx): void {
  const lt = s['x-kubernetes-list-type'];
  const keys = s['x-kubernetes-list-map-keys'];
  if (keys !== undefined && lt !== 'map') ctx.errors.push(`${path}.x-kubernetes-list-type: must be map if x-kubernetes-list-map-keys is non-empty`);
  if (lt === undefined) return;
  if (!['atomic', 'set', 'map'].includes(String(lt))) {
    ctx.errors.push(`${path}.x-kubernetes-list-type: Unsupported value: ${JSON.stringify(lt)}: supported values: "atomic", "set", "map"`);
    return;
  }
  if (s.type !== 'array') ctx.errors.push(`${path}.type: must be array if x-kubernetes-list-type is specified`);
  const items = isObj(s.items) ? s.items : undefined;
  if (lt === 'set' && items && (items.type === 'object' || items.type === 'array')) {
    ctx.errors.push(`${path}.items.type: items of a list with x-kubernetes-list-type=set must be scalars`);
  }
  if ((lt === 'set' || lt === 'map') && items?.nullable === true) ctx.errors.push(`${path}.items.nullable: Forbidden: cannot be nullable when x-kubernetes-list-type is ${lt}`);
  if (lt !== 'map') return;
  if (!Array.isArray(keys) || keys.length === 0) {
    ctx.errors.push(`${path}.x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map`);
    return;
  }
  if (!items) {
    ctx.errors.push(`${path}.items: Required value: must have a schema if x-kubernetes-list-type is map`);
    return;
  }
  if (items.type !== 'object') ctx.errors.push(`${path}.items.type: must be object if parent array's x-kubernetes-list-type is map`);
  if (new Set(keys).size !== keys.length) ctx.errors.push(`${path}.x-kubernetes-list-map-keys: must not contain duplicate entries`);
  const props = isObj(items.properties) ? items.properties : {};
  const required = Array.isArray(items.required) ? items.required : [];
  for (const k of keys as string[]) {
    const p = props[k];
    if (!isObj(p)) {
      ctx.errors.push(`${path}.x-kubernetes-list-map-keys: entries must all be names of item properties (${k})`);
      continue;
    }
    if (!['string', 'integer', 'number', 'boolean'].includes(String(p.type)) && p['x-kubernetes-int-or-string'] !== true) {
      ctx.errors.push(`${path}.items.properties[${k}].type: must be a scalar type if parent array's x-kubernetes-list-type is map`);
    }
    if (!required.includes(k) && !('default' in p)) {
      ctx.errors.push(`${path}.items.properties[${k}].default: Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property`);
    }
    if (p.nullable === true) ctx.errors.push(`${path}.items.properties[${k}].nullable: Forbidden: a list map key cannot be nullable`);
  }
}

/** Root metadata may only be `type: object` plus restrictions of name and generateName. */
function checkRootMetadata(s: unknown, path: string, ctx: Ctx): void {
  if (!isObj(s)) {
    ctx.errors.push(`${path}: must be a schema object`);
    return;
  }
  if (s.type !== 'object') ctx.errors.push(`${path}.type: must be object`);
  for (const k of Object.keys(s)) {
    if (k !== 'type' && k !== 'properties') {
      ctx.errors.push(`${path}: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified (${k})`);
    }
  }
  if (isObj(s.properties)) {
    for (const [k, v] of Object.entries(s.properties)) {
      if (k !== 'name' && k !== 'generateName') ctx.errors.push(`${path}.properties[${k}]: Forbidden: must not specify anything other than name and generateName`);
      else checkNode(v, 'field', `${path}.properties[${k}]`, ctx, true);
    }
  }
}

/** Structural-schema and apiextensions errors of one openAPIV3Schema; empty when a real cluster would accept it. */
export function structuralErrors(schema: unknown, opts: { statusSubresource?: boolean; path?: string } = {}): string[] {
  const path = opts.path ?? 'openAPIV3Schema';
  const ctx: Ctx = { errors: [] };
  checkNode(schema, 'root', path, ctx, false);
  if (opts.statusSubresource && isObj(schema)) {
    for (const k of Object.keys(schema)) {
      if (!ROOT_KEYS_WITH_STATUS.has(k)) ctx.errors.push(`${path}.${k}: only ${[...ROOT_KEYS_WITH_STATUS].join(', ')} are allowed at the root of the schema if the status subresource is enabled`);
    }
  }
  return ctx.errors;
}

/** Resolves a simple dotted JSON path (`.status.hostName`) in a structural schema. */
export function schemaAt(schema: JSONSchema | undefined, jsonPath: string): JSONSchema | undefined {
  let s: unknown = schema;
  for (const part of jsonPath.replace(/^\./, '').split('.')) {
    if (!isObj(s) || !isObj(s.properties)) return undefined;
    s = s.properties[part];
  }
  return isObj(s) ? s : undefined;
}

const PRINTER_TYPES = new Set(['integer', 'number', 'string', 'boolean', 'date']);
const PRINTER_FORMATS = new Set(['int32', 'int64', 'float', 'double', 'byte', 'date', 'date-time', 'password']);

/** Every problem a real API server would report when creating this CRD (as far as kova checks). */
export function crdErrors(crd: unknown): string[] {
  const errs: string[] = [];
  if (!isObj(crd)) return ['CRD must be an object'];
  if (crd.apiVersion !== 'apiextensions.k8s.io/v1') errs.push('apiVersion: must be apiextensions.k8s.io/v1');
  if (crd.kind !== 'CustomResourceDefinition') errs.push('kind: must be CustomResourceDefinition');
  const spec = isObj(crd.spec) ? crd.spec : {};
  const names = isObj(spec.names) ? spec.names : {};
  const group = String(spec.group ?? '');
  const meta = isObj(crd.metadata) ? crd.metadata : {};
  if (!group.includes('.') || !DNS1123_SUBDOMAIN.test(group)) errs.push('spec.group: should be a domain with at least one dot');
  if (meta.name !== `${String(names.plural)}.${group}`) errs.push(`metadata.name: must be spec.names.plural+"."+spec.group (${String(names.plural)}.${group})`);
  if (spec.scope !== 'Namespaced' && spec.scope !== 'Cluster') errs.push('spec.scope: Unsupported value: supported values: "Cluster", "Namespaced"');
  for (const k of ['plural', 'singular']) {
    if (typeof names[k] !== 'string' || !DNS1123_LABEL.test(names[k] as string)) errs.push(`spec.names.${k}: must be a lowercase DNS-1035-ish label`);
  }
  for (const k of ['kind', 'listKind']) {
    if (typeof names[k] !== 'string' || !/^[A-Za-z]([A-Za-z0-9]*)$/.test(names[k] as string)) errs.push(`spec.names.${k}: must be a CamelCase identifier`);
  }
  if (names.kind && names.kind === names.listKind) errs.push('spec.names.listKind: kind and listKind may not be the same');
  for (const [k, list] of [['shortNames', names.shortNames], ['categories', names.categories]] as const) {
    if (list === undefined) continue;
    if (!Array.isArray(list)) errs.push(`spec.names.${k}: must be a list`);
    else list.forEach((v, i) => { if (typeof v !== 'string' || !DNS1123_LABEL.test(v)) errs.push(`spec.names.${k}[${i}]: must be a lowercase DNS label`); });
  }
  const versions = Array.isArray(spec.versions) ? spec.versions : [];
  if (!versions.length) errs.push('spec.versions: Required value');
  if (versions.filter((v) => isObj(v) && v.storage === true).length !== 1) errs.push('spec.versions: must have exactly one version marked as storage version');
  versions.forEach((v, i) => {
    const p = `spec.versions[${i}]`;
    if (!isObj(v)) {
      errs.push(`${p}: must be an object`);
      return;
    }
    if (typeof v.name !== 'string' || !/^v[1-9][0-9]*((alpha|beta)[1-9][0-9]*)?$/.test(v.name)) errs.push(`${p}.name: must be a Kubernetes version like v1alpha1`);
    if (typeof v.served !== 'boolean' || typeof v.storage !== 'boolean') errs.push(`${p}: served and storage are required booleans`);
    const statusSub = isObj(v.subresources) && v.subresources.status !== undefined;
    const schema = isObj(v.schema) ? v.schema.openAPIV3Schema : undefined;
    if (!isObj(schema)) errs.push(`${p}.schema.openAPIV3Schema: Required value: because otherwise all fields are pruned`);
    else errs.push(...structuralErrors(schema, { statusSubresource: statusSub, path: `${p}.schema.openAPIV3Schema` }));
    const cols = v.additionalPrinterColumns;
    if (cols !== undefined) {
      if (!Array.isArray(cols)) errs.push(`${p}.additionalPrinterColumns: must be a list`);
      else cols.forEach((c, j) => {
        const cp = `${p}.additionalPrinterColumns[${j}]`;
        if (!isObj(c)) return void errs.push(`${cp}: must be an object`);
        if (typeof c.name !== 'string' || !c.name) errs.push(`${cp}.name: Required value`);
        if (!PRINTER_TYPES.has(String(c.type))) errs.push(`${cp}.type: must be one of boolean,date,integer,number,string`);
        if (c.format !== undefined && !PRINTER_FORMATS.has(String(c.format))) errs.push(`${cp}.format: Unsupported value`);
        if (typeof c.jsonPath !== 'string' || !c.jsonPath.startsWith('.')) errs.push(`${cp}.jsonPath: must be a simple json path starting with .`);
        if (c.priority !== undefined && (!Number.isInteger(c.priority) || (c.priority as number) < 0)) errs.push(`${cp}.priority: must be a non-negative integer`);
        for (const k of Object.keys(c)) if (!['name', 'type', 'format', 'description', 'priority', 'jsonPath'].includes(k)) errs.push(`${cp}.${k}: unknown field`);
      });
    }
    const sel = v.selectableFields;
    if (sel !== undefined) {
      if (!Array.isArray(sel)) errs.push(`${p}.selectableFields: must be a list`);
      else {
        if (sel.length > 8) errs.push(`${p}.selectableFields: Too many: ${sel.length}: must have at most 8 items`);
        const seen = new Set<string>();
        sel.forEach((f, j) => {
          const fp = `${p}.selectableFields[${j}].jsonPath`;
          const jp = isObj(f) ? f.jsonPath : undefined;
          if (typeof jp !== 'string' || !/^(\.[A-Za-z_][A-Za-z0-9_]*)+$/.test(jp)) return void errs.push(`${fp}: must be a simple dotted path without array notation`);
          if (jp.startsWith('.metadata.')) errs.push(`${fp}: must not point to fields in metadata`);
          const target = schemaAt(isObj(schema) ? schema : undefined, jp);
          if (!target) errs.push(`${fp}: is an invalid path: no such field in the schema`);
          else if (!['string', 'boolean', 'integer'].includes(String(target.type))) errs.push(`${fp}: must point to a field of type string, boolean or integer`);
          if (seen.has(jp)) errs.push(`${fp}: Duplicate value`);
          seen.add(jp);
        });
      }
    }
    for (const k of Object.keys(v)) {
      if (!['name', 'served', 'storage', 'deprecated', 'deprecationWarning', 'schema', 'subresources', 'additionalPrinterColumns', 'selectableFields'].includes(k)) {
        errs.push(`${p}.${k}: unknown field`);
      }
    }
  });
  return errs;
}
