#!/usr/bin/env node
// The `kova` command: `up` runs a whole single-host cloud, `apiserver`, `controllers` and
// `agent` run one component each, the power verbs act on Instances and `migrate` moves one.
import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism, hostname } from 'node:os';
import { join, resolve } from 'node:path';
import cluster from 'node:cluster';
import { setMaxListeners } from 'node:events';
import { parseArgs } from 'node:util';
import { isIP } from 'node:net';
import { isDNS1123LabelOK, isDNS1123SubdomainOK } from '../api/name-validation.js';
import { startControllerManager } from '../controllers/manager.js';
import type { ControllerManager } from '../controllers/manager.js';
import { KovaClient } from '../client/client.js';
import { runAgent, startSimAgents } from '../node-agent/run.js';
import type { SimAgents } from '../node-agent/run.js';
import { SimDriver } from '../node-agent/sim-driver.js';
import { defaultDataDir, startControlPlane } from './control-plane.js';
import type { ControlPlane } from './control-plane.js';
import { ensureHostDeps } from './host-deps.js';
import { POWER_VERBS, powerAction } from './power.js';
import { superviseComponents } from './supervise.js';
import { ensureComponentKubeconfigs, nodeKubeconfig } from './component-identities.js';
import { InstanceLock } from './instance-lock.js';
import { defaultApiWorkers, installProcessGuards, runApiWorker } from './api-workers.js';
import { loadEtcdTls } from '../store/etcd-options.js';
import { DEFAULT_FLAVORS, seedFlavors, seedTestImage, seedVolumeTypes } from './seed.js';
import { seedQuotaDefaults } from '../controllers/namespace/default-quota.js';
import type { Supervised } from './supervise.js';
import { MAX_LOCAL_HOSTS } from './local-hosts-config.js';
import type { LocalHost, LocalHosts } from './local-hosts.js';
import { componentLogger, logFunction } from '../lib/log.js';
import type { Logger } from '../lib/log.js';
import { logToFiles, logToStderr, verbosity, verbosityArgs, VERBOSITY_FLAGS } from './process-logging.js';
import type { LogFiles } from './process-logging.js';
import {
  DEFAULT_AGENT_METRICS, DEFAULT_CONTROLLERS_METRICS, ensureMonitoringToken, ensureServingCert, METRICS_FLAGS, monitoringDir,
  pickMetricsAddress, prometheusConfig, serveComponentMetrics, urlAddress,
} from './monitoring.js';
import type { ScrapeTarget } from './monitoring.js';

