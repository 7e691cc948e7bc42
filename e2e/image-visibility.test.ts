// Images and key pairs follow project visibility (#15), on a whole sim cloud (`kova up --driver
// sim`) driven with the real kubectl by three project members made with `kova user create`
// (alice in img-a, bob in img-b, carol in img-c) and the cloud admin:
// - another project's Private image is not usable (the instance waits, its condition naming
//   the image); a Public one is; a Shared one exactly by the projects in spec.members;
// - removing a project from members stops new instances there from using the image, while the
//   ones already running keep running (as with Glance); adding one lets its waiting ones start;
// - two Public images of one name are refused as ambiguous; members without Shared is a 422;
// - making an image Public needs the verb publicize (Glance's publicize_image: cloud admins);
// - a key pair of another project is never used, even when the name matches.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { writeSimImageFile } from '../node-agent/sim-image.js';
import { eventually, KOVA_BIN, KUBECTL, startKova } from './harness.js';
import type { Kova } from './harness.js';

interface Run { code: number; stdout: string; stderr: string }

function run(file: string, args: string[], input?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout: String(stdout), stderr: String(stderr) }));
    // A program that exits without reading its input (ssh-keygen) closes the pipe: EPIPE is not a failure.
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(input ?? '');
  });
}

const image = (ns: string, name: string, path: string, extra = '') => `
apiVersion: kova.dev/v1alpha1
kind: Image
metadata: {name: ${name}, namespace: ${ns}}
spec:
  source: {file: {path: ${path}}}
  format: raw
${extra}`;

const instance = (ns: string, name: string, img: string, extra = '') => `
apiVersion: kova.dev/v1alpha1
kind: Instance
metadata: {name: ${name}, namespace: ${ns}}
spec:
  flavor: m1.tiny
  image: ${img}
${extra}`;

/** A fresh ed25519 public key, one line. */
async function publicKey(dir: string, name: string): Promise<string> {
  const r = await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', join(dir, name)]);
  assert.equal(r.code, 0, r.stderr);
  return (await readFile(join(dir, `${name}.pub`), 'utf8')).trim();
}

