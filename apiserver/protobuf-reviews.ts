// Protobuf schemas of authorization.k8s.io/v1 and authentication.k8s.io/v1 reviews (field numbers from k8s.io/api's generated.proto).
import { ObjectMeta } from './protobuf-meta.js';
import type { Schema } from './protobuf-meta.js';

const ResourceAttributes: Schema = {
  1: { name: 'namespace', type: 'string' },
  2: { name: 'verb', type: 'string' },
  3: { name: 'group', type: 'string' },
  4: { name: 'version', type: 'string' },
  5: { name: 'resource', type: 'string' },
  6: { name: 'subresource', type: 'string' },
  7: { name: 'name', type: 'string' },
  // 8 fieldSelector and 9 labelSelector (alpha) are not decoded: they may only narrow a request.
};

const NonResourceAttributes: Schema = {
  1: { name: 'path', type: 'string' },
  2: { name: 'verb', type: 'string' },
};

const SubjectAccessReviewStatus: Schema = {
  1: { name: 'allowed', type: 'bool', keepZero: true },
  4: { name: 'denied', type: 'bool' },
  2: { name: 'reason', type: 'string' },
  3: { name: 'evaluationError', type: 'string' },
};

/** ExtraValue {1 items}: map<string, ExtraValue> entries are decoded as {key, value: {items}}. */
const ExtraEntry: Schema = {
  1: { name: 'key', type: 'string', keepZero: true },
  2: { name: 'value', type: { 1: { name: 'items', type: 'string', repeated: true } } },
};

/** SelfSubjectAccessReviewSpec; SubjectAccessReviewSpec has the same two fields first. */
const SelfAccessSpec: Schema = {
  1: { name: 'resourceAttributes', type: ResourceAttributes },
  2: { name: 'nonResourceAttributes', type: NonResourceAttributes },
};

const AccessSpec: Schema = {
  ...SelfAccessSpec,
  3: { name: 'user', type: 'string' },
  4: { name: 'groups', type: 'string', repeated: true },
  // Decoded as a list of entries; reviews.ts turns it into the JSON map.
  5: { name: 'extraEntries', type: ExtraEntry, repeated: true },
  6: { name: 'uid', type: 'string' },
};

/** A review object: metadata, its spec, the status the server fills. */
const accessReview = (spec: Schema): Schema => ({
  1: { name: 'metadata', type: ObjectMeta },
  2: { name: 'spec', type: spec, keepZero: true },
  3: { name: 'status', type: SubjectAccessReviewStatus },
});

const SelfSubjectAccessReview = accessReview(SelfAccessSpec);
const SubjectAccessReview = accessReview(AccessSpec);

const SelfSubjectRulesReview: Schema = {
  1: { name: 'metadata', type: ObjectMeta },
  2: { name: 'spec', type: { 1: { name: 'namespace', type: 'string' } }, keepZero: true },
};

const UserInfo: Schema = {
  1: { name: 'username', type: 'string' },
  2: { name: 'uid', type: 'string' },
  3: { name: 'groups', type: 'string', repeated: true },
  4: { name: 'extraEntries', type: ExtraEntry, repeated: true },
};

const SelfSubjectReview: Schema = {
  1: { name: 'metadata', type: ObjectMeta },
  2: { name: 'status', type: { 1: { name: 'userInfo', type: UserInfo } } },
};

export const REVIEW_PROTOBUF_KINDS: Array<[string, Schema]> = [
  ['authorization.k8s.io/v1/SelfSubjectAccessReview', SelfSubjectAccessReview],
  ['authorization.k8s.io/v1/SubjectAccessReview', SubjectAccessReview],
  ['authorization.k8s.io/v1/SelfSubjectRulesReview', SelfSubjectRulesReview],
  ['authentication.k8s.io/v1/SelfSubjectReview', SelfSubjectReview],
];
