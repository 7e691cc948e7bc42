import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bridgeMAC, isKovaDevice, networkDeviceName, portDeviceName } from './names.js';

test('derived device names are short, safe, distinct per kind and per object, and stable', () => {
  const names = new Set<string>();
  for (let i = 0; i < 5000; i++) {
    const id = { uid: `u-${i}`, namespace: 'a-very-long-namespace-name-that-goes-on', name: `network-with-a-long-name-${i}` };
    for (const n of [networkDeviceName('bridge', id), networkDeviceName('vxlan', id), networkDeviceName('vlan', id), portDeviceName('tap', id), portDeviceName('vethPeer', id)]) {
      assert.ok(n.length <= 15, n);
      assert.match(n, /^[a-z0-9-]+$/);
      assert.ok(!names.has(n), `collision ${n}`);
      names.add(n);
    }
  }
  const id = { uid: 'x', namespace: 'demo', name: 'private' };
  assert.equal(networkDeviceName('bridge', id), networkDeviceName('bridge', { ...id }));
  assert.notEqual(networkDeviceName('bridge', id), networkDeviceName('bridge', { ...id, uid: 'y' }));
  // Hostile text in names never reaches the device name.
  assert.match(networkDeviceName('bridge', { uid: 'u', namespace: 'a\n"; flush ruleset', name: '$(id)' }), /^kvb-[0-9a-f]{10}$/);
  assert.ok(isKovaDevice(networkDeviceName('vxlan', id)));
  assert.ok(isKovaDevice(portDeviceName('tap', id)));
  assert.ok(!isKovaDevice(portDeviceName('vethPeer', id)), 'peer ends live in instance namespaces');
  assert.ok(!isKovaDevice('eth0'));
  assert.match(bridgeMAC(id), /^02(:[0-9a-f]{2}){5}$/);
});
