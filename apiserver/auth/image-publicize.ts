// Making an Image Public is a cloud admin's act, as Glance's default policy `publicize_image`
// (role:admin) has it: a Public image is offered to every project, and its name then resolves
// for all of them (api/image-visibility.ts), so a project member must not be able to publish
// into everyone's namespace of names. Expressed the Kubernetes way, as a special verb like
// `escalate` and `bind`: writing an Image whose visibility becomes Public needs `publicize` on
// `images` in API group kova.dev (cluster-admin's `*` has it; a Role can grant it to a project).
// Sharing with named projects (visibility Shared) needs nothing more than the write itself.
import type { KObject } from '../../api/types.js';
import { storageKey } from '../keys.js';
import type { ResourceStore } from '../resource-store.js';
import { forbiddenError } from './forbidden.js';
import type { Admission } from './hooks.js';
import type { Authorizer, RequestAttributes } from './types.js';

const GROUP = 'kova.dev';
const IMAGES = { group: GROUP, plural: 'images', namespaced: true };

const isPublic = (o: KObject | undefined) => (o?.spec as { visibility?: unknown } | undefined)?.visibility === 'Public';

export class ImagePublicizeAdmission implements Admission {
  constructor(
    private readonly authz: Authorizer,
    private readonly resources: ResourceStore,
  ) {}

  async admit(a: RequestAttributes, object: KObject | undefined): Promise<void> {
    if (!isImageWrite(a) || a.verb === 'patch' || !object || !isPublic(object)) return;
    const old = a.verb === 'update' && a.name ? await this.resources.store.get(storageKey(IMAGES, a.namespace, a.name)) : undefined;
    this.check(a, object, old);
  }

  /** A patch or server-side apply: judged by its result against the object it was applied to. */
  admitResult(a: RequestAttributes, object: KObject, old: KObject | undefined): void {
    if (isImageWrite(a)) this.check(a, object, old);
  }

  /** Only a write that makes the image Public needs the verb; edits of an image already Public do not. */
  private check(a: RequestAttributes, object: KObject, old: KObject | undefined): void {
    if (!isPublic(object) || isPublic(old)) return;
    const name = object.metadata?.name || a.name;
    const attrs: RequestAttributes = { ...a, verb: 'publicize', subresource: '', name };
    if (this.authz.authorize(attrs).allowed) return;
    throw forbiddenError(attrs, 'making an image Public offers it to every project, which is for cloud admins (as Glance\'s publicize_image); share it with named projects instead (visibility Shared, spec.members)');
  }
}

function isImageWrite(a: RequestAttributes): boolean {
  return a.resourceRequest && a.apiGroup === GROUP && a.resource === 'images' && !a.subresource && (a.verb === 'create' || a.verb === 'update' || a.verb === 'patch');
}
