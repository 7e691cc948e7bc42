// Protobuf schemas of core/v1 ResourceQuota (field numbers from k8s.io/api's generated.proto).
import type { Schema } from './protobuf-meta.js';

export const QUOTA_PROTOBUF_KINDS: Array<[string, Schema]> = [];
