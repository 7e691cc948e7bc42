// Decoder for the Kubernetes protobuf wire encoding (`application/vnd.kubernetes.protobuf`).
//
// kubectl's typed generators (`kubectl create namespace|secret|configmap ...`) send request bodies
// as protobuf and do not fall back to JSON on 415, so the API server has to read them. This is a
// small, dependency-free, read-only decoder for the handful of built-in kinds kova serves, turning
// the bytes into the same JSON shape the JSON API carries.
//
// Envelope: the 4 bytes `k8s\0` followed by a runtime.Unknown message
//   (k8s.io/apimachinery/pkg/runtime/generated.proto):
//     1 typeMeta {1 apiVersion, 2 kind}, 2 raw (the typed object's proto), 3 contentEncoding, 4 contentType.
// Field numbers below follow the generated.proto files of k8s.io/api (core/v1, coordination/v1)
// and k8s.io/apimachinery (pkg/apis/meta/v1, pkg/runtime).
//
// JSON shape follows Go's encoding/json on the k8s types: non-pointer scalars tagged `omitempty`
// are dropped when zero (Go's generated marshallers always write them), pointer fields keep their
// zero value when present on the wire, zero Time/MicroTime (JSON null) is dropped, and bytes
// become base64 strings.

export const K8S_PROTOBUF_CONTENT_TYPE = 'application/vnd.kubernetes.protobuf';

const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]); // "k8s\0"

/** Malformed protobuf (truncated buffer, bad magic, bad varint...): a 400 Bad Request. */
export class ProtobufDecodeError extends Error {
  readonly statusCode = 400;
  constructor(message: string) {
    super(message);
    this.name = 'ProtobufDecodeError';
  }
}

/** Well-formed envelope, but a kind (or encoding) this decoder does not handle: a 415. */
export class ProtobufUnsupportedError extends Error {
  readonly statusCode = 415;
  constructor(message: string) {
    super(message);
    this.name = 'ProtobufUnsupportedError';
  }
}

/** True when a Content-Type header value names the Kubernetes protobuf encoding. */
export function isK8sProtobufContentType(contentType: string | undefined): boolean {
  if (!contentType) return false;
  return contentType.split(';')[0]!.trim().toLowerCase() === K8S_PROTOBUF_CONTENT_TYPE;
}

import { ManagedFieldsEntry, MICRO, ObjectMeta, TIME } from './protobuf-meta.js';
import type { FieldType, Schema } from './protobuf-meta.js';
import { RBAC_PROTOBUF_KINDS } from './protobuf-rbac.js';
import { QUOTA_PROTOBUF_KINDS } from './protobuf-quota.js';
import { REVIEW_PROTOBUF_KINDS } from './protobuf-reviews.js';

// ---------------------------------------------------------------------------------------------
// Wire format

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_SGROUP = 3;
const WIRE_EGROUP = 4;
const WIRE_I32 = 5;

interface WireField {
  field: number;
  wire: number;
  /** varint (as unsigned 64-bit), fixed64 / fixed32 (raw little-endian bits, unsigned). */
  int?: bigint;
  /** length-delimited payload (a view into the input buffer). */
  bytes?: Buffer;
}

class Reader {
  pos = 0;
  constructor(private readonly buf: Buffer) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.length) throw new ProtobufDecodeError('protobuf: truncated varint');
      const b = this.buf[this.pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return BigInt.asUintN(64, result);
      shift += 7n;
    }
    throw new ProtobufDecodeError('protobuf: varint longer than 10 bytes');
  }

  take(n: number): Buffer {
    if (n < 0 || this.pos + n > this.buf.length) throw new ProtobufDecodeError('protobuf: truncated field');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  tag(): { field: number; wire: number } {
    const key = this.varint();
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (field < 1 || field > 0x1fffffff) throw new ProtobufDecodeError(`protobuf: invalid field number ${field}`);
    return { field, wire };
  }

  /** Skips (the rest of) a group that started with field `field`, nested groups included. */
  skipGroup(field: number): void {
    for (;;) {
      if (this.done) throw new ProtobufDecodeError('protobuf: unterminated group');
      const t = this.tag();
      if (t.wire === WIRE_EGROUP) {
        if (t.field !== field) throw new ProtobufDecodeError('protobuf: mismatched end group');
        return;
      }
      this.skip(t.field, t.wire);
    }
  }

  skip(field: number, wire: number): void {
    switch (wire) {
      case WIRE_VARINT: this.varint(); return;
      case WIRE_I64: this.take(8); return;
      case WIRE_LEN: this.take(this.length()); return;
      case WIRE_I32: this.take(4); return;
      case WIRE_SGROUP: this.skipGroup(field); return;
      default: throw new ProtobufDecodeError(`protobuf: unexpected wire type ${wire}`);
    }
  }

  length(): number {
    const n = this.varint();
    if (n > BigInt(this.buf.length - this.pos)) throw new ProtobufDecodeError('protobuf: truncated field');
    return Number(n);
  }
}

