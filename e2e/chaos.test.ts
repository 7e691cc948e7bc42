// Fault injection at a small size (bench:chaos is the large one): 6 sim hosts, 100 instances, etcd with TLS,
// created and deleted through the API while an etcd member is SIGKILLed and another SIGSTOPped,
// and the API server, the leading `kova controllers` and a node agent are SIGKILLed (each
// restarted); every invariant must be 0 and the system must converge. The invariant checks
// themselves are first shown to catch what they count, on planted snapshots.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AddressClaim, Host, Instance, Port } from '../api/kinds/index.js';
import { checkInvariants, FAULT_KINDS, leftovers, runChaos, seededRandom } from '../testing/chaos.js';
import type { ChaosSnapshot, HostDomain } from '../testing/chaos.js';

const inst = (name: string, uid: string, host: string): Instance => ({
  apiVersion: 'kova.dev/v1alpha1', kind: 'Instance',
  metadata: { name, namespace: 'chaos', uid },
  spec: { flavor: 'f', image: 'i' },
  status: { phase: 'Running', hostName: host },
} as Instance);
const port = (name: string, ip: string, mac: string): Port => ({
  apiVersion: 'kova.dev/v1alpha1', kind: 'Port', metadata: { name, namespace: 'chaos', uid: `u-${name}` }, spec: { network: 'net' }, status: { ip, mac },
});
const host = (name: string, allocated = 2): Host => ({
  apiVersion: 'kova.dev/v1alpha1', kind: 'Host', metadata: { name },
  status: { allocatable: { vcpus: 4, memory: '4Gi', disk: '10Gi' }, allocated: { vcpus: allocated, memory: '1Gi', disk: '2Gi' } },
});
const dom = (h: string, uid: string, vcpus = 1): HostDomain => ({ host: h, name: `d-${uid}`, instanceKey: `chaos/${uid}`, instanceUID: uid, vcpus, memoryBytes: 2 ** 28, diskBytes: 2 ** 30 });

/** Two instances on two hosts, each with its one domain and port: every invariant holds. */
function healthy(): ChaosSnapshot {
  return {
    acknowledged: ['a', 'b'], attempted: ['a', 'b'],
    instances: [inst('a', 'ua', 'h0'), inst('b', 'ub', 'h1')],
    ports: [port('a-0', '10.0.0.2', '02:00:00:00:00:02'), port('b-0', '10.0.0.3', '02:00:00:00:00:03')],
    hosts: [host('h0'), host('h1')],
    claims: [],
    domains: [dom('h0', 'ua'), dom('h1', 'ub')],
  };
}

