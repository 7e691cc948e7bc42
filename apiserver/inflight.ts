// Max requests in flight, as kube-apiserver's WithMaxInFlightLimit: two counters per server
// process (read-only: GET/HEAD, i.e. get and list; mutating: every other verb), long-running
// requests (watches) not counted. A request over its class's limit is answered at once with
// 429 and `Retry-After: 1`, before anything of it is read or done, so any verb may be retried.
import type { IncomingMessage, ServerResponse } from 'node:http';

/** kube-apiserver's default for --max-requests-inflight. */
export const DEFAULT_MAX_REQUESTS_INFLIGHT = 400;
/**
 * Above kube-apiserver's 200: kova's own components pool their connections (the controllers
 * 128, a hundred sim agents 200, a client 128: about 460 to one API process), where kube's
 * throttle each client to a few requests at a time with QPS. With 200, bench:scale's own
 * components drew 5,600-10,500 429s and create→Running p99 went from 2-5 s to 6-8 s.
 */
export const DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT = 600;
/** Seconds a refused client should wait (kube-apiserver's constant). */
export const RETRY_AFTER_SECONDS = 1;

export interface InflightLimits {
  /** Read-only requests in flight at once; 0 means no limit (default 400). */
  maxRequestsInflight?: number;
  /** Mutating requests in flight at once; 0 means no limit (default 200). */
  maxMutatingRequestsInflight?: number;
}

/** The Status of a refused request, as apimachinery's NewTooManyRequests builds it. */
const TOO_MANY_BODY = Buffer.from(JSON.stringify({
  kind: 'Status',
  apiVersion: 'v1',
  metadata: {},
  status: 'Failure',
  message: 'Too many requests, please try again later.',
  reason: 'TooManyRequests',
  details: { retryAfterSeconds: RETRY_AFTER_SECONDS },
  code: 429,
}));
const TOO_MANY_HEADERS = {
  'Content-Type': 'application/json',
  'Content-Length': String(TOO_MANY_BODY.length),
  'Retry-After': String(RETRY_AFTER_SECONDS),
};

/** A limit as given: a non-negative integer (0: none); anything else is a mistake of the caller. */
function checkLimit(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${name} must be a non-negative integer (0: no limit), got ${v}`);
  return v;
}

export class InflightLimiter {
  readonly maxReadOnly: number;
  readonly maxMutating: number;
  /** Requests holding a slot now. */
  readOnly = 0;
  mutating = 0;
  /** Requests refused with 429, by class. */
  readonly rejected = { readOnly: 0, mutating: 0 };
  // One release function per class, made once: admitting a request allocates nothing but the
  // listener entry. ServerResponse emits 'close' exactly once, after the response finished or
  // when the connection closed first (a client that gave up), so no slot outlives its request.
  private readonly releaseReadOnly = () => void this.readOnly--;
  private readonly releaseMutating = () => void this.mutating--;

  constructor(limits: InflightLimits = {}) {
    this.maxReadOnly = checkLimit('maxRequestsInflight', limits.maxRequestsInflight, DEFAULT_MAX_REQUESTS_INFLIGHT);
    this.maxMutating = checkLimit('maxMutatingRequestsInflight', limits.maxMutatingRequestsInflight, DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT);
  }

  /**
   * Takes a slot for a request that is not long-running, released when its response closes.
   * False (after answering 429) when its class is full; the caller must then do nothing more.
   */
  admit(req: IncomingMessage, res: ServerResponse): boolean {
    const m = req.method;
    if (m === 'GET' || m === 'HEAD') {
      if (this.maxReadOnly === 0) return true;
      if (this.readOnly >= this.maxReadOnly) return this.refuse(res, false);
      this.readOnly++;
      res.on('close', this.releaseReadOnly);
    } else {
      if (this.maxMutating === 0) return true;
      if (this.mutating >= this.maxMutating) return this.refuse(res, true);
      this.mutating++;
      res.on('close', this.releaseMutating);
    }
    return true;
  }

  private refuse(res: ServerResponse, mutating: boolean): false {
    if (mutating) this.rejected.mutating++;
    else this.rejected.readOnly++;
    // The unread body of a refused request is drained by node, so the connection stays usable.
    res.writeHead(429, TOO_MANY_HEADERS);
    res.end(TOO_MANY_BODY);
    return false;
  }
}
