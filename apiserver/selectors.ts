// Label and field selectors, parsed and matched like apimachinery's pkg/labels and pkg/fields
// (same grammar, same validation, same error texts). Errors are SelectorErrors → HTTP 400.
import { isQualifiedName, isValidLabelValue } from '../api/name-validation.js';

export class SelectorError extends Error {
  override readonly name = 'SelectorError';
}

// ---------------------------------------------------------------------------------------------
// Label selectors
//
//   <selector>    ::= <requirement> | <requirement> "," <selector>
//   <requirement> ::= [!] KEY [ <set-based> | <exact-match> ]
//   <set-based>   ::= ("in" | "notin") "(" VALUE ("," VALUE)* ")"
//   <exact-match> ::= ("=" | "==" | "!=" | ">" | "<") VALUE
//
// Blanks (space, tab, CR, LF) separate tokens anywhere. The empty selector matches everything.

export type LabelOperator = 'in' | 'notin' | '=' | '==' | '!=' | 'exists' | '!' | 'gt' | 'lt';

export interface LabelRequirement {
  key: string;
  operator: LabelOperator;
  /** Sorted, without duplicates (apimachinery keeps a string set). */
  values: string[];
}

export class LabelSelector {
  /** Requirements sorted by key (apimachinery sorts them too). */
  constructor(readonly requirements: readonly LabelRequirement[]) {}

  isEmpty(): boolean {
    return this.requirements.length === 0;
  }

  matches(labels: Readonly<Record<string, string>> | undefined): boolean {
    const ls = labels ?? {};
    return this.requirements.every((r) => requirementMatches(r, ls));
  }

  /** The value `key` must have, if the selector pins it to exactly one (`k=v`, `k==v`, `k in (v)`). */
  requiresExactMatch(key: string): string | undefined {
    const r = this.requirements.find((x) => x.key === key);
    if (r && (r.operator === '=' || r.operator === '==' || r.operator === 'in') && r.values.length === 1) return r.values[0];
    return undefined;
  }

  toString(): string {
    return this.requirements.map(requirementString).join(',');
  }
}

function requirementMatches(r: LabelRequirement, ls: Readonly<Record<string, string>>): boolean {
  const has = Object.prototype.hasOwnProperty.call(ls, r.key);
  const v = has ? ls[r.key] : undefined;
  switch (r.operator) {
    case 'in':
    case '=':
    case '==':
      return has && r.values.includes(v!);
    case 'notin':
    case '!=':
      return !has || !r.values.includes(v!);
    case 'exists':
      return has;
    case '!':
      return !has;
    case 'gt':
    case 'lt': {
      if (!has || !/^[+-]?\d+$/.test(v!)) return false;
      const a = BigInt(v!);
      const b = BigInt(r.values[0]);
      return r.operator === 'gt' ? a > b : a < b;
    }
  }
}

function requirementString(r: LabelRequirement): string {
  const vals = r.values.join(',');
  switch (r.operator) {
    case 'exists':
      return r.key;
    case '!':
      return `!${r.key}`;
    case 'in':
      return `${r.key} in (${vals})`;
    case 'notin':
      return `${r.key} notin (${vals})`;
    case 'gt':
      return `${r.key}>${vals}`;
    case 'lt':
      return `${r.key}<${vals}`;
    default:
      return `${r.key}${r.operator}${vals}`;
  }
}

type Tok = 'end' | 'ident' | 'in' | 'notin' | '(' | ')' | ',' | '!' | '=' | '==' | '!=' | '>' | '<' | 'error';

const SPECIAL = new Set(['=', '!', '(', ')', ',', '>', '<']);
const SYMBOL_TOKENS = new Set(['(', ')', ',', '!', '=', '==', '!=', '>', '<']);
const isBlank = (c: string) => c === ' ' || c === '\t' || c === '\r' || c === '\n';

