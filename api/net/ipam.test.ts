import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultGateway, isUsable, macForPort, nextFreeAddress, parseCIDR, usableAddresses } from './ipam.js';
import { cidrContains } from './ipv4.js';

test('parseCIDR and the default gateway', () => {
  const c = parseCIDR('10.20.0.0/24');
  assert.equal(c.prefix, 24);
  assert.equal(defaultGateway('10.20.0.0/24'), '10.20.0.1');
  assert.equal(defaultGateway('192.168.4.0/22'), '192.168.4.1');
  assert.equal(defaultGateway('10.0.0.4/31'), '10.0.0.4');
  assert.ok(cidrContains(c, '10.20.0.255'));
  assert.ok(!cidrContains(c, '10.20.1.0'));
  assert.ok(!isUsable(c, '10.20.0.0'));
  assert.ok(!isUsable(c, '10.20.0.255'));
  assert.ok(isUsable(c, '10.20.0.254'));
  assert.deepEqual([...usableAddresses('10.0.0.0/30')], ['10.0.0.1', '10.0.0.2']);
  assert.throws(() => parseCIDR('10.20.0.1/24'), /cidr: CIDR "10.20.0.1\/24" has host bits set/);
});

test('nextFreeAddress skips used addresses and reports exhaustion', () => {
  assert.equal(nextFreeAddress('10.0.0.0/29', new Set(['10.0.0.1'])), '10.0.0.2');
  assert.equal(nextFreeAddress('10.0.0.0/29', new Set(['10.0.0.1', '10.0.0.2', '10.0.0.4'])), '10.0.0.3');
  const all = new Set([...usableAddresses('10.0.0.0/29')]);
  assert.equal(nextFreeAddress('10.0.0.0/29', all), undefined);
  assert.equal(nextFreeAddress('10.255.255.0/24', new Set(['10.255.255.1'])), '10.255.255.2');
});

test('macForPort is deterministic, QEMU-prefixed, and changes with the attempt', () => {
  const a = macForPort('uid-1');
  assert.match(a, /^52:54:00(:[0-9a-f]{2}){3}$/);
  assert.equal(a, macForPort('uid-1'));
  assert.notEqual(a, macForPort('uid-1', 1));
  assert.notEqual(a, macForPort('uid-2'));
});
