// Assembles a running control plane in this process: etcd (local, supervised, or external),
// credentials and the API server. Garbage collection and namespace deletion are controllers
// (`kova controllers`). `kova up`, `kova apiserver`, the e2e tests and the benchmarks all
// start kova through here.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { defaultCrdDir, Registry } from '../api/registry.js';
import { Validator } from '../api/validation.js';
import { ensureEtcdPki, ensurePki, writeKubeconfig } from '../apiserver/pki.js';
import { ResourceStore } from '../apiserver/resource-store.js';
import { startApiWorkers } from './api-workers.js';
import { ApiServer } from '../apiserver/server.js';
import { startSecurity } from '../apiserver/auth/setup.js';
import type { InflightLimits } from '../apiserver/inflight.js';
import { ApiError } from '../apiserver/status.js';
import { startEtcd, startEtcdCluster } from '../store/etcd-process.js';
import { loadEtcdTls } from '../store/etcd-options.js';
import type { EtcdConnectionOptions, EtcdTlsFiles } from '../store/etcd-options.js';
import { etcdVersionAdvice } from '../store/etcd/client.js';
import { Store } from '../store/store.js';

export interface ControlPlaneOptions {
  dataDir: string;
  /** host:port; port 0 picks a free one. */
  listen: string;
  /** Extra names and IPs for the serving certificate (--tls-san), e.g. a load balancer's. */
  tlsSans?: string[];
  /** External etcd endpoints; when empty a local etcd is started in dataDir/etcd. */
  etcdEndpoints?: string[];
  /** CA, client certificate and key of the external etcd (--etcd-cafile/-certfile/-keyfile). */
  etcdTlsFiles?: EtcdTlsFiles;
  /** Members of the local etcd: 1 (default, dataDir/etcd) or 3, 5 (dataDir/etcd/member-i). */
  etcdMembers?: number;
  /** HTTP/2 PING interval and timeout toward etcd (--etcd-keepalive-time/-timeout). */
  etcdKeepaliveTimeMs?: number;
  etcdKeepaliveTimeoutMs?: number;
  /** Plain HTTP without auth, for local debugging only. */
  insecure?: boolean;
  crdDir?: string;
  /** API server processes sharing the port (node:cluster); 1 serves from this process. */
  apiWorkers?: number;
  /** Bookmark period of idle watches; tests shorten it. */
  bookmarkIntervalMs?: number;
  /** Requests in flight per API server process before 429 (default 400 read-only, 200 mutating). */
  inflight?: InflightLimits;
  log?: (msg: string) => void;
  /** API workers log their internal events too (kova up -v); default: whether `log` is set. */
  verbose?: boolean;
  /** One log line per API request (kova up --v=2; kube-apiserver's httplog). */
  requestLogging?: boolean;
  /** Receives each line etcd writes (its own JSON); default: `log` with an "etcd: " prefix. */
  etcdLog?: (line: string) => void;
  /** Progress lines for long steps (what `kova up` prints). */
  step?: (msg: string) => void;
  /** Called with the pid of each local etcd started (kova up records it in its lock file). */
  onEtcdSpawn?: (pid: number) => void;
}

export interface ControlPlane {
  url: string;
  kubeconfig: string;
  token?: string;
  caCert?: string;
  etcdEndpoints: string[];
  /** How this control plane reaches etcd (endpoints, client TLS, keepalive): for tests and tools. */
  etcd: EtcdConnectionOptions;
  /** The TLS files behind `etcd.tls` (the local etcd's client identity, or the flags'). */
  etcdTlsFiles?: EtcdTlsFiles;
  /** Pids of the local etcd members, in member order (empty with an external etcd). */
  etcdPids(): number[];
  /** The in-process API server (undefined with apiWorkers > 1). */
  apiserver?: ApiServer;
  /** Object store of this process. */
  resources: ResourceStore;
  stop(): Promise<void>;
}

export const SYSTEM_NAMESPACES = ['default', 'kube-system', 'kova-system'];

export function defaultDataDir(): string {
  return process.getuid?.() === 0 ? '/var/lib/kova' : join(process.cwd(), '.kova');
}

function splitHostPort(listen: string): { host: string; port: number } {
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(listen);
  if (!m) throw new Error(`--listen must be host:port, got ${JSON.stringify(listen)}`);
  return { host: m[1] || '127.0.0.1', port: Number(m[2]) };
}

async function ensureNamespaces(rs: ResourceStore): Promise<void> {
  const info = rs.registry.lookup('', 'v1', 'namespaces')!;
  for (const name of SYSTEM_NAMESPACES) {
    try {
      await rs.create(info, undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name } }, { fieldManager: 'kova' });
    } catch (e) {
      if (!(e instanceof ApiError && e.code === 409)) throw e;
    }
  }
}

/**
 * Starts kova's own etcd: one member in DIR/etcd (as older kova versions did, so their data
 * dirs keep working) or N in DIR/etcd/member-i; TLS with client-certificate auth either way,
 * certificates from the kova CA in DIR/pki. Refuses to switch an existing data dir between one
 * and several members: that would start an empty etcd next to the data.
 */
