import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Instance, Migration } from '../../api/kinds/index.js';
import { RESIZE_MIGRATION_LABEL } from '../../api/resize.js';
import type { Resources } from '../../api/resources.js';
import { resizeAction } from './resize.js';

const Mi = 2 ** 20;
const Gi = 2 ** 30;
const small: Resources = { vcpus: 1, memoryBytes: 512 * Mi, diskBytes: 1 * Gi };
const big: Resources = { vcpus: 2, memoryBytes: 1 * Gi, diskBytes: 2 * Gi };

function inst(o: { reason?: string; status?: 'True' | 'False'; condGen?: number; gen?: number; migrating?: boolean; hostName?: string | null } = {}): Instance {
  const conditions = o.reason ? [{ type: 'RestartRequired', status: o.status ?? 'True', reason: o.reason, message: 'x', observedGeneration: o.condGen ?? o.gen ?? 2, lastTransitionTime: '2026-01-01T00:00:00Z' }] : [];
  return {
    apiVersion: 'kova.dev/v1alpha1', kind: 'Instance',
    metadata: { name: 'web', namespace: 'demo', uid: 'u1', generation: o.gen ?? 2 },
    spec: { flavor: 'm1.big', image: 'tiny' },
    status: {
      ...(o.hostName === null ? {} : { hostName: o.hostName ?? 'h1' }),
      conditions,
      ...(o.migrating ? { migration: { name: 'other', sourceHost: 'h1', targetHost: 'h2' } } : {}),
    },
  };
}
function mig(name: string, phase?: string, failed?: { reason: string; message: string }, created = '2026-01-01T00:00:01Z'): Migration {
  return {
    apiVersion: 'kova.dev/v1alpha1', kind: 'Migration',
    metadata: { name, namespace: 'demo', creationTimestamp: created, labels: { [RESIZE_MIGRATION_LABEL]: 'u1' } },
    spec: { instance: 'web', mode: 'Cold' },
    status: { phase: phase as never, conditions: failed ? [{ type: 'Failed', status: 'True', reason: failed.reason, message: failed.message, lastTransitionTime: created }] : [] },
  };
}
const kindOf = (a: ReturnType<typeof resizeAction>) => (a.kind === 'setCondition' ? `${a.condition.status}/${a.condition.reason}` : a.kind);

