// KeyPair: an SSH public key cloud-init installs in instances that name it.
import type { KObject, ObjectMeta } from '../types.js';
import { resourceRef, type API_VERSION, type StatusBase } from './meta.js';

export const KEYPAIRS = resourceRef('KeyPair', 'keypairs', true);

export interface KeyPairSpec {
  /** One authorized_keys line. */
  publicKey: string;
}

export interface KeyPairStatus extends StatusBase {
  /** As `ssh-keygen -l` prints it: "SHA256:...". */
  fingerprint?: string;
}

export interface KeyPair extends KObject {
  apiVersion: typeof API_VERSION;
  kind: 'KeyPair';
  metadata: ObjectMeta;
  spec: KeyPairSpec;
  status?: KeyPairStatus;
}
