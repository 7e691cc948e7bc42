// Least-privilege identities for the components `kova up` starts, as kubeadm gives
// kube-controller-manager and each kubelet a client certificate of their own instead of the
// admin's: the controllers are user system:kova:controller-manager, the agent of host H is
// system:node:H in group system:nodes (RBAC's bootstrap roles grant what each needs, and
// NodeRestriction keeps an agent to its own host's objects). Each gets a kubeconfig with an
// embedded certificate from the kova CA, mode 600 in DATA_DIR/kubeconfigs (mode 700), reused on
// later starts while it is signed by the current CA and valid for 30 more days.
import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import YAML from 'yaml';
import { issueClientCert } from '../apiserver/pki.js';
import { CONTROLLER_MANAGER_USER, NODES_GROUP, nodeUserName } from '../apiserver/auth/types.js';

export interface ComponentKubeconfigs {
  /** The controllers' kubeconfig (user system:kova:controller-manager). */
  controllers: string;
  /** The directory of the agents' kubeconfigs: node-<host>.kubeconfig. */
  nodeDir: string;
}

export const nodeKubeconfig = (dir: string, host: string) => join(dir, `node-${host}.kubeconfig`);

const RENEW_BEFORE_MS = 30 * 86_400_000;
/** openssl runs at once while issuing many (a thousand sim hosts on first start). */
const ISSUE_CONCURRENCY = 8;

function kubeconfigYaml(server: string, caCert: string, user: string, cert: string, key: string): string {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return YAML.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'kova', cluster: { server, 'certificate-authority-data': b64(caCert) } }],
    users: [{ name: user, user: { 'client-certificate-data': b64(cert), 'client-key-data': b64(key) } }],
    contexts: [{ name: 'kova', context: { cluster: 'kova', user } }],
    'current-context': 'kova',
  });
}

/** The certificate and key of the kubeconfig at `path` if it names `user`, is from `ca` and stays valid a while. */
async function reusable(path: string, ca: X509Certificate, user: string): Promise<{ cert: string; key: string; server?: string } | undefined> {
  if (!existsSync(path)) return undefined;
  try {
    const doc = YAML.parse(await readFile(path, 'utf8')) as {
      clusters?: Array<{ cluster?: { server?: string } }>; users?: Array<{ user?: Record<string, string> }>;
    };
    const u = doc.users?.[0]?.user ?? {};
    const [certData, keyData] = [u['client-certificate-data'], u['client-key-data']];
    if (!certData || !keyData) return undefined;
    const pem = Buffer.from(certData, 'base64').toString('utf8');
    const cert = new X509Certificate(pem);
    const ok = cert.checkIssued(ca) && cert.verify(ca.publicKey) && /(^|\n)CN=([^\n]*)/.exec(cert.subject)?.[2] === user
      && Date.parse(cert.validTo) - Date.now() > RENEW_BEFORE_MS;
    return ok ? { cert: pem, key: Buffer.from(keyData, 'base64').toString('utf8'), server: doc.clusters?.[0]?.cluster?.server } : undefined;
  } catch {
    return undefined;
  }
}

async function ensureOne(path: string, server: string, pkiDir: string, caPem: string, ca: X509Certificate, user: string, groups: string[]): Promise<void> {
  const have = await reusable(path, ca, user);
  // Same certificate, new address (kova up --listen HOST:0 picks another port each start).
  if (have?.server === server) return chmod(path, 0o600);
  const { cert, key } = have ?? await issueClientCert(pkiDir, user, groups);
  await writeFile(path, kubeconfigYaml(server, caPem, user, cert, key), { mode: 0o600 });
  await chmod(path, 0o600);
}

/**
 * Writes (or keeps) the controllers' kubeconfig and one per agent host, for the API server at
 * `server`, with certificates from the CA in `pkiDir` (ca.crt, ca.key).
 */
export async function ensureComponentKubeconfigs(dataDir: string, pkiDir: string, server: string, hosts: string[]): Promise<ComponentKubeconfigs> {
  const dir = join(dataDir, 'kubeconfigs');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const caPem = await readFile(join(pkiDir, 'ca.crt'), 'utf8');
  const ca = new X509Certificate(caPem);
  const controllers = join(dir, 'controller-manager.kubeconfig');
  const jobs: Array<() => Promise<void>> = [
    () => ensureOne(controllers, server, pkiDir, caPem, ca, CONTROLLER_MANAGER_USER, []),
    ...hosts.map((h) => () => ensureOne(nodeKubeconfig(dir, h), server, pkiDir, caPem, ca, nodeUserName(h), [NODES_GROUP])),
  ];
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(ISSUE_CONCURRENCY, jobs.length) }, async () => {
    while (next < jobs.length) await jobs[next++]!();
  }));
  return { controllers, nodeDir: dir };
}
