// A small de-duplicating queue of keys worked on one at a time, with a delayed retry when the
// work fails or is not finished: what the API server's own background loops (garbage
// collector, namespace lifecycle) need, without the controllers' client-side runtime.

export class RetryQueue {
  private readonly keys = new Set<string>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private running = false;
  private stopped = false;

  /**
   * `work` returns false (or throws) when the key should be tried again after `retryMs`;
   * `onError` reports a thrown error.
   */
  constructor(
    private readonly work: (key: string) => Promise<boolean | void>,
    private readonly onError: (key: string, e: Error) => void,
    private readonly retryMs: number,
  ) {}

  add(key: string): void {
    if (this.stopped) return;
    this.keys.add(key);
    if (!this.running) void this.drain();
  }

  /** Runs `fn` after `ms` unless stopped first. */
  later(fn: () => void, ms = this.retryMs): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.stopped) fn();
    }, ms);
    this.timers.add(t);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private async drain(): Promise<void> {
    this.running = true;
    while (this.keys.size && !this.stopped) {
      const [key] = this.keys;
      this.keys.delete(key);
      try {
        if ((await this.work(key)) === false) this.later(() => this.add(key));
      } catch (e) {
        this.onError(key, e as Error);
        this.later(() => this.add(key));
      }
    }
    this.running = false;
  }
}
