// The admin bearer token `kova up` writes into its kubeconfig: one user, in system:masters.
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { ADMIN_USER } from './types.js';
import type { Authenticator, UserInfo } from './types.js';

/** The bearer token of a request, or undefined when it carries none. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
  return m ? m[1]!.trim() : undefined;
}

export function adminTokenAuthenticator(token: string, user: UserInfo = ADMIN_USER): Authenticator {
  const want = Buffer.from(token);
  return {
    authenticate(req) {
      const t = bearerToken(req);
      if (t === undefined) return undefined;
      const got = Buffer.from(t);
      return got.length === want.length && timingSafeEqual(got, want) ? user : undefined;
    },
  };
}
