import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  validCIDR, validHostname, validIfName, validIPv4, validMAC, validPortNumber, validProtocol, validVlanID, validVNI,
} from './validate.js';

test('validators accept the grammar and name the field on anything else', () => {
  assert.equal(validIfName('f', 'eth1'), 'eth1');
  assert.equal(validIfName('f', 'bond0.100'), 'bond0.100');
  for (const bad of ['', 'a'.repeat(16), 'eth 1', 'eth1\n', 'a"b', 'a;b', '.', '..', 'a/b', 7]) {
    assert.throws(() => validIfName('spec.physicalInterface', bad), /^NetworkValidationError: spec\.physicalInterface: invalid interface name/);
  }
  assert.equal(validIPv4('f', '10.0.0.255'), '10.0.0.255');
  for (const bad of ['10.0.0', '10.0.0.256', '010.0.0.1', '10.0.0.1 ', '::1', '1.2.3.4/32', null]) assert.throws(() => validIPv4('spec.ip', bad), /spec\.ip/);
  assert.equal(validCIDR('f', '0.0.0.0/0'), '0.0.0.0/0');
  assert.equal(validCIDR('f', '10.1.2.3/32'), '10.1.2.3/32');
  for (const bad of ['10.0.0.0', '10.0.0.0/24/1', '10.0.0.0/-1', '10.0.0.0/33', '10.0.0.128/24', '10.0.0.0/024']) assert.throws(() => validCIDR('spec.cidr', bad), /spec\.cidr/);
  assert.equal(validMAC('f', '52:54:00:AB:cd:EF'), '52:54:00:ab:cd:ef');
  for (const bad of ['52:54:00:ab:cd', '52-54-00-ab-cd-ef', '01:00:5e:00:00:01', 'ff:ff:ff:ff:ff:ff', '00:00:00:00:00:00', '52:54:00:ab:cd:ef\n']) assert.throws(() => validMAC('spec.mac', bad), /spec\.mac/);
  assert.equal(validVNI('f', 1), 1);
  assert.equal(validVNI('f', 16777215), 16777215);
  for (const bad of [0, 16777216, 2.5, '5', NaN]) assert.throws(() => validVNI('spec.vni', bad), /spec\.vni: invalid VNI/);
  assert.equal(validVlanID('f', 4094), 4094);
  for (const bad of [0, 4095]) assert.throws(() => validVlanID('spec.vlanID', bad), /spec\.vlanID/);
  assert.equal(validPortNumber('f', 65535), 65535);
  assert.throws(() => validPortNumber('p', 65536), /p: invalid port/);
  assert.equal(validProtocol('f', 'udp'), 'udp');
  assert.throws(() => validProtocol('proto', 'sctp'), /proto: invalid protocol/);
  assert.equal(validHostname('h', 'web-1.demo'), 'web-1.demo');
  for (const bad of ['-web', 'web_1', 'Web', 'a'.repeat(64), 'web\nx', 'web,1']) assert.throws(() => validHostname('hostname', bad), /hostname/);
});
