// The host network applier: reads actual state, diffs it against a HostPlan and converges with
// as few commands as possible — one `ip -batch`, one `bridge -batch`, one `nft -f` transaction,
// and dnsmasq starts/reloads only where configs changed. Re-applying an unchanged plan issues no
// commands (only reads). Everything can run inside a network namespace (option `netns`).
import { chmod, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { commandRunner, type CommandRunner } from './exec.js';
import { readHostState, type HostState, type LinkState } from './host-state.js';
import { isKovaDevice } from '../../api/net/names.js';
import { LEGACY_NFT_TABLE, NFT_COMMENT_PREFIX, nftDeleteTables, nftTransaction, validNftTable } from './render-nft.js';
import type { DnsmasqPlan, HostPlan } from './types.js';
import { validNetnsName, validStatePath } from './validate.js';

export interface ApplierOptions {
  /** Run every command inside this network namespace (`ip -n <ns>`, `ip netns exec <ns> …`). */
  netns?: string;
  /** Where dnsmasq configs, pid and lease files live (must match the plan's stateDir). */
  stateDir: string;
}

export interface ApplyResult {
  /** What was issued, one entry per host change (ip/bridge batch lines, nft, sysctl, dnsmasq). */
  changes: string[];
  /** Failures; the applier keeps going, and the next apply retries (level-triggered). */
  errors: string[];
}

export interface KernelFeatures {
  vlan: boolean;
}

const ZERO_MAC = '00:00:00:00:00:00';

interface DesiredLink {
  name: string;
  create: string[];
  master?: string;
  mac?: string;
  /** Whether an existing link with this name can be kept as is. */
  compatible(l: LinkState): boolean;
}

function desiredLinks(plan: HostPlan): DesiredLink[] {
  const out: DesiredLink[] = [];
  for (const b of plan.bridges) {
    out.push({
      name: b.name,
      ...(b.mac ? { mac: b.mac } : {}),
      create: [`link add name ${b.name}${b.mac ? ` address ${b.mac}` : ''} type bridge`],
      compatible: (l) => l.kind === 'bridge',
    });
  }
  for (const v of plan.vxlans) {
    out.push({
      name: v.name,
      master: v.master,
      create: [`link add name ${v.name} type vxlan id ${v.vni} local ${v.local} dstport ${v.dstport} nolearning`],
      compatible: (l) => l.kind === 'vxlan' && l.vxlan?.id === v.vni && l.vxlan.local === v.local && l.vxlan.port === v.dstport && l.vxlan.learning === false,
    });
  }
  for (const v of plan.vlans) {
    out.push({
      name: v.name,
      master: v.master,
      create: [`link add link ${v.link} name ${v.name} type vlan id ${v.vlanID}`],
      compatible: (l) => l.kind === 'vlan' && l.vlan?.id === v.vlanID && l.vlan.link === v.link,
    });
  }
  for (const p of plan.ports) {
    if (p.kind === 'tap') {
      out.push({ name: p.name, master: p.master, mac: p.mac, create: [`tuntap add dev ${p.name} mode tap`], compatible: (l) => l.kind === 'tun' });
    } else {
      out.push({
        name: p.name,
        master: p.master,
        mac: p.mac,
        create: [`link add name ${p.name} address ${p.mac} type veth peer name ${p.peerName} address ${p.guestMac} netns ${p.peerNetns}`],
        compatible: (l) => l.kind === 'veth' && l.peerElsewhere,
      });
    }
  }
  return out;
}

/** The `ip -batch` lines that turn `state` into `plan` (links, masters, up, addresses). */
export function diffLinks(plan: HostPlan, state: HostState): string[] {
  const del: string[] = [];
  const add: string[] = [];
  const set: string[] = [];
  const want = desiredLinks(plan);
  const wanted = new Set(want.map((d) => d.name));
  // Links deleted or (re)created by this batch: their current addresses no longer count.
  const fresh = new Set<string>();
  const uplinkMaster = new Map(plan.uplinks.map((u) => [u.name, u.master]));
  for (const l of state.links.values()) {
    if (isKovaDevice(l.name) && !wanted.has(l.name)) {
      del.push(`link del dev ${l.name}`);
    } else if (!isKovaDevice(l.name) && l.master && isKovaDevice(l.master) && uplinkMaster.get(l.name) !== l.master) {
      set.push(`link set dev ${l.name} nomaster`);
    }
  }
  for (const d of want) {
    let cur = state.links.get(d.name);
    if (cur && !d.compatible(cur)) {
      del.push(`link del dev ${d.name}`);
      cur = undefined;
    }
    if (!cur) {
      fresh.add(d.name);
      add.push(...d.create);
      if (d.mac && !d.create[0]!.includes(`address ${d.mac}`)) set.push(`link set dev ${d.name} address ${d.mac}`);
      set.push(`link set dev ${d.name}${d.master ? ` master ${d.master}` : ''} up`);
      continue;
    }
    if (d.mac && cur.mac !== d.mac) set.push(`link set dev ${d.name} address ${d.mac}`);
    const fixMaster = d.master !== undefined && cur.master !== d.master;
    if (fixMaster || !cur.up) set.push(`link set dev ${d.name}${fixMaster ? ` master ${d.master}` : ''} up`);
  }
  for (const u of plan.uplinks) {
    const cur = state.links.get(u.name);
    if (!cur) continue; // reported by the caller: the uplink device does not exist
    if (cur.master !== u.master || !cur.up) set.push(`link set dev ${u.name} master ${u.master} up`);
  }
  for (const b of plan.bridges) {
    const cur = state.links.get(b.name);
    const have = cur && !fresh.has(b.name) ? cur.addresses : [];
    const wantAddr = b.address ? [b.address] : [];
    for (const a of have) if (!wantAddr.includes(a)) set.push(`addr del ${a} dev ${b.name}`);
    for (const a of wantAddr) if (!have.includes(a)) set.push(`addr add ${a} dev ${b.name}`);
  }
  return [...del, ...add, ...set];
}

/** The `bridge -batch` lines for head-end replication entries on kova VXLAN devices. */
export function diffFdb(plan: HostPlan, state: HostState): string[] {
  const out: string[] = [];
  const have = new Map<string, Set<string>>();
  for (const e of state.fdb) {
    if (e.mac !== ZERO_MAC || !isKovaDevice(e.dev)) continue;
    const s = have.get(e.dev) ?? new Set<string>();
    s.add(e.dst);
    have.set(e.dev, s);
  }
  const desired = new Map(desiredLinks(plan).map((d) => [d.name, d]));
  for (const v of plan.vxlans) {
    // A VXLAN device that is missing or about to be recreated starts with no entries.
    const cur = state.links.get(v.name);
    const kept = cur !== undefined && desired.get(v.name)!.compatible(cur);
    const existing = kept ? (have.get(v.name) ?? new Set<string>()) : new Set<string>();
    for (const dst of existing) if (!v.remotes.includes(dst)) out.push(`fdb del ${ZERO_MAC} dev ${v.name} dst ${dst}`);
    for (const dst of v.remotes) if (!existing.has(dst)) out.push(`fdb append ${ZERO_MAC} dev ${v.name} dst ${dst}`);
  }
  return out;
}

function planNftHash(plan: HostPlan): string {
  const m = /return comment "([^"]*)"/.exec(plan.nft);
  return m ? m[1]! : '';
}

