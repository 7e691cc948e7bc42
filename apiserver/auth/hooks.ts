// The API server's extension points around a request: admission before a write is stored, the
// audit sink after an answer, and the review endpoints (SelfSubjectAccessReview and friends).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { KObject } from '../../api/types.js';
import type { Authorizer, RequestAttributes, UserInfo } from './types.js';

/**
 * A validating admission check, run after authorization and before the write. `object` is the
 * parsed body of a create or update (a patch or delete passes undefined). Throws an ApiError to refuse.
 */
export interface Admission {
  admit(a: RequestAttributes, object: KObject | undefined): void | Promise<void>;
  /**
   * The check on what an update, patch or server-side apply produces, `old` being the stored
   * object it replaces (undefined when apply creates), run just before the result is stored:
   * the request body alone does not say what a patch makes, and `old` is read anyway, so a
   * check against the stored object needs no read of its own.
   */
  admitResult?(a: RequestAttributes, object: KObject, old: KObject | undefined): void | Promise<void>;
}

/** One answered request, as the audit sink receives it (it renders audit.k8s.io/v1 Events). */
export interface AuditEntry {
  requestURI: string;
  method: string;
  /** The user after impersonation; undefined when authentication failed. */
  user?: UserInfo;
  /**
   * Who authenticated, when the request impersonated someone (the audit Event's `user`, with
   * `user` above as its impersonatedUser); also set when impersonation itself was refused.
   */
  authenticatedUser?: UserInfo;
  /** undefined when the request failed before it was routed. */
  attributes?: RequestAttributes;
  code: number;
  sourceIPs: string[];
  userAgent?: string;
  received: Date;
  completed: Date;
}

export interface AuditSink {
  /** Must not throw or block: the request is already answered. */
  record(entry: AuditEntry): void;
}

/** Serves POSTs to the review resources of authorization.k8s.io and authentication.k8s.io. */
export interface ReviewHandler {
  handles(path: string): boolean;
  serve(req: IncomingMessage, res: ServerResponse, path: string, user: UserInfo, authorizer: Authorizer): Promise<void>;
}