describe('resizeAction: the instance controller\'s next step', () => {
  const table: Array<[string, Parameters<typeof resizeAction>[0], string]> = [
    ['unbound: nothing (the size applies at scheduling)', { inst: inst({ hostName: null }), wanted: big, charged: small, migrations: [] }, 'none'],
    ['flavor unknown: nothing', { inst: inst(), charged: small, migrations: [] }, 'none'],
    ['no allocation: nothing', { inst: inst(), wanted: big, migrations: [] }, 'none'],
    ['same size, no condition: nothing', { inst: inst(), wanted: small, charged: small, migrations: [] }, 'none'],
    ['size changed: FlavorChanged', { inst: inst(), wanted: big, charged: small, migrations: [] }, 'True/FlavorChanged'],
    ['FlavorChanged for this generation (maybe with the agent\'s note): kept', { inst: inst({ reason: 'FlavorChanged' }), wanted: big, charged: small, migrations: [] }, 'none'],
    ['FlavorChanged for an older generation: rewritten', { inst: inst({ reason: 'FlavorChanged', condGen: 1 }), wanted: big, charged: small, migrations: [] }, 'True/FlavorChanged'],
    ['smaller disk: DiskShrinkRefused (False)', { inst: inst(), wanted: { ...big, diskBytes: 512 * Mi }, charged: big, migrations: [] }, 'False/DiskShrinkRefused'],
    ['claimed, the agent is booting it: left to the agent', { inst: inst({ reason: 'FlavorChanged' }), wanted: big, charged: big, migrations: [] }, 'none'],
    ['the change was undone: Unchanged', { inst: inst({ reason: 'FlavorChanged', condGen: 1 }), wanted: small, charged: small, migrations: [] }, 'False/Unchanged'],
    ['a refused shrink was undone: Unchanged', { inst: inst({ reason: 'DiskShrinkRefused', status: 'False', condGen: 1 }), wanted: small, charged: small, migrations: [] }, 'False/Unchanged'],
    ['Resized stays Resized after an unrelated spec change', { inst: inst({ reason: 'Resized', status: 'False', condGen: 1 }), wanted: small, charged: small, migrations: [] }, 'none'],
    ['the agent asks for a move: create a Migration', { inst: inst({ reason: 'MoveRequired' }), wanted: big, charged: small, migrations: [] }, 'createMigration'],
    ['... but another migration moves it: wait', { inst: inst({ reason: 'MoveRequired', migrating: true }), wanted: big, charged: small, migrations: [] }, 'none'],
    ['a move was created: Moving', { inst: inst({ reason: 'MoveRequired' }), wanted: big, charged: small, migrations: [mig('web-resize-a', 'Pending')] }, 'True/Moving'],
    ['an old finished move does not count', { inst: inst({ reason: 'MoveRequired' }), wanted: big, charged: small, migrations: [mig('web-resize-a', 'Failed', { reason: 'Unschedulable', message: 'no' })] }, 'createMigration'],
    ['moving: wait', { inst: inst({ reason: 'Moving' }), wanted: big, charged: small, migrations: [mig('web-resize-a', 'Running')] }, 'none'],
    ['the move succeeded: the new host\'s agent finishes', { inst: inst({ reason: 'Moving' }), wanted: big, charged: big, migrations: [mig('web-resize-a', 'Succeeded')] }, 'none'],
    ['no host had room: NoHostWithRoom', { inst: inst({ reason: 'Moving' }), wanted: big, charged: small, migrations: [mig('old', 'Succeeded', undefined, '2025-01-01T00:00:00Z'), mig('web-resize-a', 'Failed', { reason: 'Unschedulable', message: '0/3 hosts available' })] }, 'True/NoHostWithRoom'],
    ['the move failed otherwise: MoveFailed', { inst: inst({ reason: 'Moving' }), wanted: big, charged: small, migrations: [mig('web-resize-a', 'Failed', { reason: 'TargetPrepareFailed', message: 'disk full' })] }, 'True/MoveFailed'],
    ['the move is gone: MoveFailed', { inst: inst({ reason: 'Moving' }), wanted: big, charged: small, migrations: [] }, 'True/MoveFailed'],
    ['NoHostWithRoom: the agent consumes it at the next boot', { inst: inst({ reason: 'NoHostWithRoom' }), wanted: big, charged: small, migrations: [] }, 'none'],
  ];
  for (const [name, input, want] of table) it(name, () => assert.equal(kindOf(resizeAction(input)), want));

  it('says old and new sizes and what happens next', () => {
    const a = resizeAction({ inst: inst(), wanted: big, charged: small, migrations: [] });
    assert.ok(a.kind === 'setCondition');
    assert.equal(a.condition.message, 'flavor m1.big asks for 2 vCPUs, 1Gi memory, 2Gi disk; the guest has 1 vCPU, 512Mi memory, 1Gi disk until its next restart (kova restart web, or a stop and start), which applies the new size on host h1 if it has room, or else moves the instance cold to a host that has');
    const n = resizeAction({ inst: inst({ reason: 'Moving' }), wanted: big, charged: small, migrations: [mig('web-resize-a', 'Failed', { reason: 'Unschedulable', message: '0/3 hosts available: 3 insufficient memory' })] });
    assert.ok(n.kind === 'setCondition');
    assert.equal(n.condition.message, 'no host has room for 2 vCPUs, 1Gi memory, 2Gi disk: 0/3 hosts available: 3 insufficient memory; the instance keeps 1 vCPU, 512Mi memory, 1Gi disk on host h1');
  });
});
