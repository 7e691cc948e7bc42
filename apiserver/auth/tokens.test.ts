// kova user tokens: the format and name rules, and the authenticator's watch-fed cache on a real
// etcd (a new token works at once, edits and deletions take effect through the watch).
import { startTestResourceStore } from '../../testing/resource-store.js';
import type { TestResourceStore } from '../../testing/resource-store.js';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { defaultCrdDir, Registry } from '../../api/registry.js';
import type { KObject, ResourceInfo } from '../../api/types.js';
import { Validator } from '../../api/validation.js';
import { Store } from '../../store/store.js';
import { waitFor } from '../../testing/etcd.js';
import type { TestEtcd } from '../../testing/etcd.js';
import { ResourceStore } from '../resource-store.js';
import {
  generateToken, groupNameError, hashSecret, parseToken, TokenAuthenticator, tokenSecret, tokenSecretName, userNameError, userSecret,
  userSecretName, USERS_NAMESPACE,
} from './tokens.js';

let env: TestResourceStore;
let store: Store;
let rs: ResourceStore;
let secrets: ResourceInfo;
let auth: TokenAuthenticator;

const bearer = (t: string) => ({ headers: { authorization: `Bearer ${t}` } }) as unknown as IncomingMessage;

before(async () => {
  env = await startTestResourceStore();
  store = env.store;
  const registry = env.registry;
  rs = env.resources;
  await rs.create(registry.lookup('', 'v1', 'namespaces')!, undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: USERS_NAMESPACE } });
  secrets = registry.lookup('', 'v1', 'secrets')!;
  auth = new TokenAuthenticator(store);
  await auth.start();
});

after(async () => {
  await auth?.stop();
  await env?.stop();
});

/** Creates user `name` (groups) and one token through the API's store; returns the token. */
async function makeUser(name: string, groups: string[]): Promise<{ token: string; id: string }> {
  let owner: KObject;
  try {
    owner = await rs.create(secrets, USERS_NAMESPACE, userSecret(name, groups));
  } catch {
    owner = await rs.get(secrets, USERS_NAMESPACE, userSecretName(name));
  }
  const t = generateToken();
  await rs.create(secrets, USERS_NAMESPACE, tokenSecret(name, owner.metadata.uid!, t.id, t.secret));
  return { token: t.token, id: t.id };
}

