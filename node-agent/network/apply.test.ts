// Real kernel networking: two simulated hosts (network namespaces joined by a veth underlay),
// VXLAN networks applied on both, instances as further namespaces attached through veth ports.
// Needs root, iproute2, nft, dnsmasq and busybox.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes, randomUUID } from 'node:crypto';
import { HostNetworkApplier } from './apply.js';
import { planHost } from './plan.js';
import { renderNft } from './render-nft.js';
import { portDeviceName } from '../../api/net/names.js';
import type { HostInput, HostPlan, NetworkInput, PortInput, SecurityGroupInput } from './types.js';

const run = promisify(execFile);
// Network namespaces, bridges and nftables need root; elsewhere these tests are skipped, loudly.
const SKIP = process.getuid?.() === 0 ? false : 'needs root (network namespaces)';
const id = randomBytes(3).toString('hex');
const ns = {
  h1: `kvh1-${id}`, h2: `kvh2-${id}`,
  i1: `kvi1-${id}`, i2: `kvi2-${id}`, i3: `kvi3-${id}`, i4: `kvi4-${id}`,
  c: `kvc-${id}`, // one machine running two kova clusters
};
const hosts = {
  h1: { hostName: 'node-1', tunnelIP: '192.0.2.1' },
  h2: { hostName: 'node-2', tunnelIP: '192.0.2.2' },
};

const netA: NetworkInput = { uid: 'uid-a', namespace: 'demo', name: 'a', type: 'vxlan', cidr: '10.50.0.0/24', vni: 100, dhcp: true };
// Same CIDR, other VNI and no DHCP: only L2 isolation keeps it apart from A.
const netB: NetworkInput = { uid: 'uid-b', namespace: 'demo', name: 'b', type: 'vxlan', cidr: '10.50.0.0/24', vni: 200, dhcp: false };
const port = (name: string, network: string, ip: string, mac: string, inst: string): PortInput => ({
  uid: `uid-${name}`, namespace: 'demo', name, network, ip, mac, hostname: name, securityGroups: ['default'], device: 'veth', peerNetns: inst,
});
const p1 = port('p1', 'a', '10.50.0.11', '52:54:00:00:50:11', ns.i1); // host 1
const p2 = port('p2', 'a', '10.50.0.12', '52:54:00:00:50:12', ns.i2); // host 2
const p3 = port('p3', 'b', '10.50.0.13', '52:54:00:00:50:13', ns.i3); // host 2
const p4 = port('p4', 'b', '10.50.0.14', '52:54:00:00:50:14', ns.i4); // host 1
const sgWeb: SecurityGroupInput = { namespace: 'demo', name: 'default', rules: [
  { direction: 'egress', protocol: 'any' },
  { direction: 'ingress', protocol: 'icmp' },
  { direction: 'ingress', protocol: 'tcp', portMin: 8080 },
] };
const sgNo8080: SecurityGroupInput = { ...sgWeb, rules: sgWeb.rules.slice(0, 2) };

const CLUSTER = randomUUID();
const stateDirs: Record<'h1' | 'h2', string> = { h1: '', h2: '' };
const appliers: Partial<Record<'h1' | 'h2', HostNetworkApplier>> = {};
const children: ReturnType<typeof spawn>[] = [];

function input(h: 'h1' | 'h2', ports: PortInput[], sg = sgWeb): HostInput {
  const self = hosts[h];
  return {
    ...self,
    networks: [netA, netB],
    ports,
    peers: Object.values(hosts),
    securityGroups: [sg],
    floatingIPs: [],
    kernel: { vlan: false },
    stateDir: stateDirs[h],
    clusterID: CLUSTER,
  };
}
const plans = {
  h1: (sg = sgWeb) => planHost(input('h1', [p1, p4], sg)),
  h2: (sg = sgWeb) => planHost(input('h2', [p2, p3], sg)),
};

