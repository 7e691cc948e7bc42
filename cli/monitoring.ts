// Ready-made monitoring for `kova up`: a scrape identity, a serving certificate for the
// components' /metrics port, and DATA_DIR/monitoring/prometheus.yml naming every process kova up
// started, so `prometheus --config.file=DATA_DIR/monitoring/prometheus.yml` works as it is.
//
// The scraper is user kova-monitoring with a bearer token (Prometheus's
// authorization.credentials_file, mode 600). kube's scrapers are in group system:monitoring,
// but a kova token user may not carry a system: group (tokens.ts keeps those for kova's own
// components), so the user is bound to the same ClusterRole, system:monitoring (get /metrics and
// the health endpoints, nothing else), by a ClusterRoleBinding of its own.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { isAlreadyExists, KovaClient, NAMESPACES } from '../client/client.js';
import type { Kind, KObject } from '../client/client.js';
import { parseToken, tokenSecretName, userSecret, userSecretName, USER_LABEL, USERS_NAMESPACE } from '../apiserver/auth/tokens.js';
import { CLUSTER_ROLE_BINDINGS, issueToken, SECRETS } from './user.js';

const run = promisify(execFile);

export const MONITORING_USER = 'kova-monitoring';
/** kube's ClusterRole for scrapers (apiserver/auth/bootstrap-policy.ts). */
export const MONITORING_CLUSTER_ROLE = 'system:monitoring';

const RBAC = 'rbac.authorization.k8s.io';

async function createIfAbsent(client: KovaClient, kind: Kind, obj: KObject): Promise<KObject | undefined> {
  try {
    return await client.create(kind, obj as KObject & { metadata: { name: string } });
  } catch (e) {
    if (isAlreadyExists(e)) return undefined;
    throw e;
  }
}

/**
 * The scraper's token in `tokenFile` (mode 600): kept while its token Secret exists, else a new
 * one is issued. The user, its binding and the file are created on first use.
 */
export async function ensureMonitoringToken(client: KovaClient, tokenFile: string): Promise<void> {
  await createIfAbsent(client, NAMESPACES, { metadata: { name: USERS_NAMESPACE } } as KObject);
  await createIfAbsent(client, SECRETS, userSecret(MONITORING_USER, []));
  await createIfAbsent(client, CLUSTER_ROLE_BINDINGS, {
    metadata: { name: MONITORING_USER, labels: { [USER_LABEL]: MONITORING_USER } },
    roleRef: { apiGroup: RBAC, kind: 'ClusterRole', name: MONITORING_CLUSTER_ROLE },
    subjects: [{ kind: 'User', apiGroup: RBAC, name: MONITORING_USER }],
  } as unknown as KObject);
  if (existsSync(tokenFile)) {
    const have = parseToken((await readFile(tokenFile, 'utf8')).trim());
    if (have && (await client.get(SECRETS, USERS_NAMESPACE, tokenSecretName(have.id)))) return chmod(tokenFile, 0o600);
  }
  const owner = await client.get(SECRETS, USERS_NAMESPACE, userSecretName(MONITORING_USER));
  if (!owner?.metadata.uid) throw new Error(`the monitoring user's Secret ${USERS_NAMESPACE}/${userSecretName(MONITORING_USER)} is missing`);
  await writeFile(tokenFile, `${await issueToken(client, MONITORING_USER, owner)}\n`, { mode: 0o600 });
  await chmod(tokenFile, 0o600);
}

/** The components' serving certificate comes from the kova CA, as the API server's does. */
export { ensureServingCert } from '../apiserver/pki.js';

export interface ScrapeTarget {
  /** Prometheus job: kova-apiserver, kova-components ... */
  job: string;
  /** host:port */
  address: string;
}

export interface PrometheusConfigOptions {
  targets: ScrapeTarget[];
  /** The CA that signed the targets' serving certificates; absent: plain http (kova up --insecure). */
  caFile?: string;
  /** The bearer token file; absent: no credentials (--insecure). */
  tokenFile?: string;
  scrapeInterval?: string;
}

/** A Prometheus 2.x configuration (Debian 12 ships 2.42) scraping `targets`. */
export function prometheusConfig(opts: PrometheusConfigOptions): string {
  const jobs = [...new Set(opts.targets.map((t) => t.job))];
  const doc = {
    global: { scrape_interval: opts.scrapeInterval ?? '15s', evaluation_interval: opts.scrapeInterval ?? '15s' },
    scrape_configs: jobs.map((job) => ({
      job_name: job,
      scheme: opts.caFile ? 'https' : 'http',
      metrics_path: '/metrics',
      ...(opts.caFile ? { tls_config: { ca_file: opts.caFile } } : {}),
      ...(opts.tokenFile ? { authorization: { type: 'Bearer', credentials_file: opts.tokenFile } } : {}),
      static_configs: [{ targets: opts.targets.filter((t) => t.job === job).map((t) => t.address) }],
    })),
  };
  return `# Written by kova up: the processes it started. Run: prometheus --config.file=<this file>\n${YAML.stringify(doc)}`;
}

/** The monitoring directory of a data dir (mode 700: it holds the scrape token). */
export async function monitoringDir(dataDir: string): Promise<string> {
  const dir = join(dataDir, 'monitoring');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  return dir;
}

/** host:port of a URL, for a scrape target. */
export function urlAddress(url: string): string {
  return new URL(url).host;
}

/** kube's flags for a component's secure /metrics port. */
export const METRICS_FLAGS = {
  'metrics-bind-address': { type: 'string' },
  'tls-cert-file': { type: 'string' },
  'tls-private-key-file': { type: 'string' },
} as const;

