// OpenAPI v3 for kubectl: the index at /openapi/v3 and one document per group-version at
// /openapi/v3/api/v1 and /openapi/v3/apis/<group>/<version>, generated from the registry's
// schemas (the CRD files), shaped like kube-apiserver's:
// - PATCH operations carry x-kubernetes-group-version-kind and a `fieldValidation` parameter, so
//   kubectl validates server-side (?fieldValidation=Strict) instead of downloading /openapi/v2;
// - custom kinds list no strategic-merge-patch content type, so client-side `kubectl apply`
//   sends JSON merge patches; built-in kinds do list it;
// - components.schemas carry the CRD descriptions and an x-kubernetes-group-version-kind array,
//   which is what `kubectl explain` prints.
import { createHash } from 'node:crypto';
import { MANAGED_FIELDS_ENTRY_SCHEMA, OBJECT_META_SCHEMA, OWNER_REFERENCE_SCHEMA } from '../api/builtin-kinds.js';
import type { Registry } from '../api/registry.js';
import type { JSONSchema, ResourceInfo } from '../api/types.js';
import { groupVersion } from '../api/types.js';
import { supportsDeleteCollection } from './discovery.js';

type Rec = Record<string, unknown>;

const META = 'io.k8s.apimachinery.pkg.apis.meta.v1';
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

/** `api/v1` for core, `apis/<group>/<version>` otherwise: the key in the index. */
export function gvPath(r: Pick<ResourceInfo, 'group' | 'version'>): string {
  return r.group ? `apis/${r.group}/${r.version}` : `api/${r.version}`;
}

/** `dev.kova.v1alpha1.Instance`, `io.k8s.api.core.v1.Namespace`, `io.k8s.api.coordination.v1.Lease`. */
export function schemaName(r: Pick<ResourceInfo, 'group' | 'version'>, kind: string): string {
  let prefix: string;
  if (!r.group) prefix = 'io.k8s.api.core';
  else if (r.group.endsWith('.k8s.io')) prefix = `io.k8s.api.${r.group.slice(0, -'.k8s.io'.length).split('.').join('.')}`;
  else prefix = r.group.split('.').reverse().join('.');
  return `${prefix}.${r.version}.${kind}`;
}

const upper = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** Operation id part for a group-version: CoreV1, CoordinationV1, KovaDevV1alpha1. */
function gvId(r: Pick<ResourceInfo, 'group' | 'version'>): string {
  const g = !r.group ? 'core' : r.group.endsWith('.k8s.io') ? r.group.slice(0, -'.k8s.io'.length) : r.group;
  return g.split(/[.-]/).map(upper).join('') + upper(r.version);
}

function tag(r: Pick<ResourceInfo, 'group' | 'version'>): string {
  const g = !r.group ? 'core' : r.group.endsWith('.k8s.io') ? r.group.slice(0, -'.k8s.io'.length) : r.group;
  return `${g.split(/[.-]/).map((p, i) => (i ? upper(p) : p)).join('')}_${r.version}`;
}

// ---------------------------------------------------------------------------------------------
// Parameters

const q = (name: string, description: string, type: 'string' | 'boolean' | 'integer' = 'string', required = false): Rec => ({
  name,
  in: 'query',
  description,
  ...(required ? { required: true } : {}),
  schema: { type, uniqueItems: true },
});

