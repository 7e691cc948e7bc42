// Random and mutated API requests for every served kind: CRUD, list/watch parameters,
// subresources, every patch type, odd headers and bodies, broken paths and raw HTTP bytes.
import type { ResourceInfo } from '../../api/types.js';
import { breakText, deepText, dnsLabel, mutate, nastyString, paths, randomJson, Rng, validObject, validValue, withDuplicateKey, yamlish } from './gen.js';

type Rec = Record<string, unknown>;

export interface FuzzRequest {
  /** Method + path template (names replaced by `{name}`): the signature a finding is filed under. */
  template: string;
  method: string;
  /** Path and query, sent as is. */
  path: string;
  headers: Record<string, string>;
  body?: string | Buffer;
  /** 'none' and 'bad' must get 401. */
  auth: 'token' | 'none' | 'bad';
  /** A watch: the client keeps it open this long after the headers arrive, then closes it. */
  watchMs?: number;
  /** A path whose dot segments must not be resolved into another resource: any 2xx is a finding. */
  noSuccess?: boolean;
  /** Raw bytes over a fresh TLS connection (malformed HTTP a normal client cannot send). */
  raw?: Buffer;
  /** PUT that first reads the object and sends it back changed (`finish` builds the body). */
  finish?: (current: Rec | undefined) => void;
  note: string;
}

export interface GenState {
  registry: ResourceInfo[];
  namespaces: string[];
  /** Continue tokens seen in list responses (valid ones to corrupt or reuse). */
  continueTokens: string[];
}

const NAMES = 4;
const PROTECTED_NAMESPACES = new Set(['default', 'kube-system', 'kube-public', 'kova-system']);

/** Percent-encodes any string (encodeURIComponent throws on lone surrogates; this encodes their UTF-8 replacement). */
export function enc(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) out += /[A-Za-z0-9_.~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
}

function prefix(info: ResourceInfo): string {
  return info.group ? `/apis/${info.group}/${info.version}` : `/api/${info.version}`;
}

export function collectionPath(info: ResourceInfo, ns?: string): string {
  return `${prefix(info)}${info.namespaced && ns !== undefined ? `/namespaces/${ns}` : ''}/${info.plural}`;
}

function nsTemplate(info: ResourceInfo) {
  return `${prefix(info)}${info.namespaced ? '/namespaces/{ns}' : ''}/${info.plural}`;
}

/** Object names collide on purpose (a few per kind) so gets, updates and deletes hit real objects. */
function objName(info: ResourceInfo, r: Rng): string {
  return info.kind === 'Namespace' && !info.group ? `fzn-${r.int(0, NAMES - 1)}` : `fz-${r.int(0, NAMES - 1)}`;
}

function pickNs(st: GenState, r: Rng): string {
  return r.weighted<() => string>([
    // Mostly one namespace, so creates, reads, patches and deletes meet the same objects.
    [60, () => st.namespaces[Math.min(1, st.namespaces.length - 1)]],
    [30, () => r.pick(st.namespaces)],
    [4, () => 'absent-ns'],
    [3, () => enc(nastyString(r).slice(0, 300))],
    [3, () => 'UPPER'],
  ])();
}

function badName(r: Rng): string {
  return r.pick(['UPPER', 'a_b', '-a', 'a-', 'x'.repeat(254), '%20', '%2F', '%2e%2e', 'a%00b', '..', '.', '%E2%98%83', enc(nastyString(r).slice(0, 400)) || 'e']);
}

const LABEL_SELECTORS_OK = ['app=web', 'app==a', 'app!=db', 'app in (a,b)', 'tier notin (a)', 'app', '!app', 'kova.dev/role=a', 'app=web,tier', ''];
const LABEL_SELECTORS_BAD = ['app in (', '=', '!!', 'a=b=c', ',,', 'app in ()', 'x'.repeat(2000), '(', 'a==', 'a notin b', '%', 'a!', 'a in (b,,c)', 'A B', '!a=b', 'a=(b)', 'in', 'a,!b=c', 'a=\u0000'];
const FIELD_SELECTORS = ['metadata.name=fz-1', 'metadata.namespace=default', 'metadata.name!=fz-2', 'status.phase=Running', 'status.hostName=sim-0', 'spec.flavor=small', 'metadata.name', '=', 'metadata.name=', 'metadata.name in (a)', ',', 'metadata.name==a,metadata.namespace!=b', 'a.b.c=d', 'metadata.name=a=b', 'involvedObject.name=x', 'source=x', 'type=Normal', 'reason=x'];
const RVS = ['', '0', '1', '2', '100', '-1', 'abc', '99999999999999999999', '1e3', ' 1', '0x10', '18446744073709551616', '9223372036854775807', '9223372036854775808', '1.5', 'NaN'];

function q(params: Array<[string, string] | undefined>): string {
  const parts = params.filter((p): p is [string, string] => !!p).map(([k, v]) => `${enc(k)}=${enc(v)}`);
  return parts.length ? `?${parts.join('&')}` : '';
}

function maybe<T>(r: Rng, p: number, f: () => T): T | undefined {
  return r.chance(p) ? f() : undefined;
}

