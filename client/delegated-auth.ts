// Delegated authentication and authorization, as kube-controller-manager's secure port does it
// (k8s.io/apiserver's DelegatingAuthenticationOptions and DelegatingAuthorizationOptions): a
// process that serves its own /metrics holds no users or roles; it asks the API server, with its
// own identity, who a bearer token is (TokenReview) and whether that user may do this
// (SubjectAccessReview), and caches both answers for a few seconds (kube's defaults: 10 s for an
// authenticated token, 10 s for an allowed and 10 s for a denied decision), so a scrape every
// few seconds costs the API server at most two small requests per cache period. Client
// certificates from a configured CA are checked locally, as kube's --client-ca-file.
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';

/** What the reviews need of a KovaClient: one JSON request (KovaClient.request). */
export interface ReviewClient {
  request<T = unknown>(init: { method: string; path: string; body?: unknown; signal?: AbortSignal }): Promise<T>;
}

/** A user as TokenReview answers it (authentication.k8s.io/v1 UserInfo). */
export interface DelegatedUser {
  username: string;
  uid?: string;
  groups: string[];
  extra?: Record<string, string[]>;
}

/** The decision on one request: 200 (go on), 401, 403, or 503 when the API server gave no answer. */
export type AuthResult =
  | { code: 200; user: DelegatedUser }
  | { code: 401 | 403 | 503; message: string; user?: DelegatedUser };

export interface DelegatedAuthOptions {
  /** How long an authenticated (or unauthenticated) token answer is kept: kube's delegated default 10 s. */
  authenticatedTtlMs?: number;
  /** How long an allowed decision is kept: kube's --authorization-webhook-cache-authorized-ttl for delegation, 10 s. */
  allowedTtlMs?: number;
  /** How long a denied decision is kept: kube's delegated default 10 s. */
  deniedTtlMs?: number;
  /** Entries each cache holds at most, least recently used dropped first (default 1024). */
  cacheSize?: number;
  /** How long one review may take before the request is answered 503 (default 10 s, kube's webhook timeout). */
  timeoutMs?: number;
  /**
   * PEM of the CA whose client certificates are identities here (CN the user, each O a group),
   * as kube's --client-ca-file; kova's components pass the kova CA. Without it only tokens count.
   */
  clientCA?: string;
  /** Time source of the caches (tests). */
  now?: () => number;
}

export const DEFAULT_DELEGATED_TTL_MS = 10_000;
export const DEFAULT_DELEGATED_CACHE_SIZE = 1024;
const DEFAULT_REVIEW_TIMEOUT_MS = 10_000;
const SYSTEM_AUTHENTICATED = 'system:authenticated';

/** The API server gave no answer (unreachable, timed out, refused the review): not a decision. */
export class ReviewUnavailable extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ReviewUnavailable';
  }
}

/** A bounded map whose entries expire; reading an entry makes it the most recently used. */
class LruTtlCache<V> {
  private readonly entries = new Map<string, { value: V; expires: number }>();
  constructor(private readonly max: number, private readonly now: () => number) {}

  get(key: string): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    this.entries.delete(key);
    if (e.expires <= this.now()) return undefined;
    this.entries.set(key, e);
    return e.value;
  }

  set(key: string, value: V, ttlMs: number): void {
    if (ttlMs <= 0) return;
    this.entries.delete(key);
    this.entries.set(key, { value, expires: this.now() + ttlMs });
    while (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value!);
  }

  get size(): number {
    return this.entries.size;
  }
}

type Rec = Record<string, unknown>;
const isObj = (v: unknown): v is Rec => typeof v === 'object' && v !== null && !Array.isArray(v);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

