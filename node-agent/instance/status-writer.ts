// Writes Instance status for the node agent through the status subresource, cheaply: nothing
// when the status would not change, a PUT with the resourceVersion we hold otherwise, and a
// re-read only after a conflict. What a write returns is newer than the informer's copy until
// the watch delivers it, so it is kept (and preferred) until then.
import type { Instance, InstanceStatus } from '../../api/kinds/index.js';
import type { KObject } from '../../api/types.js';
import { INSTANCES, isConflict, isNotFound } from '../../client/client.js';
import type { ApiClient } from '../../client/client.js';
import { instanceKey } from '../driver.js';
import { sameStatus } from './agent-status.js';

export class AgentStatusWriter {
  /** Objects returned by our own writes, newer than the cache until the watch catches up. */
  private readonly written = new Map<string, Instance>();
  readonly stats = { statusWrites: 0, statusSkips: 0, conflicts: 0 };

  constructor(
    private readonly client: ApiClient,
    private readonly hostName: string,
    private readonly getCached: (namespace: string, name: string) => Instance | undefined,
  ) {}

  /** The newest copy we have: the informer's, or what our last write returned. */
  current(ns: string, name: string): Instance | undefined {
    const cached = this.getCached(ns, name);
    const key = instanceKey(ns, name);
    if (!cached) {
      this.written.delete(key);
      return undefined;
    }
    const mine = this.written.get(key);
    return mine && rv(mine) > rv(cached) ? mine : cached;
  }

  /** Forget what our writes returned once the informer has delivered something at least as new. */
  observed(obj: KObject, deleted = false): void {
    const key = keyOf(obj);
    const mine = this.written.get(key);
    if (mine && (deleted || rv(obj) >= rv(mine))) this.written.delete(key);
  }

  /**
   * The informer delivering exactly what our write returned (same resourceVersion): the pass
   * that wrote it has already acted on that state, so it needs no new pass of its own.
   */
  isOwnWrite(obj: KObject): boolean {
    const mine = this.written.get(keyOf(obj));
    return mine !== undefined && mine.metadata.resourceVersion === obj.metadata.resourceVersion;
  }

  forget(key: string): void {
    this.written.delete(key);
  }

  /** Keeps an object a write (e.g. adding the finalizer) returned. */
  remember(obj: Instance): Instance {
    this.written.set(keyOf(obj), obj);
    return obj;
  }

  /**
   * Writes compute(status) unless it equals the status: PUT /status with the resourceVersion
   * we hold; on a conflict, re-read and recompute (client.updateStatus). Returns the newest
   * object (the input when nothing was written or the instance is gone or bound elsewhere).
   */
  async write(inst: Instance, compute: (prev: InstanceStatus | undefined) => InstanceStatus): Promise<Instance> {
    const next = compute(inst.status);
    if (sameStatus(inst.status, next)) {
      this.stats.statusSkips++;
      return inst;
    }
    this.stats.statusWrites++;
    try {
      return this.remember(await this.client.replaceStatus<Instance>(INSTANCES, { ...inst, status: next }));
    } catch (e) {
      if (isNotFound(e)) return inst;
      if (!isConflict(e)) throw e;
    }
    this.stats.conflicts++;
    const out = await this.client.updateStatus<Instance>(INSTANCES, inst.metadata.namespace, inst.metadata.name!, (fresh) => {
      const prev = fresh.status;
      if (prev?.hostName !== this.hostName) return false;
      const n = compute(prev);
      if (sameStatus(prev, n)) return false;
      fresh.status = n;
    });
    return out ? this.remember(out) : inst;
  }
}

function keyOf(obj: KObject): string {
  return instanceKey(obj.metadata.namespace ?? '', obj.metadata.name ?? '');
}

/** kova's resourceVersions are etcd revisions, so they order numerically. */
function rv(obj: KObject): number {
  return Number(obj.metadata.resourceVersion ?? 0) || 0;
}