function labelSelector(r: Rng): string {
  return r.chance(0.7) ? r.pick(LABEL_SELECTORS_OK) : r.chance(0.7) ? r.pick(LABEL_SELECTORS_BAD) : nastyString(r);
}

function intish(r: Rng): string {
  return r.pick(['0', '1', '2', '5', '-1', '500', 'abc', '1.5', '', '99999999999999999999', '1e3', ' 3', '9007199254740993']);
}

function continueToken(st: GenState, r: Rng): string {
  const real = st.continueTokens.length ? r.pick(st.continueTokens) : undefined;
  return r.weighted<() => string>([
    [3, () => real ?? 'x'],
    [2, () => (real ? real.slice(0, r.int(0, real.length - 1)) : '')],
    [2, () => (real ? `${real.slice(0, -2)}${r.pick(['AA', '==', '!!', '%%'])}` : 'AA')],
    [2, () => Buffer.from(JSON.stringify(r.chance(0.5) ? randomJson(r) : { v: r.pick(['meta.k8s.io/v1', 1, null]), rv: r.pick([0, -1, 'x', 1e300, 12]), start: r.pick(['', '/', '\u0000', '../', 'fz-1\u0000', 42]) })).toString('base64')],
    [1, () => nastyString(r)],
    [1, () => 'x'.repeat(r.pick([10, 5000, 60_000]))],
  ])();
}

function commonQuery(r: Rng): Array<[string, string] | undefined> {
  return [
    maybe(r, 0.1, () => ['pretty', r.pick(['true', 'false', '1', 'x'])]),
    maybe(r, 0.05, () => [nastyString(r).slice(0, 50) || 'k', nastyString(r).slice(0, 50)]),
  ];
}

function listQuery(st: GenState, r: Rng, watch: boolean): Array<[string, string] | undefined> {
  return [
    ...(watch ? [[r.pick(['watch', 'watch', 'watch', 'watch']), r.pick(['true', 'true', '1', 'True'])] as [string, string]] : []),
    maybe(r, 0.3, () => ['labelSelector', labelSelector(r)]),
    maybe(r, 0.25, () => ['fieldSelector', r.chance(0.85) ? r.pick(FIELD_SELECTORS) : nastyString(r)]),
    maybe(r, 0.35, () => ['resourceVersion', r.pick(RVS)]),
    maybe(r, 0.15, () => ['resourceVersionMatch', r.pick(['NotOlderThan', 'Exact', 'exact', '', 'x'])]),
    maybe(r, watch ? 0.5 : 0.3, () => ['limit', intish(r)]),
    maybe(r, watch ? 0.05 : 0.2, () => ['continue', continueToken(st, r)]),
    maybe(r, watch ? 0.6 : 0.1, () => ['timeoutSeconds', intish(r)]),
    maybe(r, watch ? 0.5 : 0.05, () => ['allowWatchBookmarks', r.pick(['true', 'false', '1', 'yes'])]),
    maybe(r, watch ? 0.3 : 0.05, () => ['sendInitialEvents', r.pick(['true', 'false', 'x'])]),
    ...commonQuery(r),
  ];
}

function writeQuery(r: Rng): Array<[string, string] | undefined> {
  return [
    maybe(r, 0.2, () => ['fieldValidation', r.pick(['Strict', 'Warn', 'Ignore', 'strict', 'x', ''])]),
    maybe(r, 0.1, () => ['dryRun', r.pick(['All', 'all', 'x', ''])]),
    maybe(r, 0.2, () => ['fieldManager', r.chance(0.7) ? r.pick(['fuzz', 'kubectl', 'a'.repeat(129), '']) : nastyString(r)]),
    ...commonQuery(r),
  ];
}

const JSON_CT = 'application/json';

function contentType(r: Rng, normal: string): string {
  return r.chance(0.88)
    ? normal
    : r.pick(['application/json; charset=utf-8', 'application/yaml', 'text/plain', '', 'application/vnd.kubernetes.protobuf', 'multipart/form-data; boundary=x', 'application/json; charset=utf-16', '*/*', 'application/x-www-form-urlencoded', 'APPLICATION/JSON', 'application/json-patch+json', 'application/merge-patch+json', 'application/apply-patch+yaml', 'application/strategic-merge-patch+json', ';;;', 'application/json;as=Table;v=v1;g=meta.k8s.io']);
}

