// Pure parts of the networking controllers and agent (claim names, VNI candidates, status
// aggregation, security group expansion), and store-enforced uniqueness against a real API
// server: concurrent allocators with an empty (maximally stale) cache never share an address.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startKova } from '../../e2e/harness.js';
import type { Kova } from '../../e2e/harness.js';
import { sgInput } from '../../node-agent/network-agent.js';
import { planHost } from '../../node-agent/network/plan.js';
import { KovaClient } from '../../client/client.js';
import { allocateIP, allocateMAC, vniCandidates } from './allocate.js';
import { claim, claimName } from './claims.js';
import type { NetworkCaches } from './caches.js';
import { frozen } from '../../testing/frozen-cache.js';
import { intercept } from '../../testing/intercept.js';
import { FloatingIPReconciler } from './floating-ip.js';
import { networkStatus } from './network.js';
import { PortReconciler } from './port.js';
import { RecentClaims } from './recent-claims.js';
import { ADDRESS_CLAIMS, FLOATING_IPS, NETWORKS, PORTS } from '../../api/kinds/index.js';
import type { AddressClaim, FloatingIP, Network, Port, SecurityGroup } from '../../api/kinds/index.js';

const meta = (name: string, extra: Record<string, unknown> = {}) => ({ name, namespace: 'demo', uid: `uid-${name}`, generation: 1, ...extra });

describe('pure helpers', () => {
  it('claim names are deterministic DNS labels per network and value', () => {
    const uid = '3243f70d-a073-4231-800e-97c593de670a';
    assert.equal(claimName('IP', uid, '10.20.0.9'), `ip-${uid}-10-20-0-9`);
    assert.equal(claimName('MAC', uid, '52:54:00:AA:bb:0c'), `mac-${uid}-525400aabb0c`);
    assert.equal(claimName('VNI', uid, '4242'), 'vni-4242');
    for (const n of [claimName('IP', uid, '255.255.255.255'), claimName('MAC', uid, '52:54:00:aa:bb:cc')]) {
      assert.ok(n.length <= 63 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(n), n);
    }
  });

  it('VNI candidates depend on the uid and stay in range', () => {
    const a = [...vniCandidates('uid-a')];
    assert.equal(a.length, 64);
    assert.notEqual(a[0], [...vniCandidates('uid-b')][0]);
    assert.ok(a.every((v) => v >= 4096 && v <= 16_777_215));
  });

  it('network status: derived names, aggregate Ready from per-host conditions', () => {
    const net: Network = { apiVersion: 'kova.dev/v1alpha1', kind: 'Network', metadata: meta('private'), spec: { type: 'vxlan', cidr: '10.20.0.0/24' } };
    const ok = networkStatus(net, 5000, 3);
    assert.equal(ok.phase, 'Ready');
    assert.equal(ok.vni, 5000);
    assert.equal(ok.gateway, '10.20.0.1');
    assert.equal(ok.allocated, 3);
    assert.match(ok.bridge!, /^kvb-[0-9a-f]{10}$/);
    net.status = { conditions: [{ type: 'host.kova.dev/node-2', status: 'False', reason: 'VLANUnsupported', message: 'kernel has no 802.1Q support' }] };
    const bad = networkStatus(net, 5000, 3);
    assert.equal(bad.phase, 'Failed');
    const ready = bad.conditions!.find((c) => c.type === 'Ready')!;
    assert.deepEqual([ready.status, ready.reason, ready.message], ['False', 'VLANUnsupported', 'host node-2: kernel has no 802.1Q support']);
    const failed = networkStatus(net, undefined, 0, { reason: 'VNIInUse', message: 'VNI 7 is used by another network' });
    assert.equal(failed.conditions!.find((c) => c.type === 'Ready')!.reason, 'VNIInUse');
  });

  it('security groups: remoteGroup expands to member addresses, port ranges to min/max', () => {
    const port = (name: string, ip: string | undefined, groups: string[]): Port => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'Port', metadata: meta(name), spec: { network: 'n', securityGroups: groups }, status: ip ? { ip } : {} });
    const sg: SecurityGroup = {
      apiVersion: 'kova.dev/v1alpha1', kind: 'SecurityGroup', metadata: meta('web'),
      spec: { rules: [
        { direction: 'ingress', protocol: 'tcp', portRange: { min: 80 } },
        { direction: 'ingress', remoteGroup: 'web' },
        { direction: 'ingress', remoteGroup: 'web', remoteCIDR: '10.0.0.0/8' },
      ] },
    };
    const out = sgInput(sg, [port('a', '10.0.0.5', ['web']), port('b', '10.0.0.3', ['web', 'x']), port('c', '10.0.0.9', ['x']), port('d', undefined, ['web'])]);
    assert.deepEqual(out.rules.slice(0, 3), [
      { direction: 'ingress', protocol: 'tcp', portMin: 80, portMax: 80 },
      { direction: 'ingress', protocol: 'any', remoteCIDR: '10.0.0.3/32' },
      { direction: 'ingress', protocol: 'any', remoteCIDR: '10.0.0.5/32' },
    ]);
    // Both remote kinds: handed on so the planner rejects the group, naming the field.
    const plan = planHost({
      hostName: 'h', networks: [], ports: [], peers: [], floatingIPs: [], kernel: { vlan: true }, stateDir: '/tmp/x',
      securityGroups: [{ ...out, namespace: 'demo' }],
    });
    assert.equal(plan.rejected.length, 1);
    assert.match(plan.rejected[0]!.message, /spec\.rules\[3\]\.remoteCIDR/);
  });

  it('the planner refuses a second addressed network with an overlapping subnet on one host', () => {
    const net = (name: string, cidr: string) => ({ uid: `u-${name}`, namespace: 'p', name, type: 'vxlan' as const, cidr, vni: name.length + 10, dhcp: true });
    const plan = planHost({
      hostName: 'h', tunnelIP: '192.0.2.1', networks: [net('a', '10.1.0.0/24'), net('bb', '10.1.0.0/16'), net('ccc', '10.2.0.0/24')],
      ports: [], peers: [], securityGroups: [], floatingIPs: [], kernel: { vlan: true }, stateDir: '/tmp/x',
    });
    const byNet = Object.fromEntries(plan.conditions.map((c) => [c.network, c]));
    assert.equal(byNet['p/a']!.ready, true);
    assert.equal(byNet['p/bb']!.reason, 'OverlappingSubnet');
    assert.match(byNet['p/bb']!.message, /overlaps network p\/a/);
    assert.equal(byNet['p/ccc']!.ready, true);
  });
});

