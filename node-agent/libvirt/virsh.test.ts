import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PowerState } from '../driver.js';
import { parseDomainDisks, parseDomState, parseEventLine, parseKeyValues, parseOwnerMetadata, VirshError } from './virsh.js';

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

  // Lines as `virsh event --all --loop` printed them (libvirt 9.0) around hot plug and an online snapshot.
  it('parses device removal events by alias and ignores other device and block-job events', () => {
    assert.deepEqual(parseEventLine("event 'device-removed' for domain 'kova-x.exp': ua-vol-one"), { domain: 'kova-x.exp', event: 'device-removed', detail: 'ua-vol-one' });
    assert.deepEqual(parseEventLine("event 'device-removed' for domain 'kova-x.exp': virtio-disk1"), { domain: 'kova-x.exp', event: 'device-removed', detail: 'virtio-disk1' });
    assert.deepEqual(parseEventLine("event 'device-removal-failed' for domain 'd': ua-0b9c5a3e-6f0d-4c1e-9"), { domain: 'd', event: 'device-removal-failed', detail: 'ua-0b9c5a3e-6f0d-4c1e-9' });
    assert.equal(parseEventLine("event 'device-added' for domain 'kova-x.exp': ua-vol-one"), undefined);
    assert.equal(parseEventLine("event 'block-job' for domain 'kova-x.exp': Active Block Commit for /tmp/vexp/ov.qcow2 ready"), undefined);
    assert.equal(parseEventLine("event 'block-job-2' for domain 'kova-x.exp': Active Block Commit for vdb completed"), undefined);
  });

  it('reads disks, serials, aliases and backing chains from a live dumpxml (an online snapshot overlay in place)', () => {
    const xml = readFileSync(fileURLToPath(new URL('../../../node-agent/libvirt/testdata/dumpxml-live-overlay.xml', import.meta.url)), 'utf8');
    assert.deepEqual(parseDomainDisks(xml), [
      {
        device: 'disk', target: 'vda', source: '/var/lib/kova/libvirt/domains/kova-x.exp/root.qcow2',
        backing: ['/var/tmp/kova-test-guest/kova-test-guest-e929e0d33bcaeca7.qcow2'], alias: 'virtio-disk0', readOnly: false,
      },
      {
        device: 'disk', target: 'vdb', source: '/var/lib/kova/libvirt/volumes/0d5a7c1e-2b3f-4a6d-8e9f-1a2b3c4d5e6f.overlay.qcow2',
        backing: ['/var/lib/kova/libvirt/volumes/7f3e2d1c-0b9a-4876-a5b4-c3d2e1f00a1b.qcow2'], serial: '7f3e2d1c-0b9a-4876-a', alias: 'ua-7f3e2d1c-0b9a-4876-a', readOnly: false,
      },
      { device: 'cdrom', target: 'sda', source: '/var/lib/kova/libvirt/domains/kova-x.exp/seed.iso', backing: [], alias: 'scsi0-0-0-0', readOnly: true },
    ]);
    assert.deepEqual(parseDomainDisks("<disk type='file' device='disk'><source file='/a&apos;b'/><target dev='vdc' bus='virtio'/><serial>s&amp;1</serial><readonly/></disk>"), [
      { device: 'disk', target: 'vdc', source: "/a'b", backing: [], serial: 's&1', readOnly: true },
    ]);
    assert.deepEqual(parseDomainDisks('<domain/>'), []);
  });

  it('tells "no such domain" from other failures', () => {
    assert.equal(new VirshError(['dominfo'], "error: failed to get domain 'x'\n").noDomain, true);
    assert.equal(new VirshError(['destroy'], 'error: Requested operation is not valid: domain is not running').notRunning, true);
    assert.equal(new VirshError(['start'], 'error: internal error: qemu unexpectedly closed the monitor').noDomain, false);
  });
});
