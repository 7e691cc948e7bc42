// The node agent's network reconciler: gathers what concerns this host from the API (its ports,
// their networks, security groups, floating IPs, routers, the other hosts' tunnel addresses),
// plans it with planHost and converges the host with HostNetworkApplier. One queue key for the
// whole host: every relevant change re-plans, the applier makes unchanged plans free. Results go
// back as per-host Network conditions (`host.kova.dev/<host>`) and a Port condition `Configured`.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Condition, KObject } from '../api/types.js';
import { NAMESPACES } from '../client/client.js';
import type { Kind, KovaClient } from '../client/client.js';
import { Controller, errorMessage } from '../client/controller.js';
import type { Reconciler, Result } from '../client/controller.js';
import { Informer } from '../client/informer.js';
import { hasCondition, setCondition } from '../api/conditions.js';
import { HostNetworkApplier } from './network/apply.js';
import type { ApplyResult, KernelFeatures } from './network/apply.js';
import { networkDeviceName, portDeviceName, shortHash } from '../api/net/names.js';
import { planHost } from './network/plan.js';
import { timeNetworkPlanApply } from './metrics.js';
import type { HostPlanResult } from './network/plan.js';
import type { HostInput, NetworkInput, PortInput, SecurityGroupInput, SecurityGroupRule } from './network/types.js';
import { validIPv4 } from './network/validate.js';
import { FLOATING_IPS, HOSTS, NETWORKS, PORTS, ROUTERS, SECURITY_GROUPS } from '../api/kinds/index.js';
import type { FloatingIP, Host, Network, Port, Router, SecurityGroup, StatusBase } from '../api/kinds/index.js';
import { DEFAULT_SECURITY_GROUP, HOST_CONDITION_PREFIX } from '../api/net/rules.js';
import { launch } from '../lib/launcher.js';


export interface NetworkAgentOptions {
  client: KovaClient;
  hostName: string;
  /** Run the host side inside this network namespace (simulated hosts on one machine). */
  netns?: string;
  /** This host's VXLAN endpoint; also written to Host.spec.tunnelIP. */
  tunnelIP?: string;
  /** dnsmasq configs, leases and the agent's own bookkeeping. */
  stateDir: string;
  /**
   * `tap` (QEMU attaches to it) or `veth` (sim compute: the instance end goes into its own
   * network namespace, `simInstanceNetns(port)`, so tests can use it as the guest).
   */
  portDevice: 'tap' | 'veth';
  /** Full re-plan interval, repairing drift (default 30 s). */
  resyncMs?: number;
  log?: (msg: string) => void;
}

/** The network namespace standing in for the guest of a sim-compute port. */
export function simInstanceNetns(port: { metadata: { uid?: string } }): string {
  return `kvsim-${shortHash('instance-netns', port.metadata.uid!)}`;
}

export interface ResolvedNic {
  /** Host device the hypervisor attaches to (libvirt: `<target dev=…/>`, type ethernet, managed no). */
  device: string;
  mac: string;
  /** Bridge the device is enslaved to by the network agent. */
  bridge?: string;
}

/** What the libvirt driver needs for one NIC of a Port (a tap the network agent creates). */
export function resolveNic(port: Port, network?: Network): ResolvedNic | undefined {
  const mac = port.status?.mac ?? port.spec.mac;
  if (!mac || !port.metadata.uid) return undefined;
  const device = portDeviceName('tap', { uid: port.metadata.uid, namespace: port.metadata.namespace!, name: port.metadata.name! });
  const bridge = network?.metadata.uid ? networkDeviceName('bridge', { uid: network.metadata.uid, namespace: network.metadata.namespace!, name: network.metadata.name! }) : undefined;
  return { device, mac, ...(bridge ? { bridge } : {}) };
}

const HOST_KEY = 'host';
const key = (o: KObject) => `${o.metadata.namespace}/${o.metadata.name}`;

