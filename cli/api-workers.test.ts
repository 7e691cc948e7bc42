import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defaultApiWorkers } from './api-workers.js';

describe('defaultApiWorkers', () => {
  it('kova up leaves a core each to etcd and the controllers; kova apiserver only to the etcd it runs; 1 to 8', () => {
    const table: Array<[cores: number, what: 'up' | 'apiserver', externalEtcd: boolean, workers: number]> = [
      [1, 'up', false, 1], [2, 'up', false, 1], [2, 'up', true, 1], [4, 'up', false, 2], [16, 'up', true, 8],
      [1, 'apiserver', true, 1], [2, 'apiserver', true, 2], [2, 'apiserver', false, 1], [4, 'apiserver', false, 3], [12, 'apiserver', true, 8],
    ];
    for (const [cores, what, externalEtcd, workers] of table) {
      assert.equal(defaultApiWorkers(cores, what, externalEtcd), workers, `${cores} cores, kova ${what}, external etcd ${externalEtcd}`);
    }
  });
});
