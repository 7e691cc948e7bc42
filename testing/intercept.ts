// A test's view of a client (or any object) with one method replaced, to count, record or slow
// down its calls; every other member is the object's own, its methods bound to it.

/** `target` with method `name` replaced by `wrap(original)`, `original` bound to `target`. */
export function intercept<T extends object, K extends keyof T>(target: T, name: K, wrap: (original: T[K]) => T[K]): T {
  const original = (target[name] as (...a: unknown[]) => unknown).bind(target) as T[K];
  const replaced = wrap(original);
  return new Proxy(target, {
    get(t, prop) {
      if (prop === name) return replaced;
      const v = Reflect.get(t, prop, t);
      return typeof v === 'function' ? v.bind(t) : v;
    },
  });
}
