// How kova reaches etcd: endpoints, TLS identity and keepalive, the same for every process that
// talks to it (`kova up`, `kova apiserver`, benches, tests). Flag names follow kube-apiserver.
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';

export interface EtcdTls {
  /** PEM CA bundle that signed the members' serving certificates (--etcd-cafile). */
  ca?: Buffer;
  /** PEM client certificate presented to etcd (--etcd-certfile). */
  cert?: Buffer;
  /** PEM private key of `cert` (--etcd-keyfile). */
  key?: Buffer;
}

export interface EtcdConnectionOptions {
  /** Client URLs, http:// or https://; calls fail over between them. */
  endpoints: string[];
  tls?: EtcdTls;
  /** HTTP/2 PING interval on an idle-or-busy connection (kube-apiserver: 30 s). */
  keepaliveTimeMs?: number;
  /** A PING not answered within this declares the member dead (kube-apiserver: 10 s). */
  keepaliveTimeoutMs?: number;
  /** Deadline of one unary call on one member before it moves to the next. */
  callDeadlineMs?: number;
}

export interface EtcdTlsFiles {
  cafile?: string;
  certfile?: string;
  keyfile?: string;
}

/** Reads the PEM files named by --etcd-cafile/--etcd-certfile/--etcd-keyfile; errors name the file. */
export async function loadEtcdTls(files: EtcdTlsFiles): Promise<EtcdTls | undefined> {
  if (!files.cafile && !files.certfile && !files.keyfile) return undefined;
  if (!!files.certfile !== !!files.keyfile) {
    throw new Error('--etcd-certfile and --etcd-keyfile go together: give both or neither');
  }
  const read = async (flag: string, path: string | undefined): Promise<Buffer | undefined> => {
    if (!path) return undefined;
    try {
      return await readFile(path);
    } catch (e) {
      throw new Error(`${flag} ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    }
  };
  const tls = {
    ca: await read('--etcd-cafile', files.cafile),
    cert: await read('--etcd-certfile', files.certfile),
    key: await read('--etcd-keyfile', files.keyfile),
  };
  // Unusable files fail here, naming them, rather than as a handshake error at the first call.
  if (tls.ca) {
    try {
      new X509Certificate(tls.ca);
    } catch (e) {
      throw new Error(`--etcd-cafile ${files.cafile}: not a PEM certificate (${(e as Error).message})`);
    }
  }
  if (tls.cert && tls.key) {
    try {
      createSecureContext({ cert: tls.cert, key: tls.key });
    } catch (e) {
      const why = (e as Error).message;
      const what = /key values mismatch/.test(why) ? 'are not a certificate and its key' : 'cannot be loaded';
      throw new Error(`--etcd-certfile ${files.certfile} and --etcd-keyfile ${files.keyfile} ${what} (${why})`);
    }
  }
  return tls;
}
