// Request attributes from a routed request, as kube-apiserver's RequestInfoFactory derives them:
// the HTTP method and the shape of the path become an RBAC verb, resource and scope.
import type { ResourceRoute } from '../request.js';
import type { RequestAttributes, UserInfo } from './types.js';

/** The RBAC verb of a resource request (watch is a GET with ?watch, deletecollection a DELETE without a name). */
export function resourceVerb(method: string, named: boolean, watch: boolean): string {
  switch (method) {
    case 'GET':
    case 'HEAD':
      return watch ? 'watch' : named ? 'get' : 'list';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return named ? 'delete' : 'deletecollection';
    default:
      return method.toLowerCase();
  }
}

export function resourceAttributes(user: UserInfo, method: string, path: string, route: ResourceRoute, watch: boolean): RequestAttributes {
  const { info, namespace, name, subresource } = route;
  return {
    user,
    verb: resourceVerb(method, !!name, watch),
    resourceRequest: true,
    path,
    apiGroup: info.group,
    apiVersion: info.version,
    resource: info.plural,
    subresource: subresource ?? '',
    // A namespace's own URL is authorized in its namespace, as kube-apiserver does.
    namespace: namespace ?? (info.group === '' && info.plural === 'namespaces' && name ? name : ''),
    name: name ?? '',
  };
}

export function nonResourceAttributes(user: UserInfo, method: string, path: string): RequestAttributes {
  return {
    user, verb: method.toLowerCase(), resourceRequest: false, path,
    apiGroup: '', apiVersion: '', resource: '', subresource: '', namespace: '', name: '',
  };
}