test('token format: kova-<id 6-16 [a-z0-9]>.<secret >= 32 url-safe chars>', () => {
  const ok = ['kova-abcdef.' + 'a'.repeat(32), 'kova-0123456789abcdef.' + 'A_-z'.repeat(20)];
  const bad = ['kova-abcde.' + 'a'.repeat(32), 'kova-ABCDEF.' + 'a'.repeat(32), 'kova-abcdef.' + 'a'.repeat(31), 'kova-abcdef' + 'a'.repeat(40),
    'kova-abcdefghijklmnopq.' + 'a'.repeat(32), 'kova-abcdef.' + 'a'.repeat(31) + '=', 'abcdef.' + 'a'.repeat(32), ''];
  for (const t of ok) assert.ok(parseToken(t), t);
  for (const t of bad) assert.equal(parseToken(t), undefined, t);
  const seen = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const g = generateToken();
    assert.deepEqual(parseToken(g.token), { id: g.id, secret: g.secret });
    assert.ok(!seen.has(g.id));
    seen.add(g.id);
  }
  assert.equal(hashSecret('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});

test('user and group names', () => {
  for (const n of ['alice', 'a', 'a.b-c', 'x'.repeat(63)]) assert.equal(userNameError(n), undefined, n);
  for (const n of ['system:alice', 'Alice', '-a', 'a_b', '', 'x'.repeat(64), 'a b', 'a:b']) assert.ok(userNameError(n), n);
  for (const g of ['devs', 'team:a', 'a@b.c', 'G_1']) assert.equal(groupNameError(g), undefined, g);
  for (const g of ['system:masters', 'a,b', 'a b', '', ':x', 'x'.repeat(129)]) assert.ok(groupNameError(g), g);
});

test('a token works at once, with the record groups and system:authenticated; a wrong secret does not', async () => {
  const { token, id } = await makeUser('alice', ['devs']);
  // Straight after the write, before the watch may have delivered it.
  const u = await auth.authenticate(bearer(token));
  assert.equal(u?.name, 'alice');
  assert.deepEqual(u?.groups, ['devs', 'system:authenticated']);
  assert.deepEqual(u?.extra, { 'authentication.kova.dev/token-id': [id] });
  const other = generateToken();
  assert.equal(await auth.authenticate(bearer(`kova-${id}.${other.secret}`)), undefined);
  assert.equal(await auth.authenticate(bearer(other.token)), undefined);
  assert.equal(await auth.authenticate(bearer('not-a-kova-token')), undefined);
  assert.equal(await auth.authenticate({ headers: {} } as IncomingMessage), undefined);
});

test('group edits reach the cache through the watch; groups that could never be given are dropped', async () => {
  const { token } = await makeUser('bob', ['a']);
  const rec = await rs.get(secrets, USERS_NAMESPACE, userSecretName('bob'));
  (rec as unknown as { data: Record<string, string> }).data.groups = Buffer.from('b,system:masters,c').toString('base64');
  await rs.update(secrets, USERS_NAMESPACE, userSecretName('bob'), rec);
  await waitFor(async () => (await auth.authenticate(bearer(token)))?.groups.join() === 'b,c,system:authenticated', 'groups updated', 5_000);
});

test('deleting the token Secret or the user record refuses the token within a second (the watch event)', async () => {
  const one = await makeUser('carol', []);
  const two = await makeUser('carol', []);
  assert.equal((await auth.authenticate(bearer(one.token)))?.name, 'carol');
  await rs.delete(secrets, USERS_NAMESPACE, tokenSecretName(one.id));
  await waitFor(async () => (await auth.authenticate(bearer(one.token))) === undefined, 'revoked token refused', 1_000);
  assert.equal((await auth.authenticate(bearer(two.token)))?.name, 'carol');
  await rs.delete(secrets, USERS_NAMESPACE, userSecretName('carol'));
  await waitFor(async () => (await auth.authenticate(bearer(two.token))) === undefined, 'token of a deleted user refused', 1_000);
});

test('a tampered token Secret (hash edited, or naming another user than its record) authenticates nobody', async () => {
  const { token, id } = await makeUser('dave', []);
  const s = await rs.get(secrets, USERS_NAMESPACE, tokenSecretName(id));
  (s as unknown as { data: Record<string, string> }).data['token-sha256'] = Buffer.from('zz').toString('base64');
  await rs.update(secrets, USERS_NAMESPACE, tokenSecretName(id), s);
  await waitFor(async () => (await auth.authenticate(bearer(token))) === undefined, 'edited hash refused', 5_000);
  // A token Secret claiming a user that has no record.
  const t = generateToken();
  await rs.create(secrets, USERS_NAMESPACE, tokenSecret('ghost', '00000000-0000-0000-0000-000000000000', t.id, t.secret));
  assert.equal(await auth.authenticate(bearer(t.token)), undefined);
});

test('a second authenticator started later lists what exists', async () => {
  const { token } = await makeUser('erin', ['x']);
  const late = new TokenAuthenticator(store);
  await late.start();
  try {
    assert.equal((await late.authenticate(bearer(token)))?.name, 'erin');
  } finally {
    await late.stop();
  }
});

test('made-up tokens cost a bounded number of etcd reads at once, and an etcd failure is a 401, not a 500', async () => {
  let inFlight = 0;
  let most = 0;
  let fail = false;
  // The store as the authenticator sees it, counting concurrent reads (and failing on demand).
  const counting = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop !== 'get') return Reflect.get(target, prop, receiver);
      return async (key: string) => {
        inFlight++;
        most = Math.max(most, inFlight);
        try {
          await new Promise((r) => setTimeout(r, 20));
          if (fail) throw new Error('etcd is down');
          return await target.get(key);
        } finally {
          inFlight--;
        }
      };
    },
  });
  const a = new TokenAuthenticator(counting);
  await a.start();
  try {
    const made = Array.from({ length: 100 }, () => generateToken().token);
    const got = await Promise.all(made.map((t) => a.authenticate(bearer(t))));
    assert.ok(got.every((u) => u === undefined));
    assert.ok(most > 1 && most <= 16, `at most 16 reads at once, saw ${most}`);
    fail = true;
    assert.equal(await a.authenticate(bearer(generateToken().token)), undefined);
  } finally {
    await a.stop();
  }
});