const P = {
  name: { name: 'name', in: 'path', description: 'name of the resource', required: true, schema: { type: 'string', uniqueItems: true } },
  namespace: { name: 'namespace', in: 'path', description: 'object name and auth scope, such as for teams and projects', required: true, schema: { type: 'string', uniqueItems: true } },
  pretty: q('pretty', "If 'true', then the output is pretty printed."),
  dryRun: q('dryRun', 'When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed'),
  fieldManager: q('fieldManager', 'fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint. This field is required for apply requests (application/apply-patch) but optional for non-apply patch types.'),
  fieldValidation: q('fieldValidation', 'fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default. - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.'),
  force: q('force', 'Force is going to "force" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.', 'boolean'),
  gracePeriodSeconds: q('gracePeriodSeconds', 'The duration in seconds before the object should be deleted. The value zero indicates delete immediately.', 'integer'),
  propagationPolicy: q('propagationPolicy', "Whether and how garbage collection will be performed. Acceptable values are: 'Orphan', 'Background' and 'Foreground'."),
  allowWatchBookmarks: q('allowWatchBookmarks', 'allowWatchBookmarks requests watch events with type "BOOKMARK". Servers that do not implement bookmarks may ignore this flag.', 'boolean'),
  continue: q('continue', 'The continue option should be set when retrieving more results from the server. Since this value is server defined, clients may only use the continue value from a previous query result with identical query parameters (except for the value of continue).'),
  fieldSelector: q('fieldSelector', 'A selector to restrict the list of returned objects by their fields. Defaults to everything.'),
  labelSelector: q('labelSelector', 'A selector to restrict the list of returned objects by their labels. Defaults to everything.'),
  limit: q('limit', 'limit is a maximum number of responses to return for a list call. If more items exist, the server will set the `continue` field on the list metadata to a value that can be used with the same initial query to retrieve the next set of results.', 'integer'),
  resourceVersion: q('resourceVersion', 'resourceVersion sets a constraint on what resource versions a request may be served from.'),
  resourceVersionMatch: q('resourceVersionMatch', 'resourceVersionMatch determines how resourceVersion is applied to list calls.'),
  sendInitialEvents: q('sendInitialEvents', '`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch stream will begin with synthetic events to produce the current state of objects in the collection.', 'boolean'),
  timeoutSeconds: q('timeoutSeconds', 'Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity.', 'integer'),
  watch: q('watch', 'Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.', 'boolean'),
};

const LIST_PARAMS = [P.allowWatchBookmarks, P.continue, P.fieldSelector, P.labelSelector, P.limit, P.resourceVersion, P.resourceVersionMatch, P.sendInitialEvents, P.timeoutSeconds, P.watch];
const WRITE_PARAMS = [P.dryRun, P.fieldManager, P.fieldValidation];
const PATCH_PARAMS = [P.dryRun, P.fieldManager, P.fieldValidation, P.force];
const DELETE_PARAMS = [P.dryRun, P.gracePeriodSeconds, P.propagationPolicy];

/** Content types kova accepts for PATCH: no strategic merge patch for custom resources. */
export function patchContentTypes(r: Pick<ResourceInfo, 'custom'>): string[] {
  const types = ['application/json-patch+json', 'application/merge-patch+json', 'application/apply-patch+yaml'];
  return r.custom ? types : [...types, 'application/strategic-merge-patch+json'];
}

// ---------------------------------------------------------------------------------------------
// Operations

function json(schemaRef: Rec, watch = false): Rec {
  const c: Rec = { 'application/json': { schema: schemaRef } };
  if (watch) c['application/json;stream=watch'] = { schema: schemaRef };
  return c;
}

const response = (description: string, schemaRef: Rec, watch = false) => ({ description, content: json(schemaRef, watch) });

