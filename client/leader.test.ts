// Lease-based leader election against a real `kova up`, with short timings
// (lease 2 s, renew deadline 1.5 s, retry 0.25 s) to keep the test fast.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { eventually, startKova } from '../e2e/harness.js';
import type { Kova } from '../e2e/harness.js';
import { KovaClient, LEASES } from './client.js';
import { LeaderElector, microTime } from './leader.js';
import type { Lease } from './leader.js';

interface Candidate {
  id: string;
  elector: LeaderElector;
  ac: AbortController;
  leading: boolean;
  started: number;
  stopped: number;
  leaderSignal?: AbortSignal;
  done: Promise<void>;
}

describe('LeaderElector', () => {
  let kova: Kova;
  let c: KovaClient;

  before(async () => {
    // The runtime is tested alone: no controllers or agents acting on the test's objects.
    kova = await startKova(['--no-controllers', '--no-agents', '--api-workers', '1']);
    c = KovaClient.fromFile(kova.kubeconfig);
  });
  after(async () => {
    c?.close();
    await kova?.stop();
  });

  function candidate(lease: string, id: string, releaseOnCancel = true, leaseDurationS = 2): Candidate {
    const elector = new LeaderElector({ client: c, name: lease, identity: id, leaseDurationS, renewDeadlineS: 1.5, retryPeriodS: 0.25, releaseOnCancel, log: () => undefined });
    const ac = new AbortController();
    const cand: Candidate = { id, elector, ac, leading: false, started: 0, stopped: 0, done: Promise.resolve() };
    cand.done = elector.run(ac.signal, {
      onStartedLeading: async (signal) => {
        cand.leading = true;
        cand.started++;
        cand.leaderSignal = signal;
        await new Promise((r) => signal.addEventListener('abort', r, { once: true }));
        cand.leading = false;
      },
      onStoppedLeading: () => {
        cand.stopped++;
      },
    });
    return cand;
  }

  const getLease = async (name: string) => (await c.get<Lease>(LEASES, 'kova-system', name))!;

  /** Samples both candidates until `ms` passes; fails if both ever lead at once. */
  async function neverBoth(a: Candidate, b: Candidate, ms: number) {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      assert.ok(!(a.leading && b.leading), 'two leaders at once');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it('formats MicroTime with 6 fractional digits', () => {
    assert.equal(microTime(Date.UTC(2026, 10, 25, 19, 0, 0, 123)), '2026-11-25T19:00:00.123000Z');
  });

  it('elects exactly one leader; a crashed leader is replaced after the lease expires', async (t) => {
    const a = candidate('crash', 'a', false);
    await eventually(() => a.leading, 10_000, 'a leads');
    const b = candidate('crash', 'b', false);
    await neverBoth(a, b, 1500);
    assert.equal(b.leading, false, 'b stays standby while a renews');

    let lease = await getLease('crash');
    assert.equal(lease.spec?.holderIdentity, 'a');
    assert.equal(lease.spec?.leaseDurationSeconds, 2);
    assert.equal(lease.spec?.leaseTransitions, 0);
    assert.match(lease.spec!.renewTime!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    assert.ok(lease.spec!.renewTime! > lease.spec!.acquireTime!, 'a renews');
    assert.match(await kova.k(['get', 'lease', 'crash', '-n', 'kova-system']), /crash\s+a\s/);

    // "Crash" a: it stops renewing and does not release.
    const t0 = Date.now();
    a.ac.abort();
    await a.done;
    assert.equal(a.stopped, 1);
    assert.equal(a.leaderSignal?.aborted, true);
    await eventually(() => b.leading, 10_000, 'b takes over');
    const took = Date.now() - t0;
    t.diagnostic(`takeover after crash: ${took} ms`);
    assert.ok(took >= 1000, `takeover must wait for the lease to expire (took ${took} ms)`);
    assert.ok(took <= 2000 + 2500, `takeover within about leaseDuration (took ${took} ms)`);
    lease = await getLease('crash');
    assert.equal(lease.spec?.holderIdentity, 'b');
    assert.equal(lease.spec?.leaseTransitions, 1);
    b.ac.abort();
    await b.done;
  });

  it('a leader that shuts down cleanly releases the lease so the standby takes over at once', async (t) => {
    // A 6 s lease: without the release, b could not take over before ~5 s.
    const a = candidate('clean', 'a', true, 6);
    await eventually(() => a.leading, 10_000, 'a leads');
    const b = candidate('clean', 'b', true, 6);
    await neverBoth(a, b, 600);
    const t0 = Date.now();
    a.ac.abort();
    await a.done;
    assert.equal((await getLease('clean')).spec?.holderIdentity === 'a', false, 'released');
    await eventually(() => b.leading, 10_000, 'b takes over');
    const took = Date.now() - t0;
    t.diagnostic(`takeover after release: ${took} ms`);
    assert.ok(took < 2500, `fast failover after release (took ${took} ms)`);
    b.ac.abort();
    await b.done;
  });

  it('stops leading when it cannot renew within the renew deadline', async (t) => {
    const a = candidate('deadline', 'a');
    await eventually(() => a.leading, 10_000, 'a leads');
    // Freeze the API server: renewals hang, so the deadline passes.
    kova.proc.kill('SIGSTOP');
    const t0 = Date.now();
    try {
      await eventually(() => !a.leading, 10_000, 'a stops leading');
    } finally {
      kova.proc.kill('SIGCONT');
    }
    const took = Date.now() - t0;
    t.diagnostic(`stepped down after ${took} ms without renewals`);
    assert.ok(took <= 250 + 1500 + 500, `gave up within retryPeriod + renewDeadline (took ${took} ms)`);
    await a.done; // run() returns after losing leadership
    assert.equal(a.stopped, 1);
    assert.equal(a.leaderSignal?.aborted, true);
    assert.equal(a.elector.isLeader(), false);
  });

  it('a competing writer taking the lease makes the old leader step down', async () => {
    const a = candidate('stolen', 'a');
    await eventually(() => a.leading, 10_000, 'a leads');
    await kova.k(['patch', 'lease', 'stolen', '-n', 'kova-system', '--type=merge', '-p', JSON.stringify({ spec: { holderIdentity: 'intruder', renewTime: microTime(Date.now()) } })]);
    await eventually(() => !a.leading, 5_000, 'a steps down');
    await a.done;
    assert.equal((await getLease('stolen')).spec?.holderIdentity, 'intruder');
  });
});
