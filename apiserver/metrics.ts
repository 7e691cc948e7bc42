// The API server's Prometheus metrics, with kube-apiserver's names, labels and buckets
// (k8s.io/apiserver/pkg/endpoints/metrics): apiserver_request_total, apiserver_request_duration_seconds,
// apiserver_current_inflight_requests, apiserver_longrunning_requests and apiserver_registered_watchers.
//
// Label values never come from URL text: resource, group and version come from the registry, the
// verb and scope from the method and the shape of the route, a non-resource path from a fixed set
// (plus the registry's discovery paths); anything else is "other". A fuzzer's random URLs add no
// series. Each kind of request (resource × verb × scope × subresource × dry run) gets its label
// objects built once and cached, so recording a request is two lookups and two prom-client calls.
import type { ResourceInfo } from '../api/types.js';
import { counter, gauge, histogram } from '../lib/metrics.js';
import type { Registry } from '../api/registry.js';
import type { InflightLimiter } from './inflight.js';
import type { ResourceRoute } from './request.js';
import { resourceVerb as rbacVerb } from './auth/attributes.js';

/** kube-apiserver's apiserver_request_duration_seconds buckets. */
export const REQUEST_DURATION_BUCKETS = [0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60];

/** kube's OtherRequestMethod: the label value of anything not in the known set. */
export const OTHER = 'other';
const COMPONENT = 'apiserver';

type RequestLabel = 'verb' | 'dry_run' | 'group' | 'version' | 'resource' | 'subresource' | 'scope' | 'component';
type Labels<L extends string> = Readonly<Record<L, string>>;

const requestTotal = () => counter<RequestLabel | 'code'>({
  name: 'apiserver_request_total',
  help: 'Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.',
  labelNames: ['verb', 'dry_run', 'group', 'version', 'resource', 'subresource', 'scope', 'component', 'code'],
});

const requestDuration = () => histogram<RequestLabel>({
  name: 'apiserver_request_duration_seconds',
  help: 'Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.',
  labelNames: ['verb', 'dry_run', 'group', 'version', 'resource', 'subresource', 'scope', 'component'],
  buckets: REQUEST_DURATION_BUCKETS,
});

type LongRunningLabel = Exclude<RequestLabel, 'dry_run'>;
const longRunning = () => gauge<LongRunningLabel>({
  name: 'apiserver_longrunning_requests',
  help: 'Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, scope and component. Not all requests are tracked this way.',
  labelNames: ['verb', 'group', 'version', 'resource', 'subresource', 'scope', 'component'],
});

const registeredWatchers = () => gauge<'group' | 'version' | 'kind'>({
  name: 'apiserver_registered_watchers',
  help: 'Number of currently registered watchers for a given resources',
  labelNames: ['group', 'version', 'kind'],
});

/** The in-flight limiters of this process's API servers (tests run several in one process). */
const limiters = new Set<InflightLimiter>();
const inflight = () => gauge<'request_kind'>({
  name: 'apiserver_current_inflight_requests',
  help: 'Maximal number of currently used inflight request limit of this apiserver per request kind in last second.',
  labelNames: ['request_kind'],
  collect() {
    let readOnly = 0;
    let mutating = 0;
    for (const l of limiters) {
      readOnly += l.readOnly;
      mutating += l.mutating;
    }
    this.set({ request_kind: 'readOnly' }, readOnly);
    this.set({ request_kind: 'mutating' }, mutating);
  },
});

/** One kind of request: its label objects, made once. */
export class RequestSeries {
  private readonly byCode = new Map<number, Labels<RequestLabel | 'code'>>();
  private longRunningLabels?: Labels<LongRunningLabel>;

  constructor(
    readonly labels: Labels<RequestLabel>,
    /** The watched kind (watches only): apiserver_registered_watchers' labels. */
    readonly watched?: Labels<'group' | 'version' | 'kind'>,
  ) {}

  withCode(code: number): Labels<RequestLabel | 'code'> {
    let l = this.byCode.get(code);
    // Status codes are three digits (node refuses others): at most 900 entries.
    if (!l) this.byCode.set(code, (l = Object.freeze({ ...this.labels, code: String(code) })));
    return l;
  }

  get longRunning(): Labels<LongRunningLabel> {
    if (!this.longRunningLabels) {
      const { verb, group, version, resource, subresource, scope, component } = this.labels;
      this.longRunningLabels = Object.freeze({ verb, group, version, resource, subresource, scope, component });
    }
    return this.longRunningLabels;
  }
}

const RESOURCE_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']);

/** kube's verbs as its metrics report them: the RBAC verb uppercased (LIST, WATCH, DELETECOLLECTION), APPLY for server-side apply. */
function metricVerb(method: string, named: boolean, watch: boolean, apply: boolean): string {
  if (!RESOURCE_METHODS.has(method)) return OTHER;
  if (method === 'PATCH' && apply) return 'APPLY';
  return rbacVerb(method, named, watch).toUpperCase();
}

