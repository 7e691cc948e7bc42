/**
 * Why a patch could not be applied.
 * - `Malformed`: the patch document itself is wrong (not a list, unknown op, missing member,
 *   bad pointer syntax) → HTTP 400 BadRequest.
 * - `Unprocessable`: a well-formed patch does not fit the object (path missing, failed `test`)
 *   → HTTP 422, as kube-apiserver answers for JSON patch apply errors.
 * - `TooLarge`: more operations than the server accepts → HTTP 413.
 */
export type PatchErrorKind = 'Malformed' | 'Unprocessable' | 'TooLarge';

export class PatchError extends Error {
  override readonly name = 'PatchError';
  constructor(
    readonly kind: PatchErrorKind,
    message: string,
  ) {
    super(message);
  }

  /** The HTTP status code the API server should answer with. */
  get code(): 400 | 413 | 422 {
    return this.kind === 'Malformed' ? 400 : this.kind === 'TooLarge' ? 413 : 422;
  }
}
