// Issue #12 end to end: values that used to be admitted and then corrupted host accounting or
// failed on a host are refused by the real API server with a 422 naming the field, as real
// kubectl shows it; and the binding subresource never charges a negative request, even for an
// object that reached etcd around admission.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { KObject } from '../api/types.js';
import { startControlPlane } from '../cli/control-plane.js';
import type { ControlPlane } from '../cli/control-plane.js';
import { apiClient } from './api-client.js';
import { KUBECTL } from './harness.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const KOVA = '/apis/kova.dev/v1alpha1';
const NS = 'bounds';

describe('admission refuses bad resource and network values', () => {
  let cp: ControlPlane;
  let dir: string;
  let api: Awaited<ReturnType<typeof apiClient>>;

  const kubectl = (args: string[], input: string) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(KUBECTL, ['--kubeconfig', cp.kubeconfig, '--cache-dir', join(dir, 'kubectl-cache'), ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
        resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) || 1 : 0, stdout: String(stdout), stderr: String(stderr) });
      });
      child.stdin!.on('error', () => undefined); // kubectl may refuse before reading it
      child.stdin!.end(input);
    });

  /** kubectl create at -v=6 logs each response's status line, so the 422 itself is visible. */
  const refused = async (yaml: string, kind: string, name: string, field: string, message: string) => {
    const r = await kubectl(['create', '-v=6', '-f', '-'], yaml);
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stderr, / 422 Unprocessable Entity in \d+ milliseconds/, r.stderr);
    assert.ok(r.stderr.includes(`${kind} "${name}" is invalid: ${field}: ${message}`), r.stderr);
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kova-bounds-'));
    cp = await startControlPlane({ dataDir: dir, listen: '127.0.0.1:0' });
    api = await apiClient(cp.kubeconfig);
    assert.equal((await api('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } })).code, 201);
  });
  after(async () => {
    await cp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('kubectl gets a 422 naming the field for negative memory and for a multicast MAC', async () => {
    await refused(
      `apiVersion: kova.dev/v1alpha1\nkind: Instance\nmetadata: {name: neg, namespace: ${NS}}\nspec: {image: tiny, resources: {vcpus: 1, memory: -51539607552, disk: 1Gi}}\n`,
      'Instance', 'neg', 'spec.resources.memory',
      'Invalid value: -51539607552: spec.resources.memory in body should be greater than or equal to 16Mi',
    );
    await refused(
      'apiVersion: kova.dev/v1alpha1\nkind: Flavor\nmetadata: {name: neg.disk}\nspec: {vcpus: 1, memory: 1Gi, disk: "-1Gi"}\n',
      'Flavor', 'neg.disk', 'spec.disk',
      'Invalid value: "-1Gi": spec.disk in body should be greater than or equal to 1Mi',
    );
    await refused(
      `apiVersion: kova.dev/v1alpha1\nkind: Port\nmetadata: {name: mcast, namespace: ${NS}}\nspec: {network: private, mac: "01:00:5e:00:00:01"}\n`,
      'Port', 'mcast', 'spec.mac',
      'Invalid value: "01:00:5e:00:00:01": must be a unicast MAC address (the least significant bit of the first octet is set: a multicast address)',
    );
    // Nothing was stored.
    assert.equal((await api('GET', `${KOVA}/namespaces/${NS}/instances/neg`)).code, 404);
    assert.equal((await api('GET', `${KOVA}/namespaces/${NS}/ports/mcast`)).code, 404);
  });

  it('the binder refuses to charge a negative request that got past admission', async () => {
    const reg = cp.resources.registry;
    const rs = cp.resources;
    const hosts = reg.byKind('kova.dev', 'Host')!;
    const instances = reg.byKind('kova.dev', 'Instance')!;
    const flavors = reg.byKind('kova.dev', 'Flavor')!;
    assert.equal((await api('POST', `${KOVA}/hosts`, { apiVersion: 'kova.dev/v1alpha1', kind: 'Host', metadata: { name: 'h1' } })).code, 201);
    const allocatable = { vcpus: 16, memory: '48Gi', disk: '500Gi' };
    const s = await api('PATCH', `${KOVA}/hosts/h1/status`, { status: { capacity: allocatable, allocatable } }, 'application/merge-patch+json');
    assert.equal(s.code, 200, JSON.stringify(s.body));

    // Written straight to etcd, as an object stored before admission checked bounds would be.
    const raw = (name: string, spec: Obj): KObject => ({
      apiVersion: 'kova.dev/v1alpha1', kind: 'Instance',
      metadata: { name, namespace: NS, uid: `uid-${name}`, creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), generation: 1 },
      spec, status: { phase: 'Pending' },
    });
    await rs.store.create(rs.key(instances, NS, 'neg'), raw('neg', { image: 'tiny', resources: { vcpus: 1, memory: -51539607552, disk: '1Gi' } }));
    await rs.store.create(rs.key(flavors, undefined, 'bad'), { apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: { name: 'bad', uid: 'uid-bad', generation: 1 }, spec: { vcpus: 1, memory: '1Gi', disk: '-10Gi' } });
    await rs.store.create(rs.key(instances, NS, 'negflavor'), raw('negflavor', { image: 'tiny', flavor: 'bad' }));

    const bind = (name: string) => api('POST', `${KOVA}/namespaces/${NS}/instances/${name}/binding`, { apiVersion: 'kova.dev/v1alpha1', kind: 'Binding', metadata: { name }, target: { name: 'h1' } });
    const r1 = await bind('neg');
    assert.equal(r1.code, 409, JSON.stringify(r1.body));
    assert.equal(r1.body.message, 'Operation cannot be fulfilled on instances.kova.dev "neg": cannot size the instance: spec.resources requests memory -48Gi; every request must be a finite amount of at least 0');
    // The stored object, not the Binding request, is at fault: a 409 whose cause names the field.
    assert.deepEqual(r1.body.details.causes, [{ reason: 'InvalidResources', message: 'spec.resources requests memory -48Gi; it must be a finite amount of at least 0', field: 'spec.resources.memory' }]);
    const r2 = await bind('negflavor');
    assert.equal(r2.code, 409, JSON.stringify(r2.body));
    assert.match(r2.body.message, /cannot size the instance: flavor bad requests disk -10Gi; every request must be a finite amount of at least 0$/);
    assert.deepEqual(r2.body.details.causes.map((c: Obj) => [c.reason, c.field]), [['InvalidResources', 'spec.flavor']]);

    const h = (await api('GET', `${KOVA}/hosts/h1`)).body;
    assert.equal(h.status.allocations, undefined, 'nothing charged');
    assert.equal((await api('GET', `${KOVA}/namespaces/${NS}/instances/neg`)).body.status.hostName, undefined, 'nothing bound');
  });
});