const NON_RESOURCE_VERBS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']);
function nonResourceVerb(method: string): string {
  if (method === 'HEAD') return 'GET';
  return NON_RESOURCE_VERBS.has(method) ? method : OTHER;
}

const SUBRESOURCES = new Set(['status', 'binding', 'finalize']);

/** kube's dry_run label: "" without ?dryRun, "All" for valid values, else "invalid". */
function dryRunLabel(q: URLSearchParams): string {
  if (!q.has('dryRun')) return '';
  return q.getAll('dryRun').every((v) => v === 'All') ? 'All' : 'invalid';
}

/** Paths the server answers outside the resource routes, reported as themselves. */
const FIXED_PATHS = ['/', '/api', '/apis', '/version', '/healthz', '/livez', '/readyz', '/metrics', '/openapi/v2', '/openapi/v3'];

/** What a resource-like route needs for its labels: a registry ResourceInfo, or a review resource. */
export type SeriesResource = Pick<ResourceInfo, 'group' | 'version' | 'plural' | 'kind'>;

export class ApiMetrics {
  private readonly total = requestTotal();
  private readonly duration = requestDuration();
  private readonly longRunningGauge = longRunning();
  private readonly watchersGauge = registeredWatchers();
  private readonly resourceSeries = new WeakMap<SeriesResource, Map<string, RequestSeries>>();
  private readonly nonResourceSeries = new Map<string, RequestSeries>();
  private knownPaths?: Set<string>;

  constructor(private readonly registry: Registry) {
    inflight();
  }

  /** Counts this limiter's requests in apiserver_current_inflight_requests until unwatched. */
  watchInflight(l: InflightLimiter): () => void {
    limiters.add(l);
    return () => void limiters.delete(l);
  }

  /** The series of a request on a resource (or a review resource). */
  forResource(method: string, info: SeriesResource, route: Pick<ResourceRoute, 'namespace' | 'name' | 'subresource'>, q: URLSearchParams, watch: boolean, contentType: string | undefined): RequestSeries {
    const named = !!route.name;
    const apply = method === 'PATCH' && !!contentType && contentType.startsWith('application/apply-patch+yaml');
    const verb = metricVerb(method, named, watch, apply);
    // kube's CleanScope: a named object or a create is "resource".
    const scope = named || method === 'POST' ? 'resource' : route.namespace !== undefined ? 'namespace' : 'cluster';
    const sub = route.subresource === undefined ? '' : SUBRESOURCES.has(route.subresource) ? route.subresource : OTHER;
    const dry = dryRunLabel(q);
    let byKey = this.resourceSeries.get(info);
    if (!byKey) this.resourceSeries.set(info, (byKey = new Map()));
    const key = `${verb} ${scope} ${sub} ${dry}`;
    let s = byKey.get(key);
    if (!s) {
      const labels = Object.freeze({ verb, dry_run: dry, group: info.group, version: info.version, resource: info.plural, subresource: sub, scope, component: COMPONENT });
      s = new RequestSeries(labels, verb === 'WATCH' ? Object.freeze({ group: info.group, version: info.version, kind: info.kind }) : undefined);
      byKey.set(key, s);
    }
    return s;
  }

  /** The series of a request outside the resources: the path goes in subresource, as kube does. */
  forNonResource(method: string, path: string): RequestSeries {
    const verb = nonResourceVerb(method);
    const p = this.pathLabel(path);
    const key = `${verb} ${p}`;
    let s = this.nonResourceSeries.get(key);
    if (!s) {
      s = new RequestSeries(Object.freeze({ verb, dry_run: '', group: '', version: '', resource: '', subresource: p, scope: '', component: COMPONENT }));
      this.nonResourceSeries.set(key, s);
    }
    return s;
  }

  /** A non-resource path as a label: a known path, or "other" (bounded whatever is asked). */
  private pathLabel(path: string): string {
    if (!this.knownPaths) {
      const known = new Set(FIXED_PATHS);
      for (const gv of this.registry.groupVersions()) {
        if (gv === 'v1') known.add('/api/v1');
        else {
          known.add(`/apis/${gv}`);
          known.add(`/apis/${gv.split('/')[0]}`);
        }
      }
      this.knownPaths = known;
    }
    if (this.knownPaths.has(path)) return path;
    if (path.startsWith('/openapi/v3/')) return '/openapi/v3/*';
    return OTHER;
  }

  /** Records one answered request. */
  observe(s: RequestSeries, code: number, seconds: number): void {
    this.total.inc(s.withCode(code));
    this.duration.observe(s.labels, seconds);
  }

  watchStarted(s: RequestSeries): void {
    this.longRunningGauge.inc(s.longRunning);
    if (s.watched) this.watchersGauge.inc(s.watched);
  }

  watchEnded(s: RequestSeries): void {
    this.longRunningGauge.dec(s.longRunning);
    if (s.watched) this.watchersGauge.dec(s.watched);
  }
}
