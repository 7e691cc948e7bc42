// npm run bench:net — host network convergence: 500 ports on 50 networks applied from scratch by
// the kova applier (reads + diff + ip/bridge batches + nft transaction) versus the same commands
// fed raw to `ip -batch`, `bridge -batch` and `nft -f`, then one incremental change. Runs in
// throwaway network namespaces (root needed). The last output line is one JSON object.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { median } from './common.js';
import { diffFdb, diffLinks, HostNetworkApplier } from '../node-agent/network/apply.js';
import { readHostState } from '../node-agent/network/host-state.js';
import { commandRunner, runOrThrow } from '../node-agent/network/exec.js';
import { planHost } from '../node-agent/network/plan.js';
import { nftTransaction } from '../node-agent/network/render-nft.js';
import type { HostInput, NetworkInput, PortInput, SecurityGroupInput } from '../node-agent/network/types.js';

const run = promisify(execFile);
const { values } = parseArgs({
  options: {
    ports: { type: 'string', default: '500' },
    networks: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '3' },
    dhcp: { type: 'boolean', default: false },
  },
});
const PORTS = Number(values.ports);
const NETWORKS = Number(values.networks);
const ROUNDS = Number(values.rounds);
const log = (m: string) => process.stderr.write(`bench:net: ${m}\n`);
const id = randomBytes(3).toString('hex');

function hostInput(stateDir: string, ports: number, extraRule = false): HostInput {
  const networks: NetworkInput[] = [];
  for (let n = 0; n < NETWORKS; n++) {
    networks.push({ uid: `net-${n}`, namespace: 'bench', name: `net-${n}`, type: 'vxlan', cidr: `10.${n}.0.0/16`, vni: 1000 + n, dhcp: values.dhcp });
  }
  const portsIn: PortInput[] = [];
  for (let p = 0; p < ports; p++) {
    const n = p % NETWORKS;
    const host = Math.floor(p / NETWORKS) + 10;
    portsIn.push({
      uid: `port-${p}`, namespace: 'bench', name: `port-${p}`, network: `net-${n}`, ip: `10.${n}.${host >> 8}.${host & 255}`,
      mac: `52:54:00:${(p >> 16) & 255}:${(p >> 8) & 255}:${p & 255}`.replace(/:(\d+)/g, (_, d: string) => ':' + Number(d).toString(16).padStart(2, '0')),
      hostname: `vm-${p}`, securityGroups: ['default'],
    });
  }
  const sg: SecurityGroupInput = { namespace: 'bench', name: 'default', rules: [
    { direction: 'egress', protocol: 'any' },
    { direction: 'ingress', protocol: 'icmp' },
    { direction: 'ingress', protocol: 'tcp', portMin: 22, remoteCIDR: '10.0.0.0/8' },
    ...(extraRule ? [{ direction: 'ingress' as const, protocol: 'tcp' as const, portMin: 443 }] : []),
  ] };
  return {
    hostName: 'bench-1', tunnelIP: '192.0.2.1', networks, ports: portsIn,
    peers: [{ hostName: 'bench-1', tunnelIP: '192.0.2.1' }, { hostName: 'bench-2', tunnelIP: '192.0.2.2' }, { hostName: 'bench-3', tunnelIP: '192.0.2.3' }],
    securityGroups: [sg], floatingIPs: [], kernel: { vlan: false }, stateDir,
  };
}

async function freshNetns(name: string): Promise<void> {
  await run('ip', ['netns', 'add', name]);
  await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  await run('ip', ['-n', name, 'addr', 'add', '192.0.2.1/32', 'dev', 'lo']);
}


async function main(): Promise<void> {
  const stateDir = await mkdtemp(join(tmpdir(), 'kova-bench-net-'));
  const plan = planHost(hostInput(stateDir, PORTS));
  log(`${PORTS} ports, ${NETWORKS} networks, ${plan.nft.split('\n').length} nft lines, dhcp=${values.dhcp}`);
  const full: number[] = [];
  const raw: number[] = [];
  const incremental: number[] = [];
  const noop: number[] = [];
  // Namespaces are deleted only at the end: the kernel tears a deleted namespace's devices down
  // in the background under the RTNL lock, which would stall whatever is measured next.
  const namespaces: string[] = [];
  const appliers: HostNetworkApplier[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const rawNs = `kvbr${round}-${id}`;
      const ns = `kvbf${round}-${id}`;
      for (const n of [rawNs, ns]) {
        await freshNetns(n);
        namespaces.push(n);
      }
      // Raw baseline: the same commands, precomputed, fed straight to the tools.
      const r = commandRunner(rawNs);
      const empty = await readHostState(r);
      const ipCmds = diffLinks(plan, empty).join('\n') + '\n';
      const fdbCmds = diffFdb(plan, empty).join('\n') + '\n';
      const nft = nftTransaction(plan.nft);
      let t0 = performance.now();
      await runOrThrow(r, 'ip', ['-batch', '-'], ipCmds);
      await runOrThrow(r, 'bridge', ['-batch', '-'], fdbCmds);
      await runOrThrow(r, 'nft', ['-f', '-'], nft);
      raw.push(performance.now() - t0);

      const applier = new HostNetworkApplier({ netns: ns, stateDir });
      appliers.push(applier);
      t0 = performance.now();
      const res = await applier.apply(plan);
      full.push(performance.now() - t0);
      if (res.errors.length > 0) throw new Error(res.errors.join('; '));

      t0 = performance.now();
      const again = await applier.apply(plan);
      noop.push(performance.now() - t0);
      if (again.changes.length > 0) throw new Error(`re-apply not a no-op: ${again.changes.slice(0, 5).join('; ')}`);

      // One change: a new port on an existing network plus a security group rule edit. Timed
      // with planning, as an agent reconcile would do it.
      const changedInput = hostInput(stateDir, PORTS + 1, true);
      t0 = performance.now();
      const inc = await applier.apply(planHost(changedInput));
      incremental.push(performance.now() - t0);
      if (inc.errors.length > 0) throw new Error(inc.errors.join('; '));
      log(`round ${round + 1}: full ${full.at(-1)!.toFixed(0)} ms, raw ${raw.at(-1)!.toFixed(0)} ms, no-op ${noop.at(-1)!.toFixed(0)} ms, incremental ${incremental.at(-1)!.toFixed(0)} ms (${inc.changes.length} changes)`);
      await applier.teardown(); // stops dnsmasq (when --dhcp) before the next round reuses stateDir
    }
  } finally {
    for (const a of appliers) await a.teardown().catch(() => {});
    for (const n of namespaces) await run('ip', ['netns', 'del', n]).catch(() => {});
  }
  await rm(stateDir, { recursive: true, force: true });
  const result = {
    ports: PORTS,
    networks: NETWORKS,
    dhcp: values.dhcp,
    full_converge_ms: Math.round(median(full)),
    raw_batch_ms: Math.round(median(raw)),
    ratio_full: Number((median(full) / median(raw)).toFixed(2)),
    incremental_ms: Math.round(median(incremental)),
    noop_ms: Math.round(median(noop)),
  };
  console.log(JSON.stringify(result));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
