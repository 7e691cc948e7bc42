// The network usage account: totals since the instance's creation from domain counters that
// restart with the emulator, and from what the status said when an agent takes over.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { accountFromStatus, observe, totalOf } from './network-usage.js';
import type { Bytes } from './network-usage.js';

const b = (rx: number, tx: number): Bytes => ({ rx, tx });

test('readings fold into monotonic totals across counter restarts', () => {
  // [domain counters read (undefined: no emulator), totals expected after it]
  const table: Array<[Bytes | undefined, Bytes, string]> = [
    [b(0, 0), b(0, 0), 'a new domain'],
    [b(100, 10), b(100, 10), 'grows'],
    [b(250, 20), b(250, 20), 'grows'],
    [b(250, 20), b(250, 20), 'idle'],
    [b(30, 5), b(280, 25), 'restarted between two readings: the last reading joins the base'],
    [b(50, 9), b(300, 29), 'grows after the restart'],
    [undefined, b(300, 29), 'stopped: no counters'],
    [undefined, b(300, 29), 'still stopped'],
    [b(7, 1), b(307, 30), 'started again from zero'],
    [b(7, 1), b(307, 30), 'idle'],
    [b(8, 0), b(315, 30), 'tx went down (rx passed its last reading): a new emulator, both fold'],
  ];
  let a = accountFromStatus(undefined);
  for (const [reading, total, why] of table) {
    a = observe(a, reading);
    assert.deepEqual(totalOf(a), total, why);
  }
});

test('an agent taking over continues from the status, whether the domain kept running or restarted', () => {
  const status = { receiveBytes: 1000, transmitBytes: 500, observedAt: '2026-05-01T00:00:00Z', domainReceiveBytes: 200, domainTransmitBytes: 100 };
  const rows: Array<[Bytes | undefined, Bytes, string]> = [
    [b(260, 130), b(1060, 530), 'the same emulator kept running (an agent restart): its counters are not counted twice'],
    [b(200, 100), b(1000, 500), 'nothing moved since the status'],
    [b(40, 20), b(1040, 520), 'the emulator restarted meanwhile: the status totals are the base'],
    [undefined, b(1000, 500), 'the domain is off'],
  ];
  for (const [reading, total, why] of rows) assert.deepEqual(totalOf(observe(accountFromStatus(status), reading)), total, why);
  // A status without the domain counters (published while the domain was off): all of it is the base.
  assert.deepEqual(totalOf(observe(accountFromStatus({ receiveBytes: 9, transmitBytes: 3, observedAt: status.observedAt }), b(5, 5))), b(14, 8));
  // Domain counters above the totals (a hand-edited status) never make a negative base.
  assert.deepEqual(accountFromStatus({ ...status, domainReceiveBytes: 5000 }).base, b(0, 400));
});