describe('image and key pair visibility across projects (kubectl, three members, sim cloud)', () => {
  let k: Kova;
  let imagePath: string;
  /** kubectl as a project member: must succeed, returns stdout. */
  const as: Record<string, (args: string[], input?: string) => Promise<string>> = {};
  /** kubectl as a member, whatever the outcome. */
  const tryAs: Record<string, (args: string[], input?: string) => Promise<Run>> = {};

  /** The instance's conditions by type, as the admin sees them. */
  const conds = async (ns: string, name: string): Promise<Record<string, { status: string; reason?: string; message?: string }>> => {
    const o = JSON.parse(await k.k(['get', 'instance', name, '-n', ns, '-o', 'json']));
    return Object.fromEntries((o.status?.conditions ?? []).map((c: { type: string }) => [c.type, c]));
  };
  /** Waits until the instance reports `reason` on ImageReady or Validated; returns that message. */
  const waitsWith = (ns: string, name: string, reason: string) => eventually(async () => {
    const c = await conds(ns, name);
    const hit = [c.ImageReady, c.Validated].find((x) => x?.status === 'False' && x.reason === reason);
    return hit?.message;
  }, 30_000, `${ns}/${name} waiting with ${reason}`);
  const phase = async (ns: string, name: string) => (await k.k(['get', 'instance', name, '-n', ns, '-o', 'jsonpath={.status.phase}'])).trim();
  const ready = (ns: string, ...names: string[]) => k.k(['wait', '-n', ns, '--for=condition=Ready', ...names.map((n) => `instance/${n}`), '--timeout=60s'], { timeoutMs: 70_000 });

  before(async () => {
    k = await startKova(['--driver', 'sim', '--sim-hosts', '2']);
    imagePath = (await writeSimImageFile(k.dataDir)).path;
    await k.k(['create', 'namespace', 'img-a']);
    await k.k(['create', 'namespace', 'img-b']);
    await k.k(['create', 'namespace', 'img-c']);
    for (const [user, ns] of [['alice', 'img-a'], ['bob', 'img-b'], ['carol', 'img-c']] as const) {
      const file = join(k.dataDir, `${user}.kubeconfig`);
      const made = await run(process.execPath, [KOVA_BIN, 'user', 'create', user, '--project', ns, '--role', 'member', '--kubeconfig', k.kubeconfig, '-o', file]);
      assert.equal(made.code, 0, made.stderr);
      // Importing from a file on the control-plane host is the cloud admin's (images/filesource);
      // this test's projects import the local sim image, so the admin delegates that right.
      await k.k(['create', 'role', 'image-importer', '-n', ns, '--verb=create', '--resource=images.kova.dev/filesource']);
      await k.k(['create', 'rolebinding', 'image-importer', '-n', ns, '--role=image-importer', `--user=${user}`]);
      const base = ['--kubeconfig', file, '--cache-dir', join(k.dataDir, `${user}-cache`)];
      tryAs[user] = (args, input) => run(KUBECTL, [...base, ...args], input);
      as[user] = async (args, input) => {
        const r = await run(KUBECTL, [...base, ...args], input);
        if (r.code !== 0) throw new Error(`kubectl as ${user} ${args.join(' ')} failed (${r.code}):\n${r.stderr}${r.stdout}`);
        return r.stdout;
      };
    }
    // Alice's project owns a Private and a Shared image; the cloud admin publishes a Public one
    // there (publishing is an operator's act in Glance).
    await as.alice!(['apply', '-f', '-'], [
      image('img-a', 'priv', imagePath, '  visibility: Private'),
      image('img-a', 'shared', imagePath, '  visibility: Shared\n  members: [img-b]'),
    ].join('\n---\n'));
    await k.k(['apply', '-f', '-'], { input: image('img-a', 'pub', imagePath, '  visibility: Public') });
    await k.k(['wait', '-n', 'img-a', '--for=jsonpath={.status.phase}=Ready', 'image/priv', 'image/shared', 'image/pub', '--timeout=60s'], { timeoutMs: 70_000 });
    await eventually(async () => (await k.k(['get', 'hosts', '-o', 'jsonpath={.items[*].status.allocatable.memory}'])).split(' ').filter(Boolean).length === 2, 20_000, 'two hosts');
  });
  after(async () => {
    await k?.stop();
  });

  it('shows visibility and members; members without Shared is a 422 naming spec.members', async () => {
    const table = await as.alice!(['get', 'images', '-n', 'img-a']);
    assert.match(table, /NAME\s+PHASE\s+SIZE\s+VISIBILITY/);
    assert.match(table, /\npriv\s+Ready\s+\d+\s+Private\s/);
    assert.match(table, /\nshared\s+Ready\s+\d+\s+Shared\s/);
    assert.match(table, /\npub\s+Ready\s+\d+\s+Public\s/);
    assert.equal((await as.alice!(['get', 'image', 'shared', '-n', 'img-a', '-o', 'jsonpath={.spec.members}'])).trim(), '["img-b"]');
    const bad = await tryAs.alice!(['apply', '-f', '-'], image('img-a', 'bad', imagePath, '  visibility: Private\n  members: [img-b]'));
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /is invalid: spec\.members: Forbidden: may only be set when spec\.visibility is Shared, not Private/);
    const badName = await tryAs.alice!(['apply', '-f', '-'], image('img-a', 'bad', imagePath, '  visibility: Shared\n  members: [Not_A_Project]'));
    assert.match(badName.stderr, /spec\.members\[0\]: Invalid value: "Not_A_Project"/);
    assert.match(await as.alice!(['explain', 'image.spec.members']), /no accept step/);
    // Members of other projects cannot read alice's images through the API either.
    assert.match((await tryAs.bob!(['get', 'image', 'shared', '-n', 'img-a'])).stderr, /User "bob" cannot get resource "images" in API group "kova\.dev" in the namespace "img-a"/);
  });

  it('making an image Public needs the publicize verb (cloud admins; Glance\'s publicize_image)', async () => {
    const why = /images\.kova\.dev "mine" is forbidden: User "alice" cannot publicize resource "images" in API group "kova\.dev" in the namespace "img-a": making an image Public offers it to every project/;
    const create = await tryAs.alice!(['apply', '-f', '-'], image('img-a', 'mine', imagePath, '  visibility: Public'));
    assert.notEqual(create.code, 0);
    assert.match(create.stderr, why);
    await as.alice!(['apply', '-f', '-'], image('img-a', 'mine', imagePath));
    for (const how of [['patch', 'image', 'mine', '-n', 'img-a', '--type=merge', '-p', '{"spec":{"visibility":"Public"}}'], ['apply', '--server-side', '--force-conflicts', '-f', '-'], ['replace', '-f', '-']]) {
      const r = await tryAs.alice!(how, how[0] !== 'patch' ? image('img-a', 'mine', imagePath, '  visibility: Public') : undefined);
      assert.notEqual(r.code, 0, how.join(' '));
      assert.match(r.stderr, why, how.join(' '));
    }
    assert.equal((await as.alice!(['get', 'image', 'mine', '-n', 'img-a', '-o', 'jsonpath={.spec.visibility}'])).trim(), 'Private');
    assert.equal((await tryAs.alice!(['auth', 'can-i', 'publicize', 'images.kova.dev', '-n', 'img-a'])).stdout.trim(), 'no');
    assert.equal((await k.k(['auth', 'can-i', 'publicize', 'images.kova.dev', '-n', 'img-a'])).trim(), 'yes');
    // Editing an image the admin made Public is an ordinary write; sharing needs nothing more.
    await as.alice!(['label', 'image', 'pub', '-n', 'img-a', 'team=a']);
    await as.alice!(['patch', 'image', 'mine', '-n', 'img-a', '--type=merge', '-p', '{"spec":{"visibility":"Shared","members":["img-c"]}}']);
    // A project can be granted the verb with an ordinary Role.
    await k.k(['create', 'role', 'publisher', '-n', 'img-a', '--verb=publicize', '--resource=images.kova.dev']);
    await k.k(['create', 'rolebinding', 'alice-publisher', '-n', 'img-a', '--role=publisher', '--user=alice']);
    await eventually(async () => (await tryAs.alice!(['auth', 'can-i', 'publicize', 'images.kova.dev', '-n', 'img-a'])).stdout.trim() === 'yes', 10_000, 'publicize granted');
    await as.alice!(['patch', 'image', 'mine', '-n', 'img-a', '--type=merge', '-p', '{"spec":{"visibility":"Public","members":null}}']);
    await k.k(['delete', 'rolebinding', 'alice-publisher', '-n', 'img-a']);
    await k.k(['delete', 'image', 'mine', '-n', 'img-a']);
  });

  it('Private only in its project, Public everywhere, Shared exactly in the member projects', async () => {
    await as.alice!(['apply', '-f', '-'], [instance('img-a', 'a-priv', 'priv'), instance('img-a', 'a-shared', 'shared')].join('\n---\n'));
    await as.bob!(['apply', '-f', '-'], ['priv', 'pub', 'shared'].map((i) => instance('img-b', `b-${i}`, i)).join('\n---\n'));
    await as.carol!(['apply', '-f', '-'], ['pub', 'shared'].map((i) => instance('img-c', `c-${i}`, i)).join('\n---\n'));
    await ready('img-a', 'a-priv', 'a-shared');
    await ready('img-b', 'b-pub', 'b-shared');
    await ready('img-c', 'c-pub');
    // The images they booted from: alice's, by the host's resolution.
    const booted = (await k.k(['get', 'instance', 'b-shared', '-n', 'img-b', '-o', 'jsonpath={.status.conditions[?(@.type=="ImageReady")].message}'])).trim();
    assert.match(booted, /^image img-a\/shared \(sha256 [0-9a-f]{12}…\) is Ready$/);

    assert.equal(await waitsWith('img-b', 'b-priv', 'ImageNotFound'), 'image "priv" not found in namespace img-b, and no Public image or image Shared with img-b has that name');
    assert.equal(await waitsWith('img-c', 'c-shared', 'ImageNotFound'), 'image "shared" not found in namespace img-c, and no Public image or image Shared with img-c has that name');
    // Still waiting a while later: never started.
    await new Promise((r) => setTimeout(r, 1500));
    for (const [ns, n] of [['img-b', 'b-priv'], ['img-c', 'c-shared']] as const) {
      assert.notEqual(await phase(ns, n), 'Running', `${ns}/${n}`);
      assert.notEqual((await conds(ns, n)).Ready?.status, 'True', `${ns}/${n}`);
    }
    // The member sees why with their own kubectl.
    assert.match(await as.bob!(['describe', 'instance', 'b-priv', '-n', 'img-b']), /image "priv" not found in namespace img-b/);
  });

  it('member list changes: a removed project keeps its running instances but cannot start new ones; an added one can', async () => {
    await as.alice!(['patch', 'image', 'shared', '-n', 'img-a', '--type=merge', '-p', '{"spec":{"members":["img-c"]}}']);
    // carol's waiting instance starts now that img-c is a member (the image change wakes it).
    await ready('img-c', 'c-shared');
    // bob's new instance may not use it any more...
    await as.bob!(['apply', '-f', '-'], instance('img-b', 'b-shared-2', 'shared'));
    assert.equal(await waitsWith('img-b', 'b-shared-2', 'ImageNotFound'), 'image "shared" not found in namespace img-b, and no Public image or image Shared with img-b has that name');
    // ...but the one created while img-b was a member keeps running, and survives a power cycle
    // of its existing guest.
    assert.equal(await phase('img-b', 'b-shared'), 'Running');
    assert.equal((await conds('img-b', 'b-shared')).Ready?.status, 'True');
    await as.bob!(['patch', 'instance', 'b-shared', '-n', 'img-b', '--type=merge', '-p', '{"spec":{"runStrategy":"Halted"}}']);
    await k.k(['wait', '-n', 'img-b', '--for=jsonpath={.status.phase}=Stopped', 'instance/b-shared', '--timeout=30s'], { timeoutMs: 40_000 });
    await as.bob!(['patch', 'instance', 'b-shared', '-n', 'img-b', '--type=merge', '-p', '{"spec":{"runStrategy":"Always"}}']);
    await ready('img-b', 'b-shared');
    // Making it Private again closes it to img-c for new instances too.
    await as.alice!(['patch', 'image', 'shared', '-n', 'img-a', '--type=merge', '-p', '{"spec":{"visibility":"Private","members":null}}']);
    await as.carol!(['apply', '-f', '-'], instance('img-c', 'c-shared-2', 'shared'));
    await waitsWith('img-c', 'c-shared-2', 'ImageNotFound');
    assert.equal(await phase('img-c', 'c-shared'), 'Running');
  });

  it('two Public images of one name are ambiguous; a project\'s own image of that name wins', async () => {
    await k.k(['apply', '-f', '-'], { input: [image('img-a', 'dup', imagePath, '  visibility: Public'), image('img-c', 'dup', imagePath, '  visibility: Public')].join('\n---\n') });
    await k.k(['wait', '-n', 'img-a', '--for=jsonpath={.status.phase}=Ready', 'image/dup', '--timeout=60s'], { timeoutMs: 70_000 });
    await k.k(['wait', '-n', 'img-c', '--for=jsonpath={.status.phase}=Ready', 'image/dup', '--timeout=60s'], { timeoutMs: 70_000 });
    await as.bob!(['apply', '-f', '-'], instance('img-b', 'b-dup', 'dup'));
    assert.equal(await waitsWith('img-b', 'b-dup', 'ImageAmbiguous'),
      'image "dup" is ambiguous: Public images of that name exist in namespaces img-a, img-c; create (or copy) the one to use as Image "dup" in namespace img-b');
    await as.bob!(['apply', '-f', '-'], image('img-b', 'dup', imagePath));
    await ready('img-b', 'b-dup');
    assert.match((await k.k(['get', 'instance', 'b-dup', '-n', 'img-b', '-o', 'jsonpath={.status.conditions[?(@.type=="ImageReady")].message}'])).trim(), /^image img-b\/dup /);
  });

  it('an instance never uses another project\'s key pair, even of the same name', async () => {
    await as.alice!(['apply', '-f', '-'], `apiVersion: kova.dev/v1alpha1\nkind: KeyPair\nmetadata: {name: deploy, namespace: img-a}\nspec: {publicKey: "${await publicKey(k.dataDir, 'alice-key')}"}\n`);
    await as.bob!(['apply', '-f', '-'], instance('img-b', 'b-key', 'pub', '  keyPair: deploy'));
    const msg = await eventually(async () => {
      const c = (await conds('img-b', 'b-key')).KeyPairReady;
      return c?.status === 'False' && c.reason === 'KeyPairNotFound' && c.message;
    }, 30_000, 'KeyPairReady=False');
    assert.equal(msg, 'key pair deploy not found in namespace img-b');
    await new Promise((r) => setTimeout(r, 1000));
    assert.notEqual(await phase('img-b', 'b-key'), 'Running');
    // Bob's own key pair of that name is the one used.
    await as.bob!(['apply', '-f', '-'], `apiVersion: kova.dev/v1alpha1\nkind: KeyPair\nmetadata: {name: deploy, namespace: img-b}\nspec: {publicKey: "${await publicKey(k.dataDir, 'bob-key')}"}\n`);
    await ready('img-b', 'b-key');
    // Bob cannot read alice's key pair by name either.
    assert.match((await tryAs.bob!(['get', 'keypair', 'deploy', '-n', 'img-a'])).stderr, /cannot get resource "keypairs"/);
  });
});
