import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { nftTableName, nftTransaction, renderNft } from './render-nft.js';
import { planHost, VLAN_UNSUPPORTED_MESSAGE, type HostPlanResult } from './plan.js';
import type { HostInput, NetworkInput, PortInput } from './types.js';

// Goldens live next to the sources (dist/node-agent/network → node-agent/network/testdata).
const TESTDATA = join(dirname(fileURLToPath(import.meta.url)), '../../../node-agent/network/testdata');

function renderGolden(p: HostPlanResult): string {
  const { nft, dnsmasq, ...rest } = p;
  let s = '== plan ==\n' + JSON.stringify(rest, null, 2) + '\n== nftables ==\n' + nft;
  for (const d of dnsmasq) {
    s += `== dnsmasq ${d.confFile} ==\n${d.conf}== ${d.hostsFile} ==\n${d.hosts}== ${d.addnHostsFile} ==\n${d.addnHosts}`;
  }
  return s;
}

function golden(name: string, p: HostPlanResult): void {
  // The rendered ruleset must be accepted by the real nft parser and kernel (check mode, no commit).
  if (process.getuid?.() === 0) execFileSync('nft', ['-c', '-f', '-'], { input: nftTransaction(p.nft, p.nftTable) });
  const file = join(TESTDATA, `${name}.golden`);
  const got = renderGolden(p);
  if (process.env.UPDATE_GOLDEN === '1' || !existsSync(file)) {
    if (process.env.UPDATE_GOLDEN !== '1') assert.fail(`${file} missing; run with UPDATE_GOLDEN=1`);
    mkdirSync(TESTDATA, { recursive: true });
    writeFileSync(file, got);
    return;
  }
  assert.equal(got, readFileSync(file, 'utf8'), `${name} differs from ${file} (UPDATE_GOLDEN=1 to regenerate)`);
}

const CLUSTER_ID = '6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f';
const net = (o: Partial<NetworkInput> & Pick<NetworkInput, 'name' | 'type' | 'cidr'>): NetworkInput => ({
  uid: `uid-${o.name}`, namespace: 'demo', dhcp: true, ...o,
});
const port = (o: Partial<PortInput> & Pick<PortInput, 'name' | 'network' | 'ip' | 'mac'>): PortInput => ({
  uid: `uid-${o.name}`, namespace: 'demo', securityGroups: ['default'], ...o,
});
const base = (o: Partial<HostInput>): HostInput => ({
  hostName: 'node-1', tunnelIP: '192.0.2.10', networks: [], ports: [], peers: [], securityGroups: [],
  floatingIPs: [], kernel: { vlan: true }, stateDir: '/var/lib/kova/network', clusterID: CLUSTER_ID, ...o,
});
const defaultSG = {
  namespace: 'demo', name: 'default',
  rules: [
    { direction: 'egress' as const, protocol: 'any' as const },
    { direction: 'ingress' as const, protocol: 'icmp' as const },
    { direction: 'ingress' as const, protocol: 'tcp' as const, portMin: 22, remoteCIDR: '10.0.0.0/8' },
  ],
};

test('flat DHCP network', () => {
  const input = base({
    networks: [
      net({ name: 'public', type: 'flat', cidr: '172.16.0.0/24', physicalInterface: 'eth1', dns: ['172.16.0.53'] }),
      // Host-only flat network (no uplink): this host is its gateway.
      net({ name: 'local', type: 'flat', cidr: '192.168.50.0/24' }),
    ],
    ports: [
      port({ name: 'web-1-0', network: 'public', ip: '172.16.0.10', mac: '52:54:00:00:00:10', hostname: 'web-1' }),
      port({ name: 'web-2-0', network: 'public', ip: '172.16.0.11', mac: '52:54:00:00:00:11', hostname: 'web-2' }),
      port({ name: 'db-0', network: 'local', ip: '192.168.50.20', mac: '52:54:00:00:00:20', hostname: 'db' }),
    ],
    securityGroups: [defaultSG],
    dhcpAddresses: { 'demo/public': '172.16.0.2' },
  });
  const p = planHost(input);
  // On the uplinked network the host answers DHCP from its own address, never the gateway's.
  assert.equal(p.bridges.find((b) => b.network === 'demo/public')!.address, '172.16.0.2/24');
  assert.equal(p.bridges.find((b) => b.network === 'demo/public')!.mac, undefined);
  golden('flat-dhcp', p);
  const noAddress = planHost({ ...input, dhcpAddresses: {} });
  assert.deepEqual(noAddress.dnsmasq.map((d) => d.network), ['demo/local']);
  assert.match(noAddress.conditions.find((c) => c.network === 'demo/public')!.message, /DHCP is not served on this host/);
  const bad = planHost({ ...input, dhcpAddresses: { 'demo/public': '172.16.0.1' } });
  assert.match(bad.conditions.find((c) => c.network === 'demo/public')!.message, /^dhcpAddresses\["demo\/public"\]: /);
});

