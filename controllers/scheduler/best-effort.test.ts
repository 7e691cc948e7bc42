import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BestEffortLane } from './best-effort.js';

test('BestEffortLane: bounded concurrency, bounded queue, drops beyond', async () => {
  const lane = new BestEffortLane(2, 3);
  let running = 0;
  let peak = 0;
  const release: Array<() => void> = [];
  const task = () =>
    new Promise<void>((r) => {
      running++;
      peak = Math.max(peak, running);
      release.push(() => {
        running--;
        r();
      });
    });
  const accepted = Array.from({ length: 7 }, () => lane.submit(task));
  assert.deepEqual(accepted, [true, true, true, true, true, false, false]);
  assert.equal(lane.stats.dropped, 2);
  assert.equal(lane.pending, 5);
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setImmediate(r));
    release.shift()!();
  }
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  assert.equal(peak, 2);
  assert.equal(lane.pending, 0);
  assert.equal(lane.stats.run, 5);
  // A failing task does not stop the lane.
  assert.equal(lane.submit(() => Promise.reject(new Error('x'))), true);
  let ran = false;
  lane.submit(async () => {
    ran = true;
  });
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(ran, true);
});

test('BestEffortLane: a token bucket passes the burst, then about perSecond', async () => {
  let t = 0;
  const lane = new BestEffortLane(100, 1000, { perSecond: 10, burst: 5 }, () => t);
  const submit = (n: number) => Array.from({ length: n }, () => lane.submit(async () => undefined)).filter(Boolean).length;
  assert.equal(submit(20), 5, 'the burst');
  t += 500; // half a second: 5 tokens back
  assert.equal(submit(20), 5);
  t += 10_000; // refills only up to the burst
  assert.equal(submit(20), 5);
  assert.equal(lane.stats.dropped, 45);
});
