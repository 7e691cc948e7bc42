// SimDriver.instanceStats: deterministic counters that grow with running time only.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DomainSpec } from './driver.js';
import { PowerState } from './driver.js';
import { SimDriver } from './sim-driver.js';
import { ManualClock } from '../testing/manual-clock.js';

const MiB = 2 ** 20;
const spec = (name: string): DomainSpec => ({
  instanceKey: `demo/${name}`, instanceUID: `uid-${name}`, name: `kova-demo.${name}`, vcpus: 2, memoryBytes: 512 * MiB, diskBytes: 2 ** 30, image: 'demo/tiny',
  networks: [{ network: 'n', mac: '52:54:00:00:00:01' }],
});

async function settle(clock: ManualClock, ms: number, p: Promise<unknown>): Promise<void> {
  await Promise.resolve();
  clock.advance(ms);
  await p;
}

test('counters grow with running time, stop with the guest, and belong to their instance', async () => {
  const clock = new ManualClock();
  const d = new SimDriver({ spawnMs: 10, stopMs: 10, clock });
  await settle(clock, 10, d.spawn(spec('a')));
  clock.advance(4000);
  const [s1] = await d.instanceStats();
  assert.equal(s1.id, 'kova-demo.a');
  assert.equal(s1.instanceKey, 'demo/a');
  assert.equal(s1.instanceUID, 'uid-a');
  assert.equal(s1.state, PowerState.Running);
  // 4 s × 2 vCPUs × a quarter of each.
  assert.equal(s1.counters!.cpuTimeNs, 2e9);
  assert.equal(s1.counters!.memoryResidentBytes, 256 * MiB);
  assert.equal(s1.counters!.blockReadBytes, 4 * 64 * 1024);
  assert.equal(s1.counters!.blockReadRequests, 64);
  assert.equal(s1.counters!.netRxBytes, 4 * 2048);
  clock.advance(1000);
  const [s2] = await d.instanceStats();
  assert.ok(s2.counters!.cpuTimeNs > s1.counters!.cpuTimeNs);
  assert.ok(s2.counters!.blockWriteBytes > s1.counters!.blockWriteBytes);
  assert.ok(s2.counters!.netTxBytes > s1.counters!.netTxBytes);

  // Paused: the emulator is there, its vCPUs are not running.
  await d.pause('kova-demo.a');
  clock.advance(3000);
  const [paused] = await d.instanceStats();
  assert.equal(paused.state, PowerState.Paused);
  assert.equal(paused.counters!.cpuTimeNs, s2.counters!.cpuTimeNs);
  await d.unpause('kova-demo.a');

  // Off: no emulator, no counters.
  await settle(clock, 10, d.powerOff('kova-demo.a', 1000));
  const [off] = await d.instanceStats();
  assert.equal(off.state, PowerState.Shutdown);
  assert.equal(off.counters, undefined);
});

test('instanceStats takes injected faults like every operation', async () => {
  const d = new SimDriver({ spawnMs: 0 });
  d.setFault('instanceStats', 'hypervisor busy');
  await assert.rejects(d.instanceStats(), /hypervisor busy/);
  d.setFault('instanceStats', undefined);
  assert.deepEqual(await d.instanceStats(), []);
  assert.equal(d.calls.instanceStats, 2);
});
