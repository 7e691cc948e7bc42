// The building blocks of protobuf kind schemas (field number -> JSON name and type) shared by
// protobuf.ts and the per-area kind tables (protobuf-rbac.ts, protobuf-quota.ts, protobuf-reviews.ts).

export type Scalar = 'string' | 'bytes' | 'bool' | 'int32' | 'int64';
/** `map<string,Quantity>`: a ResourceList (resource.Quantity is the message {1 string}), a JSON map of strings. */
export type Special = 'time' | 'microtime' | 'map<string,string>' | 'map<string,bytes>' | 'map<string,Quantity>' | 'json';
export type FieldType = Scalar | Special | Schema;

export interface FieldSpec {
  name: string;
  type: FieldType;
  repeated?: boolean;
  /** Go pointer field (or a struct without omitempty): keep zero values that are on the wire. */
  keepZero?: boolean;
}

export type Schema = { readonly [field: number]: FieldSpec };

export const TIME: FieldType = 'time';
export const MICRO: FieldType = 'microtime';

export const OwnerReference: Schema = {
  5: { name: 'apiVersion', type: 'string', keepZero: true },
  1: { name: 'kind', type: 'string', keepZero: true },
  3: { name: 'name', type: 'string', keepZero: true },
  4: { name: 'uid', type: 'string', keepZero: true },
  6: { name: 'controller', type: 'bool', keepZero: true },
  7: { name: 'blockOwnerDeletion', type: 'bool', keepZero: true },
};

export const ManagedFieldsEntry: Schema = {
  1: { name: 'manager', type: 'string' },
  2: { name: 'operation', type: 'string' },
  3: { name: 'apiVersion', type: 'string' },
  4: { name: 'time', type: TIME },
  6: { name: 'fieldsType', type: 'string' },
  7: { name: 'fieldsV1', type: { 1: { name: 'raw', type: 'json' } } }, // FieldsV1 {1 raw bytes}, flattened below
  8: { name: 'subresource', type: 'string' },
};

export const ObjectMeta: Schema = {
  1: { name: 'name', type: 'string' },
  2: { name: 'generateName', type: 'string' },
  3: { name: 'namespace', type: 'string' },
  4: { name: 'selfLink', type: 'string' },
  5: { name: 'uid', type: 'string' },
  6: { name: 'resourceVersion', type: 'string' },
  7: { name: 'generation', type: 'int64' },
  8: { name: 'creationTimestamp', type: TIME },
  9: { name: 'deletionTimestamp', type: TIME },
  10: { name: 'deletionGracePeriodSeconds', type: 'int64', keepZero: true },
  11: { name: 'labels', type: 'map<string,string>' },
  12: { name: 'annotations', type: 'map<string,string>' },
  13: { name: 'ownerReferences', type: OwnerReference, repeated: true },
  14: { name: 'finalizers', type: 'string', repeated: true },
  17: { name: 'managedFields', type: ManagedFieldsEntry, repeated: true },
};

