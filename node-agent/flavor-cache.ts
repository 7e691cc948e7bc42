// Flavors by name for sizing domains, fetched on first use and kept briefly. A spawn needs the
// flavor once; thousands of spawns on a hundred simulated hosts must not each GET it, so one
// cache can be shared by all agents of a process. Concurrent misses share one request.
import type { KObject } from '../api/types.js';
import { FLAVORS } from '../client/client.js';
import type { KovaClient } from '../client/client.js';

export class FlavorCache {
  private readonly entries = new Map<string, { at: number; value: Promise<KObject | undefined> }>();

  constructor(
    private readonly client: KovaClient,
    private readonly ttlMs = 30_000,
  ) {}

  /** The Flavor, or undefined when it does not exist. */
  get(name: string): Promise<KObject | undefined> {
    const now = Date.now();
    const hit = this.entries.get(name);
    if (hit && now - hit.at < this.ttlMs) return hit.value;
    const value = this.client.get(FLAVORS, undefined, name);
    this.entries.set(name, { at: now, value });
    // Misses and failures are not kept: the flavor may be created any moment.
    const forget = () => this.entries.get(name)?.value === value && this.entries.delete(name);
    value.then((v) => v || forget(), forget);
    return value;
  }
}