const HELP = `kova — a Kubernetes-style control plane for virtual machines

Usage:
  kova up [flags]          start etcd (unless external), the API server, the controllers and
                           the node agent(s): a whole single-host cloud
  kova up --hosts N        the same with N real hypervisor hosts on this machine (host-1 …
                           host-N: each its own network namespace, libvirtd and agent)
  kova apiserver [flags]   run the API server alone (same flags)
  kova controllers [--kubeconfig F] [--id ID] [--data-dir DIR] [--metrics-bind-address A]
                           run the scheduler and controllers (leader-elected: run several);
                           images are imported into DIR/images; /metrics on A (default
                           127.0.0.1:10257, 0: off; --tls-cert-file/--tls-private-key-file,
                           else self-signed)
  kova agent --host NAME [--driver libvirt|sim] [--kubeconfig F] [--lease-duration S]
             [--network] [--netns NS] [--tunnel-ip IP] [--data-dir DIR] [--metrics-bind-address A]
             [--network-usage-interval S]
                           run the node agent of one hypervisor host (heartbeat Lease
                           kova-system/NAME, renewed every S/4 s; default S=40); --network
                           also runs host networking (bridges, VXLAN to --tunnel-ip peers,
                           DHCP, security groups, NAT), --netns inside a network namespace;
                           /metrics on A (default 0.0.0.0:10250, 0: off); publishes each
                           instance's network bytes for metering every S s (default 300).
                           Both log JSON to
                           stderr; -v / --v N as below
  kova start|stop|restart|pause|unpause NAME [-n NAMESPACE] [--kubeconfig F]
                           power actions on an Instance (see docs/control-plane.md)
  kova drain HOST [--wait] [--timeout D] [--kubeconfig F]
                           host maintenance: cordon HOST and migrate its instances off
                           (--wait follows the Drained condition; D like 10m, 0 = none)
  kova uncordon HOST [--kubeconfig F]
                           end maintenance: HOST is schedulable again
  kova migrate NAME [-n NAMESPACE] [--to HOST] [--cold] [--post-copy] [--auto-converge]
             [--bandwidth QUANTITY] [--wait] [--timeout DURATION] [--kubeconfig F]
                           move an Instance to another host (a Migration; cloud admins):
                           prints the Migration's name; --wait follows it until Succeeded
                           (exit 0) or Failed (exit 1); see docs/migration.md
  kova console NAME [-n NAMESPACE] [--log] [--kubeconfig F] [--connect URI] [--data-dir DIR]
                           attach to an Instance's serial console (virsh console; on the
                           host that runs it, or on the machine of kova up --hosts N, whose
                           host's libvirtd it finds), or print its console log with --log
  kova audit [--since 1h|30m|RFC3339] [--user U] [--verb V] [--namespace N] [-o table|json]
             [--data-dir DIR]
                           print the audit log (every write and every denied request)
  kova usage [-n PROJECT | -A] [--start TIME] [--end TIME] [-o json|yaml|table] [--kubeconfig F]
                           a project's resource usage over a period (instance, vCPU, RAM,
                           disk, volume and floating-IP hours; network bytes)
  kova user create|token|revoke|delete|list ...
                           users and their bearer tokens (kova user --help)
  kova --help              show this help

Flags:
  --data-dir DIR           state directory (default /var/lib/kova as root, ./.kova otherwise)
  --listen HOST:PORT       API server address (default 127.0.0.1:6443; port 0 picks a free port)
  --tls-san NAMES          extra comma-separated DNS names or IPs in the serving certificate
                           (a load balancer's name in front of several API servers)
  --etcd-endpoints URLS    comma-separated etcd client URLs of an external cluster;
                           without it a local etcd runs in DIR/etcd (TLS, client
                           certificates from the kova CA in DIR/pki/etcd)
  --etcd-cafile F          CA bundle that signed the external etcd's serving certificates
  --etcd-certfile F        client certificate presented to the external etcd
  --etcd-keyfile F         its private key (with --etcd-certfile)
  --etcd-keepalive-time S  HTTP/2 PING interval toward etcd in seconds (default 30)
  --etcd-keepalive-timeout S
                           a PING unanswered this long marks the member dead (default 10)
  --etcd-members N         members of the local etcd: 1 (default), 3 or 5, on loopback;
                           see docs/ha.md for a real highly available layout
  --driver libvirt|sim     hypervisor driver for the node agent (default libvirt)
  --sim-hosts N            number of simulated hosts with --driver sim (default 3)
  --hosts N                N real libvirt hosts on this machine instead of one (--driver
                           libvirt, root): each in its own network namespace on a bridge
                           (tunnel IP), with its own libvirtd (own mount namespace, host UUID,
                           migration ports) and node agent; state in DIR/hosts/host-I
  --no-controllers         kova up without scheduler/controllers (run them elsewhere)
  --no-agents              kova up without node agents
  --no-seed                don't create the default flavors and test image
  --max-requests-inflight N
                           reads (get, list) one API server process serves at once; more
                           get 429 with Retry-After (default 400; 0: no limit)
  --max-mutating-requests-inflight N
                           writes one API server process serves at once (default 600; 0: no
                           limit; above kube's 200 because kova's own components pool ~460
                           connections)
  --kube-api-qps N, --kube-api-burst N
                           client-side rate limit of the controllers' and agents' API
                           clients (default 5000 and 10000; 0: none); also on kova
                           controllers and kova agent
  --api-workers N          API server processes sharing the port (at least 1, at most 8 by
                           default): kova up, cores - 2 (etcd and the controllers need a core
                           each); kova apiserver, every core with --etcd-endpoints, else cores - 1
  --metrics-bind-address HOST:PORT
                           /metrics of the controllers and agents process (HTTPS, scrapers
                           authorized by the API server; default 127.0.0.1:10257, a free port
                           when another kova has it; 0: off). The API server serves /metrics on
                           its own port. kova up writes DIR/monitoring/prometheus.yml for them
  --insecure               plain HTTP without authentication (local debugging only)
  -v, --verbose            log internal events (debug level) and show every log line on
                           the terminal, readable
  --v N                    klog-style verbosity: 0 (default), 1 like -v, 2 adds one line per
                           API request (user, verb, resource, code, latency)

Logs: every process logs JSON lines (level, time, component); kova up writes its own and its
children's to DIR/logs (apiserver.log, components.log, etcd.log; each rotated at 20 MiB to
NAME.log.1) and shows warnings and errors on the terminal. See docs/observability.md.

After "ready", use:  export KUBECONFIG=DIR/kubeconfig; kubectl get kova
`;