/** Security group rules as the planner takes them; remoteGroup becomes one rule per member address. */
export function sgInput(sg: SecurityGroup, portsInNamespace: readonly Port[]): SecurityGroupInput {
  const rules: SecurityGroupRule[] = [];
  for (const r of sg.spec?.rules ?? []) {
    const base: SecurityGroupRule = {
      direction: r.direction,
      protocol: r.protocol ?? 'any',
      ...(r.portRange ? { portMin: r.portRange.min, portMax: r.portRange.max ?? r.portRange.min } : {}),
    };
    if (r.remoteGroup !== undefined && r.remoteCIDR !== undefined) {
      // Passed through so the planner refuses the group, naming the field.
      rules.push({ ...base, remoteCIDR: 'remoteCIDR and remoteGroup are exclusive' });
    } else if (r.remoteGroup !== undefined) {
      const members = portsInNamespace.filter((p) => (p.spec.securityGroups ?? [DEFAULT_SECURITY_GROUP]).includes(r.remoteGroup!) && p.status?.ip);
      for (const ip of [...new Set(members.map((p) => p.status!.ip!))].sort()) rules.push({ ...base, remoteCIDR: `${ip}/32` });
    } else {
      rules.push({ ...base, ...(r.remoteCIDR !== undefined ? { remoteCIDR: r.remoteCIDR } : {}) });
    }
  }
  return { namespace: sg.metadata.namespace!, name: sg.metadata.name!, rules };
}

export class NetworkAgent implements Reconciler {
  readonly name = 'host-network';
  readonly applier: HostNetworkApplier;
  readonly controller: Controller;
  /** The plan last applied without error and when (its JSON), until the next resync. */
  private applied?: { key: string; at: number };
  /** Last plan and apply result, for tests and logs. */
  last?: { plan: HostPlanResult; result: ApplyResult };
  private readonly log: (msg: string) => void;
  private readonly networks: Informer<Network>;
  private readonly ports: Informer<Port>;
  private readonly groups: Informer<SecurityGroup>;
  private readonly fips: Informer<FloatingIP>;
  private readonly routers: Informer<Router>;
  private readonly hosts: Informer<Host>;
  private kernel?: KernelFeatures;
  private createdNetns = new Set<string>();
  /** What this host made of the ports arriving with a migrating instance (their Configured condition is the source's). */
  private readonly incoming = new Map<string, { ok: true } | { ok: false; message: string }>();
  private readonly incomingListeners = new Set<(namespace: string, name: string) => void>();
  /** Names this cluster's nftables tables, so clusters sharing a machine keep their own rules. */
  private clusterID?: string;

  constructor(private readonly o: NetworkAgentOptions) {
    this.log = o.log ?? ((m) => console.error(m));
    this.applier = new HostNetworkApplier({ netns: o.netns, stateDir: o.stateDir });
    const { client } = o;
    const log = this.log;
    this.networks = new Informer(client, NETWORKS, { log });
    // All ports, not only this host's: remoteGroup rules need the addresses of every member.
    this.ports = new Informer(client, PORTS, { log });
    this.groups = new Informer(client, SECURITY_GROUPS, { log });
    this.fips = new Informer(client, FLOATING_IPS, { log });
    this.routers = new Informer(client, ROUTERS, { log });
    this.hosts = new Informer(client, HOSTS, { log });
    this.controller = new Controller(this, { workers: 1, log });
  }

  /**
   * Whether this host has configured a Port (its device exists: condition Configured=True with
   * the Port placed here), else why not. The instance reconciler waits for it before a spawn.
   */
  portConfigured(namespace: string, name: string): { ok: true } | { ok: false; message: string } {
    const p = this.ports.get(namespace, name);
    if (!p) return { ok: false, message: 'the port does not exist' };
    // A port arriving with a migrating instance: its condition is the source's; this host's own result counts.
    if (p.status?.migratingTo === this.o.hostName && p.status.hostName !== this.o.hostName) {
      return this.incoming.get(`${namespace}/${name}`) ?? { ok: false, message: 'the network agent has not plugged it here yet' };
    }
    if (p.status?.hostName !== this.o.hostName) return { ok: false, message: `the port is placed on ${p.status?.hostName ? `host ${p.status.hostName}` : 'no host'}` };
    const c = p.status?.conditions?.find((x) => x.type === 'Configured');
    if (c?.status === 'True') return { ok: true };
    return { ok: false, message: c ? `${c.reason}${c.message ? `: ${c.message}` : ''}` : 'the network agent has not configured it yet' };
  }

  /** The cached Port (the node agent's resolver reads NIC facts from here, not the API). */
  port(namespace: string, name: string): Port | undefined {
    return this.ports.get(namespace, name);
  }

  /** The cached Network. */
  network(namespace: string, name: string): Network | undefined {
    return this.networks.get(namespace, name);
  }

  /** Calls `cb` when this host has plugged a port that is arriving with a migrating instance. */
  onIncomingPortReady(cb: (namespace: string, name: string) => void): void {
    this.incomingListeners.add(cb);
  }