describe('claims against a real API server', () => {
  let kova: Kova;
  let client: KovaClient;
  before(async () => {
    kova = await startKova(['--no-agents', '--no-controllers']);
    client = KovaClient.fromFile(kova.kubeconfig);
    await kova.k(['create', 'namespace', 'demo']);
  });
  after(async () => {
    client?.close();
    await kova?.stop();
  });

  it('30 concurrent allocators on a /27 with a stale cache: 29 unique addresses, one exhausted', async () => {
    const net = await client.create<Network>(NETWORKS, { apiVersion: 'kova.dev/v1alpha1', kind: 'Network', metadata: { name: 'small', namespace: 'demo' }, spec: { type: 'vxlan', cidr: '10.30.0.0/27' } });
    const ports = await Promise.all(Array.from({ length: 30 }, (_, i) => client.create<Port>(PORTS, { apiVersion: 'kova.dev/v1alpha1', kind: 'Port', metadata: { name: `p${i}`, namespace: 'demo' }, spec: { network: 'small' } })));
    const network = { namespace: 'demo', name: 'small', uid: net.metadata.uid!, cidr: '10.30.0.0/27' };
    const results = await Promise.all(ports.map((p) => allocateIP(client, { network, owner: p, knownTaken: new Set() })));
    const ips = results.flatMap((r) => (r.ok ? [r.value] : []));
    assert.equal(ips.length, 29, '30 usable addresses minus the gateway');
    assert.equal(new Set(ips).size, 29, 'no address handed out twice');
    assert.ok(!ips.includes('10.30.0.1'));
    const failed = results.filter((r) => !r.ok);
    assert.equal(failed.length, 1);
    assert.equal(failed[0]!.ok === false && failed[0]!.reason, 'AddressesExhausted');
    // Idempotent for the holder, refused for anyone else.
    const first = results[0]!;
    assert.ok(first.ok);
    assert.equal(await claim(client, { type: 'IP', value: first.value, network, owner: ports[0]! }), 'claimed');
    const holder = ports[results.findIndex((r) => r.ok && r.value === first.value)]!;
    const other = ports.find((p) => p !== holder)!;
    const again = await allocateIP(client, { network, owner: other, requested: first.value, knownTaken: new Set() });
    assert.deepEqual(again.ok ? 'ok' : again.reason, holder === other ? 'ok' : 'AddressInUse');
    const macs = await Promise.all(ports.slice(0, 10).map((p) => allocateMAC(client, network, p)));
    assert.equal(new Set(macs.map((m) => (m.ok ? m.value : 'x'))).size, 10);
  });

  it('allocators of one process sharing RecentClaims: no address twice, and no create refused while the cache is empty', async () => {
    const net = await client.create<Network>(NETWORKS, { apiVersion: 'kova.dev/v1alpha1', kind: 'Network', metadata: { name: 'shared', namespace: 'demo' }, spec: { type: 'vxlan', cidr: '10.31.0.0/27' } });
    const ports = await Promise.all(Array.from({ length: 30 }, (_, i) => client.create<Port>(PORTS, { apiVersion: 'kova.dev/v1alpha1', kind: 'Port', metadata: { name: `s${i}`, namespace: 'demo' }, spec: { network: 'shared' } })));
    const network = { namespace: 'demo', name: 'shared', uid: net.metadata.uid!, cidr: '10.31.0.0/27' };
    // Count the claim creates: without RecentClaims the 30 race for the lowest address again and again.
    let creates = 0;
    const counting = intercept(client, 'create', (create) => (...args) => (creates++, create(...args)));
    const recent = new RecentClaims();
    const results = await Promise.all(ports.map((p) => allocateIP(counting, { network, owner: p, knownTaken: new Set(), recent })));
    const ips = results.flatMap((r) => (r.ok ? [r.value] : []));
    assert.equal(new Set(ips).size, 29, 'every usable address once');
    assert.equal(results.filter((r) => !r.ok).length, 1);
    assert.equal(creates, 29, 'one create per address, none refused');
    // Again for a port that holds its address: its own entry is tried first, nothing new is claimed.
    const again = await allocateIP(counting, { network, owner: ports[0]!, knownTaken: new Set(), recent });
    assert.deepEqual(again, results[0]);
    assert.equal(creates, 30);
  });

  it('a reconciler whose cache predates its own claim keeps the address it holds (no second allocation)', async () => {
    const net = await client.create<Network>(NETWORKS, { apiVersion: 'kova.dev/v1alpha1', kind: 'Network', metadata: { name: 'ext', namespace: 'demo' }, spec: { type: 'flat', cidr: '203.0.113.0/29', external: true, dhcp: false } });
    const fip = await client.create<FloatingIP>(FLOATING_IPS, { apiVersion: 'kova.dev/v1alpha1', kind: 'FloatingIP', metadata: { name: 'f1', namespace: 'demo' }, spec: { network: 'ext' } });
    const port = await client.create<Port>(PORTS, { apiVersion: 'kova.dev/v1alpha1', kind: 'Port', metadata: { name: 'p-ext', namespace: 'demo' }, spec: { network: 'ext' } });
    const claimsNow = async () => (await client.list<AddressClaim>(ADDRESS_CLAIMS, 'demo')).items.filter((c) => c.spec.networkUID === net.metadata.uid && c.spec.type === 'IP');
    const caches = (claims: AddressClaim[]): NetworkCaches => ({
      networks: frozen([net]), ports: frozen([port]), claims: frozen(claims), instances: frozen([]),
      securityGroups: frozen([]), floatingIPs: frozen([fip]), routers: frozen([]),
    });
    const quiet = () => undefined;
    // First pass: the floating IP takes the first free address.
    await new FloatingIPReconciler(client, caches([]), quiet).reconcile({ namespace: 'demo', name: 'f1' });
    const ip = (await client.get<FloatingIP>(FLOATING_IPS, 'demo', 'f1'))!.status?.ip;
    assert.equal(ip, '203.0.113.2');
    // Second pass sees its own claim but not yet its own status: same address, nothing new claimed.
    await new FloatingIPReconciler(client, caches(await claimsNow()), quiet).reconcile({ namespace: 'demo', name: 'f1' });
    assert.equal((await client.get<FloatingIP>(FLOATING_IPS, 'demo', 'f1'))!.status?.ip, ip);
    assert.deepEqual((await claimsNow()).map((c) => c.spec.address), [ip]);
    // The same for a Port, twice on the object as first seen (no spec.ip, no status).
    const portCaches = () => claimsNow().then((claims) => ({ instances: frozen([]), ports: frozen([port]), networks: frozen([net]), claims: frozen(claims) }));
    await new PortReconciler(client, await portCaches(), quiet).reconcile({ namespace: 'demo', name: 'p-ext' });
    const first = (await client.get<Port>(PORTS, 'demo', 'p-ext'))!;
    assert.equal(first.spec.ip, '203.0.113.3');
    await new PortReconciler(client, await portCaches(), quiet).reconcile({ namespace: 'demo', name: 'p-ext' }).catch(() => undefined);
    const second = (await client.get<Port>(PORTS, 'demo', 'p-ext'))!;
    assert.equal(second.spec.ip, first.spec.ip);
    assert.equal(second.status?.ip, first.spec.ip);
    assert.deepEqual((await claimsNow()).map((c) => c.spec.address).sort(), [ip, first.spec.ip].sort(), 'one claim each, none leaked');
  });
});
