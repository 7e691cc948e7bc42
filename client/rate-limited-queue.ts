// Rate-limited layer: addRateLimited(key) delays a key by the max of a per-key exponential
// back-off and a global token bucket, as client-go's default controller rate limiter does.
// Callers must forget(key) after a success, or the key's back-off keeps growing.
import { DelayingQueue } from './delaying-queue.js';
import { realClock } from './workqueue.js';
import type { Clock, WorkQueueOptions } from './workqueue.js';

export interface RateLimiter {
  /** Delay before `key` may be retried; counts one more failure for it. */
  when(key: string): number;
  forget(key: string): void;
  numRequeues(key: string): number;
}

/** baseMs · 2^failures, capped at maxMs. */
export class ExponentialBackoffLimiter implements RateLimiter {
  private readonly failures = new Map<string, number>();
  constructor(
    readonly baseMs = 5,
    readonly maxMs = 1_000_000,
  ) {}

  when(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    // 2^n overflows to Infinity long after it passed the cap; min() handles that.
    return Math.min(this.maxMs, this.baseMs * 2 ** n);
  }
  forget(key: string): void {
    this.failures.delete(key);
  }
  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }
}

/** Token bucket shared by all keys: `burst` retries at once, then `qps` per second. */
export class TokenBucketLimiter implements RateLimiter {
  private tokens: number;
  private last: number;
  constructor(
    readonly qps = 10,
    readonly burst = 100,
    private readonly clock: Clock = realClock,
  ) {
    this.tokens = burst;
    this.last = clock.now();
  }

  when(): number {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.qps);
    this.last = now;
    // Reserve a token even when none is left: the debt is paid back over time, so a storm of
    // retries is spread out at qps instead of all firing when the first token returns.
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : (-this.tokens / this.qps) * 1000;
  }
  forget(): void {}
  numRequeues(): number {
    return 0;
  }
}

/** The delay is the longest any of the limiters asks for. */
export class MaxOfLimiter implements RateLimiter {
  private readonly limiters: RateLimiter[];
  constructor(...limiters: RateLimiter[]) {
    this.limiters = limiters;
  }
  when(key: string): number {
    let d = 0;
    for (const l of this.limiters) d = Math.max(d, l.when(key));
    return d;
  }
  forget(key: string): void {
    for (const l of this.limiters) l.forget(key);
  }
  numRequeues(key: string): number {
    let n = 0;
    for (const l of this.limiters) n = Math.max(n, l.numRequeues(key));
    return n;
  }
}

/** client-go's DefaultControllerRateLimiter: 5 ms·2^n capped at 1000 s, max'd with 10 qps / 100 burst. */
export function defaultControllerRateLimiter(clock: Clock = realClock): RateLimiter {
  return new MaxOfLimiter(new ExponentialBackoffLimiter(5, 1_000_000), new TokenBucketLimiter(10, 100, clock));
}

export class RateLimitedQueue extends DelayingQueue {
  readonly limiter: RateLimiter;
  /** When each backing-off key is due again (clock ms); cleared by forget(). */
  private readonly due = new Map<string, number>();

  constructor(opts: WorkQueueOptions & { limiter?: RateLimiter } = {}) {
    super(opts.clock ?? realClock, { name: opts.name, metricsProvider: opts.metricsProvider });
    this.limiter = opts.limiter ?? defaultControllerRateLimiter(this.clock);
  }

  /** Adds `key` after the delay the rate limiter assigns (counts a failure for it). */
  addRateLimited(key: string): void {
    const delay = this.limiter.when(key);
    this.due.set(key, this.clock.now() + delay);
    this.addAfter(key, delay);
  }

  /** Clears the key's failure history; call after every successful processing. */
  forget(key: string): void {
    this.limiter.forget(key);
    this.due.delete(key);
  }

  /**
   * When the key's back-off ends (clock ms), or undefined when it has none: a key added by an
   * event meanwhile is processed early, and its reconciler can tell it is not due yet.
   */
  retryAt(key: string): number | undefined {
    return this.due.get(key);
  }

  numRequeues(key: string): number {
    return this.limiter.numRequeues(key);
  }
}
