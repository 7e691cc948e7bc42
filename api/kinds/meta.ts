// What every kova kind shares: its group-version, int-or-string quantities, the common status
// fields and the reference an API client addresses a resource by.
import type { Condition } from '../types.js';

export const GROUP = 'kova.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = 'kova.dev/v1alpha1';

/** A Kubernetes quantity (x-kubernetes-int-or-string): a number of units or a string like "512Mi". */
export type Quantity = number | string;

/** The status fields every kova kind has. */
export interface StatusBase {
  /** The metadata.generation this status was computed from. */
  observedGeneration?: number;
  conditions?: Condition[];
}

/** How an API client addresses a kind's resource; structurally the controllers' `Kind`. */
export interface ResourceRef<K extends string = string> {
  group: typeof GROUP;
  version: typeof VERSION;
  plural: string;
  kind: K;
  namespaced: boolean;
}

export function resourceRef<K extends string>(kind: K, plural: string, namespaced: boolean): Readonly<ResourceRef<K>> {
  return Object.freeze({ group: GROUP, version: VERSION, plural, kind, namespaced });
}
