// Image file sources belong to the cloud admin. spec.source.file makes the image controller copy a
// file of the control-plane host into the image store, so a project user free to name any path
// could import the cloud's own secrets (DATA_DIR/pki/ca.key, etcd's keys) into their project
// (Glance's CVE-2014-9493, closed there by refusing file locations from users). RBAC on `images`
// cannot see a field, so this admission asks for more: writing an Image whose spec.source.file is
// new or changed needs `create` on the virtual subresource images/filesource in its namespace.
// cluster-admin (kova:cloud-admin) holds it through '*'; the project roles do not, and an admin
// may grant it with a Role. Users import over spec.source.http. Keeping an admin's file source
// unchanged (a member relabelling a project image) needs nothing more.
import type { KObject } from '../../api/types.js';
import type { ResourceStore } from '../resource-store.js';
import { forbiddenError } from './forbidden.js';
import type { Admission } from './hooks.js';
import { storedObject } from './stored-object.js';
import type { Authorizer, RequestAttributes } from './types.js';

export const FILE_SOURCE_SUBRESOURCE = 'filesource';
const WHY = 'importing an image from a file on the control-plane host (spec.source.file) is for cloud admins; use spec.source.http';

const isImageWrite = (a: RequestAttributes) =>
  a.resourceRequest && a.apiGroup === 'kova.dev' && a.resource === 'images' && a.subresource === '' && (a.verb === 'create' || a.verb === 'update' || a.verb === 'patch');

/** spec.source.file.path (any value but undefined counts: validation judges its shape). */
function filePath(o: KObject | undefined): unknown {
  const file = (o as { spec?: { source?: { file?: { path?: unknown } } } } | undefined)?.spec?.source?.file;
  return file === undefined || file === null ? undefined : JSON.stringify(file);
}

export class ImageFileSourceAdmission implements Admission {
  constructor(private readonly authorizer: Authorizer, private readonly resources: ResourceStore) {}

  async admit(a: RequestAttributes, object: KObject | undefined): Promise<void> {
    // A patch has no body here: admitResult judges its result.
    if (!isImageWrite(a) || !object) return;
    const file = filePath(object);
    if (file === undefined) return;
    if (a.verb === 'update' && filePath(await storedObject(this.resources, a)) === file) return;
    this.check(a, object);
  }

  admitResult(a: RequestAttributes, object: KObject, old: KObject | undefined): void {
    if (!isImageWrite(a)) return;
    const file = filePath(object);
    if (file === undefined || (old && filePath(old) === file)) return;
    this.check(a, object);
  }

  private check(a: RequestAttributes, object: KObject): void {
    const at: RequestAttributes = { ...a, verb: 'create', subresource: FILE_SOURCE_SUBRESOURCE, name: a.name || object.metadata?.name || '' };
    if (!this.authorizer.authorize(at).allowed) throw forbiddenError(at, WHY);
  }
}
