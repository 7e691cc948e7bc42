// Small constructors for the OpenAPI schemas of built-in kinds (builtin-kinds*.ts).
import type { JSONSchema, PrinterColumn, ResourceInfo } from './types.js';

export type Props = Record<string, JSONSchema>;

export const str = (description: string, extra: JSONSchema = {}): JSONSchema => ({ description, type: 'string', ...extra });
export const int32 = (description: string, extra: JSONSchema = {}): JSONSchema => ({ description, type: 'integer', format: 'int32', ...extra });
export const bool = (description: string): JSONSchema => ({ description, type: 'boolean' });
export const time = (description: string): JSONSchema => ({ description, type: 'string', format: 'date-time' });
/** metav1.MicroTime: RFC 3339 with microseconds. */
export const microTime = (description: string): JSONSchema => ({ description, type: 'string', format: 'date-time' });
export const obj = (description: string, properties: Props, required?: string[]): JSONSchema =>
  required?.length ? { description, type: 'object', properties, required } : { description, type: 'object', properties };
export const stringMap = (description: string, format?: string): JSONSchema => ({
  description,
  type: 'object',
  additionalProperties: format ? { type: 'string', format } : { type: 'string' },
});

export const API_VERSION = str(
  'APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values.',
);
export const KIND = str(
  'Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. In CamelCase.',
);
/** Metadata is described by ObjectMeta in OpenAPI and checked by validateMetadata, as in a CRD. */
export const METADATA: JSONSchema = { description: "Standard object's metadata.", type: 'object' };

export function root(description: string, properties: Props, required?: string[]): JSONSchema {
  return obj(description, { apiVersion: API_VERSION, kind: KIND, metadata: METADATA, ...properties }, required);
}

export const AGE: PrinterColumn = {
  name: 'Age',
  type: 'date',
  jsonPath: '.metadata.creationTimestamp',
  description: 'CreationTimestamp is a timestamp representing the server time when this object was created.',
};

export function info(r: Omit<ResourceInfo, 'listKind' | 'singular' | 'categories' | 'custom' | 'selectableFields' | 'shortNames'> &
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

