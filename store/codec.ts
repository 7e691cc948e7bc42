// How objects and continue tokens look in etcd; nothing here talks to etcd.
import type { KeyValue } from './etcd/proto.js';
import type { KObject } from '../api/types.js';
import { StoreError } from './errors.js';

/**
 * The stored value: the object's JSON without `metadata.resourceVersion`, which is never
 * stored because etcd's mod_revision is the one source of truth for it.
 */
export function encode(obj: KObject): Buffer {
  // Serialized key by key (the same text as JSON.stringify({ ...obj, metadata })), noting where
  // metadata's members start, so the API's answer to the write can splice its resourceVersion
  // in there instead of serializing the object a second time.
  let json = '{';
  let metaAt = -1;
  const put = (k: string, v: unknown) => {
    const s = JSON.stringify(v);
    if (s === undefined) return;
    if (json.length > 1) json += ',';
    json += `${JSON.stringify(k)}:`;
    if (k === 'metadata' && s.length > 2 && s[0] === '{') metaAt = json.length + 1;
    json += s;
  };
  const { resourceVersion: _rv, ...metadata } = obj.metadata ?? {};
  for (const k of Object.keys(obj)) put(k, k === 'metadata' ? metadata : obj[k]);
  if (!('metadata' in obj)) put('metadata', metadata);
  json += '}';
  if (metaAt > 0) encodedJson.set(obj, { json, metaAt });
  return Buffer.from(json);
}

/** The JSON text of objects just encoded, and where their metadata's members start. */
const encodedJson = new WeakMap<KObject, { json: string; metaAt: number }>();
/** Objects returned by a write, with the stored text they came from and their resourceVersion. */
const writtenJson = new WeakMap<KObject, { json: string; metaAt: number; rv: string }>();

/** `obj` as written at `resourceVersion`: a new object (the caller's is left alone). */
export function withRV(obj: KObject, resourceVersion: string): KObject {
  const out = { ...obj, metadata: { ...obj.metadata, resourceVersion } };
  const e = encodedJson.get(obj);
  if (e) writtenJson.set(out, { ...e, rv: resourceVersion });
  return out;
}

/**
 * The API JSON of an object a write returned (its stored text with `metadata.resourceVersion`
 * added), or undefined for any other object. Valid as long as the object is not modified.
 */
export function writtenObjectJson(obj: object): string | undefined {
  const w = writtenJson.get(obj as KObject);
  if (!w) return undefined;
  const { json, metaAt, rv } = w;
  return `${json.slice(0, metaAt)}"resourceVersion":${JSON.stringify(rv)},${json.slice(metaAt)}`;
}

/** Parses a stored value and stamps `resourceVersion` (the mod_revision unless told otherwise). */
export function decode(kv: KeyValue, resourceVersion: string = kv.mod_revision): KObject {
  const obj = JSON.parse(kv.value.toString('utf8')) as KObject;
  obj.metadata = { ...obj.metadata, resourceVersion };
  return obj;
}

/** The end of etcd's range for a key prefix: the prefix with its last byte incremented. */
export function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // empty or all-0xff prefix: to the end of the keyspace
}

/** Range start for a prefix: etcd treats an empty key as "no key", so '' becomes "\0". */
export function prefixStart(prefix: string): Buffer {
  return prefix ? Buffer.from(prefix) : Buffer.from([0]);
}

/** A list cursor: the revision of the first page and the next key, relative to the prefix. */
export interface ContinueToken {
  rv: number;
  start: string;
}

export function encodeContinue(t: ContinueToken): string {
  return Buffer.from(JSON.stringify(t)).toString('base64url');
}

export function decodeContinue(token: string): ContinueToken {
  try {
    const t = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as Partial<ContinueToken>;
    if (Number.isSafeInteger(t.rv) && t.rv! > 0 && typeof t.start === 'string') return t as ContinueToken;
  } catch {
    // fall through
  }
  throw new StoreError('Invalid', 'continue key is not valid');
}

/** Validates a decimal revision string from a client. */
export function parseRevision(rv: string): number {
  const n = /^\d+$/.test(rv) ? Number(rv) : NaN;
  if (!Number.isSafeInteger(n)) throw new StoreError('Invalid', `invalid resource version: ${JSON.stringify(rv)}`);
  return n;
}