const FLAGS = {
  'data-dir': { type: 'string' },
  listen: { type: 'string', default: '127.0.0.1:6443' },
  'tls-san': { type: 'string' },
  'etcd-endpoints': { type: 'string' },
  'etcd-cafile': { type: 'string' },
  'etcd-certfile': { type: 'string' },
  'etcd-keyfile': { type: 'string' },
  'etcd-keepalive-time': { type: 'string', default: '30' },
  'etcd-keepalive-timeout': { type: 'string', default: '10' },
  'etcd-members': { type: 'string', default: '1' },
  driver: { type: 'string', default: 'libvirt' },
  'sim-hosts': { type: 'string', default: '3' },
  hosts: { type: 'string' },
  'no-controllers': { type: 'boolean', default: false },
  'no-agents': { type: 'boolean', default: false },
  'no-seed': { type: 'boolean', default: false },
  'api-workers': { type: 'string' },
  'max-requests-inflight': { type: 'string' },
  'max-mutating-requests-inflight': { type: 'string' },
  'kube-api-qps': { type: 'string' },
  'kube-api-burst': { type: 'string' },
  'metrics-bind-address': { type: 'string' },
  insecure: { type: 'boolean', default: false },
  ...VERBOSITY_FLAGS,
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** A positive number of seconds from a flag, in milliseconds. */
function seconds(flag: string, value: string | undefined): number {
  const s = Number(value);
  if (!value || !Number.isFinite(s) || s <= 0 || s > 86_400) throw new Error(`--${flag} must be a number of seconds above 0, got ${JSON.stringify(value)}`);
  return Math.round(s * 1000);
}

/** The etcd flags of `kova up` / `kova apiserver`, checked before anything starts. */
function etcdFlags(values: { [k: string]: string | boolean | undefined }) {
  const str = (k: string) => values[k] as string | undefined;
  const endpoints = str('etcd-endpoints') ? str('etcd-endpoints')!.split(',').map((s) => s.trim()).filter(Boolean) : [];
  for (const e of endpoints) {
    if (!/^https?:\/\/[^/]+\/?$/.test(e)) throw new Error(`--etcd-endpoints: ${JSON.stringify(e)} is not an http:// or https:// URL of a host and port`);
  }
  const tlsFiles = { cafile: str('etcd-cafile'), certfile: str('etcd-certfile'), keyfile: str('etcd-keyfile') };
  const withTls = Object.entries(tlsFiles).filter(([, v]) => v !== undefined).map(([k]) => `--etcd-${k}`);
  if (withTls.length && !endpoints.length) {
    throw new Error(`${withTls.join(', ')} need --etcd-endpoints: the local etcd uses its own certificates (DIR/pki/etcd)`);
  }
  const members = Number(str('etcd-members'));
  if (![1, 3, 5].includes(members)) throw new Error(`--etcd-members must be 1, 3 or 5, got ${JSON.stringify(str('etcd-members'))}`);
  if (members > 1 && endpoints.length) throw new Error('--etcd-members is for the local etcd; it cannot go with --etcd-endpoints');
  return {
    endpoints,
    tlsFiles: withTls.length ? tlsFiles : undefined,
    members,
    keepaliveTimeMs: seconds('etcd-keepalive-time', str('etcd-keepalive-time')),
    keepaliveTimeoutMs: seconds('etcd-keepalive-timeout', str('etcd-keepalive-timeout')),
  };
}

/** A whole number from 0 to `max` from a flag, or undefined when the flag is absent. */
function count(flag: string, value: string | undefined, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > max) throw new Error(`--${flag} must be a whole number from 0 to ${max}, got ${JSON.stringify(value)}`);
  return n;
}

const CLIENT_RATE_FLAGS = { 'kube-api-qps': { type: 'string' }, 'kube-api-burst': { type: 'string' } } as const;

/** --kube-api-qps/--kube-api-burst as KovaClient options (client-go's QPS and Burst). */
function clientRate(values: { 'kube-api-qps'?: string; 'kube-api-burst'?: string }): { qps?: number; burst?: number } {
  return { qps: count('kube-api-qps', values['kube-api-qps'], 1_000_000), burst: count('kube-api-burst', values['kube-api-burst'], 1_000_000) };
}

/** The same flags again, for a child process. */
function clientRateArgs(values: { 'kube-api-qps'?: string; 'kube-api-burst'?: string }): string[] {
  const out: string[] = [];
  for (const k of ['kube-api-qps', 'kube-api-burst'] as const) if (values[k] !== undefined) out.push(`--${k}`, values[k]!);
  return out;
}

/** Where say() also logs its line (the process's own log), once the process configured one. */
let sayLog: Logger | undefined;

/** Progress for people: a plain line on stdout, and the same as JSON in the process's log. */
function say(msg: string) {
  process.stdout.write(`kova: ${msg}\n`);
  sayLog?.info(msg);
}

