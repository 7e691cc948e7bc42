// One Informer per kind (and namespace and selectors) for all controllers of a process, like
// client-go's SharedInformerFactory: the scheduler, host, instance and network controllers all
// follow Instances, and each change should cross the wire and be parsed once, not four times.
import type { KObject } from '../api/types.js';
import { collectionPath } from './client.js';
import type { ApiClient, Kind } from './client.js';
import { Informer } from './informer.js';
import type { InformerOptions } from './informer.js';

export type SharedInformerOptions = Pick<InformerOptions, 'namespace' | 'labelSelector' | 'fieldSelector'>;

export class SharedInformers {
  private readonly informers = new Map<string, Informer<KObject>>();

  constructor(
    readonly client: ApiClient,
    private readonly log?: (msg: string) => void,
  ) {}

  /** The keys of the informers made so far (collection path, label and field selectors). */
  keys(): string[] {
    return [...this.informers.keys()];
  }

  /**
   * The informer for `kind` with these options, created on first use. Users start and stop
   * it as if it were theirs: it runs while any of them has it started.
   */
  for<T extends KObject = KObject>(kind: Kind, opts: SharedInformerOptions = {}): Informer<T> {
    const key = [collectionPath(kind, opts.namespace), opts.labelSelector ?? '', opts.fieldSelector ?? ''].join('\0');
    let inf = this.informers.get(key);
    if (!inf) {
      inf = new Informer<KObject>(this.client, kind, { ...opts, log: this.log });
      this.informers.set(key, inf);
    }
    return inf as unknown as Informer<T>;
  }
}