async function startLocalEtcd(opts: ControlPlaneOptions, log: (m: string) => void) {
  const dir = join(opts.dataDir, 'etcd');
  const members = opts.etcdMembers ?? 1;
  const pki = await ensureEtcdPki(join(opts.dataDir, 'pki'));
  const tlsFiles: EtcdTlsFiles = { cafile: pki.caFile, certfile: pki.clientCertFile, keyfile: pki.clientKeyFile };
  const common = { log: opts.etcdLog ?? ((l: string) => log(`etcd: ${l}`)), restartOnCrash: true, tls: pki };
  if (members === 1) {
    if (existsSync(join(dir, 'cluster.json'))) {
      throw new Error(`${dir} holds a multi-member local etcd: start with the --etcd-members it was created with (see ${join(dir, 'cluster.json')})`);
    }
    const etcd = await startEtcd({ ...common, dataDir: dir, onSpawn: opts.onEtcdSpawn });
    return { endpoints: etcd.endpoints, tlsFiles, pids: () => [etcd.pid], stop: () => etcd.stop() };
  }
  if (existsSync(join(dir, 'member'))) {
    throw new Error(`${dir} holds a single-member local etcd: start without --etcd-members (or with 1); a cluster would start empty beside its data`);
  }
  const cluster = await startEtcdCluster({ ...common, dataDir: dir, members });
  return { endpoints: cluster.endpoints, tlsFiles, pids: () => cluster.members.map((m) => m.pid), stop: () => cluster.stop() };
}

export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const log = opts.log ?? (() => undefined);
  const step = opts.step ?? (() => undefined);
  await mkdir(opts.dataDir, { recursive: true });
  const stops: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch((e) => log(`shutdown: ${e}`));
  };
  try {
    let endpoints = opts.etcdEndpoints ?? [];
    let tlsFiles = opts.etcdTlsFiles;
    let etcdPids = (): number[] => [];
    if (!endpoints.length) {
      step(opts.etcdMembers && opts.etcdMembers > 1 ? `starting etcd (${opts.etcdMembers} members, TLS)` : 'starting etcd (TLS)');
      const etcd = await startLocalEtcd(opts, log);
      stops.push(() => etcd.stop());
      endpoints = etcd.endpoints;
      tlsFiles = etcd.tlsFiles;
      etcdPids = etcd.pids;
    }
    const connection: EtcdConnectionOptions = {
      endpoints,
      tls: tlsFiles && (await loadEtcdTls(tlsFiles)),
      keepaliveTimeMs: opts.etcdKeepaliveTimeMs,
      keepaliveTimeoutMs: opts.etcdKeepaliveTimeoutMs,
    };
    step(`connecting to etcd at ${endpoints.join(',')}`);
    const store = Store.connect(connection);
    stops.push(() => store.close());
    // A wrong CA, a refused certificate, endpoints of two clusters or none answering: an error
    // naming the endpoint now, not a hang later.
    const advice = etcdVersionAdvice((await store.verify()).members);
    if (advice) step(`warning: ${advice}`);
    store.startCompactor();

    step('loading CRDs');
    const registry = await Registry.load(opts.crdDir ?? defaultCrdDir());
    const resources = new ResourceStore(store, registry, new Validator(registry));
    await resources.namespaces.start();
    stops.push(() => resources.namespaces.stop());
    await ensureNamespaces(resources);

    const { host, port } = splitHostPort(opts.listen);
    let pki: Awaited<ReturnType<typeof ensurePki>> | undefined;
    if (!opts.insecure) {
      step('preparing certificates and token');
      pki = await ensurePki(join(opts.dataDir, 'pki'), [host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host, ...(opts.tlsSans ?? [])]);
    }
    let apiserver: ApiServer | undefined;
    let addr: { port: number };
    const tls = pki ? { cert: pki.cert, key: pki.key } : undefined;
    if ((opts.apiWorkers ?? 1) > 1) {
      step(`starting ${opts.apiWorkers} API server workers`);
      const workers = await startApiWorkers(opts.apiWorkers!, {
        // File paths, not key bytes: each worker reads them (keys stay out of env and argv).
        etcd: { endpoints, tlsFiles, keepaliveTimeMs: opts.etcdKeepaliveTimeMs, keepaliveTimeoutMs: opts.etcdKeepaliveTimeoutMs },
        crdDir: opts.crdDir ?? defaultCrdDir(), host, port, tls, token: pki?.token, caCert: pki?.caCert, dataDir: opts.dataDir,
        bookmarkIntervalMs: opts.bookmarkIntervalMs, inflight: opts.inflight, verbose: opts.verbose ?? !!opts.log, requestLogging: opts.requestLogging,
      }, log);
      stops.push(() => workers.stop());
      addr = { port: workers.port };
    } else {
      const security = await startSecurity(resources, { token: pki?.token, caCert: pki?.caCert, dataDir: opts.dataDir });
      stops.push(() => security.stop());
      const server = new ApiServer({ registry, resources, ...security.options, log, bookmarkIntervalMs: opts.bookmarkIntervalMs, inflight: opts.inflight, requestLogging: opts.requestLogging });
      apiserver = server;
      addr = await server.listen(host, port, tls);
      stops.push(() => server.close());
    }
    const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
    const url = `${pki ? 'https' : 'http'}://${shownHost}:${addr.port}`;
    const kubeconfig = join(opts.dataDir, 'kubeconfig');
    await writeKubeconfig(kubeconfig, url, pki);
    return { url, kubeconfig, token: pki?.token, caCert: pki?.caCert, etcdEndpoints: endpoints, etcd: connection, etcdTlsFiles: tlsFiles, etcdPids, apiserver, resources, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
