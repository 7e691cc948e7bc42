// `meta.k8s.io/v1` Table rendering for `kubectl get`, mirroring apiextensions-apiserver's
// customresource/tableconvertor and apiserver's handlers/response.go `asTable` (kube-api-notes §3):
// a Name column, then the printer columns (or a default Age column), cells from JSONPath.
import type { KObject, PrinterColumn, ResourceInfo } from '../api/types.js';
import { evalJsonPath, parseJsonPath } from './table-jsonpath.js';
import { QUOTA_COMPUTED_COLUMNS } from '../api/builtin-kinds-quota.js';
import { RBAC_COMPUTED_COLUMNS } from '../api/builtin-kinds-rbac.js';
import type { JsonPathStep } from './table-jsonpath.js';

export { evalJsonPath, parseJsonPath, JsonPathError } from './table-jsonpath.js';

export interface TableColumnDefinition {
  name: string;
  type: string;
  format: string;
  description: string;
  priority: number;
}

export interface TableRow {
  cells: unknown[];
  /** PartialObjectMetadata, the full object, or null for includeObject=None. */
  object: unknown;
}

export interface Table {
  kind: 'Table';
  apiVersion: 'meta.k8s.io/v1';
  metadata: { resourceVersion?: string; continue?: string; remainingItemCount?: number };
  columnDefinitions: TableColumnDefinition[];
  rows: TableRow[];
}

export type IncludeObject = 'None' | 'Metadata' | 'Object';

export interface TableOptions {
  includeObject: IncludeObject;
  resourceVersion?: string;
  continue?: string;
  remainingItemCount?: number;
  /** Reference time for ages (default: now). */
  now?: Date;
  /** False for watch events after the first (kube-apiserver sends headers once). Default true. */
  withColumnDefinitions?: boolean;
}

/** ObjectMeta swagger doc of `name` (the Name column's description). */
export const NAME_DESCRIPTION =
  'Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names';

/** ObjectMeta swagger doc of `creationTimestamp` (the default Age column's description). */
export const CREATION_TIMESTAMP_DESCRIPTION =
  'CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata';

/** apiextensions `serveDefaultColumnsIfEmpty`: an Age column when a kind declares none. */
export function effectivePrinterColumns(info: Pick<ResourceInfo, 'printerColumns'>): PrinterColumn[] {
  if (info.printerColumns.length) return info.printerColumns;
  return [{ name: 'Age', type: 'date', description: CREATION_TIMESTAMP_DESCRIPTION, jsonPath: '.metadata.creationTimestamp' }];
}

export function columnDefinitions(info: Pick<ResourceInfo, 'printerColumns'>): TableColumnDefinition[] {
  return [
    { name: 'Name', type: 'string', format: 'name', description: NAME_DESCRIPTION, priority: 0 },
    ...effectivePrinterColumns(info).map((c) => ({
      name: c.name,
      type: c.type,
      format: c.format ?? '',
      description: c.description || `Custom resource definition column (in JSONPath format): ${c.jsonPath}`,
      priority: c.priority ?? 0,
    })),
  ];
}

// Parsed JSONPaths, cached per expression (columns are few and reused for every row).
const pathCache = new Map<string, JsonPathStep[] | null>();
function compiled(jsonPath: string): JsonPathStep[] | null {
  let p = pathCache.get(jsonPath);
  if (p === undefined) {
    try {
      p = parseJsonPath(jsonPath);
    } catch {
      p = null; // an unparsable column renders as null cells
    }
    if (pathCache.size > 1000) pathCache.clear();
    pathCache.set(jsonPath, p);
  }
  return p;
}

/** Renders objects as a Table; one row per object, in order. */
export function toTable(info: Pick<ResourceInfo, 'printerColumns'>, objects: readonly KObject[], opts: TableOptions): Table {
  const now = opts.now ?? new Date();
  const columns = effectivePrinterColumns(info);
  const metadata: Table['metadata'] = {};
  if (opts.resourceVersion) metadata.resourceVersion = opts.resourceVersion;
  if (opts.continue) metadata.continue = opts.continue;
  if (opts.remainingItemCount !== undefined && opts.remainingItemCount !== null) metadata.remainingItemCount = opts.remainingItemCount;
  const rows = objects.map((obj) => ({
    cells: [obj.metadata?.name ?? '', ...columns.map((c) => cellFor(c, obj, now))],
    object: rowObject(obj, opts.includeObject),
  }));
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata,
    columnDefinitions: opts.withColumnDefinitions === false ? [] : columnDefinitions(info),
    rows,
  };
}

function rowObject(obj: KObject, include: IncludeObject): unknown {
  if (include === 'None') return null;
  if (include === 'Object') return obj;
  const { managedFields: _managedFields, ...metadata } = obj.metadata ?? {};
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata };
}

