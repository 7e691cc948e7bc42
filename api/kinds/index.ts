// The typed model of every kova kind: one module per CustomResourceDefinition in crds/, checked
// against it field by field by kinds.test.ts.
import type { KObject } from '../types.js';
import { ADDRESS_CLAIMS, type AddressClaim } from './addressclaim.js';
import { FLAVORS, type Flavor } from './flavor.js';
import { FLOATING_IPS, type FloatingIP } from './floatingip.js';
import { HOSTS, type Host } from './host.js';
import { IMAGES, type Image } from './image.js';
import { INSTANCES, type Instance } from './instance.js';
import { KEYPAIRS, type KeyPair } from './keypair.js';
import { MIGRATIONS, type Migration } from './migration.js';
import { API_VERSION } from './meta.js';
import { NETWORKS, type Network } from './network.js';
import { PORTS, type Port } from './port.js';
import { ROUTERS, type Router } from './router.js';
import { SECURITY_GROUPS, type SecurityGroup } from './securitygroup.js';
import { VOLUMES, type Volume } from './volume.js';
import { VOLUME_SNAPSHOTS, type VolumeSnapshot } from './volumesnapshot.js';
import { VOLUME_TYPES, type VolumeType } from './volumetype.js';
import { USAGE_RECORDS } from './usage.js';

export * from './addressclaim.js';
export * from './flavor.js';
export * from './floatingip.js';
export * from './host.js';
export * from './image.js';
export * from './instance.js';
export * from './keypair.js';
export * from './meta.js';
export * from './migration.js';
export * from './network.js';
export * from './port.js';
export * from './router.js';
export * from './securitygroup.js';
export * from './volume.js';
export * from './volumesnapshot.js';
export * from './volumetype.js';
export * from './usage.js';

export type KovaObject = AddressClaim | Flavor | FloatingIP | Host | Image | Instance | KeyPair | Migration | Network | Port | Router | SecurityGroup | Volume | VolumeSnapshot | VolumeType;
export type KovaKind = KovaObject['kind'];

/** Every kova resource, one per CRD. */
export const RESOURCES = Object.freeze([
  ADDRESS_CLAIMS, FLAVORS, FLOATING_IPS, HOSTS, IMAGES, INSTANCES, KEYPAIRS, MIGRATIONS, NETWORKS, PORTS, ROUTERS, SECURITY_GROUPS, VOLUMES, VOLUME_SNAPSHOTS, VOLUME_TYPES,
  USAGE_RECORDS, // metering.kova.dev
] as const);

/** Narrows an object read as a KObject (informer caches, list items) by apiVersion and kind. */
export function isKind<K extends KovaKind>(obj: KObject | undefined, kind: K): obj is Extract<KovaObject, { kind: K }> {
  return obj !== undefined && obj.apiVersion === API_VERSION && obj.kind === kind;
}
