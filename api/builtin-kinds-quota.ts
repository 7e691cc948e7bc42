// core/v1 ResourceQuota, with a schema following the upstream type.
import type { ResourceInfo } from './types.js';

export const QUOTA_KINDS: ResourceInfo[] = [];