/** One cell, converted like the tableconvertor's `cellForJSONValue` (string columns are printed). */
export function cellFor(column: Pick<PrinterColumn, 'type' | 'jsonPath'>, obj: unknown, now: Date = new Date()): unknown {
  // ResourceQuota's "used/hard" columns are computed, not read at a path.
  const computed = QUOTA_COMPUTED_COLUMNS[column.jsonPath] ?? RBAC_COMPUTED_COLUMNS[column.jsonPath];
  if (computed) return computed(obj as KObject);
  const steps = compiled(column.jsonPath);
  if (!steps) return null;
  const results = evalJsonPath(obj, steps);
  if (results.length === 0) return null;
  const value = results[0];
  if (value === null || value === undefined) return null;
  switch (column.type) {
    case 'string':
      return printValue(value);
    case 'integer':
      return typeof value === 'number' ? Math.trunc(value) : null;
    case 'number':
      return typeof value === 'number' ? value : null;
    case 'boolean':
      return typeof value === 'boolean' ? value : null;
    case 'date':
      return typeof value === 'string' ? dateCell(value, now) : null;
    default:
      return null;
  }
}

/** client-go jsonpath PrintResults: strings raw, numbers/bools printed, maps and lists as JSON. */
function printValue(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : goFloat(v);
  if (typeof v === 'boolean') return String(v);
  return goMarshal(v);
}

function goFloat(n: number): string {
  if (!Number.isFinite(n)) return n > 0 ? '+Inf' : n < 0 ? '-Inf' : 'NaN';
  const [mant, expStr] = n.toExponential().split('e');
  const exp = Number(expStr);
  if (exp < -4 || exp >= 6) return `${mant}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  return String(n);
}

/** Go json.Marshal of a generic value: map keys sorted, HTML characters escaped. */
function goMarshal(v: unknown): string {
  const sortKeys = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(sortKeys);
    if (x && typeof x === 'object') {
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(x).sort()) out[k] = sortKeys((x as Record<string, unknown>)[k]);
      return out;
    }
    return x;
  };
  return JSON.stringify(sortKeys(v)).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** A `date` cell: the age, `<unknown>` for an empty or zero time, `<invalid>` when unparsable. */
export function dateCell(value: string, now: Date = new Date()): string {
  if (value === '' || value === 'null') return '<unknown>';
  const m = RFC3339.exec(value);
  if (!m) return '<invalid>';
  const [, y, mo, d, h, mi, s] = m.map(Number);
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59) return '<invalid>';
  if (y === 1 && mo === 1 && d === 1 && h === 0 && mi === 0 && s === 0 && m[8] === 'Z' && !/[1-9]/.test(m[7] ?? '')) return '<unknown>';
  const t = Date.parse(value);
  if (Number.isNaN(t)) return '<invalid>';
  return humanDuration(now.getTime() - t);
}

/**
 * apimachinery `duration.HumanDuration` (what `kubectl get` shows as AGE): ~2-3 significant
 * figures, e.g. 119s, 5m30s, 45m, 3h15m, 30h, 3d5h, 45d, 3y120d, 9y. `ms` is a duration in ms.
 */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 60 * 2) return `${seconds}s`;
  const minutes = Math.trunc(ms / 60000);
  if (minutes < 10) {
    const s = seconds % 60;
    return s === 0 ? `${minutes}m` : `${minutes}m${s}s`;
  }
  if (minutes < 60 * 3) return `${minutes}m`;
  const hours = Math.trunc(ms / 3600000);
  if (hours < 8) {
    const m = minutes % 60;
    return m === 0 ? `${hours}h` : `${hours}h${m}m`;
  }
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) {
    const h = hours % 24;
    return h === 0 ? `${Math.trunc(hours / 24)}d` : `${Math.trunc(hours / 24)}d${h}h`;
  }
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24)}d`;
  if (hours < 24 * 365 * 8) {
    const dy = Math.trunc(hours / 24) % 365;
    const y = Math.trunc(hours / 24 / 365);
    return dy === 0 ? `${y}y` : `${y}y${dy}d`;
  }
  return `${Math.trunc(hours / 24 / 365)}y`;
}

/** apimachinery `duration.ShortHumanDuration` (one unit: 5s, 3m, 4h, 12d, 2y). */
export function shortHumanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.trunc(ms / 60000);
  if (minutes < 60) return `${minutes}m`;
  const hours = Math.trunc(ms / 3600000);
  if (hours < 24) return `${hours}h`;
  if (hours < 24 * 365) return `${Math.trunc(hours / 24)}d`;
  return `${Math.trunc(hours / 24 / 365)}y`;
}
