// The typed model (api/kinds) against the CRDs (crds/): the TypeScript compiler reads the model's
// source, and every kind's spec and status are compared with the CRD's openAPIV3Schema field by
// field, recursively (names, required/optional, enum values, arrays, maps, quantities). A field
// on one side only, or an enum or optionality changed on one side only, fails with the kind and
// the field path.
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';
import YAML from 'yaml';
import { defaultCrdDir } from '../registry.js';
import type { JSONSchema } from '../types.js';
import { isKind, RESOURCES } from './index.js';

type Shape =
  | { t: 'string' | 'number' | 'boolean' | 'quantity' | 'unknown'; nullable?: boolean }
  | { t: 'enum'; values: string[]; nullable?: boolean }
  | { t: 'array'; items: Shape; nullable?: boolean }
  | { t: 'map'; values: Shape; nullable?: boolean }
  | { t: 'object'; props: Map<string, Prop>; nullable?: boolean }
  | { t: 'unsupported'; what: string; nullable?: boolean };

interface Prop {
  optional: boolean;
  /** The model's required property also admits undefined. */
  undefinedAllowed?: boolean;
  shape: Shape;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const META_FIELDS = new Set(['apiVersion', 'kind', 'metadata']);

function schemaShape(s: JSONSchema): Shape {
  const nullable = s.nullable === true;
  if (s['x-kubernetes-int-or-string'] === true) return { t: 'quantity', nullable };
  switch (s.type) {
    case 'string':
      return Array.isArray(s.enum) ? { t: 'enum', values: s.enum.map(String).sort(), nullable } : { t: 'string', nullable };
    case 'integer':
    case 'number':
      return Array.isArray(s.enum) ? { t: 'unsupported', what: 'a numeric enum' } : { t: 'number', nullable };
    case 'boolean':
      return { t: 'boolean', nullable };
    case 'array':
      return isObj(s.items) ? { t: 'array', items: schemaShape(s.items), nullable } : { t: 'unsupported', what: 'an array without items' };
    case 'object': {
      if (isObj(s.properties)) {
        const required = new Set(Array.isArray(s.required) ? s.required.map(String) : []);
        const props = new Map<string, Prop>();
        for (const [k, v] of Object.entries(s.properties)) props.set(k, { optional: !required.has(k), shape: schemaShape(v as JSONSchema) });
        return { t: 'object', props, nullable };
      }
      if (isObj(s.additionalProperties)) return { t: 'map', values: schemaShape(s.additionalProperties), nullable };
      if (s['x-kubernetes-preserve-unknown-fields'] === true) return { t: 'unknown', nullable };
      return { t: 'object', props: new Map(), nullable };
    }
    default:
      return { t: 'unsupported', what: `type ${JSON.stringify(s.type)}` };
  }
}

/** The shape of a TypeScript type; undefined in a union only makes a property optional. */
function typeShape(checker: ts.TypeChecker, type: ts.Type, depth = 0): Shape {
  if (depth > 32) return { t: 'unsupported', what: 'a recursive type' };
  const all = type.isUnion() ? type.types : [type];
  const nullable = all.some((m) => m.flags & ts.TypeFlags.Null);
  const members = all.filter((m) => !(m.flags & (ts.TypeFlags.Null | ts.TypeFlags.Undefined)));
  const what = checker.typeToString(type);
  if (members.length === 0) return { t: 'unsupported', what };
  if (members.every((m) => m.isStringLiteral())) return { t: 'enum', values: members.map((m) => (m as ts.StringLiteralType).value).sort(), nullable };
  if (members.every((m) => m.flags & ts.TypeFlags.BooleanLiteral)) {
    return members.length === 2 ? { t: 'boolean', nullable } : { t: 'unsupported', what };
  }
  if (members.length === 2 && members.some((m) => m.flags & ts.TypeFlags.Number) && members.some((m) => m.flags & ts.TypeFlags.String)) {
    return { t: 'quantity', nullable };
  }
  if (members.length !== 1) return { t: 'unsupported', what };
  const m = members[0];
  if (m.flags & ts.TypeFlags.String) return { t: 'string', nullable };
  if (m.flags & ts.TypeFlags.Number) return { t: 'number', nullable };
  if (m.flags & ts.TypeFlags.Boolean) return { t: 'boolean', nullable };
  if (m.flags & (ts.TypeFlags.Unknown | ts.TypeFlags.Any)) return { t: 'unknown', nullable };
  if (checker.isArrayType(m)) {
    return { t: 'array', items: typeShape(checker, checker.getTypeArguments(m as ts.TypeReference)[0], depth + 1), nullable };
  }
  if (m.flags & ts.TypeFlags.Object) {
    const index = checker.getIndexInfoOfType(m, ts.IndexKind.String);
    const symbols = checker.getPropertiesOfType(m);
    if (index && symbols.length === 0) return { t: 'map', values: typeShape(checker, index.type, depth + 1), nullable };
    if (index) return { t: 'unsupported', what: `${what} (properties and an index signature)` };
    return { t: 'object', props: propsOf(checker, symbols, depth), nullable };
  }
  return { t: 'unsupported', what };
}

function propsOf(checker: ts.TypeChecker, symbols: readonly ts.Symbol[], depth: number): Map<string, Prop> {
  const props = new Map<string, Prop>();
  for (const p of symbols) {
    const type = checker.getTypeOfSymbol(p);
    const optional = (p.flags & ts.SymbolFlags.Optional) !== 0;
    const undefinedAllowed = !optional && type.isUnion() && type.types.some((m) => m.flags & ts.TypeFlags.Undefined);
    props.set(p.name, { optional, undefinedAllowed, shape: typeShape(checker, type, depth + 1) });
  }
  return props;
}

function describe(s: Shape): string {
  switch (s.t) {
    case 'enum':
      return `enum [${s.values.join(', ')}]`;
    case 'array':
      return `array of ${describe(s.items)}`;
    case 'map':
      return `map of ${describe(s.values)}`;
    case 'quantity':
      return 'int-or-string';
    case 'unsupported':
      return `unsupported (${s.what})`;
    default:
      return s.t;
  }
}

/** Differences between the CRD's shape and the model's at `path`, one message each. */
function diff(crd: Shape, model: Shape, path: string, out: string[]): void {
  if (crd.t === 'unsupported' || model.t === 'unsupported' || crd.t !== model.t) {
    out.push(`${path}: ${describe(crd)} in the CRD, ${describe(model)} in the model`);
    return;
  }
  if (Boolean(crd.nullable) !== Boolean(model.nullable)) out.push(`${path}: nullable in the ${crd.nullable ? 'CRD' : 'model'} only`);
  if (crd.t === 'enum' && model.t === 'enum') {
    const only = (a: string[], b: string[]) => a.filter((v) => !b.includes(v));
    const inCrd = only(crd.values, model.values);
    const inModel = only(model.values, crd.values);
    if (inCrd.length) out.push(`${path}: enum values ${inCrd.join(', ')} in the CRD, not in the model`);
    if (inModel.length) out.push(`${path}: enum values ${inModel.join(', ')} in the model, not in the CRD`);
  } else if (crd.t === 'array' && model.t === 'array') {
    diff(crd.items, model.items, `${path}[]`, out);
  } else if (crd.t === 'map' && model.t === 'map') {
    diff(crd.values, model.values, `${path}{}`, out);
  } else if (crd.t === 'object' && model.t === 'object') {
    for (const [k, c] of crd.props) {
      const m = model.props.get(k);
      if (!m) {
        out.push(`${path}.${k}: in the CRD, not in the model`);
        continue;
      }
      if (c.optional !== m.optional) out.push(`${path}.${k}: ${c.optional ? 'optional' : 'required'} in the CRD, ${m.optional ? 'optional' : 'required'} in the model`);
      if (m.undefinedAllowed) out.push(`${path}.${k}: required but admits undefined in the model`);
      diff(c.shape, m.shape, `${path}.${k}`, out);
    }
    for (const k of model.props.keys()) if (!crd.props.has(k)) out.push(`${path}.${k}: in the model, not in the CRD`);
  }
}

interface CrdVersion {
  kind: string;
  group: string;
  version: string;
  plural: string;
  namespaced: boolean;
  schema: JSONSchema;
}

/** The model type `kind` compared with one CRD version: problems as `Kind .path: message`. */
function compareKind(checker: ts.TypeChecker, model: ts.Type | undefined, crd: CrdVersion): string[] {
  if (!model) return [`${crd.kind}: no model type of that name`];
  const out: string[] = [];
  const literal = (name: string) => {
    const p = model.getProperty(name);
    const t = p && checker.getTypeOfSymbol(p);
    return t?.isStringLiteral() ? t.value : undefined;
  };
  if (literal('kind') !== crd.kind) out.push(`.kind: must be the literal '${crd.kind}'`);
  const apiVersion = `${crd.group}/${crd.version}`;
  if (literal('apiVersion') !== apiVersion) out.push(`.apiVersion: must be the literal '${apiVersion}'`);
  const metadata = model.getProperty('metadata');
  if (!metadata || metadata.flags & ts.SymbolFlags.Optional) out.push('.metadata: must be required');

  const root = schemaShape(crd.schema);
  if (root.t !== 'object') return [`${crd.kind}: the CRD schema is not an object`];
  const crdTop: Shape = { t: 'object', props: new Map([...root.props].filter(([k]) => !META_FIELDS.has(k))) };
  // Kinds extend KObject, whose index signature is not a field: compare the declared properties.
  const modelTop: Shape = {
    t: 'object',
    props: new Map([...propsOf(checker, checker.getPropertiesOfType(model), 0)].filter(([k]) => !META_FIELDS.has(k))),
  };
  diff(crdTop, modelTop, '', out);
  return out.map((m) => `${crd.kind} ${m}`);
}

async function loadCrds(): Promise<CrdVersion[]> {
  const dir = defaultCrdDir();
  const out: CrdVersion[] = [];
  for (const f of (await readdir(dir)).filter((n) => /\.ya?ml$/.test(n)).sort()) {
    const crd = YAML.parse(await readFile(join(dir, f), 'utf8'));
    const versions = crd.spec.versions as Array<{ name: string; served: boolean; schema: { openAPIV3Schema: JSONSchema } }>;
    // One model per kind: a second served version needs its own model (and a conversion).
    assert.equal(versions.filter((v) => v.served).length, 1, `${f}: the model covers exactly one served version`);
    const v = versions.find((x) => x.served)!;
    out.push({
      kind: crd.spec.names.kind,
      group: crd.spec.group,
      version: v.name,
      plural: crd.spec.names.plural,
      namespaced: crd.spec.scope === 'Namespaced',
      schema: v.schema.openAPIV3Schema,
    });
  }
  return out;
}

const COMPILER_OPTIONS: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  strict: true,
  skipLibCheck: true,
  noEmit: true,
  types: [],
};

