// UsageRecord (group metering.kova.dev): the metering ledger. Only the metering controller writes
// it; the usage API reads it. A ledger (spec.subject) follows one metered object, a period record
// (spec.period) sums one past UTC day of a project. See docs/metering.md.
import type { KObject, ObjectMeta } from '../types.js';

export const METERING_GROUP = 'metering.kova.dev';
export const METERING_VERSION = 'v1alpha1';
export const METERING_API_VERSION = 'metering.kova.dev/v1alpha1';

export const USAGE_RECORDS = Object.freeze({ group: METERING_GROUP, version: METERING_VERSION, plural: 'usagerecords', kind: 'UsageRecord' as const, namespaced: true });

/** On every metered object until its deletion is recorded (as kubernetes.io/pvc-protection). */
export const METERING_FINALIZER = 'kova.dev/metering';

export type MeteredKind = 'Instance' | 'Volume' | 'FloatingIP';

export interface UsageSubject {
  kind: MeteredKind;
  name: string;
  uid: string;
}

/** What a subject used during [start, end) (open while end is absent). */
export interface UsageSpan {
  start: string;
  end?: string;
  /** Seconds of use within [start, end) when not all of it (coalesced intervals, period rows). */
  seconds?: number;
  flavor?: string;
  vcpus?: number;
  memoryBytes?: number;
  diskBytes?: number;
  sizeBytes?: number;
}

/** An instance's network bytes since its creation as its agent published them at `time` (status.networkUsage). */
export interface NetworkCheckpoint {
  time: string;
  receiveBytes: number;
  transmitBytes: number;
}

/** One subject's closed usage in a period at one size. */
export interface UsageRow {
  kind: MeteredKind;
  name: string;
  uid: string;
  start: string;
  end: string;
  seconds: number;
  flavor?: string;
  vcpus?: number;
  memoryBytes?: number;
  diskBytes?: number;
  sizeBytes?: number;
  /** Instances: the network checkpoints around and at the ends of the day, so windows over it still compute. */
  network?: NetworkCheckpoint[];
}

export interface UsagePeriod {
  start: string;
  end: string;
}

export interface UsageRecordSpec {
  subject?: UsageSubject;
  intervals?: UsageSpan[];
  /** Instances: network checkpoints in time order, at most one per UTC hour plus the latest. */
  network?: NetworkCheckpoint[];
  compactedThrough?: string;
  deleted?: string;
  period?: UsagePeriod;
  rows?: UsageRow[];
}

export interface UsageRecord extends KObject {
  apiVersion: typeof METERING_API_VERSION;
  kind: 'UsageRecord';
  metadata: ObjectMeta;
  spec: UsageRecordSpec;
}
