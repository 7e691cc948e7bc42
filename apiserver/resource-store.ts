// Object-level API semantics on top of the etcd store, independent of HTTP: create, update,
// patch, delete with finalizers, list with selectors and paging. The HTTP layer, garbage
// collector and namespace lifecycle all go through here, so the rules live in one place.
import type { Registry } from '../api/registry.js';
import type { FieldCause, KObject, ResourceInfo } from '../api/types.js';
import { groupVersion, nowRFC3339 } from '../api/types.js';
import type { Validator } from '../api/validation.js';
import { Store, StoreError } from '../store/store.js';
import { WatchHub } from '../store/watch-hub.js';
import { storageKey, storagePrefix } from './keys.js';
import { clone, jsonEqual, markDeleting, normalizeBuiltin, prepareForCreate, prepareForUpdate } from './object-rules.js';
import { applyJsonPatch, PatchError } from './patch/json-patch.js';
import { applyMergePatch } from './patch/merge-patch.js';
import { applyStrategicMergePatch } from './patch/strategic-merge.js';
import { applyConfiguration, conflictMessage, managerFromUserAgent, updateManagedFields } from './patch/managed-fields.js';
import type { ListKeysFn } from './patch/managed-fields.js';
import { LabelSelector, FieldSelector, parseFieldSelector, parseLabelSelector, SelectorError } from './selectors.js';
import { ApiError, alreadyExists, badRequest, conflict, forbidden, gone, internal, invalid, notFound, unavailable, unsupportedMediaType } from './status.js';
import { NamespaceCache } from './namespace-cache.js';
import type { NamespaceState } from './namespace-cache.js';
import { listKeysFor } from './list-keys.js';
import { checkObjectBody, parseResourceVersion } from './request.js';
import type { QuotaCharger } from './quota/charger.js';
import { isResourceQuotaKind, resourceQuotaCauses } from '../api/quota-usage.js';

export type FieldValidation = 'Strict' | 'Warn' | 'Ignore';

export interface WriteOptions {
  dryRun?: boolean;
  fieldManager?: string;
  fieldValidation?: FieldValidation;
  userAgent?: string;
  /** Warnings to return in `Warning` headers. */
  warnings?: string[];
  subresource?: 'status';
  /** The caller hands `body` over (freshly parsed from a request): no defensive copy needed. */
  ownsBody?: boolean;
  /**
   * Admission of an update's, patch's or apply's result (`old` the stored object it replaces,
   * undefined when apply creates), run before it is stored. Throws an ApiError to refuse.
   */
  admitResult?: (obj: KObject, old: KObject | undefined) => void | Promise<void>;
}

export interface DeleteOptions {
  dryRun?: boolean;
  propagationPolicy?: 'Background' | 'Foreground' | 'Orphan';
  preconditions?: { uid?: string; resourceVersion?: string };
}

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
  resourceVersion?: string;
  resourceVersionMatch?: string;
}

export interface ListResult {
  items: KObject[];
  resourceVersion: string;
  continue?: string;
  remainingItemCount?: number;
}

export type PatchType = 'merge' | 'json' | 'strategic' | 'apply';

export const PATCH_CONTENT_TYPES: Record<string, PatchType> = {
  'application/merge-patch+json': 'merge',
  'application/json-patch+json': 'json',
  'application/strategic-merge-patch+json': 'strategic',
  'application/apply-patch+yaml': 'apply',
  'application/apply-patch+json': 'apply',
};

const MAX_PATCH_RETRIES = 5;
/** Objects per etcd range when a client lists without a limit. */
const STORAGE_CHUNK = 1000;

/** Maps store failures onto Kubernetes Status errors for the resource at hand. */
export function storeToApiError(e: unknown, info: ResourceInfo, name: string): never {
  if (e instanceof ApiError) throw e;
  if (e instanceof StoreError) {
    switch (e.code) {
      case 'NotFound': throw notFound(info, name);
      case 'AlreadyExists': throw alreadyExists(info, name);
      case 'Conflict': throw conflict(info, name);
      case 'Expired': throw gone(e.message);
      case 'Unavailable': throw unavailable(`etcd is unavailable: ${e.message}`);
      case 'Invalid': throw badRequest(e.message);
    }
  }
  throw internal(e instanceof Error ? e.message : String(e), e);
}

