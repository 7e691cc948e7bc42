// What the networking reconcilers share: read-only views of the informer caches they read, and
// status comparison that ignores condition timestamps.
import type { AddressClaim, FloatingIP, Instance, Network, Port, Router, SecurityGroup } from '../../api/kinds/index.js';

/** Read-only view of an informer cache. */
export interface Cache<T> {
  get(namespace: string | undefined, name: string): T | undefined;
  list(namespace?: string): readonly T[];
}

export interface NetworkCaches {
  networks: Cache<Network>;
  ports: Cache<Port>;
  claims: Cache<AddressClaim>;
  instances: Cache<Instance>;
  securityGroups: Cache<SecurityGroup>;
  floatingIPs: Cache<FloatingIP>;
  routers: Cache<Router>;
}

export type Log = (m: string) => void;

/** Equal statuses, whatever their conditions' lastTransitionTime. */
export const sameStatus = (a: unknown, b: unknown) => JSON.stringify(stripTimes(a)) === JSON.stringify(stripTimes(b));
function stripTimes(s: unknown): unknown {
  return JSON.parse(JSON.stringify(s ?? {}, (k, v) => (k === 'lastTransitionTime' ? undefined : v)));
}