function accept(r: Rng): string | undefined {
  return r.weighted<string | undefined>([
    [70, undefined],
    [10, 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json'],
    [3, 'application/json;as=Table;v=v9;g=meta.k8s.io'],
    [3, 'application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io'],
    [3, 'application/vnd.kubernetes.protobuf'],
    [2, 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList'],
    [3, 'text/html'],
    [2, '*/*'],
    [2, ';;;as=Table'],
    [2, 'application/yaml'],
  ]);
}

/** Random request body bytes for a body-carrying request: valid, mutated, broken or binary. */
function objectBody(info: ResourceInfo, r: Rng, name: string, ns: string | undefined): { body: string | Buffer; note: string; ct: string } {
  const valid = validObject(info, r, name, r.chance(0.8) ? ns : r.pick(['other', '', 'absent-ns']));
  return r.weighted<() => { body: string | Buffer; note: string; ct: string }>([
    [55, () => ({ body: JSON.stringify(valid), note: 'valid', ct: JSON_CT })],
    [35, () => {
      const m = mutate(valid, info, r);
      return { body: JSON.stringify(m.obj), note: m.what, ct: JSON_CT };
    }],
    [5, () => ({ body: withDuplicateKey(valid, r), note: 'duplicate key', ct: JSON_CT })],
    [7, () => ({ body: breakText(JSON.stringify(valid), r), note: 'broken JSON', ct: JSON_CT })],
    [3, () => ({ body: deepText(r.pick([1000, 10_000, 200_000]), r.chance(0.5)), note: 'deep JSON text', ct: JSON_CT })],
    [5, () => ({ body: yamlish(valid, r), note: 'YAML body', ct: 'application/yaml' })],
    [5, () => ({ body: protobufish(r), note: 'protobuf bytes', ct: 'application/vnd.kubernetes.protobuf' })],
    [5, () => ({ body: Buffer.from(JSON.stringify(valid), 'utf16le'), note: 'utf-16 JSON', ct: JSON_CT })],
  ])();
}

/** Bytes that look like (or are) the Kubernetes protobuf envelope. */
function protobufish(r: Rng): Buffer {
  const rand = (n: number) => Buffer.from(Array.from({ length: n }, () => r.int(0, 255)));
  const magic = Buffer.from([0x6b, 0x38, 0x73, 0x00]);
  const str = (field: number, s: string) => {
    const b = Buffer.from(s);
    return Buffer.concat([Buffer.from([(field << 3) | 2]), varint(b.length), b]);
  };
  const typeMeta = str(1, Buffer.concat([str(1, r.pick(['v1', 'coordination.k8s.io/v1', 'kova.dev/v1alpha1', ''])), str(2, r.pick(['Namespace', 'Secret', 'ConfigMap', 'Lease', 'Instance', '']))]).toString('latin1'));
  return r.weighted<() => Buffer>([
    [3, () => rand(r.int(0, 200))],
    [3, () => Buffer.concat([magic, rand(r.int(0, 200))])],
    [3, () => Buffer.concat([magic, typeMeta, Buffer.from([0x12]), varint(r.pick([0, 5, 1000, 2 ** 31, 2 ** 40])), rand(r.int(0, 60))])],
    [2, () => Buffer.concat([magic, typeMeta, Buffer.from([0x12]), ...nestedMessage(r)])],
    [1, () => Buffer.concat([magic, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])])],
  ])();
}

function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return Buffer.from(out);
}

/** A length-delimited field nested many levels (a decoder that recurses may overflow). */
function nestedMessage(r: Rng): Buffer[] {
  let inner: Buffer = Buffer.from([0x0a, 0x01, 0x61]);
  for (let i = r.pick([10, 1000, 20_000]); i > 0; i--) inner = Buffer.concat([Buffer.from([0x0a]), varint(inner.length), inner]);
  return [varint(inner.length), inner];
}

