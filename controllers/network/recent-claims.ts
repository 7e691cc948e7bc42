// Addresses this process has just claimed, is claiming, or has found taken, which its informer
// cache may not show yet. Parallel workers allocating on one network otherwise all propose the
// lowest address the cache calls free, and all but one pay a refused create and a read for it,
// then race again for the next one: quadratic in the workers while the cache lags. The store
// still decides every claim; this only steers proposals away from known losers.
export class RecentClaims {
  /** `networkUID ip` → who holds it ('' when another process does) and until when (ms). */
  private readonly held = new Map<string, { owner: string; until: number }>();
  /** owner → its keys in `held` (owners other than ''). */
  private readonly byOwner = new Map<string, Set<string>>();

  constructor(
    /** How long an entry outlives its claim: longer than the informer takes to show it. */
    private readonly ttlMs = 60_000,
    /** Entries kept at most (the oldest go first). */
    private readonly maxEntries = 65_536,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Notes that `owner` is claiming `ip`. False when another owner holds or claims it (the
   * allocation should propose another address); true when it is free here or already the owner's.
   */
  reserve(networkUID: string, ip: string, owner: string): boolean {
    const key = `${networkUID} ${ip}`;
    const cur = this.live(key);
    if (cur && cur.owner !== owner) return false;
    this.set(key, owner);
    return true;
  }

  /** The claim went to somebody else: keep proposing around it until the cache shows it. */
  takenByOther(networkUID: string, ip: string): void {
    this.set(`${networkUID} ${ip}`, '');
  }

  /** The address is free again (released, or the claim failed before the store decided). */
  forget(networkUID: string, ip: string): void {
    this.delete(`${networkUID} ${ip}`);
  }

  /** Addresses `owner` claimed here recently on the network. */
  ownedBy(networkUID: string, owner: string): string[] {
    const out: string[] = [];
    const prefix = `${networkUID} `;
    for (const key of this.byOwner.get(owner) ?? []) {
      if (key.startsWith(prefix) && this.live(key)) out.push(key.slice(prefix.length));
    }
    return out;
  }

  get size(): number {
    return this.held.size;
  }

  private live(key: string): { owner: string; until: number } | undefined {
    const cur = this.held.get(key);
    if (cur && cur.until <= this.now()) {
      this.delete(key);
      return undefined;
    }
    return cur;
  }

  private set(key: string, owner: string): void {
    // Re-inserted at the end, so the map stays in expiry order and pruning stops at the first live entry.
    this.delete(key);
    const now = this.now();
    this.held.set(key, { owner, until: now + this.ttlMs });
    if (owner) {
      let keys = this.byOwner.get(owner);
      if (!keys) this.byOwner.set(owner, (keys = new Set()));
      keys.add(key);
    }
    for (const [k, v] of this.held) {
      if (v.until > now && this.held.size <= this.maxEntries) break;
      this.delete(k);
    }
  }

  private delete(key: string): void {
    const cur = this.held.get(key);
    if (!cur) return;
    this.held.delete(key);
    const keys = this.byOwner.get(cur.owner);
    keys?.delete(key);
    if (keys?.size === 0) this.byOwner.delete(cur.owner);
  }
}
