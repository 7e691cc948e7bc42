// First-start credentials: a CA, a serving certificate with the SANs kubectl checks, a bearer
// token and a kubeconfig. Generated with the openssl CLI (argument arrays, no shell) so kova
// carries no crypto code of its own; reused on later starts.
import { execFile } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { isDNS1123SubdomainOK } from '../api/name-validation.js';
import type { EtcdServerTls } from '../store/etcd-process.js';

const run = promisify(execFile);

export interface Pki {
  caCert: string;
  cert: string;
  key: string;
  token: string;
}

function sanEntry(host: string): string {
  if (isIP(host)) return `IP:${host}`;
  if (isDNS1123SubdomainOK(host.toLowerCase())) return `DNS:${host}`;
  throw new Error(`invalid host name for the serving certificate: ${JSON.stringify(host)}`);
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args);
  } catch (e) {
    const err = e as { code?: string; stderr?: string };
    if (err.code === 'ENOENT') throw new Error('openssl is not installed: run hack/install-host-deps.sh (or apt-get install openssl)');
    throw new Error(`openssl ${args[0]} failed: ${err.stderr ?? String(e)}`);
  }
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** The kova CA in `dir` (ca.crt, ca.key), created on first use. */
async function ensureCa(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const p = (f: string) => join(dir, f);
  if (!existsSync(p('ca.crt')) || !existsSync(p('ca.key'))) {
    await openssl(['req', '-x509', ...EC, '-keyout', p('ca.key'), '-out', p('ca.crt'), '-days', '3650',
      '-subj', '/CN=kova-ca', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  }
  await chmod(p('ca.key'), 0o600);
}

/** Issues `name`.crt/.key in `out`, signed by the CA in `caDir`, with the given extensions. */
async function issue(caDir: string, out: string, name: string, cn: string, ext: string): Promise<void> {
  const p = (f: string) => join(out, f);
  await writeFile(p(`${name}.ext`), ext);
  // `out` is mode 700, so the key is never readable by others, even before this chmod.
  await openssl(['req', ...EC, '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`), '-subj', `/CN=${cn}`]);
  await chmod(p(`${name}.key`), 0o600);
  await openssl(['x509', '-req', '-in', p(`${name}.csr`), '-CA', join(caDir, 'ca.crt'), '-CAkey', join(caDir, 'ca.key'), '-CAcreateserial',
    '-out', p(`${name}.crt`), '-days', '825', '-extfile', p(`${name}.ext`)]);
}

/**
 * A client certificate from the kova CA in `caDir` (CN = user, one O per group: kube-apiserver's
 * x509 identity), for one year. Nothing is kept on disk: the PEMs are returned.
 */
export async function issueClientCert(caDir: string, user: string, groups: string[] = []): Promise<{ cert: string; key: string }> {
  // Characters with a meaning in openssl's -subj syntax are refused rather than escaped.
  for (const v of [user, ...groups]) {
    if (!v || /[/\\+=,\x00-\x1f]/.test(v)) throw new Error(`invalid certificate subject value ${JSON.stringify(v)}`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'kova-cert-'));
  try {
    const subj = [...groups.map((g) => `/O=${g}`), `/CN=${user}`].join('');
    const p = (f: string) => join(dir, f);
    await writeFile(p('client.ext'), 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE\n');
    await openssl(['req', ...EC, '-keyout', p('client.key'), '-out', p('client.csr'), '-subj', subj]);
    // A serial file of its own: a fresh random serial, and nothing written next to the CA.
    await openssl(['x509', '-req', '-in', p('client.csr'), '-CA', join(caDir, 'ca.crt'), '-CAkey', join(caDir, 'ca.key'), '-CAcreateserial', '-CAserial', p('ca.srl'),
      '-out', p('client.crt'), '-days', '365', '-extfile', p('client.ext')]);
    const [cert, key] = await Promise.all([readFile(p('client.crt'), 'utf8'), readFile(p('client.key'), 'utf8')]);
    return { cert, key };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Certificate files of kova's local etcd: the shape startEtcd takes. */
export type EtcdPki = EtcdServerTls;

/**
 * Creates (once) or reuses the local etcd's certificates in `dir`/etcd, signed by the kova CA in
 * `dir`: a serving certificate for the client URLs, a peer certificate (members authenticate
 * each other both ways), and kova's client certificate (CN kova-apiserver). Every member shares
 * them: all listen on loopback. Keys are mode 600 in a 700 directory.
 */
export async function ensureEtcdPki(dir: string): Promise<EtcdPki> {
  await ensureCa(dir);
  const out = join(dir, 'etcd');
  await mkdir(out, { recursive: true, mode: 0o700 });
  await chmod(out, 0o700);
  const p = (f: string) => join(out, f);
  const loopback = 'subjectAltName=IP:127.0.0.1,DNS:localhost\n';
  const common = 'keyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE\n';
  // etcd's own gRPC gateway dials the client URL with the serving certificate: it needs clientAuth too.
  const want: Array<[string, string, string]> = [
    ['server', 'kova-etcd', `${loopback}extendedKeyUsage=serverAuth,clientAuth\n${common}`],
    ['peer', 'kova-etcd-peer', `${loopback}extendedKeyUsage=serverAuth,clientAuth\n${common}`],
    ['client', 'kova-apiserver', `extendedKeyUsage=clientAuth\n${common}`],
  ];
  for (const [name, cn, ext] of want) {
    if (!existsSync(p(`${name}.crt`)) || !existsSync(p(`${name}.key`))) await issue(dir, out, name, cn, ext);
    await chmod(p(`${name}.key`), 0o600);
  }
  return {
    caFile: join(dir, 'ca.crt'),
    certFile: p('server.crt'), keyFile: p('server.key'),
    peerCertFile: p('peer.crt'), peerKeyFile: p('peer.key'),
    clientCertFile: p('client.crt'), clientKeyFile: p('client.key'),
  };
}

/** A serving certificate is issued again when it has less than this left, or its names changed. */
const RENEW_BEFORE_MS = 30 * 86_400_000;

/**
 * Creates (once) or reuses the serving certificate `name`.crt/.key in `dir`, from the kova CA
 * there, for loopback and `hosts`; issued again when the names change, the CA changed, or it
 * nears its end (825 days).
 */
export async function ensureServingCert(dir: string, name: string, hosts: string[], cn = name): Promise<{ cert: string; key: string; certFile: string; keyFile: string }> {
  await ensureCa(dir);
  const p = (f: string) => join(dir, f);
  const sans = [...new Set(['127.0.0.1', 'localhost', '::1', ...hosts])].map(sanEntry).sort().join(',');
  const [certFile, keyFile, sansFile] = [p(`${name}.crt`), p(`${name}.key`), p(`${name}.sans`)];
  const fresh = async () => {
    if (!existsSync(certFile) || !existsSync(keyFile) || !existsSync(sansFile)) return false;
    if ((await readFile(sansFile, 'utf8')).trim() !== sans) return false;
    const c = new X509Certificate(await readFile(certFile));
    const ca = new X509Certificate(await readFile(p('ca.crt')));
    return c.checkIssued(ca) && c.verify(ca.publicKey) && Date.parse(c.validTo) - Date.now() > RENEW_BEFORE_MS;
  };
  if (!(await fresh())) {
    await issue(dir, dir, name, cn, `subjectAltName=${sans}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE\n`);
    await rm(p(`${name}.csr`), { force: true });
    await writeFile(sansFile, sans);
  }
  await chmod(keyFile, 0o600);
  const [cert, key] = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]);
  return { cert, key, certFile, keyFile };
}

/** Creates (once) or loads the CA, the API server's serving certificate and the token under `dir`. */
export async function ensurePki(dir: string, hosts: string[]): Promise<Pki> {
  await ensureCa(dir);
  const p = (f: string) => join(dir, f);
  const { cert, key } = await ensureServingCert(dir, 'server', hosts, 'kova-apiserver');
  if (!existsSync(p('token'))) await writeFile(p('token'), randomBytes(24).toString('hex'), { mode: 0o600 });
  for (const f of ['ca.key', 'token']) await chmod(p(f), 0o600);
  const [caCert, token] = await Promise.all(['ca.crt', 'token'].map((f) => readFile(p(f), 'utf8')));
  return { caCert, cert, key, token: token.trim() };
}

/** Writes a kubeconfig for kubectl and client-node: cluster `kova`, user `admin`, namespace `default`. */
export async function writeKubeconfig(path: string, server: string, pki: Pick<Pki, 'caCert' | 'token'> | undefined): Promise<void> {
  const cluster: Record<string, unknown> = { server };
  if (pki && server.startsWith('https:')) cluster['certificate-authority-data'] = Buffer.from(pki.caCert).toString('base64');
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'kova', cluster }],
    users: [{ name: 'admin', user: pki ? { token: pki.token } : {} }],
    contexts: [{ name: 'kova', context: { cluster: 'kova', user: 'admin', namespace: 'default' } }],
    'current-context': 'kova',
  };
  await writeFile(path, YAML.stringify(doc), { mode: 0o600 });
}
