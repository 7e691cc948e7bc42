// The review endpoints, as kube-apiserver serves them: SelfSubjectAccessReview (`kubectl auth
// can-i`), SubjectAccessReview (the same question about someone else, for those allowed to ask),
// SelfSubjectRulesReview (`kubectl auth can-i --list`), SelfSubjectReview (`kubectl auth
// whoami`) and TokenReview (whose is this bearer token: what a process serving its own /metrics
// asks, with a SubjectAccessReview, to authenticate and authorize its scrapers without holding
// any user data itself, as kube-controller-manager's delegated authentication does). Each is a
// create-only resource of its group, so asking is itself authorized: the bootstrap role
// system:basic-user lets every authenticated user ask about themselves, system:auth-delegator
// (and kova's component roles) about others.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FieldCause } from '../../api/types.js';
import { BODY_TIMEOUT_MS, checkObjectBody, parseObjectBody, readBodyBytes } from '../request.js';
import { ApiError, badRequest, invalid } from '../status.js';
import { forbiddenError } from './forbidden.js';
import type { ReviewHandler } from './hooks.js';
import type { Authenticator, Authorizer, PolicyRule, RequestAttributes, RuleResolver, UserInfo } from './types.js';

export const AUTHORIZATION_GROUP = 'authorization.k8s.io';
export const AUTHENTICATION_GROUP = 'authentication.k8s.io';

export interface ReviewResource {
  group: string;
  version: string;
  resource: string;
  singular: string;
  kind: string;
}

/** The review resources served, for the handler and for discovery. */
export const REVIEW_RESOURCES: readonly ReviewResource[] = [
  { group: AUTHORIZATION_GROUP, version: 'v1', resource: 'selfsubjectaccessreviews', singular: 'selfsubjectaccessreview', kind: 'SelfSubjectAccessReview' },
  { group: AUTHORIZATION_GROUP, version: 'v1', resource: 'selfsubjectrulesreviews', singular: 'selfsubjectrulesreview', kind: 'SelfSubjectRulesReview' },
  { group: AUTHORIZATION_GROUP, version: 'v1', resource: 'subjectaccessreviews', singular: 'subjectaccessreview', kind: 'SubjectAccessReview' },
  { group: AUTHENTICATION_GROUP, version: 'v1', resource: 'selfsubjectreviews', singular: 'selfsubjectreview', kind: 'SelfSubjectReview' },
  { group: AUTHENTICATION_GROUP, version: 'v1', resource: 'tokenreviews', singular: 'tokenreview', kind: 'TokenReview' },
];

const BY_PATH = new Map(REVIEW_RESOURCES.map((r) => [`/apis/${r.group}/${r.version}/${r.resource}`, r]));

type Rec = Record<string, unknown>;
const isObj = (v: unknown): v is Rec => typeof v === 'object' && v !== null && !Array.isArray(v);
const strOf = (v: unknown): string => (typeof v === 'string' ? v : '');

export interface ReviewOptions {
  /** The rules of a user (SelfSubjectRulesReview); without one, rules reviews answer incomplete. */
  rules?: RuleResolver;
  /**
   * The bearer-token authenticators TokenReview asks, in order (the admin token, kova user
   * tokens: the API server's own chain without client certificates, which a token cannot carry).
   * Without them a TokenReview is answered unauthenticated, as kube-apiserver does without a
   * token authenticator.
   */
  tokenAuthenticators?: Authenticator[];
  bodyTimeoutMs?: number;
}

export class Reviews implements ReviewHandler {
  constructor(private readonly opts: ReviewOptions = {}) {}

  handles(path: string): boolean {
    return BY_PATH.has(path);
  }

