// The hand-written codec against protobufjs reading etcd's own rpc.proto (shipped with etcd3, a
// dev dependency): requests we encode decode there to what we meant, and replies encoded there
// decode here to the same values, including the edge cases that a hand-written codec gets wrong
// (empty bytes, zero members of a oneof, lengths at varint boundaries, int64 beyond 2^53,
// negative int64, uint64 IDs up to 2^64-1, fields we do not know).
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import protobuf from 'protobufjs';
import {
  CompareResult, CompareTarget, decode, encode, readCompaction, readRange, readStatus, readTxn, readWatch,
  writeCompaction, writeRange, writeTxn, writeWatchCreate, type TxnRequest,
} from './proto.js';

const protoDir = join(dirname(createRequire(import.meta.url).resolve('etcd3/package.json')), 'proto');
const root = new protobuf.Root();
root.resolvePath = (_origin, target) => join(protoDir, target.replace(/^\.\//, ''));
root.loadSync('rpc.proto', { keepCase: true });
const T = (name: string) => root.lookupType(`etcdserverpb.${name}`);
const asObject = (type: protobuf.Type, buf: Buffer) =>
  type.toObject(type.decode(buf), { longs: String, enums: Number, bytes: String, defaults: false, oneofs: true }) as Record<string, any>;
const fromObject = (type: protobuf.Type, obj: object) => Buffer.from(type.encode(type.fromObject(obj)).finish());
const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
const b = (s: string) => Buffer.from(s);

/** Bytes of every length around the varint boundaries of nested message lengths. */
const SIZES = [0, 1, 120, 127, 128, 129, 16_380, 16_383, 16_384, 70_000, 2_100_000];

describe('etcd protobuf codec vs protobufjs on rpc.proto', () => {
  it('RangeRequest', () => {
    const buf = encode(writeRange, { key: b('/a'), range_end: b('/b'), limit: 1000, revision: 2 ** 53 - 1, keys_only: true, count_only: true });
    assert.deepEqual(asObject(T('RangeRequest'), buf), {
      key: b64('/a'), range_end: b64('/b'), limit: '1000', revision: String(2 ** 53 - 1), keys_only: true, count_only: true,
    });
    // Empty key (etcd reads it as "\0"-less empty) and zero values are left out, as proto3 does.
    assert.deepEqual(encode(writeRange, { key: Buffer.alloc(0), limit: 0, revision: 0 }), fromObject(T('RangeRequest'), {}));
  });

  it('TxnRequest: compares with zero oneof members and empty values, every op, values across varint boundaries', () => {
    for (const size of SIZES) {
      const value = Buffer.alloc(size, 0x61 + (size % 26));
      const txn: TxnRequest = {
        compare: [
          { key: b('/k'), target: CompareTarget.Create, result: CompareResult.Equal, create_revision: 0 },
          { key: b('/k'), target: CompareTarget.Mod, result: CompareResult.Less, mod_revision: 2 ** 53 - 1 },
          { key: b('/k'), target: CompareTarget.Version, result: CompareResult.NotEqual, version: 0 },
          { key: b('/k'), target: CompareTarget.Value, result: CompareResult.Greater, value: Buffer.alloc(0) },
          { key: b('/k'), target: CompareTarget.Value, result: CompareResult.Equal, value },
        ],
        success: [
          { request_put: { key: b('/k'), value, prev_kv: true } },
          { request_put: { key: b('/empty'), value: Buffer.alloc(0) } },
          { request_range: { key: b('/k'), range_end: b('/l'), limit: 1 } },
        ],
        failure: [{ request_delete_range: { key: b('/k'), range_end: b('/l'), prev_kv: true } }, { request_range: { key: b('/k') } }],
      };
      const got = asObject(T('TxnRequest'), encode(writeTxn, txn));
      assert.deepEqual(got, {
        compare: [
          { key: b64('/k'), target: CompareTarget.Create, create_revision: '0', target_union: 'create_revision' },
          { key: b64('/k'), target: CompareTarget.Mod, result: CompareResult.Less, mod_revision: String(2 ** 53 - 1), target_union: 'mod_revision' },
          { key: b64('/k'), result: CompareResult.NotEqual, version: '0', target_union: 'version' },
          { key: b64('/k'), target: CompareTarget.Value, result: CompareResult.Greater, value: '', target_union: 'value' },
          { key: b64('/k'), target: CompareTarget.Value, ...(size ? { value: b64(value) } : { value: '' }), target_union: 'value' },
        ],
        success: [
          { request_put: { key: b64('/k'), ...(size ? { value: b64(value) } : {}), prev_kv: true }, request: 'request_put' },
          { request_put: { key: b64('/empty') }, request: 'request_put' },
          { request_range: { key: b64('/k'), range_end: b64('/l'), limit: '1' }, request: 'request_range' },
        ],
        failure: [
          { request_delete_range: { key: b64('/k'), range_end: b64('/l'), prev_kv: true }, request: 'request_delete_range' },
          { request_range: { key: b64('/k') }, request: 'request_range' },
        ],
      }, `value of ${size} bytes`);
    }
    // A txn with nothing in it is an empty message.
    assert.equal(encode(writeTxn, {}).length, 0);
  });

  it('WatchRequest (create) and CompactionRequest', () => {
    const w = asObject(T('WatchRequest'), encode(writeWatchCreate, { key: b('/p/'), range_end: b('/p0'), start_revision: 2 ** 40 + 3, prev_kv: true }));
    assert.deepEqual(w, { create_request: { key: b64('/p/'), range_end: b64('/p0'), start_revision: String(2 ** 40 + 3), prev_kv: true }, request_union: 'create_request' });
    const empty = asObject(T('WatchRequest'), encode(writeWatchCreate, { key: b('/') }));
    assert.deepEqual(empty, { create_request: { key: b64('/') }, request_union: 'create_request' });
    assert.deepEqual(asObject(T('CompactionRequest'), encode(writeCompaction, { revision: 123456789, physical: true })), { revision: '123456789', physical: true });
    assert.deepEqual(encode(writeCompaction, { revision: -5 }), fromObject(T('CompactionRequest'), { revision: '-5' }), 'negative int64: 10-byte two\'s complement');
  });

  const header = { cluster_id: '18446744073709551615', member_id: '9007199254740993', revision: '9007199254740993', raft_term: '4294967296' };
  const kv = (key: string, value: Buffer | string, extra: object = {}) => ({ key: b(key), value: Buffer.from(value), create_revision: '5', mod_revision: '9223372036854775807', version: '1', lease: '-1', ...extra });
  const mine = (x: { key: Buffer; value: Buffer; create_revision: string; mod_revision: string; version: string; lease: string }) =>
    ({ key: x.key.toString(), value: x.value.toString('base64'), create_revision: x.create_revision, mod_revision: x.mod_revision, version: x.version, lease: x.lease });

  it('RangeResponse: exact uint64/int64 header fields, negative lease, empty values, more and count', () => {
    const buf = fromObject(T('RangeResponse'), { header, kvs: [kv('/a', 'x'), kv('/b', '', { version: '0', create_revision: '0' })], more: true, count: '9007199254740995' });
    const r = decode(readRange, buf);
    assert.deepEqual(r.header, header);
    assert.deepEqual(r.kvs.map(mine), [
      { key: '/a', value: b64('x'), create_revision: '5', mod_revision: '9223372036854775807', version: '1', lease: '-1' },
      { key: '/b', value: '', create_revision: '0', mod_revision: '9223372036854775807', version: '0', lease: '-1' },
    ]);
    assert.equal(r.more, true);
    assert.equal(r.count, '9007199254740995');
    const none = decode(readRange, fromObject(T('RangeResponse'), {}));
    assert.deepEqual([none.header.revision, none.kvs, none.more, none.count], ['0', [], false, '0']);
  });

  it('TxnResponse with every response kind', () => {
    const buf = fromObject(T('TxnResponse'), {
      header, succeeded: true,
      responses: [
        { response_put: { header, prev_kv: kv('/p', 'old') } },
        { response_range: { header, kvs: [kv('/r', Buffer.alloc(70_000, 1))], count: '1' } },
        { response_delete_range: { header, deleted: '2', prev_kvs: [kv('/d1', 'a'), kv('/d2', '')] } },
        { response_put: {} },
      ],
    });
    const t = decode(readTxn, buf);
    assert.equal(t.succeeded, true);
    assert.deepEqual(t.header, header);
    assert.equal(t.responses[0]!.response_put!.prev_kv!.value.toString(), 'old');
    assert.ok(t.responses[1]!.response_range!.kvs[0]!.value.equals(Buffer.alloc(70_000, 1)));
    assert.deepEqual(t.responses[2]!.response_delete_range!.prev_kvs.map(mine).map((x) => [x.key, x.value]), [['/d1', b64('a')], ['/d2', '']]);
    assert.equal(t.responses[2]!.response_delete_range!.deleted, '2');
    assert.deepEqual(t.responses[3], { response_put: { header: { cluster_id: '0', member_id: '0', revision: '0', raft_term: '0' } } });
  });

  it('WatchResponse: created/canceled, compact revision, reason, PUT/DELETE events with prev values, unknown fields skipped', () => {
    const buf = fromObject(T('WatchResponse'), {
      header, watch_id: '7', created: true, canceled: true, compact_revision: '42', cancel_reason: 'mvcc: required revision has been compacted', fragment: true,
      events: [
        { type: 0, kv: kv('/w/a', '{"x":1}') },
        { type: 1, kv: kv('/w/a', '', { version: '0' }), prev_kv: kv('/w/a', '{"x":1}') },
        { type: 0, kv: kv('/w/big', Buffer.alloc(3 << 20, 2)), prev_kv: kv('/w/big', '') },
      ],
    });
    const w = decode(readWatch, buf);
    assert.deepEqual([w.created, w.canceled, w.compact_revision, w.cancel_reason], [true, true, '42', 'mvcc: required revision has been compacted']);
    assert.deepEqual(w.header, header);
    assert.deepEqual(w.events.map((e) => [e.type, e.kv.key.toString(), e.kv.value.length, e.prev_kv?.value.toString()]), [
      ['PUT', '/w/a', 7, undefined], ['DELETE', '/w/a', 0, '{"x":1}'], ['PUT', '/w/big', 3 << 20, ''],
    ]);
    const empty = decode(readWatch, fromObject(T('WatchResponse'), { created: true }));
    assert.deepEqual([empty.created, empty.canceled, empty.events, empty.compact_revision], [true, false, [], '0']);
  });

  it('StatusResponse and CompactionResponse', () => {
    const s = decode(readStatus, fromObject(T('StatusResponse'), {
      header, version: '3.4.23', dbSize: '20480', leader: '18446744073709551615', raftIndex: '77', raftTerm: '3', raftAppliedIndex: '77',
      errors: ['NOSPACE', 'CORRUPT'], dbSizeInUse: '16384', isLearner: true,
    }));
    assert.deepEqual(s, { header, version: '3.4.23', db_size: '20480', leader: '18446744073709551615', raft_index: '77', raft_term: '3', errors: ['NOSPACE', 'CORRUPT'] });
    assert.deepEqual(decode(readCompaction, fromObject(T('CompactionResponse'), { header })), { header });
  });

  it('truncated input is an error, not garbage', () => {
    const buf = fromObject(T('RangeResponse'), { header, kvs: [kv('/a', 'x')] });
    for (const cut of [1, 5, buf.length - 1]) assert.throws(() => decode(readRange, buf.subarray(0, cut)), /truncated|malformed/);
  });
});