async function up(argv: string[], what: 'up' | 'apiserver'): Promise<void> {
  const { values } = parseArgs({ args: argv, options: FLAGS, allowPositionals: false });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  if (values.driver !== 'libvirt' && values.driver !== 'sim') throw new Error(`--driver must be libvirt or sim, got ${values.driver}`);
  const etcd = etcdFlags(values);
  const inflight = {
    maxRequestsInflight: count('max-requests-inflight', values['max-requests-inflight'], 1_000_000),
    maxMutatingRequestsInflight: count('max-mutating-requests-inflight', values['max-mutating-requests-inflight'], 1_000_000),
  };
  // Checked here so a bad value fails before anything starts; the components child parses them again.
  clientRate(values);
  const tlsSans = values['tls-san']?.split(',').map((s) => s.trim()).filter(Boolean);
  for (const h of tlsSans ?? []) {
    if (!isIP(h) && !isDNS1123SubdomainOK(h.toLowerCase())) throw new Error(`--tls-san: ${JSON.stringify(h)} is neither an IP address nor a DNS name`);
  }
  // Missing or mismatched TLS files fail now, naming the file, before anything starts.
  if (etcd.tlsFiles) await loadEtcdTls(etcd.tlsFiles);
  const etcdEndpoints = etcd.endpoints;
  // Absolute: the lock file and the children's command lines name it (see instance-lock.ts).
  const dataDir = resolve(values['data-dir'] ?? defaultDataDir());
  say(`data directory ${dataDir}`);
  const agents = what === 'up' && !values['no-agents'];
  const simHosts = Number(values['sim-hosts']);
  if (!Number.isInteger(simHosts) || simHosts < 1 || simHosts > 5000) throw new Error(`--sim-hosts must be an integer from 1 to 5000, got ${values['sim-hosts']}`);
  const localHostCount = values.hosts === undefined ? undefined : Number(values.hosts);
  if (localHostCount !== undefined) {
    if (!/^\d+$/.test(values.hosts!) || localHostCount < 1 || localHostCount > MAX_LOCAL_HOSTS) throw new Error(`--hosts must be a whole number from 1 to ${MAX_LOCAL_HOSTS}, got ${JSON.stringify(values.hosts)}`);
    if (values.driver !== 'libvirt') throw new Error('--hosts runs real libvirt hosts: it needs --driver libvirt (--sim-hosts is for simulated ones)');
    if (!agents) throw new Error(what === 'up' ? '--hosts runs a node agent per host: it cannot go with --no-agents' : '--hosts is for kova up');
  }
  const vb = verbosity(values);
  const verbose = vb.verbose || vb.v >= 1;
  const apiWorkers = values['api-workers'] === undefined ? defaultApiWorkers(availableParallelism(), what, etcdEndpoints.length > 0) : Number(values['api-workers']);
  if (!Number.isInteger(apiWorkers) || apiWorkers < 1 || apiWorkers > 64) throw new Error(`--api-workers must be an integer from 1 to 64, got ${values['api-workers']}`);
  // One kova per data dir: refuse when one runs, clean up after one that died.
  await mkdir(dataDir, { recursive: true });
  // JSON logs into DIR/logs; the terminal keeps the progress lines (and warnings, readable).
  const { logs } = logToFiles(dataDir, vb);
  sayLog = componentLogger(`kova-${what}`);
  captureApiWorkerOutput(logs, vb);
  say(`logs in ${logs.dir}`);
  const lock = await InstanceLock.acquire(dataDir, say);
  process.on('exit', () => lock.release());
  say('checking host dependencies');
  await ensureHostDeps({ etcd: etcdEndpoints.length === 0, libvirt: agents && values.driver === 'libvirt' }, say);
  let cp: ControlPlane | undefined;
  let child: Supervised | undefined;
  let hosts: LocalHosts | undefined;
  let stopping = false;
  const stopAll = async () => {
    // Agents first, then their hosts' daemons (guests keep running, as across a libvirtd restart).
    await child?.stop();
    await hosts?.stop();
    await cp?.stop();
    lock.release();
  };
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    say(`${signal} received, stopping`);
    await stopAll();
    say('stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  try {
    cp = await startControlPlane({
      dataDir,
      apiWorkers,
      listen: values.listen,
      tlsSans,
      etcdEndpoints,
      etcdTlsFiles: etcd.tlsFiles,
      etcdMembers: etcd.members,
      etcdKeepaliveTimeMs: etcd.keepaliveTimeMs,
      etcdKeepaliveTimeoutMs: etcd.keepaliveTimeoutMs,
      inflight,
      insecure: values.insecure,
      step: say,
      // Errors and warnings of the API server and its workers; internal events with -v.
      log: logFunction(componentLogger('apiserver'), 'warn'),
      verbose,
      requestLogging: vb.v >= 2,
      // etcd warns about its own setup on every start (simple tokens): the terminal shows its errors only.
      etcdLog: (line) => logs.line('etcd', 'etcd', line, 'error'),
      onEtcdSpawn: (pid) => lock.record('etcd', pid),
    });
    const controllersOn = what === 'up' && !values['no-controllers'];
    if (controllersOn && !values['no-seed']) await seed(cp.kubeconfig, dataDir, agents && values.driver === 'libvirt');
    if (localHostCount !== undefined) {
      const { startLocalHosts } = await import('./local-hosts.js');
      hosts = await startLocalHosts({ dataDir, count: localHostCount, log: say });
    }
    // What Prometheus scrapes: the API server (its own port), then the components process.
    const scrape: ScrapeTarget[] = [{ job: 'kova-apiserver', address: urlAddress(cp.url) }];
    if (controllersOn || agents) {
      // Controllers and agents run in a supervised child process: a second core for them, and
      // the API server keeps serving if they crash (they are restarted).
      const args = ['--kubeconfig', cp.kubeconfig, '--data-dir', dataDir, '--driver', values.driver, '--sim-hosts', String(simHosts)];
      const metricsBind = values['metrics-bind-address'] ?? DEFAULT_CONTROLLERS_METRICS;
      if (!values.insecure && metricsBind !== '0') {
        // Its /metrics: an address fixed now (kept across its restarts) and a serving certificate from the kova CA.
        const address = await pickMetricsAddress(metricsBind, values['metrics-bind-address'] === undefined);
        const { parseBind } = await import('../client/metrics-server.js');
        const { host } = parseBind(address);
        const cert = await ensureServingCert(join(dataDir, 'pki'), 'components-serving', host === '0.0.0.0' || host === '::' ? [] : [host]);
        args.push('--metrics-bind-address', address, '--tls-cert-file', cert.certFile, '--tls-private-key-file', cert.keyFile);
        scrape.push({ job: 'kova-components', address: host === '0.0.0.0' ? address.replace(/^0\.0\.0\.0:/, '127.0.0.1:') : host === '::' ? address.replace(/^\[::\]:/, '[::1]:') : address });
      }
      if (!values.insecure) {
        // The components act as themselves, not as the admin (see component-identities.ts).
        const hostNames = !agents ? [] : values.driver === 'sim' ? Array.from({ length: simHosts }, (_, i) => `sim-${i}`) : hosts ? hosts.hosts.map((h) => h.name) : [agentHostName()];
        const ids = await ensureComponentKubeconfigs(dataDir, join(dataDir, 'pki'), cp.url, hostNames);
        args.push('--controllers-kubeconfig', ids.controllers, '--node-kubeconfig-dir', ids.nodeDir);
      }
      if (!controllersOn) args.push('--no-controllers');
      if (!agents) args.push('--no-agents');
      if (hosts) args.push('--hosts', String(hosts.hosts.length));
      args.push(...verbosityArgs(vb));
      args.push(...clientRateArgs(values));
      if (controllersOn) say('starting controllers (scheduler, instance, host, network, image, garbage collector, namespace; leader-elected)');
      if (agents) {
        say(values.driver === 'sim' ? `starting ${simHosts} simulated hypervisor host(s) sim-0 … sim-${simHosts - 1}`
          : hosts ? `starting the node agents of ${hosts.hosts.map((h) => h.name).join(', ')} (libvirt)`
          : `starting the node agent for host ${agentHostName()} (libvirt)`);
      }
      // Its JSON logs (stderr) go to DIR/logs/components.log.
      child = await superviseComponents(args, say, (pid) => lock.record('components', pid), (stderr) => logs.pipe(stderr, 'components', 'components'));
    }
    await writeMonitoring(cp, dataDir, scrape);
    say(`ready: API server at ${cp.url}`);
    say(`kubeconfig: ${cp.kubeconfig}`);
    say(`try: export KUBECONFIG=${cp.kubeconfig}; kubectl get kova`);
  } catch (e) {
    // Don't leave etcd or the components running behind a failed start.
    stopping = true;
    await stopAll();
    throw e;
  }
}