/** Runs in a namespace; stdout carries stderr too (busybox tools report there). */
async function inNs(n: string, ...args: string[]): Promise<{ stdout: string; code: number }> {
  try {
    const r = await run('ip', ['netns', 'exec', n, ...args], { timeout: 10_000 });
    return { stdout: r.stdout + r.stderr, code: 0 };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; code?: number };
    return { stdout: (err.stdout ?? '') + (err.stderr ?? ''), code: typeof err.code === 'number' ? err.code : 1 };
  }
}
const ping = async (from: string, ip: string) => (await inNs(from, 'busybox', 'ping', '-c', '1', '-W', '2', ip)).code === 0;
/** Unreachable: no reply within 1 s (a positive control runs alongside each use). */
const noPing = async (from: string, ip: string) => (await inNs(from, 'busybox', 'ping', '-c', '1', '-W', '1', ip)).code !== 0;
/** Connects from a namespace and returns the server's greeting, or '' when nothing came within 1 s. */
async function tcpProbe(from: string, ip: string, port: number): Promise<string> {
  const script = `const s = require('net').connect(${port}, '${ip}');
    s.on('data', (d) => { process.stdout.write(d); process.exit(0); });
    s.on('error', () => process.exit(2));
    setTimeout(() => process.exit(1), 1000);`;
  return (await inNs(from, process.execPath, '-e', script)).stdout;
}
const peerOf = (p: PortInput) => portDeviceName('vethPeer', p);

before(async () => {
  if (SKIP) return;
  for (const n of Object.values(ns)) await run('ip', ['netns', 'add', n]);
  for (const n of Object.values(ns)) await run('ip', ['-n', n, 'link', 'set', 'lo', 'up']);
  await run('ip', ['-n', ns.h1, 'link', 'add', 'underlay', 'type', 'veth', 'peer', 'name', 'underlay', 'netns', ns.h2]);
  for (const [h, ip] of [['h1', '192.0.2.1/24'], ['h2', '192.0.2.2/24']] as const) {
    await run('ip', ['-n', ns[h], 'addr', 'add', ip, 'dev', 'underlay']);
    await run('ip', ['-n', ns[h], 'link', 'set', 'underlay', 'up']);
    stateDirs[h] = await mkdtemp(join(tmpdir(), `kova-net-${h}-`));
    appliers[h] = new HostNetworkApplier({ netns: ns[h], stateDir: stateDirs[h] });
  }
});

after(async () => {
  if (SKIP) return;
  for (const c of children) c.kill('SIGKILL');
  for (const h of ['h1', 'h2'] as const) await appliers[h]?.teardown().catch(() => {});
  for (const n of Object.values(ns)) await run('ip', ['netns', 'del', n]).catch(() => {});
  for (const d of Object.values(stateDirs)) if (d) await rm(d, { recursive: true, force: true });
});

test('kernel feature probe reports 802.1Q support as the kernel has it', { skip: SKIP }, async () => {
  const k = await appliers.h1!.kernelFeatures();
  const direct = await inNs(ns.h1, 'ip', 'link', 'add', 'link', 'lo', 'name', 'kvprobe2', 'type', 'vlan', 'id', '3');
  if (direct.code === 0) await inNs(ns.h1, 'ip', 'link', 'del', 'kvprobe2');
  assert.equal(k.vlan, direct.code === 0);
});

test('apply converges both hosts, then re-apply is a no-op', { skip: SKIP }, async () => {
  for (const h of ['h1', 'h2'] as const) {
    const plan = plans[h]();
    assert.deepEqual(plan.rejected, []);
    const r = await appliers[h]!.apply(plan);
    assert.deepEqual(r.errors, [], `${h}: ${r.errors.join('; ')}`);
    assert.ok(r.changes.length > 0);
    const again = await appliers[h]!.apply(plan);
    assert.deepEqual(again.errors, []);
    assert.deepEqual(again.changes, [], `re-apply on ${h} issued ${again.changes.join('; ')}`);
  }
  const t0 = performance.now();
  const r = await appliers.h1!.apply(plans.h1());
  const ms = performance.now() - t0;
  assert.deepEqual(r.changes, []);
  console.log(`# no-op re-apply took ${ms.toFixed(1)} ms (reads only)`);
  // The state matches the plan: VXLAN with both head-end entries minus ourselves.
  const fdb = await inNs(ns.h1, 'bridge', 'fdb', 'show', 'dev', plans.h1().vxlans[0]!.name);
  assert.match(fdb.stdout, /00:00:00:00:00:00 dst 192\.0\.2\.2 /);
  assert.doesNotMatch(fdb.stdout, /dst 192\.0\.2\.1 /);
});

