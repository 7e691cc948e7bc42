// Metadata-only responses (`Accept: application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1`,
// `...as=PartialObjectMetadataList...` for lists), as kube-apiserver's handlers/response.go
// answers them: each object becomes `{kind: PartialObjectMetadata, apiVersion: meta.k8s.io/v1,
// metadata}` with its whole ObjectMeta. Controllers that need only metadata of every kind (the
// garbage collector, the namespace controller) list and watch this way, so status-heavy objects
// cross the wire as a fraction of their size.
import type { KObject } from '../api/types.js';
import { ApiError } from './status.js';

export type PartialKind = 'PartialObjectMetadata' | 'PartialObjectMetadataList';

export interface MetadataTarget {
  kind: PartialKind;
  apiVersion: 'meta.k8s.io/v1' | 'meta.k8s.io/v1beta1';
}

export interface PartialObjectMetadata {
  kind: 'PartialObjectMetadata';
  apiVersion: string;
  metadata: KObject['metadata'];
}

const JSON_TYPES = new Set(['application/json', 'application/*', '*/*']);

export const notAcceptable = (message: string) => new ApiError(406, 'NotAcceptable', message);

/**
 * The metadata form an Accept header asks for, or undefined for plain objects. Media ranges are
 * tried in order, as kube's negotiation does: the first JSON range either asking for a
 * metadata form of meta.k8s.io v1/v1beta1, or asking for nothing special, wins. A header whose
 * only ranges ask for metadata in a form this server cannot produce is a 406.
 */
export function metadataTarget(accept: string | undefined): MetadataTarget | undefined {
  if (!accept || !accept.includes('PartialObjectMetadata')) return undefined;
  let refused = false;
  for (const range of accept.split(',')) {
    const [type, ...rawParams] = range.split(';').map((s) => s.trim());
    const params = new Map<string, string>();
    for (const p of rawParams) {
      const i = p.indexOf('=');
      if (i > 0) params.set(p.slice(0, i).trim().toLowerCase(), p.slice(i + 1).trim().replace(/^"|"$/g, ''));
    }
    const as = params.get('as');
    const json = JSON_TYPES.has(type!.toLowerCase());
    if (as === 'PartialObjectMetadata' || as === 'PartialObjectMetadataList') {
      const v = params.get('v');
      if (json && params.get('g') === 'meta.k8s.io' && (v === 'v1' || v === 'v1beta1')) return { kind: as, apiVersion: `meta.k8s.io/${v}` };
      refused = true;
      continue;
    }
    if (json && !as) return undefined;
  }
  if (refused) throw notAcceptable('only the following media types are accepted: application/json, application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1, application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1, application/json;as=Table;g=meta.k8s.io;v=v1');
  return undefined;
}

/** One object as PartialObjectMetadata (406 if a list form was asked for a single object). */
export function asPartialObjectMetadata(obj: KObject, target: MetadataTarget): PartialObjectMetadata {
  if (target.kind !== 'PartialObjectMetadata') throw notAcceptable('you requested PartialObjectMetadataList, but the requested object is not a list');
  return partial(obj, target.apiVersion);
}

/** A list as PartialObjectMetadataList (406 if the single-object form was asked for a list). */
export function asPartialObjectMetadataList(items: readonly KObject[], listMeta: Record<string, unknown>, target: MetadataTarget) {
  if (target.kind !== 'PartialObjectMetadataList') throw notAcceptable('you requested PartialObjectMetadata, but the requested object is a list');
  return { kind: 'PartialObjectMetadataList', apiVersion: target.apiVersion, metadata: listMeta, items: items.map((o) => partial(o, target.apiVersion)) };
}

// Watch events: every metadata watcher of a resource gets the same stored object in one
// synchronous fan-out (see watch.ts), so the partial form of the current event's object is made
// once and kept only until the next event (not for the life of the object in the hub's history).
let cachedSource: KObject | undefined;
const cachedPartials = new Map<string, PartialObjectMetadata>();

/** The partial form of a watched object, shared by all watchers that asked for the same version. */
export function watchPartial(obj: KObject, target: MetadataTarget): PartialObjectMetadata {
  if (obj !== cachedSource) {
    cachedSource = obj;
    cachedPartials.clear();
  }
  let p = cachedPartials.get(target.apiVersion);
  if (!p) cachedPartials.set(target.apiVersion, (p = partial(obj, target.apiVersion)));
  return p;
}

function partial(obj: KObject, apiVersion: string): PartialObjectMetadata {
  return { kind: 'PartialObjectMetadata', apiVersion, metadata: obj.metadata };
}
