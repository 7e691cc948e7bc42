// metav1.Status errors, shaped like apimachinery's pkg/api/errors so client-go and
// client-node print the same messages they print for kube-apiserver.
import type { FieldCause, ResourceInfo } from '../api/types.js';
import { qualifiedKind, qualifiedResource } from '../api/types.js';

export interface StatusBody {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, unknown>;
  status: 'Failure' | 'Success';
  message: string;
  reason: string;
  details?: {
    name?: string;
    group?: string;
    kind?: string;
    uid?: string;
    causes?: Array<{ reason: string; message: string; field?: string }>;
    retryAfterSeconds?: number;
  };
  code: number;
}

export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: StatusBody['details'],
  ) {
    super(message);
  }

  toStatus(): StatusBody {
    const s: StatusBody = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: this.message, reason: this.reason, code: this.code };
    if (this.details) s.details = this.details;
    return s;
  }
}

type Res = Pick<ResourceInfo, 'group' | 'plural' | 'kind'>;

export const notFound = (r: Res, name: string) =>
  new ApiError(404, 'NotFound', `${qualifiedResource(r)} "${name}" not found`, { name, group: r.group, kind: r.plural });

export const alreadyExists = (r: Res, name: string) =>
  new ApiError(409, 'AlreadyExists', `${qualifiedResource(r)} "${name}" already exists`, { name, group: r.group, kind: r.plural });

export const conflict = (r: Res, name: string, why = 'the object has been modified; please apply your changes to the latest version and try again') =>
  new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${qualifiedResource(r)} "${name}": ${why}`, { name, group: r.group, kind: r.plural });

/** 422 Invalid with one cause per field, message listing them like apimachinery's NewInvalid. */
export function invalid(r: Res, name: string, causes: FieldCause[]): ApiError {
  const parts = causes.map((c) => `${c.field}: ${c.message}`);
  const list = parts.length === 1 ? parts[0] : `[${parts.join(', ')}]`;
  return new ApiError(422, 'Invalid', `${qualifiedKind(r)} "${name}" is invalid: ${list}`, {
    name,
    group: r.group,
    kind: r.kind,
    causes: causes.map((c) => ({ reason: c.reason, message: c.message, field: c.field })),
  });
}

export const badRequest = (message: string) => new ApiError(400, 'BadRequest', message);
export const forbidden = (message: string) => new ApiError(403, 'Forbidden', message);
export const unauthorized = () => new ApiError(401, 'Unauthorized', 'Unauthorized');
export const methodNotAllowed = (method: string) =>
  new ApiError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource (${method})`);
export const notFoundPath = () => new ApiError(404, 'NotFound', 'the server could not find the requested resource');
export const gone = (message: string) => new ApiError(410, 'Expired', message);
/** 500: a server bug or an unexpected failure; `cause` keeps the original stack for the log. */
export function internal(message: string, cause?: unknown): ApiError {
  const e = new ApiError(500, 'InternalError', `Internal error occurred: ${message}`);
  if (cause !== undefined) e.cause = cause;
  return e;
}
export const unavailable = (message: string) => new ApiError(503, 'ServiceUnavailable', message);
export const unsupportedMediaType = (accepted: string[]) =>
  new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${accepted.join(', ')}`);