test('vxlan network with two peers', () => {
  const p = planHost(base({
    networks: [net({ name: 'private', type: 'vxlan', cidr: '10.20.0.0/24', vni: 1020 })],
    ports: [port({ name: 'db-0', network: 'private', ip: '10.20.0.10', mac: '52:54:00:aa:bb:cc', hostname: 'db' })],
    // Our own tunnel IP among the peers is skipped.
    peers: [{ hostName: 'node-3', tunnelIP: '192.0.2.12' }, { hostName: 'node-2', tunnelIP: '192.0.2.11' }, { hostName: 'node-1', tunnelIP: '192.0.2.10' }],
    securityGroups: [defaultSG],
  }));
  assert.deepEqual(p.vxlans[0]!.remotes, ['192.0.2.11', '192.0.2.12']);
  golden('vxlan-two-peers', p);
});

test('vlan network on a kernel without 802.1Q gives Ready=False, not a crash', () => {
  const p = planHost(base({
    kernel: { vlan: false },
    networks: [
      net({ name: 'tenant', type: 'vlan', cidr: '10.30.0.0/24', vlanID: 100, physicalInterface: 'eth1' }),
      net({ name: 'ok', type: 'flat', cidr: '10.31.0.0/24', dhcp: false }),
    ],
    ports: [port({ name: 'a-0', network: 'tenant', ip: '10.30.0.5', mac: '52:54:00:00:30:05' })],
  }));
  const c = p.conditions.find((c) => c.network === 'demo/tenant')!;
  assert.equal(c.ready, false);
  assert.equal(c.message, VLAN_UNSUPPORTED_MESSAGE);
  assert.equal(p.vlans.length, 0);
  assert.equal(p.bridges.length, 1);
  golden('vlan-no-8021q', p);
  const withVlan = planHost(base({ networks: [net({ name: 'tenant', type: 'vlan', cidr: '10.30.0.0/24', vlanID: 100, physicalInterface: 'eth1' })] }));
  assert.deepEqual(withVlan.vlans.map((v) => [v.link, v.vlanID]), [['eth1', 100]]);
});

test('security groups', () => {
  golden('security-groups', planHost(base({
    networks: [net({ name: 'private', type: 'vxlan', cidr: '10.20.0.0/24', vni: 7 })],
    ports: [
      port({ name: 'web-0', network: 'private', ip: '10.20.0.10', mac: '52:54:00:00:00:0a', securityGroups: ['web', 'default'] }),
      port({ name: 'locked-0', network: 'private', ip: '10.20.0.11', mac: '52:54:00:00:00:0b', securityGroups: [] }),
      port({ name: 'missing-0', network: 'private', ip: '10.20.0.12', mac: '52:54:00:00:00:0c', securityGroups: ['nope'] }),
    ],
    securityGroups: [
      defaultSG,
      { namespace: 'demo', name: 'web', rules: [
        { direction: 'ingress', protocol: 'tcp', portMin: 80, portMax: 80 },
        { direction: 'ingress', protocol: 'tcp', portMin: 8000, portMax: 8100, remoteCIDR: '192.168.0.0/16' },
        { direction: 'ingress', protocol: 'udp', portMin: 53 },
      ] },
    ],
  })));
});