/** Verbosity of the API workers, which start without flags (kova api-worker reads it back). */
const WORKER_VERBOSITY_ENV = 'KOVA_API_WORKER_V';

/**
 * API workers (node:cluster) would write straight to kova up's terminal: they are forked silent
 * instead, and their JSON lines (and any raw last-resort message) go to apiserver.log like the
 * primary's own. cluster keeps these settings when api-workers.ts sets its exec and args.
 */
function captureApiWorkerOutput(logs: LogFiles, vb: { verbose: boolean; v: number }): void {
  process.env[WORKER_VERBOSITY_ENV] = `${vb.verbose ? 1 : 0},${vb.v}`;
  cluster.setupPrimary({ silent: true });
  cluster.on('fork', (w) => {
    if (w.process.stdout) logs.pipe(w.process.stdout, 'apiserver', 'apiserver');
    if (w.process.stderr) logs.pipe(w.process.stderr, 'apiserver', 'apiserver');
  });
}

function workerVerbosity(): { verbose: boolean; v: number } {
  const [verbose, v] = (process.env[WORKER_VERBOSITY_ENV] ?? '0,0').split(',');
  return verbosity({ verbose: verbose === '1', v: v ?? '0' });
}

/**
 * DIR/monitoring/prometheus.yml for the processes this kova up started, with a scrape identity's
 * token (DIR/monitoring/token, mode 600) and the kova CA; plain http with --insecure.
 */
async function writeMonitoring(cp: ControlPlane, dataDir: string, targets: ScrapeTarget[]): Promise<void> {
  const dir = await monitoringDir(dataDir);
  let tls: { caFile: string; tokenFile: string } | undefined;
  if (cp.token) {
    const tokenFile = join(dir, 'token');
    const client = KovaClient.fromFile(cp.kubeconfig, { userAgent: 'kova-up', fieldManager: 'kova-up' });
    try {
      await ensureMonitoringToken(client, tokenFile);
    } finally {
      client.close();
    }
    tls = { caFile: join(dataDir, 'pki', 'ca.crt'), tokenFile };
  }
  const file = join(dir, 'prometheus.yml');
  await writeFile(file, prometheusConfig({ targets, ...tls }), { mode: 0o644 });
  say(`monitoring: prometheus --config.file=${file}`);
}