/**
 * Default /metrics addresses, kube's ports: `kova controllers` (and kova up's components process)
 * on kube-controller-manager's 10257, loopback; `kova agent` on the kubelet's 10250, all
 * addresses (Prometheus scrapes every host from elsewhere). Scrapes are authenticated and
 * authorized through the API server either way.
 */
export const DEFAULT_CONTROLLERS_METRICS = '127.0.0.1:10257';
export const DEFAULT_AGENT_METRICS = '0.0.0.0:10250';

/** A self-signed serving certificate (kube's components make one when given no --tls-cert-file). */
async function selfSigned(host: string): Promise<{ cert: string; key: string }> {
  const { mkdtemp } = await import('node:fs/promises');
  const { tmpdir, hostname } = await import('node:os');
  const dir = await mkdtemp(join(tmpdir(), 'kova-serving-'));
  try {
    const names = [...new Set(['127.0.0.1', 'localhost', hostname().toLowerCase(), ...(host && host !== '0.0.0.0' && host !== '::' ? [host] : [])])];
    const san = names.map((h) => (isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'k'), '-out', join(dir, 'c'),
      '-days', '365', '-subj', `/CN=${hostname().toLowerCase() || 'kova'}@${Math.floor(Date.now() / 1000)}`, '-addext', `subjectAltName=${san}`]);
    const [cert, key] = await Promise.all([readFile(join(dir, 'c'), 'utf8'), readFile(join(dir, 'k'), 'utf8')]);
    return { cert, key };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface ComponentMetricsOptions {
  /** --metrics-bind-address as given (undefined: `defaultBind`); "0" disables. */
  bind: string | undefined;
  defaultBind: string;
  certFile?: string;
  keyFile?: string;
  /** The component's kubeconfig: its identity makes the TokenReviews and SubjectAccessReviews. */
  kubeconfig: string;
  signal: AbortSignal;
  log: (msg: string) => void;
  /** Where the fallback to another port and a failure to serve are said (default: log). */
  warn?: (msg: string) => void;
  /** An address that is taken is logged and /metrics is not served, instead of failing (kova up's components child). */
  bestEffort?: boolean;
}

/**
 * Serves this process's /metrics on --metrics-bind-address with TLS and delegated authentication
 * and authorization. The default address taken (another kova process on this machine) falls back
 * to a free port, said in the log; an address given explicitly must be free.
 */
export async function serveComponentMetrics(o: ComponentMetricsOptions): Promise<{ url: string } | undefined> {
  const bind = o.bind ?? o.defaultBind;
  if (bind === '0') return undefined;
  const { parseBind, startMetricsServer } = await import('../client/metrics-server.js');
  const { DelegatedAuth } = await import('../client/delegated-auth.js');
  const { host } = parseBind(bind);
  if ((o.certFile === undefined) !== (o.keyFile === undefined)) throw new Error('--tls-cert-file and --tls-private-key-file go together');
  const tls = o.certFile && o.keyFile
    ? { cert: await readFile(o.certFile, 'utf8'), key: await readFile(o.keyFile, 'utf8') }
    : await selfSigned(host);
  const client = KovaClient.fromFile(o.kubeconfig, { userAgent: 'kova-metrics-auth', qps: 0 });
  o.signal.addEventListener('abort', () => client.close(), { once: true });
  // The kova CA (the API server's, in the kubeconfig): its client certificates are identities too.
  const cluster = client.kc.getCurrentCluster();
  const clientCA = cluster?.caData ? Buffer.from(cluster.caData, 'base64').toString('utf8') : cluster?.caFile ? await readFile(cluster.caFile, 'utf8') : undefined;
  const auth = new DelegatedAuth(client, { clientCA });
  const start = (b: string) => startMetricsServer({ bind: b, tls, auth, signal: o.signal, log: o.log });
  try {
    return await start(bind);
  } catch (e) {
    const inUse = (e as { code?: string }).code === 'EADDRINUSE';
    if (inUse && o.bind === undefined) {
      const s = await start(`${host.includes(':') ? `[${host}]` : host}:0`);
      (o.warn ?? o.log)(`${bind} is in use (another kova process?): serving /metrics on ${s.url} instead (set --metrics-bind-address)`);
      return s;
    }
    if (o.bestEffort) {
      (o.warn ?? o.log)(`cannot serve /metrics on ${bind}: ${(e as Error).message}; running without it`);
      return undefined;
    }
    throw new Error(`--metrics-bind-address ${bind}: ${(e as Error).message}`);
  }
}

/**
 * The host:port kova up gives its components process: `bind` when it is free; when it is the
 * default and taken (several kova up on one machine, as the e2e tests run), a free port picked
 * now, so prometheus.yml can name it and the child's restarts keep it.
 */
export async function pickMetricsAddress(bind: string, isDefault: boolean): Promise<string> {
  const { createServer } = await import('node:net');
  const { parseBind } = await import('../client/metrics-server.js');
  const { host, port } = parseBind(bind);
  const tryListen = (p: number) => new Promise<number>((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(p, host, () => {
      const got = (s.address() as { port: number }).port;
      s.close(() => resolve(got));
    });
  });
  const hostPart = host.includes(':') ? `[${host}]` : host;
  try {
    return `${hostPart}:${await tryListen(port)}`;
  } catch (e) {
    if ((e as { code?: string }).code !== 'EADDRINUSE' || !isDefault) throw new Error(`--metrics-bind-address ${bind}: ${(e as Error).message}`);
    return `${hostPart}:${await tryListen(0)}`;
  }
}