/** Exported types of a module whose `kind` property is a string literal: the kind models. */
function kindModels(checker: ts.TypeChecker, file: ts.SourceFile): Map<string, ts.Type> {
  const moduleSymbol = checker.getSymbolAtLocation(file);
  assert.ok(moduleSymbol, `${file.fileName} is not a module`);
  const out = new Map<string, ts.Type>();
  for (let sym of checker.getExportsOfModule(moduleSymbol)) {
    if (sym.flags & ts.SymbolFlags.Alias) sym = checker.getAliasedSymbol(sym);
    if (!(sym.flags & (ts.SymbolFlags.Interface | ts.SymbolFlags.TypeAlias))) continue;
    const type = checker.getDeclaredTypeOfSymbol(sym);
    if (type.isUnion()) continue; // e.g. KovaObject
    const kind = type.getProperty('kind');
    const kindType = kind && checker.getTypeOfSymbol(kind);
    if (kindType?.isStringLiteral()) out.set(sym.name, type);
  }
  return out;
}

/** A checker over an in-memory module `/virtual/model.ts`. */
function virtualProgram(source: string): { checker: ts.TypeChecker; file: ts.SourceFile } {
  const name = '/virtual/model.ts';
  const host = ts.createCompilerHost(COMPILER_OPTIONS);
  const { getSourceFile, fileExists, readFile: read } = host;
  host.getSourceFile = (f, lang, ...rest) => (f === name ? ts.createSourceFile(f, source, lang) : getSourceFile.call(host, f, lang, ...rest));
  host.fileExists = (f) => f === name || fileExists.call(host, f);
  host.readFile = (f) => (f === name ? source : read.call(host, f));
  const program = ts.createProgram({ rootNames: [name], options: COMPILER_OPTIONS, host });
  return { checker: program.getTypeChecker(), file: program.getSourceFile(name)! };
}