export class ResourceStore {
  readonly namespaces: NamespaceCache;
  /** Shared etcd watches behind every HTTP watch. */
  readonly watches: WatchHub;
  /** ResourceQuota enforcement (started by apiserver/auth/setup.ts); undefined: quotas are not enforced. */
  quota?: QuotaCharger;

  constructor(
    readonly store: Store,
    readonly registry: Registry,
    readonly validator: Validator,
  ) {
    this.namespaces = new NamespaceCache(store, registry);
    this.watches = new WatchHub(store);
  }

  key(info: ResourceInfo, ns: string | undefined, name: string) {
    return storageKey(info, ns, name);
  }

  private listKeys(info: ResourceInfo): ListKeysFn {
    return listKeysFor(info);
  }

  async get(info: ResourceInfo, ns: string | undefined, name: string): Promise<KObject> {
    let obj: KObject | undefined;
    try {
      obj = await this.store.get(this.key(info, ns, name));
    } catch (e) {
      storeToApiError(e, info, name);
    }
    if (!obj) throw notFound(info, name);
    return obj;
  }

  selectors(info: ResourceInfo, opts: Pick<ListOptions, 'labelSelector' | 'fieldSelector'>): { label?: LabelSelector; field?: FieldSelector } {
    try {
      return {
        label: opts.labelSelector ? parseLabelSelector(opts.labelSelector) : undefined,
        field: opts.fieldSelector ? parseFieldSelector(opts.fieldSelector, ['metadata.name', 'metadata.namespace', ...info.selectableFields]) : undefined,
      };
    } catch (e) {
      if (e instanceof SelectorError) throw badRequest(e.message);
      throw e;
    }
  }

  async list(info: ResourceInfo, ns: string | undefined, opts: ListOptions = {}): Promise<ListResult> {
    const { label, field } = this.selectors(info, opts);
    const matches = (o: KObject) => (!label || label.matches(o.metadata.labels ?? {})) && (!field || field.matches(o));
    const prefix = storagePrefix(info, ns);
    const limit = opts.limit && opts.limit > 0 ? opts.limit : undefined;
    const rv0 = opts.resourceVersion && opts.resourceVersion !== '0' ? opts.resourceVersion : undefined;
    if (rv0 !== undefined) parseResourceVersion(rv0);
    // kube-apiserver reads at exactly resourceVersion for Exact, and (legacy semantics) for a
    // paginated first page without resourceVersionMatch; otherwise the latest state is not older.
    const exact = opts.resourceVersionMatch === 'Exact' || (!opts.resourceVersionMatch && !!limit && !opts.continue);
    const revision = exact && rv0 !== undefined ? rv0 : undefined;
    const items: KObject[] = [];
    let token = opts.continue || undefined;
    let rv = '';
    let remaining: number | undefined;
    try {
      // Page through storage until `limit` objects matched: selectors filter after the read,
      // as in kube-apiserver, so a page may take several storage reads.
      for (;;) {
        // Unlimited lists are read in chunks (one snapshot via the continue token): etcd
        // replies are capped in size, and chunks keep memory spikes small.
        const need = limit ? limit - items.length : STORAGE_CHUNK;
        const page = await this.store.list(prefix, { limit: need, continueToken: token, revision });
        rv ||= page.revision;
        for (const o of page.items) if (matches(o)) items.push(o);
        token = page.continueToken;
        remaining = page.remainingItemCount;
        if (!token || (limit && items.length >= limit)) break;
      }
      if (!limit) token = undefined;
    } catch (e) {
      if (e instanceof StoreError && e.code === 'Expired') {
        // kube-apiserver's two messages: the continue one only when the client sent a token.
        if (opts.continue) throw gone('The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.');
        throw gone('The resourceVersion for the provided list is too old.');
      }
      storeToApiError(e, info, '');
    }
    const out: ListResult = { items, resourceVersion: rv };
    if (token) {
      out.continue = token;
      if (!label && !field && remaining !== undefined) out.remainingItemCount = remaining;
    }
    return out;
  }

  /** Rejects or reports fields the schema does not know, per `fieldValidation`, then prunes them. */
  private checkUnknownFields(info: ResourceInfo, obj: KObject, opts: WriteOptions): void {
    const unknown = this.validator.unknownFields(info, obj);
    if (unknown.length) {
      const mode = opts.fieldValidation ?? 'Warn';
      if (mode === 'Strict') {
        throw badRequest(`strict decoding error: ${unknown.map((f) => `unknown field "${f}"`).join(', ')}`);
      }
      if (mode === 'Warn') for (const f of unknown) opts.warnings?.push(`unknown field "${f}"`);
      this.validator.prune(info, obj);
    }
  }

