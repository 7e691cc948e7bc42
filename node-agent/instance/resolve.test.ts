import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Flavor, Image, Instance, KeyPair, Network } from '../../api/kinds/index.js';
import { resolveInstance } from './resolve.js';
import type { HostNetworkView, ResolverDeps } from './resolve.js';
import { resolveImage } from '../../api/image-visibility.js';

const MiB = 2 ** 20;
const flavor: Flavor = { apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: { name: 'm1' }, spec: { vcpus: 2, memory: '512Mi', disk: '1Gi' } };
const image: Image = {
  apiVersion: 'kova.dev/v1alpha1', kind: 'Image', metadata: { namespace: 'demo', name: 'tiny' },
  spec: { source: { file: { path: '/x' } } },
  status: { phase: 'Ready', sha256: 'a'.repeat(64), format: 'qcow2' },
};
const keyPair: KeyPair = { apiVersion: 'kova.dev/v1alpha1', kind: 'KeyPair', metadata: { namespace: 'demo', name: 'me' }, spec: { publicKey: 'ssh-ed25519 AAAA me@host\n' } };
const net = (over: Partial<Network['spec']> = {}): Network => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'Network', metadata: { namespace: 'demo', name: 'private' }, spec: { type: 'vxlan', cidr: '10.20.0.0/24', ...over } });

function instance(spec: Partial<Instance['spec']> = {}, addresses: NonNullable<Instance['status']>['addresses'] = []): Instance {
  return {
    apiVersion: 'kova.dev/v1alpha1', kind: 'Instance',
    metadata: { namespace: 'demo', name: 'web', uid: 'uid-1', generation: 1 },
    spec: { flavor: 'm1', image: 'tiny', ...spec },
    status: { hostName: 'h1', addresses },
  };
}

function deps(over: Partial<ResolverDeps> = {}): ResolverDeps {
  return {
    hostName: 'h1',
    flavor: async (name) => (name === 'm1' ? flavor : undefined),
    images: { lookup: (ns, name) => resolveImage(ns, name, { get: (a, b) => (a === image.metadata.namespace && b === image.metadata.name ? image : undefined), list: () => [image] }) },
    keyPair: (_ns, name) => (name === 'me' ? keyPair : undefined),
    hostNics: false,
    clusterID: () => 'cluster-1',
    storage: { volume: () => undefined, volumeType: () => undefined },
    ...over,
  };
}

/** A host network agent that has configured every port and knows network `private`. */
function network(n: Network, configured = true): HostNetworkView {
  return {
    portConfigured: () => (configured ? { ok: true } : { ok: false, message: 'Pending: the network agent has not configured it yet' }),
    portDevice: (_ns, port) => `kt-${port}`,
    network: (_ns, name) => (name === n.metadata.name ? n : undefined),
  };
}

const oneNic = [{ network: 'private', port: 'web-0', ip: '10.20.0.10', mac: '52:54:00:AA:BB:CC' }];

test('a sim instance resolves to a full DomainSpec: sizes, image name, keys, NICs with addresses', async () => {
  const r = await resolveInstance(instance({ keyPair: 'me', userData: 'hi', networks: [{ network: 'private' }] }, oneNic), deps());
  assert.ok('spec' in r);
  assert.deepEqual(r.spec, {
    instanceKey: 'demo/web', instanceUID: 'uid-1', clusterID: 'cluster-1', name: 'kova-demo.web',
    vcpus: 2, memoryBytes: 512 * MiB, diskBytes: 1024 * MiB, image: 'demo/tiny', userData: 'hi',
    networks: [{ network: 'private', port: 'web-0', ip: '10.20.0.10', mac: '52:54:00:aa:bb:cc' }],
    sshAuthorizedKeys: ['ssh-ed25519 AAAA me@host'],
  });
  assert.deepEqual(r.conds.map((c) => [c.type, c.status]), [['ImageReady', 'True']]);
});

test('an unknown flavor is a wait (it may be created later); an unsizable spec is invalid (terminal)', async () => {
  assert.deepEqual(await resolveInstance(instance({ flavor: 'nope' }), deps()), {
    why: 'flavor nope not found', wait: [{ type: 'FlavorReady', status: 'False', reason: 'FlavorNotFound', message: 'flavor nope not found' }],
  });
  const r = await resolveInstance(instance({ flavor: undefined }), deps());
  assert.ok('invalid' in r && /neither spec.flavor nor spec.resources/.test(r.invalid));
});

test('waits: Image missing or not Ready, ports not attached, KeyPair missing', async () => {
  const missing = await resolveInstance(instance({ image: 'other' }), deps());
  assert.ok('wait' in missing);
  assert.deepEqual(missing.wait.map((c) => [c.type, c.reason]), [['ImageReady', 'ImageNotFound']]);
  const importing = await resolveInstance(instance(), deps({ images: { lookup: () => ({ image: { ...image, status: { phase: 'Importing' } }, access: 'Own' }) } }));
  assert.ok('wait' in importing && importing.wait[0]!.reason === 'ImageNotReady');
  const noPorts = await resolveInstance(instance({ networks: [{ network: 'private' }, { network: 'b' }] }, oneNic), deps());
  assert.ok('wait' in noPorts);
  assert.deepEqual(noPorts.wait.map((c) => [c.type, c.reason]), [['NetworkReady', 'NetworkNotReady']]);
  assert.match(noPorts.why, /2 network\(s\): networking has attached 1 so far/);
  const noKey = await resolveInstance(instance({ keyPair: 'gone' }), deps());
  assert.ok('wait' in noKey);
  assert.deepEqual(noKey.wait.map((c) => [c.type, c.status, c.reason]), [['ImageReady', 'True', 'Ready'], ['KeyPairReady', 'False', 'KeyPairNotFound']]);
});

