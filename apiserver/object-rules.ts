// Pure rules kube-apiserver applies to every write (generic registry + CRD strategy):
// what a create fills in, what an update may not change, when generation moves.
import { randomBytes } from 'node:crypto';
import type { KObject, ResourceInfo } from '../api/types.js';
import { groupVersion, nowRFC3339, stampCreated } from '../api/types.js';
import { ApiError, badRequest, invalid } from './status.js';
import { RBAC_GROUP, rbacCauses } from '../api/builtin-kinds-rbac.js';
import { keepDefaultedFields, validateUpdate } from '../api/validation.js';

export const clone = <T>(v: T): T => structuredClone(v);

/** Deep equality for JSON values (key order insensitive). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => jsonEqual(x, bb[i]));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const ak = Object.keys(ao).filter((k) => ao[k] !== undefined);
  const bk = Object.keys(bo).filter((k) => bo[k] !== undefined);
  return ak.length === bk.length && ak.every((k) => jsonEqual(ao[k], bo[k]));
}

/** Everything but metadata and status: a change here bumps generation. */
function specPart(o: KObject): Record<string, unknown> {
  const { metadata: _m, status: _s, apiVersion: _a, kind: _k, ...rest } = o;
  return rest;
}

const SUFFIX_CHARS = 'bcdfghjklmnpqrstvwxz2456789';

function randomSuffix(n = 5): string {
  const b = randomBytes(n);
  return [...b].map((x) => SUFFIX_CHARS[x % SUFFIX_CHARS.length]).join('');
}

/** Checks apiVersion/kind of a request body against the resource it was sent to. */
export function checkTypeMeta(info: ResourceInfo, obj: KObject): void {
  const gv = groupVersion(info);
  if (obj.apiVersion !== undefined && obj.apiVersion !== gv) {
    throw badRequest(`the API version in the data (${obj.apiVersion}) does not match the expected API version (${gv})`);
  }
  if (obj.kind !== undefined && obj.kind !== info.kind) {
    throw badRequest(`the kind in the data (${obj.kind}) does not match the expected kind (${info.kind})`);
  }
  obj.apiVersion = gv;
  obj.kind = info.kind;
  obj.metadata ??= {};
}

/** Fills server-owned metadata for a new object; drops status when it is a subresource. */
export function prepareForCreate(info: ResourceInfo, obj: KObject, namespace: string | undefined): KObject {
  checkTypeMeta(info, obj);
  const m = obj.metadata;
  if (!m.name && m.generateName) m.name = `${m.generateName}${randomSuffix()}`;
  if (info.namespaced) {
    if (m.namespace && namespace && m.namespace !== namespace) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    m.namespace = namespace ?? m.namespace;
  } else {
    delete m.namespace;
  }
  stampCreated(m);
  if (info.statusSubresource && info.custom) delete obj.status;
  // Like kube-apiserver's pod strategy: a new Instance is Pending until something says otherwise.
  if (info.group === 'kova.dev' && info.kind === 'Instance') obj.status = { phase: 'Pending' };
  return obj;
}

/**
 * Carries immutable and server-owned fields from `old` into `next` for an update of the main
 * resource or of `/status`, and advances generation when the spec part changed.
 */
export function prepareForUpdate(info: ResourceInfo, old: KObject, next: KObject, subresource: 'status' | undefined): KObject {
  checkTypeMeta(info, next);
  let out: KObject;
  if (subresource === 'status') {
    // The status subresource may change only status (apiextensions status_strategy).
    out = clone(old);
    if (next.status === undefined) delete out.status;
    else out.status = next.status;
    out.metadata.managedFields = next.metadata.managedFields ?? out.metadata.managedFields;
  } else {
    out = next;
    if (info.statusSubresource) {
      if (old.status === undefined) delete out.status;
      else out.status = clone(old.status);
    }
  }
  const m = out.metadata;
  const o = old.metadata;
  m.name = o.name;
  m.namespace = o.namespace;
  m.uid = o.uid;
  m.creationTimestamp = o.creationTimestamp;
  m.deletionTimestamp = o.deletionTimestamp;
  m.deletionGracePeriodSeconds = o.deletionGracePeriodSeconds;
  if (m.deletionTimestamp === undefined) delete m.deletionTimestamp;
  if (m.deletionGracePeriodSeconds === undefined) delete m.deletionGracePeriodSeconds;
  m.generation = o.generation ?? 1;
  keepDefaultedFields(info, old, out);
  if (subresource !== 'status' && !jsonEqual(specPart(old), specPart(out))) m.generation += 1;
  // A binding's roleRef never changes (delete and recreate it), whatever the verb.
  if (info.group === RBAC_GROUP && old.roleRef !== undefined && !jsonEqual(old.roleRef, out.roleRef)) {
    const moved = rbacCauses(info, out, old).filter((c) => c.field === 'roleRef');
    if (moved.length) throw invalid(info, o.name ?? '', moved);
  }
  // Kind-specific update rules (a Volume never shrinks, immutable fields): api/validation.ts.
  const fixed = validateUpdate(info, old, out);
  if (fixed.length) throw invalid(info, o.name ?? '', fixed);
  if (o.deletionTimestamp) {
    const added = (m.finalizers ?? []).filter((f) => !(o.finalizers ?? []).includes(f));
    if (added.length) {
      throw invalid(info, o.name ?? '', [{ reason: 'FieldValueForbidden', field: 'metadata.finalizers', message: `Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers ${JSON.stringify(added)}` }]);
    }
  }
  return out;
}

/** Marks an object as being deleted (first time only): deletionTimestamp, grace 0, generation+1. */
export function markDeleting(obj: KObject): boolean {
  if (obj.metadata.deletionTimestamp) return false;
  obj.metadata.deletionTimestamp = nowRFC3339();
  obj.metadata.deletionGracePeriodSeconds = 0;
  obj.metadata.generation = (obj.metadata.generation ?? 1) + 1;
  return true;
}

export function isRequestError(e: unknown): e is ApiError {
  return e instanceof ApiError;
}

/** Write-time conversions built-in kinds have in kube-apiserver: Secret.stringData → data. */
export function normalizeBuiltin(info: ResourceInfo, obj: KObject): void {
  if (info.group === '' && info.kind === 'Secret' && obj.stringData && typeof obj.stringData === 'object') {
    const data = { ...((obj.data as Record<string, string> | undefined) ?? {}) };
    for (const [k, v] of Object.entries(obj.stringData as Record<string, string>)) data[k] = Buffer.from(String(v)).toString('base64');
    obj.data = data;
    delete obj.stringData;
  }
}