test('the comparison finds every kind of drift, with the kind and the field path', () => {
  const { checker, file } = virtualProgram(`
    export interface ThingSpec {
      size: number | string;
      mode?: 'a' | 'b' | 'c';
      extra?: string;
      tags: string[];
      labels?: Record<string, number>;
      nested: { deep: { x?: boolean } };
      maybe: string | undefined;
    }
    export interface Thing {
      apiVersion: 'kova.dev/v1alpha1';
      kind: 'Thing';
      metadata: object;
      spec: ThingSpec;
      status?: { phase?: string | null };
    }
  `);
  const models = kindModels(checker, file);
  assert.deepEqual([...models.keys()], ['Thing']);
  const str = { type: 'string' };
  const schema: JSONSchema = {
    type: 'object',
    required: ['spec'],
    properties: {
      apiVersion: str,
      kind: str,
      metadata: { type: 'object' },
      spec: {
        type: 'object',
        required: ['size', 'nested', 'maybe'],
        properties: {
          size: { anyOf: [{ type: 'integer' }, str], 'x-kubernetes-int-or-string': true },
          mode: { type: 'string', enum: ['a', 'b', 'd'] },
          gone: str,
          tags: { type: 'array', items: str },
          labels: { type: 'object', additionalProperties: str },
          nested: { type: 'object', properties: { deep: { type: 'object', properties: { x: { type: 'boolean' }, y: { type: 'integer' } } } } },
          maybe: str,
        },
      },
      status: { type: 'object', properties: { phase: str } },
    },
  };
  const crd = { kind: 'Thing', group: 'kova.dev', version: 'v1alpha1', plural: 'things', namespaced: true, schema };
  assert.deepEqual(compareKind(checker, models.get('Thing'), crd), [
    'Thing .spec.mode: enum values d in the CRD, not in the model',
    'Thing .spec.mode: enum values c in the model, not in the CRD',
    'Thing .spec.gone: in the CRD, not in the model',
    'Thing .spec.tags: optional in the CRD, required in the model',
    'Thing .spec.labels{}: string in the CRD, number in the model',
    'Thing .spec.nested.deep: optional in the CRD, required in the model',
    'Thing .spec.nested.deep.y: in the CRD, not in the model',
    'Thing .spec.maybe: required but admits undefined in the model',
    'Thing .spec.extra: in the model, not in the CRD',
    'Thing .status.phase: nullable in the model only',
  ]);
  assert.deepEqual(compareKind(checker, models.get('Thing'), { ...crd, kind: 'Other' }), [
    "Other .kind: must be the literal 'Other'",
    ...compareKind(checker, models.get('Thing'), crd).map((m) => m.replace(/^Thing/, 'Other')),
  ]);
});

