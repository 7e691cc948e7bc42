// The JSONPath subset of client-go `util/jsonpath` that CRD printer columns use:
//   .spec.flavor                      fields (a backslash escapes the next character: kova\.dev/zone)
//   ['kova.dev/zone'] ["x"]           quoted field names
//   [0] [-1] [1:3] [*] .*             indexes, slices, wildcards
//   ..name                            recursive descent
//   [?(@.type=="Ready")]              filters: ==, !=, <, <=, >, >= against strings, numbers,
//                                     booleans or other @-paths; [?(@.x)] tests existence
// A surrounding `{…}` and a leading `$` are accepted. Missing keys yield no result (as with
// AllowMissingKeys(true)).

export type JsonPathStep =
  | { type: 'field'; name: string }
  | { type: 'wildcard' }
  | { type: 'recursive'; name: string | '*' }
  | { type: 'index'; index: number }
  | { type: 'slice'; start?: number; end?: number; step?: number }
  | { type: 'filter'; left: JsonPathStep[]; op?: FilterOp; right?: FilterOperand };

type FilterOp = '==' | '!=' | '<' | '<=' | '>' | '>=';
type FilterOperand = { path: JsonPathStep[] } | { literal: string | number | boolean | null };

export class JsonPathError extends Error {
  override readonly name = 'JsonPathError';
}

const TERMINATORS = new Set(['.', '[', ']', '}', ' ', '\t', '\n', '\r']);
/** Inside a filter, field names also end at comparison operators and the closing parenthesis. */
const FILTER_TERMINATORS = new Set([...TERMINATORS, '=', '!', '<', '>', ')', ',']);

/** Parses a printer-column JSONPath into steps. Throws JsonPathError on syntax errors. */
export function parseJsonPath(expr: string): JsonPathStep[] {
  let s = expr.trim();
  if (s.startsWith('{') && s.endsWith('}')) s = s.slice(1, -1).trim();
  if (s.startsWith('$')) s = s.slice(1);
  const [steps, rest] = parseSteps(s, 0, expr, false);
  if (rest !== s.length) throw new JsonPathError(`unrecognized character in action: ${JSON.stringify(s.slice(rest))} in ${expr}`);
  return steps;
}

/** Parses steps starting at `i` until the end or a character that cannot continue a path. */
function parseSteps(s: string, i: number, expr: string, inFilter: boolean): [JsonPathStep[], number] {
  const stop = inFilter ? FILTER_TERMINATORS : TERMINATORS;
  const steps: JsonPathStep[] = [];
  while (i < s.length) {
    const c = s[i];
    if (c === '.') {
      if (s[i + 1] === '.') {
        const [name, j] = readName(s, i + 2, stop);
        if (!name) throw new JsonPathError(`missing name after '..' in ${expr}`);
        steps.push({ type: 'recursive', name: name === '*' ? '*' : name });
        i = j;
        continue;
      }
      const [name, j] = readName(s, i + 1, stop);
      if (name === '*') steps.push({ type: 'wildcard' });
      else if (name) steps.push({ type: 'field', name });
      i = j;
      continue;
    }
    if (c === '[') {
      const [step, j] = parseBracket(s, i, expr);
      steps.push(step);
      i = j;
      continue;
    }
    break;
  }
  return [steps, i];
}

function readName(s: string, i: number, stop: Set<string>): [string, number] {
  let name = '';
  while (i < s.length && !stop.has(s[i])) {
    if (s[i] === '\\' && i + 1 < s.length) {
      name += s[i + 1];
      i += 2;
    } else {
      name += s[i++];
    }
  }
  return [name, i];
}

function readQuoted(s: string, i: number, expr: string): [string, number] {
  const q = s[i];
  let out = '';
  let j = i + 1;
  while (j < s.length && s[j] !== q) {
    if (s[j] === '\\' && j + 1 < s.length) {
      out += s[j + 1];
      j += 2;
    } else {
      out += s[j++];
    }
  }
  if (j >= s.length) throw new JsonPathError(`unterminated quoted string in ${expr}`);
  return [out, j + 1];
}

function parseBracket(s: string, i: number, expr: string): [JsonPathStep, number] {
  let j = i + 1;
  while (s[j] === ' ') j++;
  if (s[j] === '?') {
    j++;
    while (s[j] === ' ') j++;
    if (s[j] !== '(') throw new JsonPathError(`expected '(' after '?' in ${expr}`);
    const [step, k] = parseFilter(s, j + 1, expr);
    let m = k;
    while (s[m] === ' ') m++;
    if (s[m] !== ')') throw new JsonPathError(`unclosed filter in ${expr}`);
    m++;
    while (s[m] === ' ') m++;
    if (s[m] !== ']') throw new JsonPathError(`unclosed array expect ] in ${expr}`);
    return [step, m + 1];
  }
  if (s[j] === "'" || s[j] === '"') {
    const [name, k] = readQuoted(s, j, expr);
    let m = k;
    while (s[m] === ' ') m++;
    if (s[m] !== ']') throw new JsonPathError(`unclosed array expect ] in ${expr}`);
    return [{ type: 'field', name }, m + 1];
  }
  const close = s.indexOf(']', j);
  if (close < 0) throw new JsonPathError(`unclosed array expect ] in ${expr}`);
  const body = s.slice(j, close).trim();
  if (body === '*') return [{ type: 'wildcard' }, close + 1];
  if (/^-?\d+$/.test(body)) return [{ type: 'index', index: Number(body) }, close + 1];
  const m = /^(-?\d+)?\s*:\s*(-?\d+)?(?:\s*:\s*(-?\d+)?)?$/.exec(body);
  if (m) {
    const step: JsonPathStep = { type: 'slice' };
    if (m[1] !== undefined) step.start = Number(m[1]);
    if (m[2] !== undefined) step.end = Number(m[2]);
    if (m[3] !== undefined) step.step = Number(m[3]);
    return [step, close + 1];
  }
  throw new JsonPathError(`invalid array index ${body} in ${expr}`);
}

