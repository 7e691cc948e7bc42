import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Instance, Migration, Volume, VolumeType } from '../../api/kinds/index.js';
import { effectiveMode, failedStatus, storagePlan, succeededStatus, targetQuery } from './plan.js';

const inst = (spec: Partial<Instance['spec']>, status: Instance['status'] = {}): Instance => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', metadata: { name: 'vm', namespace: 'p' }, spec: { flavor: 'f', ...spec }, status });
const mig = (spec: Partial<Migration['spec']> = {}): Migration => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'Migration', metadata: { name: 'm', namespace: 'p' }, spec: { instance: 'vm', ...spec } });
const vol = (name: string, type: string): Volume => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'Volume', metadata: { name, namespace: 'p' }, spec: { size: '1Gi', volumeType: type } });
const vtype = (name: string, backend: 'local' | 'shared'): VolumeType => ({ apiVersion: 'kova.dev/v1alpha1', kind: 'VolumeType', metadata: { name }, spec: { backend } });
const lookups = {
  volume: (_ns: string, n: string) => ({ data: vol('data', 'local'), shared: vol('shared', 'nfs'), orphan: vol('orphan', 'gone') } as Record<string, Volume>)[n],
  volumeType: (n: string) => ({ local: vtype('local', 'local'), nfs: vtype('nfs', 'shared') } as Record<string, VolumeType>)[n],
};

describe('migration plan', () => {
  it('runs Live for a running or paused guest and Cold for a stopped one, unless the Migration says', () => {
    const table: Array<[Instance['status'], Migration['spec']['mode'], 'Live' | 'Cold']> = [
      [{ powerState: 'Running' }, undefined, 'Live'],
      [{ powerState: 'Paused' }, undefined, 'Live'],
      [{ powerState: 'Shutdown' }, undefined, 'Cold'],
      [{ powerState: 'Crashed' }, undefined, 'Cold'],
      [{}, undefined, 'Cold'],
      [{ powerState: 'Running' }, 'Cold', 'Cold'],
      [{ powerState: 'Shutdown' }, 'Live', 'Live'],
    ];
    for (const [st, mode, want] of table) assert.equal(effectiveMode(mig({ mode }), inst({}, st)), want, `${JSON.stringify(st)} ${mode}`);
  });

  it('copies local disks, shares what is shared, and names what is missing', () => {
    assert.deepEqual(storagePlan(inst({ image: 'img' }), 'Live', lookups), { storage: 'BlockCopy', localVolumes: [] });
    const withLocal = storagePlan(inst({ image: 'img', volumes: [{ volume: 'data' }, { volume: 'shared' }] }), 'Live', lookups);
    assert.ok('storage' in withLocal && withLocal.storage === 'BlockCopy' && withLocal.localVolumes.map((v) => v.metadata.name).join() === 'data');
    assert.deepEqual(storagePlan(inst({ volumes: [{ volume: 'shared', bootOrder: 1 }] }), 'Live', lookups), { storage: 'Shared', localVolumes: [] });
    assert.deepEqual(storagePlan(inst({ volumes: [{ volume: 'shared', bootOrder: 1 }] }), 'Cold', lookups), { storage: 'None', localVolumes: [] });
    assert.deepEqual(storagePlan(inst({ volumes: [{ volume: 'nope', bootOrder: 1 }] }), 'Live', lookups), { error: 'volume "nope" not found' });
    assert.deepEqual(storagePlan(inst({ volumes: [{ volume: 'orphan', bootOrder: 1 }] }), 'Live', lookups), { error: 'VolumeType "gone" of volume "orphan" not found' });
  });

  it('asks the filters for the Migration\'s target and selector, not the instance\'s own pin to its host', () => {
    const pinned = inst({ hostName: 'h1', nodeSelector: { a: '1' } }, { hostName: 'h1' });
    assert.equal(targetQuery(pinned, mig()).spec.hostName, undefined);
    assert.equal(targetQuery(pinned, mig({ targetHost: 'h3' })).spec.hostName, 'h3');
    assert.deepEqual(targetQuery(pinned, mig({ nodeSelector: { b: '2' } })).spec.nodeSelector, { a: '1', b: '2' });
    assert.equal(pinned.spec.hostName, 'h1', 'the instance itself is not changed');
  });

  it('ends with both conditions set, keeping an end time already written', () => {
    const f = failedStatus({ phase: 'Running', endTime: '2026-01-01T00:00:00Z' }, 'Aborted', 'deleted');
    assert.equal(f.phase, 'Failed');
    assert.equal(f.endTime, '2026-01-01T00:00:00Z');
    assert.deepEqual(f.conditions!.map((c) => [c.type, c.status, c.reason]), [['Failed', 'True', 'Aborted'], ['Succeeded', 'False', 'Aborted']]);
    const s = succeededStatus({ phase: 'Running', targetHost: 'h2' });
    assert.equal(s.progress, 100);
    assert.deepEqual(s.conditions!.map((c) => [c.type, c.status]), [['Succeeded', 'True'], ['Failed', 'False']]);
    assert.match(s.conditions![0].message!, /host h2/);
  });
});
