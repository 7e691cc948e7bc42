// Client certificates signed by the kova CA, as kube-apiserver's x509 authenticator reads them:
// the subject's CN is the user, each O a group. The TLS server asks every client for a
// certificate without requiring one (token users connect without); node verifies the chain
// against the kova CA during the handshake and records the verdict in socket.authorized, so a
// certificate from another CA (or expired, or not for client use) is simply not an identity here.
import type { TLSSocket } from 'node:tls';
import { SYSTEM_AUTHENTICATED } from './types.js';
import type { Authenticator, UserInfo } from './types.js';

const list = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

export function clientCertAuthenticator(): Authenticator {
  return {
    authenticate(req) {
      const socket = req.socket as Partial<TLSSocket>;
      if (!socket.encrypted || !socket.authorized || typeof socket.getPeerCertificate !== 'function') return undefined;
      const cert = socket.getPeerCertificate();
      if (!cert || !cert.subject) return undefined;
      const [name] = list(cert.subject.CN);
      if (!name) return undefined;
      const groups = [...new Set(list(cert.subject.O).filter((g) => g && g !== SYSTEM_AUTHENTICATED))];
      const user: UserInfo = { name, groups: [...groups, SYSTEM_AUTHENTICATED] };
      return user;
    },
  };
}
