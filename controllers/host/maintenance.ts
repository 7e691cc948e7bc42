// Host maintenance (kova drain), the decision alone: from a Host, the instances bound to it and
// the cluster's Migrations, what to do now — cordon or uncordon, which instances get a
// Migration, and the Drained condition. Like KubeVirt's evacuation controller, at most
// `perHost` outbound and `perCluster` unfinished Migrations at once (its defaults 2 and 5);
// an instance whose Migration failed is retried with back-off, measured from the failure.
import type { Condition } from '../../api/conditions.js';
import { findCondition } from '../../api/conditions.js';
import { migrationFinished, MigrationConditions } from '../../api/kinds/index.js';
import type { Host, Instance, Migration } from '../../api/kinds/index.js';

/** On Migrations made by a drain: the host being drained. */
export const DRAIN_HOST_LABEL = 'kova.dev/drain-host';
/** On a Host that maintenance cordoned (so clearing maintenance uncordons only what it cordoned). */
export const MAINTENANCE_CORDON_ANNOTATION = 'kova.dev/maintenance-cordon';
export const DRAINED_CONDITION = 'Drained';

export interface MaintenanceLimits {
  /** Unfinished Migrations out of one host (KubeVirt's parallelOutboundMigrationsPerNode). */
  perHost: number;
  /** Unfinished Migrations in the cluster (KubeVirt's parallelMigrationsPerCluster). */
  perCluster: number;
}
export const DEFAULT_MAINTENANCE_LIMITS: MaintenanceLimits = Object.freeze({ perHost: 2, perCluster: 5 });

export interface RetryBackoff {
  initialMs: number;
  maxMs: number;
}
export const DEFAULT_RETRY_BACKOFF: RetryBackoff = Object.freeze({ initialMs: 30_000, maxMs: 300_000 });

/** How long to wait after the `failures`-th failure in a row: initial, doubling, capped. */
export function retryDelayMs(failures: number, b: RetryBackoff = DEFAULT_RETRY_BACKOFF): number {
  if (failures <= 0) return 0;
  return Math.min(b.maxMs, b.initialMs * 2 ** Math.min(failures - 1, 30));
}

export type CordonChange = 'cordon' | 'uncordon' | 'forget';

export interface StuckInstance {
  /** namespace/name. */
  instance: string;
  /** Why it has not moved: the failed Migration's reason and message. */
  reason: string;
  /** When the next Migration will be created (absent: one is running now). */
  retryAt?: number;
}

export interface MaintenancePlan {
  /** cordon: set spec.unschedulable and the annotation; uncordon: clear both; forget: drop the annotation only. */
  cordon?: CordonChange;
  /** Instances to create a Migration for now, as namespace/name. */
  migrate: string[];
  /** The Drained condition to hold; null: remove it; undefined: leave it. */
  condition?: Omit<Condition, 'lastTransitionTime'> | null;
  stuck: StuckInstance[];
  /** Decide again after this long (a back-off ends); undefined: events suffice. */
  requeueAfterMs?: number;
}

export interface MaintenanceInput {
  host: Pick<Host, 'metadata' | 'spec' | 'status'>;
  /** Instances whose status.hostName is this host. */
  instances: readonly Pick<Instance, 'metadata' | 'status'>[];
  /** Every Migration in the cluster (and those just created that the cache has not shown yet). */
  migrations: readonly Pick<Migration, 'metadata' | 'spec' | 'status'>[];
  /** Where an instance is bound now (namespace, name), for Migrations without a sourceHost yet. */
  hostOf: (namespace: string, name: string) => string | undefined;
  now: number;
  limits?: MaintenanceLimits;
  backoff?: RetryBackoff;
  /**
   * Instances whose Migration could not even be created (e.g. admission's 422 for an in-flight
   * Migration the cache has not shown yet), by namespace/name: retried with the same back-off.
   */
  createFailures?: ReadonlyMap<string, CreateFailure>;
}

