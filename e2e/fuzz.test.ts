// The short fuzz run inside `npm test`: random and mutated requests for every kind against a real
// etcd and API server with two workers, one fixed seed and one random seed (printed, so a failure
// reproduces with `npm run fuzz -- --seed N`). Any 5xx, crash, hang, non-Status error, missing
// 401, dot-segment path resolved to another resource, or memory bound crossed fails the test
// with the reproductions. The long run is `npm run fuzz -- --seconds 600`.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { formatFindings, fuzz, startTarget } from './fuzz/fuzzer.js';
import type { Target } from './fuzz/fuzzer.js';

const FIXED_SEED = 20261204;

describe('API fuzz (short run)', { timeout: 120_000 }, () => {
  let t: Target;
  before(async () => {
    t = await startTarget(2);
  });
  after(async () => {
    await t?.stop();
  });

  for (const [label, seed] of [['fixed seed', FIXED_SEED], ['random seed', Math.floor(Math.random() * 2 ** 31)]] as const) {
    it(`${label} ${seed}: no 5xx, crash, hang or leak`, async () => {
      const r = await fuzz(t, { seed, requests: 2000, seconds: 20, concurrency: 8 });
      process.stdout.write(`# fuzz seed ${seed}: ${r.requests} requests ${JSON.stringify(r.byStatus)}, max RSS ${JSON.stringify(r.maxRssMb)} MB\n`);
      assert.ok(r.requests >= 200, `only ${r.requests} requests were sent`);
      assert.equal(r.findings.length, 0, formatFindings(r));
    });
  }
});