function operations(r: ResourceInfo): Record<string, Rec> {
  const gvk = { group: r.group, version: r.version, kind: r.kind };
  const obj = ref(schemaName(r, r.kind));
  const list = ref(schemaName(r, r.listKind));
  const status = ref(`${META}.Status`);
  const ns = r.namespaced ? 'Namespaced' : '';
  const id = gvId(r);
  const tags = [tag(r)];
  const base = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
  const collection = r.namespaced ? `${base}/namespaces/{namespace}/${r.plural}` : `${base}/${r.plural}`;
  const item = `${collection}/{name}`;
  const scope = r.namespaced ? [P.namespace] : [];
  const op = (action: string, operationId: string, description: string, extra: Rec): Rec => ({
    tags,
    description,
    operationId,
    ...extra,
    'x-kubernetes-action': action,
    'x-kubernetes-group-version-kind': gvk,
  });
  const patchBody = {
    required: true,
    content: Object.fromEntries(patchContentTypes(r).map((t) => [t, { schema: ref(`${META}.Patch`) }])),
  };
  const write = (verb: string, opId: string, desc: string, params: Rec[], body: Rec | undefined, codes: string[]) =>
    op(verb, opId, desc, {
      parameters: params,
      ...(body ? { requestBody: body } : {}),
      responses: Object.fromEntries(codes.map((c) => [c, response(c === '201' ? 'Created' : c === '202' ? 'Accepted' : 'OK', obj)])),
    });

  const paths: Record<string, Rec> = {};
  paths[collection] = {
    parameters: [...scope, P.pretty],
    get: op('list', `list${id}${ns}${r.kind}`, `list or watch objects of kind ${r.kind}`, {
      parameters: LIST_PARAMS,
      responses: { '200': response('OK', list, true) },
    }),
    post: write('post', `create${id}${ns}${r.kind}`, `create a ${r.kind}`, WRITE_PARAMS, { required: true, content: json(obj) }, ['200', '201', '202']),
  };
  if (supportsDeleteCollection(r)) {
    paths[collection].delete = op('deletecollection', `deletecollection${id}${ns}${r.kind}`, `delete collection of ${r.kind}`, {
      parameters: [...DELETE_PARAMS, ...LIST_PARAMS.filter((p) => p !== P.watch && p !== P.allowWatchBookmarks)],
      requestBody: { content: json(ref(`${META}.DeleteOptions`)) },
      responses: { '200': response('OK', status) },
    });
  }
  paths[item] = {
    parameters: [P.name, ...scope, P.pretty],
    get: op('get', `read${id}${ns}${r.kind}`, `read the specified ${r.kind}`, { responses: { '200': response('OK', obj) } }),
    put: write('put', `replace${id}${ns}${r.kind}`, `replace the specified ${r.kind}`, WRITE_PARAMS, { required: true, content: json(obj) }, ['200', '201']),
    patch: write('patch', `patch${id}${ns}${r.kind}`, `partially update the specified ${r.kind}`, PATCH_PARAMS, patchBody, ['200', '201']),
    delete: op('delete', `delete${id}${ns}${r.kind}`, `delete a ${r.kind}`, {
      parameters: DELETE_PARAMS,
      requestBody: { content: json(ref(`${META}.DeleteOptions`)) },
      responses: { '200': response('OK', obj), '202': response('Accepted', obj) },
    }),
  };
  if (r.statusSubresource) {
    paths[`${item}/status`] = {
      parameters: [P.name, ...scope, P.pretty],
      get: op('get', `read${id}${ns}${r.kind}Status`, `read status of the specified ${r.kind}`, { responses: { '200': response('OK', obj) } }),
      put: write('put', `replace${id}${ns}${r.kind}Status`, `replace status of the specified ${r.kind}`, WRITE_PARAMS, { required: true, content: json(obj) }, ['200', '201']),
      patch: write('patch', `patch${id}${ns}${r.kind}Status`, `partially update status of the specified ${r.kind}`, PATCH_PARAMS, patchBody, ['200', '201']),
    };
  }
  if (r.namespaced) {
    paths[`${base}/${r.plural}`] = {
      parameters: [P.pretty],
      get: op('list', `list${id}${r.kind}ForAllNamespaces`, `list or watch objects of kind ${r.kind}`, {
        parameters: LIST_PARAMS,
        responses: { '200': response('OK', list, true) },
      }),
    };
  }
  return paths;
}

// ---------------------------------------------------------------------------------------------
// Schemas

const API_VERSION_DESC =
  'APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources';
const KIND_DESC =
  'Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds';

