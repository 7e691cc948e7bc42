// RFC 7386 JSON merge patch (`application/merge-patch+json`): objects merge recursively,
// `null` deletes a member, everything else (arrays included) replaces the target value.
import { cloneJson, deepEqual, isPlainObject, setMember } from './json-util.js';
import type { JsonObject } from './json-util.js';

/** Applies `patch` to `target` and returns the result; neither argument is modified. */
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return cloneJson(patch);
  const out: JsonObject = isPlainObject(target) ? cloneJson(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) continue;
    if (v === null) delete out[k];
    else setMember(out, k, applyMergePatch(Object.prototype.hasOwnProperty.call(out, k) ? out[k] : undefined, v));
  }
  return out;
}

/**
 * The merge patch that turns `original` into `modified` (`applyMergePatch(original, p)` deep-equals
 * `modified`). Identical objects give `{}`. Null members of `modified` cannot be expressed in a merge
 * patch (null means delete) and come out as deletions.
 */
export function createMergePatch(original: unknown, modified: unknown): unknown {
  if (!isPlainObject(original) || !isPlainObject(modified)) return cloneJson(modified);
  const patch: JsonObject = {};
  for (const [k, ov] of Object.entries(original)) {
    if (ov === undefined) continue;
    if (!(k in modified) || modified[k] === undefined || modified[k] === null) {
      if (ov !== null || !(k in modified)) setMember(patch, k, null);
    }
  }
  for (const [k, mv] of Object.entries(modified)) {
    if (mv === undefined || mv === null) continue;
    const ov = original[k];
    if (ov === undefined) {
      setMember(patch, k, cloneJson(mv));
    } else if (isPlainObject(ov) && isPlainObject(mv)) {
      const sub = createMergePatch(ov, mv) as JsonObject;
      if (Object.keys(sub).length) setMember(patch, k, sub);
    } else if (!deepEqual(ov, mv)) {
      setMember(patch, k, cloneJson(mv));
    }
  }
  return patch;
}
