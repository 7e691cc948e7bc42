// FakeClient: an in-memory ApiClient for reconciler unit tests, without etcd or an API server.
// It keeps the API's contract, checked against the real server by fake.conformance.test.ts:
// one global resourceVersion counter (a write gets the next one, a no-op write keeps it),
// uid/creationTimestamp/generation (generation moves on spec changes only), 409 Conflict on a
// stale resourceVersion, 409 AlreadyExists, 404 as the same StatusError KovaClient throws, the
// status subresource (status writes change only status, main writes never status), finalizers
// and deletionTimestamp, merge and JSON patch, label and field selectors, the Instance binding
// subresource, and watches that replay from a resourceVersion in order (410 once compacted).
//
// Not modelled (use the real server for these): CRD schema validation and defaulting, managed
// fields and server-side apply, ownerReference garbage collection, propagationPolicy (deletes
// are background without GC), namespace termination (deleting a Namespace removes just it),
// list paging (every list is one page), bookmarks and watch timeouts, field-selector field
// validation (any dotted path is accepted), authentication.
//
// Test hooks: failNext() makes the next calls of a verb fail; calls records every request;
// compact() expires old resourceVersions; closeWatches() ends every watch as a server restart
// would; settle() waits until every watch event has been delivered.
import { randomBytes, randomUUID } from 'node:crypto';
import { planBinding } from '../api/binding.js';
import { FLAVORS, HOSTS, INSTANCES } from '../api/kinds/index.js';
import type { Flavor, Host, Instance } from '../api/kinds/index.js';
import type { KObject } from '../api/types.js';
import { nowRFC3339, qualifiedKind, qualifiedResource, stampCreated } from '../api/types.js';
import { StatusError, apiVersionOf, editFinalizers, NAMESPACES, readModifyWrite, retryConflicts, withFinalizer, withoutFinalizer } from './client.js';
import type {
  ApiClient, BindResources, DeleteOptions, JsonPatchOp, Kind, ListOptions, ListResult, NewObject, WatchEventType, WatchHandle, WatchOptions, WriteOptions,
} from './client.js';

/** A request kind failNext() can target; composite verbs (updateStatus, …) fail through their parts. */
export type FakeVerb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'updateStatus' | 'patch' | 'patchStatus' | 'delete' | 'bind';

export interface FakeCall {
  verb: FakeVerb;
  /** The resource's plural. */
  resource: string;
  namespace?: string;
  name?: string;
}

export interface FakeClientOptions {
  /** Namespaces that exist from the start (default: the ones `kova up` makes). */
  namespaces?: string[];
  /** Conflict retries of the composite verbs (default 10, as KovaClient). */
  conflictRetries?: number;
}

interface Failure {
  verb: FakeVerb;
  times: number;
  kind?: Kind;
  error: () => unknown;
}

interface LogEvent {
  rv: number;
  res: string;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: KObject;
  prev?: KObject;
}

interface Watcher {
  res: string;
  namespace?: string;
  match: (o: KObject) => boolean;
  queue: Array<[WatchEventType, KObject]>;
  scheduled: boolean;
  ending: boolean;
  stopped: boolean;
  onEvent: (type: WatchEventType, obj: KObject) => void;
  done: (err: unknown) => void;
}

const SYSTEM_NAMESPACES = ['default', 'kube-system', 'kova-system'];
const clone = <T>(v: T): T => structuredClone(v);

function statusError(code: number, reason: string, message: string, details?: Record<string, unknown>): StatusError {
  const body: Record<string, unknown> = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
  if (details) body.details = details;
  return new StatusError(code, reason, message, body);
}

const notFound = (k: Pick<Kind, 'group' | 'plural'>, name: string) =>
  statusError(404, 'NotFound', `${qualifiedResource(k)} "${name}" not found`, { name, group: k.group, kind: k.plural });
const alreadyExists = (k: Kind, name: string) =>
  statusError(409, 'AlreadyExists', `${qualifiedResource(k)} "${name}" already exists`, { name, group: k.group, kind: k.plural });
