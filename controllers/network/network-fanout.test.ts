// The port workers are woken by what ports depend on: a network's spec, not its status. The
// network's status moves with every address handed out (status.allocated), and waking each of
// its ports for each of those made the port workers' work grow with the square of the ports
// (in bench:chaos, a third of the controllers' CPU while 1,000 instances were deleted).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClient } from '../../client/fake.js';
import { NETWORKS, PORTS } from '../../api/kinds/index.js';
import { NAMESPACES } from '../../client/client.js';
import type { Network, Port } from '../../api/kinds/index.js';
import { waitFor } from '../../testing/etcd.js';
import { startNetworkControllers } from './network-controllers.js';

const PORT_COUNT = 30;

describe('network events and the port workers', () => {
  it('a status write of a network wakes none of its ports; a spec change wakes them all', async () => {
    const fake = new FakeClient();
    fake.seed(NAMESPACES, { metadata: { name: 'demo' } });
    await fake.create<Network>(NETWORKS, { metadata: { namespace: 'demo', name: 'private' }, spec: { type: 'vxlan', cidr: '10.30.0.0/24' } });
    for (let i = 0; i < PORT_COUNT; i++) await fake.create<Port>(PORTS, { metadata: { namespace: 'demo', name: `p${i}` }, spec: { network: 'private' } });
    const ac = new AbortController();
    const h = await startNetworkControllers({ client: fake, signal: ac.signal, log: () => undefined });
    try {
      const allocated = async () => (await fake.list<Port>(PORTS, 'demo')).items.filter((p) => p.status?.ip).length;
      await waitFor(async () => (await allocated()) === PORT_COUNT, 'every port allocated');
      const network = async () => (await fake.get<Network>(NETWORKS, 'demo', 'private'))!;
      await waitFor(async () => (await network()).status?.allocated === PORT_COUNT, 'the network counting them');
      const ports = h.controllers.ports;
      const idle = () => ports.queue.len() === 0 && ports.queue.processingCount() === 0;
      await waitFor(idle, 'the port workers idle');
      const before = ports.stats.reconciles;

      // What a host's network agent writes: its condition in the network's status.
      for (const host of ['node-1', 'node-2', 'node-3']) {
        await fake.updateStatus<Network>(NETWORKS, 'demo', 'private', (n) => {
          n.status = { ...n.status, conditions: [...(n.status?.conditions ?? []), { type: `host.kova.dev/${host}`, status: 'True', reason: 'Configured', message: '' }] };
        });
      }
      await waitFor(async () => ((await network()).status?.conditions ?? []).length >= 4, 'the host conditions aggregated');
      await new Promise((r) => setTimeout(r, 200));
      await waitFor(idle, 'the port workers idle');
      assert.equal(ports.stats.reconciles - before, 0, 'status writes of the network woke its ports');

      // A spec change is theirs to see (the DNS servers they hand out, the cidr they check).
      await fake.update<Network>(NETWORKS, { ...(await network()), spec: { type: 'vxlan', cidr: '10.30.0.0/24', dns: ['10.30.0.2'] } });
      await waitFor(() => ports.stats.reconciles - before >= PORT_COUNT, 'every port reconciled again');
    } finally {
      ac.abort();
      await h.done;
    }
  });
});