  async serve(req: IncomingMessage, res: ServerResponse, path: string, user: UserInfo, authorizer: Authorizer): Promise<void> {
    const r = BY_PATH.get(path);
    if (!r) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    // Asking is a create on the review resource, authorized like any other.
    const asking: RequestAttributes = {
      user, verb: 'create', resourceRequest: true, path, apiGroup: r.group, apiVersion: r.version,
      resource: r.resource, subresource: '', namespace: '', name: '',
    };
    const d = authorizer.authorize(asking);
    if (!d.allowed) throw forbiddenError(asking, d.reason);
    const bytes = await readBodyBytes(req, this.opts.bodyTimeoutMs ?? BODY_TIMEOUT_MS);
    const body = (bytes.length ? parseObjectBody(req.headers['content-type'], bytes) : {}) as Rec;
    checkObjectBody(body);
    const answer = await this.answer(r, body, user, authorizer);
    const text = JSON.stringify(answer);
    res.writeHead(201, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  /** The review with its status filled in (exported through serve; public for unit tests). */
  async answer(r: ReviewResource, body: Rec, user: UserInfo, authorizer: Authorizer): Promise<Rec> {
    const apiVersion = `${r.group}/${r.version}`;
    if (body.apiVersion !== undefined && body.apiVersion !== apiVersion) {
      throw badRequest(`the API version in the data (${String(body.apiVersion)}) does not match the expected API version (${apiVersion})`);
    }
    if (body.kind !== undefined && body.kind !== r.kind) {
      throw badRequest(`the kind in the data (${String(body.kind)}) does not match the expected kind (${r.kind})`);
    }
    if (body.spec !== undefined && body.spec !== null && !isObj(body.spec)) {
      throw badRequest(`the request body could not be decoded: spec: expected an object, got ${Array.isArray(body.spec) ? 'array' : typeof body.spec}`);
    }
    const metadata = isObj(body.metadata) ? body.metadata : {};
    const spec = isObj(body.spec) ? body.spec : {};
    const out = (status: Rec, s: Rec = spec): Rec => ({ kind: r.kind, apiVersion, metadata, ...(r.kind === 'SelfSubjectReview' ? {} : { spec: s }), status });
    switch (r.kind) {
      case 'SelfSubjectReview':
        return out({ userInfo: userInfoJson(user) });
      case 'SelfSubjectAccessReview':
        return out(accessStatus(r, spec, user, authorizer));
      case 'SubjectAccessReview': {
        const subject = subjectOf(r, spec);
        return out(accessStatus(r, spec, subject, authorizer), specJson(spec));
      }
      case 'SelfSubjectRulesReview':
        return out(this.rulesStatus(spec, user));
      case 'TokenReview':
        return out(await this.tokenStatus(r, spec));
      default:
        throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    }
  }

  private rulesStatus(spec: Rec, user: UserInfo): Rec {
    const ns = strOf(spec.namespace);
    if (!this.opts.rules) {
      return { resourceRules: [], nonResourceRules: [], incomplete: true, evaluationError: 'rules are not available on this server' };
    }
    const { rules, incomplete, errors } = this.opts.rules.rulesFor(user, ns);
    const status: Rec = { ...rulesJson(rules), incomplete };
    if (errors.length) status.evaluationError = errors.join(', ');
    return status;
  }

  /**
   * Who the token of spec.token is, as kube's tokenreview REST storage answers: the token
   * authenticators see a request carrying nothing but that token; an authenticator's failure is
   * status.error, not a failed review. kova's tokens carry no audience, so they are good for
   * any audience asked about (kube's audience-agnostic authenticators answer the same).
   */
  private async tokenStatus(r: ReviewResource, spec: Rec): Promise<Rec> {
    if (spec.token !== undefined && typeof spec.token !== 'string') {
      throw badRequest(`the request body could not be decoded: spec.token: expected a string, got ${typeof spec.token}`);
    }
    const audiences = spec.audiences ?? [];
    if (!Array.isArray(audiences) || audiences.some((a) => typeof a !== 'string')) {
      throw badRequest('the request body could not be decoded: spec.audiences: expected an array of strings');
    }
    const token = strOf(spec.token);
    if (!token) {
      throw invalid({ group: r.group, plural: r.resource, kind: r.kind }, '', [
        { reason: 'FieldValueRequired', field: 'spec.token', message: 'Required value: token is required for TokenReview in authentication' },
      ]);
    }
    const authenticators = this.opts.tokenAuthenticators ?? [];
    if (!authenticators.length) return { user: {} };
    // A request with nothing but the token: no client certificate, no impersonation headers.
    const tokenOnly = { headers: { authorization: `Bearer ${token}` }, socket: {} } as unknown as IncomingMessage;
    let found: UserInfo | undefined;
    try {
      for (const a of authenticators) {
        found = await a.authenticate(tokenOnly);
        if (found) break;
      }
    } catch (e) {
      return { user: {}, error: e instanceof Error ? e.message : String(e) };
    }
    if (!found) return { user: {} };
    return { authenticated: true, user: userInfoJson(found), ...(audiences.length ? { audiences } : {}) };
  }
}

function userInfoJson(u: UserInfo): Rec {
  const out: Rec = { username: u.name };
  if (u.uid) out.uid = u.uid;
  out.groups = [...u.groups];
  if (u.extra && Object.keys(u.extra).length) out.extra = u.extra;
  return out;
}

/** The protobuf decoder yields SubjectAccessReviewSpec.extra as entries: the JSON form is a map. */
function specJson(spec: Rec): Rec {
  if (!Array.isArray(spec.extraEntries)) return spec;
  const { extraEntries, ...rest } = spec;
  return { ...rest, extra: extraMap(spec) };
}

function extraMap(spec: Rec): Record<string, string[]> | undefined {
  const out: Record<string, string[]> = {};
  if (Array.isArray(spec.extraEntries)) {
    for (const e of spec.extraEntries as Rec[]) {
      const items = isObj(e?.value) && Array.isArray(e.value.items) ? e.value.items : [];
      out[strOf(e?.key)] = items.map(String);
    }
  } else if (isObj(spec.extra)) {
    for (const [k, v] of Object.entries(spec.extra)) out[k] = Array.isArray(v) ? v.map(String) : [];
  }
  return Object.keys(out).length ? out : undefined;
}

/** The user a SubjectAccessReview asks about: exactly as given (no implied groups). */
function subjectOf(r: ReviewResource, spec: Rec): UserInfo {
  const user = strOf(spec.user);
  const groups = Array.isArray(spec.groups) ? spec.groups.filter((g): g is string => typeof g === 'string') : [];
  if (!user && !groups.length) {
    throw invalid({ group: r.group, plural: r.resource, kind: r.kind }, '', [
      { reason: 'FieldValueInvalid', field: 'spec.user', message: 'Invalid value: "": at least one of user or group must be specified' },
    ]);
  }
  const u: UserInfo = { name: user, groups };
  if (typeof spec.uid === 'string' && spec.uid) u.uid = spec.uid;
  const extra = extraMap(spec);
  if (extra) u.extra = extra;
  return u;
}

/** Exactly one of resourceAttributes and nonResourceAttributes, as kube validates the spec. */
function accessStatus(r: ReviewResource, spec: Rec, user: UserInfo, authorizer: Authorizer): Rec {
  const ra = isObj(spec.resourceAttributes) ? spec.resourceAttributes : undefined;
  const na = isObj(spec.nonResourceAttributes) ? spec.nonResourceAttributes : undefined;
  const causes: FieldCause[] = [];
  if (!ra && !na) causes.push({ reason: 'FieldValueRequired', field: 'spec.resourceAttributes', message: 'Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified' });
  if (ra && na) causes.push({ reason: 'FieldValueInvalid', field: 'spec.nonResourceAttributes', message: 'Invalid value: "object": cannot be specified in combination with resourceAttributes' });
  if (causes.length) throw invalid({ group: r.group, plural: r.resource, kind: r.kind }, '', causes);
  const a: RequestAttributes = ra
    ? {
        user, verb: strOf(ra.verb), resourceRequest: true, path: '', apiGroup: strOf(ra.group), apiVersion: strOf(ra.version),
        resource: strOf(ra.resource), subresource: strOf(ra.subresource), namespace: strOf(ra.namespace), name: strOf(ra.name),
      }
    : {
        user, verb: strOf(na!.verb), resourceRequest: false, path: strOf(na!.path), apiGroup: '', apiVersion: '',
        resource: '', subresource: '', namespace: '', name: '',
      };
  const d = authorizer.authorize(a);
  // RBAC has no opinion on what it does not allow: kubectl prints a bare "no".
  return d.allowed ? { allowed: true, ...(d.reason ? { reason: d.reason } : {}) } : { allowed: false };
}

/** PolicyRules as SubjectRulesReviewStatus lists: resource rules and non-resource rules apart. */
export function rulesJson(rules: readonly PolicyRule[]): { resourceRules: Rec[]; nonResourceRules: Rec[] } {
  const resourceRules: Rec[] = [];
  const nonResourceRules: Rec[] = [];
  for (const rule of rules) {
    if (rule.nonResourceURLs?.length) {
      nonResourceRules.push({ verbs: [...rule.verbs], nonResourceURLs: [...rule.nonResourceURLs] });
      continue;
    }
    const rr: Rec = { verbs: [...rule.verbs] };
    if (rule.apiGroups?.length) rr.apiGroups = [...rule.apiGroups];
    if (rule.resources?.length) rr.resources = [...rule.resources];
    if (rule.resourceNames?.length) rr.resourceNames = [...rule.resourceNames];
    resourceRules.push(rr);
  }
  return { resourceRules, nonResourceRules };
}
