// Core object shapes shared by the store, the API server and the clients.
// They mirror apimachinery's metav1 types closely enough that JSON round-trips with kubectl.
import { randomUUID } from 'node:crypto';

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ManagedFieldsEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time?: string;
  fieldsType: 'FieldsV1';
  fieldsV1: Record<string, unknown>;
  subresource?: string;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
  managedFields?: ManagedFieldsEntry[];
}

/** Any API object. `spec`, `status` and kind-specific top-level fields are left open. */
export interface KObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  observedGeneration?: number;
}

/** A printer column exactly as in a CRD's `additionalPrinterColumns`. */
export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  format?: string;
  description?: string;
  priority?: number;
  jsonPath: string;
}

/** A structural OpenAPI v3 schema as found in a CRD. Kept loose on purpose. */
export type JSONSchema = Record<string, unknown>;

/** Everything the server knows about one served resource (a CRD version or a built-in kind). */
export interface ResourceInfo {
  /** API group; '' for the core group. */
  group: string;
  version: string;
  kind: string;
  listKind: string;
  plural: string;
  singular: string;
  namespaced: boolean;
  shortNames: string[];
  categories: string[];
  /** Whether `/status` is a separate subresource (spec and status writes are split). */
  statusSubresource: boolean;
  printerColumns: PrinterColumn[];
  /** openAPIV3Schema of the object; undefined means "accept anything". */
  schema?: JSONSchema;
  /** Field selector paths besides metadata.name/metadata.namespace, e.g. `status.hostName`. */
  selectableFields: string[];
  /**
   * Field labels whose value is not at the path of the same name: label → dotted JSON path.
   * Only core Events use it (`source` selects `source.component`, as in kube-apiserver).
   */
  selectableFieldPaths?: Record<string, string>;
  /** True for kinds defined by a CRD file (custom resources): no strategic merge patch. */
  custom: boolean;
}

export function groupVersion(r: Pick<ResourceInfo, 'group' | 'version'>): string {
  return r.group ? `${r.group}/${r.version}` : r.version;
}

/** `instances.kova.dev`, or `namespaces` for the core group: the "qualified resource" in messages. */
export function qualifiedResource(r: Pick<ResourceInfo, 'group' | 'plural'>): string {
  return r.group ? `${r.plural}.${r.group}` : r.plural;
}

/** `Instance.kova.dev`, or `Namespace` for core: the "qualified kind" used in Invalid messages. */
export function qualifiedKind(r: Pick<ResourceInfo, 'group' | 'kind'>): string {
  return r.group ? `${r.kind}.${r.group}` : r.kind;
}

/** One field-level problem; becomes a `details.causes[]` entry of a 422 Status. */
export interface FieldCause {
  /** FieldValueInvalid | FieldValueRequired | FieldValueNotSupported | FieldValueDuplicate | FieldValueForbidden | FieldValueTooLong ... */
  reason: string;
  /** Dotted path like `spec.vcpus` or `spec.networks[0].ip`. */
  field: string;
  message: string;
}

/** RFC 3339 with whole seconds, the form Kubernetes uses for metav1.Time. */
let rfcSecond = -1;
let rfcText = '';
export function nowRFC3339(d?: Date): string {
  if (d) return `${d.toISOString().slice(0, 19)}Z`;
  // Every write stamps times at second precision: format each second once.
  const ms = Date.now();
  const sec = Math.floor(ms / 1000);
  if (sec !== rfcSecond) {
    rfcSecond = sec;
    rfcText = `${new Date(sec * 1000).toISOString().slice(0, 19)}Z`;
  }
  return rfcText;
}

/** Kept on a bound Instance until its host's agent has destroyed the domain (or the host is fenced). */
export const INSTANCE_FINALIZER = 'kova.dev/instance-protection';

/**
 * The metadata a server sets on create: a new uid, the creation time and generation 1; what the
 * client sent for resourceVersion, deletionTimestamp and deletionGracePeriodSeconds is dropped.
 */
export function stampCreated(m: ObjectMeta): void {
  m.uid = randomUUID();
  m.creationTimestamp = nowRFC3339();
  m.generation = 1;
  delete m.resourceVersion;
  delete m.deletionTimestamp;
  delete m.deletionGracePeriodSeconds;
}
