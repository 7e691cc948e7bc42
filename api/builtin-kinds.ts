// The Kubernetes core kinds kova serves besides its CRDs: Namespace, Event (v1 and
// events.k8s.io/v1), Lease, Secret and ConfigMap. Their schemas follow the upstream types
// closely enough for validation, pruning, OpenAPI and `kubectl explain`; where modelling every
// field is not worth it the schema keeps unknown fields (x-kubernetes-preserve-unknown-fields).
import type { JSONSchema, PrinterColumn, ResourceInfo } from './types.js';

type Props = Record<string, JSONSchema>;

const str = (description: string, extra: JSONSchema = {}): JSONSchema => ({ description, type: 'string', ...extra });
const int32 = (description: string, extra: JSONSchema = {}): JSONSchema => ({ description, type: 'integer', format: 'int32', ...extra });
const bool = (description: string): JSONSchema => ({ description, type: 'boolean' });
const time = (description: string): JSONSchema => ({ description, type: 'string', format: 'date-time' });
/** metav1.MicroTime: RFC 3339 with microseconds. */
const microTime = (description: string): JSONSchema => ({ description, type: 'string', format: 'date-time' });
const obj = (description: string, properties: Props, required?: string[]): JSONSchema =>
  required?.length ? { description, type: 'object', properties, required } : { description, type: 'object', properties };
const stringMap = (description: string, format?: string): JSONSchema => ({
  description,
  type: 'object',
  additionalProperties: format ? { type: 'string', format } : { type: 'string' },
});

const API_VERSION = str(
  'APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values.',
);
const KIND = str(
  'Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. In CamelCase.',
);
/** Metadata is described by ObjectMeta in OpenAPI and checked by validateMetadata, as in a CRD. */
const METADATA: JSONSchema = { description: "Standard object's metadata.", type: 'object' };

function root(description: string, properties: Props, required?: string[]): JSONSchema {
  return obj(description, { apiVersion: API_VERSION, kind: KIND, metadata: METADATA, ...properties }, required);
}

/** metav1.OwnerReference. */
export const OWNER_REFERENCE_SCHEMA: JSONSchema = obj(
  'OwnerReference contains enough information to let you identify an owning object. An owning object must be in the same namespace as the dependent, or be cluster-scoped, so there is no namespace field.',
  {
    apiVersion: str('API version of the referent.'),
    kind: str('Kind of the referent.'),
    name: str('Name of the referent.'),
    uid: str('UID of the referent.'),
    controller: bool('If true, this reference points to the managing controller.'),
    blockOwnerDeletion: bool('If true, AND if the owner has the "foregroundDeletion" finalizer, then the owner cannot be deleted from the key-value store until this reference is removed.'),
  },
  ['apiVersion', 'kind', 'name', 'uid'],
);

