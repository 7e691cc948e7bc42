// Flavors by name for sizing domains, fetched on first use and kept briefly. A spawn needs the
// flavor once; thousands of spawns on a hundred simulated hosts must not each GET it, so one
// cache can be shared by all agents of a process. Concurrent misses share one request.
import type { Flavor } from '../api/kinds/index.js';
import { FLAVORS } from '../api/kinds/index.js';
import type { ApiClient } from '../client/client.js';

export class FlavorCache {
  private readonly entries = new Map<string, { at: number; value: Promise<Flavor | undefined> }>();

  constructor(
    private readonly client: ApiClient,
    private readonly ttlMs = 30_000,
  ) {}

  /** The Flavor, or undefined when it does not exist. */
  get(name: string): Promise<Flavor | undefined> {
    const now = Date.now();
    const hit = this.entries.get(name);
    if (hit && now - hit.at < this.ttlMs) return hit.value;
    const value = this.client.get<Flavor>(FLAVORS, undefined, name);
    this.entries.set(name, { at: now, value });
    // Misses and failures are not kept: the flavor may be created any moment.
    const forget = () => this.entries.get(name)?.value === value && this.entries.delete(name);
    value.then((v) => v || forget(), forget);
    return value;
  }
}