function lexLabels(s: string): Array<{ tok: Tok; lit: string }> {
  const out: Array<{ tok: Tok; lit: string }> = [];
  let i = 0;
  for (;;) {
    while (i < s.length && isBlank(s[i])) i++;
    if (i >= s.length) {
      out.push({ tok: 'end', lit: '' });
      return out;
    }
    if (SPECIAL.has(s[i])) {
      // Longest run of special characters that is still a token ("!=" rather than "!").
      let buf = '';
      let last: string | undefined;
      let j = i;
      while (j < s.length && SPECIAL.has(s[j])) {
        buf += s[j];
        if (SYMBOL_TOKENS.has(buf)) last = buf;
        else if (last !== undefined) break;
        j++;
      }
      if (last === undefined) {
        out.push({ tok: 'error', lit: `error expected: keyword found '${buf}'` });
        i = j;
      } else {
        out.push({ tok: last as Tok, lit: last });
        i += last.length;
      }
      continue;
    }
    let j = i;
    while (j < s.length && !SPECIAL.has(s[j]) && !isBlank(s[j])) j++;
    const word = s.slice(i, j);
    out.push({ tok: word === 'in' ? 'in' : word === 'notin' ? 'notin' : 'ident', lit: word });
    i = j;
  }
}

const invalidValue = (path: string, value: string, detail: string) => `${path}: Invalid value: ${JSON.stringify(value)}: ${detail}`;

/** Parses a label selector (`?labelSelector=`). Throws SelectorError with apimachinery's messages. */
export function parseLabelSelector(selector: string): LabelSelector {
  const toks = lexLabels(selector);
  let pos = 0;
  // In value position "in"/"notin" are plain identifiers.
  const peek = () => {
    const t = toks[pos];
    return { tok: t.tok === 'in' || t.tok === 'notin' ? ('ident' as Tok) : t.tok, lit: t.lit };
  };
  const next = (keywords = false) => {
    const t = toks[pos++];
    return { tok: !keywords && (t.tok === 'in' || t.tok === 'notin') ? ('ident' as Tok) : t.tok, lit: t.lit };
  };

  const parseRequirement = (): LabelRequirement => {
    let operator: LabelOperator | undefined;
    let t = next();
    if (t.tok === '!') {
      operator = '!';
      t = next();
    }
    if (t.tok !== 'ident') throw new Error(`found '${t.lit}', expected: identifier`);
    const key = t.lit;
    const keyErrs = isQualifiedName(key);
    if (keyErrs.length) throw new Error(invalidValue('<nil>', key, keyErrs.join('; ')));
    // `!key` takes no operator; whatever follows is the caller's problem (as in apimachinery).
    if (operator === '!') return { key, operator, values: [] };
    const after = peek().tok;
    if (after === 'end' || after === ',') return { key, operator: 'exists', values: [] };
    const op = next(true);
    let values: string[];
    switch (op.tok) {
      case 'in':
      case 'notin':
        operator = op.tok;
        values = parseValues();
        break;
      case '=':
      case '==':
      case '!=':
        operator = op.tok;
        values = parseExactValue();
        break;
      case '>':
      case '<':
        operator = op.tok === '>' ? 'gt' : 'lt';
        values = parseExactValue();
        break;
      default:
        throw new Error(`found '${op.lit}', expected: in, notin, =, ==, !=, gt, lt`);
    }
    const errs: string[] = [];
    if (operator === 'gt' || operator === 'lt') {
      values.forEach((v, i) => {
        if (!/^[+-]?\d+$/.test(v)) errs.push(invalidValue(`values[${i}]`, v, "for 'Gt', 'Lt' operators, the value must be an integer"));
      });
    }
    values.forEach((v, i) => {
      const ve = isValidLabelValue(v);
      if (ve.length) errs.push(invalidValue(`values[${i}][${key}]`, v, ve.join('; ')));
    });
    if (errs.length) throw new Error(errs.length === 1 ? errs[0] : `[${errs.join(', ')}]`);
    return { key, operator, values };
  };

  const parseValues = (): string[] => {
    const open = next();
    if (open.tok !== '(') throw new Error(`found '${open.lit}' expected: '('`);
    const first = peek();
    if (first.tok === ')') {
      next();
      return [''];
    }
    if (first.tok !== 'ident' && first.tok !== ',') throw new Error(`found '${first.lit}', expected: ',', ')' or identifier`);
    const set = new Set<string>();
    for (;;) {
      const t = next();
      if (t.tok === 'ident') {
        set.add(t.lit);
        const la = peek();
        if (la.tok === ',') continue;
        if (la.tok === ')') break;
        throw new Error(`found '${la.lit}', expected: ',' or ')'`);
      } else if (t.tok === ',') {
        // Empty values: "(,a)", "(a,,b)", "(a,)".
        if (set.size === 0) set.add('');
        const la = peek();
        if (la.tok === ')') {
          set.add('');
          break;
        }
        if (la.tok === ',') set.add('');
      } else {
        throw new Error(`found '${t.lit}', expected: ',', or identifier`);
      }
    }
    const close = next();
    if (close.tok !== ')') throw new Error(`found '${close.lit}', expected: ')'`);
    return [...set].sort();
  };

  const parseExactValue = (): string[] => {
    const la = peek();
    if (la.tok === 'end' || la.tok === ',') return [''];
    const t = next();
    if (t.tok === 'ident') return [t.lit];
    throw new Error(`found '${t.lit}', expected: identifier`);
  };

  const reqs: LabelRequirement[] = [];
  for (;;) {
    const t = peek();
    if (t.tok === 'end') break;
    if (t.tok !== 'ident' && t.tok !== '!') throw new SelectorError(`found '${t.lit}', expected: !, identifier, or 'end of string'`);
    try {
      reqs.push(parseRequirement());
    } catch (e) {
      throw new SelectorError(`unable to parse requirement: ${(e as Error).message}`);
    }
    const sep = next();
    if (sep.tok === 'end') break;
    if (sep.tok !== ',') throw new SelectorError(`found '${sep.lit}', expected: ',' or 'end of string'`);
    const la = peek();
    if (la.tok !== 'ident' && la.tok !== '!') throw new SelectorError(`found '${la.lit}', expected: identifier after ','`);
  }
  reqs.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return new LabelSelector(reqs);
}

