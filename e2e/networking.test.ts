// Networking end to end: a real `kova up --no-agents` and two real `kova agent --driver sim`
// processes whose host networking runs in network namespaces ("hosts" joined by an underlay
// bridge in a third, "external" namespace). Sim instances' NICs are veths whose guest end sits
// in a namespace per port, so the tests ping, DHCP and connect from "instances".
// Needs root, iproute2, nft, dnsmasq, busybox.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { simInstanceNetns } from '../node-agent/network-agent.js';
import { HostNetworkApplier } from '../node-agent/network/apply.js';
import { portDeviceName } from '../api/net/names.js';
import { writeSimImageFile } from '../node-agent/sim-image.js';
import { eventually, KOVA_BIN, startKova } from './harness.js';
import type { Kova } from './harness.js';

const run = promisify(execFile);
const SKIP = process.getuid?.() === 0 ? false : 'needs root (network namespaces)';
const id = randomBytes(3).toString('hex');
const NS = { h1: `kvnh1-${id}`, h2: `kvnh2-${id}`, ext: `kvnx-${id}` };
const HOSTS = {
  h1: { name: `h1-${id}`, tunnelIP: '192.0.2.1' },
  h2: { name: `h2-${id}`, tunnelIP: '192.0.2.2' },
};

interface PortJSON {
  metadata: { uid: string; namespace: string; name: string };
  spec: { network: string; ip?: string; mac?: string; securityGroups?: string[] };
  status?: { phase?: string; ip?: string; mac?: string; hostName?: string; device?: string; conditions?: Array<{ type: string; status: string; reason?: string; message?: string }> };
}

async function inNs(n: string, ...args: string[]): Promise<{ out: string; code: number }> {
  try {
    const r = await run('ip', ['netns', 'exec', n, ...args], { timeout: 15_000 });
    return { out: r.stdout + r.stderr, code: 0 };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; code?: number };
    return { out: (err.stdout ?? '') + (err.stderr ?? ''), code: typeof err.code === 'number' ? err.code : 1 };
  }
}
const ping = async (from: string, ip: string) => (await inNs(from, 'busybox', 'ping', '-c', '1', '-W', '2', ip)).code === 0;
const noPing = async (from: string, ip: string) => (await inNs(from, 'busybox', 'ping', '-c', '1', '-W', '1', ip)).code !== 0;
/** The server's greeting, or '' when nothing came within 1 s. */
async function tcpProbe(from: string, ip: string, port: number): Promise<string> {
  const script = `const s = require('net').connect(${port}, ${JSON.stringify(ip)});
    s.on('data', (d) => { process.stdout.write(d); process.exit(0); });
    s.on('error', () => process.exit(2));
    setTimeout(() => process.exit(1), 1000);`;
  return (await inNs(from, process.execPath, '-e', script)).out;
}

