// Writes Instance status for the node agent through the status subresource, cheaply: nothing
// when the status would not change, a PUT with the resourceVersion we hold otherwise, and a
// re-read only after a conflict. What a write returns is newer than the informer's copy until
// the watch delivers it, so it is kept (and preferred) until then.
import type { Instance, InstanceStatus } from '../../api/kinds/index.js';
import type { KObject } from '../../api/types.js';
import { INSTANCES, isConflict, isNotFound } from '../../client/client.js';
import type { ApiClient } from '../../client/client.js';
import { OwnWrites } from '../../client/own-writes.js';
import { sameStatus } from './agent-status.js';

export class AgentStatusWriter {
  /** Objects returned by our own writes, newer than the cache until the watch catches up. */
  private readonly written = new OwnWrites<Instance>();
  readonly stats = { statusWrites: 0, statusSkips: 0, conflicts: 0 };

  constructor(
    private readonly client: ApiClient,
    private readonly hostName: string,
    private readonly getCached: (namespace: string, name: string) => Instance | undefined,
  ) {}

  /** The newest copy we have: the informer's, or what our last write returned. */
  current(ns: string, name: string): Instance | undefined {
    return this.written.newest(this.getCached(ns, name), ns, name);
  }

  /** Forget what our writes returned once the informer has delivered something at least as new. */
  observed(obj: KObject, deleted = false): void {
    this.written.observed(obj, deleted);
  }

  /**
   * The informer delivering exactly what our write returned (same resourceVersion): the pass
   * that wrote it has already acted on that state, so it needs no new pass of its own.
   */
  isOwnWrite(obj: KObject): boolean {
    return this.written.isOwnWrite(obj);
  }

  /** `key`: the instance's namespace/name (instanceKey). */
  forget(key: string): void {
    const i = key.indexOf('/');
    this.written.forget(key.slice(0, i), key.slice(i + 1));
  }

  /** Keeps an object a write (e.g. adding the finalizer) returned. */
  remember(obj: Instance): Instance {
    return this.written.remember(obj);
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
