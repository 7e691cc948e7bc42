// Protobuf schemas of authorization.k8s.io/v1 and authentication.k8s.io/v1 reviews (field numbers from k8s.io/api's generated.proto).
import type { Schema } from './protobuf-meta.js';

export const REVIEW_PROTOBUF_KINDS: Array<[string, Schema]> = [];