  private validateOrThrow(info: ResourceInfo, obj: KObject, subresource?: 'status'): void {
    normalizeBuiltin(info, obj);
    this.validator.applyDefaults(info, obj);
    const causes: FieldCause[] = [...this.validator.validateMetadata(info, obj), ...this.validator.validate(info, obj, { subresource })];
    if (subresource !== 'status' && isResourceQuotaKind(info)) causes.push(...resourceQuotaCauses(obj));
    if (causes.length) throw invalid(info, obj.metadata.name ?? obj.metadata.generateName ?? '', causes);
  }

  private manager(opts: WriteOptions): string {
    return opts.fieldManager || managerFromUserAgent(opts.userAgent ?? '');
  }

  /** Refuses writes into a missing or terminating namespace; a promise only when the cache had to ask etcd. */
  private checkNamespace(info: ResourceInfo, ns: string | undefined): void | Promise<void> {
    if (!info.namespaced) return;
    if (!ns) throw badRequest('a namespace must be specified for a namespaced resource');
    const state = this.namespaces.cachedState(ns);
    if (state) return this.namespaceAllows(info, ns, state);
    return this.namespaces.state(ns).then((s) => this.namespaceAllows(info, ns, s));
  }

  private namespaceAllows(info: ResourceInfo, ns: string, state: NamespaceState): void {
    if (state === 'missing') throw notFound({ group: '', plural: 'namespaces', kind: 'Namespace' }, ns);
    if (state === 'terminating') {
      throw new ApiError(403, 'Forbidden', `${info.plural}${info.group ? '.' + info.group : ''} "${''}" is forbidden: unable to create new content in namespace ${ns} because it is being terminated`, {
        causes: [{ reason: 'NamespaceTerminating', message: `namespace ${ns} is being terminated`, field: 'metadata.namespace' }],
      });
    }
  }

  async create(info: ResourceInfo, ns: string | undefined, body: KObject, opts: WriteOptions = {}): Promise<KObject> {
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw badRequest('the request body must be a JSON object');
    const obj = prepareForCreate(info, opts.ownsBody ? body : clone(body), ns);
    if (!obj.metadata.name) {
      throw invalid(info, '', [{ reason: 'FieldValueRequired', field: 'metadata.name', message: 'Required value: name or generateName is required' }]);
    }
    const nsChecked = this.checkNamespace(info, obj.metadata.namespace);
    if (nsChecked) await nsChecked;
    this.checkUnknownFields(info, obj, opts);
    this.validateOrThrow(info, obj);
    if (isNamespace(info)) {
      obj.status = { phase: 'Active' };
      obj.spec = { finalizers: ['kubernetes'], ...(obj.spec as object | undefined) };
    }
    obj.metadata.managedFields = updateManagedFields({
      old: undefined, updated: obj, manager: this.manager(opts), operation: 'Update',
      apiVersion: groupVersion(info), now: nowRFC3339(), subresource: opts.subresource, listKeys: this.listKeys(info),
    });
    return this.storeNew(info, obj, !!opts.dryRun);
  }

  /** Stores a new object, charging quotas with it in one transaction where any track it. */
  private async storeNew(info: ResourceInfo, obj: KObject, dryRun: boolean): Promise<KObject> {
    const key = this.key(info, obj.metadata.namespace, obj.metadata.name!);
    // As kube's ResourceQuota strategy: a new quota's usage is counted, never taken from the client.
    if (isResourceQuotaKind(info)) delete obj.status;
    // The no-quota path: one cached lookup, then the plain create.
    const charged = this.quota?.applies(info, obj.metadata.namespace) ? this.quota : undefined;
    if (dryRun && !charged) return obj;
    try {
      if (charged) return await charged.create(info, key, obj, dryRun);
      return await this.store.create(key, obj);
    } catch (e) {
      return storeToApiError(e, info, obj.metadata.name!);
    }
  }