describe('chaos invariants', () => {
  it('are all 0 on a healthy snapshot and count each planted fault', () => {
    assert.ok(Object.values(checkInvariants(healthy())).every((v) => v === 0), JSON.stringify(checkInvariants(healthy())));
    const plant = (f: (s: ChaosSnapshot) => void) => {
      const s = healthy();
      f(s);
      return checkInvariants(s);
    };
    assert.equal(plant((s) => s.ports.push(port('c-0', '10.0.0.2', '02:00:00:00:00:09'))).ips_allocated_twice, 1);
    assert.equal(plant((s) => s.ports.push(port('c-0', '10.0.0.9', '02:00:00:00:00:02'))).macs_allocated_twice, 1);
    // The same IP on another network is no conflict.
    assert.equal(plant((s) => s.ports.push({ ...port('c-0', '10.0.0.2', '02:00:00:00:00:09'), spec: { network: 'other' } })).ips_allocated_twice, 0);
    assert.equal(plant((s) => s.domains.push(dom('h1', 'gone'))).domains_without_instance, 1);
    // A domain on a host its instance is not bound to belongs to no instance there, and makes two.
    const moved = plant((s) => s.domains.push(dom('h1', 'ua')));
    assert.equal(moved.domains_without_instance, 1);
    assert.equal(moved.instances_with_two_domains, 1);
    assert.equal(plant((s) => s.instances.pop()).instances_lost, 1);
    assert.equal(plant((s) => (s.instances[0]!.status!.phase = 'Scheduling')).instances_lost, 1);
    assert.equal(plant((s) => s.instances.push(inst('a', 'ua2', 'h1'))).instances_duplicated, 1);
    assert.equal(plant((s) => s.instances.push(inst('stranger', 'us', 'h1'))).instances_duplicated, 1);
    assert.equal(plant((s) => (s.hosts[0] = host('h0', 5))).hosts_over_allocated, 1);
    assert.equal(plant((s) => s.domains.push(...Array.from({ length: 4 }, (_, i) => ({ ...dom('h0', 'ua'), name: `x${i}` })))).hosts_over_allocated, 1);
  });

  it('leftovers count what deleting everything left behind', () => {
    const empty: ChaosSnapshot = { acknowledged: [], attempted: [], instances: [], ports: [], hosts: [host('h0', 0)], claims: [], domains: [] };
    assert.deepEqual(leftovers(empty), { instances: 0, ports: 0, domains: 0, address_claims: 0, host_allocations: 0 });
    const claim = (owner: string) => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'AddressClaim', metadata: { name: owner }, spec: { type: 'IP', address: '10.0.0.2', network: 'chaos/net', owner } }) as AddressClaim;
    const h = host('h0', 0);
    h.status!.allocations = [{ uid: 'ua', instance: 'chaos/a', vcpus: 1 }];
    assert.deepEqual(leftovers({ ...empty, domains: [dom('h0', 'ua')], claims: [claim('Port/chaos/a-0'), claim('Network/chaos/net')], hosts: [h] }), { instances: 0, ports: 0, domains: 1, address_claims: 1, host_allocations: 1 });
  });

  it('the seeded random sequence replays', () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    const xs = Array.from({ length: 5 }, () => a());
    assert.deepEqual(Array.from({ length: 5 }, () => b()), xs);
    assert.ok(xs.every((x) => x >= 0 && x < 1));
  });
});

describe('chaos: faults while creating and deleting instances', () => {
  it('6 hosts, 100 instances: nothing lost, duplicated, leaked or overbooked; converges', { timeout: 300_000 }, async () => {
    const seed = Number(process.env.KOVA_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const r = await runChaos({
      hosts: 6, instances: 100, waves: 3, seed, etcdTls: true, stallMs: 5000, rounds: 1, gapMs: [0, 2500], waveMs: 3000, convergeTimeoutMs: 90_000,
      log: (m) => process.stderr.write(`chaos: ${m}\n`),
    });
    const msg = `seed ${seed} (replay: KOVA_CHAOS_SEED=${seed}): ${JSON.stringify(r)}`;
    process.stderr.write(`chaos: ${msg}\n`);
    for (const k of FAULT_KINDS) assert.equal(r.faults[k], 1, `fault ${k} injected once; ${msg}`);
    assert.deepEqual({
      instances_lost: r.instances_lost, instances_duplicated: r.instances_duplicated, domains_without_instance: r.domains_without_instance,
      instances_with_two_domains: r.instances_with_two_domains, ips_allocated_twice: r.ips_allocated_twice, macs_allocated_twice: r.macs_allocated_twice,
      hosts_over_allocated: r.hosts_over_allocated, objects_left: r.objects_left,
    }, {
      instances_lost: 0, instances_duplicated: 0, domains_without_instance: 0, instances_with_two_domains: 0,
      ips_allocated_twice: 0, macs_allocated_twice: 0, hosts_over_allocated: 0, objects_left: 0,
    }, msg);
    assert.ok(r.converged, `converged within 90 s of the last fault; ${msg}`);
    assert.ok(r.converge_s <= 60, `converged ${r.converge_s} s after the last fault; ${msg}`);
  });
});