  /** Calls `cb` with each Port that is added, changed or deleted. */
  onPortChange(cb: (namespace: string, name: string) => void): void {
    const h = (p: Port) => cb(p.metadata.namespace!, p.metadata.name!);
    for (const ev of ['add', 'update', 'delete'] as const) this.ports.on(ev, h);
  }

  private informers(): Array<Pick<Informer<KObject>, 'on' | 'start' | 'stop' | 'waitForSync'>> {
    return [this.networks, this.ports, this.groups, this.fips, this.routers, this.hosts];
  }

  async start(signal: AbortSignal): Promise<void> {
    await mkdir(this.o.stateDir, { recursive: true });
    // Like Kubernetes' cluster ID convention: the uid of the kube-system namespace.
    this.clusterID = (await this.o.client.get(NAMESPACES, undefined, 'kube-system'))?.metadata.uid;
    if (!this.clusterID) throw new Error('network agent: namespace kube-system has no uid, so this cluster has no id to name its nftables tables');
    this.createdNetns = new Set(await this.loadNetnsBook());
    this.kernel = await this.applier.kernelFeatures();
    if (this.o.tunnelIP !== undefined) {
      validIPv4('tunnelIP', this.o.tunnelIP);
      await this.o.client.mergePatch(HOSTS, undefined, this.o.hostName, { spec: { tunnelIP: this.o.tunnelIP } });
    }
    const poke = () => this.controller.enqueueKey(HOST_KEY);
    // Of the Hosts only the tunnel peers matter: heartbeats and allocation changes (every few
    // seconds per host, and twice per migration) would each re-apply the whole plan.
    let peers = '';
    const pokePeers = () => {
      const now = this.peerKey();
      if (now === peers) return;
      peers = now;
      poke();
    };
    for (const inf of this.informers()) {
      for (const ev of ['add', 'update', 'delete'] as const) inf.on(ev, inf === this.hosts ? pokePeers : poke);
      inf.start();
    }
    signal.addEventListener('abort', () => this.informers().forEach((i) => i.stop()), { once: true });
    await Promise.all(this.informers().map((i) => i.waitForSync(signal)));
    poke();
    void this.controller.start(signal);
  }

  /** Ports whose instance runs on this host, or is migrating to it, and that have their addresses. */
  localPorts(): Port[] {
    return this.ports.list().filter((p) => (p.status?.hostName === this.o.hostName || p.status?.migratingTo === this.o.hostName) && !p.metadata.deletionTimestamp && p.status.ip && p.status.mac);
  }

  /** Builds this host's planner input from the caches. */
  hostInput(): HostInput {
    const ports = this.localPorts();
    const namespaces = new Set(ports.map((p) => p.metadata.namespace!));
    const netKeys = new Set(ports.map((p) => `${p.metadata.namespace}/${p.spec.network}`));
    const networks: NetworkInput[] = [];
    for (const n of this.networks.list()) {
      if (!netKeys.has(key(n)) || n.metadata.deletionTimestamp) continue;
      const vni = n.spec.vni ?? n.status?.vni;
      if (n.spec.type === 'vxlan' && vni === undefined) continue; // the controller has not allocated it yet
      networks.push({
        uid: n.metadata.uid!, namespace: n.metadata.namespace!, name: n.metadata.name!,
        type: n.spec.type, cidr: n.spec.cidr, dhcp: n.spec.dhcp ?? true,
        ...(n.spec.gateway !== undefined ? { gateway: n.spec.gateway } : {}),
        ...(n.spec.dns !== undefined ? { dns: n.spec.dns } : {}),
        ...(vni !== undefined && n.spec.type === 'vxlan' ? { vni } : {}),
        ...(n.spec.vlanID !== undefined ? { vlanID: n.spec.vlanID } : {}),
        ...(n.spec.physicalInterface !== undefined ? { physicalInterface: n.spec.physicalInterface } : {}),
        ...(n.spec.external !== undefined ? { external: n.spec.external } : {}),
      });
    }
    const portInputs: PortInput[] = ports.map((p) => ({
      uid: p.metadata.uid!, namespace: p.metadata.namespace!, name: p.metadata.name!,
      network: p.spec.network, ip: p.status!.ip!, mac: p.status!.mac!,
      ...(p.status?.instance ? { hostname: p.status.instance } : {}),
      // Unset means the project's default group (as in Neutron); an explicit [] allows nothing.
      securityGroups: p.spec.securityGroups ?? [DEFAULT_SECURITY_GROUP],
      device: this.o.portDevice,
      ...(this.o.portDevice === 'veth' ? { peerNetns: simInstanceNetns(p) } : {}),
    }));
    const securityGroups = this.groups.list()
      .filter((g) => namespaces.has(g.metadata.namespace!) && !g.metadata.deletionTimestamp)
      .map((g) => sgInput(g, this.ports.list(g.metadata.namespace)));
    const floatingIPs = this.fips.list()
      .filter((f) => f.status?.phase === 'Bound' && f.status.hostName === this.o.hostName && f.status.ip && f.status.port)
      .map((f) => ({ namespace: f.metadata.namespace!, name: f.metadata.name!, ip: f.status!.ip!, port: f.status!.port! }));
    const routers = this.routers.list()
      .filter((r) => namespaces.has(r.metadata.namespace!) && r.status?.phase === 'Ready')
      .map((r) => ({ namespace: r.metadata.namespace!, name: r.metadata.name!, networks: r.spec.networks ?? [] }));
    const peers = this.peers();
    const remoteNames = this.ports.list()
      .filter((p) => netKeys.has(`${p.metadata.namespace}/${p.spec.network}`) && p.status?.hostName !== this.o.hostName && p.status?.migratingTo !== this.o.hostName && !p.metadata.deletionTimestamp && p.status?.ip && p.status.instance)
      .map((p) => ({ namespace: p.metadata.namespace!, network: p.spec.network, ip: p.status!.ip!, hostname: p.status!.instance! }));
    return {
      hostName: this.o.hostName,
      ...(this.o.tunnelIP ? { tunnelIP: this.o.tunnelIP } : {}),
      networks, ports: portInputs, peers, securityGroups, floatingIPs, routers, remoteNames,
      kernel: this.kernel ?? { vlan: true },
      stateDir: this.o.stateDir,
      ...(this.clusterID ? { clusterID: this.clusterID } : {}),
    };
  }

