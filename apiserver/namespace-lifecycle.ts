// Namespace deletion, as kube-controller-manager's namespace controller does it: a namespace
// being deleted has its content deleted (finalizers honoured), and only once nothing is left
// is its `kubernetes` finalizer removed, which removes the namespace.
import type { KObject, ResourceInfo } from '../api/types.js';
import { storagePrefix } from './keys.js';
import type { ResourceStore } from './resource-store.js';
import { RetryQueue } from './retry-queue.js';
import { ApiError } from './status.js';

const RETRY_MS = 500;

export class NamespaceLifecycle {
  private readonly queue = new RetryQueue((name) => this.finalize(name), (name, e) => this.log(`namespace ${name}: ${e.message}`), RETRY_MS);
  private stopped = false;
  private watch?: { close(): Promise<void> };

  constructor(private readonly rs: ResourceStore, private readonly log: (m: string) => void = () => undefined) {}

  private get nsInfo(): ResourceInfo {
    return this.rs.registry.lookup('', 'v1', 'namespaces')!;
  }

  async start(): Promise<void> {
    const info = this.nsInfo;
    const startWatch = async (): Promise<void> => {
      const { items, resourceVersion } = await this.rs.list(info, undefined);
      for (const ns of items) this.observe(ns);
      this.watch = await this.rs.store.watch(storagePrefix(info), resourceVersion, (e) => {
        if (e.type !== 'DELETED') this.observe(e.object);
      }, () => {
        if (!this.stopped) this.later(() => void startWatch().catch((err) => this.log(`namespace watch: ${err}`)));
      });
    };
    await startWatch();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.queue.stop();
    await this.watch?.close();
  }

  private later(fn: () => void) {
    this.queue.later(fn);
  }

  private observe(ns: KObject) {
    if (ns.metadata.deletionTimestamp) this.queue.add(ns.metadata.name!);
  }

  /** One pass: delete what is left in the namespace; true when the namespace is gone. */
  private async finalize(name: string): Promise<boolean> {
    const info = this.nsInfo;
    let ns: KObject;
    try {
      ns = await this.rs.get(info, undefined, name);
    } catch (e) {
      if (e instanceof ApiError && e.code === 404) return true;
      throw e;
    }
    if (!ns.metadata.deletionTimestamp) return true;
    let remaining = 0;
    for (const r of this.rs.registry.all()) {
      if (!r.namespaced) continue;
      const { items } = await this.rs.list(r, name);
      remaining += items.length;
      for (const o of items) {
        if (o.metadata.deletionTimestamp) continue;
        try {
          await this.rs.delete(r, name, o.metadata.name!, { propagationPolicy: 'Background' });
        } catch (e) {
          if (!(e instanceof ApiError && e.code === 404)) throw e;
        }
      }
    }
    if (remaining > 0) return false;
    const spec = (ns.spec ?? {}) as { finalizers?: string[] };
    const next = structuredClone(ns);
    next.spec = { ...spec, finalizers: (spec.finalizers ?? []).filter((f) => f !== 'kubernetes') };
    await this.rs.update(info, undefined, name, next, { fieldManager: 'namespace-controller' });
    return true;
  }
}