/** The published schema of a kind: its own schema with metadata pointing at ObjectMeta. */
function kindSchema(r: ResourceInfo): JSONSchema {
  const s: JSONSchema = r.schema ? structuredClone(r.schema) : { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
  const props = { ...((s.properties as Rec | undefined) ?? {}) };
  props.apiVersion = { description: API_VERSION_DESC, type: 'string' };
  props.kind = { description: KIND_DESC, type: 'string' };
  props.metadata = {
    description: "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
    allOf: [ref(`${META}.ObjectMeta`)],
    default: {},
  };
  s.properties = props;
  s.type = 'object';
  s.description ??= `${r.kind} of ${groupVersion(r)}.`;
  s['x-kubernetes-group-version-kind'] = [{ group: r.group, kind: r.kind, version: r.version }];
  return s;
}

function listSchema(r: ResourceInfo): JSONSchema {
  return {
    description: `${r.listKind} is a list of ${r.kind}`,
    type: 'object',
    required: ['items'],
    properties: {
      apiVersion: { description: API_VERSION_DESC, type: 'string' },
      items: { description: `List of ${r.plural}.`, type: 'array', items: { allOf: [ref(schemaName(r, r.kind))], default: {} } },
      kind: { description: KIND_DESC, type: 'string' },
      metadata: { description: "Standard list metadata.", allOf: [ref(`${META}.ListMeta`)], default: {} },
    },
    'x-kubernetes-group-version-kind': [{ group: r.group, kind: r.listKind, version: r.version }],
  };
}

/** The apimachinery meta/v1 schemas every document references. */
function metaSchemas(): Record<string, JSONSchema> {
  const om = structuredClone(OBJECT_META_SCHEMA) as { properties: Record<string, JSONSchema> };
  om.properties.ownerReferences = { ...om.properties.ownerReferences, items: { allOf: [ref(`${META}.OwnerReference`)], default: {} } };
  om.properties.managedFields = { ...om.properties.managedFields, items: { allOf: [ref(`${META}.ManagedFieldsEntry`)], default: {} } };
  const str = (description: string): JSONSchema => ({ description, type: 'string' });
  return {
    [`${META}.ObjectMeta`]: om,
    [`${META}.OwnerReference`]: structuredClone(OWNER_REFERENCE_SCHEMA),
    [`${META}.ManagedFieldsEntry`]: structuredClone(MANAGED_FIELDS_ENTRY_SCHEMA),
    [`${META}.ListMeta`]: {
      description: 'ListMeta describes metadata that synthetic resources must have, including lists and various status objects.',
      type: 'object',
      properties: {
        continue: str('continue may be set if the user set a limit on the number of items returned, and indicates that the server has more data available.'),
        remainingItemCount: { description: 'remainingItemCount is the number of subsequent items in the list which are not included in this list response.', type: 'integer', format: 'int64' },
        resourceVersion: str("String that identifies the server's internal version of this object that can be used by clients to determine when objects have changed."),
        selfLink: str('Deprecated: selfLink is a legacy read-only field that is no longer populated by the system.'),
      },
    },
    [`${META}.Patch`]: { description: 'Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.', type: 'object' },
    [`${META}.Preconditions`]: {
      description: 'Preconditions must be fulfilled before an operation (update, delete, etc.) is carried out.',
      type: 'object',
      properties: { resourceVersion: str('Specifies the target ResourceVersion'), uid: str('Specifies the target UID.') },
    },
    [`${META}.DeleteOptions`]: {
      description: 'DeleteOptions may be provided when deleting an API object.',
      type: 'object',
      properties: {
        apiVersion: { description: API_VERSION_DESC, type: 'string' },
        kind: { description: KIND_DESC, type: 'string' },
        dryRun: { description: 'When present, indicates that modifications should not be persisted.', type: 'array', items: { type: 'string', default: '' } },
        gracePeriodSeconds: { description: 'The duration in seconds before the object should be deleted.', type: 'integer', format: 'int64' },
        preconditions: { description: 'Must be fulfilled before a deletion is carried out.', allOf: [ref(`${META}.Preconditions`)] },
        propagationPolicy: str("Whether and how garbage collection will be performed: 'Orphan', 'Background' or 'Foreground'."),
      },
      'x-kubernetes-group-version-kind': [{ group: '', kind: 'DeleteOptions', version: 'v1' }],
    },
    [`${META}.StatusCause`]: {
      description: 'StatusCause provides more information about an api.Status failure, including cases when multiple errors are encountered.',
      type: 'object',
      properties: {
        field: str('The field of the resource that has caused this error, as named by its JSON serialization.'),
        message: str('A human-readable description of the cause of the error.'),
        reason: str('A machine-readable description of the cause of the error.'),
      },
    },
    [`${META}.StatusDetails`]: {
      description: 'StatusDetails is a set of additional properties that MAY be set by the server to provide additional information about a response.',
      type: 'object',
      properties: {
        causes: { description: 'The Causes array includes more details associated with the StatusReason failure.', type: 'array', items: { allOf: [ref(`${META}.StatusCause`)], default: {} } },
        group: str('The group attribute of the resource associated with the status StatusReason.'),
        kind: str('The kind attribute of the resource associated with the status StatusReason.'),
        name: str('The name attribute of the resource associated with the status StatusReason.'),
        retryAfterSeconds: { description: 'If specified, the time in seconds before the operation should be retried.', type: 'integer', format: 'int32' },
        uid: str('UID of the resource.'),
      },
    },
    [`${META}.Status`]: {
      description: 'Status is a return value for calls that don\'t return other objects.',
      type: 'object',
      properties: {
        apiVersion: { description: API_VERSION_DESC, type: 'string' },
        code: { description: 'Suggested HTTP return code for this status, 0 if not set.', type: 'integer', format: 'int32' },
        details: { description: 'Extended data associated with the reason.', allOf: [ref(`${META}.StatusDetails`)] },
        kind: { description: KIND_DESC, type: 'string' },
        message: str('A human-readable description of the status of this operation.'),
        metadata: { description: 'Standard list metadata.', allOf: [ref(`${META}.ListMeta`)], default: {} },
        reason: str('A machine-readable description of why this operation is in the "Failure" status.'),
        status: str('Status of the operation. One of: "Success" or "Failure".'),
      },
      'x-kubernetes-group-version-kind': [{ group: '', kind: 'Status', version: 'v1' }],
    },
  };
}

// ---------------------------------------------------------------------------------------------

function build(registry: Registry, path: string): Rec | undefined {
  const resources = registry.all().filter((r) => gvPath(r) === path);
  if (!resources.length) return undefined;
  const paths: Record<string, Rec> = {};
  const schemas: Record<string, JSONSchema> = metaSchemas();
  for (const r of resources) {
    Object.assign(paths, operations(r));
    schemas[schemaName(r, r.kind)] = kindSchema(r);
    schemas[schemaName(r, r.listKind)] = listSchema(r);
  }
  const sortedSchemas = Object.fromEntries(Object.entries(schemas).sort(([a], [b]) => a.localeCompare(b)));
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes', version: 'v1.32.0' },
    paths,
    components: {
      schemas: sortedSchemas,
      securitySchemes: { BearerToken: { type: 'apiKey', description: 'Bearer Token authentication', name: 'authorization', in: 'header' } },
    },
    security: [{ BearerToken: [] }],
  };
}

