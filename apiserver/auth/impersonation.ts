// Impersonation (`kubectl --as alice --as-group g`), as kube-apiserver's WithImpersonation
// filter: every requested identity piece is a separate `impersonate` check with the authorizer
// (users and groups in API group "", uids and userextras/<key> in authentication.k8s.io, the
// impersonated value as the name); any denial is a 403 worded as Kubernetes words it.
import type { IncomingMessage } from 'node:http';
import { badRequest } from '../status.js';
import { forbiddenError } from './forbidden.js';
import { SYSTEM_AUTHENTICATED } from './types.js';
import type { Authorizer, RequestAttributes, UserInfo } from './types.js';

const USER_HEADER = 'impersonate-user';
const GROUP_HEADER = 'impersonate-group';
const UID_HEADER = 'impersonate-uid';
const EXTRA_PREFIX = 'impersonate-extra-';
const UNAUTHENTICATED = 'system:unauthenticated';
const ANONYMOUS = 'system:anonymous';

interface Piece {
  resource: 'users' | 'groups' | 'uids' | 'userextras';
  apiGroup: string;
  name: string;
  subresource?: string;
}

/** Every value of a header: node joins repeated ones with ', ' except for a few; rawHeaders keeps each. */
function headerValues(req: IncomingMessage, lower: string): string[] {
  const out: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === lower) out.push(raw[i + 1]!);
  return out;
}

/** The impersonation the request asks for, in kube's order: user, groups, extras, uid. */
function requested(req: IncomingMessage): { user?: string; pieces: Piece[]; extra: Record<string, string[]>; uid?: string; groups: string[] } {
  const pieces: Piece[] = [];
  const user = headerValues(req, USER_HEADER)[0] || undefined;
  if (user) pieces.push({ resource: 'users', apiGroup: '', name: user });
  const groups = headerValues(req, GROUP_HEADER);
  for (const g of groups) pieces.push({ resource: 'groups', apiGroup: '', name: g });
  const extra: Record<string, string[]> = {};
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const h = raw[i]!.toLowerCase();
    if (!h.startsWith(EXTRA_PREFIX)) continue;
    let key: string;
    try {
      // Keys are percent-encoded so they can hold characters a header name cannot (kube does the same).
      key = decodeURIComponent(h.slice(EXTRA_PREFIX.length)).toLowerCase();
    } catch {
      throw badRequest(`invalid impersonation extra key ${JSON.stringify(h.slice(EXTRA_PREFIX.length))}: bad percent-encoding`);
    }
    const value = raw[i + 1]!;
    (extra[key] ??= []).push(value);
    pieces.push({ resource: 'userextras', apiGroup: 'authentication.k8s.io', name: value, subresource: key });
  }
  const uid = headerValues(req, UID_HEADER)[0] || undefined;
  if (uid) pieces.push({ resource: 'uids', apiGroup: 'authentication.k8s.io', name: uid });
  return { user, pieces, extra, uid, groups };
}

/** kube's `requested [...] without impersonating a user` list, shortened to what each piece is. */
function describe(pieces: Piece[]): string {
  return `[${pieces.map((p) => `${p.resource === 'userextras' ? `userextras/${p.subresource}` : p.resource}=${p.name}`).join(' ')}]`;
}

/**
 * The user a request acts as: `user` itself without Impersonate-* headers, else the impersonated
 * identity once `authorizer` allowed each piece of it. For ApiServerOptions.impersonate.
 */
export function impersonate(req: IncomingMessage, user: UserInfo, authorizer: Authorizer): UserInfo {
  const r = requested(req);
  if (!r.pieces.length) return user;
  if (!r.user) throw badRequest(`requested ${describe(r.pieces)} without impersonating a user`);
  for (const p of r.pieces) {
    const a: RequestAttributes = {
      user, verb: 'impersonate', resourceRequest: true, path: '', apiGroup: p.apiGroup, apiVersion: '',
      resource: p.resource, subresource: p.subresource ?? '', namespace: '', name: p.name,
    };
    const d = authorizer.authorize(a);
    if (!d.allowed) throw forbiddenError(a, d.reason);
  }
  const groups = [...new Set(r.groups)];
  // Like kube: a non-anonymous impersonated user is authenticated unless the groups say otherwise.
  if (r.user !== ANONYMOUS && !groups.includes(SYSTEM_AUTHENTICATED) && !groups.includes(UNAUTHENTICATED)) groups.push(SYSTEM_AUTHENTICATED);
  const out: UserInfo = { name: r.user, groups };
  if (r.uid) out.uid = r.uid;
  if (Object.keys(r.extra).length) out.extra = r.extra;
  return out;
}