const conflict = (k: Kind, name: string, why = 'the object has been modified; please apply your changes to the latest version and try again') =>
  statusError(409, 'Conflict', `Operation cannot be fulfilled on ${qualifiedResource(k)} "${name}": ${why}`, { name, group: k.group, kind: k.plural });
const invalid = (k: Kind, name: string, field: string, reason: string, message: string) =>
  statusError(422, 'Invalid', `${qualifiedKind(k)} "${name}" is invalid: ${field}: ${message}`, { name, group: k.group, kind: k.kind, causes: [{ reason, message, field }] });
const badRequest = (message: string) => statusError(400, 'BadRequest', message);

/** Custom kinds (and Namespaces) have a status subresource; Leases and Events do not. */
const hasStatusSubresource = (k: Kind) => k.group === 'kova.dev' || k.kind === 'Namespace';

function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === (b as unknown[]).length && a.every((x, i) => jsonEqual(x, (b as unknown[])[i]));
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const ak = Object.keys(ao).filter((k) => ao[k] !== undefined);
  const bk = Object.keys(bo).filter((k) => bo[k] !== undefined);
  return ak.length === bk.length && ak.every((k) => jsonEqual(ao[k], bo[k]));
}

const isPlain = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** RFC 7386: objects merge recursively, null deletes, anything else replaces. */
export function mergePatchOf(target: unknown, patch: unknown): unknown {
  if (!isPlain(patch)) return clone(patch);
  const out: Record<string, unknown> = isPlain(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) continue;
    if (v === null) delete out[k];
    else out[k] = mergePatchOf(out[k], v);
  }
  return out;
}

/** RFC 6902 add/replace/remove/test (what KovaClient's callers send). */
function jsonPatchOf(target: KObject, ops: JsonPatchOp[]): KObject {
  const doc = clone(target) as unknown as Record<string, unknown>;
  ops.forEach((op, i) => {
    const fail = (what: string) => statusError(422, 'Invalid', `json patch operation ${i} (${op.op} ${op.path}) failed: ${what}`);
    const tokens = op.path.split('/').slice(1).map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
    if (op.path && op.path[0] !== '/') throw badRequest(`invalid JSON pointer "${op.path}"`);
    const last = tokens.pop();
    let parent: unknown = doc;
    for (const t of tokens) {
      parent = Array.isArray(parent) ? parent[Number(t)] : isPlain(parent) ? parent[t] : undefined;
      if (parent === undefined) throw fail(`missing path ${op.path}`);
    }
    if (last === undefined) throw fail('cannot operate on the whole document');
    const container = parent as Record<string, unknown> & unknown[];
    const idx = Array.isArray(container) ? (last === '-' ? container.length : Number(last)) : undefined;
    const has = idx !== undefined ? idx < container.length : Object.prototype.hasOwnProperty.call(container, last);
    const current = idx !== undefined ? container[idx] : container[last];
    switch (op.op) {
      case 'test':
        if (!jsonEqual(current, op.value)) throw fail(`testing value ${op.path} failed: test failed`);
        break;
      case 'remove':
        if (!has) throw fail(`missing path ${op.path}`);
        if (idx !== undefined) container.splice(idx, 1);
        else delete container[last];
        break;
      case 'replace':
        if (!has) throw fail(`missing path ${op.path}`);
        if (idx !== undefined) container[idx] = clone(op.value);
        else container[last] = clone(op.value);
        break;
      case 'add':
        if (idx !== undefined) container.splice(idx, 0, clone(op.value));
        else container[last] = clone(op.value);
        break;
    }
  });
  return doc as unknown as KObject;
}

type LabelReq = { key: string; op: 'in' | 'notin' | 'exists' | '!'; values: string[] };

