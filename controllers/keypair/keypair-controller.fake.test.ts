// The KeyPair controller as a unit, on the in-memory FakeClient (client/fake.ts): the real
// informers, work queue and reconciler, no etcd or API server, well under a second.
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { KeyPair } from '../../api/kinds/index.js';
import { findCondition } from '../../api/conditions.js';
import { StatusError, EVENTS, KEYPAIRS } from '../../client/client.js';
import { FakeClient } from '../../client/fake.js';
import { startKeyPairController } from './keypair-controller.js';

/** A fresh ed25519 key in authorized_keys format, and its fingerprint as ssh-keygen -l prints it. */
function newKey(): { publicKey: string; fingerprint: string } {
  const raw = generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  const str = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  const blob = Buffer.concat([str(Buffer.from('ssh-ed25519')), str(raw)]);
  return { publicKey: `ssh-ed25519 ${blob.toString('base64')} test`, fingerprint: `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}` };
}

/** Resolves with the KeyPair once `pred` holds for it, checked at each write (watch event). */
async function until(c: FakeClient, ns: string, name: string, pred: (k: KeyPair) => boolean): Promise<KeyPair> {
  return new Promise((resolve, reject) => {
    const guard = setTimeout(() => reject(new Error(`timed out waiting on keypair ${name}: ${JSON.stringify(c.peek(KEYPAIRS, ns, name)?.status)}`)), 5_000);
    let handle: { abort(): void } | undefined;
    let done = false;
    const check = (k: KeyPair | undefined) => {
      if (done || !k || !pred(k)) return;
      done = true;
      clearTimeout(guard);
      handle?.abort();
      resolve(k);
    };
    void c.watch(KEYPAIRS, ns, {}, (_t, o) => o.metadata.name === name && check(o as KeyPair), () => undefined).then((h) => {
      handle = h;
      if (done) h.abort();
    });
  });
}

describe('KeyPair controller on FakeClient', () => {
  const c = new FakeClient();
  const stop = new AbortController();
  const NS = 'default';
  const ready = (k: KeyPair) => findCondition(k.status?.conditions, 'Ready');

  before(async () => {
    await startKeyPairController({ client: c, signal: stop.signal, log: () => undefined });
  });
  after(() => stop.abort());

  it('writes the fingerprint and Ready=True for a valid key', async () => {
    const key = newKey();
    await c.create(KEYPAIRS, { metadata: { name: 'good', namespace: NS }, spec: { publicKey: key.publicKey } });
    const k = await until(c, NS, 'good', (x) => !!x.status?.fingerprint);
    assert.equal(k.status?.fingerprint, key.fingerprint);
    assert.equal(k.status?.observedGeneration, 1);
    assert.deepEqual([ready(k)?.status, ready(k)?.reason], ['True', 'Valid']);
  });

  it('reports an unparsable key (condition and Warning event), then follows a fix', async () => {
    await c.create(KEYPAIRS, { metadata: { name: 'bad', namespace: NS }, spec: { publicKey: 'ssh-ed25519 !!!' } });
    const bad = await until(c, NS, 'bad', (x) => ready(x)?.status === 'False');
    assert.equal(ready(bad)?.reason, 'InvalidKey');
    assert.match(ready(bad)!.message!, /^spec\.publicKey: /);
    assert.equal(bad.status?.fingerprint, undefined);
    // The recorder writes the event after the status: wait for it through a watch as well.
    const events = await new Promise<string[]>((resolve) => {
      void c.watch(EVENTS, NS, {}, (_t, e) => {
        if ((e.involvedObject as { name?: string }).name === 'bad') resolve([String(e.type), String(e.reason)]);
      }, () => undefined);
    });
    assert.deepEqual(events, ['Warning', 'InvalidKey']);

    const key = newKey();
    await c.mergePatch(KEYPAIRS, NS, 'bad', { spec: { publicKey: key.publicKey } });
    const fixed = await until(c, NS, 'bad', (x) => x.status?.observedGeneration === 2);
    assert.equal(fixed.status?.fingerprint, key.fingerprint);
    assert.equal(ready(fixed)?.status, 'True');
  });

  it('retries a conflicting status write with a fresh read', async () => {
    c.failNext('updateStatus', { kind: KEYPAIRS, error: new StatusError(409, 'Conflict', 'injected conflict') });
    const conflicts = c.stats.conflicts;
    const key = newKey();
    await c.create(KEYPAIRS, { metadata: { name: 'racy', namespace: NS }, spec: { publicKey: key.publicKey } });
    const k = await until(c, NS, 'racy', (x) => !!x.status?.fingerprint);
    assert.equal(k.status?.fingerprint, key.fingerprint);
    assert.equal(c.stats.conflicts, conflicts + 1);
  });

  it('writes nothing for a KeyPair whose status is current', async () => {
    // A label change makes the controller reconcile 'good' again. Control: a KeyPair created
    // after it must get its status; the one worker takes keys in order, so 'good' came first.
    const before = c.calls.length;
    await c.mergePatch(KEYPAIRS, NS, 'good', { metadata: { labels: { touched: 'yes' } } });
    await c.create(KEYPAIRS, { metadata: { name: 'control', namespace: NS }, spec: { publicKey: newKey().publicKey } });
    await until(c, NS, 'control', (x) => !!x.status?.fingerprint);
    const writes = c.calls.slice(before).filter((x) => x.name === 'good' && x.verb !== 'patch');
    assert.deepEqual(writes, [], 'no request for good after its label change');
  });
});
