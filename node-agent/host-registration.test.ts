import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Host } from '../api/kinds/index.js';
import { applyHostStatus, microTime } from './host-registration.js';

const facts = { info: { vcpus: 8, memoryBytes: 32 * 2 ** 30, diskBytes: 500 * 2 ** 30, hypervisor: 'QEMU 7.2 (tcg)', architecture: 'x86_64' }, driver: 'libvirt' as const };

test('microTime has six fractional digits', () => {
  assert.equal(microTime(new Date('2026-11-25T10:00:00.123Z')), '2026-11-25T10:00:00.123000Z');
});

test('applyHostStatus fills capacity, default allocatable and Ready, then reports no change', () => {
  const host: Host = { apiVersion: 'kova.dev/v1alpha1', kind: 'Host', metadata: { name: 'h', generation: 3 } };
  assert.equal(applyHostStatus(host, facts, new Date('2026-01-01T00:00:00Z')), true);
  const st = host.status as Record<string, any>;
  assert.deepEqual(st.capacity, { vcpus: 8, memory: '32Gi', disk: '500Gi' });
  assert.deepEqual(st.allocatable, { vcpus: 128, memory: '48Gi', disk: '500Gi' });
  assert.equal(st.driver, 'libvirt');
  assert.equal(st.hypervisor, 'QEMU 7.2 (tcg)');
  assert.equal(st.observedGeneration, 3);
  assert.deepEqual(st.conditions, [{ type: 'Ready', status: 'True', reason: 'AgentReady', message: 'kova agent is posting ready status', lastTransitionTime: '2026-01-01T00:00:00Z' }]);
  assert.equal(applyHostStatus(host, facts, new Date('2026-01-02T00:00:00Z')), false);
});

test('applyHostStatus keeps the host controller’s allocatable and other conditions, and re-asserts Ready', () => {
  const host: Host = {
    apiVersion: 'kova.dev/v1alpha1',
    kind: 'Host',
    metadata: { name: 'h' },
    status: {
      allocatable: { vcpus: 64, memory: '32Gi', disk: '500Gi' },
      conditions: [
        { type: 'Ready', status: 'False', reason: 'HeartbeatExpired', message: 'x', lastTransitionTime: 'a' },
        { type: 'Other', status: 'True', lastTransitionTime: 'b' },
      ],
    },
  };
  assert.equal(applyHostStatus(host, facts, new Date('2026-01-01T00:00:00Z')), true);
  const st = host.status as Record<string, any>;
  assert.deepEqual(st.allocatable, { vcpus: 64, memory: '32Gi', disk: '500Gi' });
  assert.deepEqual(st.conditions.map((c: any) => [c.type, c.status, c.lastTransitionTime]), [['Ready', 'True', '2026-01-01T00:00:00Z'], ['Other', 'True', 'b']]);
});
