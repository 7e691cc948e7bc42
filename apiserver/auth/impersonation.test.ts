// Impersonation as kube-apiserver's filter does it: which checks are asked of the authorizer
// (verb impersonate, resource, group, name), the resulting user, and the 400/403 answers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { ApiError } from '../status.js';
import { impersonate } from './impersonation.js';
import type { Authorizer, RequestAttributes, UserInfo } from './types.js';

const ADMIN: UserInfo = { name: 'root', groups: ['system:masters', 'system:authenticated'] };

/** A request carrying these headers (pairs, so a header may repeat as on the wire). */
function req(headers: Array<[string, string]>): IncomingMessage {
  return { rawHeaders: headers.flat(), headers: Object.fromEntries(headers.map(([k, v]) => [k.toLowerCase(), v])) } as unknown as IncomingMessage;
}

/** An authorizer that records each check and denies those `deny` matches. */
function recorder(deny: (a: RequestAttributes) => boolean = () => false) {
  const asked: string[] = [];
  const authorizer: Authorizer = {
    authorize(a) {
      asked.push(`${a.user.name} ${a.verb} ${a.apiGroup}/${a.resource}${a.subresource ? '/' + a.subresource : ''} ${a.name}`);
      return deny(a) ? { allowed: false } : { allowed: true };
    },
  };
  return { asked, authorizer };
}

test('no Impersonate-* header: the authenticated user, and the authorizer is not asked', () => {
  const r = recorder();
  assert.equal(impersonate(req([['Authorization', 'Bearer x']]), ADMIN, r.authorizer), ADMIN);
  assert.deepEqual(r.asked, []);
});

test('each piece is one check, in kube order, and makes up the new user', () => {
  const r = recorder();
  const u = impersonate(req([
    ['Impersonate-User', 'alice'], ['Impersonate-Group', 'g1'], ['impersonate-group', 'g2'],
    ['Impersonate-Extra-Scopes', 'a'], ['Impersonate-Extra-Scopes', 'b'], ['Impersonate-Extra-Example.com%2Fteam', 'x'],
    ['Impersonate-Uid', '1234'],
  ]), ADMIN, r.authorizer);
  assert.deepEqual(r.asked, [
    'root impersonate /users alice',
    'root impersonate /groups g1',
    'root impersonate /groups g2',
    'root impersonate authentication.k8s.io/userextras/scopes a',
    'root impersonate authentication.k8s.io/userextras/scopes b',
    'root impersonate authentication.k8s.io/userextras/example.com/team x',
    'root impersonate authentication.k8s.io/uids 1234',
  ]);
  assert.deepEqual(u, { name: 'alice', uid: '1234', groups: ['g1', 'g2', 'system:authenticated'], extra: { scopes: ['a', 'b'], 'example.com/team': ['x'] } });
});

test('system:authenticated is added once, not when the groups say unauthenticated, nor for system:anonymous', () => {
  const { authorizer } = recorder();
  const groups = (h: Array<[string, string]>) => impersonate(req(h), ADMIN, authorizer).groups;
  assert.deepEqual(groups([['Impersonate-User', 'a']]), ['system:authenticated']);
  assert.deepEqual(groups([['Impersonate-User', 'a'], ['Impersonate-Group', 'system:authenticated']]), ['system:authenticated']);
  assert.deepEqual(groups([['Impersonate-User', 'a'], ['Impersonate-Group', 'system:unauthenticated']]), ['system:unauthenticated']);
  assert.deepEqual(groups([['Impersonate-User', 'system:anonymous']]), []);
});

test('groups, extras or uid without a user: 400 naming what was asked', () => {
  const { authorizer, asked } = recorder();
  for (const h of [[['Impersonate-Group', 'system:masters']], [['Impersonate-Uid', 'u']], [['Impersonate-Extra-K', 'v']]] as Array<Array<[string, string]>>) {
    assert.throws(() => impersonate(req(h), ADMIN, authorizer), (e: unknown) => {
      assert.ok(e instanceof ApiError);
      assert.equal(e.code, 400);
      assert.match(e.message, /^requested \[.+\] without impersonating a user$/);
      return true;
    });
  }
  assert.deepEqual(asked, []);
});

test('a denied piece is a 403 in Kubernetes words, naming the resource and the impersonated value', () => {
  const cases: Array<[Array<[string, string]>, (a: RequestAttributes) => boolean, string]> = [
    [[['Impersonate-User', 'root']], () => true,
      'users "root" is forbidden: User "bob" cannot impersonate resource "users" in API group "" at the cluster scope'],
    [[['Impersonate-User', 'alice'], ['Impersonate-Group', 'system:masters']], (a) => a.resource === 'groups',
      'groups "system:masters" is forbidden: User "bob" cannot impersonate resource "groups" in API group "" at the cluster scope'],
    [[['Impersonate-User', 'alice'], ['Impersonate-Uid', 'u1']], (a) => a.resource === 'uids',
      'uids.authentication.k8s.io "u1" is forbidden: User "bob" cannot impersonate resource "uids" in API group "authentication.k8s.io" at the cluster scope'],
    [[['Impersonate-User', 'alice'], ['Impersonate-Extra-Scopes', 's']], (a) => a.resource === 'userextras',
      'userextras.authentication.k8s.io "s" is forbidden: User "bob" cannot impersonate resource "userextras/scopes" in API group "authentication.k8s.io" at the cluster scope'],
  ];
  const bob: UserInfo = { name: 'bob', groups: ['system:authenticated'] };
  for (const [h, deny, message] of cases) {
    assert.throws(() => impersonate(req(h), bob, recorder(deny).authorizer), (e: unknown) => {
      assert.ok(e instanceof ApiError);
      assert.equal(e.code, 403);
      assert.equal(e.message, message);
      return true;
    });
  }
});

test('a malformed percent-encoded extra key is a 400, not an exception', () => {
  assert.throws(() => impersonate(req([['Impersonate-User', 'a'], ['Impersonate-Extra-%zz', 'v']]), ADMIN, recorder().authorizer), (e: unknown) => e instanceof ApiError && e.code === 400);
});