  /** The other hosts' tunnel endpoints (VXLAN peers). */
  private peers(): Array<{ hostName: string; tunnelIP: string }> {
    return this.hosts.list()
      .filter((h) => h.spec?.tunnelIP && h.metadata.name !== this.o.hostName)
      .map((h) => ({ hostName: h.metadata.name!, tunnelIP: h.spec!.tunnelIP! }));
  }

  private peerKey(): string {
    return this.peers().map((p) => `${p.hostName}=${p.tunnelIP}`).sort().join(',');
  }

  async reconcile(): Promise<Result | void> {
    const input = this.hostInput();
    const plan = planHost(input);
    if (this.o.portDevice === 'veth') await this.ensureInstanceNetns(plan);
    const resyncMs = this.o.resyncMs ?? 30_000;
    // Any Port, Network or group change in the cluster wakes every host; most leave this host's
    // plan as it was. Reading the host's state again (six programs) then only costs: the plan
    // that was applied without error is taken as applied until the periodic resync, which
    // reads and repairs whatever changed on the host behind kova's back.
    const key = JSON.stringify(plan);
    if (this.applied && this.last && this.applied.key === key && Date.now() - this.applied.at < resyncMs / 2) {
      await this.report(input, plan, this.last.result); // conditions a failed write left behind
      return { requeueAfterMs: resyncMs };
    }
    const endTimer = timeNetworkPlanApply(this.o.hostName);
    const result = await this.applier.apply(plan).finally(endTimer);
    this.applied = result.errors.length ? undefined : { key, at: Date.now() };
    this.last = { plan, result };
    if (result.changes.length) {
      const shown = result.changes.slice(0, 5).map((c) => c.split('\n')[0]!.slice(0, 120)).join('; ');
      this.log(`network ${this.o.hostName}: applied ${result.changes.length} change(s): ${shown}${result.changes.length > 5 ? '; ...' : ''}`);
    }
    await this.report(input, plan, result);
    if (result.errors.length) throw new Error(`network apply on ${this.o.hostName}: ${result.errors.join('; ')}`);
    return { requeueAfterMs: resyncMs };
  }

