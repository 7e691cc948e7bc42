// Leader election on a coordination.k8s.io/v1 Lease, after client-go's leaderelection:
// candidates try every retryPeriod to acquire the Lease; a Lease may be taken over once it has
// not changed for leaseDuration as measured on the candidate's own clock (so clock skew between
// machines does not matter); every write is conditional on resourceVersion; the leader renews
// every retryPeriod and gives up leadership if it could not renew for renewDeadline.
import type { KObject } from '../api/types.js';
import { gauge } from '../lib/metrics.js';
import { StatusError, isAlreadyExists, isConflict, KovaClient, LEASES, NAMESPACES } from './client.js';
import { errorMessage } from './controller.js';

export const LEADER_NAMESPACE = 'kova-system';

/** client-go's leader election metric (as controller-runtime registers it), by Lease name. */
const masterStatus = gauge({
  name: 'leader_election_master_status',
  help: "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease. Please make sure to group by name.",
  labelNames: ['name'] as const,
});
/** Electors of this process leading each Lease (tests run several candidates in one process). */
const leadingHere = new Map<string, number>();
function setLeading(name: string, delta: number): void {
  const n = (leadingHere.get(name) ?? 0) + delta;
  leadingHere.set(name, n);
  masterStatus.set({ name }, n > 0 ? 1 : 0);
}

export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

export interface Lease extends KObject {
  spec?: LeaseSpec;
}

export interface LeaderElectorOptions {
  client: KovaClient;
  /** Lease name, e.g. `kova-controllers`. */
  name: string;
  /** Unique per candidate process, e.g. `${hostname}_${pid}`. */
  identity: string;
  namespace?: string;
  leaseDurationS?: number;
  renewDeadlineS?: number;
  retryPeriodS?: number;
  /** Release the Lease when `run`'s signal aborts so a standby takes over at once (default true). */
  releaseOnCancel?: boolean;
  log?: (msg: string) => void;
}

export interface LeaderCallbacks {
  /** Called on becoming leader; `signal` aborts when leadership ends. May run until then. */
  onStartedLeading(signal: AbortSignal): void | Promise<void>;
  /** Called once leadership ends (lost or released). */
  onStoppedLeading?(): void;
  /** Called when another identity is observed as leader. */
  onNewLeader?(identity: string): void;
}

/** metav1.MicroTime: RFC 3339 UTC with exactly 6 fractional digits. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

/**
 * A signal that aborts with `parent` or after `ms`, from a plain AbortController and a timer we
 * hold (rather than AbortSignal.any/timeout, which have had garbage-collection bugs on Node 20):
 * a request to a frozen API server must not outlive the renew deadline.
 */
function withDeadline(parent: AbortSignal, ms: number): { signal: AbortSignal; cancel: () => void } {
  const ac = new AbortController();
  const onAbort = () => ac.abort(parent.reason);
  const timer = setTimeout(() => ac.abort(new Error(`deadline of ${ms} ms exceeded`)), ms);
  if (parent.aborted) onAbort();
  else parent.addEventListener('abort', onAbort, { once: true });
  return {
    signal: ac.signal,
    cancel: () => {
      clearTimeout(timer);
      parent.removeEventListener('abort', onAbort);
    },
  };
}

export class LeaderElector {
  readonly client: KovaClient;
  readonly name: string;
  readonly identity: string;
  readonly namespace: string;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
  private readonly releaseOnCancel: boolean;
  private readonly log: (msg: string) => void;
  /** Last Lease we read or wrote, and when (our clock) its content last changed. */
  private observed?: Lease;
  private observedAt = 0;
  private leading = false;
  private lastLeader = '';

