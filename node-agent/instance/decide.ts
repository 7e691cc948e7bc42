// What the agent does next to an instance: a pure function of the Instance (deletion,
// finalizer, runStrategy, power annotations, what status says happened before), the domain
// observed on the host and the work queue's back-off. The agent applies one action, re-reads
// the domain and asks again, so every decision is level-triggered and survives agent restarts.
import type { Instance, RunStrategy } from '../../api/kinds/index.js';
import { INSTANCE_FINALIZER } from '../../api/types.js';
import { PowerState } from '../driver.js';

export const ANNOTATION_RESTARTED_AT = 'kova.dev/restartedAt';
export const ANNOTATION_PAUSED = 'kova.dev/paused';
export const ANNOTATION_POWER = 'kova.dev/power';

/** Ready=False reason the agent writes when it (not the guest) powered the domain off. */
export const REASON_STOPPED = 'Stopped';
export const REASON_GUEST_SHUTDOWN = 'GuestShutdown';
export const REASON_CRASHED = 'Crashed';
/** Ready=False reason of a spawn that failed and is retried with back-off. */
export const REASON_SPAWN_FAILED = 'SpawnFailed';
/** Ready=False reason of a spec that cannot work (no flavor nor resources, a spec the driver refuses): not retried until it changes. */
export const REASON_INVALID_SPEC = 'InvalidSpec';

export type { RunStrategy };

/** The facts about an Instance the policy needs. */
export interface PolicyInput {
  runStrategy: RunStrategy;
  annotations: Record<string, string>;
  /** status.startedAt: set once the guest has been started at least once. */
  startedAt?: string;
  observedRestartedAt?: string;
  /** Reason of the Ready condition in status (REASON_STOPPED when the agent stopped it). */
  readyReason?: string;
}

export type PowerAction =
  | { kind: 'spawn' }
  /** `restart`: an automatic restart after a crash or guest shutdown (counted in restartCount). */
  | { kind: 'powerOn'; restart: boolean }
  | { kind: 'powerOff'; why: string }
  | { kind: 'reboot' }
  | { kind: 'pause' }
  | { kind: 'unpause' }
  /** The domain is in a transient state: look again shortly. */
  | { kind: 'wait' }
  | { kind: 'none' };

/** Whether the guest should run: true, false, or 'leave' (Manual without kova.dev/power). */
export function wantRunning(p: PolicyInput, state: PowerState | undefined): boolean | 'leave' {
  switch (p.runStrategy) {
    case 'Halted':
      return false;
    case 'Manual': {
      const power = p.annotations[ANNOTATION_POWER];
      if (power === 'On') return true;
      if (power === 'Off') return false;
      // Started once at creation; after that the user or the guest decides.
      return state === undefined && !p.startedAt ? true : 'leave';
    }
    case 'RerunOnFailure':
      // A clean shutdown from inside the guest is final; one the agent did (Halted, power
      // Off before a strategy change) is not, nor is a crash.
      return state === PowerState.Shutdown && p.readyReason !== REASON_STOPPED ? false : true;
    case 'Always':
    default:
      return true;
  }
}

/** True when kova.dev/restartedAt asks for a reboot not yet acted on. */
export function restartRequested(p: PolicyInput): boolean {
  const want = p.annotations[ANNOTATION_RESTARTED_AT];
  return !!want && want !== p.observedRestartedAt;
}

export function pauseRequested(p: PolicyInput): boolean {
  return p.annotations[ANNOTATION_PAUSED] === 'true';
}

