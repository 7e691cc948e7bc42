import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requestTarget } from './request.js';
import { ApiError } from './status.js';

/** What URL parsing makes of a target, the way the handler read it before the direct split. */
function viaUrl(t: string) {
  const u = t.startsWith('/') ? new URL(`http://kova${t}`) : new URL(t);
  return { pathname: u.pathname, query: [...u.searchParams] };
}

test('requestTarget splits plain targets exactly as URL parsing does', () => {
  const targets = [
    '/',
    '/apis/kova.dev/v1alpha1/namespaces/bench/instances',
    '/apis/kova.dev/v1alpha1/namespaces/bench/instances/',
    '/apis/kova.dev/v1alpha1/namespaces/bench/instances?watch=true&resourceVersion=12&allowWatchBookmarks=true',
    '/api/v1/namespaces?labelSelector=app%3Dweb%2Ctier+in+(a,b)&limit=500&continue=eyJ2IjoxfQ%3D%3D',
    '/api/v1/namespaces?fieldSelector=metadata.name%21%3Dx&a=%zz&b=%&c==&&d',
    '/api/v1/namespaces?q=Ã©&e=%C3%A9&plus=a+b',
    '//double//slashes/',
    '/a:b@c!$&\'()*+,;=~_-.x/y',
    '/apis?',
    '/apis?x=1?y=2',
  ];
  for (const t of targets) {
    const got = requestTarget(t);
    assert.deepEqual({ pathname: got.pathname, query: [...got.searchParams] }, viaUrl(t), t);
  }
});

test('requestTarget sends everything else through URL parsing, with the same answers', () => {
  for (const t of ['/a b?c', '/x%20y?q=1', '/x?a=\tb', '/x?a=b#frag', '/x\\y', '/é', 'http://host:1/apis?x=1', 'HTTPS://h/a']) {
    const got = requestTarget(t);
    assert.deepEqual({ pathname: got.pathname, query: [...got.searchParams] }, viaUrl(t), t);
  }
});

test('requestTarget refuses dot segments and targets that are not URLs, naming them', () => {
  for (const [t, seg] of [['/api/v1/namespaces/..', '..'], ['/api/v1/./namespaces', '.'], ['/api/v1/namespaces/%2e%2E?x=1', '%2e%2E'], ['/api/v1/namespaces/.?watch=1', '.']]) {
    assert.throws(() => requestTarget(t), (e: unknown) => e instanceof ApiError && e.code === 400 && e.message.includes(JSON.stringify(seg)), t);
  }
  for (const t of ['*', 'ftp://x/y', 'kova']) {
    assert.throws(() => requestTarget(t), (e: unknown) => e instanceof ApiError && e.code === 400 && e.message.startsWith('invalid request target'), t);
  }
  // Names that merely contain dots are names.
  assert.equal(requestTarget('/api/v1/namespaces/a.b/configmaps/..x').pathname, '/api/v1/namespaces/a.b/configmaps/..x');
});
