// Writes the networking reconcilers leave out (on the FakeClient, with caches frozen at what
// they are given): a deleted instance's port is left to the garbage collector, an instance whose
// port was just created is not told that its address is pending, an allocated port's
// status is not written again for the generation its own spec patch made, and a network does
// not claim its VNI again (a refused create and a read) each time its allocated count changes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClient } from '../../client/fake.js';
import { ADDRESS_CLAIMS, INSTANCES, NETWORKS, PORTS } from '../../api/kinds/index.js';
import type { AddressClaim, Instance, Network, Port, SecurityGroup } from '../../api/kinds/index.js';
import { DEFAULT_SECURITY_GROUP } from '../../api/net/rules.js';
import { frozen } from '../../testing/frozen-cache.js';
import { intercept } from '../../testing/intercept.js';
import { InstancePortsReconciler } from './instance-ports.js';
import { NetworkReconciler } from './network.js';
import { PortReconciler } from './port.js';

const quiet = () => undefined;
const writes = (fake: FakeClient, from: number) => fake.calls.slice(from).filter((c) => c.verb !== 'get' && c.verb !== 'list').map((c) => `${c.verb} ${c.resource}/${c.name ?? ''}`);

describe('networking reconcilers write only what changes something', () => {
  it("a port whose owning instance is gone is left to the garbage collector; a user's port is still reported", async () => {
    const fake = new FakeClient();
    const owned = await fake.create<Port>(PORTS, {
      metadata: { namespace: 'default', name: 'web-0', ownerReferences: [{ apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', name: 'web', uid: 'uid-web', controller: true }] },
      spec: { network: 'gone' },
    });
    const mine = await fake.create<Port>(PORTS, { metadata: { namespace: 'default', name: 'mine' }, spec: { network: 'gone' } });
    const r = new PortReconciler(fake, { instances: frozen<Instance>([]), ports: frozen([owned, mine]), networks: frozen([]), claims: frozen([]) }, quiet);
    const n = fake.calls.length;
    await r.reconcile({ namespace: 'default', name: 'web-0' });
    assert.deepEqual(writes(fake, n), [], 'no status for a port about to be deleted');
    await r.reconcile({ namespace: 'default', name: 'mine' });
    assert.deepEqual(writes(fake, n), ['updateStatus ports/mine'], 'a port without an owner says why it has no address');
    assert.equal((await fake.get<Port>(PORTS, 'default', 'mine'))!.status?.conditions?.[0]?.reason, 'NetworkNotFound');
  });

  it("creating the port writes nothing on the instance until the port has its address or says why it has none", async () => {
    const fake = new FakeClient();
    const inst = await fake.create<Instance>(INSTANCES, { metadata: { namespace: 'default', name: 'web' }, spec: { flavor: 'm1', image: 'tiny', networks: [{ network: 'net1' }] } });
    const instances = () => fake.get<Instance>(INSTANCES, 'default', 'web').then((i) => frozen([i!]));
    const pass = async (ports: Port[]) => new InstancePortsReconciler(fake, { instances: await instances(), ports: frozen(ports), networks: frozen([]), claims: frozen([]) }, quiet).reconcile({ namespace: 'default', name: 'web' });
    const n = fake.calls.length;
    // The ports cache has not seen the port this pass creates.
    await pass([]);
    assert.deepEqual(writes(fake, n), ['create ports/web-0'], 'no "address not allocated yet" status: the address is moments away');
    // The cache now shows the port, still without an address: nothing to say yet either.
    const port = (await fake.get<Port>(PORTS, 'default', 'web-0'))!;
    assert.equal(inst.metadata.uid, port.metadata.ownerReferences?.[0]?.uid);
    const m = fake.calls.length;
    await pass([port]);
    assert.deepEqual(writes(fake, m), []);
    // The port says why it has no address: that is reported at once.
    const exhausted = { ...port, status: { conditions: [{ type: 'Allocated', status: 'False' as const, reason: 'AddressesExhausted', message: 'no free address in 10.0.0.0/30', lastTransitionTime: '2026-01-01T00:00:00Z' }] } };
    await pass([exhausted]);
    assert.deepEqual(writes(fake, m), ['updateStatus instances/web']);
    const cond = (await fake.get<Instance>(INSTANCES, 'default', 'web'))!.status?.conditions?.find((c) => c.type === 'NetworksReady');
    assert.deepEqual([cond?.status, cond?.reason], ['False', 'AddressesExhausted']);
    // Once reported, a pending port is reported too (the condition must not stay stale), then its address.
    await pass([port]);
    assert.equal((await fake.get<Instance>(INSTANCES, 'default', 'web'))!.status?.conditions?.find((c) => c.type === 'NetworksReady')?.reason, 'PortPending');
    await pass([{ ...port, status: { ip: '10.0.0.5', mac: '52:54:00:00:00:05' } }]);
    const st = (await fake.get<Instance>(INSTANCES, 'default', 'web'))!.status;
    assert.equal(st?.conditions?.find((c) => c.type === 'NetworksReady')?.status, 'True');
    assert.deepEqual(st?.addresses, [{ network: 'net1', port: 'web-0', ip: '10.0.0.5', mac: '52:54:00:00:00:05' }]);
  });

  it('allocating: the status observes the generation that writing the addresses into spec made, so the next pass writes nothing', async () => {
    const fake = new FakeClient();
    const net = await fake.create<Network>(NETWORKS, { metadata: { namespace: 'default', name: 'net1' }, spec: { type: 'vxlan', cidr: '10.0.0.0/24' } });
    await fake.create<Port>(PORTS, { metadata: { namespace: 'default', name: 'p1' }, spec: { network: 'net1' } });
    const pass = async () => {
      const [port, claims] = [await fake.get<Port>(PORTS, 'default', 'p1'), (await fake.list<AddressClaim>(ADDRESS_CLAIMS, 'default')).items];
      await new PortReconciler(fake, { instances: frozen<Instance>([]), ports: frozen([port!]), networks: frozen([net]), claims: frozen(claims) }, quiet).reconcile({ namespace: 'default', name: 'p1' });
    };
    await pass();
    const port = (await fake.get<Port>(PORTS, 'default', 'p1'))!;
    assert.equal(port.status?.ip, port.spec.ip);
    assert.equal(port.metadata.generation, 2, 'the addresses went into spec');
    assert.equal(port.status?.observedGeneration, 2);
    assert.equal(port.status?.conditions?.find((c) => c.type === 'Allocated')?.observedGeneration, 2);
    const n = fake.calls.length;
    await pass();
    assert.deepEqual(writes(fake, n), []);
  });

  it("allocating: a port's IP and MAC are claimed side by side; a MAC claimed while no address is free stays the port's", async () => {
    const fake = new FakeClient();
    // A /30 has one address besides the gateway.
    const net = await fake.create<Network>(NETWORKS, { metadata: { namespace: 'default', name: 'net1' }, spec: { type: 'vxlan', cidr: '10.0.0.0/30' } });
    for (const name of ['p0', 'p1']) await fake.create<Port>(PORTS, { metadata: { namespace: 'default', name }, spec: { network: 'net1' } });
    // Claim creates take a while, as over the network: count how many are in flight at once.
    let inflight = 0;
    let most = 0;
    const slow = intercept(fake, 'create', (create) => async (...args) => {
      most = Math.max(most, ++inflight);
      await new Promise((r) => setTimeout(r, 20));
      try {
        return await create(...args);
      } finally {
        inflight--;
      }
    });
    const claims = async () => (await fake.list<AddressClaim>(ADDRESS_CLAIMS, 'default')).items;
    const pass = async (name: string) => {
      const port = (await fake.get<Port>(PORTS, 'default', name))!;
      await new PortReconciler(slow, { instances: frozen<Instance>([]), ports: frozen([port]), networks: frozen([net]), claims: frozen(await claims()) }, quiet).reconcile({ namespace: 'default', name });
      return (await fake.get<Port>(PORTS, 'default', name))!;
    };
    const p0 = await pass('p0');
    assert.equal(most, 2, 'the IP and MAC claims were created one after the other');
    assert.equal(p0.status?.ip, '10.0.0.2');
    const p1 = await pass('p1');
    assert.equal(p1.status?.conditions?.find((c) => c.type === 'Allocated')?.reason, 'AddressesExhausted');
    const macsOf = async (uid: string) => (await claims()).filter((c) => c.spec.type === 'MAC' && c.metadata.ownerReferences?.[0]?.uid === uid);
    const [mac] = await macsOf(p1.metadata.uid!);
    assert.ok(mac, 'the MAC claim belongs to the port (collected with it)');
    // The address is freed: the port gets it, and the same MAC, claimed again as its own.
    await fake.delete(ADDRESS_CLAIMS, 'default', (await claims()).find((c) => c.spec.type === 'IP')!.metadata.name!);
    const done = await pass('p1');
    assert.deepEqual([done.status?.ip, done.status?.mac], ['10.0.0.2', mac.spec.address]);
    assert.equal((await macsOf(p1.metadata.uid!)).length, 1);
  });

  it('a vxlan network that holds its VNI (as the claims cache shows) writes only its new allocated count', async () => {
    const fake = new FakeClient();
    await fake.create<Network>(NETWORKS, { metadata: { namespace: 'default', name: 'net1' }, spec: { type: 'vxlan', cidr: '10.0.0.0/24' } });
    const sg = { metadata: { namespace: 'default', name: DEFAULT_SECURITY_GROUP } } as SecurityGroup;
    const pass = async () => {
      const [net, claims] = [await fake.get<Network>(NETWORKS, 'default', 'net1'), (await fake.list<AddressClaim>(ADDRESS_CLAIMS)).items];
      await new NetworkReconciler(fake, { networks: frozen([net!]), claims: frozen(claims), securityGroups: frozen([sg]) } as never, quiet).reconcile({ namespace: 'default', name: 'net1' });
    };
    await pass();
    const vni = (await fake.get<Network>(NETWORKS, 'default', 'net1'))!.status?.vni;
    assert.ok(vni !== undefined, 'claimed a VNI');
    // A port's address is claimed: the allocated count changes.
    await fake.create<AddressClaim>(ADDRESS_CLAIMS, { metadata: { namespace: 'default', name: 'ip-x' }, spec: { type: 'IP', address: '10.0.0.5', network: 'default/net1', networkUID: (await fake.get<Network>(NETWORKS, 'default', 'net1'))!.metadata.uid!, owner: 'Port/default/p1' } });
    const n = fake.calls.length;
    await pass();
    assert.deepEqual(writes(fake, n), ['updateStatus networks/net1'], 'no VNI claim create');
    assert.equal(fake.calls.slice(n).filter((c) => c.verb === 'get' && c.resource === 'addressclaims').length, 0, 'nor its read');
    const st = (await fake.get<Network>(NETWORKS, 'default', 'net1'))!.status;
    assert.deepEqual([st?.vni, st?.allocated], [vni, 1]);
  });
});
