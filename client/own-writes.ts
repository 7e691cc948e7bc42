// What a component's own writes returned, kept until its informer delivers something at least
// as new. The object a write returns is newer than the cache until the watch catches up, so a
// next write from it needs no read first, and its watch echo can be told apart (it wakes no
// new pass). kova's resourceVersions are etcd revisions, so they order numerically.
import type { KObject } from '../api/types.js';

const rv = (obj: KObject): number => Number(obj.metadata.resourceVersion ?? 0) || 0;
const keyOf = (obj: KObject): string => `${obj.metadata.namespace ?? ''}/${obj.metadata.name ?? ''}`;

export class OwnWrites<T extends KObject> {
  private readonly written = new Map<string, T>();

  /** Keeps what a write returned. */
  remember(obj: T): T {
    this.written.set(keyOf(obj), obj);
    return obj;
  }

  /** The newer of the informer's copy and our last write; nothing (and forgotten) when the informer has none. */
  newest(cached: T | undefined, namespace: string | undefined, name: string): T | undefined {
    const key = `${namespace ?? ''}/${name}`;
    if (!cached) {
      this.written.delete(key);
      return undefined;
    }
    const mine = this.written.get(key);
    return mine && rv(mine) > rv(cached) ? mine : cached;
  }

  /** The informer delivered `obj`: a write it is at least as new as is forgotten. */
  observed(obj: KObject, deleted = false): void {
    const key = keyOf(obj);
    const mine = this.written.get(key);
    if (mine && (deleted || rv(obj) >= rv(mine))) this.written.delete(key);
  }

  /** Whether `obj` is exactly what our last write returned (its watch echo). */
  isOwnWrite(obj: KObject): boolean {
    const mine = this.written.get(keyOf(obj));
    return mine !== undefined && mine.metadata.resourceVersion === obj.metadata.resourceVersion;
  }

  forget(namespace: string | undefined, name: string): void {
    this.written.delete(`${namespace ?? ''}/${name}`);
  }
}
