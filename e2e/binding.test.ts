// The Instance binding subresource against a real control plane: atomic placement and
// accounting, idempotence, refusal when full, and no overbooking under concurrent binds.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { bindingFailure, BindingCauses } from '../api/binding.js';
import { startControlPlane } from '../cli/control-plane.js';
import type { ControlPlane } from '../cli/control-plane.js';
import { apiClient } from './api-client.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const KOVA = '/apis/kova.dev/v1alpha1';

describe('instance binding subresource', () => {
  let cp: ControlPlane;
  let dir: string;
  let api: Awaited<ReturnType<typeof apiClient>>;

  const host = async (name: string, allocatable: Obj, extra: Obj = {}) => {
    const r = await api('POST', `${KOVA}/hosts`, { apiVersion: 'kova.dev/v1alpha1', kind: 'Host', metadata: { name }, spec: extra });
    assert.equal(r.code, 201, JSON.stringify(r.body));
    const s = await api('PATCH', `${KOVA}/hosts/${name}/status`, { status: { capacity: allocatable, allocatable } }, 'application/merge-patch+json');
    assert.equal(s.code, 200, JSON.stringify(s.body));
  };
  const instance = async (name: string, spec: Obj = { flavor: 'small', image: 'tiny' }) => {
    const r = await api('POST', `${KOVA}/namespaces/bind/instances`, { apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', metadata: { name }, spec });
    assert.equal(r.code, 201, JSON.stringify(r.body));
    return r.body;
  };
  const bind = (name: string, target: string) =>
    api('POST', `${KOVA}/namespaces/bind/instances/${name}/binding`, { apiVersion: 'kova.dev/v1alpha1', kind: 'Binding', metadata: { name }, target: { name: target } });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kova-binding-'));
    cp = await startControlPlane({ dataDir: dir, listen: '127.0.0.1:0' });
    api = await apiClient(cp.kubeconfig);
    assert.equal((await api('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bind' } })).code, 201);
    const f = await api('POST', `${KOVA}/flavors`, { apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: { name: 'small' }, spec: { vcpus: 1, memory: '512Mi', disk: '1Gi' } });
    assert.equal(f.code, 201);
  });
  after(async () => {
    await cp?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('binds, charges the host, adds the finalizer, and is idempotent', async () => {
    await host('h1', { vcpus: 4, memory: '2Gi', disk: '10Gi' });
    await instance('a');
    const r = await bind('a', 'h1');
    assert.equal(r.code, 201, JSON.stringify(r.body));
    assert.equal(r.body.status.hostName, 'h1');
    assert.equal(r.body.status.phase, 'Provisioning');
    assert.ok(r.body.metadata.finalizers.includes('kova.dev/instance-protection'));
    const cond = r.body.status.conditions.find((c: Obj) => c.type === 'Scheduled');
    assert.equal(cond.status, 'True');

    const h = (await api('GET', `${KOVA}/hosts/h1`)).body;
    assert.deepEqual(h.status.allocated, { vcpus: 1, memory: '512Mi', disk: '1Gi' });
    assert.equal(h.status.allocations.length, 1);
    assert.equal(h.status.allocations[0].instance, 'bind/a');
    assert.equal(h.status.allocations[0].uid, r.body.metadata.uid);

    const again = await bind('a', 'h1');
    assert.equal(again.code, 200);
    assert.equal((await api('GET', `${KOVA}/hosts/h1`)).body.status.allocations.length, 1);

    const elsewhere = await bind('a', 'h2');
    assert.equal(elsewhere.code, 404, 'unknown host');
    assert.deepEqual(bindingFailure(elsewhere.code, elsewhere.body).map((c) => c.reason), [BindingCauses.HostNotFound]);
    await host('h2', { vcpus: 4, memory: '2Gi', disk: '10Gi' });
    const moved = await bind('a', 'h2');
    assert.equal(moved.code, 409);
    assert.match(moved.body.message, /already bound to host h1/);
    assert.deepEqual(moved.body.details, {
      name: 'a', group: 'kova.dev', kind: 'instances',
      causes: [{ reason: 'AlreadyBound', message: 'bound to host h1', field: 'status.hostName' }],
    });
    const missing = await bind('nosuch', 'h1');
    assert.equal(missing.code, 404);
    assert.deepEqual(bindingFailure(missing.code, missing.body).map((c) => c.reason), [BindingCauses.InstanceNotFound]);
  });

  it('refuses a host without room with a message naming the resource', async () => {
    await host('tiny-host', { vcpus: 1, memory: '256Mi', disk: '10Gi' });
    await instance('big');
    const r = await bind('big', 'tiny-host');
    assert.equal(r.code, 409);
    assert.equal(r.body.reason, 'Conflict');
    assert.match(r.body.message, /^insufficient memory \(requested 512Mi, free 256Mi\) on host tiny-host$/);
    assert.deepEqual(r.body.details, {
      name: 'big', group: 'kova.dev', kind: 'instances',
      causes: [{ reason: 'InsufficientMemory', message: 'insufficient memory (requested 512Mi, free 256Mi) on host tiny-host', field: 'spec.flavor' }],
    });
    const i = (await api('GET', `${KOVA}/namespaces/bind/instances/big`)).body;
    assert.equal(i.status?.hostName, undefined, 'nothing half-applied');

    // One cause per short dimension, naming the request's field.
    await instance('wide', { resources: { vcpus: 2, memory: '1Gi', disk: '1Gi' }, image: 'tiny' });
    const both = await bind('wide', 'tiny-host');
    assert.equal(both.code, 409);
    assert.equal(both.body.message, 'insufficient vcpus (requested 2, free 1), memory (requested 1Gi, free 256Mi) on host tiny-host');
    assert.deepEqual(bindingFailure(both.code, both.body), [
      { reason: 'InsufficientVCPUs', message: 'insufficient vcpus (requested 2, free 1) on host tiny-host', field: 'spec.resources.vcpus' },
      { reason: 'InsufficientMemory', message: 'insufficient memory (requested 1Gi, free 256Mi) on host tiny-host', field: 'spec.resources.memory' },
    ]);
  });

  it('refuses hosts that take no instances with a cause saying why', async () => {
    const reasons = (r: { code: number; body: Obj }) => bindingFailure(r.code, r.body).map((c) => c.reason);
    await instance('w');
    // Registered, but its host controller has not reported allocatable resources yet.
    const r0 = await api('POST', `${KOVA}/hosts`, { apiVersion: 'kova.dev/v1alpha1', kind: 'Host', metadata: { name: 'unreported' } });
    assert.equal(r0.code, 201);
    const unreported = await bind('w', 'unreported');
    assert.equal(unreported.code, 409);
    assert.match(unreported.body.message, /^insufficient resources: the host reports no allocatable resources yet$/);
    assert.deepEqual(reasons(unreported), [BindingCauses.NoAllocatable]);

    await host('fenced', { vcpus: 4, memory: '2Gi', disk: '10Gi' }, { fenced: true });
    const fenced = await bind('w', 'fenced');
    assert.equal(fenced.code, 409);
    assert.match(fenced.body.message, /host fenced is fenced$/);
    assert.deepEqual(reasons(fenced), [BindingCauses.HostFenced]);

    await host('down', { vcpus: 4, memory: '2Gi', disk: '10Gi' });
    const cond = { type: 'Ready', status: 'False', reason: 'HeartbeatExpired', message: 'no heartbeat', lastTransitionTime: '2024-01-01T00:00:00Z' };
    assert.equal((await api('PATCH', `${KOVA}/hosts/down/status`, { status: { conditions: [cond] } }, 'application/merge-patch+json')).code, 200);
    const down = await bind('w', 'down');
    assert.equal(down.code, 409);
    assert.match(down.body.message, /host down is not ready \(HeartbeatExpired\)$/);
    assert.deepEqual(reasons(down), [BindingCauses.HostNotReady]);

    await instance('noflavor', { flavor: 'nope', image: 'tiny' });
    const noflavor = await bind('noflavor', 'h1');
    assert.equal(noflavor.code, 409);
    assert.deepEqual(bindingFailure(noflavor.code, noflavor.body), [{ reason: BindingCauses.FlavorNotFound, message: 'flavor "nope" not found', field: 'spec.flavor' }]);

    const i = (await api('GET', `${KOVA}/namespaces/bind/instances/w`)).body;
    assert.equal(i.status?.hostName, undefined, 'nothing bound');
  });

  it('rejects malformed bindings with a Status naming the field', async () => {
    await instance('m');
    const r = await api('POST', `${KOVA}/namespaces/bind/instances/m/binding`, { kind: 'Binding', target: { name: 'Bad_Host' } });
    assert.equal(r.code, 422);
    assert.equal(r.body.details.causes[0].field, 'target.name');
    const wrong = await api('POST', `${KOVA}/namespaces/bind/instances/m/binding`, { kind: 'Binding', metadata: { name: 'other' }, target: { name: 'h1' } });
    assert.equal(wrong.code, 400);
    assert.equal((await api('GET', `${KOVA}/namespaces/bind/instances/m/binding`)).code, 405);
  });

  it('never overbooks under 40 concurrent binds to one host', async () => {
    await host('race', { vcpus: 64, memory: '5Gi', disk: '100Gi' }); // room for 10 × 512Mi
    const names = Array.from({ length: 40 }, (_, i) => `r${i}`);
    await Promise.all(names.map((n) => instance(n)));
    const results = await Promise.all(names.map((n) => bind(n, 'race')));
    const ok = results.filter((r) => r.code === 201).length;
    const full = results.filter((r) => r.code === 409 && /^insufficient memory/.test(r.body.message)
      && bindingFailure(r.code, r.body).map((c) => c.reason).join() === BindingCauses.InsufficientMemory).length;
    assert.equal(ok, 10, JSON.stringify(results.filter((r) => r.code !== 201 && r.code !== 409).map((r) => r.body)));
    assert.equal(full, 30);
    const h = (await api('GET', `${KOVA}/hosts/race`)).body;
    assert.equal(h.status.allocations.length, 10);
    assert.deepEqual(h.status.allocated, { vcpus: 10, memory: '5Gi', disk: '10Gi' });
  });

  it('is listed in discovery', async () => {
    const d = (await api('GET', `${KOVA}`)).body;
    assert.ok(d.resources.some((r: Obj) => r.name === 'instances/binding' && r.verbs.includes('create')));
  });
});
