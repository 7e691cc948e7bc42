// Work queue with client-go semantics: keys are deduplicated while waiting, a key is never
// handed to two workers at once, and a key re-added while a worker holds it is handed out
// again after that worker calls done(). A named queue reports client-go's workqueue metrics
// (client/workqueue-metrics.ts); an unnamed one reports nothing.
import { newQueueMetrics } from './workqueue-metrics.js';
import type { MetricsProvider, QueueMetrics } from './workqueue-metrics.js';

/** Time source; tests inject a manual one so no test sleeps for real. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /** Monotonic ms with sub-ms precision, for measured durations (default: now()). */
  monotonicNow?(): number;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  monotonicNow: () => performance.now(),
};

export interface WorkQueueOptions {
  /** The `name` label of its metrics; without one the queue reports none. */
  name?: string;
  clock?: Clock;
  /** Overrides the process-wide metrics provider (tests). */
  metricsProvider?: MetricsProvider;
}

export class WorkQueue {
  readonly name: string | undefined;
  readonly clock: Clock;
  protected readonly metrics: QueueMetrics | undefined;
  private readonly queue: string[] = [];
  private head = 0;
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly waiters: Array<(key: string | undefined) => void> = [];
  private drainWaiters: Array<() => void> = [];
  private shuttingDown = false;

  constructor(opts: WorkQueueOptions = {}) {
    this.name = opts.name;
    this.clock = opts.clock ?? realClock;
    this.metrics = newQueueMetrics(opts.name, this.clock, opts.metricsProvider);
  }

  /** Marks `key` as needing work. No-op when it already waits or the queue is shutting down. */
  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    this.metrics?.add(key);
    if (this.processing.has(key)) return; // done() will enqueue it
    this.push(key);
  }

  /** Next key to process, or undefined once the queue is shut down (and drained of waiting keys). */
  get(): Promise<string | undefined> {
    if (this.head < this.queue.length) return Promise.resolve(this.take());
    if (this.shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** The worker finished `key`; if it was added again meanwhile it becomes available now. */
  done(key: string): void {
    this.metrics?.done(key);
    this.processing.delete(key);
    if (this.dirty.has(key)) this.push(key);
    else if (this.processing.size === 0 && this.drainWaiters.length) {
      for (const w of this.drainWaiters.splice(0)) w();
    }
  }

  /** Keys waiting (not counting those being processed). */
  len(): number {
    return this.queue.length - this.head;
  }

  /** Keys currently held by workers. */
  processingCount(): number {
    return this.processing.size;
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /** Stops accepting keys and releases all waiting get() calls with undefined. */
  shutDown(): void {
    if (!this.shuttingDown) this.metrics?.stop();
    this.shuttingDown = true;
    for (const w of this.waiters.splice(0)) w(undefined);
  }

  /** shutDown, then resolves when no key is being processed any more. */
  async shutDownWithDrain(): Promise<void> {
    this.shutDown();
    if (this.processing.size === 0) return;
    await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
  }

  private push(key: string): void {
    const w = this.waiters.shift();
    if (w) {
      this.dirty.delete(key);
      this.processing.add(key);
      this.metrics?.get(key);
      w(key);
      return;
    }
    this.queue.push(key);
  }

  private take(): string {
    const key = this.queue[this.head++]!;
    // Compact the array now and then instead of shift()ing (O(n)) on every get.
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    this.dirty.delete(key);
    this.processing.add(key);
    this.metrics?.get(key);
    return key;
  }
}
