// Protobuf schemas of rbac.authorization.k8s.io/v1: Role, ClusterRole, RoleBinding, ClusterRoleBinding (field numbers from k8s.io/api's generated.proto).
import type { Schema } from './protobuf-meta.js';

export const RBAC_PROTOBUF_KINDS: Array<[string, Schema]> = [];