/** Label selector grammar of apimachinery: k=v, k==v, k!=v, k in (a,b), k notin (a,b), k, !k. */
function parseLabelSelector(sel: string | undefined): LabelReq[] {
  if (!sel?.trim()) return [];
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of sel) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  return parts.map((raw) => {
    const p = raw.trim();
    let m: RegExpMatchArray | null;
    if ((m = p.match(/^!\s*([\w./-]+)$/))) return { key: m[1]!, op: '!', values: [] };
    if ((m = p.match(/^([\w./-]+)\s+(in|notin)\s*\(([^)]*)\)$/))) {
      return { key: m[1]!, op: m[2] as 'in' | 'notin', values: m[3]!.split(',').map((v) => v.trim()) };
    }
    if ((m = p.match(/^([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)$/))) return { key: m[1]!, op: m[2] === '!=' ? 'notin' : 'in', values: [m[3]!] };
    if ((m = p.match(/^([\w./-]+)$/))) return { key: m[1]!, op: 'exists', values: [] };
    throw badRequest(`unable to parse requirement: ${JSON.stringify(p)}`);
  });
}

function labelsMatch(reqs: LabelReq[], labels: Record<string, string> | undefined): boolean {
  const ls = labels ?? {};
  return reqs.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(ls, r.key);
    switch (r.op) {
      case 'in':
        return has && r.values.includes(ls[r.key]!);
      case 'notin':
        return !has || !r.values.includes(ls[r.key]!);
      case 'exists':
        return has;
      case '!':
        return !has;
    }
  });
}

type FieldReq = { path: string[]; value: string; negate: boolean };

function parseFieldSelector(sel: string | undefined): FieldReq[] {
  if (!sel?.trim()) return [];
  return sel.split(',').map((raw) => {
    const m = raw.trim().match(/^([\w.]+)\s*(==|=|!=)\s*(.*)$/);
    if (!m) throw badRequest(`invalid selector: '${sel}'; can't understand '${raw}'`);
    return { path: m[1]!.split('.'), value: m[3]!, negate: m[2] === '!=' };
  });
}

/** Field values compare as strings; missing or null is "" (as the real server). */
function fieldsMatch(reqs: FieldReq[], obj: KObject): boolean {
  return reqs.every((r) => {
    let v: unknown = obj;
    for (const p of r.path) v = isPlain(v) ? v[p] : undefined;
    const s = v === undefined || v === null ? '' : String(v);
    return (s === r.value) !== r.negate;
  });
}

const SUFFIX_CHARS = 'bcdfghjklmnpqrstvwxz2456789';

export class FakeClient implements ApiClient {
  /** Requests served, in order (reads included), for assertions on what a reconciler did. */
  readonly calls: FakeCall[] = [];
  readonly stats = { requests: 0, conflicts: 0 };
  private rv = 1;
  /** Oldest resourceVersion a watch may resume from (older: 410 Expired). */
  private compactedRv = 1;
  /** resource → "namespace/name" → stored object. */
  private readonly objects = new Map<string, Map<string, KObject>>();
  private readonly log: LogEvent[] = [];
  private readonly watchers = new Set<Watcher>();
  private failures: Failure[] = [];
  private readonly conflictRetries: number;

  constructor(opts: FakeClientOptions = {}) {
    this.conflictRetries = opts.conflictRetries ?? 10;
    for (const ns of opts.namespaces ?? SYSTEM_NAMESPACES) this.seed(NAMESPACES, { metadata: { name: ns } });
  }

  // ---- test hooks ----

  /** The next `times` (default 1) calls of `verb` (of `kind`, if given) throw `error` (default a 500). */
  failNext(verb: FakeVerb, opts: { times?: number; kind?: Kind; error?: unknown | (() => unknown) } = {}): void {
    const e = opts.error;
    const error = typeof e === 'function' ? (e as () => unknown) : e !== undefined ? () => e : () => statusError(500, 'InternalError', `Internal error occurred: injected failure of ${verb}`);
    this.failures.push({ verb, times: opts.times ?? 1, kind: opts.kind, error });
  }

  /** Creates or replaces an object directly (no checks, one write): for test fixtures. */
  seed<T extends KObject = KObject>(kind: Kind, obj: NewObject): T {
    const o = clone({ ...obj, apiVersion: apiVersionOf(kind), kind: kind.kind }) as KObject;
    const m = o.metadata;
    if (!kind.namespaced) delete m.namespace;
    const old = this.store(kind).get(this.key(m.namespace, m.name!));
    m.uid ??= old?.metadata.uid ?? randomUUID();
    m.creationTimestamp ??= old?.metadata.creationTimestamp ?? nowRFC3339();
    m.generation ??= 1;
    if (kind.kind === 'Namespace') o.status ??= { phase: 'Active' };
    return clone(this.commit(kind, o, old)) as T;
  }