/** Splits one message into its fields, in wire order. Groups (long deprecated) are skipped. */
function readFields(buf: Buffer): WireField[] {
  const r = new Reader(buf);
  const out: WireField[] = [];
  while (!r.done) {
    const { field, wire } = r.tag();
    switch (wire) {
      case WIRE_VARINT: out.push({ field, wire, int: r.varint() }); break;
      case WIRE_I64: out.push({ field, wire, int: r.take(8).readBigUInt64LE(0) }); break;
      case WIRE_LEN: out.push({ field, wire, bytes: r.take(r.length()) }); break;
      case WIRE_I32: out.push({ field, wire, int: BigInt(r.take(4).readUInt32LE(0)) }); break;
      case WIRE_SGROUP: r.skipGroup(field); break;
      default: throw new ProtobufDecodeError(`protobuf: unexpected wire type ${wire} for field ${field}`);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Schemas

const NamespaceCondition: Schema = {
  1: { name: 'type', type: 'string', keepZero: true },
  2: { name: 'status', type: 'string', keepZero: true },
  4: { name: 'lastTransitionTime', type: TIME },
  5: { name: 'reason', type: 'string' },
  6: { name: 'message', type: 'string' },
};

const Namespace: Schema = {
  1: { name: 'metadata', type: ObjectMeta },
  2: { name: 'spec', type: { 1: { name: 'finalizers', type: 'string', repeated: true } } },
  3: {
    name: 'status',
    type: {
      1: { name: 'phase', type: 'string' },
      2: { name: 'conditions', type: NamespaceCondition, repeated: true },
    },
  },
};

const ConfigMap: Schema = {
  1: { name: 'metadata', type: ObjectMeta },
  4: { name: 'immutable', type: 'bool', keepZero: true },
  2: { name: 'data', type: 'map<string,string>' },
  3: { name: 'binaryData', type: 'map<string,bytes>' },
};

const Secret: Schema = {
  1: { name: 'metadata', type: ObjectMeta },
  5: { name: 'immutable', type: 'bool', keepZero: true },
  2: { name: 'data', type: 'map<string,bytes>' },
  4: { name: 'stringData', type: 'map<string,string>' },
  3: { name: 'type', type: 'string' },
};

const LeaseSpec: Schema = {
  1: { name: 'holderIdentity', type: 'string', keepZero: true },
  2: { name: 'leaseDurationSeconds', type: 'int32', keepZero: true },
  3: { name: 'acquireTime', type: MICRO },
  4: { name: 'renewTime', type: MICRO },
  5: { name: 'leaseTransitions', type: 'int32', keepZero: true },
  6: { name: 'strategy', type: 'string', keepZero: true },
  7: { name: 'preferredHolder', type: 'string', keepZero: true },
};

const Lease: Schema = {
  1: { name: 'metadata', type: ObjectMeta },
  2: { name: 'spec', type: LeaseSpec },
};

const ObjectReference: Schema = {
  1: { name: 'kind', type: 'string' },
  2: { name: 'namespace', type: 'string' },
  3: { name: 'name', type: 'string' },
  4: { name: 'uid', type: 'string' },
  5: { name: 'apiVersion', type: 'string' },
  6: { name: 'resourceVersion', type: 'string' },
  7: { name: 'fieldPath', type: 'string' },
};

const Event: Schema = {
  1: { name: 'metadata', type: ObjectMeta },
  2: { name: 'involvedObject', type: ObjectReference },
  3: { name: 'reason', type: 'string' },
  4: { name: 'message', type: 'string' },
  5: { name: 'source', type: { 1: { name: 'component', type: 'string' }, 2: { name: 'host', type: 'string' } } },
  6: { name: 'firstTimestamp', type: TIME },
  7: { name: 'lastTimestamp', type: TIME },
  8: { name: 'count', type: 'int32' },
  9: { name: 'type', type: 'string' },
  10: { name: 'eventTime', type: MICRO },
  11: { name: 'series', type: { 1: { name: 'count', type: 'int32' }, 2: { name: 'lastObservedTime', type: MICRO } } },
  12: { name: 'action', type: 'string' },
  13: { name: 'related', type: ObjectReference },
  14: { name: 'reportingComponent', type: 'string' },
  15: { name: 'reportingInstance', type: 'string' },
};

const KINDS: ReadonlyMap<string, Schema> = new Map([
  ['v1/Namespace', Namespace],
  ['v1/ConfigMap', ConfigMap],
  ['v1/Secret', Secret],
  ['v1/Event', Event],
  ['coordination.k8s.io/v1/Lease', Lease],
  ...RBAC_PROTOBUF_KINDS,
  ...QUOTA_PROTOBUF_KINDS,
  ...REVIEW_PROTOBUF_KINDS,
]);

const SUPPORTED = [...KINDS.keys()].map((k) => {
  const i = k.lastIndexOf('/');
  return `${k.slice(0, i)} ${k.slice(i + 1)}`;
}).join(', ');

// ---------------------------------------------------------------------------------------------
// Conversion

const utf8 = new TextDecoder('utf-8', { fatal: true });

function str(b: Buffer): string {
  try {
    return utf8.decode(b);
  } catch {
    throw new ProtobufDecodeError('protobuf: string field is not valid UTF-8');
  }
}

function expectedWire(type: FieldType): number {
  if (type === 'bool' || type === 'int32' || type === 'int64') return WIRE_VARINT;
  return WIRE_LEN;
}

/** RFC 3339 in UTC, as metav1.Time (seconds) or metav1.MicroTime (6 fractional digits) marshal. */
function formatTime(b: Buffer, micro: boolean): string | undefined {
  let seconds = 0n;
  let nanos = 0;
  for (const f of readFields(b)) {
    if (f.wire !== WIRE_VARINT) continue;
    if (f.field === 1) seconds = BigInt.asIntN(64, f.int!);
    else if (f.field === 2) nanos = Number(BigInt.asIntN(32, f.int!));
  }
  if (seconds === 0n && nanos === 0) return undefined; // the zero Time marshals to null
  const ms = Number(seconds) * 1000;
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) throw new ProtobufDecodeError('protobuf: timestamp out of range');
  const base = d.toISOString().slice(0, -5); // drop ".sssZ"
  if (!micro) return `${base}Z`;
  const us = Math.max(0, Math.min(999_999, Math.floor(nanos / 1000)));
  return `${base}.${String(us).padStart(6, '0')}Z`;
}

function mapEntries(b: Buffer, bytesValue: boolean): [string, string] {
  let key = '';
  let value = '';
  for (const f of readFields(b)) {
    if (f.wire !== WIRE_LEN) continue;
    if (f.field === 1) key = str(f.bytes!);
    else if (f.field === 2) value = bytesValue ? f.bytes!.toString('base64') : str(f.bytes!);
  }
  return [key, value];
}

/** A map<string,Quantity> entry: the value is the Quantity message, whose field 1 is its string. */
function quantityEntry(b: Buffer): [string, string] {
  let key = '';
  let value = '';
  for (const f of readFields(b)) {
    if (f.wire !== WIRE_LEN) continue;
    if (f.field === 1) key = str(f.bytes!);
    else if (f.field === 2) for (const q of readFields(f.bytes!)) if (q.wire === WIRE_LEN && q.field === 1) value = str(q.bytes!);
  }
  return [key, value];
}

function isZero(v: unknown): boolean {
  return v === '' || v === 0 || v === false || v === undefined;
}

function decodeValue(f: WireField, type: FieldType): unknown {
  switch (type) {
    case 'string': return str(f.bytes!);
    case 'bytes': return f.bytes!.toString('base64');
    case 'bool': return f.int !== 0n;
    case 'int32': return Number(BigInt.asIntN(32, f.int!));
    case 'int64': return Number(BigInt.asIntN(64, f.int!));
    case 'time': return formatTime(f.bytes!, false);
    case 'microtime': return formatTime(f.bytes!, true);
    case 'json': {
      try {
        return JSON.parse(str(f.bytes!)) as unknown;
      } catch {
        throw new ProtobufDecodeError('protobuf: embedded JSON is invalid');
      }
    }
    case 'map<string,string>':
    case 'map<string,bytes>':
    case 'map<string,Quantity>':
      throw new Error('unreachable: maps are handled by decodeMessage');
    default: return decodeMessage(f.bytes!, type);
  }
}

function decodeMessage(buf: Buffer, schema: Schema): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of readFields(buf)) {
    const spec = schema[f.field];
    if (!spec) continue; // unknown field (already consumed by readFields)
    if (f.wire !== expectedWire(spec.type)) continue; // wire type mismatch: treat as unknown, like protobuf does

    if (spec.type === 'map<string,string>' || spec.type === 'map<string,bytes>' || spec.type === 'map<string,Quantity>') {
      const [k, v] = spec.type === 'map<string,Quantity>' ? quantityEntry(f.bytes!) : mapEntries(f.bytes!, spec.type === 'map<string,bytes>');
      const m = (out[spec.name] ??= {}) as Record<string, string>;
      m[k] = v;
      continue;
    }

    const v = decodeValue(f, spec.type);
    if (spec.repeated) {
      ((out[spec.name] ??= []) as unknown[]).push(v ?? null);
      continue;
    }
    if (v === undefined || (!spec.keepZero && isZero(v))) {
      delete out[spec.name]; // last one wins in proto; a later zero clears an earlier value
      continue;
    }
    out[spec.name] = v;
  }
  // FieldsV1 is {raw: <json>} on the wire but the JSON itself in the JSON encoding.
  if (schema === ManagedFieldsEntry && out['fieldsV1'] && typeof out['fieldsV1'] === 'object') {
    const raw = (out['fieldsV1'] as Record<string, unknown>)['raw'];
    if (raw === undefined) delete out['fieldsV1'];
    else out['fieldsV1'] = raw;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Envelope

/**
 * Decodes a `application/vnd.kubernetes.protobuf` request body (magic `k8s\0` + runtime.Unknown)
 * into the JSON-shaped object the JSON API would have received.
 *
 * Throws ProtobufDecodeError (statusCode 400) for malformed bytes and ProtobufUnsupportedError
 * (statusCode 415) for kinds other than v1 Namespace/ConfigMap/Secret/Event and
 * coordination.k8s.io/v1 Lease, or for a non-identity contentEncoding.
 */
export function decodeK8sProtobuf(body: Buffer): { apiVersion: string; kind: string; object: Record<string, unknown> } {
  if (body.length < MAGIC.length || !body.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new ProtobufDecodeError('protobuf: body does not start with the Kubernetes protobuf magic "k8s\\0"');
  }
  let apiVersion = '';
  let kind = '';
  let raw: Buffer | undefined;
  let contentEncoding = '';
  let contentType = '';
  for (const f of readFields(body.subarray(MAGIC.length))) {
    if (f.wire !== WIRE_LEN) continue;
    switch (f.field) {
      case 1:
        for (const t of readFields(f.bytes!)) {
          if (t.wire !== WIRE_LEN) continue;
          if (t.field === 1) apiVersion = str(t.bytes!);
          else if (t.field === 2) kind = str(t.bytes!);
        }
        break;
      case 2: raw = f.bytes; break;
      case 3: contentEncoding = str(f.bytes!); break;
      case 4: contentType = str(f.bytes!); break;
    }
  }
  if (contentEncoding !== '') {
    throw new ProtobufUnsupportedError(`protobuf contentEncoding ${JSON.stringify(contentEncoding)} is not supported; send JSON`);
  }
  if (contentType !== '' && !isK8sProtobufContentType(contentType)) {
    throw new ProtobufUnsupportedError(`protobuf envelope with contentType ${JSON.stringify(contentType)} is not supported; send JSON`);
  }
  const schema = KINDS.get(`${apiVersion}/${kind}`);
  if (!schema) {
    const what = apiVersion || kind ? `${apiVersion || '<no apiVersion>'} ${kind || '<no kind>'}` : 'this object';
    throw new ProtobufUnsupportedError(`protobuf is supported only for ${SUPPORTED}, not ${what}; send JSON`);
  }
  const object: Record<string, unknown> = { apiVersion, kind, ...decodeMessage(raw ?? Buffer.alloc(0), schema) };
  return { apiVersion, kind, object };
}