interface Built {
  doc: Rec;
  hash: string;
}

// The registry does not change after it is loaded, so documents are built once per registry.
const cache = new WeakMap<Registry, Map<string, Built | undefined>>();

function built(registry: Registry, path: string): Built | undefined {
  let m = cache.get(registry);
  if (!m) cache.set(registry, (m = new Map()));
  if (!m.has(path)) {
    const doc = build(registry, path);
    m.set(path, doc && { doc, hash: createHash('sha512').update(JSON.stringify(doc)).digest('hex').toUpperCase() });
  }
  return m.get(path);
}

/** `/openapi/v3`: one entry per served group-version, with a content hash for HTTP caching. */
export function openapiV3Index(registry: Registry): { paths: Record<string, { serverRelativeURL: string }> } {
  const paths: Record<string, { serverRelativeURL: string }> = {};
  for (const gv of registry.groupVersions()) {
    const p = gv.includes('/') ? `apis/${gv}` : `api/${gv}`;
    const b = built(registry, p);
    if (b) paths[p] = { serverRelativeURL: `/openapi/v3/${p}?hash=${b.hash}` };
  }
  return { paths };
}

/** The document for `api/v1` or `apis/<group>/<version>` (leading slash and query ignored), or undefined. */
export function openapiV3Document(registry: Registry, path: string): object | undefined {
  return built(registry, path.replace(/^\/+/, '').replace(/[?#].*$/, '').replace(/\/+$/, ''))?.doc;
}

/** The content hash of a group-version document (what `?hash=` in the index carries). */
export function openapiV3Hash(registry: Registry, path: string): string | undefined {
  return built(registry, path.replace(/^\/+/, '').replace(/[?#].*$/, '').replace(/\/+$/, ''))?.hash;
}