test('floating IP and router SNAT', () => {
  golden('floating-ip', planHost(base({
    networks: [
      net({ name: 'private', type: 'vxlan', cidr: '10.20.0.0/24', vni: 1020 }),
      net({ name: 'ext', type: 'flat', cidr: '203.0.113.0/24', external: true, dhcp: false, physicalInterface: 'eth0' }),
    ],
    ports: [port({ name: 'web-0', network: 'private', ip: '10.20.0.10', mac: '52:54:00:00:00:0a' })],
    securityGroups: [defaultSG],
    floatingIPs: [
      { namespace: 'demo', name: 'fip-1', ip: '203.0.113.50', port: 'web-0' },
      { namespace: 'demo', name: 'elsewhere', ip: '203.0.113.51', port: 'on-other-host' },
    ],
    routers: [{ namespace: 'demo', name: 'r1', networks: ['private'], externalIP: '203.0.113.2' }],
  })));
});

test('planning is deterministic regardless of input order', () => {
  const nets = [net({ name: 'b', type: 'flat', cidr: '10.1.0.0/24' }), net({ name: 'a', type: 'vxlan', cidr: '10.2.0.0/24', vni: 9 })];
  const ports = [port({ name: 'p2', network: 'a', ip: '10.2.0.3', mac: '52:54:00:00:00:03' }), port({ name: 'p1', network: 'b', ip: '10.1.0.3', mac: '52:54:00:00:00:04' })];
  const a = planHost(base({ networks: nets, ports }));
  const b = planHost(base({ networks: [...nets].reverse(), ports: [...ports].reverse() }));
  assert.deepEqual(a, b);
});

const HOSTILE = ['eth1\nflush ruleset', 'a"b', 'x;reboot', 'eth 1', '$(id)', 'a\u0000b', 'a}b', 'waytoolonginterfacename'];

test('hostile network fields become InvalidSpec conditions naming the field, and never reach rendered text', () => {
  const bad: [Partial<NetworkInput>, string][] = [
    ...HOSTILE.map((h): [Partial<NetworkInput>, string] => [{ physicalInterface: h }, 'spec.physicalInterface']),
    [{ cidr: '10.0.0.0/24\nflush ruleset' }, 'spec.cidr'],
    [{ cidr: '10.0.0.1/24' }, 'spec.cidr'],
    [{ cidr: '10.0.0.0/33' }, 'spec.cidr'],
    [{ cidr: '300.0.0.0/8' }, 'spec.cidr'],
    [{ cidr: '010.0.0.0/8' }, 'spec.cidr'],
    [{ gateway: '10.9.9.1' }, 'spec.gateway'],
    [{ gateway: '10.0.0.1;' }, 'spec.gateway'],
    [{ dns: ['1.1.1.1\nserver=evil'] }, 'spec.dns[0]'],
    [{ vni: 0 }, 'spec.vni'],
    [{ vni: 16777216 }, 'spec.vni'],
    [{ vni: 1.5 }, 'spec.vni'],
    [{ type: 'gre' as never }, 'spec.type'],
    [{ namespace: 'Demo\n' }, 'metadata.namespace'],
  ];
  for (const [override, field] of bad) {
    const p = planHost(base({ networks: [net({ name: 'n', type: 'vxlan', cidr: '10.0.0.0/24', vni: 5, ...override })] }));
    assert.equal(p.bridges.length, 0, JSON.stringify(override));
    const c = p.conditions[0]!;
    assert.equal(c.ready, false);
    assert.equal(c.reason, 'InvalidSpec');
    assert.ok(c.message.startsWith(field + ':'), `${c.message} should name ${field}`);
    assert.equal(p.dnsmasq.length, 0);
  }
  for (const vlanID of [0, 4095, -1, '100' as never]) {
    const p = planHost(base({ networks: [net({ name: 'n', type: 'vlan', cidr: '10.0.0.0/24', vlanID, physicalInterface: 'eth1' })] }));
    assert.match(p.conditions[0]!.message, /^spec\.vlanID:/);
  }
});

