// RFC 6902 JSON patch (`application/json-patch+json`) with RFC 6901 JSON pointers.
// Error texts follow the wording of evanphx/json-patch, which kube-apiserver uses, but always
// name the failing operation (by index) and its path.
import { cloneJson, deepEqual, isPlainObject, setMember } from './json-util.js';
import type { JsonObject } from './json-util.js';
import { PatchError } from './errors.js';

export { PatchError } from './errors.js';
export type { PatchErrorKind } from './errors.js';

export interface JsonPatchOperation {
  op: 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test';
  path: string;
  from?: string;
  value?: unknown;
}

/** kube-apiserver's limit (`maxJSONPatchOperations`); more gives 413. */
export const MAX_JSON_PATCH_OPERATIONS = 10000;

const OPS = new Set(['add', 'remove', 'replace', 'move', 'copy', 'test']);

/** Splits a JSON pointer into unescaped reference tokens. Throws `Malformed` on bad syntax. */
export function parseJsonPointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (pointer[0] !== '/') throw new PatchError('Malformed', `invalid JSON pointer "${pointer}": must be empty or start with "/"`);
  return pointer
    .slice(1)
    .split('/')
    .map((t) => {
      if (/~[^01]|~$/.test(t)) throw new PatchError('Malformed', `invalid JSON pointer "${pointer}": "~" must be followed by "0" or "1"`);
      return t.replace(/~1/g, '/').replace(/~0/g, '~');
    });
}

/** Builds a JSON pointer from reference tokens, escaping `~` and `/`. */
export function formatJsonPointer(tokens: readonly string[]): string {
  return tokens.map((t) => '/' + t.replace(/~/g, '~0').replace(/\//g, '~1')).join('');
}

/**
 * Applies the operations in order to a copy of `doc` and returns it (`doc` is not modified).
 * Atomic: any failure throws a PatchError and no partial result escapes.
 */
export function applyJsonPatch(doc: unknown, ops: unknown, opts: { maxOperations?: number } = {}): unknown {
  const list = validateOps(ops);
  const max = opts.maxOperations ?? MAX_JSON_PATCH_OPERATIONS;
  if (list.length > max) {
    throw new PatchError('TooLarge', `The allowed maximum operations in a JSON patch is ${max}, got ${list.length}`);
  }
  let cur = cloneJson(doc);
  list.forEach((op, i) => {
    cur = applyOne(cur, op, i);
  });
  return cur;
}

function validateOps(ops: unknown): JsonPatchOperation[] {
  if (!Array.isArray(ops)) {
    throw new PatchError('Malformed', `json: cannot unmarshal ${jsonTypeName(ops)} into Go value of type jsonpatch.Patch (a JSON patch must be an array of operations)`);
  }
  return ops.map((raw, i) => {
    if (!isPlainObject(raw)) throw new PatchError('Malformed', `operation ${i}: must be a JSON object, got ${jsonTypeName(raw)}`);
    const { op, path, from } = raw;
    if (op === undefined) throw new PatchError('Malformed', `operation ${i}: missing "op" member`);
    if (typeof op !== 'string' || !OPS.has(op)) throw new PatchError('Malformed', `operation ${i}: Unexpected kind: ${typeof op === 'string' ? op : JSON.stringify(op)}`);
    if (typeof path !== 'string') throw new PatchError('Malformed', `operation ${i} (${op}): missing or non-string "path" member`);
    parseJsonPointer(path);
    if ((op === 'add' || op === 'replace' || op === 'test') && !('value' in raw)) {
      throw new PatchError('Malformed', `operation ${i} (${op} ${path}): missing "value" member`);
    }
    if (op === 'move' || op === 'copy') {
      if (typeof from !== 'string') throw new PatchError('Malformed', `operation ${i} (${op} ${path}): missing or non-string "from" member`);
      parseJsonPointer(from);
    }
    return raw as unknown as JsonPatchOperation;
  });
}

function jsonTypeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'object') return 'object';
  return typeof v;
}

function fail(i: number, op: JsonPatchOperation, what: string): never {
  throw new PatchError('Unprocessable', `json patch operation ${i} (${op.op} ${op.path}) failed: ${what}`);
}

/** Array index token: digits without leading zeros. `-` is handled by callers. */
function arrayIndex(token: string): number | undefined {
  return /^(0|[1-9][0-9]*)$/.test(token) ? Number(token) : undefined;
}

interface Loc {
  parent: unknown;
  key: string;
}