  /**
   * Writes `next` over `current` (CAS on current's resourceVersion). An object being deleted
   * whose last finalizer goes away is removed instead, as kube-apiserver does.
   */
  private async commitUpdate(info: ResourceInfo, current: KObject, next: KObject, opts: WriteOptions): Promise<KObject> {
    const name = current.metadata.name ?? '';
    await opts.admitResult?.(next, current);
    const out = prepareForUpdate(info, current, next, opts.subresource);
    this.checkUnknownFields(info, out, opts);
    this.validateOrThrow(info, out, opts.subresource);
    out.metadata.managedFields = updateManagedFields({
      old: current, updated: out, manager: this.manager(opts), operation: 'Update',
      apiVersion: groupVersion(info), now: nowRFC3339(), subresource: opts.subresource, listKeys: this.listKeys(info),
    });
    return this.persist(info, current, out, opts);
  }

  private async persist(info: ResourceInfo, current: KObject, out: KObject, opts: WriteOptions): Promise<KObject> {
    const name = current.metadata.name ?? '';
    const key = this.key(info, current.metadata.namespace, name);
    const rv = current.metadata.resourceVersion!;
    // Namespaces also wait for spec.finalizers (the namespace controller's `kubernetes`).
    const specFinalizers = isNamespace(info) ? ((out.spec as { finalizers?: string[] } | undefined)?.finalizers ?? []) : [];
    const finalize = !!out.metadata.deletionTimestamp && !out.metadata.finalizers?.length && !specFinalizers.length;
    // A no-op write keeps the resourceVersion, like kube-apiserver (no event, no etcd write).
    const unchanged = jsonEqual(withoutVolatile(current), withoutVolatile(out));
    // An update that changes what the object uses (an Instance's flavor, a Volume's size) is charged.
    const charged = !finalize && !unchanged && this.quota?.updateApplies(info, current, out) ? this.quota : undefined;
    if (opts.dryRun && !charged) return out;
    try {
      if (charged) return await charged.update(info, key, current, out, !!opts.dryRun);
      if (finalize) return await this.store.delete(key, rv);
      if (unchanged) return current;
      return await this.store.update(key, out, rv);
    } catch (e) {
      return storeToApiError(e, info, name);
    }
  }

  /** PUT: full replacement guarded by metadata.resourceVersion. */
  async update(info: ResourceInfo, ns: string | undefined, name: string, body: KObject, opts: WriteOptions = {}): Promise<KObject> {
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw badRequest('the request body must be a JSON object');
    const next = clone(body);
    next.metadata ??= {};
    if (next.metadata.name && next.metadata.name !== name) {
      throw badRequest(`the name of the object (${next.metadata.name}) does not match the name on the URL (${name})`);
    }
    const rv = next.metadata.resourceVersion;
    if (!rv && info.custom) {
      throw invalid(info, name, [{ reason: 'FieldValueInvalid', field: 'metadata.resourceVersion', message: 'Invalid value: 0x0: must be specified for an update' }]);
    }
    const current = await this.get(info, ns, name);
    if (rv && rv !== current.metadata.resourceVersion) throw conflict(info, name);
    return this.commitUpdate(info, current, next, opts);
  }

