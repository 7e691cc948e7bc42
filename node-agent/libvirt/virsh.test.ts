import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PowerState } from '../driver.js';
import { parseDomState, parseEventLine, parseKeyValues, parseOwnerMetadata, VirshError } from './virsh.js';

describe('virsh output parsers', () => {
  it('maps domain states and reasons', () => {
    assert.equal(parseDomState('running (booted)\n'), PowerState.Running);
    assert.equal(parseDomState('in shutdown (user)'), PowerState.Running);
    assert.equal(parseDomState('paused (user)'), PowerState.Paused);
    assert.equal(parseDomState('shut off (destroyed)'), PowerState.Shutdown);
    assert.equal(parseDomState('shut off (shutdown)'), PowerState.Shutdown);
    assert.equal(parseDomState('shut off (crashed)'), PowerState.Crashed);
    assert.equal(parseDomState('crashed (panicked)'), PowerState.Crashed);
    assert.equal(parseDomState('no state'), PowerState.NoState);
  });

  it('reads key/value listings', () => {
    const m = parseKeyValues('Id:             3\nName:           kova-a.b\nMax memory:     262144 KiB\n');
    assert.equal(m.get('Name'), 'kova-a.b');
    assert.equal(m.get('Max memory'), '262144 KiB');
  });

  it('reads kova metadata and unescapes it', () => {
    assert.deepEqual(parseOwnerMetadata('<instance>\n  <key>a/&lt;b&amp;</key>\n  <uid>u&#49;</uid>\n</instance>\n'), { instanceKey: 'a/<b&', instanceUID: 'u1' });
    assert.equal(parseOwnerMetadata(''), undefined);
  });

  it('parses lifecycle and reboot events', () => {
    assert.deepEqual(parseEventLine("event 'lifecycle' for domain 'kova-a.b': Stopped Shutdown"), { domain: 'kova-a.b', event: 'Stopped', detail: 'Shutdown' });
    assert.deepEqual(parseEventLine("event 'lifecycle' for domain 'd': Shutdown Finished after host request"), { domain: 'd', event: 'Shutdown', detail: 'Finished after host request' });
    assert.deepEqual(parseEventLine("event 'reboot' for domain 'd'"), { domain: 'd', event: 'Rebooted', detail: '' });
    assert.equal(parseEventLine("event 'rtc-change' for domain 'd': 3"), undefined);
    assert.equal(parseEventLine('events received: 3'), undefined);
  });

  it('tells "no such domain" from other failures', () => {
    assert.equal(new VirshError(['dominfo'], "error: failed to get domain 'x'\n").noDomain, true);
    assert.equal(new VirshError(['destroy'], 'error: Requested operation is not valid: domain is not running').notRunning, true);
    assert.equal(new VirshError(['start'], 'error: internal error: qemu unexpectedly closed the monitor').noDomain, false);
  });
});