test('DHCP gives the instance its Port address (only from its own host)', { skip: SKIP }, async () => {
  const dev = peerOf(p1);
  await inNs(ns.i1, 'ip', 'link', 'set', dev, 'up');
  const r = await inNs(ns.i1, 'busybox', 'udhcpc', '-i', dev, '-n', '-q', '-f', '-t', '5', '-T', '1', '-s', '/bin/true');
  assert.equal(r.code, 0, r.stdout);
  assert.match(r.stdout, /lease of 10\.50\.0\.11 obtained from 10\.50\.0\.1/);
  // Host 2 also serves 10.50.0.1 on this segment but must stay silent (no NAK races).
  assert.doesNotMatch(r.stdout, /NAK/);
  // Configure all instances statically from here on (udhcpc ran with a no-op script).
  for (const [n, p] of [[ns.i1, p1], [ns.i2, p2], [ns.i3, p3], [ns.i4, p4]] as const) {
    await run('ip', ['-n', n, 'addr', 'add', `${p.ip}/24`, 'dev', peerOf(p)]);
    await run('ip', ['-n', n, 'link', 'set', peerOf(p), 'up']);
  }
});

test('instances on one VXLAN network reach each other across hosts; the other network is isolated', { skip: SKIP }, async () => {
  assert.ok(await ping(ns.i1, p2.ip), 'i1 → i2 over VNI 100');
  assert.ok(await ping(ns.i4, p3.ip), 'i4 → i3 over VNI 200');
  assert.ok(await noPing(ns.i1, p3.ip), 'network a must not reach network b');
  assert.ok(await noPing(ns.i2, p4.ip), 'network a must not reach network b');
  assert.ok(await ping(ns.i1, '10.50.0.1'), 'the gateway address on the local bridge answers');
});