export class HostNetworkApplier {
  readonly #run: CommandRunner;
  readonly #netns: string | undefined;
  readonly #stateDir: string;
  #kernel: KernelFeatures | undefined;
  /** The nftables table of the plans applied here (one cluster per applier). */
  #nftTable = LEGACY_NFT_TABLE;
  /** Whether the pre-per-cluster `kova` tables are known to be gone (checked on the first apply). */
  #legacyGone = false;
  /** apply/teardown run one at a time: each reads state and then acts on what it read. */
  #serial: Promise<unknown> = Promise.resolve();

  constructor(opts: ApplierOptions) {
    this.#netns = opts.netns === undefined ? undefined : validNetnsName('netns', opts.netns);
    this.#stateDir = validStatePath('stateDir', opts.stateDir);
    this.#run = commandRunner(this.#netns);
  }

  /** Probes 802.1Q support by creating (and removing) a VLAN device on lo. Cached. */
  async kernelFeatures(): Promise<KernelFeatures> {
    if (this.#kernel) return this.#kernel;
    await this.#run.run('ip', ['link', 'del', 'kvprobe']);
    const r = await this.#run.run('ip', ['link', 'add', 'link', 'lo', 'name', 'kvprobe', 'type', 'vlan', 'id', '2']);
    if (r.code === 0) await this.#run.run('ip', ['link', 'del', 'kvprobe']);
    this.#kernel = { vlan: r.code === 0 };
    return this.#kernel;
  }

  /** Host state, with the plan markers of `nftTable` (default: the last applied plan's table). */
  readState(nftTable = this.#nftTable): Promise<HostState> {
    return readHostState(this.#run, nftTable);
  }

  /** Converges the host to `plan`. Idempotent; safe to call on every reconcile. */
  apply(plan: HostPlan): Promise<ApplyResult> {
    return this.#exclusive(() => this.#apply(plan));
  }

  /**
   * Removes everything kova owns on this host/namespace: dnsmasq, devices, and the nft tables of
   * `nftTable` (default: those of the last applied plan; other clusters' tables stay).
   */
  teardown(nftTable = this.#nftTable): Promise<void> {
    return this.#exclusive(() => this.#teardown(validNftTable(nftTable)));
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#serial.then(fn, fn);
    this.#serial = run.catch(() => {});
    return run;
  }

  async #apply(plan: HostPlan): Promise<ApplyResult> {
    const res: ApplyResult = { changes: [], errors: [] };
    const foreign = plan.dnsmasq.find((d) => !d.confFile.startsWith(`${this.#stateDir}/`));
    if (foreign) throw new Error(`plan stateDir differs from the applier's ${this.#stateDir}: ${foreign.confFile}`);
    this.#nftTable = validNftTable(plan.nftTable);
    const state = await this.readState();
    for (const u of plan.uplinks) if (!state.links.has(u.name)) res.errors.push(`uplink ${u.name} does not exist`);

    // The nft ruleset does not depend on the devices (its rules match them by name, which need
    // not exist yet): it converges alongside them and the sysctls that follow them, each side
    // reporting into its own result, merged below in the order they used to run. dnsmasq binds
    // to the bridges: after both.
    const links: ApplyResult = { changes: [], errors: [] };
    const nft: ApplyResult = { changes: [], errors: [] };
    const sysctl: ApplyResult = { changes: [], errors: [] };
    await Promise.all([
      this.#convergeLinks(plan, state, links).then(() => this.#convergeSysctls(plan, state, sysctl)),
      this.#convergeNft(plan, state, nft),
    ]);
    for (const r of [links, nft, sysctl]) {
      res.changes.push(...r.changes);
      res.errors.push(...r.errors);
    }

    await this.#convergeDnsmasq(plan.dnsmasq, res);
    return res;
  }

  async #convergeLinks(plan: HostPlan, state: HostState, res: ApplyResult): Promise<void> {
    const ipCmds = diffLinks(plan, state);
    if (ipCmds.length > 0) await this.#batch('ip', ipCmds, res);
    const fdbCmds = diffFdb(plan, state);
    if (fdbCmds.length > 0) await this.#batch('bridge', fdbCmds, res);
  }