/** Matches `labels` against a selector string (convenience; throws SelectorError on bad syntax). */
export function matchLabels(selector: string, labels: Readonly<Record<string, string>> | undefined): boolean {
  return parseLabelSelector(selector).matches(labels);
}

// ---------------------------------------------------------------------------------------------
// Field selectors: `k=v`, `k==v`, `k!=v`, comma = AND. In values `\,`, `\=` and `\\` escape.

export interface FieldRequirement {
  field: string;
  operator: '=' | '==' | '!=';
  value: string;
}

/**
 * Reads a dotted path (`status.hostName`, `involvedObject.name`) from an object as the string a
 * field selector compares: strings as is, numbers and booleans printed, missing/null as "".
 */
export function matchField(obj: unknown, path: string): string {
  let cur: unknown = obj;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return '';
    cur = (cur as Record<string, unknown>)[part];
  }
  if (cur === undefined || cur === null) return '';
  if (typeof cur === 'string') return cur;
  if (typeof cur === 'number' || typeof cur === 'boolean') return String(cur);
  return JSON.stringify(cur);
}

export class FieldSelector {
  constructor(
    readonly requirements: readonly FieldRequirement[],
    /** Selector field → object path, for fields that are not plain paths (events' `source`). */
    private readonly aliases: Readonly<Record<string, string>> = {},
  ) {}

  isEmpty(): boolean {
    return this.requirements.length === 0;
  }

  /** The object's value for a selector field. */
  valueOf(obj: unknown, field: string): string {
    return matchField(obj, this.aliases[field] ?? field);
  }

