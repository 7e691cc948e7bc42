// onSpecChange: controller-runtime's GenerationChangedPredicate for kova's event mappers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KObject } from '../api/types.js';
import { onSpecChange } from './controller.js';

const obj = (uid: string, generation: number | undefined, status = 0): KObject => ({
  apiVersion: 'kova.dev/v1alpha1', kind: 'Network',
  metadata: { namespace: 'demo', name: 'private', uid, ...(generation === undefined ? {} : { generation }) },
  status: { allocated: status },
} as KObject);

describe('onSpecChange', () => {
  it('maps creation, spec changes, deletion and re-creation; drops status-only updates', () => {
    const seen: string[] = [];
    const map = onSpecChange((o: KObject, ev) => void seen.push(`${ev} ${o.metadata.uid}/${o.metadata.generation}/${(o.status as { allocated: number }).allocated}`));
    map(obj('a', 1), 'add');
    map(obj('a', 1, 1), 'update'); // status only: dropped
    map(obj('a', 1, 2), 'update'); // status only: dropped
    map(obj('a', 2, 2), 'update'); // spec changed
    map(obj('a', 2, 3), 'update'); // status only: dropped
    map(obj('a', 3, 3), 'delete');
    map(obj('b', 1, 0), 'update'); // the name again, a new object (its add may come as an update after a relist)
    map(obj('b', 1, 1), 'update');
    assert.deepEqual(seen, ['add a/1/0', 'update a/2/2', 'delete a/3/3', 'update b/1/0']);
  });

  it('passes every update of an object without a generation (it cannot tell spec from status)', () => {
    let n = 0;
    const map = onSpecChange(() => void n++);
    map(obj('a', undefined), 'add');
    map(obj('a', undefined, 1), 'update');
    map(obj('a', undefined, 2), 'update');
    assert.equal(n, 3);
  });

  it('returns what the wrapped mapper returns', () => {
    const map = onSpecChange((o: KObject) => [{ namespace: o.metadata.namespace, name: 'p1' }, { namespace: o.metadata.namespace, name: 'p2' }]);
    assert.deepEqual(map(obj('a', 1), 'add'), [{ namespace: 'demo', name: 'p1' }, { namespace: 'demo', name: 'p2' }]);
    assert.equal(map(obj('a', 1, 5), 'update'), undefined);
  });
});