test('a driver with host NICs on a host without kova networking waits (NetworkUnavailable)', async () => {
  const r = await resolveInstance(instance({ networks: [{ network: 'private' }] }, oneNic), deps({ hostNics: true }));
  assert.ok('wait' in r);
  assert.deepEqual(r.wait.map((c) => [c.type, c.reason]), [['NetworkReady', 'NetworkUnavailable']]);
  // Without networks there is nothing to attach.
  assert.ok('spec' in (await resolveInstance(instance(), deps({ hostNics: true }))));
});

test('with kova networking: waits for the Port to be configured here, then gives the tap, MTU and guest settings', async () => {
  const inst = instance({ networks: [{ network: 'private' }] }, oneNic);
  const waiting = await resolveInstance(inst, deps({ hostNics: true, network: network(net(), false) }));
  assert.ok('wait' in waiting);
  assert.deepEqual(waiting.wait.map((c) => [c.type, c.reason]), [['NetworkReady', 'PortNotConfigured']]);
  assert.match(waiting.why, /port demo\/web-0 is not configured on host h1 yet: Pending/);

  const dhcp = await resolveInstance(inst, deps({ hostNics: true, network: network(net({ dns: ['9.9.9.9'] })) }));
  assert.ok('spec' in dhcp);
  assert.deepEqual(dhcp.spec.networks, [{ network: 'private', port: 'web-0', ip: '10.20.0.10', mac: '52:54:00:aa:bb:cc', tap: 'kt-web-0', mtu: 1450, dns: ['9.9.9.9'] }]);

  const fixed = await resolveInstance(inst, deps({ hostNics: true, network: network(net({ type: 'flat', dhcp: false })) }));
  assert.ok('spec' in fixed);
  assert.deepEqual(fixed.spec.networks, [{ network: 'private', port: 'web-0', ip: '10.20.0.10', mac: '52:54:00:aa:bb:cc', tap: 'kt-web-0', address: '10.20.0.10/24', gateway: '10.20.0.1' }]);

  // The sim on a networked host waits the same way, but gets no host device.
  const sim = await resolveInstance(inst, deps({ hostNics: false, network: network(net()) }));
  assert.ok('spec' in sim && sim.spec.networks[0]!.tap === undefined);
  const gone = await resolveInstance(inst, deps({ hostNics: true, network: network(net({}), true) && { ...network(net()), network: () => undefined } }));
  assert.ok('wait' in gone && /network demo\/private not found/.test(gone.why));
});

test('API errors are thrown for the controller to retry, not turned into waits', async () => {
  await assert.rejects(resolveInstance(instance(), deps({ flavor: async () => Promise.reject(new Error('connection refused')) })), /connection refused/);
});

test('project visibility: images by api/image-visibility.ts, key pairs only from the instance\'s own namespace', async () => {
  const img = (ns: string, name: string, spec: Partial<Image['spec']> = {}): Image => ({ ...image, metadata: { namespace: ns, name }, spec: { ...image.spec, ...spec } });
  const all = [img('a', 'priv'), img('a', 'pub', { visibility: 'Public' }), img('a', 'sh', { visibility: 'Shared', members: ['demo'] }), img('a', 'other', { visibility: 'Shared', members: ['b'] })];
  const catalog = { get: (ns: string, name: string) => all.find((i) => i.metadata.namespace === ns && i.metadata.name === name), list: () => all };
  const kps = [{ ...keyPair, metadata: { namespace: 'a', name: 'theirs' } }, keyPair];
  const asked: string[] = [];
  const d = deps({
    images: { lookup: (ns, name) => resolveImage(ns, name, catalog) },
    keyPair: (ns, name) => {
      asked.push(`${ns}/${name}`);
      return kps.find((k) => k.metadata.namespace === ns && k.metadata.name === name);
    },
  });
  for (const name of ['priv', 'other']) {
    const r = await resolveInstance(instance({ image: name }), d);
    assert.ok('wait' in r);
    assert.deepEqual(r.wait.map((c) => [c.type, c.reason]), [['ImageReady', 'ImageNotFound']]);
    assert.equal(r.why, `image "${name}" not found in namespace demo, and no Public image or image Shared with demo has that name`);
  }
  for (const name of ['pub', 'sh']) {
    const r = await resolveInstance(instance({ image: name }), d);
    assert.ok('spec' in r, name);
    assert.equal(r.spec.image, `a/${name}`);
  }
  // A key pair of another project is never used, even under the same name as asked.
  const cross = await resolveInstance(instance({ image: 'pub', keyPair: 'theirs' }), d);
  assert.ok('wait' in cross);
  assert.deepEqual(cross.wait.map((c) => [c.type, c.reason]), [['ImageReady', 'Ready'], ['KeyPairReady', 'KeyPairNotFound']]);
  assert.equal(cross.why, 'key pair theirs not found in namespace demo');
  assert.deepEqual(asked, ['demo/theirs']);
  const own = await resolveInstance(instance({ image: 'pub', keyPair: 'me' }), d);
  assert.ok('spec' in own);
  assert.deepEqual(own.spec.sshAuthorizedKeys, ['ssh-ed25519 AAAA me@host']);
});