  matches(obj: unknown): boolean {
    return this.requirements.every((r) => {
      const v = this.valueOf(obj, r.field);
      return r.operator === '!=' ? v !== r.value : v === r.value;
    });
  }

  /** The value `field` must equal, if some term pins it (`f=v` or `f==v`). */
  requiresExactMatch(field: string): string | undefined {
    return this.requirements.find((r) => r.field === field && r.operator !== '!=')?.value;
  }

  toString(): string {
    return this.requirements.map((r) => `${r.field}${r.operator}${escapeFieldValue(r.value)}`).join(',');
  }
}

/** Field selector aliases for core v1 Events (`source` is `source.component`). */
export const EVENT_FIELD_ALIASES: Readonly<Record<string, string>> = { source: 'source.component' };

export function escapeFieldValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/,/g, '\\,').replace(/=/g, '\\=');
}

function unescapeFieldValue(v: string): string {
  let out = '';
  for (let i = 0; i < v.length; i++) {
    const c = v[i];
    if (c === '\\') {
      const n = v[i + 1];
      if (n !== '\\' && n !== ',' && n !== '=') throw new SelectorError(`invalid field selector: invalid escape sequence: \\${n ?? ''}`);
      out += n;
      i++;
    } else if (c === ',' || c === '=') {
      throw new SelectorError(`invalid field selector: unescaped character ${JSON.stringify(c)}`);
    } else {
      out += c;
    }
  }
  return out;
}

function splitUnescaped(s: string, sep: string): string[] {
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\') i++;
    else if (s[i] === sep) {
      parts.push(s.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(s.slice(start));
  return parts;
}

/**
 * Parses a field selector (`?fieldSelector=`) and checks every field against `allowedFields`
 * (metadata.name and metadata.namespace are always allowed). Unknown fields throw
 * `field label not supported: <field>`.
 */
export function parseFieldSelector(selector: string, allowedFields: readonly string[] = [], opts: { aliases?: Readonly<Record<string, string>> } = {}): FieldSelector {
  return parseFields(selector, new Set(['metadata.name', 'metadata.namespace', ...allowedFields]), opts.aliases);
}

function parseFields(selector: string, allowed: Set<string> | undefined, aliases?: Readonly<Record<string, string>>): FieldSelector {
  const reqs: FieldRequirement[] = [];
  for (const term of splitUnescaped(selector, ',').sort()) {
    if (term.trim() === '') continue;
    let found: { field: string; operator: FieldRequirement['operator']; rhs: string } | undefined;
    for (let i = 0; i < term.length && !found; i++) {
      if (term[i] === '\\') {
        i++;
        continue;
      }
      for (const op of ['!=', '==', '='] as const) {
        if (term.startsWith(op, i)) {
          found = { field: term.slice(0, i).trim(), operator: op, rhs: term.slice(i + op.length) };
          break;
        }
      }
    }
    if (!found || found.field === '') throw new SelectorError(`invalid selector: '${selector}'; can't understand '${term}'`);
    const value = unescapeFieldValue(found.rhs);
    if (allowed && !allowed.has(found.field)) throw new SelectorError(`field label not supported: ${found.field}`);
    reqs.push({ field: found.field, operator: found.operator, value });
  }
  return new FieldSelector(reqs, aliases);
}

/**
 * The object name a field selector pins with `metadata.name=X` (or `==`), so the server can do a
 * point read instead of a list. Accepts a parsed selector or its string form (strings that do not
 * parse give undefined).
 */
export function requiredExactName(fieldSelector: FieldSelector | string | undefined): string | undefined {
  if (fieldSelector === undefined) return undefined;
  if (typeof fieldSelector === 'string') {
    try {
      return parseFields(fieldSelector, undefined).requiresExactMatch('metadata.name');
    } catch {
      return undefined;
    }
  }
  return fieldSelector.requiresExactMatch('metadata.name');
}
