// Protobuf schemas of core/v1 ResourceQuota (field numbers from k8s.io/api's generated.proto).
// `kubectl create quota` sends one as protobuf.
import { ObjectMeta } from './protobuf-meta.js';
import type { Schema } from './protobuf-meta.js';

const ScopedResourceSelectorRequirement: Schema = {
  1: { name: 'scopeName', type: 'string', keepZero: true },
  2: { name: 'operator', type: 'string', keepZero: true },
  3: { name: 'values', type: 'string', repeated: true },
};

const ResourceQuotaSpec: Schema = {
  1: { name: 'hard', type: 'map<string,Quantity>' },
  2: { name: 'scopes', type: 'string', repeated: true },
  3: { name: 'scopeSelector', type: { 1: { name: 'matchExpressions', type: ScopedResourceSelectorRequirement, repeated: true } } },
};

const ResourceQuotaStatus: Schema = {
  1: { name: 'hard', type: 'map<string,Quantity>' },
  2: { name: 'used', type: 'map<string,Quantity>' },
};

const ResourceQuota: Schema = {
  1: { name: 'metadata', type: ObjectMeta },
  2: { name: 'spec', type: ResourceQuotaSpec },
  3: { name: 'status', type: ResourceQuotaStatus },
};

export const QUOTA_PROTOBUF_KINDS: Array<[string, Schema]> = [['v1/ResourceQuota', ResourceQuota]];
