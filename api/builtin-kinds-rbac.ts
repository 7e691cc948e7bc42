// rbac.authorization.k8s.io/v1: Role, ClusterRole, RoleBinding, ClusterRoleBinding, with
// schemas following the upstream types. What a structural schema cannot say (a rule is about
// resources or about URLs, never both; roleRef never changes) is checked by rbacCauses, run as
// admission on creates and updates (apiserver/auth/setup.ts).
import type { FieldCause, JSONSchema, KObject, PrinterColumn, ResourceInfo } from './types.js';
import { info, obj, root, str, stringMap } from './schema-helpers.js';

export const RBAC_GROUP = 'rbac.authorization.k8s.io';

const strings = (description: string): JSONSchema => ({ description, type: 'array', items: { type: 'string' }, 'x-kubernetes-list-type': 'atomic' });

export const POLICY_RULE_SCHEMA: JSONSchema = obj(
  'PolicyRule holds information that describes a policy rule, but does not contain information about who the rule applies to or which namespace the rule applies to.',
  {
    verbs: { ...strings("Verbs is a list of Verbs that apply to ALL the ResourceKinds contained in this rule. '*' represents all verbs."), minItems: 1 },
    apiGroups: strings('APIGroups is the name of the APIGroup that contains the resources. If multiple API groups are specified, any action requested against one of the enumerated resources in any API group will be allowed. "" represents the core API group and "*" represents all API groups.'),
    resources: strings("Resources is a list of resources this rule applies to. '*' represents all resources; 'instances/status' a subresource."),
    resourceNames: strings('ResourceNames is an optional white list of names that the rule applies to. An empty set means that everything is allowed.'),
    nonResourceURLs: strings('NonResourceURLs is a set of partial urls that a user should have access to. *s are allowed, but only as the full, final step in the path. Only applicable for ClusterRoles referenced from a ClusterRoleBinding.'),
  },
  ['verbs'],
);

const rules = (description: string): JSONSchema => ({ description, type: 'array', items: POLICY_RULE_SCHEMA, 'x-kubernetes-list-type': 'atomic' });

