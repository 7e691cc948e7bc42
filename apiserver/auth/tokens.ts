// kova users and their bearer tokens, kept as core/v1 Secrets in kova-system (as kube keeps
// bootstrap tokens in kube-system): no new kinds, so kubectl, RBAC and the garbage collector
// handle them like any Secret. A user record `user-<name>` (type kova.dev/user) holds the
// user's groups; each token `user-token-<id>` (type kova.dev/user-token) holds only the sha256
// of its secret part and is owned by the user record, so deleting the user collects its tokens.
// Every API server process keeps its own watch-fed cache of both.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { KObject } from '../../api/types.js';
import { isDNS1123SubdomainOK } from '../../api/name-validation.js';
import type { Store } from '../../store/store.js';
import type { WatchEvent } from '../../store/store.js';
import { storageKey, storagePrefix } from '../keys.js';
import { bearerToken } from './admin-token.js';
import { SYSTEM_AUTHENTICATED } from './types.js';
import type { Authenticator, UserInfo } from './types.js';

export const USERS_NAMESPACE = 'kova-system';
export const USER_SECRET_TYPE = 'kova.dev/user';
export const TOKEN_SECRET_TYPE = 'kova.dev/user-token';
/** Label on token Secrets naming their user (`kubectl get secrets -l kova.dev/user=alice`). */
export const USER_LABEL = 'kova.dev/user';

const SECRETS = { group: '', plural: 'secrets', namespaced: true };
const PREFIX = storagePrefix(SECRETS, USERS_NAMESPACE);

export const userSecretName = (user: string) => `user-${user}`;
export const tokenSecretName = (id: string) => `user-token-${id}`;

/** Why `name` cannot be a kova user (undefined: it can). Names also go into a label value and Secret names, hence ≤ 63. */
export function userNameError(name: string): string | undefined {
  if (name.startsWith('system:')) return `user name ${JSON.stringify(name)} may not start with "system:" (reserved for kova's own components)`;
  if (name.length > 63 || !isDNS1123SubdomainOK(name)) {
    return `user name ${JSON.stringify(name)} must be at most 63 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit`;
  }
  return undefined;
}

/** Why `group` cannot be given to a kova user (undefined: it can). */
export function groupNameError(group: string): string | undefined {
  if (group.startsWith('system:')) return `group ${JSON.stringify(group)} may not start with "system:" (reserved for kova's own components)`;
  // Stored as a comma-separated list: commas and blanks would change its meaning.
  if (!/^[A-Za-z0-9][A-Za-z0-9:._@-]{0,127}$/.test(group)) {
    return `group ${JSON.stringify(group)} must be 1-128 letters, digits, ':', '.', '_', '@' or '-', starting with a letter or digit`;
  }
  return undefined;
}

const TOKEN_RE = /^kova-([a-z0-9]{6,16})\.([A-Za-z0-9_-]{32,256})$/;

/** The id and secret of a kova token (`kova-<id>.<secret>`), or undefined when it is not one. */
export function parseToken(token: string): { id: string; secret: string } | undefined {
  const m = TOKEN_RE.exec(token);
  return m ? { id: m[1]!, secret: m[2]! } : undefined;
}

export const hashSecret = (secret: string): string => createHash('sha256').update(secret).digest('hex');