  async #convergeNft(plan: HostPlan, state: HostState, res: ApplyResult): Promise<void> {
    const hash = planNftHash(plan);
    // A host upgraded from kova before per-cluster tables still has the shared `kova` tables,
    // whose stale drop rules would keep filtering: removed in this cluster's next transaction.
    if (!this.#legacyGone && plan.nftTable !== LEGACY_NFT_TABLE) this.#legacyGone = !(await this.#legacyTablesExist());
    const legacy = this.#legacyGone || plan.nftTable === LEGACY_NFT_TABLE ? '' : nftDeleteTables(LEGACY_NFT_TABLE);
    if (legacy || state.nftMarkers.get('inet') !== hash || state.nftMarkers.get('bridge') !== hash) {
      // Creating the tables first makes the deletes valid on a fresh host: one atomic transaction.
      const r = await this.#run.run('nft', ['-f', '-'], legacy + nftTransaction(plan.nft, plan.nftTable));
      res.changes.push(`nft -f ${plan.nftTable} (${hash.slice(NFT_COMMENT_PREFIX.length)})`);
      if (r.code !== 0) res.errors.push(`nft -f: ${r.stderr.trim()}`);
      else if (legacy) this.#legacyGone = true;
    }
  }

  async #convergeSysctls(plan: HostPlan, state: HostState, res: ApplyResult): Promise<void> {
    const sysctls: [string, string][] = [['net.bridge.bridge-nf-call-iptables', '1']];
    if (plan.forwarding) sysctls.push(['net.ipv4.ip_forward', '1']);
    for (const [k, v] of sysctls) {
      if (state.sysctl.get(k) === v) continue;
      const r = await this.#run.run('sysctl', ['-q', '-w', `${k}=${v}`]);
      res.changes.push(`sysctl ${k}=${v}`);
      if (r.code !== 0) res.errors.push(`sysctl ${k}: ${r.stderr.trim()}`);
    }
  }

  async #legacyTablesExist(): Promise<boolean> {
    const r = await Promise.all(['inet', 'bridge'].map((f) => this.#run.run('nft', ['list', 'table', f, LEGACY_NFT_TABLE])));
    return r.some((x) => x.code === 0);
  }

  async #teardown(nftTable: string): Promise<void> {
    await this.#convergeDnsmasq([], { changes: [], errors: [] });
    const empty: HostPlan = { bridges: [], vxlans: [], vlans: [], uplinks: [], ports: [], dnsmasq: [], nft: '', nftTable, forwarding: false, conditions: [] };
    const cmds = diffLinks(empty, await this.readState(nftTable));
    if (cmds.length > 0) await this.#run.run('ip', ['-force', '-batch', '-'], cmds.join('\n') + '\n');
    await this.#run.run('nft', ['-f', '-'], nftDeleteTables(nftTable));
  }

  async #batch(tool: 'ip' | 'bridge', cmds: string[], res: ApplyResult): Promise<void> {
    // -force: one failing line (e.g. a missing uplink) must not block the rest.
    const r = await this.#run.run(tool, ['-force', '-batch', '-'], cmds.join('\n') + '\n');
    res.changes.push(...cmds.map((c) => `${tool} ${c}`));
    if (r.code !== 0) res.errors.push(`${tool} -batch: ${r.stderr.trim()}`);
  }

  async #convergeDnsmasq(plans: DnsmasqPlan[], res: ApplyResult): Promise<void> {
    await mkdir(this.#stateDir, { recursive: true });
    await chmod(this.#stateDir, 0o755);
    // dnsmasq drops to an unprivileged user and re-reads its host files on SIGHUP: a parent
    // directory it cannot traverse silently empties its host list, so say so instead.
    if (plans.length > 0) {
      const blocked = await untraversableParent(this.#stateDir);
      if (blocked) res.errors.push(`dnsmasq: state directory ${this.#stateDir} is not reachable by dnsmasq's unprivileged user (${blocked} is not world-searchable)`);
    }
    const wanted = new Set(plans.map((p) => p.pidFile));
    for (const f of await readdir(this.#stateDir)) {
      const m = /^(kvb-[0-9a-f]{10})\.pid$/.exec(f);
      if (!m || wanted.has(`${this.#stateDir}/${f}`)) continue;
      const pid = await this.#dnsmasqPid(`${this.#stateDir}/${f}`, `${this.#stateDir}/${m[1]}.conf`);
      if (pid !== undefined) await stopProcess(pid);
      for (const ext of ['pid', 'conf', 'dhcp-hosts', 'hosts', 'leases']) await rm(`${this.#stateDir}/${m[1]}.${ext}`, { force: true });
      res.changes.push(`dnsmasq stop ${m[1]}`);
    }
    // Independent per network; a few at a time so 50 networks start in a fraction of the time.
    await forEachLimit(plans, 8, async (p) => {
      try {
        const confChanged = await writeIfChanged(p.confFile, p.conf);
        const dhcpHostsChanged = await writeIfChanged(p.hostsFile, p.hosts);
        const hostsChanged = (await writeIfChanged(p.addnHostsFile, p.addnHosts)) || dhcpHostsChanged;
        const pid = await this.#dnsmasqPid(p.pidFile, p.confFile);
        if (pid !== undefined && !confChanged) {
          if (hostsChanged) {
            process.kill(pid, 'SIGHUP'); // re-reads dhcp-hostsfile and addn-hosts
            res.changes.push(`dnsmasq reload ${p.bridge}`);
          }
          return;
        }
        if (pid !== undefined) await stopProcess(pid);
        const r = await this.#run.run('dnsmasq', [`--conf-file=${p.confFile}`, `--pid-file=${p.pidFile}`]);
        res.changes.push(`dnsmasq start ${p.bridge}`);
        if (r.code !== 0) res.errors.push(`dnsmasq ${p.bridge}: ${r.stderr.trim()}`);
      } catch (e) {
        res.errors.push(`dnsmasq ${p.bridge}: ${e instanceof Error ? e.message : String(e)}`);
      }
    });
  }

  /** The pid of the running dnsmasq started for confFile, if any (guards against reused pids). */
  async #dnsmasqPid(pidFile: string, confFile: string): Promise<number | undefined> {
    const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    return cmdline.split('\0').includes(`--conf-file=${confFile}`) ? pid : undefined;
  }
}

/** Writes content atomically when it differs (true when written). Readable by dnsmasq. */
async function writeIfChanged(file: string, content: string): Promise<boolean> {
  const cur = await readFile(file, 'utf8').catch(() => undefined);
  if (cur === content) return false;
  await writeFile(`${file}.tmp`, content, { mode: 0o644 });
  await rename(`${file}.tmp`, file);
  return true;
}

/** The first ancestor of dir without the world search bit, if any. */
async function untraversableParent(dir: string): Promise<string | undefined> {
  for (let d = dirname(dir); d !== dirname(d); d = dirname(d)) {
    if (((await stat(d)).mode & 0o001) === 0) return d;
  }
  return undefined;
}

/** Alive and not a zombie (daemonized dnsmasq is reparented; its reaper may be slow). */
async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && !/\) Z /.test(stat);
}

async function forEachLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

async function stopProcess(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  for (let i = 0; i < 100; i++) {
    if (!(await alive(pid))) return;
    await sleep(10);
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}

