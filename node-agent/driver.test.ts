import assert from 'node:assert/strict';
import { test } from 'node:test';
import { domainName, DriverError, MAX_DOMAIN_NAME } from './driver.js';

test('domainName is kova-<namespace>.<name> when short', () => {
  assert.equal(domainName('demo', 'web-1', 'u1'), 'kova-demo.web-1');
});

test('domainName does not collide where dashes would', () => {
  // With a dash as separator both would be kova-a-b-c.
  assert.notEqual(domainName('a-b', 'c', 'u1'), domainName('a', 'b-c', 'u2'));
});

test('domainName truncates long names with a hash of the uid and stays valid', () => {
  const ns = 'n'.repeat(63);
  const name = 'x'.repeat(63);
  const a = domainName(ns, name, 'uid-a');
  const b = domainName(ns, name, 'uid-b');
  assert.equal(a.length, MAX_DOMAIN_NAME);
  assert.notEqual(a, b);
  assert.match(a, /^kova-[a-z0-9.-]+-[0-9a-f]{12}$/);
  assert.equal(domainName(ns, name, 'uid-a'), a, 'deterministic');
});

test('domainName refuses values that are not DNS labels', () => {
  assert.throws(() => domainName('demo', 'a/b', 'u'), DriverError);
  assert.throws(() => domainName('Demo', 'a', 'u'), DriverError);
  assert.throws(() => domainName('demo', "a'><x", 'u'), DriverError);
});