/** metav1.ManagedFieldsEntry. */
export const MANAGED_FIELDS_ENTRY_SCHEMA: JSONSchema = obj(
  'ManagedFieldsEntry is a workflow-id, a FieldSet and the group version of the resource that the fieldset applies to.',
  {
    manager: str('Manager is an identifier of the workflow managing these fields.'),
    operation: str("Operation is the type of operation which lead to this ManagedFieldsEntry being created. The only valid values for this field are 'Apply' and 'Update'."),
    apiVersion: str('APIVersion defines the version of this resource that this field set applies to.'),
    time: time('Time is the timestamp of when the ManagedFields entry was added.'),
    fieldsType: str('FieldsType is the discriminator for the different fields format and version. There is currently only one possible value: "FieldsV1".'),
    fieldsV1: { description: 'FieldsV1 holds the first JSON version format as described in the "FieldsV1" type.', type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
    subresource: str('Subresource is the name of the subresource used to update that object, or empty string if the object was updated through the main resource.'),
  },
);

/** metav1.ObjectMeta: the fields every object's metadata may have (anything else is pruned). */
export const OBJECT_META_SCHEMA: JSONSchema = obj(
  'ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.',
  {
    name: str('Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated.'),
    generateName: str('GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF the Name field has not been provided. The server appends a random suffix to it.'),
    namespace: str('Namespace defines the space within which each name must be unique. Not all objects are required to be scoped to a namespace - the value of this field for those objects will be empty. In kova a namespace is a project.'),
    selfLink: str('Deprecated: selfLink is a legacy read-only field that is no longer populated by the system.'),
    uid: str('UID is the unique in time and space value for this object. It is typically generated by the server on successful creation of a resource and is not allowed to change on PUT operations.'),
    resourceVersion: str('An opaque value that represents the internal version of this object that can be used by clients to determine when objects have changed. May be used for optimistic concurrency, change detection, and the watch operation on a resource or set of resources.'),
    generation: { description: 'A sequence number representing a specific generation of the desired state. Populated by the system. Read-only.', type: 'integer', format: 'int64' },
    creationTimestamp: time('CreationTimestamp is a timestamp representing the server time when this object was created. Populated by the system. Read-only.'),
    deletionTimestamp: time('DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted. It is set by the server when a graceful deletion is requested by the user, and is not directly settable by a client.'),
    deletionGracePeriodSeconds: { description: 'Number of seconds allowed for this object to gracefully terminate before it will be removed from the system. Only set when deletionTimestamp is also set.', type: 'integer', format: 'int64' },
    labels: stringMap('Map of string keys and values that can be used to organize and categorize (scope and select) objects.'),
    annotations: stringMap('Annotations is an unstructured key value map stored with a resource that may be set by external tools to store and retrieve arbitrary metadata.'),
    ownerReferences: {
      description: 'List of objects depended by this object. If ALL objects in the list have been deleted, this object will be garbage collected.',
      type: 'array',
      items: OWNER_REFERENCE_SCHEMA,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['uid'],
    },
    finalizers: {
      description: 'Must be empty before the object is deleted from the registry. Each entry is an identifier for the responsible component that will remove the entry from the list.',
      type: 'array',
      items: { type: 'string' },
      'x-kubernetes-list-type': 'set',
    },
    managedFields: {
      description: 'ManagedFields maps workflow-id and version to the set of fields that are managed by that workflow.',
      type: 'array',
      items: MANAGED_FIELDS_ENTRY_SCHEMA,
      'x-kubernetes-list-type': 'atomic',
    },
  },
);

const AGE: PrinterColumn = {
  name: 'Age',
  type: 'date',
  jsonPath: '.metadata.creationTimestamp',
  description: 'CreationTimestamp is a timestamp representing the server time when this object was created.',
};

function info(r: Omit<ResourceInfo, 'listKind' | 'singular' | 'categories' | 'custom' | 'selectableFields' | 'shortNames'> &
  Partial<Pick<ResourceInfo, 'shortNames' | 'selectableFields' | 'selectableFieldPaths'>>): ResourceInfo {
  return {
    listKind: `${r.kind}List`,
    singular: r.kind.toLowerCase(),
    categories: [],
    custom: false,
    shortNames: [],
    selectableFields: [],
    ...r,
  };
}

const objectReference = (description: string): JSONSchema =>
  obj(description, {
    apiVersion: str('API version of the referent.'),
    kind: str('Kind of the referent.'),
    name: str('Name of the referent.'),
    namespace: str('Namespace of the referent.'),
    uid: str('UID of the referent.'),
    resourceVersion: str('Specific resourceVersion to which this reference is made, if any.'),
    fieldPath: str(
      'If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].',
    ),
  });

const namespaceCondition = obj(
  'NamespaceCondition contains details about the state of a namespace.',
  {
    type: str('Type of namespace controller condition.'),
    status: str('Status of the condition, one of True, False, Unknown.'),
    reason: str('Unique, one-word, CamelCase reason for the condition\'s last transition.'),
    message: str('Human-readable message indicating details about last transition.'),
    lastTransitionTime: time('Last time the condition transitioned from one status to another.'),
  },
  ['type', 'status'],
);

export const NAMESPACE: ResourceInfo = info({
  group: '',
  version: 'v1',
  kind: 'Namespace',
  plural: 'namespaces',
  namespaced: false,
  shortNames: ['ns'],
  statusSubresource: true,
  printerColumns: [
    { name: 'Status', type: 'string', jsonPath: '.status.phase', description: 'The status of the namespace.' },
    AGE,
  ],
  selectableFields: ['status.phase'],
  schema: root('Namespace provides a scope for Names. Use of multiple namespaces is optional. In kova a namespace is a project.', {
    spec: obj('Spec defines the behavior of the Namespace.', {
      finalizers: {
        description: 'Finalizers is an opaque list of values that must be empty to permanently remove object from storage.',
        type: 'array',
        items: { type: 'string' },
        'x-kubernetes-list-type': 'atomic',
      },
    }),
    status: obj('Status describes the current status of a Namespace.', {
      phase: str('Phase is the current lifecycle phase of the namespace.', { enum: ['Active', 'Terminating'] }),
      conditions: {
        description: "Represents the latest available observations of a namespace's current state.",
        type: 'array',
        items: namespaceCondition,
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['type'],
      },
    }),
  }),
});

const coreEventSeries = obj('EventSeries contain information on series of events, i.e. thing that was/is happening continuously for some time.', {
  count: int32('Number of occurrences in this series up to the last heartbeat time.'),
  lastObservedTime: microTime('Time of the last occurrence observed.'),
});

export const EVENT: ResourceInfo = info({
  group: '',
  version: 'v1',
  kind: 'Event',
  plural: 'events',
  namespaced: true,
  shortNames: ['ev'],
  statusSubresource: false,
  // kubectl's own table is LAST SEEN, TYPE, REASON, OBJECT (kind/name), MESSAGE; a JSONPath
  // cannot join kind and name, so the object's kind is a separate wide column.
  printerColumns: [
    { name: 'Last Seen', type: 'date', jsonPath: '.lastTimestamp', description: 'The time at which the most recent occurrence of this event was recorded.' },
    { name: 'Type', type: 'string', jsonPath: '.type', description: 'Type of this event (Normal, Warning).' },
    { name: 'Reason', type: 'string', jsonPath: '.reason', description: 'Short, machine understandable reason for the transition.' },
    { name: 'Object', type: 'string', jsonPath: '.involvedObject.name', description: 'The object that this event is about.' },
    { name: 'Message', type: 'string', jsonPath: '.message', description: 'A human-readable description of the status of this operation.' },
    { name: 'Kind', type: 'string', jsonPath: '.involvedObject.kind', description: 'Kind of the object that this event is about.', priority: 1 },
    { name: 'Source', type: 'string', jsonPath: '.source.component', description: 'The component reporting this event.', priority: 1 },
    { name: 'First Seen', type: 'date', jsonPath: '.firstTimestamp', description: 'The time at which the event was first recorded.', priority: 1 },
    { name: 'Count', type: 'integer', jsonPath: '.count', description: 'The number of times this event has occurred.', priority: 1 },
  ],
  selectableFields: [
    'involvedObject.kind',
    'involvedObject.namespace',
    'involvedObject.name',
    'involvedObject.uid',
    'involvedObject.apiVersion',
    'involvedObject.resourceVersion',
    'involvedObject.fieldPath',
    'reason',
    'reportingComponent',
    'source',
    'type',
  ],
  // kube-apiserver's field label `source` selects on the reporting component.
  selectableFieldPaths: { source: 'source.component' },
  schema: root(
    'Event is a report of an event somewhere in the cluster.',
    {
      involvedObject: objectReference('The object that this event is about.'),
      reason: str('This should be a short, machine understandable string that gives the reason for the transition into the object\'s current status.'),
      message: str('A human-readable description of the status of this operation.'),
      type: str('Type of this event (Normal, Warning), new types could be added in the future.'),
      source: obj('The component reporting this event. Should be a short machine understandable string.', {
        component: str('Component from which the event is generated.'),
        host: str('Node name on which the event is generated.'),
      }),
      firstTimestamp: time('The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)'),
      lastTimestamp: time('The time at which the most recent occurrence of this event was recorded.'),
      count: int32('The number of times this event has occurred.'),
      eventTime: microTime('Time when this Event was first observed.'),
      series: coreEventSeries,
      action: str('What action was taken/failed regarding to the Regarding object.'),
      related: objectReference('Optional secondary object for more complex actions.'),
      reportingComponent: str('Name of the controller that emitted this Event, e.g. `kubernetes.io/kubelet`.'),
      reportingInstance: str('ID of the controller instance, e.g. `kubelet-xyzf`.'),
    },
    ['metadata', 'involvedObject'],
  ),
});

export const EVENTS_V1_EVENT: ResourceInfo = info({
  group: 'events.k8s.io',
  version: 'v1',
  kind: 'Event',
  plural: 'events',
  namespaced: true,
  shortNames: ['ev'],
  statusSubresource: false,
  printerColumns: [
    { name: 'Event Time', type: 'date', jsonPath: '.eventTime', description: 'Time when this Event was first observed.' },
    { name: 'Type', type: 'string', jsonPath: '.type', description: 'Type of this event (Normal, Warning).' },
    { name: 'Reason', type: 'string', jsonPath: '.reason', description: 'Why the action was taken.' },
    { name: 'Object', type: 'string', jsonPath: '.regarding.name', description: 'The object this Event is about.' },
    { name: 'Note', type: 'string', jsonPath: '.note', description: 'A human-readable description of the status of this operation.' },
    { name: 'Kind', type: 'string', jsonPath: '.regarding.kind', description: 'Kind of the object this Event is about.', priority: 1 },
    { name: 'Controller', type: 'string', jsonPath: '.reportingController', description: 'Name of the controller that emitted this Event.', priority: 1 },
  ],
  selectableFields: [
    'regarding.kind',
    'regarding.namespace',
    'regarding.name',
    'regarding.uid',
    'regarding.apiVersion',
    'regarding.resourceVersion',
    'regarding.fieldPath',
    'reason',
    'reportingController',
    'type',
  ],
  schema: root(
    'Event is a report of an event somewhere in the cluster. It generally denotes some state change in the system.',
    {
      eventTime: microTime('eventTime is the time when this Event was first observed. It is required.'),
      series: obj(
        'series is data about the Event series this event represents or nil if it\'s a singleton Event.',
        {
          count: int32('count is the number of occurrences in this series up to the last heartbeat time.'),
          lastObservedTime: microTime('lastObservedTime is the time when last Event from the series was seen before last heartbeat.'),
        },
        ['count', 'lastObservedTime'],
      ),
      reportingController: str('reportingController is the name of the controller that emitted this Event, e.g. `kubernetes.io/kubelet`.'),
      reportingInstance: str('reportingInstance is the ID of the controller instance, e.g. `kubelet-xyzf`.'),
      action: str('action is what action was taken/failed regarding to the regarding object.'),
      reason: str('reason is why the action was taken. It is human-readable.'),
      regarding: objectReference('regarding contains the object this Event is about.'),
      related: objectReference('related is the optional secondary object for more complex actions.'),
      note: str('note is a human-readable description of the status of this operation. Maximal length of the note is 1kB.', { maxLength: 1024 }),
      type: str('type is the type of this event (Normal, Warning), new types could be added in the future.'),
      deprecatedSource: obj('deprecatedSource is the deprecated field assuring backward compatibility with core.v1 Event type.', {
        component: str('Component from which the event is generated.'),
        host: str('Node name on which the event is generated.'),
      }),
      deprecatedFirstTimestamp: time('deprecatedFirstTimestamp is the deprecated field assuring backward compatibility with core.v1 Event type.'),
      deprecatedLastTimestamp: time('deprecatedLastTimestamp is the deprecated field assuring backward compatibility with core.v1 Event type.'),
      deprecatedCount: int32('deprecatedCount is the deprecated field assuring backward compatibility with core.v1 Event type.'),
    },
    ['eventTime'],
  ),
});

export const LEASE: ResourceInfo = info({
  group: 'coordination.k8s.io',
  version: 'v1',
  kind: 'Lease',
  plural: 'leases',
  namespaced: true,
  statusSubresource: false,
  printerColumns: [
    { name: 'Holder', type: 'string', jsonPath: '.spec.holderIdentity', description: 'The identity of the holder of a current lease.' },
    AGE,
  ],
  schema: root('Lease defines a lease concept. kova node agents renew one per host in namespace kova-system as their heartbeat.', {
    spec: obj('spec contains the specification of the Lease.', {
      holderIdentity: str('holderIdentity contains the identity of the holder of a current lease.'),
      leaseDurationSeconds: int32(
        'leaseDurationSeconds is a duration that candidates for a lease need to wait to force acquire it. This is measured against the time of last observed renewTime.',
      ),
      acquireTime: microTime('acquireTime is a time when the current lease was acquired.'),
      renewTime: microTime('renewTime is a time when the current holder of a lease has last updated the lease.'),
      leaseTransitions: int32('leaseTransitions is the number of transitions of a lease between holders.'),
      preferredHolder: str('PreferredHolder signals to a lease holder that the lease has a more optimal holder and should be given up.'),
      strategy: str('Strategy indicates the strategy for picking the leader for coordinated leader election.'),
    }),
  }),
});

export const SECRET: ResourceInfo = info({
  group: '',
  version: 'v1',
  kind: 'Secret',
  plural: 'secrets',
  namespaced: true,
  statusSubresource: false,
  printerColumns: [{ name: 'Type', type: 'string', jsonPath: '.type', description: 'Used to facilitate programmatic handling of secret data.' }, AGE],
  selectableFields: ['type'],
  schema: root('Secret holds secret data of a certain type. The total bytes of the values in the Data field must be less than MaxSecretSize bytes.', {
    data: stringMap(
      'Data contains the secret data. Each key must consist of alphanumeric characters, \'-\', \'_\' or \'.\'. The serialized form of the secret data is a base64 encoded string.',
      'byte',
    ),
    stringData: stringMap(
      'stringData allows specifying non-binary secret data in string form. It is provided as a write-only input field for convenience. All keys and values are merged into the data field on write.',
    ),
    type: str('Used to facilitate programmatic handling of secret data.', { default: 'Opaque' }),
    immutable: bool('Immutable, if set to true, ensures that data stored in the Secret cannot be updated (only object metadata can be modified).'),
  }),
});

export const CONFIG_MAP: ResourceInfo = info({
  group: '',
  version: 'v1',
  kind: 'ConfigMap',
  plural: 'configmaps',
  namespaced: true,
  shortNames: ['cm'],
  statusSubresource: false,
  printerColumns: [AGE],
  schema: root('ConfigMap holds configuration data for pods to consume.', {
    data: stringMap('Data contains the configuration data. Each key must consist of alphanumeric characters, \'-\', \'_\' or \'.\'.'),
    binaryData: stringMap('BinaryData contains the binary data. Each key must consist of alphanumeric characters, \'-\', \'_\' or \'.\'.', 'byte'),
    immutable: bool('Immutable, if set to true, ensures that data stored in the ConfigMap cannot be updated (only object metadata can be modified).'),
  }),
});

/** Every built-in kind, core group first. Fresh copies, so callers may not alias each other. */
export function builtinKinds(): ResourceInfo[] {
  return [NAMESPACE, EVENT, SECRET, CONFIG_MAP, EVENTS_V1_EVENT, LEASE].map((r) => structuredClone(r));
}