test('api/kinds models every CRD in crds/ exactly', async () => {
  const crds = await loadCrds();
  const index = join(dirname(defaultCrdDir()), 'api', 'kinds', 'index.ts');
  const program = ts.createProgram({ rootNames: [index], options: COMPILER_OPTIONS });
  const checker = program.getTypeChecker();
  const file = program.getSourceFile(index);
  assert.ok(file, `cannot read ${index}`);
  const models = kindModels(checker, file);

  assert.deepEqual([...models.keys()].sort(), crds.map((c) => c.kind).sort(), 'one model type per CRD kind, named as the kind');
  const problems = crds.flatMap((crd) => compareKind(checker, models.get(crd.kind), crd));
  assert.deepEqual(problems, [], `the model and crds/ differ:\n  ${problems.join('\n  ')}`);
});

test('RESOURCES addresses every CRD by its group, version, plural and scope', async () => {
  const crds = await loadCrds();
  const want = crds.map(({ kind, group, version, plural, namespaced }) => ({ group, version, plural, kind, namespaced }));
  const byKind = (a: { kind: string }, b: { kind: string }) => a.kind.localeCompare(b.kind);
  assert.deepEqual([...RESOURCES].map((r) => ({ ...r })).sort(byKind), want.sort(byKind));
});

test('isKind narrows by apiVersion and kind', () => {
  const meta = { name: 'a' };
  assert.equal(isKind({ apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', metadata: meta }, 'Instance'), true);
  assert.equal(isKind({ apiVersion: 'kova.dev/v1alpha1', kind: 'Host', metadata: meta }, 'Instance'), false);
  assert.equal(isKind({ apiVersion: 'other.dev/v1', kind: 'Instance', metadata: meta }, 'Instance'), false);
  assert.equal(isKind(undefined, 'Instance'), false);
});
