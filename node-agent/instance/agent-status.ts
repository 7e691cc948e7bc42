// The Instance status the node agent writes, computed purely from the previous status and
// what the agent observed and did in one reconcile. Unchanged inputs give a deep-equal status,
// which is how the agent skips writes that would change nothing. A run transition (the guest
// starts or stops running) is also appended to status.powerHistory in the same write, for metering.
import { isDeepStrictEqual } from 'node:util';
import type { InstancePhase, InstanceStatus, InstanceVolumeStatus } from '../../api/kinds/index.js';
import type { Condition } from '../../api/types.js';
import { nowRFC3339 } from '../../api/types.js';
import { setCondition } from '../../api/conditions.js';
import { withPowerHistory } from '../../api/metering.js';
import { PowerState } from '../driver.js';
import { REASON_CRASHED, REASON_GUEST_SHUTDOWN, REASON_INVALID_SPEC, REASON_SPAWN_FAILED, REASON_STOPPED } from './decide.js';

export type { InstanceStatus };
export type CondSpec = Omit<Condition, 'lastTransitionTime'>;

export interface Observation {
  generation?: number;
  /** The domain after this reconcile's actions; undefined when there is none. */
  domain?: { uuid: string; state: PowerState };
  /** The agent booted the guest (spawn, power on, reboot) in this reconcile. */
  started?: boolean;
  /** It was an automatic restart after a crash or guest shutdown. */
  restarted?: boolean;
  /** The agent powered the guest off (or kept it from starting); `why` explains. */
  stoppedWhy?: string;
  observedRestartedAt?: string;
  /**
   * Spawn failed with this message. It must not change between identical attempts (no attempt
   * number in it): the attempts are counted in status.spawnAttempts.
   */
  failure?: string;
  /** The failure is terminal (the spec cannot work): Ready reason InvalidSpec, not retried. */
  terminal?: boolean;
  /** A phase for in-between writes (Starting before a spawn, Stopping during a slow shutdown, Terminating on delete). */
  phase?: 'Starting' | 'Stopping' | 'Terminating';
  /** The domain's volumes (syncVolumes), when the agent looked; `volumesPending` says why some are not done. */
  volumes?: InstanceVolumeStatus[];
  volumesPending?: string;
  now?: Date;
}

/** The status after `o`, starting from `prev` (fields the agent does not own are kept). */
export function nextStatus(prev: InstanceStatus | undefined, o: Observation): InstanceStatus {
  const now = o.now ?? new Date();
  const s: InstanceStatus = { ...(prev ?? {}) };
  const state = o.domain?.state;
  const prevReady = prev?.conditions?.find((c) => c.type === 'Ready');

  if (o.domain) s.domainUUID = o.domain.uuid;
  if (state) s.powerState = state;
  else delete s.powerState;
  if (o.started) {
    s.startedAt = nowRFC3339(now);
    delete s.spawnAttempts;
  }
  if (o.failure !== undefined) s.spawnAttempts = (prev?.spawnAttempts ?? 0) + 1;
  if (o.restarted) s.restartCount = (prev?.restartCount ?? 0) + 1;
  else if (s.restartCount === undefined) s.restartCount = 0;
  if (o.observedRestartedAt !== undefined) s.observedRestartedAt = o.observedRestartedAt;
  if (o.generation !== undefined) s.observedGeneration = o.generation;

  let phase: InstancePhase;
  let ready: CondSpec;
  if (o.phase === 'Terminating') {
    phase = 'Terminating';
    ready = { type: 'Ready', status: 'False', reason: 'Terminating', message: 'the instance is being deleted' };
  } else if (o.failure !== undefined) {
    phase = 'Failed';
    ready = { type: 'Ready', status: 'False', reason: o.terminal ? REASON_INVALID_SPEC : REASON_SPAWN_FAILED, message: o.failure };
  } else if (o.phase === 'Stopping') {
    phase = 'Stopping';
    ready = { type: 'Ready', status: 'False', reason: 'Stopping', message: 'the guest is being shut down' };
  } else if (o.phase === 'Starting' || state === PowerState.NoState) {
    phase = 'Starting';
    ready = { type: 'Ready', status: 'False', reason: 'Starting', message: 'the guest is being started' };
  } else if (state === PowerState.Running) {
    phase = 'Running';
    ready = { type: 'Ready', status: 'True', reason: 'Running', message: '' };
  } else if (state === PowerState.Paused) {
    phase = 'Running';
    ready = { type: 'Ready', status: 'False', reason: 'Paused', message: 'the guest is paused (kova.dev/paused)' };
  } else {
    phase = 'Stopped';
    ready = offCondition(state, o.stoppedWhy, prevReady);
  }
  s.phase = phase;
  let conds = setCond(prev?.conditions, { ...ready, observedGeneration: o.generation }, now);
  const paused = state === PowerState.Paused;
  if (paused || conds.some((c) => c.type === 'Paused')) {
    const spec: CondSpec = paused
      ? { type: 'Paused', status: 'True', reason: 'PausedByUser', message: 'paused through the kova.dev/paused annotation', observedGeneration: o.generation }
      : { type: 'Paused', status: 'False', reason: 'NotPaused', message: '', observedGeneration: o.generation };
    conds = setCond(conds, spec, now);
  }
  if (o.volumes !== undefined) {
    if (o.volumes.length) s.volumes = o.volumes;
    else delete s.volumes;
    const pending = o.volumesPending;
    if (o.volumes.length || conds.some((c) => c.type === 'VolumesReady')) {
      conds = setCond(conds, pending
        ? { type: 'VolumesReady', status: 'False', reason: 'VolumeNotReady', message: pending, observedGeneration: o.generation }
        : { type: 'VolumesReady', status: 'True', reason: 'Ready', message: `${o.volumes.length} volume(s) attached`, observedGeneration: o.generation }, now);
    }
  }
  s.conditions = conds;
  return withPowerHistory(prev, stripUndefined(s));
}

