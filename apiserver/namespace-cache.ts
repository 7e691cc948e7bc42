// Namespace existence for admission (like NamespaceLifecycle): served from a watch-fed cache,
// with a live read on a miss so a namespace created a moment ago is never refused.
import type { Registry } from '../api/registry.js';
import type { KObject } from '../api/types.js';
import type { Store } from '../store/store.js';
import { storageKey, storagePrefix } from './keys.js';

export type NamespaceState = 'active' | 'terminating' | 'missing';

const NS = { group: '', plural: 'namespaces', namespaced: false };

function stateOf(o: KObject | undefined): NamespaceState {
  if (!o) return 'missing';
  return o.metadata.deletionTimestamp || (o.status as { phase?: string } | undefined)?.phase === 'Terminating' ? 'terminating' : 'active';
}

export class NamespaceCache {
  private readonly known = new Map<string, NamespaceState>();
  private watch?: { close(): Promise<void> };

  constructor(private readonly store: Store, _registry: Registry) {}

  async start(): Promise<void> {
    const { items, revision } = await this.store.list(storagePrefix(NS));
    for (const o of items) this.known.set(o.metadata.name!, stateOf(o));
    this.watch = await this.store.watch(storagePrefix(NS), revision, (e) => {
      const name = e.object.metadata.name!;
      if (e.type === 'DELETED') this.known.delete(name);
      else this.known.set(name, stateOf(e.object));
    }, () => {
      // On a watch failure fall back to live reads until restarted.
      this.known.clear();
      this.watch = undefined;
    });
  }

  async stop(): Promise<void> {
    await this.watch?.close();
  }

  async state(name: string): Promise<NamespaceState> {
    return this.cachedState(name) ?? stateOf(await this.store.get(storageKey(NS, undefined, name)));
  }

  /**
   * The state the watch last saw, when it can be trusted without asking etcd: not "missing",
   * since a namespace just made may not have reached the watch yet.
   */
  cachedState(name: string): NamespaceState | undefined {
    const cached = this.watch ? this.known.get(name) : undefined;
    return cached && cached !== 'missing' ? cached : undefined;
  }
}
