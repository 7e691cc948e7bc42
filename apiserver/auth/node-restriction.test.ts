// NodeRestriction against objects stored in a real etcd: what node agent "host-a" may write
// (its Host, its Lease, instances and ports bound to it, its own Network condition, Events) and
// what it may not (host-b's objects, anything else), as a table.
import { startTestResourceStore } from '../../testing/resource-store.js';
import type { TestResourceStore } from '../../testing/resource-store.js';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { defaultCrdDir, Registry } from '../../api/registry.js';
import type { KObject } from '../../api/types.js';
import { Validator } from '../../api/validation.js';
import { Store } from '../../store/store.js';
import type { TestEtcd } from '../../testing/etcd.js';
import { ResourceStore } from '../resource-store.js';
import { ApiError } from '../status.js';
import { NodeRestriction, nodeHostOf } from './node-restriction.js';
import type { RequestAttributes, UserInfo } from './types.js';
import { NODES_GROUP, SYSTEM_AUTHENTICATED, nodeUserName } from './types.js';

let env: TestResourceStore;
let store: Store;
let rs: ResourceStore;
let nr: NodeRestriction;
const nodeA: UserInfo = { name: nodeUserName('host-a'), groups: [NODES_GROUP, SYSTEM_AUTHENTICATED] };
const stored = new Map<string, KObject>();

const GV: Record<string, [string, string]> = {
  hosts: ['kova.dev', 'v1alpha1'], instances: ['kova.dev', 'v1alpha1'], ports: ['kova.dev', 'v1alpha1'], networks: ['kova.dev', 'v1alpha1'],
  volumes: ['kova.dev', 'v1alpha1'], volumesnapshots: ['kova.dev', 'v1alpha1'], migrations: ['kova.dev', 'v1alpha1'],
  flavors: ['kova.dev', 'v1alpha1'], leases: ['coordination.k8s.io', 'v1'], events: ['', 'v1'], namespaces: ['', 'v1'],
};

async function put(resource: string, ns: string | undefined, body: Record<string, unknown>, status?: Record<string, unknown>) {
  const [g, v] = GV[resource]!;
  const info = rs.registry.lookup(g, v, resource)!;
  let obj = await rs.create(info, ns, { apiVersion: g ? `${g}/${v}` : v, kind: info.kind, ...body } as KObject);
  if (status) obj = await rs.update(info, ns, obj.metadata.name!, { ...obj, status } as KObject, { subresource: 'status' });
  stored.set(`${resource}/${ns ?? ''}/${obj.metadata.name}`, obj);
  return obj;
}

