// What the agent should do next to an instance's domain: a pure function of the Instance's
// runStrategy, its power annotations, what status says happened before, and the domain's
// current state. The agent applies one action, re-reads the domain and asks again, so every
// decision is level-triggered and survives agent restarts.
import { PowerState } from './driver.js';

export const ANNOTATION_RESTARTED_AT = 'kova.dev/restartedAt';
export const ANNOTATION_PAUSED = 'kova.dev/paused';
export const ANNOTATION_POWER = 'kova.dev/power';

/** Ready=False reason the agent writes when it (not the guest) powered the domain off. */
export const REASON_STOPPED = 'Stopped';
export const REASON_GUEST_SHUTDOWN = 'GuestShutdown';
export const REASON_CRASHED = 'Crashed';

export type RunStrategy = 'Always' | 'Halted' | 'Manual' | 'RerunOnFailure';

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