/** DevStack-style defaults: flavors, and with libvirt the public test image `tiny`. */
async function seed(kubeconfig: string, dataDir: string, testImage: boolean): Promise<void> {
  const client = KovaClient.fromFile(kubeconfig, { userAgent: 'kova-up', fieldManager: 'kova-up' });
  try {
    const made = await seedFlavors(client);
    if (made) say(`created ${made} default flavors (${DEFAULT_FLAVORS.map((f) => f.name).join(', ')})`);
    const types = await seedVolumeTypes(client, dataDir);
    if (types.length) say(`created the volume types ${types.join(', ')} (local is the default)`);
    if (await seedQuotaDefaults(client)) say('created the default project quotas (ConfigMap kova-system/quota-defaults)');
    if (testImage) {
      await seedTestImage(client, dataDir, say).catch((e: Error) => say(`warning: could not prepare the test image (${e.message}); create an Image from your own qcow2 file instead`));
    }
  } finally {
    client.close();
  }
}

/** The Host name of this machine's agent: its hostname, lowercased to a DNS label. */
function agentHostName(): string {
  return hostname().toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+|-+$/g, '').slice(0, 63) || 'localhost';
}

/** The libvirt driver of this machine's host, or of one of `kova up --hosts` local hosts. */
async function libvirtDriver(dataDir: string, local?: LocalHost) {
  const { LibvirtDriver } = await import('../node-agent/libvirt/libvirt-driver.js');
  const { ImageCache } = await import('../node-agent/image-cache.js');
  const stateDir = local?.stateDir ?? join(dataDir, 'libvirt');
  // Images are cached per host under the driver's state dir; on the control-plane host they
  // are hardlinked from the image store DATA_DIR/images that the image controller fills.
  const imageCache = new ImageCache({ cacheDir: local?.imageCacheDir ?? join(stateDir, 'image-cache'), storeDir: join(dataDir, 'images') });
  // NICs are taps the host's network agent creates for each Port (kova agent --network); the
  // agent's resolver puts them in the DomainSpec.
  if (!local) return new LibvirtDriver({ stateDir, imageCache });
  // A local host: its own libvirtd; other hosts' daemons reach it on its socket, and QEMU
  // receives migrations on its tunnel IP.
  return new LibvirtDriver({ stateDir, imageCache, uri: local.uri, migration: { uri: local.uri, address: local.migrationAddress } });
}

function kubeconfigFrom(flag: string | undefined): string {
  return flag ?? process.env.KUBECONFIG?.split(':')[0] ?? join(defaultDataDir(), 'kubeconfig');
}

/** How long a child whose parent died may take to stop before it exits anyway. */
const ORPHAN_STOP_MS = 10_000;

/**
 * Runs until SIGINT/SIGTERM, then aborts `ac` and waits for `done`. A process started with an
 * IPC channel (`kova components` under kova up) also stops when the channel closes: its parent
 * is gone, and an orphan would keep driving the hosts next to its parent's successor.
 */
function untilSignal(ac: AbortController, done: () => Promise<unknown>) {
  const stop = (why: string, deadlineMs?: number) => {
    if (ac.signal.aborted) return;
    say(`${why}, stopping`);
    ac.abort();
    if (deadlineMs !== undefined) setTimeout(() => process.exit(1), deadlineMs).unref();
    void done().then(() => process.exit(0));
  };
  process.on('SIGINT', () => stop('SIGINT received'));
  process.on('SIGTERM', () => stop('SIGTERM received'));
  // process.connected is undefined without an IPC channel, false once it has closed.
  if (process.connected !== undefined) {
    // Output to a pipe whose reader died fails with EPIPE: not a reason to crash mid-shutdown.
    process.stdout.on('error', () => undefined);
    if (process.connected) process.on('disconnect', () => stop('parent process exited', ORPHAN_STOP_MS));
    // The channel closed while the modules loaded: the parent died before anybody listened.
    else stop('parent process exited', ORPHAN_STOP_MS);
  }
}

async function controllers(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { kubeconfig: { type: 'string' }, id: { type: 'string' }, 'data-dir': { type: 'string' }, ...VERBOSITY_FLAGS, ...CLIENT_RATE_FLAGS, ...METRICS_FLAGS } });
  logToStderr(verbosity(values));
  sayLog = componentLogger('controller-manager');
  const ac = new AbortController();
  setMaxListeners(10_000, ac.signal);
  const cm = startControllerManager({
    kubeconfig: kubeconfigFrom(values.kubeconfig), signal: ac.signal, identity: values.id, clientOptions: clientRate(values),
    // The image controller imports into DIR/images (the image store agents read from).
    dataDir: values['data-dir'] ?? defaultDataDir(),
    log: logFunction(componentLogger('controller-manager')),
    onLeadership: (leading) => say(leading ? 'leading: controllers running' : 'not leading'),
  });
  untilSignal(ac, () => cm.done);
  const metrics = await serveComponentMetrics({
    bind: values['metrics-bind-address'], defaultBind: DEFAULT_CONTROLLERS_METRICS, certFile: values['tls-cert-file'], keyFile: values['tls-private-key-file'],
    kubeconfig: kubeconfigFrom(values.kubeconfig), signal: ac.signal, log: logFunction(componentLogger('metrics')), warn: logFunction(componentLogger('metrics'), 'warn'),
  });
  if (metrics) say(`metrics at ${metrics.url}/metrics`);
  say(`controllers ${cm.identity} campaigning for the lease kova-system/kova-controllers`);
}