before(async () => {
  env = await startTestResourceStore();
  store = env.store;
  const registry = env.registry;
  rs = env.resources;
  for (const name of ['kova-system', 'demo']) await put('namespaces', undefined, { metadata: { name } });
  const { waitFor } = await import('../../testing/etcd.js');
  await waitFor(async () => (await rs.namespaces.state('demo')) === 'active', 'namespace cache');
  for (const h of ['host-a', 'host-b']) await put('hosts', undefined, { metadata: { name: h }, spec: {} });
  await put('instances', 'demo', { metadata: { name: 'on-a' }, spec: { flavor: 'm1.tiny', image: 'tiny' } }, { hostName: 'host-a', phase: 'Provisioning' });
  await put('instances', 'demo', { metadata: { name: 'on-b' }, spec: { flavor: 'm1.tiny', image: 'tiny' } }, { hostName: 'host-b', phase: 'Provisioning' });
  await put('instances', 'demo', { metadata: { name: 'unbound' }, spec: { flavor: 'm1.tiny', image: 'tiny' } });
  await put('networks', 'demo', { metadata: { name: 'net' }, spec: { type: 'flat', cidr: '10.9.0.0/24' } }, {
    conditions: [
      { type: 'host.kova.dev/host-a', status: 'False', reason: 'Pending', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' },
      { type: 'host.kova.dev/host-b', status: 'True', reason: 'Configured', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' },
    ],
  });
  await put('ports', 'demo', { metadata: { name: 'port-a' }, spec: { network: 'net' } }, { hostName: 'host-a', instance: 'on-a' });
  await put('ports', 'demo', { metadata: { name: 'port-b' }, spec: { network: 'net' } }, { hostName: 'host-b', instance: 'on-b' });
  const vol = (name: string, annotations?: Record<string, string>, finalizers?: string[]) => ({ metadata: { name, ...(annotations ? { annotations } : {}), ...(finalizers ? { finalizers } : {}) }, spec: { size: '1Gi', volumeType: 'local' } });
  await put('volumes', 'demo', vol('vol-a'), { hostName: 'host-a', phase: 'Available' });
  await put('volumes', 'demo', vol('vol-fin-a', undefined, ['kova.dev/volume-protection']), { hostName: 'host-a', phase: 'InUse' });
  await put('volumes', 'demo', vol('vol-sel-a', { 'kova.dev/selected-host': 'host-a' }));
  await put('volumes', 'demo', vol('vol-b'), { hostName: 'host-b', phase: 'Available' });
  await put('volumes', 'demo', vol('vol-sel-b', { 'kova.dev/selected-host': 'host-b' }));
  await put('volumes', 'demo', vol('vol-none'));
  const snap = (name: string) => ({ metadata: { name }, spec: { source: { volume: 'vol-a' } } });
  await put('volumesnapshots', 'demo', snap('snap-free'));
  await put('volumesnapshots', 'demo', snap('snap-a'), { hostName: 'host-a', readyToUse: false });
  await put('volumesnapshots', 'demo', snap('snap-b'), { hostName: 'host-b', readyToUse: true });
  const mig = (name: string) => ({ metadata: { name }, spec: { instance: 'on-a' } });
  const decided = (sourceHost: string, targetHost?: string) => ({ phase: 'PreparingTarget', instanceUID: 'uid-1', sourceHost, ...(targetHost ? { targetHost } : {}), mode: 'Live', storage: 'BlockCopy' });
  await put('migrations', 'demo', mig('mig-from-a'), decided('host-a', 'host-b'));
  await put('migrations', 'demo', mig('mig-to-a'), decided('host-b', 'host-a'));
  await put('migrations', 'demo', mig('mig-b-c'), decided('host-b', 'host-c'));
  await put('migrations', 'demo', mig('mig-scheduling'), { phase: 'Scheduling', sourceHost: 'host-a' });
  await put('migrations', 'demo', mig('mig-new'));
  nr = new NodeRestriction();
});

after(async () => {
  await env?.stop();
});

function attrs(verb: string, resource: string, ns: string, name: string, subresource = '', user = nodeA): RequestAttributes {
  const [apiGroup, apiVersion] = GV[resource]!;
  return { user, verb, resourceRequest: true, path: '/', apiGroup, apiVersion, resource, subresource, namespace: ns, name };
}

/** The object the agent would PUT: the stored one, changed by `edit`. */
function changed(resource: string, ns: string, name: string, edit: (o: Record<string, any>) => void): KObject {
  const o = structuredClone(stored.get(`${resource}/${ns}/${name}`)!) as Record<string, any>;
  edit(o);
  return o as KObject;
}

/**
 * What the server makes of a node's request: admit() on the request, then, for an update or
 * patch, admitResult() on the result against the stored object (a missing one is the store's
 * 404 before that). A patch's result is the stored object itself here unless `obj` is given.
 */
async function outcome(a: RequestAttributes, obj?: KObject): Promise<string> {
  try {
    await nr.admit(a, obj);
    if ((a.verb === 'update' || a.verb === 'patch') && ['instances', 'ports', 'networks', 'volumes', 'volumesnapshots', 'migrations'].includes(a.resource)) {
      const old = stored.get(`${a.resource}/${a.namespace}/${a.name}`);
      if (!old) return '404 not found';
      nr.admitResult(a, obj ?? old, old);
    }
    return 'allow';
  } catch (e) {
    assert.ok(e instanceof ApiError, String(e));
    assert.equal(e.code, 403);
    return `403 ${e.message}`;
  }
}

describe('NodeRestriction', () => {
  it('knows a node by its user name and the system:nodes group, as kube does', () => {
    assert.equal(nodeHostOf(nodeA), 'host-a');
    assert.equal(nodeHostOf({ name: 'system:node:host-a', groups: [SYSTEM_AUTHENTICATED] }), undefined);
    assert.equal(nodeHostOf({ name: 'alice', groups: [NODES_GROUP] }), undefined);
  });

  const lease = (host: string) => ({ metadata: { name: host, namespace: 'kova-system' }, spec: {} }) as unknown as KObject;
  const cases: Array<[string, () => [RequestAttributes, KObject?], RegExp | 'allow']> = [
    ['create its own Host', () => [attrs('create', 'hosts', '', ''), { metadata: { name: 'host-a' } } as unknown as KObject], 'allow'],
    ['update its own Host status', () => [attrs('update', 'hosts', '', 'host-a', 'status'), changed('hosts', '', 'host-a', (o) => (o.status = { capacity: {} }))], 'allow'],
    ['patch its own Host (tunnelIP)', () => [attrs('patch', 'hosts', '', 'host-a')], 'allow'],
    ['delete its own Host', () => [attrs('delete', 'hosts', '', 'host-a')], 'allow'],
    ['create host-b', () => [attrs('create', 'hosts', '', ''), { metadata: { name: 'host-b' } } as unknown as KObject], /^hosts\.kova\.dev "host-b" is forbidden: node "host-a" is not allowed to modify host "host-b"$/],
    ['update host-b status', () => [attrs('update', 'hosts', '', 'host-b', 'status'), changed('hosts', '', 'host-b', () => undefined)], /node "host-a" is not allowed to modify host "host-b"/],
    ['patch host-b', () => [attrs('patch', 'hosts', '', 'host-b')], /node "host-a" is not allowed to modify host "host-b"/],
    ['delete all hosts', () => [attrs('deletecollection', 'hosts', '', '')], /not allowed to deletecollection hosts/],
    ['create its own Lease', () => [attrs('create', 'leases', 'kova-system', ''), lease('host-a')], 'allow'],
    ['patch its own Lease', () => [attrs('patch', 'leases', 'kova-system', 'host-a')], 'allow'],
    ['patch host-b\'s Lease', () => [attrs('patch', 'leases', 'kova-system', 'host-b')], /^leases\.coordination\.k8s\.io "host-b" is forbidden: node "host-a" is not allowed to modify lease "kova-system\/host-b"/],
    ['create host-b\'s Lease', () => [attrs('create', 'leases', 'kova-system', ''), lease('host-b')], /not allowed to modify lease "kova-system\/host-b"/],
    ['patch the controllers\' Lease', () => [attrs('patch', 'leases', 'kova-system', 'kova-controllers')], /not allowed to modify lease/],
    ['a Lease named host-a elsewhere', () => [attrs('patch', 'leases', 'demo', 'host-a')], /not allowed to modify lease "demo\/host-a"/],
    ['update status of an instance bound to it', () => [attrs('update', 'instances', 'demo', 'on-a', 'status'), changed('instances', 'demo', 'on-a', (o) => (o.status.phase = 'Running'))], 'allow'],
    ['patch status of an instance bound to it', () => [attrs('patch', 'instances', 'demo', 'on-a', 'status')], 'allow'],
    ['patch (finalizer) an instance bound to it', () => [attrs('patch', 'instances', 'demo', 'on-a')], 'allow'],
    ['update status of an instance bound to host-b', () => [attrs('update', 'instances', 'demo', 'on-b', 'status'), changed('instances', 'demo', 'on-b', (o) => (o.status.phase = 'Failed'))],
      /^instances\.kova\.dev "on-b" is forbidden: node "host-a" can only modify instances bound to it \(status\.hostName "host-a"\); instance "demo\/on-b" is bound to "host-b"$/],
    ['patch status of an instance bound to host-b', () => [attrs('patch', 'instances', 'demo', 'on-b', 'status')], /instance "demo\/on-b" is bound to "host-b"/],
    ['patch status of an unbound instance', () => [attrs('patch', 'instances', 'demo', 'unbound', 'status')], /instance "demo\/unbound" is not bound/],
    ['patch status of a missing instance', () => [attrs('patch', 'instances', 'demo', 'nope', 'status')], /^not found$/],
    ['move its instance to host-b', () => [attrs('update', 'instances', 'demo', 'on-a', 'status'), changed('instances', 'demo', 'on-a', (o) => (o.status.hostName = 'host-b'))], /may not change status\.hostName of instance "demo\/on-a"/],
    ['change the spec of its instance', () => [attrs('update', 'instances', 'demo', 'on-a'), changed('instances', 'demo', 'on-a', (o) => (o.spec.image = 'other'))], /may not change the spec of instance "demo\/on-a"/],
    ['add a finalizer by update', () => [attrs('update', 'instances', 'demo', 'on-a'), changed('instances', 'demo', 'on-a', (o) => (o.metadata.finalizers = ['kova.dev/instance-protection']))], 'allow'],
    ['create an instance', () => [attrs('create', 'instances', 'demo', ''), { metadata: { name: 'x' }, spec: {} } as unknown as KObject], /node "host-a" is not allowed to create instances/],
    ['delete its instance', () => [attrs('delete', 'instances', 'demo', 'on-a')], /not allowed to delete instances "demo\/on-a"/],
    ['bind an instance', () => [attrs('create', 'instances', 'demo', 'unbound', 'binding'), { metadata: { name: 'unbound' } } as unknown as KObject], /not allowed to create instances\/binding/],
    ['update status of a port bound to it', () => [attrs('update', 'ports', 'demo', 'port-a', 'status'), changed('ports', 'demo', 'port-a', (o) => (o.status.device = 'tap0'))], 'allow'],
    ['update status of a port bound to host-b', () => [attrs('update', 'ports', 'demo', 'port-b', 'status'), changed('ports', 'demo', 'port-b', (o) => (o.status.device = 'tap0'))], /port "demo\/port-b" is bound to "host-b"/],
    ['patch a port\'s spec', () => [attrs('patch', 'ports', 'demo', 'port-a')], /not allowed to patch ports "demo\/port-a"/],
    ['set its own condition on a Network', () => [attrs('update', 'networks', 'demo', 'net', 'status'), changed('networks', 'demo', 'net', (o) => (o.status.conditions[0].status = 'True'))], 'allow'],
    ['set host-b\'s condition on a Network', () => [attrs('update', 'networks', 'demo', 'net', 'status'), changed('networks', 'demo', 'net', (o) => (o.status.conditions[1].status = 'False'))],
      /may only change its own condition host\.kova\.dev\/host-a in the status of network "demo\/net"/],
    ['patch a Network\'s status (its result is checked by admitResult)', () => [attrs('patch', 'networks', 'demo', 'net', 'status')], 'allow'],
    ['update status of a volume it stores', () => [attrs('update', 'volumes', 'demo', 'vol-a', 'status'), changed('volumes', 'demo', 'vol-a', (o) => (o.status.phase = 'InUse'))], 'allow'],
    ['patch status of a volume selected for it', () => [attrs('patch', 'volumes', 'demo', 'vol-sel-a', 'status')], 'allow'],
    ['take a volume selected for it (status.hostName itself)', () => [attrs('update', 'volumes', 'demo', 'vol-sel-a', 'status'), changed('volumes', 'demo', 'vol-sel-a', (o) => (o.status = { hostName: 'host-a', phase: 'Creating' }))], 'allow'],
    ['give a volume selected for it to host-b', () => [attrs('update', 'volumes', 'demo', 'vol-sel-a', 'status'), changed('volumes', 'demo', 'vol-sel-a', (o) => (o.status = { hostName: 'host-b' }))],
      /^volumes\.kova\.dev "vol-sel-a" is forbidden: node "host-a" may not set status\.hostName of volume "demo\/vol-sel-a" to "host-b"$/],
    ['move its volume to host-b', () => [attrs('update', 'volumes', 'demo', 'vol-a', 'status'), changed('volumes', 'demo', 'vol-a', (o) => (o.status.hostName = 'host-b'))], /may not set status\.hostName of volume "demo\/vol-a" to "host-b"/],
    ['update status of a volume on host-b', () => [attrs('update', 'volumes', 'demo', 'vol-b', 'status'), changed('volumes', 'demo', 'vol-b', (o) => (o.status.phase = 'Failed'))],
      /^volumes\.kova\.dev "vol-b" is forbidden: node "host-a" can only modify volumes it stores or was selected for \(status\.hostName or annotation kova\.dev\/selected-host "host-a"\); volume "demo\/vol-b" is on host "host-b"$/],
    ['patch status of a volume selected for host-b', () => [attrs('patch', 'volumes', 'demo', 'vol-sel-b', 'status')], /volume "demo\/vol-sel-b" is selected for host "host-b"/],
    ['patch status of a volume without a host', () => [attrs('patch', 'volumes', 'demo', 'vol-none', 'status')], /volume "demo\/vol-none" has no host yet/],
    ['add the volume-protection finalizer to its volume', () => [attrs('update', 'volumes', 'demo', 'vol-a'), changed('volumes', 'demo', 'vol-a', (o) => (o.metadata.finalizers = ['kova.dev/volume-protection']))], 'allow'],
    ['remove the volume-protection finalizer from its volume', () => [attrs('update', 'volumes', 'demo', 'vol-fin-a'), changed('volumes', 'demo', 'vol-fin-a', (o) => (o.metadata.finalizers = []))], 'allow'],
    ['patch (finalizer) a volume selected for it', () => [attrs('patch', 'volumes', 'demo', 'vol-sel-a')], 'allow'],
    ['add the finalizer to a volume on host-b', () => [attrs('update', 'volumes', 'demo', 'vol-b'), changed('volumes', 'demo', 'vol-b', (o) => (o.metadata.finalizers = ['kova.dev/volume-protection']))], /volume "demo\/vol-b" is on host "host-b"/],
    ['grow its volume', () => [attrs('update', 'volumes', 'demo', 'vol-a'), changed('volumes', 'demo', 'vol-a', (o) => (o.spec.size = '2Gi'))],
      /^volumes\.kova\.dev "vol-a" is forbidden: node "host-a" may only add or remove the finalizer kova\.dev\/volume-protection of volume "demo\/vol-a", not change its spec or metadata$/],
    ['label its volume', () => [attrs('update', 'volumes', 'demo', 'vol-a'), changed('volumes', 'demo', 'vol-a', (o) => (o.metadata.labels = { x: 'y' }))], /may only add or remove the finalizer kova\.dev\/volume-protection/],
    ['add another finalizer to its volume', () => [attrs('update', 'volumes', 'demo', 'vol-a'), changed('volumes', 'demo', 'vol-a', (o) => (o.metadata.finalizers = ['kova.dev/volume-protection', 'example.com/keep']))], /may only add or remove the finalizer/],
    ['annotate its volume for another host', () => [attrs('update', 'volumes', 'demo', 'vol-sel-a'), changed('volumes', 'demo', 'vol-sel-a', (o) => (o.metadata.annotations['kova.dev/selected-host'] = 'host-b'))], /may only add or remove the finalizer/],
    ['create a volume', () => [attrs('create', 'volumes', 'demo', ''), { metadata: { name: 'v' }, spec: {} } as unknown as KObject], /node "host-a" is not allowed to create volumes "demo\/v"/],
    ['delete its volume', () => [attrs('delete', 'volumes', 'demo', 'vol-a')], /not allowed to delete volumes "demo\/vol-a"/],
    ['claim an unclaimed snapshot', () => [attrs('update', 'volumesnapshots', 'demo', 'snap-free', 'status'), changed('volumesnapshots', 'demo', 'snap-free', (o) => (o.status = { hostName: 'host-a', readyToUse: false }))], 'allow'],
    ['claim an unclaimed snapshot for host-b', () => [attrs('update', 'volumesnapshots', 'demo', 'snap-free', 'status'), changed('volumesnapshots', 'demo', 'snap-free', (o) => (o.status = { hostName: 'host-b' }))],
      /^volumesnapshots\.kova\.dev "snap-free" is forbidden: node "host-a" may not set status\.hostName of volume snapshot "demo\/snap-free" to "host-b"$/],
    ['update status of its snapshot', () => [attrs('update', 'volumesnapshots', 'demo', 'snap-a', 'status'), changed('volumesnapshots', 'demo', 'snap-a', (o) => (o.status.readyToUse = true))], 'allow'],
    ['hand its snapshot to host-b', () => [attrs('update', 'volumesnapshots', 'demo', 'snap-a', 'status'), changed('volumesnapshots', 'demo', 'snap-a', (o) => (o.status.hostName = 'host-b'))], /may not set status\.hostName of volume snapshot "demo\/snap-a"/],
    ['update status of host-b\'s snapshot', () => [attrs('update', 'volumesnapshots', 'demo', 'snap-b', 'status'), changed('volumesnapshots', 'demo', 'snap-b', (o) => (o.status.readyToUse = false))],
      /^volumesnapshots\.kova\.dev "snap-b" is forbidden: node "host-a" can only modify volume snapshots it took or claims \(status\.hostName "host-a"\); volume snapshot "demo\/snap-b" was taken by "host-b"$/],
    ['add the cleanup finalizer to its snapshot', () => [attrs('update', 'volumesnapshots', 'demo', 'snap-a'), changed('volumesnapshots', 'demo', 'snap-a', (o) => (o.metadata.finalizers = ['kova.dev/snapshot-cleanup']))], 'allow'],
    ['add the cleanup finalizer to an unclaimed snapshot', () => [attrs('update', 'volumesnapshots', 'demo', 'snap-free'), changed('volumesnapshots', 'demo', 'snap-free', (o) => (o.metadata.finalizers = ['kova.dev/snapshot-cleanup']))], /volume snapshot "demo\/snap-free" is not claimed/],
    ['add the volume finalizer to its snapshot', () => [attrs('update', 'volumesnapshots', 'demo', 'snap-a'), changed('volumesnapshots', 'demo', 'snap-a', (o) => (o.metadata.finalizers = ['kova.dev/volume-protection']))],
      /may only add or remove the finalizer kova\.dev\/snapshot-cleanup of volume snapshot "demo\/snap-a"/],
    ['delete its snapshot', () => [attrs('delete', 'volumesnapshots', 'demo', 'snap-a')], /not allowed to delete volumesnapshots "demo\/snap-a"/],
    // Migrations (#17): the hosts of a migration report on it; what it is and where it goes are the controller's.
    ['report progress of a migration from it', () => [attrs('update', 'migrations', 'demo', 'mig-from-a', 'status'), changed('migrations', 'demo', 'mig-from-a', (o) => Object.assign(o.status, { phase: 'Running', progress: 40, dataProcessedBytes: 1024 }))], 'allow'],
    ['write migrateData of a migration to it', () => [attrs('update', 'migrations', 'demo', 'mig-to-a', 'status'), changed('migrations', 'demo', 'mig-to-a', (o) => (o.status.migrateData = { uri: 'qemu+tcp://10.0.0.1/system' }))], 'allow'],
    ['set a condition on a migration from it (source chosen, target not yet)', () => [attrs('update', 'migrations', 'demo', 'mig-scheduling', 'status'),
      changed('migrations', 'demo', 'mig-scheduling', (o) => (o.status.conditions = [{ type: 'Failed', status: 'True', reason: 'SourceGone', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' }]))], 'allow'],
    ['patch status of a migration to it', () => [attrs('patch', 'migrations', 'demo', 'mig-to-a', 'status')], 'allow'],
    ['update status of a migration between host-b and host-c', () => [attrs('update', 'migrations', 'demo', 'mig-b-c', 'status'), changed('migrations', 'demo', 'mig-b-c', (o) => (o.status.phase = 'Failed'))],
      /^migrations\.kova\.dev "mig-b-c" is forbidden: node "host-a" can only modify migrations from or to it \(status\.sourceHost or status\.targetHost "host-a"\); migration "demo\/mig-b-c" is between "host-b" and "host-c"$/],
    ['patch status of a migration without hosts', () => [attrs('patch', 'migrations', 'demo', 'mig-new', 'status')], /migration "demo\/mig-new" has no hosts yet/],
    ['patch status of a missing migration', () => [attrs('patch', 'migrations', 'demo', 'nope', 'status')], /^not found$/],
    ['claim a migration by naming itself its target', () => [attrs('update', 'migrations', 'demo', 'mig-b-c', 'status'), changed('migrations', 'demo', 'mig-b-c', (o) => (o.status.targetHost = 'host-a'))],
      /migration "demo\/mig-b-c" is between "host-b" and "host-c"/],
    ['change the target of a migration from it', () => [attrs('update', 'migrations', 'demo', 'mig-from-a', 'status'), changed('migrations', 'demo', 'mig-from-a', (o) => (o.status.targetHost = 'host-c'))],
      /^migrations\.kova\.dev "mig-from-a" is forbidden: node "host-a" may not change status\.targetHost of migration "demo\/mig-from-a"$/],
    ['set the target of a migration still scheduling', () => [attrs('update', 'migrations', 'demo', 'mig-scheduling', 'status'), changed('migrations', 'demo', 'mig-scheduling', (o) => (o.status.targetHost = 'host-b'))],
      /may not change status\.targetHost of migration "demo\/mig-scheduling"/],
    ['change the source of a migration to it', () => [attrs('update', 'migrations', 'demo', 'mig-to-a', 'status'), changed('migrations', 'demo', 'mig-to-a', (o) => (o.status.sourceHost = 'host-a'))], /may not change status\.sourceHost of migration "demo\/mig-to-a"/],
    ['change the instance uid of a migration', () => [attrs('update', 'migrations', 'demo', 'mig-from-a', 'status'), changed('migrations', 'demo', 'mig-from-a', (o) => (o.status.instanceUID = 'uid-2'))], /may not change status\.instanceUID of migration/],
    ['change the mode of a migration', () => [attrs('update', 'migrations', 'demo', 'mig-from-a', 'status'), changed('migrations', 'demo', 'mig-from-a', (o) => (o.status.mode = 'Cold'))], /may not change status\.mode of migration/],
    ['change the storage of a migration', () => [attrs('update', 'migrations', 'demo', 'mig-from-a', 'status'), changed('migrations', 'demo', 'mig-from-a', (o) => (o.status.storage = 'Shared'))], /may not change status\.storage of migration/],
    ['drop the status of a migration', () => [attrs('update', 'migrations', 'demo', 'mig-from-a', 'status'), changed('migrations', 'demo', 'mig-from-a', (o) => delete o.status)], /may not change status\.instanceUID of migration/],
    ['create a migration', () => [attrs('create', 'migrations', 'demo', ''), { metadata: { name: 'm' }, spec: { instance: 'on-a' } } as unknown as KObject], /^migrations\.kova\.dev "m" is forbidden: node "host-a" is not allowed to create migrations "demo\/m"$/],
    ['delete a migration from it (abort)', () => [attrs('delete', 'migrations', 'demo', 'mig-from-a')], /not allowed to delete migrations "demo\/mig-from-a"/],
    ['delete all migrations', () => [attrs('deletecollection', 'migrations', 'demo', '')], /not allowed to deletecollection migrations/],
    ['update a migration from it (spec, finalizers)', () => [attrs('update', 'migrations', 'demo', 'mig-from-a'), changed('migrations', 'demo', 'mig-from-a', (o) => (o.metadata.finalizers = []))], /not allowed to update migrations "demo\/mig-from-a"/],
    ['patch a migration from it', () => [attrs('patch', 'migrations', 'demo', 'mig-from-a')], /not allowed to patch migrations "demo\/mig-from-a"/],
    ['create an Event', () => [attrs('create', 'events', 'demo', ''), { metadata: { name: 'e' } } as unknown as KObject], 'allow'],
    ['patch an Event', () => [attrs('patch', 'events', 'demo', 'e')], 'allow'],
    ['create a Flavor', () => [attrs('create', 'flavors', '', ''), { metadata: { name: 'big' } } as unknown as KObject], /^flavors\.kova\.dev "big" is forbidden: node "host-a" is not allowed to create flavors "big"$/],
    ['create a Namespace', () => [attrs('create', 'namespaces', '', ''), { metadata: { name: 'x' } } as unknown as KObject], /^namespaces "x" is forbidden: node "host-a"/],
  ];
  for (const [what, make, want] of cases) {
    it(`${want === 'allow' ? 'may' : 'may not'} ${what}`, async () => {
      const [a, obj] = make();
      const got = await outcome(a, obj);
      if (want === 'allow') assert.equal(got, 'allow');
      else {
        assert.notEqual(got, 'allow', 'allowed');
        assert.match(got.slice(4), want);
      }
    });
  }

  // What a patch makes is checked once the server has applied it (admitResult), like an update.
  const patched: Array<[string, () => [RequestAttributes, KObject, KObject], RegExp | 'allow']> = [
    ['patch its instance to host-b', () => [attrs('patch', 'instances', 'demo', 'on-a', 'status'), changed('instances', 'demo', 'on-a', (o) => (o.status.hostName = 'host-b')), stored.get('instances/demo/on-a')!],
      /may not change status\.hostName of instance "demo\/on-a"/],
    ['patch the spec of its instance', () => [attrs('patch', 'instances', 'demo', 'on-a'), changed('instances', 'demo', 'on-a', (o) => (o.spec.image = 'other')), stored.get('instances/demo/on-a')!],
      /may not change the spec of instance "demo\/on-a"/],
    ['patch a finalizer onto its instance', () => [attrs('patch', 'instances', 'demo', 'on-a'), changed('instances', 'demo', 'on-a', (o) => (o.metadata.finalizers = ['kova.dev/instance-protection'])), stored.get('instances/demo/on-a')!], 'allow'],
    ['patch the size of its volume', () => [attrs('patch', 'volumes', 'demo', 'vol-a'), changed('volumes', 'demo', 'vol-a', (o) => (o.spec.size = '5Gi')), stored.get('volumes/demo/vol-a')!],
      /may only add or remove the finalizer kova\.dev\/volume-protection of volume "demo\/vol-a"/],
    ['apply-create a volume (no stored object)', () => [attrs('patch', 'volumes', 'demo', 'new-vol'), { metadata: { name: 'new-vol' }, spec: { size: '1Gi' } } as unknown as KObject, undefined as unknown as KObject],
      /volume "demo\/new-vol" does not exist/],
    ['patch the target of a migration from it', () => [attrs('patch', 'migrations', 'demo', 'mig-from-a', 'status'), changed('migrations', 'demo', 'mig-from-a', (o) => (o.status.targetHost = 'host-a')), stored.get('migrations/demo/mig-from-a')!],
      /may not change status\.targetHost of migration "demo\/mig-from-a"/],
    ['patch the phase of a migration to it', () => [attrs('patch', 'migrations', 'demo', 'mig-to-a', 'status'), changed('migrations', 'demo', 'mig-to-a', (o) => (o.status.phase = 'Running')), stored.get('migrations/demo/mig-to-a')!], 'allow'],
    ['patch its own condition on a Network', () => [attrs('patch', 'networks', 'demo', 'net', 'status'), changed('networks', 'demo', 'net', (o) => (o.status.conditions[0].status = 'True')), stored.get('networks/demo/net')!], 'allow'],
    ['patch host-b\'s condition on a Network', () => [attrs('patch', 'networks', 'demo', 'net', 'status'), changed('networks', 'demo', 'net', (o) => (o.status.conditions[1].status = 'False')), stored.get('networks/demo/net')!],
      /may only change its own condition host\.kova\.dev\/host-a/],
  ];
  for (const [what, make, want] of patched) {
    it(`${want === 'allow' ? 'may' : 'may not'} ${what}`, () => {
      const [a, obj, old] = make();
      let got = 'allow';
      try {
        nr.admitResult(a, obj, old);
      } catch (e) {
        assert.ok(e instanceof ApiError && e.code === 403, String(e));
        got = e.message;
      }
      if (want === 'allow') assert.equal(got, 'allow');
      else assert.match(got, want);
    });
  }

  it('leaves everyone else to RBAC', async () => {
    const alice = { name: 'alice', groups: [SYSTEM_AUTHENTICATED] };
    assert.equal(await outcome(attrs('patch', 'hosts', '', 'host-b', '', alice)), 'allow');
    const ctrl = { name: 'system:kova:controller-manager', groups: [SYSTEM_AUTHENTICATED] };
    assert.equal(await outcome(attrs('update', 'instances', 'demo', 'on-b', 'status', ctrl), changed('instances', 'demo', 'on-b', () => undefined)), 'allow');
  });
});