/** Resolves every token but the last; the parent must exist and be a container. */
function locate(doc: unknown, tokens: string[], i: number, op: JsonPatchOperation, pointer: string): Loc {
  let cur = doc;
  for (let t = 0; t < tokens.length - 1; t++) {
    const next = child(cur, tokens[t]);
    if (next === undefined) fail(i, op, `doc is missing path: "${pointer}": missing value`);
    cur = next;
  }
  if (!Array.isArray(cur) && !isPlainObject(cur)) fail(i, op, `doc is missing path: "${pointer}": parent is not a container`);
  return { parent: cur, key: tokens[tokens.length - 1] };
}

function child(container: unknown, token: string): unknown {
  if (Array.isArray(container)) {
    const idx = arrayIndex(token);
    return idx === undefined ? undefined : container[idx];
  }
  if (isPlainObject(container)) return Object.prototype.hasOwnProperty.call(container, token) ? container[token] : undefined;
  return undefined;
}

function get(doc: unknown, pointer: string, i: number, op: JsonPatchOperation, what: string): unknown {
  let cur = doc;
  for (const t of parseJsonPointer(pointer)) {
    const next = child(cur, t);
    if (next === undefined) fail(i, op, `${what}: "${pointer}": missing value`);
    cur = next;
  }
  return cur;
}

function add(doc: unknown, pointer: string, value: unknown, i: number, op: JsonPatchOperation): unknown {
  const tokens = parseJsonPointer(pointer);
  if (tokens.length === 0) return value;
  const { parent, key } = locate(doc, tokens, i, op, pointer);
  if (Array.isArray(parent)) {
    const idx = key === '-' ? parent.length : arrayIndex(key);
    if (idx === undefined || idx > parent.length) fail(i, op, `Unable to access invalid index: ${key}: invalid index referenced`);
    parent.splice(idx, 0, value);
  } else {
    setMember(parent as JsonObject, key, value);
  }
  return doc;
}

function remove(doc: unknown, pointer: string, i: number, op: JsonPatchOperation): { doc: unknown; removed: unknown } {
  const tokens = parseJsonPointer(pointer);
  if (tokens.length === 0) fail(i, op, 'cannot remove the whole document');
  const { parent, key } = locate(doc, tokens, i, op, pointer);
  if (Array.isArray(parent)) {
    const idx = arrayIndex(key);
    if (idx === undefined || idx >= parent.length) fail(i, op, `Unable to access invalid index: ${key}: invalid index referenced`);
    const [removed] = parent.splice(idx, 1);
    return { doc, removed };
  }
  const obj = parent as JsonObject;
  if (!Object.prototype.hasOwnProperty.call(obj, key)) fail(i, op, `Unable to remove nonexistent key: ${key}: missing value`);
  const removed = obj[key];
  delete obj[key];
  return { doc, removed };
}

function applyOne(doc: unknown, op: JsonPatchOperation, i: number): unknown {
  switch (op.op) {
    case 'add':
      return add(doc, op.path, cloneJson(op.value), i, op);
    case 'remove':
      return remove(doc, op.path, i, op).doc;
    case 'replace': {
      const tokens = parseJsonPointer(op.path);
      if (tokens.length === 0) return cloneJson(op.value);
      const { parent, key } = locate(doc, tokens, i, op, op.path);
      if (Array.isArray(parent)) {
        const idx = arrayIndex(key);
        if (idx === undefined || idx >= parent.length) fail(i, op, `Unable to access invalid index: ${key}: invalid index referenced`);
        parent[idx] = cloneJson(op.value);
      } else {
        const obj = parent as JsonObject;
        if (!Object.prototype.hasOwnProperty.call(obj, key)) fail(i, op, `replace operation does not apply: doc is missing key: ${op.path}: missing value`);
        setMember(obj, key, cloneJson(op.value));
      }
      return doc;
    }
    case 'move': {
      const from = op.from!;
      if (from === op.path) {
        get(doc, from, i, op, 'move operation does not apply: doc is missing from path');
        return doc;
      }
      if (op.path.startsWith(from + '/')) fail(i, op, `cannot move "${from}" into its own child "${op.path}"`);
      get(doc, from, i, op, 'move operation does not apply: doc is missing from path');
      const { doc: d, removed } = remove(doc, from, i, op);
      return add(d, op.path, removed, i, op);
    }
    case 'copy': {
      const value = get(doc, op.from!, i, op, 'copy operation does not apply: doc is missing from path');
      return add(doc, op.path, cloneJson(value), i, op);
    }
    case 'test': {
      const actual = get(doc, op.path, i, op, 'testing value failed: doc is missing path');
      if (!deepEqual(actual, op.value)) fail(i, op, `testing value ${op.path} failed: test failed`);
      return doc;
    }
  }
}
