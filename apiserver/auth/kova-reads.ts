// What the admission plugins that read other kova objects share: looking a kind up in the
// registry, reading one object (undefined for a 404), and reading fields of a request body that
// has not been validated yet (admission of a create runs before validation).
import type { KObject, ResourceInfo } from '../../api/types.js';
import { isDNS1123Label } from '../../api/name-validation.js';
import type { ResourceStore } from '../resource-store.js';
import { ApiError } from '../status.js';

export const KOVA_GROUP = 'kova.dev';
const VERSION = 'v1alpha1';

export type Rec = Record<string, unknown>;
export const isObj = (v: unknown): v is Rec => typeof v === 'object' && v !== null && !Array.isArray(v);
export const specOf = (o: KObject | undefined): Rec => (o && isObj(o.spec) ? o.spec : {});
export const statusOf = (o: KObject | undefined): Rec => (o && isObj(o.status) ? o.status : {});
/** A name an admission may look up: anything else is left to validation, and nothing is read for it. */
export const objectName = (v: unknown): string | undefined => (typeof v === 'string' && isDNS1123Label(v).length === 0 ? v : undefined);

/** Reads kova objects for an admission plugin, straight from the store. */
export class KovaReads {
  constructor(readonly resources: ResourceStore) {}

  info(resource: string): ResourceInfo {
    const info = this.resources.registry.lookup(KOVA_GROUP, VERSION, resource);
    if (!info) throw new Error(`${resource}.${KOVA_GROUP} is not registered`);
    return info;
  }

  /** The stored object, or undefined when there is none. */
  async read(resource: string, ns: string | undefined, name: string): Promise<KObject | undefined> {
    try {
      return await this.resources.get(this.info(resource), ns, name);
    } catch (e) {
      if (e instanceof ApiError && e.code === 404) return undefined;
      throw e;
    }
  }

  async list(resource: string, ns: string | undefined): Promise<KObject[]> {
    return (await this.resources.list(this.info(resource), ns)).items;
  }
}