/** Creates of a Migration for one instance that failed in a row: how many, the last one's time and error. */
export interface CreateFailure {
  failures: number;
  at: number;
  reason: string;
}

const keyOf = (namespace: string | undefined, name: string | undefined) => `${namespace ?? ''}/${name ?? ''}`;
const time = (s: string | undefined) => (s ? Date.parse(s) : NaN);
/** The message of a condition is capped by the CRD (32768); a long list is shortened well before. */
const MAX_LISTED = 20;
/** How long a Succeeded Migration may disagree with its instance's binding before it is believed stale. */
const SETTLE_MS = 60_000;

/** When a finished Migration ended: endTime, else its final condition's transition, else creation. */
function endedAt(m: Pick<Migration, 'metadata' | 'status'>): number {
  const end = time(m.status?.endTime);
  if (!Number.isNaN(end)) return end;
  const c = findCondition(m.status?.conditions, MigrationConditions.Failed) ?? findCondition(m.status?.conditions, MigrationConditions.Succeeded);
  const t = time(c?.lastTransitionTime);
  return Number.isNaN(t) ? time(m.metadata.creationTimestamp) || 0 : t;
}

function failureText(m: Pick<Migration, 'status'>): string {
  const c = findCondition(m.status?.conditions, MigrationConditions.Failed);
  const reason = c?.reason || 'MigrationFailed';
  return c?.message ? `${reason}: ${c.message}` : reason;
}

/** The host a Migration moves an instance away from. */
function sourceOf(m: Pick<Migration, 'metadata' | 'spec' | 'status'>, hostOf: MaintenanceInput['hostOf']): string | undefined {
  return m.status?.sourceHost || hostOf(m.metadata.namespace ?? '', m.spec.instance) || m.metadata.labels?.[DRAIN_HOST_LABEL];
}

export function cordonChange(host: MaintenanceInput['host']): CordonChange | undefined {
  const marked = host.metadata.annotations?.[MAINTENANCE_CORDON_ANNOTATION] !== undefined;
  const cordoned = host.spec?.unschedulable === true;
  if (host.spec?.maintenance === true) return cordoned ? undefined : 'cordon';
  if (!marked) return undefined;
  return cordoned ? 'uncordon' : 'forget';
}

