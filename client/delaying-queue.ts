// Delaying layer: addAfter(key, ms) keeps (due time, key) entries in a min-heap and arms one
// timer for the earliest due time. A key already waiting keeps its earlier due time.
import { realClock, WorkQueue } from './workqueue.js';
import type { Clock, WorkQueueOptions } from './workqueue.js';

interface Entry {
  due: number;
  key: string;
  seq: number; // FIFO among equal due times
}

export class DelayingQueue extends WorkQueue {
  private readonly heap: Entry[] = [];
  /** key → its heap entry, so a second addAfter only moves a key earlier. */
  private readonly waiting = new Map<string, Entry>();
  private timer: unknown;
  private timerDue = Infinity;
  private seq = 0;

  constructor(clock: Clock = realClock, opts: Omit<WorkQueueOptions, 'clock'> = {}) {
    super({ ...opts, clock });
  }

  /** Adds `key` once `ms` have passed (immediately when ms <= 0). Counted as a retry, as in client-go. */
  addAfter(key: string, ms: number): void {
    if (this.isShuttingDown()) return;
    this.metrics?.retry();
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const due = this.clock.now() + ms;
    const existing = this.waiting.get(key);
    if (existing) {
      if (existing.due <= due) return;
      existing.due = due;
      this.siftUp(this.heap.indexOf(existing));
    } else {
      const e = { due, key, seq: this.seq++ };
      this.waiting.set(key, e);
      this.heap.push(e);
      this.siftUp(this.heap.length - 1);
    }
    this.arm();
  }

  /** Keys waiting for their delay to pass. */
  delayedLen(): number {
    return this.heap.length;
  }

  override shutDown(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.timerDue = Infinity;
    super.shutDown();
  }

  /** Moves every due entry into the queue and re-arms the timer for the next one. */
  private fire(): void {
    this.timer = undefined;
    this.timerDue = Infinity;
    const now = this.clock.now();
    while (this.heap.length && this.heap[0]!.due <= now) {
      const e = this.pop();
      this.waiting.delete(e.key);
      this.add(e.key);
    }
    this.arm();
  }

  private arm(): void {
    if (!this.heap.length || this.isShuttingDown()) return;
    const due = this.heap[0]!.due;
    if (this.timer !== undefined && this.timerDue <= due) return;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timerDue = due;
    this.timer = this.clock.setTimeout(() => this.fire(), Math.max(0, due - this.clock.now()));
  }

  // ---- binary min-heap on (due, seq) ----

  private less(a: Entry, b: Entry): boolean {
    return a.due < b.due || (a.due === b.due && a.seq < b.seq);
  }

  private siftUp(i: number): void {
    const h = this.heap;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): Entry {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}
