// The resize controller (part of the instance controllers): for every instance bound to a host
// it compares the size the spec asks for with what the host charges it for, and writes the
// RestartRequired condition (api/resize.ts); when the node agent found no room at the restart
// (MoveRequired) it creates a cold Migration labelled kova.dev/resize-of, whose target the
// migration controller charges for the new size, and reports how the move ended. Decisions are
// in resize.ts; writes go through the status subresource (updateStatus retries conflicts) and
// re-decide on the fresh object.
import { FLAVORS, HOSTS, INSTANCES, MIGRATIONS } from '../../api/kinds/index.js';
import type { Flavor, Host, Instance, Migration } from '../../api/kinds/index.js';
import { setCondition } from '../../api/conditions.js';
import { chargedSize, RESIZE_MIGRATION_LABEL, ResizeReasons, restartRequired } from '../../api/resize.js';
import { instanceRequest } from '../../api/resources.js';
import type { ApiClient } from '../../client/client.js';
import { controllerFor, errorMessage, withDefaults } from '../../client/controller.js';
import type { ControllerHandle, ControllerStartOptions, Reconciler, Request, Result } from '../../client/controller.js';
import { EventRecorder } from '../../client/events.js';
import type { EventSink } from '../host/host-reconciler.js';
import { resizeAction } from './resize.js';
import type { ResizeInput } from './resize.js';

interface Cache<T> {
  get(namespace: string | undefined, name: string): T | undefined;
  list(namespace?: string): readonly T[];
}

export interface ResizeReconcilerDeps {
  client: ApiClient;
  instances: Cache<Instance>;
  flavors: Cache<Flavor>;
  hosts: Cache<Host>;
  migrations: Cache<Migration>;
  events?: EventSink;
  log: (msg: string) => void;
}

/** How long a Migration we created is trusted to show up in the cache before another may be created. */
const EXPECT_MS = 30_000;

export class ResizeReconciler implements Reconciler {
  readonly name = 'resize';
  /** Resize Migrations created but maybe not in the cache yet, by instance uid (ReplicaSet-style expectations). */
  private readonly expected = new Map<string, number>();

  constructor(private readonly d: ResizeReconcilerDeps) {}

  private input(inst: Instance): ResizeInput {
    const flavor = inst.spec?.flavor ? this.d.flavors.get(undefined, inst.spec.flavor) : undefined;
    const r = instanceRequest(inst, () => flavor);
    const host = inst.status?.hostName ? this.d.hosts.get(undefined, inst.status.hostName) : undefined;
    const uid = inst.metadata.uid!;
    return {
      inst,
      wanted: 'req' in r ? r.req : undefined,
      charged: chargedSize(host, uid),
      migrations: this.d.migrations.list(inst.metadata.namespace).filter((m) => m.metadata.labels?.[RESIZE_MIGRATION_LABEL] === uid),
    };
  }

  async reconcile(req: Request): Promise<Result | void> {
    const ns = req.namespace!;
    const inst = this.d.instances.get(ns, req.name);
    if (!inst) return;
    const action = resizeAction(this.input(inst));
    if (action.kind === 'none') return;
    if (action.kind === 'createMigration') return this.createMigration(inst);
    let written: Instance | undefined;
    await this.d.client.updateStatus<Instance>(INSTANCES, ns, req.name, (fresh) => {
      written = undefined;
      if (fresh.metadata.uid !== inst.metadata.uid) return false;
      const a = resizeAction(this.input(fresh));
      if (a.kind !== 'setCondition') return false;
      fresh.status = { ...fresh.status, conditions: setCondition(fresh.status?.conditions, a.condition) };
      written = fresh;
    });
    const c = action.condition;
    if (written && c.status === 'True') void this.d.events?.event(written, c.reason === 'FlavorChanged' || c.reason === 'Moving' ? 'Normal' : 'Warning', c.reason!, c.message!);
  }