function parseOperand(s: string, i: number, expr: string): [FilterOperand, number] {
  while (s[i] === ' ') i++;
  if (s[i] === '@') {
    const [path, j] = parseSteps(s, i + 1, expr, true);
    return [{ path }, j];
  }
  if (s[i] === '"' || s[i] === "'") {
    const [str, j] = readQuoted(s, i, expr);
    return [{ literal: str }, j];
  }
  const m = /^(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(s.slice(i));
  if (!m) throw new JsonPathError(`unrecognized filter operand at ${JSON.stringify(s.slice(i))} in ${expr}`);
  const lit = m[1] === 'true' ? true : m[1] === 'false' ? false : m[1] === 'null' ? null : Number(m[1]);
  return [{ literal: lit }, i + m[1].length];
}

function parseFilter(s: string, i: number, expr: string): [JsonPathStep, number] {
  const [left, j] = parseOperand(s, i, expr);
  if (!('path' in left)) throw new JsonPathError(`filter must start with @ in ${expr}`);
  let k = j;
  while (s[k] === ' ') k++;
  const op = (['==', '!=', '<=', '>=', '<', '>'] as const).find((o) => s.startsWith(o, k));
  if (!op) return [{ type: 'filter', left: left.path }, k];
  const [right, m] = parseOperand(s, k + op.length, expr);
  return [{ type: 'filter', left: left.path, op, right }, m];
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function evalSteps(roots: unknown[], steps: JsonPathStep[]): unknown[] {
  let cur = roots;
  for (const step of steps) {
    const next: unknown[] = [];
    for (const v of cur) applyStep(v, step, next);
    cur = next;
  }
  return cur;
}

function applyStep(v: unknown, step: JsonPathStep, out: unknown[]): void {
  switch (step.type) {
    case 'field':
      if (isObj(v) && Object.prototype.hasOwnProperty.call(v, step.name) && v[step.name] !== undefined) out.push(v[step.name]);
      return;
    case 'wildcard':
      if (Array.isArray(v)) out.push(...v);
      else if (isObj(v)) for (const k of Object.keys(v).sort()) out.push(v[k]);
      return;
    case 'recursive': {
      const visit = (x: unknown) => {
        if (isObj(x)) {
          for (const k of Object.keys(x).sort()) {
            if (step.name === '*' || k === step.name) out.push(x[k]);
          }
          for (const k of Object.keys(x).sort()) visit(x[k]);
        } else if (Array.isArray(x)) {
          if (step.name === '*') out.push(...x);
          x.forEach(visit);
        }
      };
      visit(v);
      return;
    }
    case 'index': {
      if (!Array.isArray(v)) return;
      const i = step.index < 0 ? v.length + step.index : step.index;
      if (i >= 0 && i < v.length) out.push(v[i]);
      return;
    }
    case 'slice': {
      if (!Array.isArray(v)) return;
      const norm = (n: number | undefined, d: number) => (n === undefined ? d : Math.min(Math.max(n < 0 ? v.length + n : n, 0), v.length));
      const start = norm(step.start, 0);
      const end = norm(step.end, v.length);
      const by = step.step && step.step > 0 ? step.step : 1;
      for (let i = start; i < end; i += by) out.push(v[i]);
      return;
    }
    case 'filter': {
      if (!Array.isArray(v)) return;
      for (const item of v) if (filterPasses(item, step)) out.push(item);
      return;
    }
  }
}

function filterPasses(item: unknown, step: Extract<JsonPathStep, { type: 'filter' }>): boolean {
  const left = evalSteps([item], step.left);
  if (!step.op || !step.right) return left.length > 0;
  if (left.length === 0) return false;
  let right: unknown;
  if ('path' in step.right) {
    const r = evalSteps([item], step.right.path);
    if (r.length === 0) return false;
    right = r[0];
  } else {
    right = step.right.literal;
  }
  const l = left[0];
  if (typeof l === 'number' && typeof right === 'number') return compare(l, right, step.op);
  if (typeof l === 'string' && typeof right === 'string') return compare(l, right, step.op);
  if (step.op === '==') return l === right;
  if (step.op === '!=') return l !== right && (typeof l === typeof right || l === null || right === null);
  return false;
}

function compare<T extends number | string>(a: T, b: T, op: FilterOp): boolean {
  switch (op) {
    case '==':
      return a === b;
    case '!=':
      return a !== b;
    case '<':
      return a < b;
    case '<=':
      return a <= b;
    case '>':
      return a > b;
    case '>=':
      return a >= b;
  }
}

/** All results of a JSONPath (string or parsed) against `obj`, in document order. */
export function evalJsonPath(obj: unknown, path: string | JsonPathStep[]): unknown[] {
  const steps = typeof path === 'string' ? parseJsonPath(path) : path;
  return evalSteps([obj], steps);
}
