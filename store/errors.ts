// Store failures as a small closed set of codes the API server maps onto HTTP statuses.
import type { KObject } from '../api/types.js';
import { EtcdRpcError } from './etcd/rpc-error.js';

export type StoreErrorCode =
  | 'NotFound' // 404
  | 'AlreadyExists' // 409
  | 'Conflict' // 409: resourceVersion precondition failed
  | 'Expired' // 410: revision compacted (continue token, watch, exact read)
  | 'Invalid' // 400: malformed continue token or revision, or a revision in the future
  | 'Unavailable'; // 503: etcd unreachable

export class StoreError extends Error {
  override readonly name = 'StoreError';
  /** For 'Conflict': the object as it is now (read in the same round trip). */
  readonly current?: KObject;
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    options?: { cause?: unknown; current?: KObject },
  ) {
    super(message, options);
    if (options?.current) this.current = options.current;
  }
}

export function isCompacted(err: unknown): boolean {
  return err instanceof Error && err.message.includes('required revision has been compacted');
}

export function isFutureRevision(err: unknown): boolean {
  return err instanceof Error && err.message.includes('required revision is a future revision');
}

/** True for "could not talk to etcd" failures (as opposed to etcd refusing the request). */
export function isUnavailable(err: unknown): boolean {
  return err instanceof EtcdRpcError && err.unavailable;
}

/** Maps connection failures to StoreError('Unavailable'); anything else is returned unchanged. */
export function toStoreError(err: unknown): unknown {
  if (err instanceof StoreError) return err;
  if (isUnavailable(err)) return new StoreError('Unavailable', (err as Error).message, { cause: err });
  return err;
}