  /** The current resourceVersion (of the last write). */
  resourceVersion(): string {
    return String(this.rv);
  }

  /** Forgets the history: watches from an older resourceVersion get 410 Expired and relist. */
  compact(): void {
    this.compactedRv = this.rv;
    this.log.length = 0;
  }

  /** Ends every watch as an API server restart does (`done(null)`; informers re-watch). */
  closeWatches(): void {
    for (const w of this.watchers) {
      w.ending = true;
      this.schedule(w);
    }
  }

  /** Resolves once every queued watch event has been handed to its watcher. */
  async settle(): Promise<void> {
    while ([...this.watchers].some((w) => w.queue.length || w.scheduled)) await new Promise((r) => setImmediate(r));
  }

  /** The stored object, without a request (undefined when absent). */
  peek<T extends KObject = KObject>(kind: Kind, namespace: string | undefined, name: string): T | undefined {
    const o = this.store(kind).get(this.key(kind.namespaced ? namespace : undefined, name));
    return o && (clone(o) as T);
  }

  // ---- ApiClient ----

  async get<T extends KObject = KObject>(kind: Kind, namespace: string | undefined, name: string, signal?: AbortSignal): Promise<T | undefined> {
    signal?.throwIfAborted();
    this.begin('get', kind, namespace, name);
    const o = this.store(kind).get(this.key(this.ns(kind, namespace, name), name));
    return o && (clone(o) as T);
  }

