import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { heartbeatVerdict } from './heartbeat.js';

describe('heartbeatVerdict', () => {
  const base = { hostName: 'h1', hostCreated: '2026-01-01T00:00:00Z', graceMs: 40_000 };
  const renew = '2026-01-01T00:01:00.000000Z';
  const renewMs = Date.parse(renew);
  it('is alive until renewTime + leaseDurationSeconds and says when to look again', () => {
    const v = heartbeatVerdict({ ...base, lease: { spec: { renewTime: renew, leaseDurationSeconds: 2 } }, nowMs: renewMs + 1999 });
    assert.deepEqual(v, { alive: true, expiresAtMs: renewMs + 2000 });
  });
  it('expires at renewTime + duration and names the last heartbeat', () => {
    const v = heartbeatVerdict({ ...base, lease: { spec: { renewTime: new Date(renewMs), leaseDurationSeconds: 2 } }, nowMs: renewMs + 2000 });
    assert.equal(v.alive, false);
    assert.equal(v.alive === false && v.message, 'kova agent on host h1 stopped posting heartbeats at 2026-01-01T00:01:00.000Z');
  });
  it('gives a host without a Lease the grace period from its creation', () => {
    const created = Date.parse(base.hostCreated);
    assert.deepEqual(heartbeatVerdict({ ...base, lease: undefined, nowMs: created + 39_000 }), { alive: true, expiresAtMs: created + 40_000 });
    const v = heartbeatVerdict({ ...base, lease: { spec: {} }, nowMs: created + 40_000 });
    assert.equal(v.alive, false);
    assert.match(v.alive === false ? v.message : '', /has not posted a heartbeat since the host was registered at 2026-01-01T00:00:00.000Z/);
  });
  it('falls back to acquireTime and to the grace as duration', () => {
    const v = heartbeatVerdict({ ...base, lease: { spec: { acquireTime: renew } }, nowMs: renewMs });
    assert.deepEqual(v, { alive: true, expiresAtMs: renewMs + 40_000 });
  });
});
