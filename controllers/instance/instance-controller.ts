// The instance controller: the small part of an Instance's life nobody else owns.
// - An unbound instance whose Flavor or Image is missing (or whose Image is not visible from its
//   project: api/image-visibility.ts) gets the Validated=False condition (and
//   True once fixed); valid ones are left alone, as the API server already made them Pending.
//   The scheduler writes Scheduled; the binding and then the node agent own phase once the
//   instance is on a host.
// - An unbound instance being deleted has no domain anywhere: its protection finalizer (left by
//   an earlier binding, e.g. before an evacuation) is removed so the deletion completes.
import { resolveImage } from '../../api/image-visibility.js';
import { FLAVORS, IMAGES, INSTANCES } from '../../api/kinds/index.js';
import type { Flavor, Image, Instance } from '../../api/kinds/index.js';
import type { ApiClient } from '../../client/client.js';
import { controllerFor, withDefaults } from '../../client/controller.js';
import type { ControllerHandle, ControllerStartOptions, Reconciler, Request, Result } from '../../client/controller.js';
import { EventRecorder } from '../../client/events.js';
import { INSTANCE_FINALIZER } from '../../api/types.js';
import type { EventSink } from '../host/host-reconciler.js';
import { applyUnboundStatus, validatedCondition } from './unbound-status.js';
import type { References } from './unbound-status.js';

export interface InstanceReconcilerDeps {
  client: ApiClient;
  instances: { get(namespace: string | undefined, name: string): Instance | undefined };
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
    const updated = await this.d.client.updateStatus<Instance>(INSTANCES, ns, req.name, (i) => {
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
    await this.d.client.updateWithRetry<Instance>(INSTANCES, ns, name, (i) => {
      const fins = i.metadata.finalizers ?? [];
      if (i.status?.hostName || !i.metadata.deletionTimestamp || !fins.includes(INSTANCE_FINALIZER)) return false;
      i.metadata.finalizers = fins.filter((f) => f !== INSTANCE_FINALIZER);
      released = true;
    });
    if (released) this.log(`instance ${ns}/${name}: removed ${INSTANCE_FINALIZER} (deleted while not bound to a host)`);
  }
}

export interface InstanceControllerOptions extends ControllerStartOptions {
  events?: EventSink;
}

/** Starts the informers (Instances, Flavors, Images) and workers; resolves once synced. */
export async function startInstanceController(opts: InstanceControllerOptions): Promise<ControllerHandle> {
  const { client, signal, log, informers } = withDefaults(opts);
  const instances = informers.for<Instance>(INSTANCES);
  const flavors = informers.for<Flavor>(FLAVORS);
  const images = informers.for<Image>(IMAGES);

  const refs: References = {
    flavorExists: (name) => !!flavors.get(undefined, name),
    image: (ns, name) => resolveImage(ns, name, images),
  };
  const reconciler = new InstanceReconciler({ client, instances, refs, events: opts.events ?? new EventRecorder(client, 'kova-instance-controller', { log }), log });
  // A Flavor or Image appearing or vanishing changes the Validated condition of the unbound
  // instances that name it.
  const referrers = (field: 'flavor' | 'image') => (ref: Flavor | Image): Request[] =>
    instances.list().filter((i) => !i.status?.hostName && i.spec?.[field] === ref.metadata.name)
      .map((i) => ({ namespace: i.metadata.namespace, name: i.metadata.name! }));
  return controllerFor(reconciler, { workers: opts.workers ?? 2, log })
    .watches(instances, undefined, ['add', 'update'])
    .watches(flavors, referrers('flavor'))
    .watches(images, referrers('image'))
    .start(signal);
}