test('security groups allow TCP 8080 and block 8081; established flows survive a ruleset replacement', { skip: SKIP }, async () => {
  const server = spawn('ip', ['netns', 'exec', ns.i2, process.execPath, '-e', `
    const net = require('net');
    for (const p of [8080, 8081]) net.createServer((s) => { s.write('hi' + p + '\\n'); s.on('data', (d) => process.stdout.write('got:' + d)); }).listen(p, () => process.stdout.write('listening ' + p + '\\n'));
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(server);
  let serverOut = '';
  server.stdout!.on('data', (d) => (serverOut += d));
  await waitFor(() => serverOut.includes('listening 8081'), 'server listening');

  assert.match(await tcpProbe(ns.i1, p2.ip, 8080), /hi8080/);
  assert.equal(await tcpProbe(ns.i1, p2.ip, 8081), '', '8081 is not allowed by the security group');

  // A long-lived connection, then a ruleset that no longer allows 8080 at all.
  const client = spawn('ip', ['netns', 'exec', ns.i1, 'busybox', 'nc', p2.ip, '8080'], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(client);
  let clientOut = '';
  client.stdout!.on('data', (d) => (clientOut += d));
  await waitFor(() => clientOut.includes('hi8080'), 'client connected');
  client.stdin!.write('one\n');
  await waitFor(() => serverOut.includes('got:one'), 'data before replacement');

  const r = await appliers.h2!.apply(plans.h2(sgNo8080));
  assert.deepEqual(r.errors, []);
  assert.ok(r.changes.some((c) => c.startsWith('nft -f')), 'the ruleset was replaced');
  client.stdin!.write('two\n');
  await waitFor(() => serverOut.includes('got:two'), 'data after replacement over the established flow');
  assert.equal(await tcpProbe(ns.i1, p2.ip, 8080), '', 'new connections to 8080 are now dropped');
  client.kill();
  server.kill();
  const back = await appliers.h2!.apply(plans.h2());
  assert.deepEqual(back.errors, []);
});

test('removing a port deletes its device and host entry; unknown kova devices are removed', { skip: SKIP }, async () => {
  assert.equal((await inNs(ns.h2, 'ip', 'link', 'add', 'kvt-0123456789', 'type', 'bridge')).code, 0);
  const plan = planHost(input('h2', [p2]));
  const r = await appliers.h2!.apply(plan);
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.changes.filter((c) => c.startsWith('ip ')).sort(), [
    `ip link del dev ${portDeviceName('tap', p3)}`, 'ip link del dev kvt-0123456789',
  ].sort());
  const links = (await inNs(ns.h2, 'ip', '-br', 'link')).stdout;
  assert.doesNotMatch(links, /kvt-0123456789/);
  assert.doesNotMatch(links, new RegExp(portDeviceName('tap', p3)));
  assert.match(links, new RegExp(portDeviceName('tap', p2)));
  assert.deepEqual((await appliers.h2!.apply(plan)).changes, []);

  // A host entry change reloads dnsmasq (SIGHUP) instead of restarting it.
  const pidFile = plan.dnsmasq[0]!.pidFile;
  const pid = (await readFile(pidFile, 'utf8')).trim();
  const renamed = planHost(input('h2', [{ ...p2, hostname: 'p2-renamed' }]));
  const r2 = await appliers.h2!.apply(renamed);
  assert.deepEqual(r2.changes, [`dnsmasq reload ${renamed.dnsmasq[0]!.bridge}`]);
  assert.equal((await readFile(pidFile, 'utf8')).trim(), pid);
  // SIGHUP is asynchronous: poll until the new name resolves.
  let dns = '';
  for (let i = 0; i < 50 && !/Address: 10\.50\.0\.12/.test(dns); i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 50));
    dns = (await inNs(ns.i2, 'busybox', 'nslookup', 'p2-renamed.demo.kova', '10.50.0.1')).stdout;
  }
  assert.match(dns, /Address: 10\.50\.0\.12/);

  // A config change (here the offered DNS server) restarts it.
  const restarted = planHost({ ...input('h2', [{ ...p2, hostname: 'p2-renamed' }]), networks: [{ ...netA, dns: ['10.50.0.53'] }, netB] });
  const r3 = await appliers.h2!.apply(restarted);
  assert.deepEqual(r3.errors, []);
  assert.deepEqual(r3.changes, [`dnsmasq start ${restarted.dnsmasq[0]!.bridge}`]);
  assert.notEqual((await readFile(pidFile, 'utf8')).trim(), pid);
  assert.deepEqual((await appliers.h2!.apply(restarted)).changes, []);
});

async function waitFor(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A TCP server in a namespace that greets each client with the address it sees the client at. */
async function peerAddressServer(n: string, port: number): Promise<void> {
  const child = spawn('ip', ['netns', 'exec', n, process.execPath, '-e', `
    require('net').createServer((s) => s.end('from:' + s.remoteAddress.replace('::ffff:', '') + '\\n'))
      .listen(${port}, () => process.stdout.write('listening\\n'));
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  await waitFor(() => out.includes('listening'), `server on ${port}`);
}

test('floating IP: DNAT in to the port, SNAT out from it', { skip: SKIP }, async () => {
  const fip = { namespace: 'demo', name: 'fip-1', ip: '203.0.113.50', port: 'p1' };
  const plan = planHost({ ...input('h1', [p1, p4]), floatingIPs: [fip] });
  const r = await appliers.h1!.apply(plan);
  assert.deepEqual(r.errors, []);
  assert.ok(r.changes.includes('sysctl net.ipv4.ip_forward=1'), r.changes.join('; '));
  // Outside world: host 2's root namespace routes the floating IP to host 1 over the underlay.
  await run('ip', ['-n', ns.h2, 'route', 'add', '203.0.113.50/32', 'via', '192.0.2.1']);
  await run('ip', ['-n', ns.i1, 'route', 'add', 'default', 'via', '10.50.0.1']);
  await peerAddressServer(ns.i1, 8080);
  await peerAddressServer(ns.h2, 9000);
  assert.match(await tcpProbe(ns.h2, '203.0.113.50', 8080), /^from:192\.0\.2\.2$/m, 'DNAT keeps the client address');
  assert.match(await tcpProbe(ns.i1, '192.0.2.2', 9000), /^from:203\.0\.113\.50$/m, 'SNAT to the floating IP');
  // Security groups still apply behind the floating IP.
  assert.equal(await tcpProbe(ns.h2, '203.0.113.50', 8081), '');
  assert.deepEqual((await appliers.h1!.apply(plan)).changes, []);
});

test('flat network enslaves its uplink and releases it when the network goes; drift is repaired', { skip: SKIP }, async () => {
  await run('ip', ['-n', ns.h1, 'link', 'add', 'ext0', 'type', 'veth', 'peer', 'name', 'ext0p']);
  const flat: NetworkInput = { uid: 'uid-flat', namespace: 'demo', name: 'flat', type: 'flat', cidr: '198.51.100.0/24', dhcp: false, physicalInterface: 'ext0' };
  const withFlat = planHost({ ...input('h1', [p1, p4]), networks: [netA, netB, flat] });
  const bridge = withFlat.bridges.find((b) => b.network === 'demo/flat')!.name;
  assert.deepEqual((await appliers.h1!.apply(withFlat)).errors, []);
  assert.match((await inNs(ns.h1, 'ip', '-br', 'link', 'show', 'master', bridge)).stdout, /^ext0@ext0p /m);

  // Drift: a lost FDB entry, a deleted nftables table, a downed bridge: all put back.
  const vx = withFlat.vxlans[0]!.name;
  await run('bridge', ['-n', ns.h1, 'fdb', 'del', '00:00:00:00:00:00', 'dev', vx, 'dst', '192.0.2.2']);
  await run('ip', ['netns', 'exec', ns.h1, 'nft', 'delete', 'table', 'bridge', withFlat.nftTable]);
  await run('ip', ['-n', ns.h1, 'link', 'set', bridge, 'down']);
  const fix = await appliers.h1!.apply(withFlat);
  assert.deepEqual(fix.errors, []);
  assert.deepEqual(fix.changes.map((c) => c.replace(/\(.*\)/, '')).sort(), [
    `bridge fdb append 00:00:00:00:00:00 dev ${vx} dst 192.0.2.2`, `ip link set dev ${bridge} up`, `nft -f ${withFlat.nftTable} `,
  ]);
  assert.deepEqual((await appliers.h1!.apply(withFlat)).changes, []);

  const without = planHost(input('h1', [p1, p4]));
  const r = await appliers.h1!.apply(without);
  assert.deepEqual(r.errors, []);
  const ext = (await inNs(ns.h1, 'ip', '-d', '-j', 'link', 'show', 'ext0')).stdout;
  assert.equal((JSON.parse(ext) as { master?: string }[])[0]!.master, undefined, 'uplink released, not deleted');
  assert.doesNotMatch((await inNs(ns.h1, 'ip', '-br', 'link')).stdout, new RegExp(bridge));
});

test('a VXLAN device whose VNI changed is recreated with its FDB entries', { skip: SKIP }, async () => {
  const before = plans.h1();
  const vx = before.vxlans.find((v) => v.vni === 100)!.name;
  const changed = planHost({ ...input('h1', [p1, p4]), networks: [{ ...netA, vni: 101 }, netB] });
  const r = await appliers.h1!.apply(changed);
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.changes.filter((c) => c.includes(vx)), [
    `ip link del dev ${vx}`,
    `ip link add name ${vx} type vxlan id 101 local 192.0.2.1 dstport 4789 nolearning`,
    `ip link set dev ${vx} master ${before.vxlans[0]!.master} up`,
    `bridge fdb append 00:00:00:00:00:00 dev ${vx} dst 192.0.2.2`,
  ]);
  const link = JSON.parse((await inNs(ns.h1, 'ip', '-d', '-j', 'link', 'show', vx)).stdout) as { linkinfo: { info_data: { id: number } } }[];
  assert.equal(link[0]!.linkinfo.info_data.id, 101);
  assert.deepEqual((await appliers.h1!.apply(changed)).changes, []);
});

test('two clusters on one machine keep their own nftables tables', { skip: SKIP }, async () => {
  const clusters = { a: randomUUID(), b: randomUUID() };
  const dirs = { a: await mkdtemp(join(tmpdir(), 'kova-net-a-')), b: await mkdtemp(join(tmpdir(), 'kova-net-b-')) };
  const cluster = {
    a: new HostNetworkApplier({ netns: ns.c, stateDir: dirs.a }),
    b: new HostNetworkApplier({ netns: ns.c, stateDir: dirs.b }),
  };
  try {
    // A plan with a security-group ruleset (no devices: device ownership is not per cluster).
    const plan = (c: 'a' | 'b', ip: string, tcpPort: number): HostPlan => {
      const p = planHost({ hostName: 'node-1', networks: [], ports: [], peers: [], securityGroups: [], floatingIPs: [], kernel: { vlan: false }, stateDir: dirs[c], clusterID: clusters[c] });
      const rules = [{ direction: 'ingress' as const, protocol: 'tcp' as const, portMin: tcpPort }];
      return { ...p, nft: renderNft([{ tap: `kvp-${c}`, bridge: `kvb-${c}`, ip, mac: '52:54:00:00:00:01', rules }], { floating: [], snat: [] }, [], p.nftTable).text };
    };
    const table = async (family: string, name: string) => (await inNs(ns.c, 'nft', 'list', 'table', family, name)).stdout;
    const a1 = plan('a', '10.9.0.5', 22);
    const b1 = plan('b', '10.9.0.6', 80);
    assert.notEqual(a1.nftTable, b1.nftTable);
    // The shared table of kova before per-cluster tables is removed on a cluster's first apply.
    await inNs(ns.c, 'nft', 'add', 'table', 'inet', 'kova');
    assert.deepEqual((await cluster.a.apply(a1)).errors, []);
    assert.notEqual((await inNs(ns.c, 'nft', 'list', 'table', 'inet', 'kova')).code, 0, 'legacy table removed');
    assert.deepEqual((await cluster.b.apply(b1)).errors, []);

    for (const family of ['inet', 'bridge']) {
      assert.match(await table(family, a1.nftTable), /10\.9\.0\.5/, `${family} ${a1.nftTable} kept cluster a's rules`);
      assert.match(await table(family, b1.nftTable), /10\.9\.0\.6/, `${family} ${b1.nftTable} has cluster b's rules`);
    }
    assert.match(await table('inet', a1.nftTable), /tcp dport 22 accept/);
    assert.match(await table('inet', b1.nftTable), /tcp dport 80 accept/);

    // Replacing a's ruleset leaves b's untouched, and b sees its own tables as up to date.
    const bBefore = await table('inet', b1.nftTable);
    const a2 = plan('a', '10.9.0.7', 443);
    assert.deepEqual((await cluster.a.apply(a2)).errors, []);
    assert.match(await table('inet', a1.nftTable), /tcp dport 443 accept/);
    assert.equal(await table('inet', b1.nftTable), bBefore);
    assert.deepEqual((await cluster.b.apply(b1)).changes, [], 'cluster b found its tables as it left them');
    assert.deepEqual((await cluster.a.apply(a2)).changes, []);

    // Tearing one cluster down removes only its tables.
    await cluster.a.teardown();
    assert.notEqual((await inNs(ns.c, 'nft', 'list', 'table', 'inet', a1.nftTable)).code, 0);
    assert.equal(await table('inet', b1.nftTable), bBefore);
    assert.match(await table('bridge', b1.nftTable), /10\.9\.0\.6/);
  } finally {
    await cluster.b.teardown().catch(() => {});
    for (const d of Object.values(dirs)) await rm(d, { recursive: true, force: true });
  }
});