  async list<T extends KObject = KObject>(kind: Kind, namespace?: string, opts: ListOptions = {}, signal?: AbortSignal): Promise<ListResult<T>> {
    signal?.throwIfAborted();
    this.begin('list', kind, namespace);
    const match = this.matcher(kind, namespace, opts.labelSelector, opts.fieldSelector);
    const items = [...this.store(kind).entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, o]) => o)
      .filter(match)
      .map((o) => clone(o) as T);
    return { items, resourceVersion: String(this.rv) };
  }

  async create<T extends KObject = KObject>(kind: Kind, obj: NewObject, _opts: WriteOptions = {}): Promise<T> {
    this.begin('create', kind, obj.metadata?.namespace, obj.metadata?.name);
    this.checkTypeMeta(kind, obj);
    const o = clone({ ...obj, apiVersion: apiVersionOf(kind), kind: kind.kind }) as KObject;
    const m = o.metadata;
    if (!m.name && m.generateName) m.name = m.generateName + [...randomBytes(5)].map((b) => SUFFIX_CHARS[b % SUFFIX_CHARS.length]).join('');
    if (!m.name) throw invalid(kind, '', 'metadata.name', 'FieldValueRequired', 'Required value: name or generateName is required');
    if (kind.namespaced) {
      if (!m.namespace) throw badRequest('a namespace must be specified for a namespaced resource');
      const ns = this.store(NAMESPACES).get(this.key(undefined, m.namespace));
      if (!ns) throw notFound(NAMESPACES, m.namespace);
      if (ns.metadata.deletionTimestamp) throw statusError(403, 'Forbidden', `unable to create new content in namespace ${m.namespace} because it is being terminated`);
    } else delete m.namespace;
    if (this.store(kind).has(this.key(m.namespace, m.name))) throw alreadyExists(kind, m.name);
    stampCreated(m);
    if (hasStatusSubresource(kind) && kind.group) delete o.status;
    if (kind.group === INSTANCES.group && kind.kind === INSTANCES.kind) o.status = { phase: 'Pending' };
    if (kind.kind === 'Namespace' && !kind.group) o.status = { phase: 'Active' };
    return clone(this.commit(kind, o, undefined)) as T;
  }

  async update<T extends KObject = KObject>(kind: Kind, obj: T, _opts: WriteOptions = {}): Promise<T> {
    const name = obj.metadata.name!;
    this.begin('update', kind, obj.metadata.namespace, name);
    const rv = obj.metadata.resourceVersion;
    if (!rv && kind.group === 'kova.dev') throw invalid(kind, name, 'metadata.resourceVersion', 'FieldValueInvalid', 'Invalid value: 0x0: must be specified for an update');
    const current = this.current(kind, obj.metadata.namespace, name);
    if (rv && rv !== current.metadata.resourceVersion) throw conflict(kind, name);
    return this.writeUpdate(kind, current, clone(obj), undefined) as T;
  }

  async delete(kind: Kind, namespace: string | undefined, name: string, opts: DeleteOptions = {}): Promise<boolean> {
    this.begin('delete', kind, namespace, name);
    const current = this.store(kind).get(this.key(this.ns(kind, namespace, name), name));
    if (!current) return false;
    const pre = opts.preconditions;
    if (pre?.uid && pre.uid !== current.metadata.uid) {
      throw conflict(kind, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${current.metadata.uid}`);
    }
    if (pre?.resourceVersion && pre.resourceVersion !== current.metadata.resourceVersion) {
      throw conflict(kind, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${current.metadata.resourceVersion}`);
    }
    if (!current.metadata.finalizers?.length) {
      this.commit(kind, undefined, current);
      return true;
    }
    if (current.metadata.deletionTimestamp) return true;
    const next = clone(current);
    next.metadata.deletionTimestamp = nowRFC3339();
    next.metadata.deletionGracePeriodSeconds = 0;
    next.metadata.generation = (next.metadata.generation ?? 1) + 1;
    this.commit(kind, next, current);
    return true;
  }

  async mergePatch<T extends KObject = KObject>(kind: Kind, namespace: string | undefined, name: string, patch: unknown, _opts: WriteOptions = {}): Promise<T> {
    this.begin('patch', kind, namespace, name);
    return this.patchWith(kind, namespace, name, (cur) => mergePatchOf(cur, patch), undefined) as T;
  }

  async jsonPatch<T extends KObject = KObject>(kind: Kind, namespace: string | undefined, name: string, ops: JsonPatchOp[], opts: WriteOptions & { subresource?: 'status' } = {}): Promise<T> {
    this.begin(opts.subresource ? 'patchStatus' : 'patch', kind, namespace, name);
    if (!Array.isArray(ops)) throw badRequest('a JSON patch must be an array of operations');
    return this.patchWith(kind, namespace, name, (cur) => jsonPatchOf(cur, ops), opts.subresource) as T;
  }

  async patchStatus<T extends KObject = KObject>(kind: Kind, namespace: string | undefined, name: string, patch: unknown, _opts: WriteOptions = {}): Promise<T> {
    this.begin('patchStatus', kind, namespace, name);
    return this.patchWith(kind, namespace, name, (cur) => mergePatchOf(cur, patch), 'status') as T;
  }

  async replaceStatus<T extends KObject = KObject>(kind: Kind, obj: T, _opts: WriteOptions = {}): Promise<T> {
    const name = obj.metadata.name!;
    this.begin('updateStatus', kind, obj.metadata.namespace, name);
    const current = this.current(kind, obj.metadata.namespace, name);
    const rv = obj.metadata.resourceVersion;
    if (rv && rv !== current.metadata.resourceVersion) throw conflict(kind, name);
    return this.writeUpdate(kind, current, clone(obj), 'status') as T;
  }

  updateStatus<T extends KObject = KObject>(kind: Kind, namespace: string | undefined, name: string, mutate: (obj: T) => boolean | void, opts: WriteOptions = {}): Promise<T | undefined> {
    return readModifyWrite(this, kind, namespace, name, mutate, (obj) => this.replaceStatus(kind, obj, opts));
  }

  updateWithRetry<T extends KObject = KObject>(kind: Kind, namespace: string | undefined, name: string, mutate: (obj: T) => boolean | void, opts: WriteOptions = {}): Promise<T | undefined> {
    return readModifyWrite(this, kind, namespace, name, mutate, (obj) => this.update(kind, obj, opts));
  }

  addFinalizer<T extends KObject = KObject>(kind: Kind, namespace: string | undefined, name: string, finalizer: string, cached?: T): Promise<T | undefined> {
    return editFinalizers<T>(this, kind, namespace, name, withFinalizer(finalizer), cached);
  }

  removeFinalizer<T extends KObject = KObject>(kind: Kind, namespace: string | undefined, name: string, finalizer: string, cached?: T): Promise<T | undefined> {
    return editFinalizers<T>(this, kind, namespace, name, withoutFinalizer(finalizer), cached);
  }

  /** Conflict retries without the real client's jittered sleep: a macrotask lets the other writers run. */
  retryOnConflict<R>(fn: () => Promise<R>): Promise<R> {
    return retryConflicts(fn, this.conflictRetries, async () => {
      this.stats.conflicts++;
      await new Promise((r) => setImmediate(r));
    });
  }

  /**
   * The binding subresource, deciding as the API server does (api/binding.ts planBinding: the
   * request is the Flavor's or spec.resources, not `resources`; refusals are 409s with typed
   * causes); the Instance and the Host are written in one step (one resourceVersion, as one
   * etcd transaction).
   */
  async bind<T extends KObject = KObject>(namespace: string, name: string, host: string, _resources: BindResources): Promise<T> {
    this.begin('bind', INSTANCES, namespace, name);
    const instance = this.current(INSTANCES, namespace, name) as Instance;
    const h = this.store(HOSTS).get(this.key(undefined, host)) as Host | undefined;
    if (!h) throw notFound(HOSTS, host);
    const flavorName = instance.status?.hostName ? undefined : instance.spec?.flavor;
    const flavor = flavorName ? (this.store(FLAVORS).get(this.key(undefined, flavorName)) as Flavor | undefined) : undefined;
    const plan = planBinding(clone(instance), clone(h), flavor && clone(flavor));
    if ('alreadyBound' in plan) return clone(instance) as unknown as T;
    if ('refused' in plan) throw statusError(409, 'Conflict', plan.refused.message, { name, group: 'kova.dev', kind: 'instances', causes: plan.refused.causes });
    const rv = ++this.rv;
    this.commit(INSTANCES, plan.instance, instance, rv);
    this.commit(HOSTS, plan.host, h, rv);
    return clone(plan.instance) as unknown as T;
  }

  /** Events are delivered asynchronously (a macrotask after the write), in resourceVersion order. */
  async watch(kind: Kind, namespace: string | undefined, opts: WatchOptions, onEvent: (type: WatchEventType, obj: KObject) => void, done: (err: unknown) => void): Promise<WatchHandle> {
    const w: Watcher = { res: this.resKey(kind), namespace: kind.namespaced ? namespace : undefined, match: () => false, queue: [], scheduled: false, ending: false, stopped: false, onEvent, done };
    const handle = { abort: () => this.stopWatcher(w) };
    try {
      this.begin('watch', kind, namespace);
      w.match = this.matcher(kind, namespace, opts.labelSelector, opts.fieldSelector);
    } catch (e) {
      // A refused watch request ends the watch with the error, as client-node's Watch does.
      setImmediate(() => done(e));
      return handle;
    }
    this.watchers.add(w);
    const from = opts.resourceVersion && opts.resourceVersion !== '0' ? Number(opts.resourceVersion) : undefined;
    if (from === undefined) {
      for (const o of [...this.store(kind).values()]) if (w.match(o)) w.queue.push(['ADDED', clone(o)]);
    } else if (!Number.isInteger(from) || from < this.compactedRv) {
      w.queue.push(['ERROR', { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', reason: 'Expired', code: 410, message: `too old resource version: ${opts.resourceVersion} (${this.compactedRv})` } as unknown as KObject]);
      w.ending = true;
    } else {
      for (const e of this.log) if (e.rv > from && e.res === w.res) this.offer(w, e);
    }
    this.schedule(w);
    return handle;
  }

  close(): void {
    for (const w of this.watchers) this.stopWatcher(w);
  }

  // ---- internals ----

  private resKey(kind: Kind): string {
    return `${kind.group}/${kind.plural}`;
  }

  private store(kind: Kind): Map<string, KObject> {
    const k = this.resKey(kind);
    let m = this.objects.get(k);
    if (!m) this.objects.set(k, (m = new Map()));
    return m;
  }

  private key(namespace: string | undefined, name: string): string {
    return `${namespace ?? ''}/${name}`;
  }

  /** The namespace part of an object's key; a namespaced kind needs one (as KovaClient.objectPath). */
  private ns(kind: Kind, namespace: string | undefined, name: string): string | undefined {
    if (!kind.namespaced) return undefined;
    if (!namespace) throw new Error(`${kind.plural} are namespaced: namespace required for ${name}`);
    return namespace;
  }

  private current(kind: Kind, namespace: string | undefined, name: string): KObject {
    const o = this.store(kind).get(this.key(this.ns(kind, namespace, name), name));
    if (!o) throw notFound(kind, name);
    return o;
  }

  /** Counts and records a request, and throws an injected failure when one is due. */
  private begin(verb: FakeVerb, kind: Kind, namespace?: string, name?: string): void {
    this.stats.requests++;
    this.calls.push({ verb, resource: kind.plural, namespace: kind.namespaced ? namespace : undefined, name });
    const f = this.failures.find((x) => x.verb === verb && (!x.kind || (x.kind.group === kind.group && x.kind.plural === kind.plural)));
    if (!f) return;
    if (--f.times <= 0) this.failures = this.failures.filter((x) => x !== f);
    throw f.error();
  }

  private checkTypeMeta(kind: Kind, obj: { apiVersion?: string; kind?: string }): void {
    const gv = apiVersionOf(kind);
    if (obj.apiVersion && obj.apiVersion !== gv) throw badRequest(`the API version in the data (${obj.apiVersion}) does not match the expected API version (${gv})`);
    if (obj.kind && obj.kind !== kind.kind) throw badRequest(`the kind in the data (${obj.kind}) does not match the expected kind (${kind.kind})`);
  }

  private matcher(kind: Kind, namespace: string | undefined, labelSelector?: string, fieldSelector?: string): (o: KObject) => boolean {
    const labels = parseLabelSelector(labelSelector);
    const fields = parseFieldSelector(fieldSelector);
    const ns = kind.namespaced ? namespace : undefined;
    return (o) => (!ns || o.metadata.namespace === ns) && labelsMatch(labels, o.metadata.labels) && fieldsMatch(fields, o);
  }

  private patchWith(kind: Kind, namespace: string | undefined, name: string, apply: (cur: KObject) => unknown, subresource: 'status' | undefined): KObject {
    const current = this.current(kind, namespace, name);
    const patched = apply(clone(current));
    if (!isPlain(patched)) throw badRequest('the patched object must be a JSON object');
    const o = patched as KObject;
    o.metadata ??= {};
    if (o.metadata.name !== current.metadata.name) throw badRequest('metadata.name: the name of an object cannot be changed by a patch');
    const wanted = o.metadata.resourceVersion;
    if (wanted && wanted !== current.metadata.resourceVersion) throw conflict(kind, name);
    return this.writeUpdate(kind, current, o, subresource);
  }

  /** apiserver's prepareForUpdate + persist: server-owned fields, generation, finalize, no-op. */
  private writeUpdate(kind: Kind, old: KObject, next: KObject, subresource: 'status' | undefined): KObject {
    this.checkTypeMeta(kind, next);
    if (next.metadata?.name && next.metadata.name !== old.metadata.name) {
      throw badRequest(`the name of the object (${next.metadata.name}) does not match the name on the URL (${old.metadata.name})`);
    }
    let out: KObject;
    if (subresource === 'status') {
      out = clone(old);
      if (next.status === undefined) delete out.status;
      else out.status = next.status;
    } else {
      out = next;
      if (hasStatusSubresource(kind)) {
        if (old.status === undefined) delete out.status;
        else out.status = clone(old.status);
      }
    }
    out.apiVersion = old.apiVersion;
    out.kind = old.kind;
    out.metadata ??= {};
    const m = out.metadata;
    const o = old.metadata;
    m.name = o.name;
    if (o.namespace === undefined) delete m.namespace;
    else m.namespace = o.namespace;
    m.uid = o.uid;
    m.creationTimestamp = o.creationTimestamp;
    if (o.deletionTimestamp === undefined) delete m.deletionTimestamp;
    else m.deletionTimestamp = o.deletionTimestamp;
    if (o.deletionGracePeriodSeconds === undefined) delete m.deletionGracePeriodSeconds;
    else m.deletionGracePeriodSeconds = o.deletionGracePeriodSeconds;
    m.generation = o.generation ?? 1;
    const specPart = (x: KObject) => {
      const { metadata: _m, status: _s, apiVersion: _a, kind: _k, ...rest } = x;
      return rest;
    };
    if (subresource !== 'status' && !jsonEqual(specPart(old), specPart(out))) m.generation += 1;
    if (o.deletionTimestamp) {
      const added = (m.finalizers ?? []).filter((f) => !(o.finalizers ?? []).includes(f));
      if (added.length) {
        throw invalid(kind, o.name ?? '', 'metadata.finalizers', 'FieldValueForbidden', `Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers ${JSON.stringify(added)}`);
      }
    }
    if (m.finalizers && !m.finalizers.length) delete m.finalizers;
    if (o.deletionTimestamp && !m.finalizers?.length) {
      // The last finalizer is gone from an object being deleted: it goes away. Like etcd's
      // prev_kv, the answer and the DELETED event carry the object as it was stored.
      return clone(this.commit(kind, undefined, old));
    }
    // A no-op write keeps the resourceVersion and sends no event, as the real server.
    const { resourceVersion: _o, ...oldMeta } = old.metadata;
    const { resourceVersion: _n, ...newMeta } = m;
    if (jsonEqual({ ...old, metadata: oldMeta }, { ...out, metadata: newMeta })) return clone(old);
    return clone(this.commit(kind, out, old));
  }

  /**
   * Stores `next` (undefined: deletes `prev`) at a new resourceVersion (or `rv`, for several
   * writes of one transaction), logs the event and queues it for the watches that see it.
   */
  private commit(kind: Kind, next: KObject | undefined, prev: KObject | undefined, rv = ++this.rv): KObject {
    const res = this.resKey(kind);
    const store = this.store(kind);
    let event: LogEvent;
    if (next) {
      next.metadata.resourceVersion = String(rv);
      store.set(this.key(next.metadata.namespace, next.metadata.name!), next);
      event = { rv, res, type: prev ? 'MODIFIED' : 'ADDED', object: next, prev };
    } else {
      const gone = clone(prev!);
      gone.metadata.resourceVersion = String(rv);
      store.delete(this.key(prev!.metadata.namespace, prev!.metadata.name!));
      event = { rv, res, type: 'DELETED', object: gone, prev };
    }
    this.log.push(event);
    for (const w of this.watchers) if (w.res === res && !w.ending) this.offer(w, event);
    return event.object;
  }

  /** What watcher `w` sees of event `e`: selector changes become ADDED/DELETED, as the real cacher. */
  private offer(w: Watcher, e: LogEvent): void {
    const was = !!e.prev && w.match(e.prev);
    if (e.type === 'DELETED') {
      if (was || w.match(e.object)) w.queue.push(['DELETED', clone(e.object)]);
    } else {
      const now = w.match(e.object);
      if (now && !was) w.queue.push(['ADDED', clone(e.object)]);
      else if (now && was) w.queue.push(['MODIFIED', clone(e.object)]);
      else if (!now && was) w.queue.push(['DELETED', clone(e.object)]);
    }
    this.schedule(w);
  }

  private schedule(w: Watcher): void {
    if (w.scheduled || w.stopped) return;
    w.scheduled = true;
    setImmediate(() => {
      w.scheduled = false;
      while (w.queue.length && !w.stopped) {
        const [type, obj] = w.queue.shift()!;
        w.onEvent(type, obj);
      }
      if (w.ending && !w.stopped) {
        this.stopWatcher(w);
        w.done(null);
      }
    });
  }

  private stopWatcher(w: Watcher): void {
    w.stopped = true;
    w.queue.length = 0;
    this.watchers.delete(w);
  }
}