  async patch(info: ResourceInfo, ns: string | undefined, name: string, type: PatchType, patch: unknown, opts: WriteOptions & { force?: boolean } = {}): Promise<KObject> {
    if (type === 'strategic' && info.custom) {
      throw unsupportedMediaType(['application/json-patch+json', 'application/merge-patch+json', 'application/apply-patch+yaml']);
    }
    if (opts.force && type !== 'apply') throw badRequest('force: Forbidden: may not be specified for non-apply patch');
    if (type === 'apply') {
      if (!opts.fieldManager) {
        throw new ApiError(422, 'Invalid', 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch', {
          group: 'meta.k8s.io', kind: 'PatchOptions', causes: [{ reason: 'FieldValueRequired', message: 'Required value: is required for apply patch', field: 'fieldManager' }],
        });
      }
      return this.apply(info, ns, name, patch, opts);
    }
    for (let attempt = 0; ; attempt++) {
      const current = await this.get(info, ns, name);
      const patched = this.applyPatch(info, current, type, patch);
      // A patch can leave metadata wrong-typed (`"finalizers": false`): a 400 naming the field,
      // as for a body, before any object rule reads it.
      checkObjectBody(patched);
      // Only a resourceVersion the patch itself names is a precondition (the patched object
      // always carries the current one): without it a patch that lost a race is re-applied to
      // the fresh object, as kube-apiserver's GuaranteedUpdate does.
      const precondition = patchNamesResourceVersion(type, patch);
      const wanted = patched.metadata?.resourceVersion;
      if (precondition && wanted !== current.metadata.resourceVersion) throw conflict(info, name);
      try {
        return await this.commitUpdate(info, current, patched, opts);
      } catch (e) {
        if (isConflict(e) && !precondition && attempt < MAX_PATCH_RETRIES) continue;
        throw e;
      }
    }
  }

  private applyPatch(info: ResourceInfo, current: KObject, type: PatchType, patch: unknown): KObject {
    const base = clone(current);
    let out: unknown;
    try {
      if (type === 'json') out = applyJsonPatch(base, patch as never);
      else if (type === 'strategic') out = applyStrategicMergePatch(base, patch as never);
      else out = applyMergePatch(base, patch);
    } catch (e) {
      if (e instanceof PatchError) {
        if (e.kind === 'Malformed') throw badRequest(e.message);
        throw new ApiError(422, 'Invalid', e.message);
      }
      throw badRequest(e instanceof Error ? e.message : String(e));
    }
    if (!out || typeof out !== 'object' || Array.isArray(out)) throw badRequest('the patched object must be a JSON object');
    const o = out as KObject;
    o.metadata ??= {};
    if (o.metadata.name !== current.metadata.name) throw badRequest('metadata.name: the name of an object cannot be changed by a patch');
    return o;
  }

  /** Server-side apply: create if missing, else merge with ownership tracking and conflicts. */
  private async apply(info: ResourceInfo, ns: string | undefined, name: string, patch: unknown, opts: WriteOptions & { force?: boolean }): Promise<KObject> {
    if (!patch || typeof patch !== 'object' || Array.isArray(patch)) throw badRequest('the apply configuration must be an object');
    const applied = clone(patch) as KObject;
    applied.metadata ??= {};
    if (applied.metadata.name && applied.metadata.name !== name) {
      throw badRequest(`the name of the object (${applied.metadata.name}) does not match the name on the URL (${name})`);
    }
    applied.metadata.name = name;
    const gv = groupVersion(info);
    if (applied.apiVersion !== gv || applied.kind !== info.kind) {
      throw badRequest(`the apply configuration must have apiVersion ${gv} and kind ${info.kind}`);
    }
    const manager = opts.fieldManager!;
    for (let attempt = 0; ; attempt++) {
      let live: KObject | undefined;
      try {
        live = await this.store.get(this.key(info, ns, name));
      } catch (e) {
        storeToApiError(e, info, name);
      }
      const scoped = opts.subresource === 'status' ? { ...applied, spec: undefined } : applied;
      const result = applyConfiguration({
        live, applied: scoped as KObject, manager, force: !!opts.force, apiVersion: gv, now: nowRFC3339(), listKeys: this.listKeys(info),
        subresource: opts.subresource, statusSubresource: info.statusSubresource,
      });
      if ('conflicts' in result) {
        const msg = conflictMessage(result.conflicts, gv);
        throw new ApiError(409, 'Conflict', msg.message, { name, group: info.group, kind: info.plural, causes: msg.causes });
      }
      const obj = result.object;
      obj.metadata.managedFields = result.managedFields;
      if (!live) {
        if (opts.subresource) throw notFound(info, name);
        const created = prepareForCreate(info, obj, ns);
        created.metadata.managedFields = result.managedFields;
        await this.checkNamespace(info, created.metadata.namespace);
        this.checkUnknownFields(info, created, opts);
        this.validateOrThrow(info, created);
        await opts.admitResult?.(created, undefined);
        try {
          return await this.storeNew(info, created, !!opts.dryRun);
        } catch (e) {
          if (e instanceof ApiError && e.code === 409 && e.reason === 'AlreadyExists' && attempt < MAX_PATCH_RETRIES) continue;
          throw e;
        }
      }
      try {
        const out = prepareForUpdate(info, live, obj, opts.subresource);
        out.metadata.managedFields = result.managedFields;
        this.checkUnknownFields(info, out, opts);
        this.validateOrThrow(info, out, opts.subresource);
        await opts.admitResult?.(out, live);
        return await this.persist(info, live, out, opts);
      } catch (e) {
        if (isConflict(e) && attempt < MAX_PATCH_RETRIES) continue;
        throw e;
      }
    }
  }

  /**
   * DELETE. Objects with finalizers (including the GC's orphan/foregroundDeletion) are only
   * marked; the last finalizer removal deletes them. Namespaces always go through Terminating.
   */
  async delete(info: ResourceInfo, ns: string | undefined, name: string, opts: DeleteOptions = {}): Promise<{ object: KObject; deleted: boolean }> {
    for (let attempt = 0; ; attempt++) {
      const current = await this.get(info, ns, name);
      const pre = opts.preconditions;
      if (pre?.uid && pre.uid !== current.metadata.uid) {
        throw conflict(info, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${current.metadata.uid}`);
      }
      if (pre?.resourceVersion && pre.resourceVersion !== current.metadata.resourceVersion) {
        throw conflict(info, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${current.metadata.resourceVersion}`);
      }
      const next = clone(current);
      const finalizers = new Set(next.metadata.finalizers ?? []);
      if (opts.propagationPolicy === 'Orphan') finalizers.add('orphan');
      if (opts.propagationPolicy === 'Foreground') finalizers.add('foregroundDeletion');
      const nsKind = isNamespace(info);
      if (nsKind) {
        next.status = { ...(next.status as object), phase: 'Terminating' };
      }
      const specFinalizers = nsKind ? ((next.spec as { finalizers?: string[] } | undefined)?.finalizers ?? []) : [];
      if (finalizers.size === 0 && specFinalizers.length === 0) {
        if (opts.dryRun) return { object: current, deleted: true };
        try {
          return { object: await this.store.delete(this.key(info, ns, name), current.metadata.resourceVersion), deleted: true };
        } catch (e) {
          if (isStoreConflict(e) && attempt < MAX_PATCH_RETRIES) continue;
          return storeToApiError(e, info, name);
        }
      }
      next.metadata.finalizers = [...finalizers];
      const changed = markDeleting(next) || !jsonEqual(next.metadata.finalizers, current.metadata.finalizers ?? []) || nsKind;
      if (!changed) return { object: current, deleted: false };
      if (opts.dryRun) return { object: next, deleted: false };
      try {
        return { object: await this.store.update(this.key(info, ns, name), next, current.metadata.resourceVersion!), deleted: false };
      } catch (e) {
        if (isStoreConflict(e) && attempt < MAX_PATCH_RETRIES) continue;
        return storeToApiError(e, info, name);
      }
    }
  }

  /** deletecollection: deletes every object matching the selectors, one by one. */
  async deleteCollection(info: ResourceInfo, ns: string | undefined, listOpts: ListOptions, opts: DeleteOptions): Promise<KObject[]> {
    const { items } = await this.list(info, ns, { ...listOpts, limit: undefined, continue: undefined });
    const out: KObject[] = [];
    for (const o of items) {
      try {
        out.push((await this.delete(info, o.metadata.namespace, o.metadata.name!, opts)).object);
      } catch (e) {
        if (!(e instanceof ApiError && e.code === 404)) throw e;
      }
    }
    return out;
  }
}

