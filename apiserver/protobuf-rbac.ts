// Protobuf schemas of rbac.authorization.k8s.io/v1: Role, ClusterRole, RoleBinding, ClusterRoleBinding (field numbers from k8s.io/api's generated.proto).
import { ObjectMeta } from './protobuf-meta.js';
import type { Schema } from './protobuf-meta.js';

const PolicyRule: Schema = {
  1: { name: 'verbs', type: 'string', repeated: true },
  2: { name: 'apiGroups', type: 'string', repeated: true },
  3: { name: 'resources', type: 'string', repeated: true },
  4: { name: 'resourceNames', type: 'string', repeated: true },
  5: { name: 'nonResourceURLs', type: 'string', repeated: true },
};

/** meta/v1 LabelSelector {1 matchLabels, 2 matchExpressions {1 key, 2 operator, 3 values}}. */
export const LabelSelector: Schema = {
  1: { name: 'matchLabels', type: 'map<string,string>' },
  2: {
    name: 'matchExpressions',
    repeated: true,
    type: {
      1: { name: 'key', type: 'string', keepZero: true },
      2: { name: 'operator', type: 'string', keepZero: true },
      3: { name: 'values', type: 'string', repeated: true },
    },
  },
};

// Subject and RoleRef fields carry no omitempty except Subject.apiGroup/namespace.
const Subject: Schema = {
  1: { name: 'kind', type: 'string', keepZero: true },
  2: { name: 'apiGroup', type: 'string' },
  3: { name: 'name', type: 'string', keepZero: true },
  4: { name: 'namespace', type: 'string' },
};

const RoleRef: Schema = {
  1: { name: 'apiGroup', type: 'string', keepZero: true },
  2: { name: 'kind', type: 'string', keepZero: true },
  3: { name: 'name', type: 'string', keepZero: true },
};

const Role: Schema = {
  1: { name: 'metadata', type: ObjectMeta },
  2: { name: 'rules', type: PolicyRule, repeated: true },
};

const ClusterRole: Schema = {
  1: { name: 'metadata', type: ObjectMeta },
  2: { name: 'rules', type: PolicyRule, repeated: true },
  3: { name: 'aggregationRule', type: { 1: { name: 'clusterRoleSelectors', type: LabelSelector, repeated: true } } },
};

const Binding: Schema = {
  1: { name: 'metadata', type: ObjectMeta },
  2: { name: 'subjects', type: Subject, repeated: true },
  3: { name: 'roleRef', type: RoleRef, keepZero: true },
};

export const RBAC_PROTOBUF_KINDS: Array<[string, Schema]> = [
  ['rbac.authorization.k8s.io/v1/Role', Role],
  ['rbac.authorization.k8s.io/v1/ClusterRole', ClusterRole],
  ['rbac.authorization.k8s.io/v1/RoleBinding', Binding],
  ['rbac.authorization.k8s.io/v1/ClusterRoleBinding', Binding],
];