/** The bearer token of a request, or undefined when it carries none. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  return m ? m[1] : undefined;
}

export class DelegatedAuth {
  private readonly tokens: LruTtlCache<DelegatedUser | null>;
  private readonly decisions: LruTtlCache<{ allowed: boolean; reason: string }>;
  /** Reviews in flight by cache key: identical questions asked at once share one request. */
  private readonly inflight = new Map<string, Promise<unknown>>();
  private readonly authenticatedTtlMs: number;
  private readonly allowedTtlMs: number;
  private readonly deniedTtlMs: number;
  private readonly timeoutMs: number;
  /** Reviews sent to the API server (cache misses), and answers served from the caches. */
  readonly stats = { tokenReviews: 0, subjectAccessReviews: 0, tokenCacheHits: 0, decisionCacheHits: 0 };

  constructor(private readonly client: ReviewClient, private readonly opts: DelegatedAuthOptions = {}) {
    const now = opts.now ?? Date.now;
    const size = Math.max(1, opts.cacheSize ?? DEFAULT_DELEGATED_CACHE_SIZE);
    this.tokens = new LruTtlCache(size, now);
    this.decisions = new LruTtlCache(size, now);
    this.authenticatedTtlMs = opts.authenticatedTtlMs ?? DEFAULT_DELEGATED_TTL_MS;
    this.allowedTtlMs = opts.allowedTtlMs ?? DEFAULT_DELEGATED_TTL_MS;
    this.deniedTtlMs = opts.deniedTtlMs ?? DEFAULT_DELEGATED_TTL_MS;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_REVIEW_TIMEOUT_MS;
  }

  /** The CA of client certificates accepted as identities (the TLS server asks for, and verifies, them). */
  get clientCA(): string | undefined {
    return this.opts.clientCA;
  }

  /** Entries in the token and decision caches (bounded by cacheSize each). */
  get cached(): { tokens: number; decisions: number } {
    return { tokens: this.tokens.size, decisions: this.decisions.size };
  }

  /**
   * Authenticates the request (a verified client certificate, else its bearer token) and
   * authorizes `verb` on the non-resource `path` for that user.
   */
  async check(req: IncomingMessage, verb: string, path: string): Promise<AuthResult> {
    try {
      const user = this.certificateUser(req) ?? await this.tokenUser(req);
      if (!user) return { code: 401, message: 'Unauthorized' };
      const d = await this.authorize(user, verb, path);
      if (!d.allowed) {
        return { code: 403, user, message: `forbidden: User ${JSON.stringify(user.username)} cannot ${verb} path ${JSON.stringify(path)}${d.reason ? `: ${d.reason}` : ''}` };
      }
      return { code: 200, user };
    } catch (e) {
      if (e instanceof ReviewUnavailable) return { code: 503, message: e.message };
      throw e;
    }
  }

  /** Who the token is (undefined: nobody), from the cache or a TokenReview. */
  authenticate(token: string): Promise<DelegatedUser | undefined> {
    // Keyed by a hash: the cache keeps no bearer token in memory.
    const key = createHash('sha256').update(token).digest('base64');
    const cached = this.tokens.get(key);
    if (cached !== undefined) {
      this.stats.tokenCacheHits++;
      return Promise.resolve(cached ?? undefined);
    }
    return this.shared(`t:${key}`, async () => {
      this.stats.tokenReviews++;
      const review = await this.review<Rec>('/apis/authentication.k8s.io/v1/tokenreviews', {
        apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token },
      }, 'TokenReview');
      const status = isObj(review?.status) ? review.status : {};
      // An authenticator that failed is no answer either way (kube caches no errors).
      if (typeof status.error === 'string' && status.error && status.authenticated !== true) {
        throw new ReviewUnavailable(`TokenReview failed: ${status.error}`);
      }
      const user = status.authenticated === true ? userOf(status.user) : undefined;
      this.tokens.set(key, user ?? null, this.authenticatedTtlMs);
      return user;
    });
  }

  /** Whether `user` may `verb` the non-resource `path`, from the cache or a SubjectAccessReview. */
  authorize(user: DelegatedUser, verb: string, path: string): Promise<{ allowed: boolean; reason: string }> {
    const spec: Rec = {
      nonResourceAttributes: { path, verb },
      user: user.username,
      groups: user.groups,
      ...(user.uid ? { uid: user.uid } : {}),
      ...(user.extra && Object.keys(user.extra).length ? { extra: user.extra } : {}),
    };
    const key = JSON.stringify(spec);
    const cached = this.decisions.get(key);
    if (cached) {
      this.stats.decisionCacheHits++;
      return Promise.resolve(cached);
    }
    return this.shared(`d:${key}`, async () => {
      this.stats.subjectAccessReviews++;
      const review = await this.review<Rec>('/apis/authorization.k8s.io/v1/subjectaccessreviews', {
        apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', spec,
      }, 'SubjectAccessReview');
      const status = isObj(review?.status) ? review.status : {};
      if (typeof status.evaluationError === 'string' && status.evaluationError && status.allowed !== true) {
        throw new ReviewUnavailable(`SubjectAccessReview failed: ${status.evaluationError}`);
      }
      const d = { allowed: status.allowed === true && status.denied !== true, reason: typeof status.reason === 'string' ? status.reason : '' };
      this.decisions.set(key, d, d.allowed ? this.allowedTtlMs : this.deniedTtlMs);
      return d;
    });
  }

  /** The user of a client certificate the TLS handshake verified against clientCA. */
  private certificateUser(req: IncomingMessage): DelegatedUser | undefined {
    if (!this.opts.clientCA) return undefined;
    const socket = req.socket as Partial<TLSSocket>;
    if (!socket.encrypted || !socket.authorized || typeof socket.getPeerCertificate !== 'function') return undefined;
    const cert = socket.getPeerCertificate();
    const list = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
    const [name] = list(cert?.subject?.CN);
    if (!name) return undefined;
    const groups = [...new Set(list(cert.subject.O).filter((g) => g && g !== SYSTEM_AUTHENTICATED))];
    return { username: name, groups: [...groups, SYSTEM_AUTHENTICATED] };
  }

  private async tokenUser(req: IncomingMessage): Promise<DelegatedUser | undefined> {
    const token = bearerToken(req);
    return token ? this.authenticate(token) : undefined;
  }

  /** Runs `ask` once for every caller asking `key` while it runs. */
  private shared<T>(key: string, ask: () => Promise<T>): Promise<T> {
    const running = this.inflight.get(key) as Promise<T> | undefined;
    if (running) return running;
    const p = ask().finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  /** POSTs a review; any failure to get an answer is ReviewUnavailable (the request gets a 503). */
  private async review<T>(path: string, body: Rec, kind: string): Promise<T> {
    try {
      return await this.client.request<T>({ method: 'POST', path, body, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      throw new ReviewUnavailable(`the API server could not review the request (${kind}): ${why.slice(0, 300)}`, { cause: e });
    }
  }
}

function userOf(v: unknown): DelegatedUser | undefined {
  if (!isObj(v) || typeof v.username !== 'string' || !v.username) return undefined;
  const user: DelegatedUser = { username: v.username, groups: strings(v.groups) };
  if (typeof v.uid === 'string' && v.uid) user.uid = v.uid;
  if (isObj(v.extra)) {
    const extra: Record<string, string[]> = {};
    for (const [k, x] of Object.entries(v.extra)) extra[k] = strings(x);
    if (Object.keys(extra).length) user.extra = extra;
  }
  return user;
}
