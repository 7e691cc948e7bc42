import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Controller, TerminalError } from './controller.js';
import type { Request } from './controller.js';
import { DelayingQueue } from './delaying-queue.js';
import { ManualClock } from '../testing/manual-clock.js';
import { ExponentialBackoffLimiter, MaxOfLimiter, RateLimitedQueue, TokenBucketLimiter } from './rate-limited-queue.js';
import { WorkQueue } from './workqueue.js';

/** Resolves `p` if it settles within the current macrotask turn, else returns 'pending'. */
async function peek<T>(p: Promise<T>): Promise<T | 'pending'> {
  return Promise.race([p, new Promise<'pending'>((r) => setImmediate(() => r('pending')))]);
}

describe('WorkQueue', () => {
  it('deduplicates keys waiting to be processed and keeps FIFO order', async () => {
    const q = new WorkQueue();
    for (const k of ['a', 'b', 'a', 'c', 'b']) q.add(k);
    assert.equal(q.len(), 3);
    assert.deepEqual([await q.get(), await q.get(), await q.get()], ['a', 'b', 'c']);
    assert.equal(q.len(), 0);
  });

  it('never hands a key to two workers at once; re-add during processing is processed after done()', async () => {
    const q = new WorkQueue();
    q.add('a');
    const k1 = await q.get();
    assert.equal(k1, 'a');
    q.add('a'); // event arrives while a worker holds 'a'
    assert.equal(q.len(), 0, 'held key must not be queued again');
    const second = q.get();
    assert.equal(await peek(second), 'pending', 'a second worker must not get the held key');
    q.add('a'); // still deduplicated
    q.done('a');
    assert.equal(await second, 'a');
    q.done('a');
    assert.equal(q.len(), 0);
    assert.equal(await peek(q.get()), 'pending', 'processed once more only');
    q.shutDown();
  });

  it('a waiting get() receives keys added later', async () => {
    const q = new WorkQueue();
    const p = q.get();
    assert.equal(await peek(p), 'pending');
    q.add('x');
    assert.equal(await p, 'x');
  });

  it('shutDown releases waiters with undefined, hands out queued keys, ignores new adds', async () => {
    const q = new WorkQueue();
    const waiting = q.get();
    q.shutDown();
    assert.equal(await waiting, undefined);
    const q2 = new WorkQueue();
    q2.add('a');
    q2.shutDown();
    q2.add('b');
    assert.equal(await q2.get(), 'a');
    assert.equal(await q2.get(), undefined);
  });

  it('shutDownWithDrain waits for in-flight keys', async () => {
    const q = new WorkQueue();
    q.add('a');
    const k = await q.get();
    let drained = false;
    const d = q.shutDownWithDrain().then(() => (drained = true));
    await peek(d);
    assert.equal(drained, false);
    q.done(k!);
    await d;
    assert.equal(drained, true);
  });
});

describe('DelayingQueue', () => {
  it('adds keys when their delay has passed, earliest first, with one timer', async () => {
    const clock = new ManualClock();
    const q = new DelayingQueue(clock);
    q.addAfter('late', 300);
    q.addAfter('early', 100);
    q.addAfter('mid', 200);
    q.addAfter('early', 250); // later due time for a waiting key: keeps the earlier one
    assert.equal(clock.pending(), 1, 'one timer for the heap');
    assert.equal(q.len(), 0);
    clock.advance(99);
    assert.equal(q.len(), 0);
    clock.advance(1);
    assert.equal(q.len(), 1);
    clock.advance(250);
    assert.equal(q.len(), 3);
    assert.deepEqual([await q.get(), await q.get(), await q.get()], ['early', 'mid', 'late']);
    assert.equal(clock.pending(), 0);
  });

  it('moving a waiting key earlier re-arms the timer', () => {
    const clock = new ManualClock();
    const q = new DelayingQueue(clock);
    q.addAfter('a', 1000);
    q.addAfter('a', 10);
    clock.advance(10);
    assert.equal(q.len(), 1);
    clock.advance(2000);
    assert.equal(q.len(), 1, 'not added twice');
  });

  it('addAfter with 0 adds immediately; shutDown cancels the timer', () => {
    const clock = new ManualClock();
    const q = new DelayingQueue(clock);
    q.addAfter('now', 0);
    assert.equal(q.len(), 1);
    q.addAfter('later', 50);
    q.shutDown();
    assert.equal(clock.pending(), 0);
    clock.advance(100);
    assert.equal(q.len(), 1);
  });
});

