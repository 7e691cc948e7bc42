// An informer cache frozen at what it was given: the stalest view an informer can have, for
// reconciler tests that decide what a stale cache makes them do.
interface Named {
  metadata: { namespace?: string; name?: string };
}

export function frozen<T extends Named>(items: T[]): { get(ns: string | undefined, name: string): T | undefined; list(ns?: string): T[] } {
  return {
    get: (ns, name) => items.find((o) => o.metadata.namespace === ns && o.metadata.name === name),
    list: (ns) => items.filter((o) => ns === undefined || o.metadata.namespace === ns),
  };
}