test('hostile ports, security groups, floating IPs and host fields are rejected', () => {
  const network = net({ name: 'n', type: 'flat', cidr: '10.0.0.0/24' });
  const cases: [Partial<PortInput>, string][] = [
    [{ ip: '10.0.0.5\nflush ruleset' }, 'spec.ip'],
    [{ ip: '10.0.1.5' }, 'spec.ip'],
    [{ ip: '10.0.0.255' }, 'spec.ip'],
    [{ ip: '10.0.0.1' }, 'spec.ip'],
    [{ mac: '52:54:00:00:00:0g' }, 'spec.mac'],
    [{ mac: '01:00:5e:00:00:01' }, 'spec.mac'],
    [{ mac: '52:54:00:00:00:01,10.0.0.9' }, 'spec.mac'],
    [{ hostname: 'web\naddress=/#/1.2.3.4' }, 'hostname'],
    [{ hostname: 'Web_1' }, 'hostname'],
    [{ device: 'macvtap' as never }, 'device'],
    [{ device: 'veth', peerNetns: '../etc' }, 'peerNetns'],
    [{ network: 'missing' }, 'spec.network'],
  ];
  for (const [o, field] of cases) {
    const p = planHost(base({ networks: [network], ports: [port({ name: 'p', network: 'n', ip: '10.0.0.5', mac: '52:54:00:00:00:05', ...o })] }));
    assert.equal(p.ports.length, 0, JSON.stringify(o));
    assert.equal(p.rejected[0]!.kind, 'Port');
    assert.ok(p.rejected[0]!.message.startsWith(field + ':'), `${p.rejected[0]!.message} should name ${field}`);
    assert.equal(p.dnsmasq[0]!.hosts, '');
  }
  // Duplicate IP on one network: the second port (by name) is rejected.
  const dup = planHost(base({ networks: [network], ports: [
    port({ name: 'a', network: 'n', ip: '10.0.0.5', mac: '52:54:00:00:00:05' }),
    port({ name: 'b', network: 'n', ip: '10.0.0.5', mac: '52:54:00:00:00:06' }),
  ] }));
  assert.deepEqual(dup.rejected.map((r) => [r.name, r.message.split(':')[0]]), [['b', 'spec.ip']]);

  const rules: [object, string][] = [
    [{ direction: 'in', protocol: 'tcp' }, 'spec.rules[0].direction'],
    [{ direction: 'ingress', protocol: 'tcp; drop' }, 'spec.rules[0].protocol'],
    [{ direction: 'ingress', protocol: 'tcp', portMin: 0 }, 'spec.rules[0].portMin'],
    [{ direction: 'ingress', protocol: 'tcp', portMin: 80, portMax: 70000 }, 'spec.rules[0].portMax'],
    [{ direction: 'ingress', protocol: 'tcp', portMin: 90, portMax: 80 }, 'spec.rules[0].portMax'],
    [{ direction: 'ingress', protocol: 'icmp', portMin: 80 }, 'spec.rules[0].portMin'],
    [{ direction: 'ingress', protocol: 'tcp', remoteCIDR: '0.0.0.0/0 accept\n' }, 'spec.rules[0].remoteCIDR'],
  ];
  for (const [rule, field] of rules) {
    const p = planHost(base({
      networks: [network],
      ports: [port({ name: 'p', network: 'n', ip: '10.0.0.5', mac: '52:54:00:00:00:05' })],
      securityGroups: [{ namespace: 'demo', name: 'default', rules: [rule as never] }],
    }));
    const sg = p.rejected.find((r) => r.kind === 'SecurityGroup')!;
    assert.ok(sg.message.startsWith(field + ':'), `${sg.message} should name ${field}`);
    // The port fails closed: its ingress chain only drops.
    assert.match(p.nft, /chain sg_[0-9a-f]+_ingress \{\n\t\tdrop\n/);
  }
  const fip = planHost(base({
    networks: [network], ports: [port({ name: 'p', network: 'n', ip: '10.0.0.5', mac: '52:54:00:00:00:05' })],
    floatingIPs: [{ namespace: 'demo', name: 'f', ip: '1.2.3.4 dnat to 6.6.6.6', port: 'p' }],
  }));
  assert.match(fip.rejected[0]!.message, /^spec\.ip:/);
  assert.doesNotMatch(fip.nft, /6\.6\.6\.6/);
  assert.throws(() => planHost(base({ stateDir: '/tmp/x\nuser=root' })), /^NetworkValidationError: stateDir:/);
  assert.throws(() => planHost(base({ tunnelIP: '1.2.3' })), /tunnelIP/);
  assert.throws(() => planHost(base({ peers: [{ hostName: 'x', tunnelIP: '1.2.3.4 dev' }] })), /peers\[0\]\.tunnelIP/);
});

test('instances of the network on other hosts get DNS names, not DHCP entries; hostile names are left out', () => {
  const network = net({ name: 'n', type: 'vxlan', cidr: '10.0.0.0/24', vni: 42 });
  const p = planHost(base({
    networks: [network],
    ports: [port({ name: 'p', network: 'n', ip: '10.0.0.5', mac: '52:54:00:00:00:05', hostname: 'web-1' })],
    remoteNames: [
      { namespace: 'demo', network: 'n', ip: '10.0.0.7', hostname: 'web-2' },
      { namespace: 'demo', network: 'n', ip: '10.0.0.8', hostname: 'x\naddress=/#/6.6.6.6' },
      { namespace: 'demo', network: 'n', ip: '10.9.9.9', hostname: 'elsewhere' }, // not in the network
      { namespace: 'demo', network: 'other', ip: '10.0.0.9', hostname: 'not-here' }, // network not on this host
    ],
  }));
  const d = p.dnsmasq[0]!;
  assert.equal(d.addnHosts, '10.0.0.5 web-1.demo.kova web-1\n10.0.0.7 web-2.demo.kova web-2\n');
  assert.doesNotMatch(d.hosts, /10\.0\.0\.7/, 'no DHCP lease for a port served by another host');
  assert.equal(p.warnings.filter((w) => /DNS name left out: hostname/.test(w.message)).length, 1);
  assert.doesNotMatch(d.addnHosts + d.conf, /6\.6\.6\.6/);
});

test('nftables tables are named per cluster: valid nft identifiers, distinct per cluster id', () => {
  assert.equal(nftTableName(CLUSTER_ID), 'kova_6f1c2d3e4b5a');
  assert.equal(nftTableName(CLUSTER_ID.toUpperCase()), 'kova_6f1c2d3e4b5a');
  assert.equal(nftTableName(undefined), 'kova', 'no cluster id: the standalone table');
  // Not a UUID (or hostile): hashed, still a plain identifier.
  for (const id of ['another-cluster', 'x"; flush ruleset; #', '', 'a'.repeat(10_000)]) assert.match(nftTableName(id), /^kova_[0-9a-f]{12}$/);
  assert.notEqual(nftTableName('cluster-a'), nftTableName('cluster-b'));
  const p = planHost(base({}));
  assert.equal(p.nftTable, 'kova_6f1c2d3e4b5a');
  assert.match(p.nft, /^table inet kova_6f1c2d3e4b5a \{$/m);
  assert.match(p.nft, /^table bridge kova_6f1c2d3e4b5a \{$/m);
  assert.doesNotMatch(p.nft, /table \w+ kova \{/);
  // The transaction deletes this cluster's tables only.
  const tx = nftTransaction(p.nft, p.nftTable);
  assert.deepEqual(tx.split('\n').filter((l) => l.startsWith('delete')), ['delete table inet kova_6f1c2d3e4b5a', 'delete table bridge kova_6f1c2d3e4b5a']);
  assert.throws(() => renderNft([], { floating: [], snat: [] }, [], 'kova; flush ruleset'), /invalid kova nftables table name/);
  assert.throws(() => nftTransaction('', 'other'), /invalid kova nftables table name/);
});
