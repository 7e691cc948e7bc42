// A lane for best-effort side work (Events) that must not compete with placements: at most
// `maxInFlight` tasks run at once, at most `maxQueued` wait, and tasks beyond that are dropped,
// as client-go's event broadcaster drops events when its queue is full. An optional token bucket
// caps the rate (client-go's event sink shares the client's QPS limit): a bulk placement of
// thousands records the first events and then about `perSecond`, instead of writing an Event
// for each placement at the placements' expense.
export interface LaneRate {
  perSecond: number;
  burst: number;
}

export class BestEffortLane {
  private inFlight = 0;
  private readonly queue: Array<() => Promise<unknown>> = [];
  readonly stats = { run: 0, dropped: 0 };
  private tokens: number;
  private refilledAt: number;

  constructor(
    private readonly maxInFlight = 4,
    private readonly maxQueued = 1000,
    private readonly rate?: LaneRate,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = rate?.burst ?? 0;
    this.refilledAt = now();
  }

  /** Runs `task` now or later; returns false when it was dropped. Task errors are swallowed. */
  submit(task: () => Promise<unknown>): boolean {
    if (this.rate && !this.takeToken()) {
      this.stats.dropped++;
      return false;
    }
    if (this.inFlight < this.maxInFlight) {
      this.start(task);
      return true;
    }
    if (this.queue.length >= this.maxQueued) {
      this.stats.dropped++;
      return false;
    }
    this.queue.push(task);
    return true;
  }

  /** Drops everything still queued (on shutdown). */
  clear(): void {
    this.stats.dropped += this.queue.length;
    this.queue.length = 0;
  }

  get pending(): number {
    return this.inFlight + this.queue.length;
  }

  private takeToken(): boolean {
    const r = this.rate!;
    const t = this.now();
    this.tokens = Math.min(r.burst, this.tokens + ((t - this.refilledAt) / 1000) * r.perSecond);
    this.refilledAt = t;
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }

  private start(task: () => Promise<unknown>): void {
    this.inFlight++;
    this.stats.run++;
    void Promise.resolve()
      .then(task)
      .catch(() => undefined)
      .finally(() => {
        this.inFlight--;
        const next = this.queue.shift();
        if (next) this.start(next);
      });
  }
}