/** A fresh token: 10-character id (lowercase base32), 43-character secret (256 random bits). */
export function generateToken(): { id: string; secret: string; token: string } {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  const id = [...randomBytes(10)].map((b) => alphabet[b & 31]).join('');
  const secret = randomBytes(32).toString('base64url');
  return { id, secret, token: `kova-${id}.${secret}` };
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** The user record Secret. */
export function userSecret(name: string, groups: string[]): KObject {
  return {
    apiVersion: 'v1', kind: 'Secret',
    metadata: { name: userSecretName(name), namespace: USERS_NAMESPACE, labels: { [USER_LABEL]: name } },
    type: USER_SECRET_TYPE,
    data: { name: b64(name), groups: b64(groups.join(',')) },
  } as KObject;
}

/** The Secret of one token: only the hash of its secret, owned by the user record (uid `ownerUid`). */
export function tokenSecret(user: string, ownerUid: string, id: string, secret: string, created = new Date()): KObject {
  return {
    apiVersion: 'v1', kind: 'Secret',
    metadata: {
      name: tokenSecretName(id), namespace: USERS_NAMESPACE, labels: { [USER_LABEL]: user },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Secret', name: userSecretName(user), uid: ownerUid, blockOwnerDeletion: false }],
    },
    type: TOKEN_SECRET_TYPE,
    data: { user: b64(user), 'token-id': b64(id), 'token-sha256': b64(hashSecret(secret)), created: b64(created.toISOString()) },
  } as KObject;
}

interface CachedUser {
  name: string;
  uid?: string;
  groups: string[];
}

interface CachedToken {
  user: string;
  hash: Buffer;
}

function field(o: KObject, key: string): string | undefined {
  const v = (o as { data?: Record<string, string> }).data?.[key];
  return typeof v === 'string' ? Buffer.from(v, 'base64').toString('utf8') : undefined;
}

const typeOf = (o: KObject) => (o as { type?: string }).type;

function asUser(o: KObject): CachedUser | undefined {
  if (typeOf(o) !== USER_SECRET_TYPE) return undefined;
  const name = field(o, 'name');
  if (!name || userNameError(name) || o.metadata.name !== userSecretName(name) || o.metadata.deletionTimestamp) return undefined;
  // A group that could not have been given (edited into the Secret by hand) is dropped, not trusted.
  const groups = (field(o, 'groups') ?? '').split(',').filter((g) => g && !groupNameError(g));
  return { name, uid: o.metadata.uid, groups };
}

function asToken(o: KObject): [string, CachedToken] | undefined {
  if (typeOf(o) !== TOKEN_SECRET_TYPE) return undefined;
  const id = field(o, 'token-id');
  const user = field(o, 'user');
  const hex = field(o, 'token-sha256');
  if (!id || !user || !hex || o.metadata.name !== tokenSecretName(id) || !/^[0-9a-f]{64}$/.test(hex) || o.metadata.deletionTimestamp) return undefined;
  return [id, { user, hash: Buffer.from(hex, 'hex') }];
}

/** Reads of uncached tokens at once per API server process. */
const MAX_LIVE_READS = 16;

export interface TokenAuthenticatorOptions {
  /** First and largest pause before re-listing after the watch failed (compaction, ...). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  log?: (msg: string) => void;
}

/**
 * Authenticates `kova-<id>.<secret>` bearer tokens from a cache of the kova-system Secrets of
 * the two types above, kept by list + watch. Deleting a token Secret or its user record removes
 * it from the cache as soon as the watch delivers the event (milliseconds). While the cache is
 * not in sync (start, re-list after an error) and on a miss, the two Secrets are read from
 * etcd directly, so a token created a moment ago through another API server already works and
 * a revoked one never does.
 */
export class TokenAuthenticator implements Authenticator {
  private readonly users = new Map<string, CachedUser>();
  private readonly tokens = new Map<string, CachedToken>();
  /** Which cache entry each Secret made, so a DELETED event (or a type change) removes it. */
  private readonly bySecret = new Map<string, { user?: string; token?: string }>();
  private synced = false;
  private stopped = false;
  private watch?: { close(): Promise<void> };
  private retry?: NodeJS.Timeout;
  private backoffMs: number;
  /** etcd reads for tokens the cache does not hold, running now (at most MAX_LIVE_READS). */
  private liveReads = 0;

  constructor(private readonly store: Store, private readonly opts: TokenAuthenticatorOptions = {}) {
    this.backoffMs = opts.minBackoffMs ?? 200;
  }

  /** Lists and starts watching; resolves once the cache is in sync (or the first list failed: it keeps trying). */
  async start(): Promise<void> {
    await this.sync().catch((e: unknown) => this.failed(e));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    await this.watch?.close().catch(() => undefined);
  }

  private async sync(): Promise<void> {
    const { items, revision } = await this.store.list(PREFIX);
    if (this.stopped) return;
    this.users.clear();
    this.tokens.clear();
    this.bySecret.clear();
    for (const o of items) this.put(o);
    this.watch = await this.store.watch(PREFIX, revision, (e) => this.onEvent(e), (err) => this.failed(err));
    if (this.stopped) {
      await this.watch.close();
      return;
    }
    this.synced = true;
    this.backoffMs = this.opts.minBackoffMs ?? 200;
  }

  /** The watch died (compaction, etcd unreachable): fall back to live reads and re-list after a pause. */
  private failed(err: unknown): void {
    this.synced = false;
    const w = this.watch;
    this.watch = undefined;
    void w?.close().catch(() => undefined);
    if (this.stopped) return;
    this.opts.log?.(`token cache: ${(err as Error)?.message ?? err}; re-listing in ${this.backoffMs} ms`);
    const wait = this.backoffMs;
    this.backoffMs = Math.min(wait * 2, this.opts.maxBackoffMs ?? 10_000);
    clearTimeout(this.retry);
    this.retry = setTimeout(() => void this.sync().catch((e: unknown) => this.failed(e)), wait);
    this.retry.unref();
  }

  private onEvent(e: WatchEvent): void {
    const name = e.object.metadata.name!;
    this.drop(name);
    if (e.type !== 'DELETED') this.put(e.object);
  }

  private put(o: KObject): void {
    const user = asUser(o);
    const token = asToken(o);
    if (user) this.users.set(user.name, user);
    if (token) this.tokens.set(token[0], token[1]);
    if (user || token) this.bySecret.set(o.metadata.name!, { user: user?.name, token: token?.[0] });
  }

  private drop(secretName: string): void {
    const was = this.bySecret.get(secretName);
    if (!was) return;
    this.bySecret.delete(secretName);
    if (was.user) this.users.delete(was.user);
    if (was.token) this.tokens.delete(was.token);
  }

  async authenticate(req: Parameters<Authenticator['authenticate']>[0]): Promise<UserInfo | undefined> {
    const raw = bearerToken(req);
    const parsed = raw === undefined ? undefined : parseToken(raw);
    if (!parsed) return undefined;
    let token = this.synced ? this.tokens.get(parsed.id) : undefined;
    let user = token && this.users.get(token.user);
    if (!token || !user) {
      // Not (yet) in the cache: ask etcd, the source of truth. Made-up tokens cost a read each,
      // so only a few such reads run at once; beyond that, or when etcd fails, the token is
      // unknown (401) rather than a queue or a 500.
      if (this.liveReads >= MAX_LIVE_READS) return undefined;
      this.liveReads++;
      try {
        const t = await this.store.get(storageKey(SECRETS, USERS_NAMESPACE, tokenSecretName(parsed.id)));
        token = t && asToken(t)?.[1];
        const u = token && await this.store.get(storageKey(SECRETS, USERS_NAMESPACE, userSecretName(token.user)));
        user = u ? asUser(u) : undefined;
      } catch {
        return undefined;
      } finally {
        this.liveReads--;
      }
      if (!token || !user || user.name !== token.user) return undefined;
    }
    const got = createHash('sha256').update(parsed.secret).digest();
    if (got.length !== token.hash.length || !timingSafeEqual(got, token.hash)) return undefined;
    const groups = [...user.groups.filter((g) => g !== SYSTEM_AUTHENTICATED), SYSTEM_AUTHENTICATED];
    return { name: user.name, uid: user.uid, groups, extra: { 'authentication.kova.dev/token-id': [parsed.id] } };
  }
}