function isNamespace(info: ResourceInfo): boolean {
  return info.kind === 'Namespace' && info.group === '';
}

function withoutVolatile(o: KObject): KObject {
  const c = clone(o);
  delete c.metadata.resourceVersion;
  c.metadata.managedFields = (c.metadata.managedFields ?? []).map((m) => ({ ...m, time: undefined }));
  return c;
}

/** Whether a JSON merge / strategic patch sets metadata.resourceVersion, or a JSON patch adds, replaces or tests it. */
export function patchNamesResourceVersion(type: PatchType, patch: unknown): boolean {
  if (type === 'json') {
    return Array.isArray(patch) && patch.some((op) => typeof op === 'object' && op !== null && (op as { path?: unknown }).path === '/metadata/resourceVersion' && ['add', 'replace', 'test'].includes(String((op as { op?: unknown }).op)));
  }
  const meta = typeof patch === 'object' && patch !== null && !Array.isArray(patch) ? (patch as { metadata?: unknown }).metadata : undefined;
  const rv = typeof meta === 'object' && meta !== null ? (meta as { resourceVersion?: unknown }).resourceVersion : undefined;
  return rv !== undefined && rv !== null && rv !== '';
}

function isConflict(e: unknown): boolean {
  return e instanceof ApiError && e.code === 409 && e.reason === 'Conflict';
}

function isStoreConflict(e: unknown): boolean {
  return e instanceof StoreError && e.code === 'Conflict';
}

export { forbidden };
