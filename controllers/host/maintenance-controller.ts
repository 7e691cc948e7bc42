// The maintenance controller (kova drain): for each Host with spec.maintenance it cordons the
// host, creates Migrations for its instances within the per-host and per-cluster limits, and
// reports the Drained condition; planMaintenance (maintenance.ts) decides, this file reads the
// caches and writes. One worker, so the cluster-wide limit is counted by one decider at a time;
// Migrations created but not yet in the cache are remembered (ReplicaSet-style expectations)
// so a reconcile that runs before the watch catches up does not create a second one.
import { HOSTS, INSTANCES, MIGRATIONS } from '../../api/kinds/index.js';
import type { Host, Instance, Migration } from '../../api/kinds/index.js';
import { findCondition, hasCondition, removeCondition, setCondition } from '../../api/conditions.js';
import type { ApiClient } from '../../client/client.js';
import { controllerFor, errorMessage, withDefaults } from '../../client/controller.js';
import type { ControllerHandle, ControllerStartOptions, Reconciler, Request, Result } from '../../client/controller.js';
import { EventRecorder } from '../../client/events.js';
import type { ObjectCache, EventSink } from './host-reconciler.js';
import {
  cordonChange, DEFAULT_MAINTENANCE_LIMITS, DEFAULT_RETRY_BACKOFF, DRAIN_HOST_LABEL, DRAINED_CONDITION,
  MAINTENANCE_CORDON_ANNOTATION, migrationPrefix, planMaintenance, retryDelayMs,
} from './maintenance.js';
import type { CordonChange, CreateFailure, MaintenanceLimits, MaintenancePlan, RetryBackoff } from './maintenance.js';

export interface MaintenanceControllerOptions extends ControllerStartOptions {
  /** Unfinished Migrations out of one host and in the whole cluster (default 2 and 5, as KubeVirt). */
  limits?: Partial<MaintenanceLimits>;
  /** Back-off before an instance whose Migration failed gets another (default 30 s doubling to 5 min). */
  backoff?: Partial<RetryBackoff>;
  events?: EventSink;
}

export interface MaintenanceControllerHandle extends ControllerHandle {
  reconciler: MaintenanceReconciler;
}

/** How long a created Migration is counted before the cache has shown it. */
const EXPECTATION_TTL_MS = 60_000;
/** Safety net while a drain is under way: look again this often even without events. */
const RESYNC_MS = 60_000;

type MigrationLike = Pick<Migration, 'metadata' | 'spec' | 'status'>;

export interface MaintenanceReconcilerDeps {
  client: ApiClient;
  hosts: ObjectCache<Host>;
  instances: ObjectCache<Instance>;
  migrations: ObjectCache<Migration>;
  limits?: Partial<MaintenanceLimits>;
  backoff?: Partial<RetryBackoff>;
  events?: EventSink;
  now?: () => number;
  log?: (msg: string) => void;
}

export class MaintenanceReconciler implements Reconciler {
  readonly name = 'maintenance';
  private readonly limits: MaintenanceLimits;
  private readonly backoff: RetryBackoff;
  private readonly now: () => number;
  private readonly log: (msg: string) => void;
  /** Migrations this controller created that the cache may not show yet: "ns/name" → object, time. */
  private readonly expected = new Map<string, { m: MigrationLike; at: number }>();
  /**
   * Instances ("ns/name") whose Migration could not be created (admission's 422 for an
   * in-flight Migration or an instance that is going, a 403, the API server down): each is
   * retried with back-off like a failed Migration and listed in Drained, never hot-looped.
   */
  private readonly createFailures = new Map<string, CreateFailure & { host: string }>();

  constructor(private readonly d: MaintenanceReconcilerDeps) {
    this.limits = { ...DEFAULT_MAINTENANCE_LIMITS, ...d.limits };
    this.backoff = { ...DEFAULT_RETRY_BACKOFF, ...d.backoff };
    this.now = d.now ?? Date.now;
    this.log = d.log ?? (() => undefined);
  }

  /** The cache saw a Migration: it no longer needs remembering. */
  observed(m: Migration): void {
    this.expected.delete(`${m.metadata.namespace}/${m.metadata.name}`);
  }

  async reconcile(req: Request): Promise<Result | void> {
    const host = this.d.hosts.get(undefined, req.name);
    if (!host) return;
    const name = req.name;
    // Most hosts: never in maintenance, nothing of it left to undo.
    if (host.spec?.maintenance !== true && !cordonChange(host) && !findCondition(host.status?.conditions, DRAINED_CONDITION)) return;
    const instances = host.spec?.maintenance === true ? this.d.instances.list().filter((i) => i.status?.hostName === name) : [];
    this.forgetCreateFailures(name, instances);
    const decide = () => planMaintenance({
      host,
      instances,
      migrations: this.migrations(),
      hostOf: (ns, n) => this.d.instances.get(ns, n)?.status?.hostName,
      now: this.now(),
      limits: this.limits,
      backoff: this.backoff,
      createFailures: this.createFailures,
    });
    let plan = decide();
    if (plan.cordon) await this.applyCordon(name, plan.cordon);
    // A refused create is a failure of that instance: decide again, so Drained lists it with
    // its back-off and the next look comes when that ends (not a retry of the whole host at once).
    if (await this.createMigrations(host, plan.migrate)) plan = { ...decide(), cordon: undefined };
    await this.writeCondition(name, plan.condition);
    if (host.spec?.maintenance !== true) return;
    const after = plan.requeueAfterMs === undefined ? RESYNC_MS : Math.min(RESYNC_MS, plan.requeueAfterMs + 50);
    return { requeueAfterMs: plan.migrate.length ? 0 : after };
  }

