// How an etcd call failed: a gRPC status code and message.

export const enum Code { Cancelled = 1, Unknown = 2, DeadlineExceeded = 4, ResourceExhausted = 8, Internal = 13, Unavailable = 14 }

/** A gRPC failure: `code` is the gRPC status (14 UNAVAILABLE, 4 DEADLINE_EXCEEDED, ...). */
export class EtcdRpcError extends Error {
  override readonly name = 'EtcdRpcError';
  constructor(readonly code: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
  /** Could not talk to etcd (as opposed to etcd refusing the request). */
  get unavailable(): boolean {
    return this.code === Code.Unavailable || this.code === Code.DeadlineExceeded || this.code === Code.Cancelled;
  }
}

/** grpc-message is percent-encoded (gRPC over HTTP/2 spec). */
export function percentDecode(s: string): string {
  if (!s.includes('%')) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
