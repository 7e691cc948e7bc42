// The instance controller: the small part of an Instance's life nobody else owns.
// - An unbound instance whose Flavor or Image is missing gets the Validated=False condition (and
//   True once fixed); valid ones are left alone, as the API server already made them Pending.
//   The scheduler writes Scheduled; the binding and then the node agent own phase once the
//   instance is on a host.
// - An unbound instance being deleted has no domain anywhere: its protection finalizer (left by
//   an earlier binding, e.g. before an evacuation) is removed so the deletion completes.
import type { KObject } from '../../api/types.js';
import { FLAVORS, IMAGES, INSTANCES } from '../../client/client.js';
import type { KovaClient } from '../../client/client.js';
import { Controller } from '../../client/controller.js';
import { EventRecorder } from '../../client/events.js';
import type { Reconciler, Request, Result } from '../../client/controller.js';
import { Informer } from '../../client/informer.js';
import { SharedInformers } from '../../client/shared-informers.js';
import { INSTANCE_FINALIZER } from '../../api/types.js';
import type { EventSink } from '../host/host-reconciler.js';
import { applyUnboundStatus, validatedCondition } from './instance-status.js';
import type { References, UnboundInstance } from './instance-status.js';

type InstanceObject = KObject & UnboundInstance & { metadata: KObject['metadata'] };
type ImageObject = KObject & { spec?: { visibility?: string } };

export interface InstanceReconcilerDeps {
  client: KovaClient;
  instances: { get(namespace: string | undefined, name: string): InstanceObject | undefined };
  refs: References;
  events?: EventSink;
  log?: (msg: string) => void;
}

export class InstanceReconciler implements Reconciler {
  readonly name = 'instance';
  private readonly log: (msg: string) => void;

  constructor(private readonly d: InstanceReconcilerDeps) {
    this.log = d.log ?? (() => undefined);
  }

  async reconcile(req: Request): Promise<Result | void> {
    const ns = req.namespace!;
    const inst = this.d.instances.get(ns, req.name);
    if (!inst || inst.status?.hostName) return;
    if (inst.metadata.deletionTimestamp) {
      if (inst.metadata.finalizers?.includes(INSTANCE_FINALIZER)) await this.releaseUnbound(ns, req.name);
      return;
    }
    const cond = validatedCondition(ns, inst.spec, this.d.refs, inst.metadata.generation);
    const probe = structuredClone(inst);
    if (!applyUnboundStatus(probe, cond)) return;
    let before: string | undefined;
    let wrote = false;
    const updated = await this.d.client.updateStatus<InstanceObject>(INSTANCES, ns, req.name, (i) => {
      before = i.status?.conditions?.find((c) => c.type === 'Validated')?.status;
      wrote = applyUnboundStatus(i, validatedCondition(ns, i.spec, this.d.refs, i.metadata.generation));
      return wrote;
    });
    if (wrote && updated && cond.status === 'False' && before !== 'False') {
      void this.d.events?.event(updated, 'Warning', cond.reason!, cond.message!);
    }
  }

  /** Removes the finalizer only while the live object is still unbound (a PUT with its resourceVersion). */
  private async releaseUnbound(ns: string, name: string): Promise<void> {
    let released = false;
    await this.d.client.updateWithRetry<InstanceObject>(INSTANCES, ns, name, (i) => {
      const fins = i.metadata.finalizers ?? [];
      if (i.status?.hostName || !i.metadata.deletionTimestamp || !fins.includes(INSTANCE_FINALIZER)) return false;
      i.metadata.finalizers = fins.filter((f) => f !== INSTANCE_FINALIZER);
      released = true;
    });
    if (released) this.log(`instance ${ns}/${name}: removed ${INSTANCE_FINALIZER} (deleted while not bound to a host)`);
  }
}

export interface InstanceControllerOptions {
  /** Informers shared with the other controllers of the process (default: its own). */
  informers?: SharedInformers;
  client: KovaClient;
  signal: AbortSignal;
  workers?: number;
  events?: EventSink;
  log?: (msg: string) => void;
}

export interface InstanceControllerHandle {
  controller: Controller;
  done: Promise<void>;
}

/** Starts the informers (Instances, Flavors, Images) and workers; resolves once synced. */
export async function startInstanceController(opts: InstanceControllerOptions): Promise<InstanceControllerHandle> {
  const { client, signal } = opts;
  const log = opts.log ?? ((m: string) => console.error(m));
  const shared = opts.informers ?? new SharedInformers(client, log);
  const instances = shared.for<InstanceObject>(INSTANCES);
  const flavors = shared.for(FLAVORS);
  const images = shared.for<ImageObject>(IMAGES);

  const refs: References = {
    flavorExists: (name) => !!flavors.get(undefined, name),
    imageUsable: (ns, name) => !!images.get(ns, name) || images.list().some((i) => i.metadata.name === name && i.spec?.visibility === 'Public'),
  };
  const controller = new Controller(new InstanceReconciler({ client, instances, refs, events: opts.events ?? new EventRecorder(client, 'kova-instance-controller', { log }), log }), { workers: opts.workers ?? 2, log });

  const onInstance = (i: KObject) => controller.enqueue({ namespace: i.metadata.namespace, name: i.metadata.name! });
  instances.on('add', onInstance);
  instances.on('update', onInstance);
  // A Flavor or Image appearing or vanishing changes the Validated condition of the unbound
  // instances that name it.
  const wakeReferrers = (field: 'flavor' | 'image') => (ref: KObject) => {
    for (const i of instances.list()) {
      if (!i.status?.hostName && i.spec?.[field] === ref.metadata.name) onInstance(i);
    }
  };
  for (const [inf, field] of [[flavors, 'flavor'], [images, 'image']] as const) {
    for (const ev of ['add', 'update', 'delete'] as const) inf.on(ev, wakeReferrers(field));
  }

  const informers: Array<Informer<KObject>> = [instances, flavors, images];
  for (const inf of informers) inf.start();
  signal.addEventListener('abort', () => informers.forEach((i) => i.stop()), { once: true });
  await Promise.all(informers.map((i) => i.waitForSync(signal)));
  const done = controller.start(signal);
  return { controller, done };
}
