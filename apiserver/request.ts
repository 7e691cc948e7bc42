// Request plumbing: body reading (JSON or apply YAML), URL → resource routing, query options.
import type { IncomingMessage } from 'node:http';
import YAML from 'yaml';
import type { Registry } from '../api/registry.js';
import type { ResourceInfo } from '../api/types.js';
import { decodeK8sProtobuf, isK8sProtobufContentType, ProtobufDecodeError, ProtobufUnsupportedError } from './protobuf.js';
import { badRequest, ApiError } from './status.js';
import type { ListOptions } from './resource-store.js';

/** A request target's path and query, as the handler reads them. */
export interface RequestTarget {
  pathname: string;
  searchParams: URLSearchParams;
}

/** Path characters URL parsing leaves exactly as they are (no percent-encoding, no backslash). */
const PLAIN_PATH = /^\/[A-Za-z0-9\-._~/:@!$&'()*+,;=]*$/;
/** A `.` or `..` segment in a path without percent-escapes. */
const DOT_SEGMENT = /\/\.\.?(?:\/|$)/;
/** What URL parsing would strip or treat apart in a query: controls, spaces, a fragment. */
const NOT_PLAIN_QUERY = /[\x00-\x20#]/;

/**
 * The request target's path and query. Origin form (`/path?query`) is resolved against a fixed
 * base, so `//x` stays a path; absolute form is accepted as HTTP/1.1 requires. Anything else, or
 * a target URL parsing rejects, is a 400, never an exception outside the handler's try. A plain
 * origin-form target (what every client sends) is split directly, to the same result URL
 * parsing gives (request.test.ts compares them); the rest goes through URL.
 */
export function requestTarget(target: string | undefined): RequestTarget {
  const t = target ?? '/';
  const q = t.indexOf('?');
  const rawPath = q < 0 ? t : t.slice(0, q);
  if (PLAIN_PATH.test(rawPath) && !NOT_PLAIN_QUERY.test(t)) {
    if (DOT_SEGMENT.test(rawPath)) refuseDotSegments(rawPath);
    return { pathname: rawPath, searchParams: new URLSearchParams(q < 0 ? '' : t.slice(q + 1)) };
  }
  // URL parsing resolves `.` and `..` segments (also as %2e), which would turn
  // `events/..` into the namespace itself: like kube-apiserver, such a name is refused.
  const pathPart = t.split(/[?#]/, 1)[0]!;
  if (pathPart.includes('.') || /%2e/i.test(pathPart)) refuseDotSegments(pathPart);
  try {
    if (t.startsWith('/')) return new URL(`http://kova${t}`);
    if (/^https?:\/\//i.test(t)) return new URL(t);
  } catch {
    // fall through
  }
  throw badRequest(`invalid request target ${JSON.stringify(t.slice(0, 200))}`);
}

function refuseDotSegments(path: string): void {
  for (const seg of path.split('/')) {
    const dots = seg.replace(/%2e/gi, '.');
    if (dots === '.' || dots === '..') throw badRequest(`invalid path segment ${JSON.stringify(seg)}: may not be '${dots}'`);
  }
}

/** kube-apiserver's default request body limit. */
export const MAX_BODY_BYTES = 3 * 1024 * 1024;

/** How long a request body may take to arrive (kube-apiserver's default request timeout). */
export const BODY_TIMEOUT_MS = 60_000;

export async function readBody(req: IncomingMessage, timeoutMs = BODY_TIMEOUT_MS): Promise<string> {
  return (await readBodyBytes(req, timeoutMs)).toString('utf8');
}

/**
 * Reads the whole body: at once when it has all arrived, else by events (not an async
 * iterator: this runs on every write request).
 * Fails with 413 past MAX_BODY_BYTES, 408 when the body has not ended within `timeoutMs`,
 * and 400 when the client goes away mid-body: the handler never waits forever.
 */
export function readBodyBytes(req: IncomingMessage, timeoutMs = BODY_TIMEOUT_MS): Buffer | Promise<Buffer> {
  // Usually the whole body has arrived and waits in the stream's buffer: take it at once, with
  // no listeners, timer, flowing mode or promise (the server drains the stream's end).
  if (req.complete && req.readableFlowing === null && !req.destroyed) {
    if (req.readableLength > MAX_BODY_BYTES) throw new ApiError(413, 'RequestEntityTooLarge', `the request body is larger than ${MAX_BODY_BYTES} bytes`);
    const body = req.readableLength ? (req.read() as Buffer | null) : null;
    return body ?? Buffer.alloc(0);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const fail = (e: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(e);
    };
    const timer = setTimeout(() => {
      fail(new ApiError(408, 'Timeout', `the request body did not arrive within ${Math.round(timeoutMs / 1000)}s`));
    }, timeoutMs);
    req.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        // The rest is drained and dropped, so the 413 still reaches the client.
        fail(new ApiError(413, 'RequestEntityTooLarge', `the request body is larger than ${MAX_BODY_BYTES} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    });
    req.on('error', fail);
    // 'close' also follows every complete request: build the error only when it means something.
    req.on('close', () => done || fail(badRequest('the connection closed before the request body was complete')));
  });
}

/**
 * Nesting limit of a decoded request body. kube-apiserver's JSON decoder allows 10000 (Go
 * stacks grow); V8's structuredClone and JSON.stringify overflow node's default stack near
 * 3000, and the object rules recurse too, so kova allows 1000: far beyond any real object.
 */
export const MAX_NESTING_DEPTH = 1_000;

const nestingError = () => badRequest(`the request body is nested too deeply: more than ${MAX_NESTING_DEPTH} levels of objects and arrays`);

/**
 * Throws 400 when `value` nests objects/arrays deeper than MAX_NESTING_DEPTH. Iterative (an
 * explicit stack), so a hostile body cannot overflow the call stack of the check itself.
 */
export function checkNestingDepth(value: unknown): void {
  if (value === null || typeof value !== 'object') return;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length) {
    const [v, depth] = stack.pop()!;
    if (depth > MAX_NESTING_DEPTH) throw nestingError();
    const children = Array.isArray(v) ? v : Object.values(v as object);
    for (const c of children) if (c !== null && typeof c === 'object') stack.push([c, depth + 1]);
  }
}

/** Depth of `[`/`{` nesting in JSON text (strings skipped), stopping once past `max`. */
function jsonNestingExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // backslash: skip the escaped char
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 || c === 91) {
      if (++depth > max) return true;
    } else if (c === 125 || c === 93) depth--;
  }
  return false;
}

/**
 * Decodes a create/update body by its Content-Type: JSON, YAML, or Kubernetes protobuf
 * (which kubectl's typed generators such as `kubectl create namespace` send).
 */
export function parseObjectBody(contentType: string | undefined, body: Buffer): unknown {
  const type = (contentType ?? 'application/json').split(';')[0].trim().toLowerCase();
  if (isK8sProtobufContentType(type)) {
    try {
      const obj = decodeK8sProtobuf(body).object;
      if (body.length > MAX_NESTING_DEPTH) checkNestingDepth(obj);
      return obj;
    } catch (e) {
      if (e instanceof ApiError) throw e;
      if (e instanceof ProtobufUnsupportedError) throw new ApiError(415, 'UnsupportedMediaType', e.message);
      if (e instanceof ProtobufDecodeError) throw badRequest(`the request body is not valid protobuf: ${e.message}`);
      throw e;
    }
  }
  if (type === 'application/yaml') return parseYaml(body.toString('utf8'));
  if (type === 'application/json' || type === '') return parseJson(body.toString('utf8'));
  throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf`);
}

export function parseJson(text: string): unknown {
  // Valid JSON nested d deep is at least 2d characters long: most bodies skip the scan.
  if (text.length > 2 * MAX_NESTING_DEPTH && jsonNestingExceeds(text, MAX_NESTING_DEPTH)) throw nestingError();
  try {
    return JSON.parse(text);
  } catch (e) {
    throw badRequest(`the request body is not valid JSON: ${(e as Error).message}`);
  }
}

export function parseYaml(text: string): unknown {
  let out: unknown;
  try {
    out = YAML.parse(text);
  } catch (e) {
    // The YAML parser recurses: a deeply nested flow collection can exhaust the stack.
    if (e instanceof RangeError || /Maximum call stack size exceeded/.test((e as Error).message)) throw nestingError();
    throw badRequest(`the request body is not valid YAML: ${(e as Error).message}`);
  }
  if (text.length > MAX_NESTING_DEPTH) checkNestingDepth(out);
  return out;
}

export interface ResourceRoute {
  info: ResourceInfo;
  namespace?: string;
  name?: string;
  subresource?: string;
}

/**
 * Resolves `/api/v1/...` or `/apis/<g>/<v>/...` to a resource. Returns undefined when the
 * group-version itself is unknown; throws 404 when the path inside it names nothing.
 */
export function routeResource(registry: Registry, segs: string[]): ResourceRoute | 'groupVersion' | undefined {
  let group: string;
  let version: string;
  let rest: string[];
  if (segs[0] === 'api' && segs[1] === 'v1') {
    group = '';
    version = 'v1';
    rest = segs.slice(2);
  } else if (segs[0] === 'apis' && segs.length >= 3) {
    group = segs[1];
    version = segs[2];
    rest = segs.slice(3);
  } else {
    return undefined;
  }
  if (!rest.length) return 'groupVersion';
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    const inner = registry.lookup(group, version, rest[2]);
    if (inner?.namespaced) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
  }
  if (rest.length > 3) return undefined;
  const info = registry.lookup(group, version, rest[0]);
  if (!info) return undefined;
  return { info, namespace, name: rest[1] === undefined ? undefined : decodeName(rest[1]), subresource: rest[2] };
}

/**
 * A name segment as the client meant it: clients may percent-encode (KovaClient sends
 * `kova%3Areader` for the ClusterRole kova:reader), as kube-apiserver decodes paths. A segment
 * that does not decode, or decodes to something with a `/`, is kept as sent (it names nothing).
 */
function decodeName(seg: string): string {
  if (!seg.includes('%')) return seg;
  try {
    const d = decodeURIComponent(seg);
    return d.includes('/') ? seg : d;
  } catch {
    return seg;
  }
}

/** Query options common to writes, validated like kube-apiserver's. */
export function writeQuery(q: URLSearchParams) {
  const dryRunValues = q.getAll('dryRun');
  for (const v of dryRunValues) if (v !== 'All') throw badRequest(`Invalid dryRun value: ${JSON.stringify(v)}: supported values: "All"`);
  const fv = q.get('fieldValidation') ?? undefined;
  if (fv && !['Strict', 'Warn', 'Ignore'].includes(fv)) {
    throw badRequest(`invalid fieldValidation directive: ${fv}: supported values: "Ignore", "Warn", "Strict"`);
  }
  const force = q.get('force');
  return {
    dryRun: dryRunValues.length > 0,
    fieldManager: q.get('fieldManager') ?? undefined,
    fieldValidation: fv as 'Strict' | 'Warn' | 'Ignore' | undefined,
    force: force === 'true' || force === '1',
  };
}

export function intParam(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name);
  if (v === null || v === '') return undefined;
  const n = /^\d{1,15}$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n)) throw badRequest(`invalid ${name}: ${JSON.stringify(v)} must be a non-negative integer`);
  return n;
}

export function boolParam(q: URLSearchParams, name: string): boolean {
  const v = q.get(name);
  return v === 'true' || v === '1';
}

function jsonTypeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v === 'number' ? (Number.isInteger(v) ? 'integer' : 'number') : typeof v;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function decodeError(field: string, want: string, got: unknown): ApiError {
  return badRequest(`the request body could not be decoded: ${field}: expected ${want}, got ${jsonTypeOf(got)}`);
}

const META_STRINGS = ['name', 'generateName', 'namespace', 'uid', 'resourceVersion', 'creationTimestamp', 'deletionTimestamp', 'selfLink'];
const META_INTEGERS = ['generation', 'deletionGracePeriodSeconds'];

/**
 * What kube-apiserver's decoder rejects before any object rule runs (ObjectMeta is typed even
 * for custom resources): a body that is not an object, and type meta or metadata fields of
 * the wrong JSON type. A 400 naming the field, instead of a TypeError deeper in.
 */
export function checkObjectBody(body: unknown): void {
  if (!isPlainObject(body)) throw decodeError('the body', 'a JSON object', body);
  for (const f of ['apiVersion', 'kind']) if (body[f] !== undefined && typeof body[f] !== 'string') throw decodeError(f, 'string', body[f]);
  const m = body.metadata;
  if (m === undefined || m === null) return;
  if (!isPlainObject(m)) throw decodeError('metadata', 'object', m);
  for (const f of META_STRINGS) if (m[f] != null && typeof m[f] !== 'string') throw decodeError(`metadata.${f}`, 'string', m[f]);
  for (const f of META_INTEGERS) if (m[f] != null && !Number.isInteger(m[f])) throw decodeError(`metadata.${f}`, 'integer', m[f]);
  for (const f of ['labels', 'annotations']) {
    const v = m[f];
    if (v == null) continue;
    if (!isPlainObject(v)) throw decodeError(`metadata.${f}`, 'object', v);
    for (const [k, x] of Object.entries(v)) if (typeof x !== 'string') throw decodeError(`metadata.${f}[${k}]`, 'string', x);
  }
  if (m.finalizers != null) {
    if (!Array.isArray(m.finalizers)) throw decodeError('metadata.finalizers', 'array', m.finalizers);
    m.finalizers.forEach((x, i) => {
      if (typeof x !== 'string') throw decodeError(`metadata.finalizers[${i}]`, 'string', x);
    });
  }
  for (const f of ['ownerReferences', 'managedFields']) {
    const v = m[f];
    if (v == null) continue;
    if (!Array.isArray(v)) throw decodeError(`metadata.${f}`, 'array', v);
    v.forEach((x, i) => {
      if (!isPlainObject(x)) throw decodeError(`metadata.${f}[${i}]`, 'object', x);
    });
  }
}

/** Query parameters of a list or watch, checked like kube-apiserver's ListOptions. */
export interface ListParams extends ListOptions {
  timeoutSeconds?: number;
}

/** An etcd revision as a resourceVersion: digits only (kube's strconv.ParseUint), within 2^53. */
export function parseResourceVersion(v: string, field = 'resourceVersion'): number {
  const n = /^\d{1,16}$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n)) {
    throw badRequest(`${field}: Invalid value: ${JSON.stringify(v)}: must be an unsigned integer (a resourceVersion returned by this server)`);
  }
  return n;
}

function listOptionsInvalid(causes: Array<{ field: string; message: string; reason: string }>): ApiError {
  const parts = causes.map((c) => `${c.field}: ${c.message}`);
  return new ApiError(422, 'Invalid', `ListOptions.meta.k8s.io "" is invalid: ${parts.length === 1 ? parts[0] : `[${parts.join(', ')}]`}`, {
    group: 'meta.k8s.io', kind: 'ListOptions', causes,
  });
}

/**
 * Decodes and validates list/watch query parameters before anything is read or streamed:
 * malformed numbers are 400 (a decode error), inconsistent options 422 Invalid ListOptions,
 * with kube-apiserver's messages.
 */
export function listParams(q: URLSearchParams, watch: boolean): ListParams {
  const p: ListParams = {
    labelSelector: q.get('labelSelector') ?? undefined,
    fieldSelector: q.get('fieldSelector') ?? undefined,
    limit: intParam(q, 'limit'),
    continue: q.get('continue') || undefined,
    resourceVersion: q.get('resourceVersion') || undefined,
    resourceVersionMatch: q.get('resourceVersionMatch') || undefined,
    timeoutSeconds: intParam(q, 'timeoutSeconds'),
  };
  if (p.resourceVersion !== undefined) parseResourceVersion(p.resourceVersion);
  const causes: Array<{ field: string; message: string; reason: string }> = [];
  const match = p.resourceVersionMatch;
  if (match !== undefined) {
    if (watch) {
      if (match !== 'NotOlderThan') causes.push({ field: 'resourceVersionMatch', reason: 'FieldValueNotSupported', message: `Unsupported value: ${JSON.stringify(match)}: supported values: "NotOlderThan"` });
    } else {
      if (p.resourceVersion === undefined) causes.push({ field: 'resourceVersionMatch', reason: 'FieldValueForbidden', message: 'Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided' });
      if (p.continue !== undefined) causes.push({ field: 'resourceVersionMatch', reason: 'FieldValueForbidden', message: 'Forbidden: resourceVersionMatch is forbidden when continue is provided' });
      if (match !== 'Exact' && match !== 'NotOlderThan') causes.push({ field: 'resourceVersionMatch', reason: 'FieldValueNotSupported', message: `Unsupported value: ${JSON.stringify(match)}: supported values: "Exact", "NotOlderThan", ""` });
      if (match === 'Exact' && p.resourceVersion === '0') causes.push({ field: 'resourceVersionMatch', reason: 'FieldValueForbidden', message: 'Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0"' });
    }
  }
  if (causes.length) throw listOptionsInvalid(causes);
  // kube-apiserver's storage rejects both (a continue token carries its own revision).
  if (!watch && p.continue !== undefined && p.resourceVersion !== undefined && p.resourceVersion !== '0') {
    throw badRequest('specifying resource version is not allowed when using continue');
  }
  return p;
}
