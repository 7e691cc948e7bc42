// Which Image an instance of a project boots from when its spec names one: Glance's visibility
// rules, in one pure function that the instance controller (validation of unbound instances)
// and every node agent (before a spawn) share, so both always agree.
//
// - Private: usable only from its own project (namespace).
// - Public: usable from every project.
// - Shared: usable from its own project and from the projects listed in spec.members. Glance
//   also has members "accept" a shared image before it shows up for them; kova has no accept
//   step: the owner's member list is the grant.
//
// An Instance names its image by name only (Nova takes a UUID; the openstack CLI turns a name
// into one and refuses with "More than one Image exists" when several are visible). kova
// resolves a name by tiers, the first tier with a match decides:
//   1. the project's own Image of that name (so a project can always pin a name by owning it);
//   2. a Public Image of that name in another project;
//   3. an Image of that name in another project Shared with this one.
// Two matches in the deciding tier are refused as ambiguous (like the CLI), never picked at
// random or by name order. Public outranks Shared because publishing is an operator's act,
// while any project may list any other as a member: a sharer can neither take over nor break a
// name that resolves to a Public image elsewhere.
import type { Image } from './kinds/image.js';

/** What resolution reads of an Image (informer caches hold whole Images; tests pass less). */
export type ImageLike = Pick<Image, 'metadata'> & { spec?: Pick<Image['spec'], 'visibility' | 'members'> };

/** Images by namespace and name, and all of them (an informer's cache fits). */
export interface ImageCatalog<T extends ImageLike> {
  get(namespace: string, name: string): T | undefined;
  list(): Iterable<T>;
}

/** Why an image is usable from a project. */
export type ImageAccess = 'Own' | 'Public' | 'Shared';

export type ImageResolution<T extends ImageLike = ImageLike> =
  | { image: T; access: ImageAccess }
  | { reason: 'ImageNotFound' | 'ImageAmbiguous'; message: string };

/** How `namespace` may use `img` (undefined: not at all). Visibility defaults to Private. */
export function imageAccess(img: ImageLike, namespace: string): ImageAccess | undefined {
  if (img.metadata.namespace === namespace) return 'Own';
  const v = img.spec?.visibility ?? 'Private';
  if (v === 'Public') return 'Public';
  if (v === 'Shared' && img.spec?.members?.includes(namespace)) return 'Shared';
  return undefined;
}

/** The Image `name` as an instance in `namespace` resolves it, or why there is none. */
export function resolveImage<T extends ImageLike>(namespace: string, name: string, images: ImageCatalog<T>): ImageResolution<T> {
  const own = images.get(namespace, name);
  if (own) return { image: own, access: 'Own' };
  const pub: T[] = [];
  const shared: T[] = [];
  for (const img of images.list()) {
    if (img.metadata.name !== name || img.metadata.namespace === namespace) continue;
    const a = imageAccess(img, namespace);
    if (a === 'Public') pub.push(img);
    else if (a === 'Shared') shared.push(img);
  }
  for (const [tier, found] of [['Public', pub], ['Shared', shared]] as const) {
    if (found.length === 1) return { image: found[0]!, access: tier };
    if (found.length > 1) {
      const where = found.map((i) => i.metadata.namespace ?? '').sort().join(', ');
      const which = tier === 'Public' ? 'Public images' : `images Shared with ${namespace}`;
      return {
        reason: 'ImageAmbiguous',
        message: `image "${name}" is ambiguous: ${which} of that name exist in namespaces ${where}; create (or copy) the one to use as Image "${name}" in namespace ${namespace}`,
      };
    }
  }
  // Images this project may not use are not mentioned, as Glance answers 404 for them.
  return { reason: 'ImageNotFound', message: `image "${name}" not found in namespace ${namespace}, and no Public image or image Shared with ${namespace} has that name` };
}