  /** Create failures of instances no longer on `host` (or of a host out of maintenance) are moot. */
  private forgetCreateFailures(host: string, onHost: readonly Instance[]): void {
    const here = new Set(onHost.map((i) => `${i.metadata.namespace}/${i.metadata.name}`));
    for (const [key, f] of this.createFailures) if (f.host === host && !here.has(key)) this.createFailures.delete(key);
  }

  /** The cached Migrations plus the ones created since that the cache has not shown. */
  private migrations(): MigrationLike[] {
    const all: MigrationLike[] = [...this.d.migrations.list()];
    const now = this.now();
    for (const [key, e] of this.expected) {
      const [ns, n] = key.split('/');
      if (this.d.migrations.get(ns, n) || now - e.at > EXPECTATION_TTL_MS) this.expected.delete(key);
      else all.push(e.m);
    }
    return all;
  }

  /** spec.unschedulable and the annotation saying maintenance set it; decided again on the live object. */
  private async applyCordon(name: string, change: CordonChange): Promise<void> {
    await this.d.client.updateWithRetry<Host>(HOSTS, undefined, name, (h) => {
      const now = cordonChange(h);
      if (!now) return false;
      h.spec ??= {};
      const annotations = { ...(h.metadata.annotations ?? {}) };
      if (now === 'cordon') {
        h.spec.unschedulable = true;
        annotations[MAINTENANCE_CORDON_ANNOTATION] = 'true';
      } else {
        if (now === 'uncordon') h.spec.unschedulable = false;
        delete annotations[MAINTENANCE_CORDON_ANNOTATION];
      }
      h.metadata.annotations = annotations;
    });
    this.log(`host ${name}: maintenance: ${change}`);
  }

  /** Creates the planned Migrations; returns how many could not be created (each recorded in createFailures). */
  private async createMigrations(host: Host, keys: string[]): Promise<number> {
    const hostName = host.metadata.name!;
    let failed = 0;
    for (const key of keys) {
      const [namespace, instance] = key.split('/');
      try {
        const m = await this.d.client.create<Migration>(MIGRATIONS, {
          metadata: { generateName: migrationPrefix(instance), namespace, labels: { [DRAIN_HOST_LABEL]: hostName } },
          spec: { instance },
        });
        if (!this.d.migrations.get(namespace, m.metadata.name!)) this.expected.set(`${namespace}/${m.metadata.name}`, { m, at: this.now() });
        this.createFailures.delete(key);
        this.log(`host ${hostName}: maintenance: migrating ${key} (${namespace}/${m.metadata.name})`);
        void this.d.events?.event(host, 'Normal', 'Migrating', `created Migration ${namespace}/${m.metadata.name} for instance ${key}`);
      } catch (e) {
        failed++;
        const reason = errorMessage(e);
        const failures = (this.createFailures.get(key)?.failures ?? 0) + 1;
        this.createFailures.set(key, { host: hostName, failures, at: this.now(), reason });
        this.log(`host ${hostName}: maintenance: cannot create a Migration for ${key} (failure ${failures}, next try in ${Math.round(retryDelayMs(failures, this.backoff) / 1000)} s): ${reason}`);
        void this.d.events?.event(host, 'Warning', 'MigrationNotCreated', `could not create a Migration for instance ${key}: ${reason}`);
      }
    }
    return failed;
  }

  /** The Drained condition, through the status subresource (updateStatus retries conflicts). */
  private async writeCondition(name: string, want: MaintenancePlan['condition']): Promise<void> {
    if (want === undefined) return;
    const cached = this.d.hosts.get(undefined, name);
    const same = (h: Host | undefined) => (want === null ? !findCondition(h?.status?.conditions, DRAINED_CONDITION) : hasCondition(h?.status?.conditions, want));
    if (same(cached)) return;
    let changed = false;
    const updated = await this.d.client.updateStatus<Host>(HOSTS, undefined, name, (h) => {
      if (same(h)) return false;
      h.status ??= {};
      h.status.conditions = want === null ? removeCondition(h.status.conditions, DRAINED_CONDITION) : setCondition(h.status.conditions, want, new Date(this.now()));
      changed = true;
    });
    if (changed && updated && want?.status === 'True') {
      this.log(`host ${name}: drained`);
      void this.d.events?.event(updated, 'Normal', 'Drained', want.message ?? 'drained');
    }
  }
}

/** Starts the informers and the worker; resolves once the caches are synced and work begins. */
export async function startMaintenanceController(opts: MaintenanceControllerOptions): Promise<MaintenanceControllerHandle> {
  const { client, signal, log, informers } = withDefaults(opts);
  const hosts = informers.for<Host>(HOSTS);
  const instances = informers.for<Instance>(INSTANCES);
  const migrations = informers.for<Migration>(MIGRATIONS);
  const reconciler = new MaintenanceReconciler({
    client, hosts, instances, migrations, limits: opts.limits, backoff: opts.backoff, log,
    events: opts.events ?? new EventRecorder(client, 'kova-maintenance-controller', { log }),
  });

  // Hosts under maintenance: any Instance or Migration change may concern them (an instance
  // left, a slot in the per-cluster limit opened).
  const draining = new Set<string>();
  const allDraining = (): Request[] => [...draining].map((name) => ({ name }));
  const onHost = (h: Host, deleted: boolean): Request[] => {
    const name = h.metadata.name!;
    if (!deleted && h.spec?.maintenance === true) draining.add(name);
    else draining.delete(name);
    return deleted ? [] : [{ name }];
  };

  const handle = await controllerFor(reconciler, { workers: 1, log })
    .watches(hosts, (h, ev) => onHost(h, ev === 'delete'))
    .watches(instances, () => allDraining())
    .watches(migrations, (m) => {
      reconciler.observed(m);
      return allDraining();
    })
    .start(signal);
  return { ...handle, reconciler };
}
