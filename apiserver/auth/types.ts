// Identity and authorization contracts of the API server, shaped like kube-apiserver's
// (k8s.io/apiserver/pkg/authentication/user.Info, authorizer.Attributes): authenticators turn a
// request into a user, authorizers decide on the request's attributes, admission sees the user.
import type { IncomingMessage } from 'node:http';
import type { PolicyRule } from '../../api/rbac-aggregation.js';

/** The authenticated user of one request. */
export interface UserInfo {
  name: string;
  uid?: string;
  /** Always includes `system:authenticated` once authenticated. */
  groups: string[];
  extra?: Record<string, string[]>;
}

export const SYSTEM_AUTHENTICATED = 'system:authenticated';
export const SYSTEM_MASTERS = 'system:masters';
/** The admin identity `kova up` hands out (its kubeconfig's token). */
export const ADMIN_USER: UserInfo = { name: 'kova-admin', groups: [SYSTEM_MASTERS, SYSTEM_AUTHENTICATED] };

/**
 * Turns a request's credentials into a user. `undefined` means "no credentials of mine here";
 * a throw (an ApiError 401) means credentials were given and are invalid.
 */
export interface Authenticator {
  authenticate(req: IncomingMessage): UserInfo | undefined | Promise<UserInfo | undefined>;
}

/** authorizer.Attributes: what a request does, in RBAC's terms. */
export interface RequestAttributes {
  user: UserInfo;
  /**
   * Resource requests: get, list, watch, create, update, patch, delete, deletecollection (or a
   * special verb checked by the server itself: impersonate, bind, escalate). Non-resource
   * requests: the lower-case HTTP method (get, post, put, ...).
   */
  verb: string;
  resourceRequest: boolean;
  /** The request path (non-resource requests are authorized on it). */
  path: string;
  apiGroup: string;
  apiVersion: string;
  resource: string;
  subresource: string;
  /** '' for cluster-scoped resources and cluster-wide lists and watches. */
  namespace: string;
  /** '' for collections. */
  name: string;
}

export interface Decision {
  allowed: boolean;
  /** Why (the binding that allowed it, or why not): goes into 403 messages and reviews. */
  reason?: string;
}

/** Decides on one request; synchronous on purpose, so every request pays a map lookup, not I/O. */
export interface Authorizer {
  authorize(a: RequestAttributes): Decision;
}

/** Lets everything through: a server without authorization configured (tests, `--insecure`). */
export const ALLOW_ALL: Authorizer = { authorize: () => ({ allowed: true, reason: 'authorization is off' }) };

export type { PolicyRule } from '../../api/rbac-aggregation.js';

/** The rules that apply to a user in a namespace ('' = cluster-wide only): SelfSubjectRulesReview and escalation checks. */
export interface RuleResolver {
  rulesFor(user: UserInfo, namespace: string): { rules: PolicyRule[]; incomplete: boolean; errors: string[] };
}

/**
 * The ClusterRoles `kova user create --project P --role R` binds, and `kova up` bootstraps: the
 * OpenStack roles expressed as RBAC. `cloud-admin` is bound cluster-wide, the others in a project.
 */
export const KOVA_ROLES = {
  'cloud-admin': 'kova:cloud-admin',
  manager: 'kova:project-manager',
  member: 'kova:member',
  reader: 'kova:reader',
} as const;
export type KovaRole = keyof typeof KOVA_ROLES;

/** Identities of kova's own components (client certificates from the kova CA). */
export const CONTROLLER_MANAGER_USER = 'system:kova:controller-manager';
export const NODES_GROUP = 'system:nodes';
/** An agent's user name: `system:node:<host>`, in group system:nodes (as kubelets). */
export const nodeUserName = (host: string) => `system:node:${host}`;
