// Work queue metrics as client-go's workqueue metrics_test.go expects them (TestMetrics ported row
// by row, on a manual clock), read back from the process registry as Prometheus would see them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { metricsRegistry } from '../lib/metrics.js';
import { ManualClock } from '../testing/manual-clock.js';
import { exponentialBuckets } from './controller-metrics.js';
import { RateLimitedQueue } from './rate-limited-queue.js';
import { WorkQueue } from './workqueue.js';
import type { MetricsProvider } from './workqueue-metrics.js';

interface Sample {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

async function samples(metric: string): Promise<Sample[]> {
  const m = metricsRegistry.getSingleMetric(metric);
  assert.ok(m, `${metric} is registered`);
  return (await m.get()).values as Sample[];
}

/** The value of `metric` (or its `_sum`/`_count`/`_bucket` series) for queue `name`; 0 when absent. */
async function value(metric: string, name: string, series = '', le?: number): Promise<number> {
  const s = (await samples(metric)).find(
    (v) => v.labels.name === name && (series ? v.metricName === metric + series : true) && (le === undefined || v.labels.le === le),
  );
  return s?.value ?? 0;
}

const near = (actual: number, expected: number) => assert.ok(Math.abs(actual - expected) < 1e-12, `${actual} ≈ ${expected}`);

describe('work queue metrics (client-go metrics_test.go TestMetrics)', () => {
  it('add, get, re-add while processing, done, get again: depth, adds, latency, work duration, unfinished work', async () => {
    const clock = new ManualClock(0);
    const q = new WorkQueue({ name: 'cg-test', clock });
    const depth = () => value('workqueue_depth', 'cg-test');
    const adds = () => value('workqueue_adds_total', 'cg-test');
    const latency = (s: string) => value('workqueue_queue_duration_seconds', 'cg-test', s);
    const duration = (s: string) => value('workqueue_work_duration_seconds', 'cg-test', s);

    q.add('foo');
    assert.equal(await adds(), 1);
    assert.equal(await depth(), 1);

    clock.advance(0.05); // 50 µs
    const i = await q.get();
    assert.equal(i, 'foo');
    near(await latency('_sum'), 5e-5);
    assert.equal(await latency('_count'), 1);

    // Added back while processing; repeated adds are deduplicated.
    for (let n = 0; n < 5; n++) q.add(i);
    assert.equal(await adds(), 2);
    assert.equal(await depth(), 1, 'one thing remains in the queue');

    clock.advance(0.025);
    q.done(i);
    near(await duration('_sum'), 2.5e-5);
    assert.equal(await duration('_count'), 1);
    assert.equal(await depth(), 1);

    // It is back on the queue.
    assert.equal(await q.get(), 'foo');
    near((await latency('_sum')) - 5e-5, 2.5e-5);
    assert.equal(await latency('_count'), 2);

    clock.advance(1);
    near(await value('workqueue_unfinished_work_seconds', 'cg-test'), 0.001);
    near(await value('workqueue_longest_running_processor_seconds', 'cg-test'), 0.001);

    q.done('foo');
    near((await duration('_sum')) - 2.5e-5, 0.001);
    assert.equal(await duration('_count'), 2);
    assert.equal(await depth(), 0);
    assert.equal(await value('workqueue_unfinished_work_seconds', 'cg-test'), 0);
    q.shutDown();
  });

  it('queue latency and work duration use controller-runtime\'s buckets (10 ns … 1000 s)', async () => {
    const clock = new ManualClock(0);
    const q = new WorkQueue({ name: 'buckets', clock });
    q.add('a');
    clock.advance(0.05);
    await q.get();
    const buckets = (await samples('workqueue_queue_duration_seconds')).filter((s) => s.labels.name === 'buckets' && s.metricName?.endsWith('_bucket'));
    assert.deepEqual(buckets.map((b) => b.labels.le), [...exponentialBuckets(10e-9, 10, 12), '+Inf']);
    // 50 µs: above the 10 µs bucket, within the 100 µs one.
    assert.equal(await value('workqueue_queue_duration_seconds', 'buckets', '_bucket', exponentialBuckets(10e-9, 10, 12)[3]), 0);
    assert.equal(await value('workqueue_queue_duration_seconds', 'buckets', '_bucket', exponentialBuckets(10e-9, 10, 12)[4]), 1);
    q.shutDown();
  });

  it('unfinished work sums the keys being processed, the longest is the oldest; a stopped queue reports none', async () => {
    const clock = new ManualClock(0);
    const q = new WorkQueue({ name: 'unfinished', clock });
    q.add('a');
    q.add('b');
    await q.get();
    clock.advance(2000);
    await q.get();
    clock.advance(1000);
    assert.equal(await value('workqueue_unfinished_work_seconds', 'unfinished'), 3 + 1);
    assert.equal(await value('workqueue_longest_running_processor_seconds', 'unfinished'), 3);
    q.shutDown(); // client-go stops updating unfinished work at shutdown
    clock.advance(1000);
    assert.equal(await value('workqueue_unfinished_work_seconds', 'unfinished'), 0);
    assert.equal(await value('workqueue_longest_running_processor_seconds', 'unfinished'), 0);
  });

  it('every delayed add (rate-limited or not) counts a retry; the delayed key enters depth only when due', async () => {
    const clock = new ManualClock(0);
    const q = new RateLimitedQueue({ name: 'retries', clock });
    q.addRateLimited('k'); // 5 ms
    assert.equal(await value('workqueue_retries_total', 'retries'), 1);
    assert.equal(await value('workqueue_depth', 'retries'), 0);
    assert.equal(await value('workqueue_adds_total', 'retries'), 0);
    clock.advance(5);
    assert.equal(await value('workqueue_depth', 'retries'), 1);
    assert.equal(await value('workqueue_adds_total', 'retries'), 1);
    q.addAfter('j', 0);
    q.add('plain'); // not a retry
    assert.equal(await value('workqueue_retries_total', 'retries'), 2);
    assert.equal(await value('workqueue_adds_total', 'retries'), 3);
    q.shutDown();
    q.addRateLimited('late'); // ignored after shutdown, as in client-go
    assert.equal(await value('workqueue_retries_total', 'retries'), 2);
  });

  it('a queue without a name reports nothing', async () => {
    // Counters' samples, and histograms' _count series, summed over every queue name.
    const total = async (m: string) => (await samples(m)).filter((s) => !s.metricName || s.metricName.endsWith('_count')).reduce((n, s) => n + s.value, 0);
    const before = [await total('workqueue_adds_total'), await total('workqueue_retries_total'), await total('workqueue_queue_duration_seconds')];
    const q = new RateLimitedQueue({ clock: new ManualClock(0) });
    q.add('a');
    q.addAfter('b', 0);
    q.done((await q.get())!);
    assert.deepEqual([await total('workqueue_adds_total'), await total('workqueue_retries_total'), await total('workqueue_queue_duration_seconds')], before);
  });

  it('a named queue calls its provider with its name (client-go\'s MetricsProvider)', async () => {
    const calls: string[] = [];
    const rec = (kind: string) => (name: string) => ({
      inc: () => calls.push(`${kind}(${name}).inc`),
      dec: () => calls.push(`${kind}(${name}).dec`),
      set: () => undefined,
      observe: () => calls.push(`${kind}(${name}).observe`),
    });
    const provider: MetricsProvider = {
      newDepthMetric: rec('depth'),
      newAddsMetric: rec('adds'),
      newLatencyMetric: rec('latency'),
      newWorkDurationMetric: rec('duration'),
      newUnfinishedWorkSecondsMetric: rec('unfinished'),
      newLongestRunningProcessorSecondsMetric: rec('longest'),
      newRetriesMetric: rec('retries'),
    };
    const q = new RateLimitedQueue({ name: 'p', clock: new ManualClock(0), metricsProvider: provider });
    q.add('a');
    q.done((await q.get())!);
    q.addAfter('a', 0);
    assert.deepEqual(calls, ['adds(p).inc', 'depth(p).inc', 'depth(p).dec', 'latency(p).observe', 'duration(p).observe', 'retries(p).inc', 'adds(p).inc', 'depth(p).inc']);
  });
});