function pointer(p: Array<string | number>): string {
  return p.map((s) => `/${String(s).replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');
}

function jsonPatch(obj: Rec, r: Rng): unknown {
  const ps = paths(obj);
  const path = () => r.weighted<() => string>([
    [6, () => pointer(r.pick(ps))],
    [2, () => `${pointer(r.pick(ps))}/${r.pick(['-', 'new', '0', '999999', '-1', '~2', '~', ''])}`],
    [2, () => r.pick(['', '/', 'no-slash', '/a/~2', '/spec/-', '/metadata/labels/new', '/metadata/labels/a~1b', '/spec/999999', '/metadata/name', '/metadata/namespace', '/metadata/uid', '/metadata/resourceVersion', '/kind', '/apiVersion', '/status', '//', '/metadata/finalizers/-', '/__proto__/x', '/constructor/prototype/x'])],
  ])();
  const op = (): unknown => {
    const kind = r.pick(['add', 'remove', 'replace', 'move', 'copy', 'test', 'bogus', 'ADD']);
    const o: Rec = { op: kind, path: path() };
    if (['add', 'replace', 'test', 'bogus'].includes(kind) || r.chance(0.1)) o.value = r.chance(0.6) ? randomJson(r) : r.pick(['fuzz', 1, null, {}]);
    if (['move', 'copy'].includes(kind) || r.chance(0.05)) o.from = path();
    if (r.chance(0.05)) delete o.path;
    if (r.chance(0.05)) delete o.op;
    if (r.chance(0.03)) o.path = randomJson(r);
    return o;
  };
  if (r.chance(0.05)) return randomJson(r);
  return Array.from({ length: r.pick([0, 1, 1, 2, 3, 5, 200]) }, op);
}

function strategicPatch(obj: Rec, info: ResourceInfo, r: Rng): unknown {
  const p: Rec = r.chance(0.5) ? (mutate(obj, info, r).obj as Rec) : { metadata: { labels: { app: r.pick(['a', null]) } } };
  const directive = r.pick<Rec>([
    { $patch: r.pick(['delete', 'replace', 'merge', 'bogus', 1]) },
    { metadata: { $patch: r.pick(['delete', 'replace', 'x']) } },
    { metadata: { finalizers: [{ $patch: 'delete' }] } },
    { '$setElementOrder/finalizers': r.pick([['a'], 'x', [1, null]]) },
    { $retainKeys: r.pick([['metadata'], 'x', [null]]) },
    { '$deleteFromPrimitiveList/finalizers': r.pick([['a'], 'x']) },
    { metadata: { ownerReferences: [{ $patch: 'delete', uid: 'x' }, { $patch: 'replace' }] } },
    { data: { [dnsLabel(r)]: r.pick(['YQ==', 'not base64!', null, 1]) } },
    {},
  ]);
  return { ...p, ...directive };
}

function mergePatch(obj: Rec, info: ResourceInfo, r: Rng): unknown {
  return r.weighted<() => unknown>([
    [3, () => ({ metadata: { labels: { app: r.pick(['web', 'db', null, 1, '']) }, annotations: r.chance(0.5) ? { a: 'b' } : null } })],
    [3, () => mutate(obj, info, r).obj],
    [2, () => ({ spec: info.schema ? (validValue(info.schema, r) as Rec).spec ?? null : null })],
    [1, () => ({ metadata: null })],
    [1, () => ({ spec: null, status: null })],
    [1, () => randomJson(r)],
  ])();
}

/** One random request. */
export function genRequest(st: GenState, r: Rng): FuzzRequest {
  const req = r.weighted<(r: Rng) => FuzzRequest>([
    [14, (r) => create(st, r)],
    [10, (r) => getOne(st, r)],
    [10, (r) => list(st, r)],
    [9, (r) => watch(st, r)],
    [9, (r) => update(st, r)],
    [16, (r) => patch(st, r)],
    [4, (r) => del(st, r)],
    [1, (r) => deleteCollection(st, r)],
    [6, (r) => statusSub(st, r)],
    [3, (r) => binding(st, r)],
    [5, (r) => discovery(r)],
    [5, (r) => randomPath(st, r)],
    [5, (r) => raw(st, r)],
  ])(r);
  // A share of requests without, or with a wrong, token: 401 whatever else is wrong.
  if (!req.raw && !/^(GET|HEAD) \/(healthz|livez|readyz|version)/.test(req.template)) {
    const a = r.weighted<FuzzRequest['auth']>([[95, 'token'], [3, 'none'], [2, 'bad']]);
    if (a !== 'token') {
      req.auth = a;
      req.template = `${req.template} (auth=${a})`;
      delete req.watchMs;
    }
  }
  if (!req.raw) {
    const acc = accept(r);
    if (acc && req.headers.Accept === undefined) req.headers.Accept = acc;
    if (r.chance(0.03)) {
      const [h, v] = r.pick<[string, string]>([['Impersonate-User', 'system:admin'], ['X-Forwarded-For', '\u00e9'], ['Content-Encoding', 'gzip'], ['Content-Encoding', 'br'], ['Expect', '100-continue'], ['If-Match', '*'], ['X-Remote-User', 'a'.repeat(4000)], ['Origin', 'null'], ['Transfer-Encoding', 'chunked']]);
      req.headers[h] = v;
    }
  }
  return req;
}

function kind(st: GenState, r: Rng, pred: (i: ResourceInfo) => boolean = () => true): ResourceInfo {
  const ks = st.registry.filter(pred);
  return r.pick(ks.length ? ks : st.registry);
}

function create(st: GenState, r: Rng): FuzzRequest {
  const info = kind(st, r);
  const ns = pickNs(st, r);
  const name = r.chance(0.9) ? objName(info, r) : badName(r);
  const b = objectBody(info, r, safeDecode(name), ns);
  return { template: `POST ${nsTemplate(info)}`, method: 'POST', path: `${collectionPath(info, ns)}${q(writeQuery(r))}`, headers: { 'Content-Type': contentType(r, b.ct) }, body: b.body, auth: 'token', note: b.note };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function itemPath(st: GenState, r: Rng, info: ResourceInfo): { path: string; template: string; name: string; ns: string } {
  const ns = pickNs(st, r);
  const name = r.chance(0.92) ? objName(info, r) : badName(r);
  return { path: `${collectionPath(info, ns)}/${name}`, template: `${nsTemplate(info)}/{name}`, name: safeDecode(name), ns };
}

function getOne(st: GenState, r: Rng): FuzzRequest {
  const info = kind(st, r);
  const it = itemPath(st, r, info);
  const method = r.chance(0.9) ? 'GET' : 'HEAD';
  return { template: `${method} ${it.template}`, method, path: `${it.path}${q([maybe(r, 0.2, () => ['resourceVersion', r.pick(RVS)]), ...commonQuery(r)])}`, headers: {}, auth: 'token', note: '' };
}

function list(st: GenState, r: Rng): FuzzRequest {
  const info = kind(st, r);
  const all = info.namespaced && r.chance(0.3);
  const ns = all ? undefined : pickNs(st, r);
  return { template: `GET ${all ? collectionPath(info) : nsTemplate(info)}`, method: 'GET', path: `${collectionPath(info, ns)}${q(listQuery(st, r, false))}`, headers: {}, auth: 'token', note: '' };
}

function watch(st: GenState, r: Rng): FuzzRequest {
  const info = kind(st, r);
  const all = info.namespaced && r.chance(0.3);
  const ns = all ? undefined : pickNs(st, r);
  if (r.chance(0.05)) {
    // The deprecated /watch/ path prefix.
    const p = `${prefix(info)}/watch${info.namespaced && ns ? `/namespaces/${ns}` : ''}/${info.plural}`;
    return { template: `WATCH ${prefix(info)}/watch/.../${info.plural}`, method: 'GET', path: `${p}${q(listQuery(st, r, false))}`, headers: {}, auth: 'token', watchMs: r.int(50, 1500), note: '' };
  }
  return { template: `WATCH ${all ? collectionPath(info) : nsTemplate(info)}`, method: 'GET', path: `${collectionPath(info, ns)}${q(listQuery(st, r, true))}`, headers: {}, auth: 'token', watchMs: r.int(50, 1500), note: '' };
}

function update(st: GenState, r: Rng): FuzzRequest {
  const info = kind(st, r);
  const it = itemPath(st, r, info);
  const fresh = validObject(info, r, it.name, it.ns);
  const m = r.chance(0.5) ? mutate(fresh, info, r) : undefined;
  const req: FuzzRequest = {
    template: `PUT ${it.template}`,
    method: 'PUT',
    path: `${it.path}${q(writeQuery(r))}`,
    headers: { 'Content-Type': contentType(r, JSON_CT) },
    body: JSON.stringify(m?.obj ?? fresh),
    auth: 'token',
    note: m ? m.what : 'valid',
  };
  if (r.chance(0.85)) {
    // Read-modify-write as clients do: the current object (with its resourceVersion) changed.
    const rr = r.fork();
    req.finish = (current) => {
      if (!current) return;
      let next: Rec = structuredClone(current);
      if (rr.chance(0.5)) {
        next = mutate(next, info, rr).obj;
        req.note = `read-modify-write: ${req.note}`;
      } else {
        const meta = (next.metadata ?? {}) as Rec;
        meta.labels = { ...((meta.labels as Rec) ?? {}), app: rr.pick(['a', 'b']) };
        if (rr.chance(0.3)) meta.resourceVersion = rr.pick(RVS);
        req.note = 'read-modify-write';
      }
      req.body = JSON.stringify(next);
    };
  }
  return req;
}

function patch(st: GenState, r: Rng): FuzzRequest {
  const info = kind(st, r);
  const it = itemPath(st, r, info);
  const obj = validObject(info, r, it.name, it.ns);
  const types = ['json', 'merge', 'apply', ...(info.custom ? [] : ['strategic'])];
  const t = r.chance(0.95) ? r.pick(types) : 'strategic';
  let body: string;
  let ct: string;
  const query = writeQuery(r);
  switch (t) {
    case 'json':
      ct = 'application/json-patch+json';
      body = JSON.stringify(jsonPatch(obj, r));
      break;
    case 'merge':
      ct = 'application/merge-patch+json';
      body = JSON.stringify(mergePatch(obj, info, r));
      break;
    case 'apply':
      ct = 'application/apply-patch+yaml';
      body = yamlish(r.chance(0.6) ? obj : mutate(obj, info, r).obj, r);
      if (r.chance(0.85)) query.push(['fieldManager', r.chance(0.9) ? r.pick(['fuzz', 'fuzz-2', 'kubectl']) : nastyString(r)]);
      if (r.chance(0.4)) query.push(['force', r.pick(['true', 'false', 'x'])]);
      break;
    default:
      ct = 'application/strategic-merge-patch+json';
      body = JSON.stringify(strategicPatch(obj, info, r));
  }
  if (r.chance(0.08)) body = breakText(body, r);
  return { template: `PATCH(${t}) ${it.template}`, method: 'PATCH', path: `${it.path}${q(query)}`, headers: { 'Content-Type': contentType(r, ct) }, body, auth: 'token', note: t };
}

function deleteOptions(r: Rng): string | undefined {
  if (r.chance(0.5)) return undefined;
  const o: Rec = { apiVersion: 'v1', kind: 'DeleteOptions' };
  if (r.chance(0.5)) o.propagationPolicy = r.pick(['Background', 'Foreground', 'Orphan', 'bogus', '', 1]);
  if (r.chance(0.3)) o.gracePeriodSeconds = r.pick([0, 30, -1, 'x', 1e300]);
  if (r.chance(0.3)) o.preconditions = r.pick<Rec>([{ uid: 'x' }, { resourceVersion: '1' }, { uid: 1 }, {}]);
  if (r.chance(0.2)) o.orphanDependents = randomJson(r);
  if (r.chance(0.2)) o.dryRun = r.pick([['All'], ['x'], 'All']);
  return r.chance(0.1) ? breakText(JSON.stringify(o), r) : JSON.stringify(o);
}

function deleteQuery(r: Rng): Array<[string, string] | undefined> {
  return [
    maybe(r, 0.2, () => ['propagationPolicy', r.pick(['Background', 'Foreground', 'Orphan', 'x'])]),
    maybe(r, 0.1, () => ['gracePeriodSeconds', intish(r)]),
    maybe(r, 0.1, () => ['dryRun', r.pick(['All', 'x'])]),
    ...commonQuery(r),
  ];
}

function del(st: GenState, r: Rng): FuzzRequest {
  const info = kind(st, r);
  const it = itemPath(st, r, info);
  if (info.kind === 'Namespace' && !info.group && PROTECTED_NAMESPACES.has(it.name)) it.path = it.path.replace(/[^/]*$/, 'fzn-0');
  const body = deleteOptions(r);
  return { template: `DELETE ${it.template}`, method: 'DELETE', path: `${it.path}${q(deleteQuery(r))}`, headers: body ? { 'Content-Type': contentType(r, JSON_CT) } : {}, body, auth: 'token', note: '' };
}

function deleteCollection(st: GenState, r: Rng): FuzzRequest {
  const info = kind(st, r);
  const ns = pickNs(st, r);
  const isNamespace = info.kind === 'Namespace' && !info.group;
  // Never every namespace: the fuzzer's own must survive (so no random selector for them).
  const query = [...deleteQuery(r), isNamespace ? ['labelSelector', 'fuzz-owned=yes'] as [string, string] : maybe(r, 0.8, () => ['labelSelector', labelSelector(r)] as [string, string]), maybe(r, 0.2, () => ['fieldSelector', r.pick(FIELD_SELECTORS)] as [string, string])];
  const body = deleteOptions(r);
  return { template: `DELETECOLLECTION ${nsTemplate(info)}`, method: 'DELETE', path: `${collectionPath(info, ns)}${q(query)}`, headers: body ? { 'Content-Type': JSON_CT } : {}, body, auth: 'token', note: '' };
}

function statusSub(st: GenState, r: Rng): FuzzRequest {
  const info = r.chance(0.85) ? kind(st, r, (i) => i.statusSubresource) : kind(st, r);
  const it = itemPath(st, r, info);
  const sub = r.chance(0.9) ? 'status' : r.pick(['scale', 'finalize', 'log', 'exec', 'status/x', '..', 'binding']);
  const method = r.pick(['GET', 'PUT', 'PATCH', 'POST', 'DELETE']);
  const obj = validObject(info, r, it.name, it.ns);
  if (info.schema && r.chance(0.8)) obj.status = ((validValue(info.schema, r) as Rec).status ?? {}) as Rec;
  const base: FuzzRequest = { template: `${method} ${it.template}/${sub}`, method, path: `${it.path}/${sub}${q(writeQuery(r))}`, headers: {}, auth: 'token', note: sub };
  if (method === 'PUT' || method === 'POST') {
    base.headers['Content-Type'] = JSON_CT;
    base.body = JSON.stringify(r.chance(0.5) ? obj : mutate(obj, info, r).obj);
    if (method === 'PUT' && r.chance(0.6)) {
      const rr = r.fork();
      base.finish = (current) => {
        if (!current) return;
        const next = structuredClone(current);
        next.status = rr.chance(0.7) ? obj.status : randomJson(rr);
        base.body = JSON.stringify(next);
      };
    }
  } else if (method === 'PATCH') {
    const t = r.pick(['merge', 'json', 'apply']);
    base.template = `PATCH(${t}) ${it.template}/${sub}`;
    base.headers['Content-Type'] = t === 'merge' ? 'application/merge-patch+json' : t === 'json' ? 'application/json-patch+json' : 'application/apply-patch+yaml';
    base.body = t === 'merge' ? JSON.stringify({ status: obj.status ?? randomJson(r) }) : t === 'json' ? JSON.stringify(jsonPatch(obj, r)) : yamlish({ apiVersion: obj.apiVersion, kind: obj.kind, metadata: { name: it.name }, status: obj.status }, r);
    if (t === 'apply') base.path += `${base.path.includes('?') ? '&' : '?'}fieldManager=fuzz-status`;
  }
  return base;
}

function binding(st: GenState, r: Rng): FuzzRequest {
  const info = kind(st, r, (i) => i.group === 'kova.dev' && i.plural === 'instances');
  const it = itemPath(st, r, info);
  const body = r.weighted<() => unknown>([
    [5, () => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'Binding', metadata: { name: it.name }, target: { kind: 'Host', name: r.pick(['sim-0', 'h1', 'absent']) } })],
    [2, () => ({ apiVersion: 'v1', kind: 'Binding', metadata: { name: r.pick(['other', it.name, '']) }, target: { kind: r.pick(['Node', 'Host', '', 1]), name: r.chance(0.5) ? nastyString(r) : randomJson(r) } })],
    [2, () => ({ target: randomJson(r), metadata: randomJson(r) })],
    [1, () => randomJson(r)],
  ])();
  const text = r.chance(0.1) ? breakText(JSON.stringify(body), r) : JSON.stringify(body);
  const method = r.chance(0.9) ? 'POST' : r.pick(['GET', 'PUT', 'PATCH', 'DELETE']);
  return { template: `${method} ${it.template}/binding`, method, path: `${it.path}/binding${q(writeQuery(r))}`, headers: { 'Content-Type': contentType(r, JSON_CT) }, body: text, auth: 'token', note: 'binding' };
}

function discovery(r: Rng): FuzzRequest {
  const path = r.pick([
    '/api', '/apis', '/api/v1', '/apis/kova.dev', '/apis/kova.dev/v1alpha1', '/apis/coordination.k8s.io/v1', '/apis/events.k8s.io/v1', '/openapi/v2', '/openapi/v3',
    '/openapi/v3/apis/kova.dev/v1alpha1', '/openapi/v3/api/v1', '/openapi/v3/apis/coordination.k8s.io/v1', '/openapi/v3/apis/x/y', '/openapi/v3/../v3', '/openapi/v3/apis/kova.dev/v1alpha1?hash=abc',
    '/version', '/healthz', '/livez', '/readyz', '/readyz?verbose', '/apis/kova.dev/v2', '/api/v2', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews',
  ]);
  const method = r.chance(0.85) ? 'GET' : r.pick(['POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS']);
  const headers: Record<string, string> = {};
  let body: string | undefined;
  if (method !== 'GET' && method !== 'HEAD') {
    headers['Content-Type'] = contentType(r, JSON_CT);
    body = r.chance(0.7) ? JSON.stringify(r.chance(0.5) ? { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectAccessReview', spec: { resourceAttributes: { verb: 'get', resource: 'instances', group: 'kova.dev' } } } : randomJson(r)) : breakText('{}', r);
  }
  return { template: `${method} ${path.split('?')[0]}`, method, path, headers, body, auth: 'token', note: '' };
}

function randomPath(st: GenState, r: Rng): FuzzRequest {
  const info = kind(st, r);
  const base = collectionPath(info, r.pick(st.namespaces));
  const variant = r.pick([
    ['double slash', `/${base}`],
    ['trailing slashes', `${base}///`],
    ['dot segments', `${base}/${r.pick(['..', '../..', '../../..'])}`],
    ['encoded dots', `${base}/${r.pick(['%2e%2e', '%2e%2e/%2e%2e', '%2E%2E/%2e%2e/%2e%2e', '.%2e/..'])}`],
    ['percent garbage', `${base}/%zz`],
    ['encoded slash', `${base}/a%2Fb`],
    ['encoded NUL', `${base}/a%00b`],
    ['too many segments', `${base}/fz-1/status/x/y/z`],
    ['unknown group', '/apis/nope.example/v1/things'],
    ['unknown resource', `${prefix(info)}/nothings`],
    ['bare namespaces', `${prefix(info)}/namespaces`],
    ['namespace without resource', `${prefix(info)}/namespaces/default`],
    ['very long', `${base}/${'a'.repeat(r.pick([300, 5000, 15_000]))}`],
    ['many segments', `${prefix(info)}${'/x'.repeat(2000)}`],
    ['unicode escaped', `${base}/${enc('é😀\u202e')}`],
    ['query only', `${base}?${'&'.repeat(100)}`],
    ['repeated params', `${base}?limit=1&limit=2&labelSelector=a&labelSelector=b&watch=false&watch=true&timeoutSeconds=1`],
    ['bad query encoding', `${base}?labelSelector=%zz&limit=%`],
    ['huge query', `${base}?labelSelector=${'a'.repeat(r.pick([1000, 8000]))}`],
    ['root', '/'],
    ['unknown top', `/${dnsLabel(r)}`],
    ['api prefix only', '/apis/kova.dev/v1alpha1/namespaces/default/instances/fz-1/status/'],
    ['uppercase', base.toUpperCase()],
    ['fragment-ish', `${base}%23frag`],
  ] as Array<[string, string]>);
  const method = r.chance(0.7) ? 'GET' : r.pick(['POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'TRACE', 'PROPFIND']);
  const headers: Record<string, string> = {};
  let body: string | undefined;
  if (!['GET', 'HEAD', 'OPTIONS', 'TRACE'].includes(method)) {
    headers['Content-Type'] = method === 'PATCH' ? 'application/merge-patch+json' : JSON_CT;
    body = JSON.stringify(randomJson(r));
  }
  // kube-apiserver does not resolve `..` (or `%2e%2e`) in a request path into another resource.
  const noSuccess = variant[0] === 'dot segments' || variant[0] === 'encoded dots';
  return { template: `${method} random path: ${variant[0]}`, method, path: variant[1], headers, body, auth: 'token', note: variant[0], noSuccess };
}

/** Malformed HTTP/1.1 over a raw TLS socket. */
function raw(st: GenState, r: Rng): FuzzRequest {
  const info = kind(st, r);
  const path = collectionPath(info, r.pick(st.namespaces));
  const body = JSON.stringify(validObject(info, r, objName(info, r), r.pick(st.namespaces)));
  const H = (s: string) => s.replace(/\n/g, '\r\n');
  const auth = 'Authorization: Bearer {token}';
  const cases: Array<[string, () => string | Buffer]> = [
    ['content-length larger than body', () => H(`POST ${path} HTTP/1.1\nHost: x\n${auth}\nContent-Type: application/json\nContent-Length: ${body.length + r.int(1, 1000)}\n\n`) + body],
    ['content-length smaller than body', () => H(`POST ${path} HTTP/1.1\nHost: x\n${auth}\nContent-Type: application/json\nContent-Length: ${r.int(0, body.length - 1)}\nConnection: close\n\n`) + body],
    ['negative content-length', () => H(`POST ${path} HTTP/1.1\nHost: x\n${auth}\nContent-Length: -5\n\n`) + body],
    ['two content-lengths', () => H(`POST ${path} HTTP/1.1\nHost: x\n${auth}\nContent-Length: 2\nContent-Length: 3\n\n{}`)],
    ['content-length and chunked', () => H(`POST ${path} HTTP/1.1\nHost: x\n${auth}\nContent-Length: 2\nTransfer-Encoding: chunked\n\n2\n{}\n0\n\n`)],
    ['bad chunk size', () => H(`POST ${path} HTTP/1.1\nHost: x\n${auth}\nContent-Type: application/json\nTransfer-Encoding: chunked\n\nzz\n{}\n0\n\n`)],
    ['truncated chunked', () => H(`POST ${path} HTTP/1.1\nHost: x\n${auth}\nContent-Type: application/json\nTransfer-Encoding: chunked\n\n${(body.length + 10).toString(16)}\n`) + body],
    ['huge declared chunk', () => H(`POST ${path} HTTP/1.1\nHost: x\n${auth}\nContent-Type: application/json\nTransfer-Encoding: chunked\n\nffffffffff\n{}`)],
    ['garbage request line', () => Buffer.from(Array.from({ length: r.int(1, 300) }, () => r.int(0, 255)))],
    ['no HTTP version', () => H(`GET ${path}\n\n`)],
    ['HTTP/0.9', () => `GET ${path}\r\n`],
    ['HTTP/2 preface over h1', () => 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'],
    ['header without colon', () => H(`GET ${path} HTTP/1.1\nHost: x\n${auth}\nbroken header\n\n`)],
    ['huge header', () => H(`GET ${path} HTTP/1.1\nHost: x\n${auth}\nX-Big: ${'a'.repeat(r.pick([9000, 20_000, 70_000]))}\n\n`)],
    ['many headers', () => H(`GET ${path} HTTP/1.1\nHost: x\n${auth}\n${Array.from({ length: 3000 }, (_, i) => `X-${i}: v`).join('\n')}\n\n`)],
    ['raw path //[', () => H(`GET //[ HTTP/1.1\nHost: x\n${auth}\n\n`)],
    ['raw path %zz', () => H(`GET ${path}/%zz HTTP/1.1\nHost: x\n${auth}\n\n`)],
    ['raw path with spaces', () => H(`GET ${path}/a b HTTP/1.1\nHost: x\n${auth}\n\n`)],
    ['raw unicode path', () => Buffer.concat([Buffer.from(`GET ${path}/`), Buffer.from('é😀'), Buffer.from(H(` HTTP/1.1\nHost: x\n${auth}\n\n`))])],
    ['absolute-form URL', () => H(`GET https://evil.example${path} HTTP/1.1\nHost: x\n${auth}\n\n`)],
    ['asterisk path', () => H(`OPTIONS * HTTP/1.1\nHost: x\n${auth}\n\n`)],
    ['no host header', () => H(`GET ${path} HTTP/1.1\n${auth}\n\n`)],
    ['bad host header', () => H(`GET ${path} HTTP/1.1\nHost: [::1\n${auth}\n\n`)],
    ['pipelined requests', () => H(`GET ${path} HTTP/1.1\nHost: x\n${auth}\n\nGET ${path}?limit=1 HTTP/1.1\nHost: x\n${auth}\n\nGET /%zz HTTP/1.1\nHost: x\n${auth}\nConnection: close\n\n`)],
    ['gzip body that is not gzip', () => H(`POST ${path} HTTP/1.1\nHost: x\n${auth}\nContent-Type: application/json\nContent-Encoding: gzip\nContent-Length: ${body.length}\nConnection: close\n\n`) + body],
    ['NUL in header', () => H(`GET ${path} HTTP/1.1\nHost: x\n${auth}\nX-A: a\u0000b\n\n`)],
    ['method lowercase', () => H(`get ${path} HTTP/1.1\nHost: x\n${auth}\nConnection: close\n\n`)],
    ['headers never finish', () => H(`GET ${path} HTTP/1.1\nHost: x\n${auth}\n`)],
    ['watch then half-close', () => H(`GET ${path}?watch=true HTTP/1.1\nHost: x\n${auth}\n\n`)],
  ];
  const [what, make] = r.pick(cases);
  const bytes = make();
  return { template: `RAW ${what}`, method: 'RAW', path, headers: {}, raw: Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes, 'latin1'), auth: 'token', note: what };
}