/** The next action; `none` when the domain already matches. */
export function nextAction(p: PolicyInput, state: PowerState | undefined): PowerAction {
  const want = wantRunning(p, state);
  const on = state === PowerState.Running || state === PowerState.Paused;
  if (state === PowerState.NoState) return { kind: 'wait' };
  if (want === false) {
    return on ? { kind: 'powerOff', why: p.runStrategy === 'Manual' ? `${ANNOTATION_POWER} is Off` : `runStrategy is ${p.runStrategy}` } : { kind: 'none' };
  }
  if (want === true && !on) {
    if (state === undefined) return { kind: 'spawn' };
    const automatic = (p.runStrategy === 'Always' || p.runStrategy === 'RerunOnFailure') && p.readyReason !== REASON_STOPPED;
    return { kind: 'powerOn', restart: automatic };
  }
  if (!on) {
    // Nova's reboot starts a stopped guest; a guest kova keeps off is only acknowledged.
    return want === 'leave' && state !== undefined && restartRequested(p) ? { kind: 'reboot' } : { kind: 'none' };
  }
  if (restartRequested(p)) return { kind: 'reboot' };
  if (pauseRequested(p) && state === PowerState.Running) return { kind: 'pause' };
  if (!pauseRequested(p) && state === PowerState.Paused) return { kind: 'unpause' };
  return { kind: 'none' };
}

/** The facts of an Instance the decision needs, read once per reconcile and updated as actions run. */
export interface InstanceFacts extends PolicyInput {
  uid: string;
  deleting: boolean;
  hasFinalizer: boolean;
  generation?: number;
  observedGeneration?: number;
  /** Failed spawns since the guest last started (status.spawnAttempts). */
  spawnAttempts?: number;
}

export function factsOf(inst: Instance): InstanceFacts {
  const status = inst.status ?? {};
  return {
    uid: inst.metadata.uid ?? '',
    deleting: !!inst.metadata.deletionTimestamp,
    hasFinalizer: (inst.metadata.finalizers ?? []).includes(INSTANCE_FINALIZER),
    generation: inst.metadata.generation,
    observedGeneration: status.observedGeneration,
    spawnAttempts: status.spawnAttempts,
    runStrategy: inst.spec?.runStrategy ?? 'Always',
    annotations: inst.metadata.annotations ?? {},
    startedAt: status.startedAt,
    observedRestartedAt: status.observedRestartedAt,
    readyReason: status.conditions?.find((c) => c.type === 'Ready')?.reason,
  };
}

/** The domain as the driver reports it (undefined: no domain of this name on the host). */
export interface ObservedDomain {
  state: PowerState;
  instanceUID?: string;
}

/** The work queue's back-off of the key (ReconcileContext). */
export interface Backoff {
  retryAt?: number;
  now: number;
}

export type Decision =
  /** Being deleted: destroy the domain, then drop the finalizer. */
  | { kind: 'finalize' }
  /** Binding adds the finalizer; without it a delete could complete before the domain is gone. */
  | { kind: 'addFinalizer' }
  /** The domain belongs to an earlier instance of the same name (a fenced host came back). */
  | { kind: 'destroyStale' }
  /** A spawn is wanted but the last one failed and its back-off has not ended: wait for it. */
  | { kind: 'backoff' }
  /** A spawn is wanted but the spec was found invalid for this generation: nothing to do until it changes. */
  | { kind: 'invalid' }
  | PowerAction;

/**
 * The next step for an instance bound to this host. `backoff` is only honoured for a spawn
 * of the spec that failed (a new generation is worth an immediate try).
 */
export function decide(f: InstanceFacts, dom: ObservedDomain | undefined, backoff?: Backoff): Decision {
  if (f.deleting) return { kind: 'finalize' };
  if (!f.hasFinalizer) return { kind: 'addFinalizer' };
  if (dom && dom.instanceUID !== f.uid) return { kind: 'destroyStale' };
  const action = nextAction(f, dom?.state);
  if (action.kind !== 'spawn') return action;
  const sameSpec = f.observedGeneration === f.generation;
  if (sameSpec && f.readyReason === REASON_INVALID_SPEC) return { kind: 'invalid' };
  if (sameSpec && f.spawnAttempts && backoff?.retryAt !== undefined && backoff.now < backoff.retryAt) return { kind: 'backoff' };
  return action;
}