describe('networking (real API server, two sim agents in network namespaces)', { skip: SKIP }, () => {
  let k: Kova;
  const children: ChildProcess[] = [];
  const agents: Partial<Record<'h1' | 'h2', { proc: ChildProcess; output: () => string }>> = {};
  const dataDirs: Record<'h1' | 'h2', string> = { h1: '', h2: '' };
  const instanceNetns = new Set<string>();
  const port = async (ns: string, name: string) => JSON.parse(await k.k(['get', 'port', '-n', ns, name, '-o', 'json'])) as PortJSON;
  /** Waits until the port is addressed and configured on its host; returns it with its guest namespace. */
  const readyPort = async (ns: string, name: string) => {
    const p = await eventually(async () => {
      const x = await port(ns, name);
      const conf = x.status?.conditions?.find((c) => c.type === 'Configured');
      return x.status?.ip && conf?.status === 'True' ? x : undefined;
    }, 30_000, `port ${ns}/${name} configured`);
    const netns = simInstanceNetns(p);
    instanceNetns.add(netns);
    return { ...p, netns, dev: portDeviceName('vethPeer', { uid: p.metadata.uid, namespace: ns, name }) };
  };
  const guests: Record<string, Awaited<ReturnType<typeof readyPort>>> = {};
  /** Output of the TCP server in a2's guest (ports 8080, 8081), started by the security group test. */
  let a2Server = '';
  /** Static address in the guest (after the DHCP test, every guest is set up the same way). */
  const configure = async (g: Awaited<ReturnType<typeof readyPort>>, prefix = 24) => {
    await run('ip', ['-n', g.netns, 'addr', 'replace', `${g.status!.ip}/${prefix}`, 'dev', g.dev]);
    await run('ip', ['-n', g.netns, 'link', 'set', g.dev, 'up']);
  };
  const startAgent = (h: 'h1' | 'h2') => {
    const proc = spawn(process.execPath, [KOVA_BIN, 'agent', '--host', HOSTS[h].name, '--driver', 'sim', '--netns', NS[h], '--tunnel-ip', HOSTS[h].tunnelIP,
      '--kubeconfig', k.kubeconfig, '--data-dir', dataDirs[h], '--lease-duration', '8'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout!.on('data', (d) => (out += d));
    proc.stderr!.on('data', (d) => (out += d));
    agents[h] = { proc, output: () => out };
    children.push(proc);
    return eventually(() => out.includes('ready: agent'), 30_000, `agent ${h} ready:\n${out}`);
  };
  const instance = (ns: string, name: string, host: 'h1' | 'h2', networks: string) => `
apiVersion: kova.dev/v1alpha1
kind: Instance
metadata: {name: ${name}, namespace: ${ns}}
spec: {flavor: m1.tiny, image: tiny, hostName: ${HOSTS[host].name}, networks: ${networks}}
---`;

  before(async () => {
    for (const n of Object.values(NS)) {
      await run('ip', ['netns', 'add', n]);
      await run('ip', ['-n', n, 'link', 'set', 'lo', 'up']);
    }
    // Underlay: a bridge in the external namespace, one veth to each host.
    await run('ip', ['-n', NS.ext, 'link', 'add', 'ul', 'type', 'bridge']);
    await run('ip', ['-n', NS.ext, 'addr', 'add', '192.0.2.254/24', 'dev', 'ul']);
    await run('ip', ['-n', NS.ext, 'link', 'set', 'ul', 'up']);
    for (const h of ['h1', 'h2'] as const) {
      await run('ip', ['-n', NS[h], 'link', 'add', 'underlay', 'type', 'veth', 'peer', 'name', `ul-${h}`, 'netns', NS.ext]);
      await run('ip', ['-n', NS[h], 'addr', 'add', `${HOSTS[h].tunnelIP}/24`, 'dev', 'underlay']);
      await run('ip', ['-n', NS[h], 'link', 'set', 'underlay', 'up']);
      await run('ip', ['-n', NS.ext, 'link', 'set', `ul-${h}`, 'master', 'ul', 'up']);
      dataDirs[h] = await mkdtemp(join(tmpdir(), `kova-net-e2e-${h}-`));
      // dnsmasq runs unprivileged and re-reads its host files from the agent's state directory.
      await chmod(dataDirs[h], 0o755);
    }
    k = await startKova(['--no-agents']);
    await Promise.all([startAgent('h1'), startAgent('h2')]);
    await k.k(['create', 'namespace', 'proj-a']);
    await k.k(['create', 'namespace', 'proj-b']);
    // 20 instances race for addresses: more than a project's default quota allows.
    await k.k(['apply', '-f', '-'], { input: 'apiVersion: v1\nkind: Namespace\nmetadata: {name: race, annotations: {kova.dev/default-quota: none}}\n' });
    // Sim instances wait for a Ready Image like libvirt ones: a small raw file to import.
    const image = await writeSimImageFile(k.dataDir);
    await k.k(['apply', '-f', '-'], {
      input: `
apiVersion: kova.dev/v1alpha1
kind: Flavor
metadata: {name: m1.tiny}
spec: {vcpus: 1, memory: 64Mi, disk: 1Gi}
---
${['proj-a', 'proj-b', 'race'].map((ns) => `apiVersion: kova.dev/v1alpha1
kind: Image
metadata: {name: tiny, namespace: ${ns}}
spec: {source: {file: {path: ${image.path}}}, format: raw}
---`).join('\n')}
apiVersion: kova.dev/v1alpha1
kind: Network
metadata: {name: net1, namespace: proj-a}
spec: {type: vxlan, cidr: 10.60.0.0/24}
---
apiVersion: kova.dev/v1alpha1
kind: Network
metadata: {name: net2, namespace: proj-a}
spec: {type: vxlan, cidr: 10.61.0.0/24}
---
apiVersion: kova.dev/v1alpha1
kind: Network
metadata: {name: public, namespace: proj-a}
spec: {type: flat, cidr: 203.0.113.0/24, external: true, dhcp: false}
---
apiVersion: kova.dev/v1alpha1
kind: Network
metadata: {name: net1, namespace: proj-b}
spec: {type: vxlan, cidr: 10.62.0.0/24}
---
apiVersion: kova.dev/v1alpha1
kind: SecurityGroup
metadata: {name: web, namespace: proj-a}
spec:
  rules:
  - {direction: ingress, protocol: tcp, portRange: {min: 8080}, remoteCIDR: 0.0.0.0/0}
  - {direction: egress, protocol: any}
---
${instance('proj-a', 'a1', 'h1', '[{network: net1}]')}
${instance('proj-a', 'a2', 'h2', '[{network: net1}]')}
${instance('proj-a', 'a3', 'h2', '[{network: net2, ip: 10.61.0.30}]')}
${instance('proj-b', 'b1', 'h1', '[{network: net1, ip: 10.62.0.30}]')}
`,
    });
  });

  after(async () => {
    if (process.env.NET_E2E_KEEP) {
      console.log(`# kept: kubeconfig ${k.kubeconfig}, namespaces ${Object.values(NS).join(' ')}`);
      await new Promise((r) => setTimeout(r, Number(process.env.NET_E2E_KEEP) * 1000));
    }
    if (process.env.NET_E2E_DEBUG && k) {
      for (const [h, a] of Object.entries(agents)) console.log(`--- agent ${h}\n${a?.output()}`);
      console.log(await k.k(['get', 'port,net', '-A', '-o', 'yaml']).catch(String));
    }
    for (const c of children) c.kill('SIGKILL');
    await k?.stop();
    for (const h of ['h1', 'h2'] as const) {
      // dnsmasq outlives the agent process: tear the host down as the applier knows it.
      if (dataDirs[h]) {
        await new HostNetworkApplier({ netns: NS[h], stateDir: join(dataDirs[h], 'network', HOSTS[h].name) }).teardown().catch(() => undefined);
        const book = await readFile(join(dataDirs[h], 'network', HOSTS[h].name, 'instance-netns.json'), 'utf8').catch(() => '[]');
        for (const n of JSON.parse(book) as string[]) instanceNetns.add(n);
        await rm(dataDirs[h], { recursive: true, force: true });
      }
    }
    for (const n of [...instanceNetns, ...Object.values(NS)]) await run('ip', ['netns', 'del', n]).catch(() => undefined);
  });

  it('allocates ports with addresses and reports networks Ready per host', async () => {
    for (const [ns, name] of [['proj-a', 'a1-0'], ['proj-a', 'a2-0'], ['proj-a', 'a3-0'], ['proj-b', 'b1-0']] as const) {
      guests[`${ns}/${name}`] = await readyPort(ns, name);
    }
    const a1 = guests['proj-a/a1-0']!;
    assert.equal(a1.status!.hostName, HOSTS.h1.name);
    assert.match(a1.status!.ip!, /^10\.60\.0\.\d+$/);
    assert.equal(guests['proj-a/a3-0']!.status!.ip, '10.61.0.30', 'the static address');
    assert.equal(guests['proj-b/b1-0']!.status!.ip, '10.62.0.30');
    const net = JSON.parse(await k.k(['get', 'net', 'net1', '-n', 'proj-a', '-o', 'json'])) as { status: { phase: string; vni: number; bridge: string; allocated: number; conditions: Array<{ type: string; status: string }> } };
    assert.equal(net.status.phase, 'Ready');
    assert.ok(net.status.vni > 0);
    assert.match(net.status.bridge, /^kvb-[0-9a-f]{10}$/);
    assert.equal(net.status.allocated, 2);
    await eventually(async () => {
      const n = JSON.parse(await k.k(['get', 'net', 'net1', '-n', 'proj-a', '-o', 'json'])) as typeof net;
      return [HOSTS.h1.name, HOSTS.h2.name].every((h) => n.status.conditions.some((c) => c.type === `host.kova.dev/${h}` && c.status === 'True'));
    }, 15_000, 'per-host conditions');
    const vm = JSON.parse(await k.k(['get', 'vm', 'a1', '-n', 'proj-a', '-o', 'json'])) as { status: { addresses: Array<{ ip: string; mac: string; port: string }> } };
    assert.deepEqual(vm.status.addresses, [{ network: 'net1', port: 'a1-0', ip: a1.status!.ip, mac: a1.status!.mac }]);
    const vnis = JSON.parse(await k.k(['get', 'addr', '-n', 'kova-system', '-o', 'json'])) as { items: Array<{ spec: { address: string } }> };
    assert.equal(new Set(vnis.items.map((i) => i.spec.address)).size, 3, 'three VXLAN networks, three distinct VNIs');
  });

  it('DHCP hands the guest its Port address', async () => {
    const g = guests['proj-a/a1-0']!;
    await run('ip', ['-n', g.netns, 'link', 'set', g.dev, 'up']);
    const r = await inNs(g.netns, 'busybox', 'udhcpc', '-i', g.dev, '-n', '-q', '-f', '-t', '5', '-T', '1', '-s', '/bin/true');
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, new RegExp(`lease of ${g.status!.ip!.replaceAll('.', '\\.')} obtained from 10\\.60\\.0\\.1`));
    for (const x of Object.values(guests)) await configure(x);
  });

  it('VXLAN connects instances across hosts; networks and projects are isolated', async () => {
    const a1 = guests['proj-a/a1-0']!;
    const a2 = guests['proj-a/a2-0']!;
    const a3 = guests['proj-a/a3-0']!;
    const b1 = guests['proj-b/b1-0']!;
    assert.ok(await ping(a1.netns, a2.status!.ip!), 'a1 (h1) → a2 (h2) over VXLAN');
    // On-link routes make each guest ARP for the others on its own segment: only a shared L2
    // (a leak between bridges or VNIs) could answer.
    for (const [g, cidr] of [[a1, '10.61.0.0/24'], [a1, '10.62.0.0/24'], [a2, '10.62.0.0/24'], [b1, '10.60.0.0/24']] as const) {
      await run('ip', ['-n', g.netns, 'route', 'replace', cidr, 'dev', g.dev]);
    }
    assert.ok(await noPing(a1.netns, a3.status!.ip!), 'net1 must not reach net2 (other VNI)');
    assert.ok(await noPing(a1.netns, b1.status!.ip!), 'project a must not reach project b on the same host');
    assert.ok(await noPing(a2.netns, b1.status!.ip!), 'project a must not reach project b across hosts');
    assert.ok(await noPing(b1.netns, a1.status!.ip!), 'project b must not reach project a');
    for (const [g, cidr] of [[a1, '10.61.0.0/24'], [a1, '10.62.0.0/24'], [a2, '10.62.0.0/24'], [b1, '10.60.0.0/24']] as const) {
      await run('ip', ['-n', g.netns, 'route', 'del', cidr, 'dev', g.dev]);
    }
  });

  it('DNS: a guest resolves the instances of its network on this host and on others', async () => {
    const a1 = guests['proj-a/a1-0']!;
    const a2 = guests['proj-a/a2-0']!; // on h2: h1's dnsmasq knows its name, not its lease
    for (const [name, ip] of [['a2', a2.status!.ip!], ['a1.proj-a.kova', a1.status!.ip!]] as const) {
      let last = '';
      const out = await eventually(async () => {
        const r = await inNs(a1.netns, 'busybox', 'nslookup', name, '10.60.0.1');
        last = r.out;
        return new RegExp(`Address:?\\s+${ip.replaceAll('.', '\\.')}\\s`).test(r.out) ? r.out : undefined;
      }, 15_000, `${name} resolves to ${ip}`).catch(async (e: Error) => {
        const files = (await inNs(NS.h1, 'sh', '-c', `cat ${dataDirs.h1}/network/${HOSTS.h1.name}/*.hosts`)).out;
        throw new Error(`${e.message}: nslookup said ${JSON.stringify(last)}; h1 names:\n${files}`);
      });
      assert.doesNotMatch(out, /REFUSED/);
    }
    const b1 = guests['proj-b/b1-0']!;
    assert.ok(!(await inNs(a1.netns, 'busybox', 'nslookup', 'b1', '10.60.0.1')).out.includes(b1.status!.ip!), 'another project\'s instance has no name here');
  });

  it('a security group allows TCP 8080 and blocks 8081', async () => {
    const a1 = guests['proj-a/a1-0']!;
    const a2 = guests['proj-a/a2-0']!;
    const server = spawn('ip', ['netns', 'exec', a2.netns, process.execPath, '-e', `
      const net = require('net');
      for (const p of [8080, 8081]) net.createServer((s) => { s.write('hi' + p + '\\n'); s.on('data', (d) => process.stdout.write('got:' + d)); }).listen(p, () => process.stdout.write('listening ' + p + '\\n'));
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(server);
    server.stdout!.on('data', (d) => (a2Server += d));
    await eventually(() => a2Server.includes('listening 8081'), 5000, 'server');
    // Both in `default`: members reach each other on any port.
    assert.match(await tcpProbe(a1.netns, a2.status!.ip!, 8081), /hi8081/);
    await k.k(['patch', 'port', 'a2-0', '-n', 'proj-a', '--type=merge', '-p', '{"spec":{"securityGroups":["web"]}}']);
    await eventually(async () => (await tcpProbe(a1.netns, a2.status!.ip!, 8081)) === '', 15_000, '8081 blocked');
    assert.match(await tcpProbe(a1.netns, a2.status!.ip!, 8080), /hi8080/);
  });

  it('a floating IP on the external network reaches the instance from outside', async () => {
    const a1 = guests['proj-a/a1-0']!;
    await k.k(['patch', 'port', 'a1-0', '-n', 'proj-a', '--type=merge', '-p', '{"spec":{"securityGroups":["default","web"]}}']);
    await k.k(['apply', '-f', '-'], { input: 'apiVersion: kova.dev/v1alpha1\nkind: FloatingIP\nmetadata: {name: fip1, namespace: proj-a}\nspec: {network: public, instance: a1}\n' });
    const fip = await eventually(async () => {
      const f = JSON.parse(await k.k(['get', 'fip', 'fip1', '-n', 'proj-a', '-o', 'json'])) as { status?: { phase?: string; ip?: string; fixedIP?: string; hostName?: string } };
      return f.status?.phase === 'Bound' ? f.status : undefined;
    }, 15_000, 'floating IP bound');
    assert.equal(fip.fixedIP, a1.status!.ip);
    assert.equal(fip.hostName, HOSTS.h1.name);
    await run('ip', ['-n', NS.ext, 'route', 'add', `${fip.ip}/32`, 'via', HOSTS.h1.tunnelIP]);
    await run('ip', ['-n', a1.netns, 'route', 'replace', 'default', 'via', '10.60.0.1']);
    const server = spawn('ip', ['netns', 'exec', a1.netns, process.execPath, '-e', `
      require('net').createServer((s) => s.end('from:' + s.remoteAddress.replace('::ffff:', '') + '\\n')).listen(8080, () => process.stdout.write('listening\\n'));
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(server);
    let out = '';
    server.stdout!.on('data', (d) => (out += d));
    await eventually(() => out.includes('listening'), 5000, 'server');
    const got = await eventually(async () => tcpProbe(NS.ext, fip.ip!, 8080), 20_000, 'DNAT to the fixed address').catch(async (e: Error) => {
      const dump: string[] = [`${e.message} (probed ${fip.ip}:8080; floating IP now ${await k.k(['get', 'fip', 'fip1', '-n', 'proj-a', '-o', 'jsonpath={.status.ip}']).catch(String)})`];
      for (const [n, args] of [
        [NS.h1, ['sysctl', 'net.ipv4.ip_forward', 'net.ipv4.conf.all.rp_filter']], [NS.h1, ['nft', 'list', 'ruleset']],
        [NS.h1, ['ip', 'addr']], [NS.h1, ['ip', 'route']], [NS.h1, ['ip', 'neigh']], [NS.h1, ['bridge', 'fdb', 'show']],
        [NS.h1, ['cat', '/proc/net/nf_conntrack']], [a1.netns, ['ip', 'addr']], [a1.netns, ['ip', 'route']], [a1.netns, ['ip', 'neigh']],
        [NS.ext, ['ip', 'route']], [NS.ext, ['ip', 'neigh']],
      ] as const) dump.push(`--- ${n}: ${args.join(' ')}\n${(await inNs(n, ...args)).out}`);
      throw new Error(`${dump.join('\n')}\n--- agent h1:\n${agents.h1!.output()}`);
    });
    assert.match(got, /^from:192\.0\.2\.254$/m);
    assert.equal(await tcpProbe(NS.ext, fip.ip!, 8081), '', 'security groups still apply behind the floating IP');
  });

  it('a router masquerades a project network to the external network', async () => {
    const a2 = guests['proj-a/a2-0']!; // on h2, network net1, no floating IP
    await k.k(['apply', '-f', '-'], { input: 'apiVersion: kova.dev/v1alpha1\nkind: Router\nmetadata: {name: r1, namespace: proj-a}\nspec: {externalNetwork: public, networks: [net1]}\n' });
    await k.k(['wait', '--for=jsonpath={.status.phase}=Ready', 'router/r1', '-n', 'proj-a', '--timeout=20s']);
    const server = spawn('ip', ['netns', 'exec', NS.ext, process.execPath, '-e', `
      require('net').createServer((s) => s.end('from:' + s.remoteAddress.replace('::ffff:', '') + '\\n')).listen(9090, '192.0.2.254', () => process.stdout.write('listening\\n'));
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(server);
    let out = '';
    server.stdout!.on('data', (d) => (out += d));
    await eventually(() => out.includes('listening'), 5000, 'external server');
    await run('ip', ['-n', a2.netns, 'route', 'replace', 'default', 'via', '10.60.0.1']);
    // The external side sees the host's address, not the private one: SNAT on the instance's host.
    const got = await eventually(async () => tcpProbe(a2.netns, '192.0.2.254', 9090), 20_000, 'outbound through the router');
    assert.match(got, new RegExp(`^from:${HOSTS.h2.tunnelIP.replace(/\./g, '\\.')}$`, 'm'));
    server.kill();
  });

  it('20 instances racing for a /28 get unique addresses; the rest wait with a clear condition', async () => {
    await k.k(['apply', '-f', '-'], { input: 'apiVersion: kova.dev/v1alpha1\nkind: Network\nmetadata: {name: small, namespace: race}\nspec: {type: vxlan, cidr: 10.70.0.0/28}\n' });
    // Unschedulable (no host matches): ports are still made; no host work is needed.
    const docs = Array.from({ length: 20 }, (_, i) => `apiVersion: kova.dev/v1alpha1
kind: Instance
metadata: {name: r${i}, namespace: race}
spec: {flavor: m1.tiny, image: tiny, nodeSelector: {kova.dev/zone: nowhere}, networks: [{network: small}]}
`);
    await Promise.all(docs.map((d) => k.k(['apply', '-f', '-'], { input: d })));
    const ports = await eventually(async () => {
      const l = JSON.parse(await k.k(['get', 'port', '-n', 'race', '-o', 'json'])) as { items: PortJSON[] };
      const done = l.items.filter((p) => p.status?.conditions?.some((c) => c.type === 'Allocated'));
      return done.length === 20 && done.filter((p) => p.status?.ip).length === 13 ? l.items : undefined;
    }, 30_000, '13 addressed ports and 7 waiting');
    const ips = ports.map((p) => p.status?.ip).filter(Boolean);
    assert.equal(new Set(ips).size, 13, 'no duplicate addresses');
    assert.ok(!ips.includes('10.70.0.1'), 'the gateway is never handed out');
    assert.equal(new Set(ports.map((p) => p.status?.mac).filter(Boolean)).size, 13);
    const waiting = ports.filter((p) => !p.status?.ip);
    for (const p of waiting) {
      assert.equal(p.status?.phase, 'Pending');
      const c = p.status!.conditions!.find((x) => x.type === 'Allocated')!;
      assert.equal(c.status, 'False');
      assert.equal(c.reason, 'AddressesExhausted');
      assert.match(c.message!, /no free address in 10\.70\.0\.0\/28/);
    }
    // The instances behind them say why they wait.
    const waitingVM = waiting[0]!.metadata.name.replace(/-0$/, '');
    const vmCond = await eventually(async () => {
      const vm = JSON.parse(await k.k(['get', 'vm', waitingVM, '-n', 'race', '-o', 'json'])) as { status?: { conditions?: Array<{ type: string; status: string; reason?: string; message?: string }> } };
      return vm.status?.conditions?.find((c) => c.type === 'NetworksReady' && c.status === 'False');
    }, 10_000, 'NetworksReady=False on a waiting instance');
    assert.equal(vmCond.reason, 'AddressesExhausted');
    assert.match(vmCond.message!, new RegExp(`^port ${waiting[0]!.metadata.name}: no free address in 10\\.70\\.0\\.0/28`));
    const claims = JSON.parse(await k.k(['get', 'addr', '-n', 'race', '-l', 'kova.dev/claim-type=ip', '-o', 'json'])) as { items: unknown[] };
    assert.equal(claims.items.length, 13);
    // Deleting one instance releases its port and address (GC), and a waiting port takes it.
    const victim = ports.find((p) => p.status?.ip)!;
    await k.k(['delete', 'vm', victim.metadata.name.replace(/-0$/, ''), '-n', 'race', '--wait=false']);
    await eventually(async () => {
      const l = JSON.parse(await k.k(['get', 'port', '-n', 'race', '-o', 'json'])) as { items: PortJSON[] };
      return l.items.length === 19 && l.items.filter((p) => p.status?.ip === victim.status!.ip).length === 1;
    }, 30_000, 'the released address reassigned');
  });

  it('hostile input is refused by the API naming the field, or reported by the agent', async () => {
    const bad = [
      { doc: 'kind: SecurityGroup\nmetadata: {name: evil, namespace: proj-a}\nspec: {rules: [{direction: ingress, remoteCIDR: "0.0.0.0/0 } ; flush ruleset ; {"}]}', field: 'spec.rules[0].remoteCIDR' },
      { doc: 'kind: SecurityGroup\nmetadata: {name: evil, namespace: proj-a}\nspec: {rules: [{direction: "ingress accept", protocol: tcp}]}', field: 'spec.rules[0].direction' },
      { doc: 'kind: Network\nmetadata: {name: evil, namespace: proj-a}\nspec: {type: vxlan, cidr: "10.9.0.0/24\\ndhcp-script=/bin/sh"}', field: 'spec.cidr' },
      { doc: 'kind: Network\nmetadata: {name: evil, namespace: proj-a}\nspec: {type: flat, cidr: 10.9.0.0/24, physicalInterface: "eth0;reboot"}', field: 'spec.physicalInterface' },
      { doc: 'kind: Port\nmetadata: {name: evil, namespace: proj-a}\nspec: {network: "net1\\nserver=1.2.3.4"}', field: 'spec.network' },
      { doc: 'kind: Port\nmetadata: {name: evil, namespace: proj-a}\nspec: {network: net1, mac: "52:54:00:00:00:01,set:x"}', field: 'spec.mac' },
    ];
    for (const b of bad) {
      const r = await k.kubectl(['apply', '-f', '-'], { input: `apiVersion: kova.dev/v1alpha1\n${b.doc}\n` });
      assert.notEqual(r.code, 0, b.doc);
      assert.ok(r.stderr.includes(b.field), `${b.field} named in: ${r.stderr}`);
    }
    // Valid for the schema, not for a host: an interface name with ':' reaches the agent.
    await k.k(['apply', '-f', '-'], { input: `apiVersion: kova.dev/v1alpha1
kind: Network
metadata: {name: uplinked, namespace: proj-a}
spec: {type: flat, cidr: 10.80.0.0/24, physicalInterface: "eth0:1"}
---
${instance('proj-a', 'a4', 'h1', '[{network: uplinked}]')}
` });
    const cond = await eventually(async () => {
      const n = JSON.parse(await k.k(['get', 'net', 'uplinked', '-n', 'proj-a', '-o', 'json'])) as { status?: { phase?: string; conditions?: Array<{ type: string; status: string; reason?: string; message?: string }> } };
      const ready = n.status?.conditions?.find((c) => c.type === 'Ready');
      return ready?.status === 'False' ? { ready, phase: n.status!.phase } : undefined;
    }, 20_000, 'Network Ready=False from the agent');
    assert.equal(cond.phase, 'Failed');
    assert.equal(cond.ready.reason, 'InvalidSpec');
    assert.match(cond.ready.message!, new RegExp(`host ${HOSTS.h1.name}: spec\\.physicalInterface`));
  });

  it('agent restart: no duplicated rules, state converges, an established flow survives', async () => {
    const a1 = guests['proj-a/a1-0']!;
    const a2 = guests['proj-a/a2-0']!;
    const client = spawn('ip', ['netns', 'exec', a1.netns, 'busybox', 'nc', a2.status!.ip!, '8080'], { stdio: ['pipe', 'pipe', 'inherit'] });
    children.push(client);
    let cOut = '';
    client.stdout!.on('data', (d) => (cOut += d));
    await eventually(() => cOut.includes('hi8080'), 5000, 'client connected');
    const rulesBefore = (await inNs(NS.h2, 'nft', 'list', 'ruleset')).out;
    const linksBefore = (await inNs(NS.h2, 'ip', '-br', 'link')).out;

    const h2 = agents.h2!;
    const exited = new Promise((r) => h2.proc.once('exit', r));
    h2.proc.kill('SIGTERM');
    await exited;
    client.stdin!.write('during\n');
    await startAgent('h2');
    client.stdin!.write('after\n');
    await eventually(() => a2Server.includes('got:during') && a2Server.includes('got:after'), 10_000, 'data over the established flow across the restart');
    // Let the restarted agent run a full reconcile, then compare.
    await eventually(async () => (await port('proj-a', 'a2-0')).status?.conditions?.some((c) => c.type === 'Configured' && c.status === 'True'), 15_000, 'configured');
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await inNs(NS.h2, 'nft', 'list', 'ruleset')).out, rulesBefore, 'the ruleset is unchanged (no duplicates)');
    assert.equal((await inNs(NS.h2, 'ip', '-br', 'link')).out, linksBefore);
    assert.doesNotMatch(agents.h2!.output(), /applied \d+ change/, 'the restarted agent found nothing to change');
    assert.ok(!client.killed && client.exitCode === null, 'the established connection is still open');
    assert.match(await tcpProbe(a1.netns, a2.status!.ip!, 8080), /hi8080/, 'new connections are still allowed');
    assert.equal(await tcpProbe(a1.netns, a2.status!.ip!, 8081), '', 'and still filtered');
  });
});
