// A lane for best-effort side work (Events) that must not compete with placements: at most
// `maxInFlight` tasks run at once, at most `maxQueued` wait, and tasks beyond that are dropped,
// as client-go's event broadcaster drops events when its queue is full.
export class BestEffortLane {
  private inFlight = 0;
  private readonly queue: Array<() => Promise<unknown>> = [];
  readonly stats = { run: 0, dropped: 0 };

  constructor(
    private readonly maxInFlight = 4,
    private readonly maxQueued = 1000,
  ) {}

  /** Runs `task` now or later; returns false when it was dropped. Task errors are swallowed. */
  submit(task: () => Promise<unknown>): boolean {
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