  private async createMigration(inst: Instance): Promise<Result | void> {
    const uid = inst.metadata.uid!;
    const at = this.expected.get(uid);
    if (at !== undefined && Date.now() - at < EXPECT_MS) return { requeueAfterMs: EXPECT_MS };
    const ns = inst.metadata.namespace!;
    const name = inst.metadata.name!;
    try {
      const m = await this.d.client.create<Migration>(MIGRATIONS, {
        metadata: { generateName: `${name.slice(0, 48)}-resize-`, namespace: ns, labels: { [RESIZE_MIGRATION_LABEL]: uid } },
        spec: { instance: name, mode: 'Cold' },
      });
      this.expected.set(uid, Date.now());
      this.d.log(`resize: ${ns}/${name}: no room on host ${inst.status?.hostName} for the new size; moving it cold (migration ${m.metadata.name})`);
      // Moving at once, in this reconcile: a move refused at once (no host has room) must be
      // read as this request's outcome, never as a reason to create another.
      await this.d.client.updateStatus<Instance>(INSTANCES, ns, name, (fresh) => {
        if (fresh.metadata.uid !== uid) return false;
        const a = resizeAction({ ...this.input(fresh), migrations: [m] });
        if (a.kind !== 'setCondition') return false;
        fresh.status = { ...fresh.status, conditions: setCondition(fresh.status?.conditions, a.condition) };
      });
    } catch (e) {
      this.d.log(`resize: ${ns}/${name}: cannot create its Migration: ${errorMessage(e)}`);
      throw e;
    }
  }

  /**
   * The cache shows the Migration, and the instance has left MoveRequired: no need to remember
   * it (while the instance still says MoveRequired the cache may lag behind the Moving write).
   */
  seen(m: Migration): void {
    const uid = m.metadata.labels?.[RESIZE_MIGRATION_LABEL];
    if (!uid) return;
    const inst = this.d.instances.get(m.metadata.namespace, m.spec.instance);
    if (inst?.metadata.uid === uid && restartRequired(inst)?.reason === ResizeReasons.MoveRequired) return;
    this.expected.delete(uid);
  }
}

export interface ResizeControllerOptions extends ControllerStartOptions {
  events?: EventSink;
}

/** Starts the informers (Instances, Flavors, Hosts, Migrations) and the worker; resolves once synced. */
export async function startResizeController(opts: ResizeControllerOptions): Promise<ControllerHandle> {
  const { client, signal, log, informers } = withDefaults(opts);
  const instances = informers.for<Instance>(INSTANCES);
  const flavors = informers.for<Flavor>(FLAVORS);
  const hosts = informers.for<Host>(HOSTS);
  const migrations = informers.for<Migration>(MIGRATIONS);
  const r = new ResizeReconciler({ client, instances, flavors, hosts, migrations, log, events: opts.events ?? new EventRecorder(client, 'kova-resize-controller', { log }) });
  const bound = (i: Instance) => (i.status?.hostName ? [{ namespace: i.metadata.namespace, name: i.metadata.name! }] : []);
  // A host's allocations changing (a claim at a restart) matters to the instances it charges.
  const charged = (h: Host) => (h.status?.allocations ?? []).flatMap((a) => {
    const i = a.instance.indexOf('/');
    return i > 0 ? [{ namespace: a.instance.slice(0, i), name: a.instance.slice(i + 1) }] : [];
  });
  const naming = (f: Flavor) => instances.list().filter((i) => i.status?.hostName && i.spec?.flavor === f.metadata.name).map((i) => ({ namespace: i.metadata.namespace, name: i.metadata.name! }));
  const ofMigration = (m: Migration) => {
    if (!m.metadata.labels?.[RESIZE_MIGRATION_LABEL]) return [];
    r.seen(m);
    return [{ namespace: m.metadata.namespace, name: m.spec.instance }];
  };
  return controllerFor(r, { workers: opts.workers ?? 2, log })
    .watches(instances, bound)
    .watches(hosts, charged)
    .watches(flavors, naming)
    .watches(migrations, ofMigration)
    .start(signal);
}
