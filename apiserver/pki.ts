// First-start credentials: a CA, a serving certificate with the SANs kubectl checks, a bearer
// token and a kubeconfig. Generated with the openssl CLI (argument arrays, no shell) so kova
// carries no crypto code of its own; reused on later starts.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { isDNS1123SubdomainOK } from '../api/name-validation.js';

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

/** Creates (once) or loads the CA, serving certificate and token under `dir`. */
export async function ensurePki(dir: string, hosts: string[]): Promise<Pki> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const p = (f: string) => join(dir, f);
  const sans = [...new Set(['127.0.0.1', 'localhost', '::1', ...hosts])].map(sanEntry).sort();
  const sansFile = p('server.sans');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

  if (!existsSync(p('ca.crt')) || !existsSync(p('ca.key'))) {
    await openssl(['req', '-x509', ...ec, '-keyout', p('ca.key'), '-out', p('ca.crt'), '-days', '3650',
      '-subj', '/CN=kova-ca', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  }
  const haveSans = existsSync(sansFile) ? (await readFile(sansFile, 'utf8')).trim() : '';
  if (!existsSync(p('server.crt')) || haveSans !== sans.join(',')) {
    const ext = `subjectAltName=${sans.join(',')}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE\n`;
    await writeFile(p('server.ext'), ext);
    await openssl(['req', ...ec, '-keyout', p('server.key'), '-out', p('server.csr'), '-subj', '/CN=kova-apiserver']);
    await openssl(['x509', '-req', '-in', p('server.csr'), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-CAcreateserial',
      '-out', p('server.crt'), '-days', '825', '-extfile', p('server.ext')]);
    await writeFile(sansFile, sans.join(','));
  }
  if (!existsSync(p('token'))) await writeFile(p('token'), randomBytes(24).toString('hex'), { mode: 0o600 });
  for (const f of ['ca.key', 'server.key', 'token']) await chmod(p(f), 0o600);
  const [caCert, cert, key, token] = await Promise.all(['ca.crt', 'server.crt', 'server.key', 'token'].map((f) => readFile(p(f), 'utf8')));
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
