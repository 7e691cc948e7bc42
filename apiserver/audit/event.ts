// One answered request as an audit.k8s.io/v1 Event at level Metadata, the shape kube-apiserver
// writes to its log backend, so tools that read Kubernetes audit logs read kova's.
import { randomUUID } from 'node:crypto';
import type { AuditEntry } from '../auth/hooks.js';
import type { UserInfo } from '../auth/types.js';

export interface AuditUser {
  username: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

export interface AuditObjectRef {
  resource?: string;
  namespace?: string;
  name?: string;
  apiGroup?: string;
  apiVersion?: string;
  subresource?: string;
}

export interface AuditEvent {
  kind: 'Event';
  apiVersion: 'audit.k8s.io/v1';
  level: 'Metadata';
  auditID: string;
  stage: 'ResponseComplete';
  requestURI: string;
  verb: string;
  /** Who authenticated (the impersonator when impersonating, as in Kubernetes). */
  user: AuditUser;
  /** Whom the request acted as, when impersonating. */
  impersonatedUser?: AuditUser;
  sourceIPs?: string[];
  userAgent?: string;
  objectRef?: AuditObjectRef;
  responseStatus: { metadata: Record<string, never>; code: number };
  requestReceivedTimestamp: string;
  stageTimestamp: string;
}

/** metav1.MicroTime: RFC 3339 with microseconds (JS clocks give milliseconds). */
export function microTime(d: Date): string {
  const ms = d.getTime();
  const second = Math.floor(ms / 1000);
  // Formatting a date is the dear part; within one second only the fraction changes.
  if (second !== lastSecond.at || !(ms >= -62167219200000 && ms < 253402300800000)) {
    const iso = d.toISOString();
    if (iso.length !== 24) return iso.replace(/\.(\d{3})Z$/, '.$1000Z'); // a year outside 0000-9999
    lastSecond.at = second;
    lastSecond.prefix = iso.slice(0, 20);
  }
  return `${lastSecond.prefix}${String(ms - second * 1000).padStart(3, '0')}000Z`;
}
const lastSecond = { at: NaN, prefix: '' };

function auditUser(u: UserInfo): AuditUser {
  const out: AuditUser = { username: u.name };
  if (u.uid) out.uid = u.uid;
  if (u.groups.length) out.groups = [...u.groups];
  if (u.extra && Object.keys(u.extra).length) out.extra = u.extra;
  return out;
}

/** What an unauthenticated request is in Kubernetes (only a denied one reaches the log). */
const ANONYMOUS: UserInfo = { name: 'system:anonymous', groups: ['system:unauthenticated'] };

/**
 * `createdName`: the name in a create's body, which the request's attributes lack (kube-apiserver
 * completes objectRef from the request object the same way).
 */
export function auditEvent(e: AuditEntry, auditID: string = randomUUID(), createdName?: string): AuditEvent {
  const effective = e.user;
  const authenticated = e.authenticatedUser ?? effective ?? ANONYMOUS;
  const a = e.attributes;
  // Built in kube's field order (the log is read by people too); the rest is appended below.
  const ev = {
    kind: 'Event',
    apiVersion: 'audit.k8s.io/v1',
    level: 'Metadata',
    auditID,
    stage: 'ResponseComplete',
    requestURI: e.requestURI,
    // Resource requests carry the RBAC verb; anything else the method, as the authorizer saw it.
    verb: a?.verb ?? e.method.toLowerCase(),
    user: auditUser(authenticated),
  } as AuditEvent;
  if (e.authenticatedUser && effective && effective !== e.authenticatedUser) ev.impersonatedUser = auditUser(effective);
  if (e.sourceIPs.length) ev.sourceIPs = e.sourceIPs;
  if (e.userAgent) ev.userAgent = e.userAgent;
  if (a?.resourceRequest) {
    const ref: AuditObjectRef = { resource: a.resource };
    if (a.namespace) ref.namespace = a.namespace;
    if (a.name || createdName) ref.name = a.name || createdName;
    if (a.apiGroup) ref.apiGroup = a.apiGroup;
    if (a.apiVersion) ref.apiVersion = a.apiVersion;
    if (a.subresource) ref.subresource = a.subresource;
    ev.objectRef = ref;
  }
  ev.responseStatus = { metadata: {}, code: e.code };
  ev.requestReceivedTimestamp = microTime(e.received);
  ev.stageTimestamp = microTime(e.completed);
  return ev;
}
