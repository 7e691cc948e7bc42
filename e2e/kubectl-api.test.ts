// kubectl end-to-end: the real /usr/bin/kubectl against the real `kova up` (etcd, HTTPS,
// token auth). Each test states one behaviour kubectl users rely on.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { KovaClient } from '../client/client.js';
import { startGarbageCollector } from '../controllers/garbage-collector/garbage-collector.js';
import { startNamespaceController } from '../controllers/namespace/namespace-controller.js';
import { eventually, startKova } from './harness.js';
import type { Kova } from './harness.js';

const FLAVOR = `apiVersion: kova.dev/v1alpha1
kind: Flavor
metadata: {name: m1.small}
spec: {vcpus: 1, memory: 512Mi, disk: 2Gi}
`;

function instance(name: string, ns: string, extra: Record<string, unknown> = {}, spec: Record<string, unknown> = {}) {
  return JSON.stringify({
    apiVersion: 'kova.dev/v1alpha1',
    kind: 'Instance',
    metadata: { name, namespace: ns, ...extra },
    spec: { flavor: 'm1.small', image: 'tiny', ...spec },
  });
}

describe('kubectl against kova up', () => {
  let kova: Kova;
  // Garbage collection and namespace deletion are controllers; of `kova controllers` only
  // those two run here, so no scheduler writes to the instances these tests inspect.
  const controllers = new AbortController();
  let client: KovaClient | undefined;
  const done: Array<Promise<void>> = [];

  before(async () => {
    kova = await startKova(['--no-controllers', '--no-agents']);
    client = KovaClient.fromFile(kova.kubeconfig);
    const parts = await Promise.all([
      startGarbageCollector({ client, signal: controllers.signal, log: () => undefined }),
      startNamespaceController({ client, signal: controllers.signal, log: () => undefined }),
    ]);
    done.push(...parts.map((p) => p.done));
    await kova.k(['apply', '-f', '-'], { input: 'apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n' });
    await kova.k(['apply', '-f', '-'], { input: FLAVOR });
  });
  after(async () => {
    controllers.abort();
    await Promise.all(done);
    client?.close();
    await kova?.stop();
  });

  it('serves discovery: api-resources, short names, categories, version', async () => {
    const res = await kova.k(['api-resources', '--api-group=kova.dev', '-o', 'wide']);
    assert.match(res, /instances\s+inst,vm\s+kova\.dev\/v1alpha1\s+true\s+Instance/);
    assert.match(res, /flavors\s+fl\s+kova\.dev\/v1alpha1\s+false\s+Flavor/);
    const v = await kova.k(['version', '-o', 'json']);
    assert.equal(JSON.parse(v).serverVersion.minor, '32');
    const all = await kova.k(['get', 'kova']);
    assert.match(all, /flavor\.kova\.dev\/m1\.small/);
    assert.equal((await kova.k(['get', '--raw', '/readyz'])).trim(), 'ok');
  });

  it('prints tables with the CRD printer columns, wide columns and single objects', async () => {
    await kova.k(['apply', '-f', '-'], { input: instance('web-1', 'demo') });
    const out = await kova.k(['get', 'instances', '-n', 'demo']);
    assert.match(out.split('\n')[0], /^NAME\s+PHASE\s+HOST\s+IP\s+FLAVOR\s+AGE/);
    assert.match(out, /web-1\s+.*m1\.small\s+\d+s/);
    const one = await kova.k(['get', 'vm', 'web-1', '-n', 'demo']);
    assert.equal(one.trim().split('\n').length, 2);
    const fl = await kova.k(['get', 'fl']);
    assert.match(fl, /m1\.small\s+1\s+512Mi\s+2Gi/);
    const all = await kova.k(['get', 'inst', '-A']);
    assert.match(all.split('\n')[0], /^NAMESPACE\s+NAME/);
  });

  it('applies schema defaults and returns them', async () => {
    const rs = await kova.k(['get', 'inst', 'web-1', '-n', 'demo', '-o', 'jsonpath={.spec.runStrategy}']);
    assert.equal(rs, 'Always');
    const gen = await kova.k(['get', 'inst', 'web-1', '-n', 'demo', '-o', 'jsonpath={.metadata.generation}']);
    assert.equal(gen, '1');
  });

  it('client-side apply: configured, then unchanged', async () => {
    const changed = await kova.k(['apply', '-f', '-'], { input: instance('web-1', 'demo', {}, { runStrategy: 'Halted' }) });
    assert.match(changed, /instance\.kova\.dev\/web-1 configured/);
    const same = await kova.k(['apply', '-f', '-'], { input: instance('web-1', 'demo', {}, { runStrategy: 'Halted' }) });
    assert.match(same, /instance\.kova\.dev\/web-1 unchanged/);
    const gen = await kova.k(['get', 'inst', 'web-1', '-n', 'demo', '-o', 'jsonpath={.metadata.generation}']);
    assert.equal(gen, '2');
    const ann = await kova.k(['get', 'inst', 'web-1', '-n', 'demo', '-o', 'json']);
    assert.ok(JSON.parse(ann).metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']);
  });

  it('server-side apply: create, conflict with another manager, force-conflicts', async () => {
    const created = await kova.k(['apply', '--server-side', '-f', '-'], { input: instance('ssa-1', 'demo', {}, { runStrategy: 'Manual' }) });
    assert.match(created, /instance\.kova\.dev\/ssa-1 serverside-applied/);
    const mf = JSON.parse(await kova.k(['get', 'inst', 'ssa-1', '-n', 'demo', '-o', 'json', '--show-managed-fields']));
    const entry = mf.metadata.managedFields.find((m: { manager: string }) => m.manager === 'kubectl');
    assert.equal(entry.operation, 'Apply');
    assert.ok(entry.fieldsV1['f:spec']['f:runStrategy']);
    // another manager takes spec.runStrategy
    const other = await kova.kubectl(['apply', '--server-side', '--field-manager', 'ops', '-f', '-'], { input: instance('ssa-1', 'demo', {}, { runStrategy: 'Halted' }) });
    assert.notEqual(other.code, 0);
    assert.match(other.stderr, /conflict with "kubectl"/);
    assert.match(other.stderr, /\.spec\.runStrategy/);
    await kova.k(['apply', '--server-side', '--force-conflicts', '--field-manager', 'ops', '-f', '-'], { input: instance('ssa-1', 'demo', {}, { runStrategy: 'Halted' }) });
    assert.equal(await kova.k(['get', 'inst', 'ssa-1', '-n', 'demo', '-o', 'jsonpath={.spec.runStrategy}']), 'Halted');
    // a manager that stops applying a field it alone owns removes it
    await kova.k(['apply', '--server-side', '--field-manager', 'labeler', '-f', '-'], { input: instance('ssa-1', 'demo', { labels: { tier: 'web' } }, { runStrategy: 'Halted' }) });
    assert.equal(await kova.k(['get', 'inst', 'ssa-1', '-n', 'demo', '-o', 'jsonpath={.metadata.labels.tier}']), 'web');
    await kova.k(['apply', '--server-side', '--field-manager', 'labeler', '-f', '-'], { input: instance('ssa-1', 'demo', {}, { runStrategy: 'Halted' }) });
    assert.equal(await kova.k(['get', 'inst', 'ssa-1', '-n', 'demo', '-o', 'jsonpath={.metadata.labels.tier}']), '');
  });

  it('patch: merge and json work; strategic is refused for custom kinds', async () => {
    await kova.k(['patch', 'inst', 'web-1', '-n', 'demo', '--type=merge', '-p', '{"spec":{"runStrategy":"Manual"}}']);
    assert.equal(await kova.k(['get', 'inst', 'web-1', '-n', 'demo', '-o', 'jsonpath={.spec.runStrategy}']), 'Manual');
    await kova.k(['patch', 'inst', 'web-1', '-n', 'demo', '--type=json', '-p', '[{"op":"replace","path":"/spec/runStrategy","value":"Always"}]']);
    assert.equal(await kova.k(['get', 'inst', 'web-1', '-n', 'demo', '-o', 'jsonpath={.spec.runStrategy}']), 'Always');
    const bad = await kova.kubectl(['patch', 'inst', 'web-1', '-n', 'demo', '--type=json', '-p', '[{"op":"test","path":"/spec/runStrategy","value":"Nope"}]']);
    assert.notEqual(bad.code, 0);
    const smp = await kova.kubectl(['patch', 'inst', 'web-1', '-n', 'demo', '-p', '{"spec":{"runStrategy":"Manual"}}']);
    assert.notEqual(smp.code, 0);
    assert.match(smp.stderr, /strategic merge patch is not supported|not supported/i);
  });

  it('label, annotate, label and field selectors', async () => {
    await kova.k(['label', 'inst', 'web-1', '-n', 'demo', 'tier=frontend']);
    await kova.k(['annotate', 'inst', 'web-1', '-n', 'demo', 'owner=ops']);
    await kova.k(['apply', '-f', '-'], { input: instance('db-1', 'demo', { labels: { tier: 'backend' } }) });
    const sel = await kova.k(['get', 'inst', '-n', 'demo', '-l', 'tier in (frontend)', '-o', 'name']);
    assert.equal(sel.trim(), 'instance.kova.dev/web-1');
    const neg = await kova.k(['get', 'inst', '-n', 'demo', '-l', 'tier,tier!=frontend', '-o', 'name']);
    assert.equal(neg.trim(), 'instance.kova.dev/db-1');
    const fs = await kova.k(['get', 'inst', '-n', 'demo', '--field-selector', 'metadata.name=db-1', '-o', 'name']);
    assert.equal(fs.trim(), 'instance.kova.dev/db-1');
    const badField = await kova.kubectl(['get', 'inst', '-n', 'demo', '--field-selector', 'spec.image=tiny']);
    assert.notEqual(badField.code, 0);
    assert.match(badField.stderr, /field label not supported: spec\.image/);
    const shown = await kova.k(['get', 'inst', 'web-1', '-n', 'demo', '--show-labels']);
    assert.match(shown, /tier=frontend/);
  });

  it('replace needs the current resourceVersion (optimistic concurrency)', async () => {
    const obj = JSON.parse(await kova.k(['get', 'inst', 'db-1', '-n', 'demo', '-o', 'json']));
    obj.spec.runStrategy = 'Halted';
    await kova.k(['replace', '-f', '-'], { input: JSON.stringify(obj) });
    obj.spec.runStrategy = 'Manual'; // same stale resourceVersion
    const stale = await kova.kubectl(['replace', '-f', '-'], { input: JSON.stringify(obj) });
    assert.notEqual(stale.code, 0);
    assert.match(stale.stderr, /the object has been modified/);
  });

  it('explain reads the CRD schema through OpenAPI v3', async () => {
    const out = await kova.k(['explain', 'instance.spec.runStrategy']);
    assert.match(out, /KIND:\s+Instance/);
    assert.match(out, /FIELD:\s+runStrategy/);
    assert.match(out, /Halted/);
  });

  it('invalid input gets a Status naming the field; nothing is stored', async () => {
    const bad = await kova.kubectl(['apply', '-f', '-'], { input: instance('bad-1', 'demo', {}, { runStrategy: 'Sometimes' }) });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /The Instance "bad-1" is invalid: spec\.runStrategy: Unsupported value: "Sometimes": supported values: "Always", "Halted", "Manual", "RerunOnFailure"/);
    const unknown = await kova.kubectl(['apply', '-f', '-'], { input: instance('bad-2', 'demo', {}, { cpus: 4 }) });
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /unknown field "spec\.cpus"/);
    const flavor = await kova.kubectl(['apply', '-f', '-'], { input: 'apiVersion: kova.dev/v1alpha1\nkind: Flavor\nmetadata: {name: bad}\nspec: {vcpus: 0, memory: 1Gi, disk: 1Gi}\n' });
    assert.notEqual(flavor.code, 0);
    assert.match(flavor.stderr, /spec\.vcpus/);
    const get = await kova.kubectl(['get', 'inst', 'bad-1', 'bad-2', '-n', 'demo']);
    assert.match(get.stderr, /"bad-1" not found/);
    assert.match(get.stderr, /"bad-2" not found/);
  });

  it('dry-run=server and diff change nothing', async () => {
    const dry = await kova.k(['apply', '--dry-run=server', '-f', '-'], { input: instance('dry-1', 'demo') });
    assert.match(dry, /dry-1 created \(server dry run\)/);
    const none = await kova.kubectl(['get', 'inst', 'dry-1', '-n', 'demo']);
    assert.notEqual(none.code, 0);
    const diff = await kova.kubectl(['diff', '-f', '-'], { input: instance('web-1', 'demo', {}, { runStrategy: 'Halted' }) });
    assert.equal(diff.code, 1, diff.stderr);
    assert.match(diff.stdout, /\+\s+runStrategy: Halted/);
    assert.equal(await kova.k(['get', 'inst', 'web-1', '-n', 'demo', '-o', 'jsonpath={.spec.runStrategy}']), 'Always');
    await kova.k(['delete', 'inst', 'web-1', '-n', 'demo', '--dry-run=server']);
    await kova.k(['get', 'inst', 'web-1', '-n', 'demo']);
  });

  it('status subresource: status writes are separate and do not bump generation; kubectl wait sees conditions', async () => {
    const before = JSON.parse(await kova.k(['get', 'inst', 'db-1', '-n', 'demo', '-o', 'json']));
    await kova.k(['patch', 'inst', 'db-1', '-n', 'demo', '--type=merge', '-p', '{"status":{"phase":"Running"}}']);
    assert.equal(await kova.k(['get', 'inst', 'db-1', '-n', 'demo', '-o', 'jsonpath={.status.phase}']), 'Pending', 'the main resource ignores status; new instances start Pending');
    const waiter = kova.spawnKubectl(['wait', 'inst/db-1', '-n', 'demo', '--for=condition=Ready', '--timeout=30s']);
    await new Promise((r) => setTimeout(r, 500));
    const status = { status: { phase: 'Running', observedGeneration: before.metadata.generation, conditions: [{ type: 'Ready', status: 'True', reason: 'Booted', message: 'guest is up', lastTransitionTime: new Date().toISOString().replace(/\.\d+Z/, 'Z') }] } };
    await kova.k(['patch', 'inst', 'db-1', '-n', 'demo', '--subresource=status', '--type=merge', '-p', JSON.stringify(status)]);
    await eventually(() => waiter.proc.exitCode !== null, 20_000, 'kubectl wait to finish');
    assert.equal(waiter.proc.exitCode, 0, waiter.output());
    assert.match(waiter.output(), /condition met/);
    const afterObj = JSON.parse(await kova.k(['get', 'inst', 'db-1', '-n', 'demo', '-o', 'json']));
    assert.equal(afterObj.metadata.generation, before.metadata.generation);
    assert.equal(afterObj.status.phase, 'Running');
  });

  it('get -w streams changes as table rows', async () => {
    const w = kova.spawnKubectl(['get', 'inst', '-n', 'demo', '-w']);
    await eventually(() => /web-1/.test(w.output()), 10_000, 'initial watch rows');
    await kova.k(['label', 'inst', 'web-1', '-n', 'demo', 'watched=yes']);
    await kova.k(['apply', '-f', '-'], { input: instance('late-1', 'demo') });
    await eventually(() => /late-1/.test(w.output()), 10_000, 'watch event for late-1');
    const rows = w.output().split('\n').filter((l) => /web-1/.test(l));
    assert.ok(rows.length >= 2, w.output());
    await w.stop();
  });

  it('pagination: --chunk-size follows continue tokens', async () => {
    const docs = Array.from({ length: 25 }, (_, i) => `apiVersion: kova.dev/v1alpha1\nkind: Flavor\nmetadata: {name: page.f${String(i).padStart(2, '0')}}\nspec: {vcpus: 1, memory: 1Gi, disk: 1Gi}\n`);
    await kova.k(['apply', '-f', '-'], { input: docs.join('---\n') });
    const r = await kova.kubectl(['get', 'flavors', '--chunk-size=10', '-o', 'name', '-v=6']);
    assert.equal(r.code, 0, r.stderr);
    const names = r.stdout.trim().split('\n').filter((l) => l.includes('page.f'));
    assert.equal(names.length, 25);
    assert.ok((r.stderr.match(/continue=/g) ?? []).length >= 2, 'expected at least two continued pages');
  });

  it('delete waits for finalizers; the object goes when the last one is removed', async () => {
    await kova.k(['apply', '-f', '-'], { input: instance('fin-1', 'demo', { finalizers: ['kova.dev/test'] }) });
    const del = kova.spawnKubectl(['delete', 'inst', 'fin-1', '-n', 'demo', '--timeout=60s']);
    await eventually(async () => (await kova.k(['get', 'inst', 'fin-1', '-n', 'demo', '-o', 'jsonpath={.metadata.deletionTimestamp}'])) !== '', 10_000, 'deletionTimestamp');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(del.proc.exitCode, null, 'delete must still be waiting');
    const add = await kova.kubectl(['patch', 'inst', 'fin-1', '-n', 'demo', '--type=merge', '-p', '{"metadata":{"finalizers":["kova.dev/test","kova.dev/other"]}}']);
    assert.notEqual(add.code, 0, 'no new finalizers while deleting');
    await kova.k(['patch', 'inst', 'fin-1', '-n', 'demo', '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
    await eventually(() => del.proc.exitCode !== null, 15_000, 'kubectl delete to return');
    assert.equal(del.proc.exitCode, 0, del.output());
    const gone = await kova.kubectl(['get', 'inst', 'fin-1', '-n', 'demo']);
    assert.match(gone.stderr, /not found/);
  });

  it('ownerReferences: background, foreground and orphan deletion', async () => {
    const mk = async (name: string, ownerName?: string) => {
      const meta: Record<string, unknown> = {};
      if (ownerName) {
        const uid = await kova.k(['get', 'inst', ownerName, '-n', 'demo', '-o', 'jsonpath={.metadata.uid}']);
        meta.ownerReferences = [{ apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', name: ownerName, uid, blockOwnerDeletion: true }];
      }
      await kova.k(['apply', '-f', '-'], { input: instance(name, 'demo', meta) });
    };
    await mk('owner-bg');
    await mk('dep-bg', 'owner-bg');
    await kova.k(['delete', 'inst', 'owner-bg', '-n', 'demo']);
    await eventually(async () => (await kova.kubectl(['get', 'inst', 'dep-bg', '-n', 'demo'])).code !== 0, 15_000, 'background GC of dep-bg');

    await mk('owner-fg');
    await mk('dep-fg', 'owner-fg');
    await kova.k(['delete', 'inst', 'owner-fg', '-n', 'demo', '--cascade=foreground', '--timeout=30s']);
    assert.notEqual((await kova.kubectl(['get', 'inst', 'dep-fg', '-n', 'demo'])).code, 0);

    await mk('owner-or');
    await mk('dep-or', 'owner-or');
    await kova.k(['delete', 'inst', 'owner-or', '-n', 'demo', '--cascade=orphan', '--timeout=30s']);
    const orphan = JSON.parse(await kova.k(['get', 'inst', 'dep-or', '-n', 'demo', '-o', 'json']));
    assert.equal(orphan.metadata.ownerReferences, undefined);
  });

  it('namespaces isolate objects and deleting one cascades', async () => {
    await kova.k(['apply', '-f', '-'], { input: 'apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: team-b}\n' });
    await kova.k(['apply', '-f', '-'], { input: instance('same', 'team-a', { finalizers: ['kova.dev/hold'] }) });
    await kova.k(['apply', '-f', '-'], { input: instance('same', 'team-b', {}, { runStrategy: 'Halted' }) });
    assert.equal(await kova.k(['get', 'inst', 'same', '-n', 'team-a', '-o', 'jsonpath={.spec.runStrategy}']), 'Always');
    assert.equal(await kova.k(['get', 'inst', 'same', '-n', 'team-b', '-o', 'jsonpath={.spec.runStrategy}']), 'Halted');
    const inA = await kova.k(['get', 'inst', '-n', 'team-a', '-o', 'name']);
    assert.equal(inA.trim(), 'instance.kova.dev/same');
    await kova.k(['delete', 'namespace', 'team-a', '--wait=false']);
    assert.equal(await kova.k(['get', 'ns', 'team-a', '-o', 'jsonpath={.status.phase}']), 'Terminating');
    const refused = await kova.kubectl(['apply', '-f', '-'], { input: instance('new', 'team-a') });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /being terminated/);
    await kova.k(['patch', 'inst', 'same', '-n', 'team-a', '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
    await eventually(async () => (await kova.kubectl(['get', 'ns', 'team-a'])).code !== 0, 20_000, 'namespace team-a removed');
    await kova.k(['get', 'inst', 'same', '-n', 'team-b']);
    const missing = await kova.kubectl(['apply', '-f', '-'], { input: instance('x', 'nowhere') });
    assert.match(missing.stderr, /namespaces "nowhere" not found/);
  });

  it('built-in kinds: Lease and Namespace apply (strategic merge), Events in describe', async () => {
    const lease = (holder: string) => `apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: l1, namespace: kova-system}\nspec: {holderIdentity: ${holder}, leaseDurationSeconds: 15}\n`;
    await kova.k(['apply', '-f', '-'], { input: lease('a') });
    assert.match(await kova.k(['apply', '-f', '-'], { input: lease('b') }), /configured/);
    assert.equal(await kova.k(['get', 'lease', 'l1', '-n', 'kova-system', '-o', 'jsonpath={.spec.holderIdentity}']), 'b');
    await kova.k(['label', 'ns', 'demo', 'env=test']);
    const uid = await kova.k(['get', 'inst', 'web-1', '-n', 'demo', '-o', 'jsonpath={.metadata.uid}']);
    const ev = {
      apiVersion: 'v1', kind: 'Event', metadata: { name: 'web-1.scheduled', namespace: 'demo' },
      involvedObject: { apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', name: 'web-1', namespace: 'demo', uid },
      reason: 'Scheduled', message: 'placed on node-1', type: 'Normal', source: { component: 'kova-scheduler' },
      firstTimestamp: new Date().toISOString().replace(/\.\d+Z/, 'Z'), lastTimestamp: new Date().toISOString().replace(/\.\d+Z/, 'Z'), count: 1,
    };
    await kova.k(['create', '-f', '-'], { input: JSON.stringify(ev) });
    const desc = await kova.k(['describe', 'inst', 'web-1', '-n', 'demo']);
    assert.match(desc, /Events:/);
    assert.match(desc, /Scheduled\s+.*placed on node-1/);
    const events = await kova.k(['events', '-n', 'demo', '--for', 'instance/web-1']);
    assert.match(events, /placed on node-1/);
  });

  it('kubectl create generators (protobuf bodies): namespace, configmap, secret', async () => {
    await kova.k(['create', 'namespace', 'gen']);
    assert.equal(await kova.k(['get', 'ns', 'gen', '-o', 'jsonpath={.status.phase}']), 'Active');
    await kova.k(['create', 'configmap', 'cm1', '-n', 'gen', '--from-literal=a=1']);
    assert.equal(await kova.k(['get', 'cm', 'cm1', '-n', 'gen', '-o', 'jsonpath={.data.a}']), '1');
    await kova.k(['create', 'secret', 'generic', 's1', '-n', 'gen', '--from-literal=pw=hunter2']);
    const s = JSON.parse(await kova.k(['get', 'secret', 's1', '-n', 'gen', '-o', 'json']));
    assert.equal(Buffer.from(s.data.pw, 'base64').toString(), 'hunter2');
    assert.equal(s.type, 'Opaque');
  });

  it('edit goes through the same validation and patch path', async () => {
    const r = await kova.kubectl(['edit', 'inst', 'web-1', '-n', 'demo'], { env: { KUBE_EDITOR: 'sed -i -e s/runStrategy:.*/runStrategy:\\ Halted/' } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await kova.k(['get', 'inst', 'web-1', '-n', 'demo', '-o', 'jsonpath={.spec.runStrategy}']), 'Halted');
  });

  it('authentication and authorization answers', async () => {
    const bad = await kova.kubectl(['get', 'inst', '-n', 'demo', '--token', 'wrong']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /Unauthorized|must be logged in/);
    assert.equal((await kova.k(['auth', 'can-i', 'create', 'instances.kova.dev', '-n', 'demo'])).trim(), 'yes');
  });
});
