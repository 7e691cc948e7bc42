import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chooseSubnet, dataDirTag, localHostsLayout, MAX_LOCAL_HOSTS, renderLibvirtdConf, renderQemuConf } from './local-hosts-config.js';

const UUIDS = ['0b9c1c3e-4a8e-4f51-9d5e-1f5b8c0f2a01', '6f1d6f0e-2f4c-4d0e-8a8b-7e0c7b9a5c02', 'a3e5d9c1-7b2f-4e6a-9c1d-3b5f7a9c1e03'];

describe('local hosts: addresses and names', () => {
  it('picks a /24 of 100.64.0.0/10 from the data dir, the same each time, different for another dir', () => {
    const a = chooseSubnet('/var/lib/kova', []);
    assert.match(a, /^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.\d{1,3}$/);
    assert.equal(chooseSubnet('/var/lib/kova', []), a);
    assert.notEqual(chooseSubnet('/tmp/kova-e2e-abc', []), a);
  });

  it('skips a /24 that overlaps an address or route in use', () => {
    const a = chooseSubnet('/d', []);
    const cases: Array<[string[], boolean]> = [
      [[`${a}.0/24`], true],
      [[`${a}.17/32`], true],
      [[`${a}.5`], true],
      [[`${a.split('.').slice(0, 2).join('.')}.0.0/16`], true],
      [['10.0.0.0/8', '192.168.1.0/24'], false],
      [['not-a-cidr', '1.2.3.4/40'], false],
    ];
    for (const [taken, moves] of cases) {
      const got = chooseSubnet('/d', taken);
      assert.equal(got !== a, moves, `${taken.join(',')}: ${got}`);
      assert.match(got, /^100\.\d+\.\d+$/);
    }
    assert.throws(() => chooseSubnet('/d', ['100.64.0.0/10']), /no free \/24/);
  });

  it('lays out hosts: names, namespaces, veths, tunnel IPs, URIs, port ranges', () => {
    const l = localHostsLayout('/var/lib/kova', 3, { subnet: '100.70.3', hostUUIDs: UUIDS });
    const tag = dataDirTag('/var/lib/kova');
    assert.equal(l.bridge, `kvhb${tag}`);
    assert.equal(l.bridgeIP, '100.70.3.254');
    assert.deepEqual(l.hosts.map((h) => h.name), ['host-1', 'host-2', 'host-3']);
    assert.deepEqual(l.hosts.map((h) => h.tunnelIP), ['100.70.3.1', '100.70.3.2', '100.70.3.3']);
    assert.deepEqual(l.hosts.map((h) => h.hostUUID), UUIDS);
    const h2 = l.hosts[1]!;
    assert.equal(h2.netns, `kova-${tag}-host-2`);
    assert.equal(h2.veth, `kvh${tag}-2`);
    assert.equal(h2.uri, 'qemu+unix:///system?socket=/var/lib/kova/hosts/host-2/libvirt/run/libvirt-sock');
    assert.equal(h2.stateDir, '/var/lib/kova/hosts/host-2/libvirt-driver');
    assert.deepEqual(l.hosts.map((h) => h.migrationPorts), [{ min: 49400, max: 49463 }, { min: 49500, max: 49563 }, { min: 49600, max: 49663 }]);
    // Interface names fit IFNAMSIZ even for the last host.
    const last = localHostsLayout('/x', MAX_LOCAL_HOSTS, { subnet: '100.70.3', hostUUIDs: Array(MAX_LOCAL_HOSTS).fill(UUIDS[0]) });
    for (const n of [last.bridge, last.hosts.at(-1)!.veth]) assert.ok(n.length <= 15, n);
  });

  it('refuses bad counts, a short record and a data dir too long for the socket', () => {
    const rec = { subnet: '100.70.3', hostUUIDs: UUIDS };
    for (const n of [0, -1, 1.5, MAX_LOCAL_HOSTS + 1]) assert.throws(() => localHostsLayout('/d', n, rec), /integer from 1/);
    assert.throws(() => localHostsLayout('/d', 4, rec), /3 host UUIDs, 4 needed/);
    assert.throws(() => localHostsLayout(`/${'d'.repeat(80)}`, 1, rec), /too long/);
  });
});

describe('local hosts: libvirt configuration', () => {
  it('libvirtd.conf: own host UUID, no auth on the Unix socket', () => {
    const conf = renderLibvirtdConf({ name: 'host-1', hostUUID: UUIDS[0]! });
    assert.match(conf, new RegExp(`^host_uuid = "${UUIDS[0]}"$`, 'm'));
    assert.match(conf, /^auth_unix_rw = "none"$/m);
  });

  it('qemu.conf: root without security driver, cgroups or namespaces; migration on the tunnel IP in its port range', () => {
    const conf = renderQemuConf({ name: 'host-2', tunnelIP: '100.70.3.2', migrationPorts: { min: 49500, max: 49563 } });
    for (const line of ['user = "root"', 'group = "root"', 'security_driver = "none"', 'cgroup_controllers = [ ]', 'namespaces = [ ]',
      'stdio_handler = "file"', 'remember_owner = 0', 'migration_address = "100.70.3.2"', 'migration_host = "100.70.3.2"',
      'migration_port_min = 49500', 'migration_port_max = 49563']) {
      assert.ok(conf.split('\n').includes(line), `${line} in\n${conf}`);
    }
  });
});