describe('rate limiting', () => {
  it('per-key exponential back-off: 5ms·2^n, capped at 1000 s, reset by forget', () => {
    const l = new ExponentialBackoffLimiter();
    const got = Array.from({ length: 6 }, () => l.when('k'));
    assert.deepEqual(got, [5, 10, 20, 40, 80, 160]);
    assert.equal(l.numRequeues('k'), 6);
    assert.equal(l.when('other'), 5, 'keys are independent');
    for (let i = 0; i < 100; i++) l.when('k');
    assert.equal(l.when('k'), 1_000_000);
    l.forget('k');
    assert.equal(l.numRequeues('k'), 0);
    assert.equal(l.when('k'), 5);
  });

  it('token bucket: burst 100 free, then 10 qps', () => {
    const clock = new ManualClock();
    const b = new TokenBucketLimiter(10, 100, clock);
    for (let i = 0; i < 100; i++) assert.equal(b.when(), 0);
    assert.equal(b.when(), 100);
    assert.equal(b.when(), 200);
    clock.advance(1000); // refills 10 tokens: pays back the debt of 2, leaves 8
    for (let i = 0; i < 8; i++) assert.equal(b.when(), 0);
    assert.equal(b.when(), 100);
  });

  it('addRateLimited delays by the growing back-off; forget resets it', async () => {
    const clock = new ManualClock();
    const q = new RateLimitedQueue({ clock });
    q.addRateLimited('k');
    clock.advance(4);
    assert.equal(q.len(), 0);
    clock.advance(1);
    assert.equal(q.len(), 1);
    const k = (await q.get())!;
    q.done(k);
    q.addRateLimited('k');
    clock.advance(9);
    assert.equal(q.len(), 0);
    clock.advance(1);
    assert.equal(q.len(), 1);
    assert.equal(q.numRequeues('k'), 2);
    q.forget('k');
    assert.equal(q.numRequeues('k'), 0);
  });
});