  constructor(opts: LeaderElectorOptions) {
    this.client = opts.client;
    this.name = opts.name;
    this.identity = opts.identity;
    this.namespace = opts.namespace ?? LEADER_NAMESPACE;
    this.leaseDurationMs = (opts.leaseDurationS ?? 15) * 1000;
    this.renewDeadlineMs = (opts.renewDeadlineS ?? 10) * 1000;
    this.retryPeriodMs = (opts.retryPeriodS ?? 2) * 1000;
    this.releaseOnCancel = opts.releaseOnCancel ?? true;
    this.log = opts.log ?? ((m) => console.error(m));
    if (this.renewDeadlineMs >= this.leaseDurationMs) throw new Error('renewDeadline must be shorter than leaseDuration');
    if (this.retryPeriodMs >= this.renewDeadlineMs) throw new Error('retryPeriod must be shorter than renewDeadline');
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** Identity of the holder as last observed ('' when none). */
  leader(): string {
    return this.observed?.spec?.holderIdentity ?? '';
  }

  /**
   * Campaigns until leader, leads until leadership is lost or `signal` aborts, then returns
   * (once onStartedLeading's promise, if any, has settled). Like client-go, a lost leadership
   * is not re-campaigned: the caller decides (typically: exit, or call run again).
   */
  async run(signal: AbortSignal, cb: LeaderCallbacks): Promise<void> {
    setLeading(this.name, 0); // a standby reports 0
    await this.ensureNamespace(signal);
    if (!(await this.acquire(signal, cb))) return;
    this.leading = true;
    setLeading(this.name, 1);
    const leaderAc = new AbortController();
    let work: Promise<void> = Promise.resolve();
    try {
      work = Promise.resolve()
        .then(() => cb.onStartedLeading(leaderAc.signal))
        .catch((e) => this.log(`leader ${this.name}: onStartedLeading failed: ${errorMessage(e)}`));
      await this.renewLoop(signal);
    } finally {
      this.leading = false;
      setLeading(this.name, -1);
      leaderAc.abort(new Error('leadership lost'));
      await work;
      if (signal.aborted && this.releaseOnCancel) await this.release();
      try {
        cb.onStoppedLeading?.();
      } catch (e) {
        this.log(`leader ${this.name}: onStoppedLeading failed: ${errorMessage(e)}`);
      }
    }
  }

  private async ensureNamespace(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        if (await this.client.get(NAMESPACES, undefined, this.namespace)) return;
        await this.client.create(NAMESPACES, { metadata: { name: this.namespace } });
        return;
      } catch (e) {
        if (isAlreadyExists(e)) return;
        this.log(`leader ${this.name}: ensuring namespace ${this.namespace}: ${errorMessage(e)}`);
        await sleep(this.retryPeriodMs, signal);
      }
    }
  }

  /** Retries every retryPeriod (jittered) until acquired (true) or aborted (false). */
  private async acquire(signal: AbortSignal, cb: LeaderCallbacks): Promise<boolean> {
    while (!signal.aborted) {
      const attempt = withDeadline(signal, this.renewDeadlineMs);
      const ok = await this.tryAcquireOrRenew(attempt.signal).finally(attempt.cancel);
      if (ok) {
        this.log(`leader ${this.name}: ${this.identity} became leader`);
        return true;
      }
      const holder = this.leader();
      if (holder && holder !== this.lastLeader && holder !== this.identity) {
        this.lastLeader = holder;
        cb.onNewLeader?.(holder);
      }
      await sleep(this.retryPeriodMs * (1 + Math.random() * 1.2), signal);
    }
    return false;
  }

  /** Renews every retryPeriod; returns when a renewal could not succeed within renewDeadline. */
  private async renewLoop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await sleep(this.retryPeriodMs, signal);
      if (signal.aborted) return;
      const deadline = Date.now() + this.renewDeadlineMs;
      let renewed = false;
      while (!signal.aborted && Date.now() < deadline) {
        const attempt = withDeadline(signal, Math.max(1, deadline - Date.now()));
        const ok = await this.tryAcquireOrRenew(attempt.signal).finally(attempt.cancel);
        if (ok) {
          renewed = true;
          break;
        }
        // Someone else holds it now: no point retrying until the deadline.
        if (this.leader() && this.leader() !== this.identity) break;
        await sleep(Math.min(this.retryPeriodMs, Math.max(0, deadline - Date.now())), signal);
      }
      if (signal.aborted) return;
      if (!renewed) {
        this.log(`leader ${this.name}: ${this.identity} failed to renew within ${this.renewDeadlineMs} ms; stopping leading`);
        return;
      }
    }
  }

  /** One attempt: create, take over, or renew the Lease. Never throws. */
  private async tryAcquireOrRenew(signal: AbortSignal): Promise<boolean> {
    const now = Date.now();
    const path = this.client.objectPath(LEASES, this.namespace, this.name);
    const durationS = Math.max(1, Math.ceil(this.leaseDurationMs / 1000));
    try {
      let lease: Lease | undefined;
      try {
        lease = await this.client.request<Lease>({ method: 'GET', path, signal });
      } catch (e) {
        if (!(e instanceof StatusError && e.code === 404)) throw e;
      }
      if (!lease) {
        const created = await this.client.request<Lease>({
          method: 'POST',
          path: this.client.collectionPath(LEASES, this.namespace),
          signal,
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name: this.name, namespace: this.namespace },
            spec: { holderIdentity: this.identity, leaseDurationSeconds: durationS, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 },
          },
        });
        this.observe(created, Date.now());
        return true;
      }
      this.observe(lease, now);
      const spec = lease.spec ?? {};
      const holder = spec.holderIdentity ?? '';
      const heldByOther = holder !== '' && holder !== this.identity;
      const expiresAt = this.observedAt + (spec.leaseDurationSeconds ?? durationS) * 1000;
      if (heldByOther && now < expiresAt) return false;
      const takeover = holder !== this.identity;
      const next: Lease = {
        ...lease,
        spec: {
          ...spec,
          holderIdentity: this.identity,
          leaseDurationSeconds: durationS,
          renewTime: microTime(now),
          acquireTime: takeover ? microTime(now) : spec.acquireTime ?? microTime(now),
          // Like client-go: every acquisition by a new holder (also of a released Lease) is a transition.
          leaseTransitions: (spec.leaseTransitions ?? 0) + (takeover ? 1 : 0),
        },
      };
      const updated = await this.client.request<Lease>({ method: 'PUT', path, body: next, signal });
      this.observe(updated, Date.now());
      return true;
    } catch (e) {
      if (!isConflict(e) && !signal.aborted) this.log(`leader ${this.name}: ${errorMessage(e)}`);
      return false;
    }
  }

  private observe(lease: Lease, now: number): void {
    const prev = this.observed?.spec;
    const cur = lease.spec ?? {};
    if (!prev || prev.holderIdentity !== cur.holderIdentity || prev.renewTime !== cur.renewTime || this.observed!.metadata.resourceVersion !== lease.metadata.resourceVersion) {
      this.observedAt = now;
    }
    this.observed = lease;
  }

  /** Gives the Lease up so a standby need not wait for it to expire. */
  private async release(): Promise<void> {
    const path = this.client.objectPath(LEASES, this.namespace, this.name);
    const deadline = withDeadline(new AbortController().signal, this.renewDeadlineMs);
    try {
      const lease = await this.client.request<Lease>({ method: 'GET', path, signal: deadline.signal });
      if (lease.spec?.holderIdentity !== this.identity) return;
      const now = Date.now();
      await this.client.request<Lease>({
        method: 'PUT',
        path,
        signal: deadline.signal,
        body: {
          ...lease,
          spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(now) },
        },
      });
      this.log(`leader ${this.name}: ${this.identity} released the lease`);
    } catch (e) {
      this.log(`leader ${this.name}: release failed: ${errorMessage(e)}`);
    } finally {
      deadline.cancel();
    }
  }
}
