// Router: source-NATs networks' outbound traffic onto an external network.
import type { KObject, ObjectMeta } from '../types.js';
import { resourceRef, type API_VERSION, type StatusBase } from './meta.js';

export const ROUTERS = resourceRef('Router', 'routers', true);

export type RouterPhase = 'Pending' | 'Ready' | 'Failed';

export interface RouterSpec {
  externalNetwork: string;
  networks?: string[];
}

export interface RouterStatus extends StatusBase {
  phase?: RouterPhase;
  /** The SNAT source address. */
  externalIP?: string;
}

export interface Router extends KObject {
  apiVersion: typeof API_VERSION;
  kind: 'Router';
  metadata: ObjectMeta;
  spec: RouterSpec;
  status?: RouterStatus;
}
