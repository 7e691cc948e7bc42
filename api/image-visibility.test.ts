import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { imageAccess, resolveImage } from './image-visibility.js';
import type { ImageCatalog, ImageLike } from './image-visibility.js';

type Vis = 'Private' | 'Public' | 'Shared' | undefined;

function img(ns: string, name: string, visibility?: Vis, members?: string[]): ImageLike {
  const spec: ImageLike['spec'] = {};
  if (visibility) spec.visibility = visibility;
  if (members) spec.members = members;
  return { metadata: { namespace: ns, name }, spec };
}

function catalog(...images: ImageLike[]): ImageCatalog<ImageLike> {
  return {
    get: (ns, name) => images.find((i) => i.metadata.namespace === ns && i.metadata.name === name),
    list: () => images,
  };
}

/** "ns/name (access)" or "reason: message", for compact tables. */
function show(r: ReturnType<typeof resolveImage>): string {
  return 'image' in r ? `${r.image.metadata.namespace}/${r.image.metadata.name} (${r.access})` : `${r.reason}: ${r.message}`;
}

describe('imageAccess', () => {
  // [image, namespace asking, expected access]
  const table: Array<[ImageLike, string, string | undefined]> = [
    [img('a', 'x'), 'a', 'Own'],
    [img('a', 'x'), 'b', undefined], // visibility defaults to Private
    [img('a', 'x', 'Private'), 'b', undefined],
    [img('a', 'x', 'Private', ['b']), 'b', undefined], // members mean nothing unless Shared
    [img('a', 'x', 'Public'), 'b', 'Public'],
    [img('a', 'x', 'Public'), 'a', 'Own'],
    [img('a', 'x', 'Shared', ['b', 'c']), 'b', 'Shared'],
    [img('a', 'x', 'Shared', ['b', 'c']), 'c', 'Shared'],
    [img('a', 'x', 'Shared', ['b', 'c']), 'd', undefined],
    [img('a', 'x', 'Shared', ['b']), 'bb', undefined], // exact names, not prefixes
    [img('a', 'x', 'Shared'), 'b', undefined],
    [img('a', 'x', 'Shared', []), 'a', 'Own'],
    [{ metadata: { namespace: 'a', name: 'x' } }, 'b', undefined], // no spec at all
  ];
  for (const [i, ns, want] of table) {
    it(`${i.metadata.namespace}/${i.metadata.name} ${i.spec?.visibility ?? '(default)'} ${JSON.stringify(i.spec?.members ?? null)} from ${ns} → ${want ?? 'none'}`, () => {
      assert.equal(imageAccess(i, ns), want);
    });
  }
});

describe('resolveImage', () => {
  it('prefers the own project, then Public, then Shared', () => {
    const pub = img('kova-system', 'tiny', 'Public');
    const shared = img('a', 'tiny', 'Shared', ['b']);
    assert.equal(show(resolveImage('b', 'tiny', catalog(shared, pub, img('b', 'tiny')))), 'b/tiny (Own)');
    assert.equal(show(resolveImage('b', 'tiny', catalog(shared, pub))), 'kova-system/tiny (Public)');
    assert.equal(show(resolveImage('b', 'tiny', catalog(shared))), 'a/tiny (Shared)');
    // The owner's own Private image of a name wins over a Public one elsewhere.
    assert.equal(show(resolveImage('a', 'tiny', catalog(pub, img('a', 'tiny', 'Private')))), 'a/tiny (Own)');
  });

  it('never resolves another project\'s Private image, nor a Shared one not listing the project', () => {
    const c = catalog(img('a', 'secret'), img('a', 'priv', 'Private', ['b']), img('a', 'sh', 'Shared', ['c']));
    for (const name of ['secret', 'priv', 'sh']) {
      assert.equal(show(resolveImage('b', name, c)), `ImageNotFound: image "${name}" not found in namespace b, and no Public image or image Shared with b has that name`);
    }
    assert.equal(show(resolveImage('c', 'sh', c)), 'a/sh (Shared)');
    assert.equal(show(resolveImage('a', 'secret', c)), 'a/secret (Own)');
  });

  it('refuses two candidates of the deciding tier as ambiguous, naming them in order', () => {
    const c = catalog(img('zeta', 'deb', 'Public'), img('alpha', 'deb', 'Public'), img('s', 'deb', 'Shared', ['b']));
    assert.equal(show(resolveImage('b', 'deb', c)),
      'ImageAmbiguous: image "deb" is ambiguous: Public images of that name exist in namespaces alpha, zeta; create (or copy) the one to use as Image "deb" in namespace b');
    // The same answer whatever the catalog's order.
    const r = catalog(img('s', 'deb', 'Shared', ['b']), img('alpha', 'deb', 'Public'), img('zeta', 'deb', 'Public'));
    assert.equal(show(resolveImage('b', 'deb', r)), show(resolveImage('b', 'deb', c)));
    // Shared ambiguity only matters when no Public image decides.
    const s = catalog(img('y', 'u', 'Shared', ['b']), img('x', 'u', 'Shared', ['b', 'c']));
    assert.equal(show(resolveImage('b', 'u', s)),
      'ImageAmbiguous: image "u" is ambiguous: images Shared with b of that name exist in namespaces x, y; create (or copy) the one to use as Image "u" in namespace b');
    assert.equal(show(resolveImage('c', 'u', s)), 'x/u (Shared)');
    assert.equal(show(resolveImage('b', 'u', catalog(...s.list(), img('p', 'u', 'Public')))), 'p/u (Public)');
    // Owning the name settles any ambiguity.
    assert.equal(show(resolveImage('b', 'deb', catalog(...c.list(), img('b', 'deb')))), 'b/deb (Own)');
  });

  it('a sharer cannot take over a name that resolves to a Public image', () => {
    const c = catalog(img('kova-system', 'tiny', 'Public'), img('mallory', 'tiny', 'Shared', ['b', 'c']));
    assert.equal(show(resolveImage('b', 'tiny', c)), 'kova-system/tiny (Public)');
  });

  it('follows changes of the member list (a removed member no longer resolves it)', () => {
    const shared = img('a', 'x', 'Shared', ['b', 'c']);
    const c = catalog(shared);
    assert.equal(show(resolveImage('b', 'x', c)), 'a/x (Shared)');
    shared.spec!.members = ['c'];
    assert.match(show(resolveImage('b', 'x', c)), /^ImageNotFound: /);
    assert.equal(show(resolveImage('c', 'x', c)), 'a/x (Shared)');
  });

  it('matches names exactly', () => {
    assert.match(show(resolveImage('b', 'tin', catalog(img('p', 'tiny', 'Public')))), /^ImageNotFound/);
  });
});
