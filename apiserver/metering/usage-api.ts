// The usage API (Nova's os-simple-tenant-usage): GET /apis/metering.kova.dev/v1alpha1/namespaces/
// NS/usage?start=&end= for one project, /apis/metering.kova.dev/v1alpha1/usage for every one.
// A virtual resource, like the reviews: authorized as `get` on `usage` in metering.kova.dev (the
// view, edit and admin roles have it in their projects), computed from the project's UsageRecords
// (ledgers and period records) with open intervals counted up to now (api/metering.ts).
import { computeUsage } from '../../api/metering.js';
import type { Usage } from '../../api/metering.js';
import { METERING_GROUP, METERING_VERSION, USAGE_RECORDS } from '../../api/kinds/usage.js';
import type { UsageRecord } from '../../api/kinds/usage.js';
import { isDNS1123Label } from '../../api/name-validation.js';
import type { RequestAttributes, UserInfo } from '../auth/types.js';
import type { ResourceStore } from '../resource-store.js';
import { ApiError, badRequest, methodNotAllowed } from '../status.js';

export const USAGE_RESOURCE = 'usage';

/** The usage API's target: one project, or every one (namespace undefined). */
export interface UsageTarget {
  namespace?: string;
}

/** The target of a usage path (segments of the URL path), or undefined for any other path. */
export function usageTarget(segs: readonly string[]): UsageTarget | undefined {
  if (segs[0] !== 'apis' || segs[1] !== METERING_GROUP || segs[2] !== METERING_VERSION) return undefined;
  if (segs.length === 4 && segs[3] === USAGE_RESOURCE) return {};
  if (segs.length === 6 && segs[3] === 'namespaces' && segs[5] === USAGE_RESOURCE) return { namespace: segs[4] };
  return undefined;
}

export function usageAttributes(user: UserInfo, path: string, t: UsageTarget): RequestAttributes {
  return {
    user, verb: 'get', resourceRequest: true, path,
    apiGroup: METERING_GROUP, apiVersion: METERING_VERSION, resource: USAGE_RESOURCE, subresource: '', namespace: t.namespace ?? '', name: '',
  };
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

/** A 400 Status naming the query parameter, as apimachinery's field errors do. */
function badParam(param: string, value: string, why: string): ApiError {
  const message = `${param}: Invalid value: ${JSON.stringify(value.slice(0, 100))}: ${why}`;
  return new ApiError(400, 'BadRequest', message, { causes: [{ reason: 'FieldValueInvalid', message, field: param }] });
}

function timeParam(q: URLSearchParams, param: string, fallback: number): number {
  const v = q.get(param);
  if (v === null || v === '') return fallback;
  const ms = RFC3339.test(v) ? Date.parse(v) : NaN;
  if (!Number.isFinite(ms)) throw badParam(param, v, 'must be an RFC 3339 time, e.g. 2026-05-01T00:00:00Z');
  return ms;
}

/** The first instant of the current UTC month: the default start, as `openstack usage list`'s. */
export function monthStart(now: number): number {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

/** The window [start, end) a query asks for: RFC 3339 `start` and `end`, by default this month up to now. */
export function usageWindow(q: URLSearchParams, now: number): { start: number; end: number } {
  const start = timeParam(q, 'start', monthStart(now));
  const end = timeParam(q, 'end', now);
  if (start > end) throw badParam('start', q.get('start') ?? new Date(start).toISOString(), `must not be after end (${JSON.stringify(q.get('end') ?? 'now')})`);
  return { start, end };
}

/** Answers an authorized usage request (`authorize` throws the 403). */
export async function serveUsage(t: UsageTarget, method: string, path: string, q: URLSearchParams, user: UserInfo, authorize: (a: RequestAttributes) => void, resources: ResourceStore): Promise<Usage> {
  authorize(usageAttributes(user, path, t));
  if (method !== 'GET') throw methodNotAllowed(method);
  if (t.namespace !== undefined && isDNS1123Label(t.namespace).length) throw badRequest(`invalid namespace ${JSON.stringify(t.namespace.slice(0, 100))}`);
  const now = Date.now();
  const { start, end } = usageWindow(q, now);
  const info = resources.registry.lookup(METERING_GROUP, METERING_VERSION, USAGE_RECORDS.plural);
  if (!info) throw new ApiError(503, 'ServiceUnavailable', 'the metering.kova.dev UsageRecord kind is not installed');
  const records = (await resources.list(info, t.namespace)).items as UsageRecord[];
  return computeUsage(records, start, end, now, t.namespace);
}

/** Discovery entries of the virtual resource, for its group-version's resource lists. */
export function usageDiscovery(gv: string): { legacy: Record<string, unknown>[]; aggregated: Record<string, unknown>[] } {
  if (gv !== `${METERING_GROUP}/${METERING_VERSION}`) return { legacy: [], aggregated: [] };
  return {
    legacy: [{ name: USAGE_RESOURCE, singularName: USAGE_RESOURCE, namespaced: true, kind: 'Usage', verbs: ['get'] }],
    aggregated: [{
      resource: USAGE_RESOURCE, responseKind: { group: METERING_GROUP, version: METERING_VERSION, kind: 'Usage' },
      scope: 'Namespaced', singularResource: USAGE_RESOURCE, verbs: ['get'],
    }],
  };
}