  /** Per-host Network conditions and the Port condition `Configured`. */
  private async report(input: HostInput, plan: HostPlanResult, result: ApplyResult): Promise<void> {
    const condType = `${HOST_CONDITION_PREFIX}${this.o.hostName}`;
    for (const c of plan.conditions) {
      const [ns, name] = c.network.split('/') as [string, string];
      const want = { type: condType, status: c.ready ? 'True' as const : 'False' as const, reason: c.reason, message: c.message || (c.ready ? 'configured on this host' : '') };
      const cur = this.networks.get(ns, name);
      if (!cur || hasCondition(cur.status?.conditions, want)) continue;
      await this.writeConditions(NETWORKS, ns, name, want);
    }
    const rejected = new Map(plan.rejected.filter((r) => r.kind === 'Port').map((r) => [`${r.namespace}/${r.name}`, r.message]));
    const warned = new Map(plan.warnings.filter((r) => r.kind === 'Port').map((r) => [`${r.namespace}/${r.name}`, r.message]));
    const sgRejected = plan.rejected.filter((r) => r.kind === 'SecurityGroup');
    for (const p of input.ports) {
      const k = `${p.namespace}/${p.name}`;
      const badGroups = sgRejected.filter((r) => r.namespace === p.namespace && (p.securityGroups ?? []).includes(r.name));
      const msg = rejected.get(k) ?? (badGroups.length ? `security group ${badGroups[0]!.name} rejected: ${badGroups[0]!.message}` : undefined);
      const want = msg !== undefined
        ? { type: 'Configured', status: 'False' as const, reason: rejected.has(k) ? 'Rejected' : 'SecurityGroupRejected', message: msg }
        : { type: 'Configured', status: result.errors.length ? 'False' as const : 'True' as const, reason: result.errors.length ? 'ApplyFailed' : 'Configured', message: result.errors.length ? result.errors[0]! : (warned.get(k) ?? '') };
      const cur = this.ports.get(p.namespace, p.name);
      if (cur && cur.status?.hostName !== this.o.hostName) {
        // Plugged for an arriving migration: the Port's condition stays its current host's.
        const was = this.incoming.get(k)?.ok === true;
        this.incoming.set(k, want.status === 'True' ? { ok: true } : { ok: false, message: `${want.reason}: ${want.message}` });
        if (!was && want.status === 'True') for (const cb of this.incomingListeners) cb(p.namespace, p.name);
        continue;
      }
      if (!cur || hasCondition(cur.status?.conditions, want)) continue;
      await this.writeConditions(PORTS, p.namespace, p.name, want);
    }
    for (const k of [...this.incoming.keys()]) if (!input.ports.some((p) => `${p.namespace}/${p.name}` === k)) this.incoming.delete(k);
    for (const r of plan.rejected.filter((x) => x.kind !== 'Port')) this.log(`network ${this.o.hostName}: ${r.kind} ${r.namespace}/${r.name} rejected: ${r.message}`);
  }

  private async writeConditions(kind: Kind, ns: string, name: string, want: Omit<Condition, 'lastTransitionTime'>): Promise<void> {
    try {
      await this.o.client.updateStatus<Network | Port>(kind, ns, name, (fresh) => {
        const s: StatusBase = fresh.status ?? {};
        if (hasCondition(s.conditions, want)) return false;
        fresh.status = { ...s, conditions: setCondition(s.conditions, want) };
      });
    } catch (e) {
      this.log(`network ${this.o.hostName}: status of ${kind.kind} ${ns}/${name}: ${errorMessage(e)}`);
    }
  }

  /** Sim compute: each veth port's guest end lives in a namespace of its own, made here. */
  private async ensureInstanceNetns(plan: HostPlanResult): Promise<void> {
    const want = new Set(plan.ports.map((p) => p.peerNetns).filter((n): n is string => !!n));
    const existing = new Set((await launch('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]!).filter(Boolean));
    let changed = false;
    for (const n of want) {
      if (existing.has(n)) continue;
      await launch('ip', ['netns', 'add', n]);
      await launch('ip', ['-n', n, 'link', 'set', 'lo', 'up']);
      this.createdNetns.add(n);
      changed = true;
    }
    // Only namespaces this agent made: other agents on the machine own theirs.
    for (const n of [...this.createdNetns]) {
      if (want.has(n)) continue;
      await launch('ip', ['netns', 'del', n]).catch(() => undefined);
      this.createdNetns.delete(n);
      changed = true;
    }
    if (changed) await writeFile(this.netnsBook(), JSON.stringify([...this.createdNetns].sort()));
  }

  private netnsBook(): string {
    return join(this.o.stateDir, 'instance-netns.json');
  }

  private async loadNetnsBook(): Promise<string[]> {
    try {
      const v = JSON.parse(await readFile(this.netnsBook(), 'utf8')) as unknown;
      return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string' && /^kvsim-[0-9a-f]{10}$/.test(x)) : [];
    } catch {
      return [];
    }
  }
}