const LABEL_SELECTOR_SCHEMA: JSONSchema = obj(
  'A label selector is a label query over a set of resources. The result of matchLabels and matchExpressions are ANDed. An empty label selector matches all objects.',
  {
    matchLabels: stringMap('matchLabels is a map of {key,value} pairs; each is equivalent to an element of matchExpressions whose key field is "key", the operator is "In", and the values array contains only "value".'),
    matchExpressions: {
      description: 'matchExpressions is a list of label selector requirements. The requirements are ANDed.',
      type: 'array',
      'x-kubernetes-list-type': 'atomic',
      items: obj(
        'A label selector requirement is a selector that contains values, a key, and an operator that relates the key and values.',
        {
          key: str('key is the label key that the selector applies to.'),
          operator: str("operator represents a key's relationship to a set of values.", { enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'] }),
          values: strings('values is an array of string values. Must be non-empty for In and NotIn, empty for Exists and DoesNotExist.'),
        },
        ['key', 'operator'],
      ),
    },
  },
);

const AGGREGATION_RULE_SCHEMA: JSONSchema = obj('AggregationRule describes how to locate ClusterRoles to aggregate into the ClusterRole.', {
  clusterRoleSelectors: {
    description: "ClusterRoleSelectors holds a list of selectors which will be used to find ClusterRoles and create the rules. If any of the selectors match, then the ClusterRole's permissions will be added.",
    type: 'array',
    items: LABEL_SELECTOR_SCHEMA,
    'x-kubernetes-list-type': 'atomic',
  },
});

const SUBJECT_SCHEMA: JSONSchema = obj(
  'Subject contains a reference to the object or user identities a role binding applies to: a user, a group, or a service account.',
  {
    kind: str('Kind of object being referenced. Values defined by this API group are "User", "Group", and "ServiceAccount".', { enum: ['User', 'Group', 'ServiceAccount'] }),
    apiGroup: str('APIGroup holds the API group of the referenced subject. Defaults to "" for ServiceAccount subjects and to "rbac.authorization.k8s.io" for User and Group subjects.'),
    name: str('Name of the object being referenced.'),
    namespace: str('Namespace of the referenced object. Must be empty for User and Group.'),
  },
  ['kind', 'name'],
);

const roleRefSchema = (kinds: string[]): JSONSchema =>
  obj(
    'RoleRef contains information that points to the role being used. This field is immutable.',
    {
      apiGroup: str('APIGroup is the group for the resource being referenced.', { enum: [RBAC_GROUP] }),
      kind: str('Kind is the type of resource being referenced.', { enum: kinds }),
      name: str('Name is the name of resource being referenced.', { minLength: 1 }),
    },
    ['apiGroup', 'kind', 'name'],
  );

const subjects: JSONSchema = { description: 'Subjects holds references to the objects the role applies to.', type: 'array', items: SUBJECT_SCHEMA, 'x-kubernetes-list-type': 'atomic' };

// kube-apiserver's table printer: roles show their creation time as a timestamp, bindings the
// role as Kind/name and, in wide output, the subjects of each kind joined by ", ". No JSONPath
// can join values, so those columns are computed (RBAC_COMPUTED_COLUMNS, by pseudo-JSONPath).
const CREATED_AT: PrinterColumn = { name: 'Created At', type: 'string', jsonPath: '.metadata.creationTimestamp', description: 'The time the role was created (RFC 3339).' };
export const RBAC_ROLE_COLUMN = 'kova:rbac-role';
const subjectColumn = (kind: string) => `kova:rbac-subjects-${kind}`;
const bindingColumns: PrinterColumn[] = [
  { name: 'Role', type: 'string', jsonPath: RBAC_ROLE_COLUMN, description: 'The role the binding grants (roleRef.kind/roleRef.name).' },
  { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp', description: 'CreationTimestamp is a timestamp representing the server time when this object was created.' },
  { name: 'Users', type: 'string', jsonPath: subjectColumn('User'), description: 'Users the binding applies to.', priority: 1 },
  { name: 'Groups', type: 'string', jsonPath: subjectColumn('Group'), description: 'Groups the binding applies to.', priority: 1 },
  { name: 'ServiceAccounts', type: 'string', jsonPath: subjectColumn('ServiceAccount'), description: 'Service accounts (namespace/name) the binding applies to.', priority: 1 },
];

export const ROLE: ResourceInfo = info({
  group: RBAC_GROUP,
  version: 'v1',
  kind: 'Role',
  plural: 'roles',
  namespaced: true,
  statusSubresource: false,
  printerColumns: [CREATED_AT],
  schema: root('Role is a namespaced, logical grouping of PolicyRules that can be referenced as a unit by a RoleBinding.', {
    rules: rules('Rules holds all the PolicyRules for this Role.'),
  }),
});

export const CLUSTER_ROLE: ResourceInfo = info({
  group: RBAC_GROUP,
  version: 'v1',
  kind: 'ClusterRole',
  plural: 'clusterroles',
  namespaced: false,
  statusSubresource: false,
  printerColumns: [CREATED_AT],
  schema: root('ClusterRole is a cluster level, logical grouping of PolicyRules that can be referenced as a unit by a RoleBinding or ClusterRoleBinding.', {
    rules: rules('Rules holds all the PolicyRules for this ClusterRole.'),
    aggregationRule: AGGREGATION_RULE_SCHEMA,
  }),
});

export const ROLE_BINDING: ResourceInfo = info({
  group: RBAC_GROUP,
  version: 'v1',
  kind: 'RoleBinding',
  plural: 'rolebindings',
  namespaced: true,
  statusSubresource: false,
  printerColumns: bindingColumns,
  schema: root(
    'RoleBinding references a role, but does not contain it. It can reference a Role in the same namespace or a ClusterRole in the global namespace; it only has effect in its namespace.',
    { subjects, roleRef: roleRefSchema(['Role', 'ClusterRole']) },
    ['roleRef'],
  ),
});

export const CLUSTER_ROLE_BINDING: ResourceInfo = info({
  group: RBAC_GROUP,
  version: 'v1',
  kind: 'ClusterRoleBinding',
  plural: 'clusterrolebindings',
  namespaced: false,
  statusSubresource: false,
  printerColumns: bindingColumns,
  schema: root(
    'ClusterRoleBinding references a ClusterRole, but not contain it. It adds who information via Subject.',
    { subjects, roleRef: roleRefSchema(['ClusterRole']) },
    ['roleRef'],
  ),
});

/**
 * RBAC names are path segments, not DNS names (kube's ValidatePathSegmentName): `system:basic-user`
 * is valid, `a/b`, `a%b`, `.` and `..` are not. `prefix`: a generateName, checked for characters only.
 */
export function pathSegmentNameErrors(name: string, prefix = false): string[] {
  const out: string[] = [];
  if (!prefix && (name === '.' || name === '..')) out.push(`may not be '${name}'`);
  for (const c of ['/', '%']) if (name.includes(c)) out.push(`may not contain '${c}'`);
  return out;
}

export const RBAC_KINDS: ResourceInfo[] = [CLUSTER_ROLE_BINDING, CLUSTER_ROLE, ROLE_BINDING, ROLE];

/** The computed binding columns (see bindingColumns), keyed by their pseudo-JSONPath. */
export const RBAC_COMPUTED_COLUMNS: Record<string, (o: KObject) => string | null> = {
  [RBAC_ROLE_COLUMN]: (o) => (isObj(o.roleRef) ? `${String(o.roleRef.kind ?? '')}/${String(o.roleRef.name ?? '')}` : null),
  [subjectColumn('User')]: (o) => subjectNames(o, 'User'),
  [subjectColumn('Group')]: (o) => subjectNames(o, 'Group'),
  [subjectColumn('ServiceAccount')]: (o) => subjectNames(o, 'ServiceAccount'),
};

function subjectNames(o: KObject, kind: string): string {
  return list(o.subjects)
    .filter((s): s is Rec => isObj(s) && s.kind === kind)
    .map((s) => (kind === 'ServiceAccount' ? `${String(s.namespace ?? '')}/${String(s.name ?? '')}` : String(s.name ?? '')))
    .join(', ');
}

// ---------------------------------------------------------------------------------------------
// Checks beyond the schema (pkg/apis/rbac/validation in kube), as field causes.

type Rec = Record<string, unknown>;
const isObj = (v: unknown): v is Rec => typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

function ruleCauses(rule: unknown, at: string, namespaced: boolean): FieldCause[] {
  if (!isObj(rule)) return [];
  const out: FieldCause[] = [];
  const urls = list(rule.nonResourceURLs);
  if (urls.length) {
    if (namespaced) out.push({ reason: 'FieldValueInvalid', field: `${at}.nonResourceURLs`, message: `Invalid value: ${JSON.stringify(urls)}: namespaced rules cannot apply to non-resource URLs` });
    if (list(rule.apiGroups).length || list(rule.resources).length) {
      out.push({ reason: 'FieldValueInvalid', field: `${at}.nonResourceURLs`, message: `Invalid value: ${JSON.stringify(urls)}: rules cannot apply to both regular resources and non-resource URLs` });
    }
    return out;
  }
  if (!list(rule.apiGroups).length) out.push({ reason: 'FieldValueRequired', field: `${at}.apiGroups`, message: 'Required value: resource rules must supply at least one api group' });
  if (!list(rule.resources).length) out.push({ reason: 'FieldValueRequired', field: `${at}.resources`, message: 'Required value: resource rules must supply at least one resource' });
  return out;
}

function subjectCauses(s: unknown, at: string, clusterBinding: boolean): FieldCause[] {
  if (!isObj(s)) return [];
  const out: FieldCause[] = [];
  const kind = s.kind;
  const group = s.apiGroup ?? '';
  if (kind === 'ServiceAccount') {
    if (group !== '') out.push({ reason: 'FieldValueNotSupported', field: `${at}.apiGroup`, message: `Unsupported value: ${JSON.stringify(group)}: supported values: ""` });
    if (clusterBinding && !s.namespace) out.push({ reason: 'FieldValueRequired', field: `${at}.namespace`, message: 'Required value' });
  } else if (kind === 'User' || kind === 'Group') {
    // Missing is what kube defaults to rbac.authorization.k8s.io; the authorizer reads it so.
    if (group !== RBAC_GROUP && group !== '') out.push({ reason: 'FieldValueNotSupported', field: `${at}.apiGroup`, message: `Unsupported value: ${JSON.stringify(group)}: supported values: "${RBAC_GROUP}"` });
    if (s.namespace) out.push({ reason: 'FieldValueInvalid', field: `${at}.namespace`, message: `Invalid value: ${JSON.stringify(s.namespace)}: must be empty for ${kind}` });
  }
  if (s.name === '') out.push({ reason: 'FieldValueRequired', field: `${at}.name`, message: 'Required value' });
  return out;
}

/**
 * The semantic problems of an RBAC object (empty for other kinds). `old`, on an update, is the
 * stored object: a binding's roleRef may not change (delete and recreate it instead).
 */
export function rbacCauses(info: Pick<ResourceInfo, 'group' | 'kind'>, o: KObject, old?: KObject): FieldCause[] {
  if (info.group !== RBAC_GROUP) return [];
  const out: FieldCause[] = [];
  if (info.kind === 'Role' || info.kind === 'ClusterRole') {
    list(o.rules).forEach((r, i) => out.push(...ruleCauses(r, `rules[${i}]`, info.kind === 'Role')));
    return out;
  }
  list(o.subjects).forEach((s, i) => out.push(...subjectCauses(s, `subjects[${i}]`, info.kind === 'ClusterRoleBinding')));
  if (old && isObj(old.roleRef) && JSON.stringify(sortRef(o.roleRef)) !== JSON.stringify(sortRef(old.roleRef))) {
    out.push({ reason: 'FieldValueInvalid', field: 'roleRef', message: `Invalid value: ${JSON.stringify(sortRef(o.roleRef))}: cannot change roleRef` });
  }
  return out;
}

function sortRef(r: unknown): unknown {
  if (!isObj(r)) return r;
  return { apiGroup: r.apiGroup, kind: r.kind, name: r.name };
}