async function agent(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { kubeconfig: { type: 'string' }, host: { type: 'string' }, driver: { type: 'string', default: 'libvirt' }, 'data-dir': { type: 'string' }, 'lease-duration': { type: 'string', default: '40' }, 'network-usage-interval': { type: 'string', default: '300' }, network: { type: 'boolean', default: false }, netns: { type: 'string' }, 'tunnel-ip': { type: 'string' }, ...VERBOSITY_FLAGS, ...CLIENT_RATE_FLAGS, ...METRICS_FLAGS } });
  logToStderr(verbosity(values));
  const leaseDurationS = Number(values['lease-duration']);
  if (!Number.isInteger(leaseDurationS) || leaseDurationS < 2) throw new Error(`--lease-duration must be a whole number of seconds >= 2, got ${values['lease-duration']}`);
  const networkUsageIntervalS = Number(values['network-usage-interval']);
  if (!Number.isInteger(networkUsageIntervalS) || networkUsageIntervalS < 1 || networkUsageIntervalS > 86_400) throw new Error(`--network-usage-interval must be a whole number of seconds from 1 to 86400, got ${values['network-usage-interval']}`);
  const host = values.host ?? agentHostName();
  if (!isDNS1123LabelOK(host)) throw new Error(`--host must be a DNS label (lowercase letters, digits, '-'), got ${JSON.stringify(host)}`);
  if (values.driver !== 'libvirt' && values.driver !== 'sim') throw new Error(`--driver must be libvirt or sim, got ${values.driver}`);
  sayLog = componentLogger('agent', { host });
  if (values.driver === 'libvirt') await ensureHostDeps({ etcd: false, libvirt: true }, say);
  const ac = new AbortController();
  setMaxListeners(10_000, ac.signal);
  // A sim host given a --data-dir keeps its domains there across agent restarts, as a real hypervisor does.
  const simState = values['data-dir'] === undefined ? undefined : join(values['data-dir'], 'sim', `${host}.json`);
  const driver = values.driver === 'sim' ? new SimDriver({ stateFile: simState }) : await libvirtDriver(values['data-dir'] ?? defaultDataDir());
  // Host networking runs with --network, or implied by --netns / --tunnel-ip (sim hosts in namespaces).
  const withNetwork = values.network || values.netns !== undefined || values['tunnel-ip'] !== undefined;
  const network = withNetwork ? {
    netns: values.netns, tunnelIP: values['tunnel-ip'], portDevice: values.driver === 'sim' ? 'veth' as const : 'tap' as const,
    stateDir: join(values['data-dir'] ?? defaultDataDir(), 'network', host),
  } : undefined;
  const a = await runAgent({ kubeconfig: kubeconfigFrom(values.kubeconfig), clientOptions: clientRate(values), hostName: host, driver, leaseDurationS, heartbeatS: Math.max(1, Math.floor(leaseDurationS / 4)), networkUsageIntervalS, network, signal: ac.signal, log: logFunction(componentLogger('agent', { host })) });
  untilSignal(ac, () => a.done());
  const metrics = await serveComponentMetrics({
    bind: values['metrics-bind-address'], defaultBind: DEFAULT_AGENT_METRICS, certFile: values['tls-cert-file'], keyFile: values['tls-private-key-file'],
    kubeconfig: kubeconfigFrom(values.kubeconfig), signal: ac.signal, log: logFunction(componentLogger('metrics', { host })), warn: logFunction(componentLogger('metrics', { host }), 'warn'),
  });
  if (metrics) say(`metrics at ${metrics.url}/metrics`);
  say(`ready: agent for host ${host} (${values.driver})`);
}

async function power(verb: string, argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { kubeconfig: { type: 'string' }, namespace: { type: 'string', short: 'n', default: 'default' } } });
  if (positionals.length !== 1) throw new Error(`usage: kova ${verb} NAME [-n NAMESPACE]`);
  const client = KovaClient.fromFile(kubeconfigFrom(values.kubeconfig), { userAgent: 'kova-cli', fieldManager: 'kova-cli' });
  say(await powerAction(client, verb, values.namespace!, positionals[0]));
}

/**
 * `kova components` (started by `kova up`): the controllers and/or node agents of one host in
 * one process; prints "components ready" once they are up.
 */
