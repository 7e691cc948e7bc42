// core/v1 ResourceQuota, with a schema following the upstream type. kova's quota resource names
// (count/instances.kova.dev, requests.vcpus, ...) and the usage an object charges are in
// api/quota-usage.ts; the API server charges quotas atomically with creates (apiserver/quota/).
import type { JSONSchema, KObject, ResourceInfo } from './types.js';
import { AGE, info, obj, root, str } from './schema-helpers.js';
import { NONNEGATIVE_QUANTITY_PATTERN } from './quantity.js';

/** corev1.ResourceList: resource name → quantity (never negative in a quota). */
const resourceList = (description: string): JSONSchema => ({
  description,
  type: 'object',
  additionalProperties: {
    anyOf: [{ type: 'integer' }, { type: 'string' }],
    pattern: NONNEGATIVE_QUANTITY_PATTERN,
    minimum: 0,
    'x-kubernetes-int-or-string': true,
  },
});

const strings = (description: string): JSONSchema => ({ description, type: 'array', items: { type: 'string' }, 'x-kubernetes-list-type': 'atomic' });

/** Pseudo-JSONPaths of the computed REQUEST and LIMIT columns (not JSONPaths: see QUOTA_COMPUTED_COLUMNS). */
export const QUOTA_REQUEST_COLUMN = 'kova:resourcequota-request';
export const QUOTA_LIMIT_COLUMN = 'kova:resourcequota-limit';

const SCOPES = ['Terminating', 'NotTerminating', 'BestEffort', 'NotBestEffort', 'PriorityClass', 'CrossNamespacePodAffinity'];

export const RESOURCE_QUOTA: ResourceInfo = info({
  group: '',
  version: 'v1',
  kind: 'ResourceQuota',
  plural: 'resourcequotas',
  namespaced: true,
  shortNames: ['quota'],
  statusSubresource: true,
  // kube-apiserver's table: NAME, AGE, REQUEST, LIMIT, the last two "resource: used/hard" lists
  // (limits.* in LIMIT, everything else in REQUEST). A JSONPath cannot build them: the table
  // renderer computes the cells named in QUOTA_COMPUTED_COLUMNS.
  printerColumns: [
    AGE,
    { name: 'Request', type: 'string', jsonPath: QUOTA_REQUEST_COLUMN, description: 'Used and hard quantities of the quota\'s resources other than limits.*.' },
    { name: 'Limit', type: 'string', jsonPath: QUOTA_LIMIT_COLUMN, description: 'Used and hard quantities of the quota\'s limits.* resources.' },
  ],
  schema: root('ResourceQuota sets aggregate quota restrictions enforced per namespace (per project in kova).', {
    spec: obj('Spec defines the desired quota.', {
      hard: resourceList('hard is the set of desired hard limits for each named resource, e.g. count/instances.kova.dev, requests.vcpus, requests.memory, requests.storage.'),
      scopes: { ...strings('A collection of filters that must match each object tracked by a quota. kova kinds have none of the pod scopes, so kova refuses scoped quotas.'), items: { type: 'string', enum: SCOPES } },
      scopeSelector: obj('scopeSelector is also a collection of filters like scopes that must match each object tracked by a quota but expressed using ScopeSelectorOperator in combination with possible values.', {
        matchExpressions: {
          description: 'A list of scope selector requirements by scope of the resources.',
          type: 'array',
          'x-kubernetes-list-type': 'atomic',
          items: obj(
            'A scoped-resource selector requirement is a selector that contains values, a scope name, and an operator that relates the scope name and values.',
            {
              scopeName: str('The name of the scope that the selector applies to.', { enum: SCOPES }),
              operator: str("Represents a scope's relationship to a set of values.", { enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'] }),
              values: strings('An array of string values.'),
            },
            ['scopeName', 'operator'],
          ),
        },
      }),
    }),
    status: obj('Status defines the actual enforced quota and its current usage.', {
      hard: resourceList('Hard is the set of enforced hard limits for each named resource.'),
      used: resourceList('Used is the current observed total usage of the resource in the namespace.'),
    }),
  }),
});

/** "name: used/hard" of each hard resource, sorted, joined with ", " (kubectl's quota columns). */
function usedOverHard(o: KObject, limits: boolean): string {
  const status = (o.status ?? {}) as { hard?: Record<string, unknown>; used?: Record<string, unknown> };
  const hard = status.hard ?? ((o.spec as { hard?: Record<string, unknown> } | undefined)?.hard ?? {});
  const used = status.used ?? {};
  return Object.keys(hard)
    .filter((k) => k.startsWith('limits.') === limits)
    .sort()
    .map((k) => `${k}: ${String(used[k] ?? 0)}/${String(hard[k])}`)
    .join(', ');
}

/** Table cells no JSONPath can express, by the printer column's jsonPath (see apiserver/table.ts). */
export const QUOTA_COMPUTED_COLUMNS: Readonly<Record<string, (o: KObject) => string>> = {
  [QUOTA_REQUEST_COLUMN]: (o) => usedOverHard(o, false),
  [QUOTA_LIMIT_COLUMN]: (o) => usedOverHard(o, true),
};

export const QUOTA_KINDS: ResourceInfo[] = [RESOURCE_QUOTA];
