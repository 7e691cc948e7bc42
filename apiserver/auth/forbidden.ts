// The 403 a denied request gets, worded as kube-apiserver words it
// (k8s.io/apiserver/pkg/endpoints/handlers/responsewriters forbiddenMessage), so users and
// scripts that read Kubernetes' messages read kova's.
import { ApiError } from '../status.js';
import type { RequestAttributes } from './types.js';

/** `User "alice" cannot list resource "instances" in API group "kova.dev" in the namespace "demo"`. */
export function forbiddenMessage(a: RequestAttributes): string {
  const user = a.user.name;
  if (!a.resourceRequest) return `User ${JSON.stringify(user)} cannot ${a.verb} path ${JSON.stringify(a.path)}`;
  const resource = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const scope = a.namespace ? `in the namespace ${JSON.stringify(a.namespace)}` : 'at the cluster scope';
  return `User ${JSON.stringify(user)} cannot ${a.verb} resource ${JSON.stringify(resource)} in API group ${JSON.stringify(a.apiGroup)} ${scope}`;
}

/** apierrors.NewForbidden(groupResource, name, forbiddenMessage + reason). */
export function forbiddenError(a: RequestAttributes, reason?: string): ApiError {
  const msg = forbiddenMessage(a) + (reason ? `: ${reason}` : '');
  if (!a.resourceRequest) return new ApiError(403, 'Forbidden', `forbidden: ${msg}`, {});
  const gr = a.apiGroup ? `${a.resource}.${a.apiGroup}` : a.resource;
  const what = a.name ? `${gr} ${JSON.stringify(a.name)}` : gr;
  return new ApiError(403, 'Forbidden', `${what} is forbidden: ${msg}`, { name: a.name || undefined, group: a.apiGroup, kind: a.resource });
}
