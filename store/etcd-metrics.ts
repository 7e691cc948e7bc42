// etcd_request_duration_seconds{operation,type}: kube-apiserver's histogram of its etcd calls,
// measured where the store calls etcd. `type` is the resource a key belongs to (`instances.kova.dev`,
// `namespaces`), read from kova's key layout /registry/<group>/<plural>/... (core kinds without the
// group); keys are built from the registry, never from request text, and the distinct values are
// capped besides, so the label stays bounded.
import { histogram } from '../lib/metrics.js';

/** kube's buckets for this histogram (the same as apiserver_request_duration_seconds). */
export const ETCD_REQUEST_DURATION_BUCKETS = [0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60];

export type EtcdOperation = 'get' | 'list' | 'count' | 'create' | 'update' | 'delete' | 'txn' | 'getCurrentResourceVersion';

const REGISTRY = '/registry/';
/** Distinct `type` values kept; later ones are "other" (kova has a few dozen resources). */
const MAX_TYPES = 256;

let durations: ReturnType<typeof define> | undefined;
function define() {
  return histogram<'operation' | 'type'>({
    name: 'etcd_request_duration_seconds',
    help: 'Etcd request latency in seconds for each operation and object type.',
    labelNames: ['operation', 'type'],
    buckets: ETCD_REQUEST_DURATION_BUCKETS,
  });
}

/** The resource of a key: `<plural>.<group>`, `<plural>` for core kinds, the group for a group's prefix, "" for none, "other" otherwise. */
export function keyType(key: string): string {
  if (key === '') return '';
  if (!key.startsWith(REGISTRY)) return 'other';
  const a = key.indexOf('/', REGISTRY.length);
  if (a < 0) return 'other';
  const first = key.slice(REGISTRY.length, a);
  // Group names contain a dot, plurals never do (see apiserver/keys.ts).
  if (!first.includes('.')) return first;
  const b = key.indexOf('/', a + 1);
  const plural = key.slice(a + 1, b < 0 ? undefined : b);
  // A whole group's prefix (the RBAC cache lists /registry/rbac.authorization.k8s.io/): the group.
  return plural ? `${plural}.${first}` : first;
}

/** Label objects per type and operation, made once. */
const labelCache = new Map<string, Map<EtcdOperation, Readonly<{ operation: string; type: string }>>>();

function labelsOf(operation: EtcdOperation, key: string): Readonly<{ operation: string; type: string }> {
  let type = keyType(key);
  let byOp = labelCache.get(type);
  if (!byOp) {
    if (labelCache.size >= MAX_TYPES) {
      type = 'other';
      byOp = labelCache.get(type);
    }
    if (!byOp) labelCache.set(type, (byOp = new Map()));
  }
  let l = byOp.get(operation);
  if (!l) byOp.set(operation, (l = Object.freeze({ operation, type })));
  return l;
}

/** Records one etcd call of `operation` on `key` that started at `start` (performance.now()). */
export function observeEtcd(operation: EtcdOperation, key: string, start: number): void {
  (durations ??= define()).observe(labelsOf(operation, key), (performance.now() - start) / 1000);
}
