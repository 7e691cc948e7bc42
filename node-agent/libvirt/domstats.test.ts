// Parsing `virsh domstats --raw`: sums over disks and NICs, units, states, counters only for live domains.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PowerState } from '../driver.js';
import { parseDomStats } from './domstats.js';

const testdata = (f: string) => fileURLToPath(new URL(`../../../node-agent/libvirt/testdata/${f}`, import.meta.url));

test('domstats output becomes one record per domain', async () => {
  const records = parseDomStats(await readFile(testdata('domstats-raw.txt'), 'utf8'));
  assert.deepEqual(records.map((r) => [r.name, r.state]), [
    ['kova-demo.web', PowerState.Running],
    ['kova-demo.off', PowerState.Shutdown],
    ['kova-demo.crashed', PowerState.Crashed],
    ["someone's vm", PowerState.Paused],
  ]);
  assert.deepEqual(records[0].counters, {
    cpuTimeNs: 8123456789,
    memoryResidentBytes: 151552 * 1024,
    blockReadBytes: 4096000 + 49152,
    blockWriteBytes: 81920,
    blockReadRequests: 312,
    blockWriteRequests: 20,
    netRxBytes: 1024,
    netTxBytes: 576,
  });
  // A shut-off domain still says the cpu.time of its last run: it is not a live counter.
  assert.equal(records[1].counters, undefined);
  assert.equal(records[2].counters, undefined);
  // No balloon.rss: no resident figure; an absurd device count is bounded, not looped over.
  assert.equal(records[3].counters!.memoryResidentBytes, undefined);
  assert.equal(records[3].counters!.cpuTimeNs, 10);
  assert.equal(records[3].counters!.blockReadBytes, 0);
});

test('empty output: no domains', () => {
  assert.deepEqual(parseDomStats(''), []);
});
