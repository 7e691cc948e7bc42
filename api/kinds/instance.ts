// Instance: a virtual machine, scheduled to a Host and run there by the node agent.
import type { KObject, ObjectMeta } from '../types.js';
import type { FlavorSpec } from './flavor.js';
import { resourceRef, type API_VERSION, type StatusBase } from './meta.js';

export const INSTANCES = resourceRef('Instance', 'instances', true);

export type RunStrategy = 'Always' | 'Halted' | 'Manual' | 'RerunOnFailure';
export type InstancePhase = 'Pending' | 'Scheduling' | 'Provisioning' | 'Starting' | 'Running' | 'Stopping' | 'Stopped' | 'Failed' | 'Terminating';
/** The domain's state as the hypervisor reports it. */
export type InstancePowerState = 'Running' | 'Paused' | 'Shutdown' | 'Crashed' | 'NoState';

export interface InstanceNetwork {
  network: string;
  /** Static address; allocated when omitted. */
  ip?: string;
  /** A Port created beforehand, used instead of a new one. */
  port?: string;
  securityGroups?: string[];
}

export interface InstanceVolume {
  volume: string;
  /** 1: boot from this volume (required when spec.image is absent). */
  bootOrder?: number;
  readOnly?: boolean;
  /** Delete the Volume with the instance (kept by default). */
  deleteWithInstance?: boolean;
}

/** One volume of the domain as its host reports it (status.volumes). */
export interface InstanceVolumeStatus {
  volume: string;
  device?: string;
  serial?: string;
  state?: 'Attaching' | 'Attached' | 'Detaching';
  message?: string;
}

/** Exactly one of flavor and resources is set. */
export interface InstanceSpec {
  flavor?: string;
  resources?: FlavorSpec;
  /** Absent when the instance boots from a volume (spec.volumes[].bootOrder 1). */
  image?: string;
  /** Defaults to Always. */
  runStrategy?: RunStrategy;
  /** The first is the primary interface. */
  networks?: InstanceNetwork[];
  /** Attached after the root disk, in order. */
  volumes?: InstanceVolume[];
  keyPair?: string;
  userData?: string;
  /** Labels a Host must carry. */
  nodeSelector?: Record<string, string>;
  /** Pins the instance to this Host (it must still fit). */
  hostName?: string;
}

/** One interface's address, in the order of spec.networks. */
export interface InstanceAddress {
  network?: string;
  port?: string;
  ip?: string;
  mac?: string;
}

/** The Migration moving an instance (status.migration), while one is. */
export interface InstanceMigrationRef {
  name: string;
  uid?: string;
  sourceHost: string;
  targetHost: string;
  mode?: 'Live' | 'Cold';
}

/**
 * Network bytes of an instance since its creation (status.networkUsage), published by its host's
 * agent every networkUsageIntervalS: monotonic across restarts, migrations and agent restarts.
 */
export interface InstanceNetworkUsage {
  /** Bytes received by the guest, over all its interfaces. */
  receiveBytes: number;
  transmitBytes: number;
  /** When the agent read the counters (RFC 3339). */
  observedAt: string;
  /**
   * The running domain's own counters at observedAt (they restart with the emulator): what part
   * of the totals a restarted agent finds again in the counters of a domain still running.
   */
  domainReceiveBytes?: number;
  domainTransmitBytes?: number;
}

/** One run transition of an instance (status.powerHistory): it started running, or stopped running, at `time`. */
export interface InstancePowerTransition {
  running: boolean;
  /** RFC 3339, the same time as the Ready condition's lastTransitionTime or status.startedAt. */
  time: string;
}

export interface InstanceStatus extends StatusBase {
  phase?: InstancePhase;
  /** Written by the binding; moved by a Migration. */
  hostName?: string;
  domainUUID?: string;
  powerState?: InstancePowerState;
  /** Automatic restarts after a crash or shutdown. */
  restartCount?: number;
  /** Failed starts since the guest last started; absent once it starts. */
  spawnAttempts?: number;
  /** The last kova.dev/restartedAt annotation the agent acted on. */
  observedRestartedAt?: string;
  addresses?: InstanceAddress[];
  volumes?: InstanceVolumeStatus[];
  startedAt?: string;
  /**
   * The last run transitions, oldest first (at most MAX_POWER_HISTORY), appended by whoever
   * writes the transition in the same status write: the metering controller replays the ones it
   * missed while it was down.
   */
  powerHistory?: InstancePowerTransition[];
  /** Set while a Migration moves the instance. */
  migration?: InstanceMigrationRef;
  networkUsage?: InstanceNetworkUsage;
}

export interface Instance extends KObject {
  apiVersion: typeof API_VERSION;
  kind: 'Instance';
  metadata: ObjectMeta;
  spec: InstanceSpec;
  status?: InstanceStatus;
}