/**
 * The status of an instance that cannot be spawned yet (image, key pair or network not ready):
 * phase Provisioning, Ready=False with the first waiting condition's reason, and `conds`.
 */
export function waitingStatus(prev: InstanceStatus | undefined, conds: readonly CondSpec[], why: string, generation: number | undefined): InstanceStatus {
  const s: InstanceStatus = { ...(prev ?? {}) };
  s.phase = 'Provisioning';
  if (generation !== undefined) s.observedGeneration = generation;
  delete s.powerState;
  const reason = conds.find((c) => c.status === 'False')?.reason ?? 'Waiting';
  let list = setCondition(prev?.conditions, { type: 'Ready', status: 'False', reason, message: why, observedGeneration: generation });
  for (const c of conds) list = setCondition(list, c);
  s.conditions = list;
  return withPowerHistory(prev, s);
}

/** True when every condition in `conds` is already in `list` as given (same status, reason, message). */
export function hasConditions(list: readonly Condition[] | undefined, conds: readonly CondSpec[]): boolean {
  return conds.every((c) => list?.some((b) => b.type === c.type && b.status === c.status && b.reason === c.reason && (b.message ?? '') === (c.message ?? '')));
}

function offCondition(state: PowerState | undefined, stoppedWhy: string | undefined, prevReady: Condition | undefined): CondSpec {
  if (stoppedWhy !== undefined) return { type: 'Ready', status: 'False', reason: REASON_STOPPED, message: `stopped by kova: ${stoppedWhy}` };
  if (state === PowerState.Crashed) return { type: 'Ready', status: 'False', reason: REASON_CRASHED, message: 'the guest crashed' };
  // The agent's own earlier stop stays attributed to it.
  if (prevReady?.reason === REASON_STOPPED) return { type: 'Ready', status: 'False', reason: REASON_STOPPED, message: prevReady.message ?? '' };
  if (state === PowerState.Shutdown) return { type: 'Ready', status: 'False', reason: REASON_GUEST_SHUTDOWN, message: 'the guest shut itself down' };
  return { type: 'Ready', status: 'False', reason: REASON_STOPPED, message: 'the guest is not running' };
}

/** setCondition without undefined fields, so equal conditions compare deep-equal. */
function setCond(list: readonly Condition[] | undefined, next: CondSpec, now: Date): Condition[] {
  return setCondition(list, stripUndefined({ ...next }), now);
}

function stripUndefined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

/** True when writing `next` over `prev` would change nothing. */
export function sameStatus(prev: InstanceStatus | undefined, next: InstanceStatus): boolean {
  return isDeepStrictEqual(normalize(prev ?? {}), normalize(next));
}

// Empty messages are dropped by some writers; compare them as absent.
function normalize(s: InstanceStatus): unknown {
  return { ...s, conditions: s.conditions?.map((c) => stripUndefined({ ...c, message: c.message || undefined })) };
}