export function planMaintenance(input: MaintenanceInput): MaintenancePlan {
  const { host, now } = input;
  const hostName = host.metadata.name!;
  const limits = input.limits ?? DEFAULT_MAINTENANCE_LIMITS;
  const backoff = input.backoff ?? DEFAULT_RETRY_BACKOFF;
  const cordon = cordonChange(host);
  const hasDrained = !!findCondition(host.status?.conditions, DRAINED_CONDITION);
  if (host.spec?.maintenance !== true) {
    // Running Migrations finish on their own; nothing new starts.
    return { cordon, migrate: [], stuck: [], condition: hasDrained ? null : undefined };
  }

  const unfinished = input.migrations.filter((m) => !migrationFinished(m));
  let inCluster = unfinished.length;
  let outOfHost = unfinished.filter((m) => sourceOf(m, input.hostOf) === hostName).length;

  const byInstance = new Map<string, Pick<Migration, 'metadata' | 'spec' | 'status'>[]>();
  for (const m of input.migrations) {
    const k = keyOf(m.metadata.namespace, m.spec.instance);
    if (!byInstance.has(k)) byInstance.set(k, []);
    byInstance.get(k)!.push(m);
  }

  const candidates: string[] = [];
  const stuck: StuckInstance[] = [];
  let migrating = 0;
  let deleting = 0;
  let nextRetry = Infinity;
  const instances = [...input.instances].sort((a, b) => keyOf(a.metadata.namespace, a.metadata.name).localeCompare(keyOf(b.metadata.namespace, b.metadata.name)));
  for (const inst of instances) {
    const key = keyOf(inst.metadata.namespace, inst.metadata.name);
    if (inst.metadata.deletionTimestamp) {
      deleting++;
      continue;
    }
    // Migrations of this instance (not of an earlier one of the same name), oldest first.
    const mine = (byInstance.get(key) ?? [])
      .filter((m) => !m.status?.instanceUID || m.status.instanceUID === inst.metadata.uid)
      .sort((a, b) => time(a.metadata.creationTimestamp) - time(b.metadata.creationTimestamp) || (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''));
    const finished = mine.filter((m) => migrationFinished(m)).sort((a, b) => endedAt(a) - endedAt(b));
    let failures = 0;
    for (let i = finished.length - 1; i >= 0 && finished[i].status?.phase === 'Failed'; i--) failures++;
    const last = finished.at(-1);
    const running = mine.some((m) => !migrationFinished(m)) || !!inst.status?.migration;
    if (failures > 0) {
      const retryAt = endedAt(last!) + retryDelayMs(failures, backoff);
      stuck.push({ instance: key, reason: failureText(last!), retryAt: running ? undefined : retryAt });
      if (!running && retryAt > now) {
        nextRetry = Math.min(nextRetry, retryAt);
        continue;
      }
    }
    if (running) {
      migrating++;
      continue;
    }
    const refused = input.createFailures?.get(key);
    if (refused && refused.failures > 0) {
      const retryAt = refused.at + retryDelayMs(refused.failures, backoff);
      const entry = { instance: key, reason: `could not create a Migration: ${refused.reason}`, retryAt };
      // The latest word on this instance replaces its last failed Migration's.
      if (stuck.at(-1)?.instance === key) stuck[stuck.length - 1] = entry;
      else stuck.push(entry);
      if (retryAt > now) {
        nextRetry = Math.min(nextRetry, retryAt);
        continue;
      }
    }
    // Moved away already, and the instance cache has not caught up: wait for it (a while).
    if (last?.status?.phase === 'Succeeded' && last.status.targetHost && last.status.targetHost !== hostName && now - endedAt(last) < SETTLE_MS) {
      migrating++;
      nextRetry = Math.min(nextRetry, endedAt(last) + SETTLE_MS);
      continue;
    }
    candidates.push(key);
  }

  const migrate: string[] = [];
  if (host.spec?.fenced !== true) {
    for (const key of candidates) {
      if (outOfHost >= limits.perHost || inCluster >= limits.perCluster) break;
      migrate.push(key);
      outOfHost++;
      inCluster++;
    }
  }
  migrating += migrate.length;

  const left = input.instances.length;
  let condition: MaintenancePlan['condition'];
  if (left === 0) {
    condition = { type: DRAINED_CONDITION, status: 'True', reason: 'Drained', message: `no instances left on host ${hostName}` };
  } else {
    const waiting = left - migrating - deleting;
    const parts = [`${left} instance${left === 1 ? '' : 's'} left on host ${hostName}: ${migrating} migrating, ${waiting} waiting${deleting ? `, ${deleting} being deleted` : ''}`];
    if (host.spec?.fenced === true) parts.push('the host is fenced: evacuation moves its instances');
    if (stuck.length) {
      const listed = stuck.slice(0, MAX_LISTED).map((s) => `${s.instance}: ${s.reason}${s.retryAt === undefined ? ' (retrying)' : ` (next retry at ${new Date(s.retryAt).toISOString()})`}`);
      if (stuck.length > MAX_LISTED) listed.push(`and ${stuck.length - MAX_LISTED} more`);
      parts.push(`cannot move: ${listed.join('; ')}`);
    }
    condition = { type: DRAINED_CONDITION, status: 'False', reason: stuck.length ? 'MigrationsFailed' : 'Draining', message: parts.join('; ') };
  }
  return { cordon, migrate, stuck, condition, requeueAfterMs: Number.isFinite(nextRetry) ? Math.max(0, nextRetry - now) : undefined };
}

/** generateName of a drain's Migration: the instance's name, cut so the generated name fits 63 characters. */
export function migrationPrefix(instance: string): string {
  return `${instance.slice(0, 57)}-`;
}
