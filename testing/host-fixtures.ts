// Hosts without node agents, for tests and benchmarks: the Host object, its status as an agent
// and the host controller would write it (capacity, allocatable, Ready), and a long heartbeat
// Lease so a running host controller keeps it Ready.
import { HOSTS, LEASES } from '../client/client.js';
import type { KovaClient } from '../client/client.js';
import { computeAllocatable, formatResources, parseResources } from '../api/resources.js';

export interface FakeHost {
  capacity: { vcpus: number; memory: string; disk: string };
  labels?: Record<string, string>;
  ready?: boolean;
  unschedulable?: boolean;
}

export async function registerHost(c: KovaClient, name: string, h: FakeHost): Promise<void> {
  await c.create(HOSTS, { metadata: { name, labels: h.labels ?? {} }, spec: { unschedulable: h.unschedulable ?? false } });
  const now = new Date();
  const ready = h.ready !== false;
  await c.patchStatus(HOSTS, undefined, name, {
    status: {
      capacity: h.capacity,
      allocatable: formatResources(computeAllocatable(parseResources(h.capacity))),
      driver: 'sim',
      conditions: [{ type: 'Ready', status: ready ? 'True' : 'False', reason: ready ? 'HeartbeatFresh' : 'HeartbeatExpired', lastTransitionTime: now.toISOString().replace(/\.\d+Z$/, 'Z') }],
    },
  });
  if (ready) {
    await c.create(LEASES, {
      metadata: { name, namespace: 'kova-system' },
      // MicroTime: six fractional digits.
      spec: { holderIdentity: name, leaseDurationSeconds: 3600, renewTime: now.toISOString().replace('Z', '000Z') },
    });
  }
}