describe('Controller', () => {
  it('reconciles each key with no concurrent runs per key, retries errors with back-off, not terminal ones', async () => {
    const clock = new ManualClock();
    const active = new Set<string>();
    const calls: string[] = [];
    let overlap = false;
    let failures = 2;
    const gates: Array<() => void> = [];
    const logs: string[] = [];
    const c = new Controller(
      {
        name: 'test',
        async reconcile(req: Request) {
          const key = `${req.namespace}/${req.name}`;
          if (active.has(key)) overlap = true;
          active.add(key);
          calls.push(key);
          await new Promise<void>((r) => gates.push(r));
          active.delete(key);
          if (req.name === 'flaky' && failures-- > 0) throw new Error('boom');
          if (req.name === 'bad') throw new TerminalError('invalid spec');
        },
      },
      { workers: 4, clock, log: (m) => logs.push(m) },
    );
    const ac = new AbortController();
    const running = c.start(ac.signal);
    const release = async () => {
      await new Promise((r) => setImmediate(r));
      for (const g of gates.splice(0)) g();
      await new Promise((r) => setImmediate(r));
    };
    c.enqueue({ namespace: 'ns', name: 'a' });
    c.enqueue({ namespace: 'ns', name: 'flaky' });
    c.enqueue({ namespace: 'ns', name: 'bad' });
    await new Promise((r) => setImmediate(r));
    c.enqueue({ namespace: 'ns', name: 'a' }); // while 'a' runs
    await release(); // first round; 'a' runs again, flaky fails (5 ms back-off)
    await release();
    assert.equal(calls.filter((k) => k === 'ns/a').length, 2);
    assert.equal(calls.filter((k) => k === 'ns/flaky').length, 1);
    clock.advance(5);
    await release(); // flaky fails again: 10 ms
    clock.advance(10);
    await release();
    await release();
    assert.equal(calls.filter((k) => k === 'ns/flaky').length, 3);
    assert.equal(calls.filter((k) => k === 'ns/bad').length, 1, 'terminal errors are not retried');
    assert.equal(c.queue.numRequeues('ns/flaky'), 0, 'success forgets the back-off');
    assert.equal(overlap, false);
    assert.equal(c.stats.errors, 2);
    assert.equal(c.stats.terminalErrors, 1);
    assert.equal(c.stats.reconciles, 6);
    assert.ok(logs.some((l) => l.includes('ns/flaky') && l.includes('boom')), logs.join('\n'));
    assert.equal(logs.length, 3, 'one log line per failure');
    ac.abort();
    await running;
  });

  it('requeueAfterMs schedules another reconcile', async () => {
    const clock = new ManualClock();
    let n = 0;
    const c = new Controller({ name: 'poll', reconcile: async () => (++n < 3 ? { requeueAfterMs: 1000 } : undefined) }, { clock, workers: 1 });
    const ac = new AbortController();
    const running = c.start(ac.signal);
    c.enqueue({ name: 'x' });
    const tick = () => new Promise((r) => setImmediate(r));
    await tick();
    assert.equal(n, 1);
    clock.advance(999);
    await tick();
    assert.equal(n, 1);
    clock.advance(1);
    await tick();
    assert.equal(n, 2);
    clock.advance(1000);
    await tick();
    assert.equal(n, 3);
    clock.advance(5000);
    await tick();
    assert.equal(n, 3);
    ac.abort();
    await running;
  });
  it('a failed key backs off exponentially even when every reconcile re-enqueues it at once', async () => {
    // The node agent's spawn-failure loop: each failed reconcile writes status, and the watch
    // event of that write enqueues the key again immediately. The reconciler asks ctx whether
    // the key is due and does not retry before; attempts then grow with log(time), not time.
    const clock = new ManualClock();
    const start = clock.now();
    let attempts = 0;
    let wakeups = 0;
    let c!: Controller;
    c = new Controller({
      name: 'spawn',
      async reconcile(req, _signal, ctx) {
        if (ctx?.retryAt !== undefined && ctx.now < ctx.retryAt) {
          wakeups++;
          return { backoff: 'pending' };
        }
        attempts++;
        // The echo of the status write that reports it (bounded, so a regression fails, not hangs).
        if (attempts < 1000) queueMicrotask(() => c.enqueue(req));
        return { backoff: 'failed' };
      },
    }, { clock, workers: 1, limiter: new MaxOfLimiter(new ExponentialBackoffLimiter(5, 300_000), new TokenBucketLimiter(10, 100, clock)) });
    const ac = new AbortController();
    const running = c.start(ac.signal);
    c.enqueue({ namespace: 'ns', name: 'doomed' });
    const tick = async () => {
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    };
    // 10 virtual seconds in 10 ms steps: 5 ms doubling allows about log2(10000/5) + 1 ≈ 12.
    for (let t = 0; t < 10_000; t += 10) {
      await tick();
      clock.advance(10);
    }
    await tick();
    assert.ok(attempts >= 10 && attempts <= 13, `${attempts} attempts in ${clock.now() - start} ms`);
    assert.ok(wakeups >= attempts - 1, 'the echoes were woken and sent back to wait');
    assert.equal(c.queue.numRequeues('ns/doomed'), attempts, 'the echoes did not reset the back-off');
    assert.equal(c.stats.failures, attempts);
    ac.abort();
    await running;
  });
});