async function components(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      kubeconfig: { type: 'string' }, 'data-dir': { type: 'string' }, driver: { type: 'string', default: 'libvirt' },
      'sim-hosts': { type: 'string', default: '3' }, 'no-controllers': { type: 'boolean', default: false },
      'no-agents': { type: 'boolean', default: false }, ...VERBOSITY_FLAGS,
      hosts: { type: 'string' },
      'controllers-kubeconfig': { type: 'string' }, 'node-kubeconfig-dir': { type: 'string' },
      ...CLIENT_RATE_FLAGS, ...METRICS_FLAGS,
    },
  });
  const clientOptions = clientRate(values);
  const kubeconfig = kubeconfigFrom(values.kubeconfig);
  const dataDir = values['data-dir'] ?? defaultDataDir();
  // JSON on stderr, which kova up writes to DIR/logs/components.log. The components' internal
  // events are debug lines: in the log with -v (as -v always showed them).
  logToStderr(verbosity(values));
  sayLog = componentLogger('components');
  const cmLog = logFunction(componentLogger('controller-manager'), 'debug');
  const log = logFunction(componentLogger('agent'), 'debug');
  const ac = new AbortController();
  setMaxListeners(10_000, ac.signal); // every informer, queue and agent listens on it
  let cm: ControllerManager | undefined;
  let sims: SimAgents | undefined;
  const nodes: Array<{ done(): Promise<void> }> = [];
  untilSignal(ac, () => Promise.all([cm?.done, sims?.done(), ...nodes.map((n) => n.done())]));
  // Each component's own identity when kova up made them; the admin kubeconfig otherwise.
  const nodeDir = values['node-kubeconfig-dir'];
  const nodeConfig = (host: string) => (nodeDir ? nodeKubeconfig(nodeDir, host) : kubeconfig);
  if (!values['no-controllers']) cm = startControllerManager({ kubeconfig: values['controllers-kubeconfig'] ?? kubeconfig, clientOptions, signal: ac.signal, log: cmLog, dataDir });
  if (!values['no-agents']) {
    if (values.driver === 'sim') {
      // The shared watches read as the first host; each agent writes as itself.
      sims = await startSimAgents({ kubeconfig: nodeConfig('sim-0'), kubeconfigFor: nodeDir ? nodeConfig : undefined, clientOptions, count: Number(values['sim-hosts']), signal: ac.signal, log });
    } else if (values.hosts !== undefined) {
      // kova up --hosts: one agent per local host, its networking inside the host's namespace
      // with its tunnel IP (as `kova agent --netns NS --tunnel-ip IP`).
      const { localHosts } = await import('./local-hosts.js');
      for (const h of await localHosts(dataDir, Number(values.hosts))) {
        const network = { portDevice: 'tap' as const, netns: h.netns, tunnelIP: h.tunnelIP, stateDir: join(dataDir, 'network', h.name) };
        nodes.push(await runAgent({ kubeconfig: nodeConfig(h.name), clientOptions, hostName: h.name, driver: await libvirtDriver(dataDir, h), network, signal: ac.signal, log }));
      }
    } else {
      // A real host also runs its networking; simulated hosts share this machine, so they don't.
      const network = { portDevice: 'tap' as const, stateDir: join(dataDir, 'network', agentHostName()) };
      nodes.push(await runAgent({ kubeconfig: nodeConfig(agentHostName()), clientOptions, hostName: agentHostName(), driver: await libvirtDriver(dataDir), network, signal: ac.signal, log }));
    }
  }
  // /metrics of the whole process (controllers and agents share its registry), when kova up asks.
  // Its reviews go out as the controllers, or as the first host's agent without them.
  const firstHost = values.driver === 'sim' ? 'sim-0' : values.hosts !== undefined ? 'host-1' : agentHostName();
  const reviewer = values['controllers-kubeconfig'] ?? (nodeDir && !values['no-agents'] ? nodeConfig(firstHost) : kubeconfig);
  await serveComponentMetrics({
    bind: values['metrics-bind-address'], defaultBind: '0', certFile: values['tls-cert-file'], keyFile: values['tls-private-key-file'],
    kubeconfig: reviewer, signal: ac.signal, log: logFunction(componentLogger('metrics')), warn: logFunction(componentLogger('metrics'), 'warn'), bestEffort: true,
  });
  say('components ready');
}

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (cmd && (POWER_VERBS as readonly string[]).includes(cmd)) return power(cmd, rest);
  switch (cmd) {
    case 'up':
    case 'apiserver':
      installProcessGuards(`kova ${cmd}`);
      return up(rest, cmd);
    case 'controllers':
      return controllers(rest);
    case 'agent':
      return agent(rest);
    case 'drain':
    case 'uncordon': {
      const { drainCommand } = await import('./drain.js');
      process.exitCode = await drainCommand(cmd, rest, kubeconfigFrom);
      return;
    }
    case 'console': {
      const { consoleCommand } = await import('./console.js');
      process.exitCode = await consoleCommand(rest, kubeconfigFrom);
      return;
    }
    case 'migrate': {
      const { migrateCommand } = await import('./migrate.js');
      process.exitCode = await migrateCommand(rest, kubeconfigFrom);
      return;
    }
    case 'audit': {
      const { auditCommand } = await import('./audit.js');
      process.exitCode = await auditCommand(rest, defaultDataDir);
      return;
    }
    case 'usage': {
      const { usageCommand } = await import('./usage.js');
      return usageCommand(rest);
    }
    case 'user': {
      const { userCommand } = await import('./user.js');
      process.exitCode = await userCommand(rest, kubeconfigFrom);
      return;
    }
    case 'components':
      return components(rest);
    case 'api-worker':
      logToStderr(workerVerbosity());
      return runApiWorker();
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(HELP);
      return;
    default:
      process.stderr.write(`kova: unknown command ${JSON.stringify(cmd)}\n\n${HELP}`);
      process.exit(2);
  }
}

main(process.argv.slice(2)).catch((e) => {
  process.stderr.write(`kova: error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
