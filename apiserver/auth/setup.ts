// Composes the API server's security: who is asking (authenticators, impersonation), what they
// may do (authorizer, reviews), admission checks on writes, and the audit log. Every API server
// process (kova up's in-process server and each API worker) builds it the same way.
import { join } from 'node:path';
import { componentLogger, logFunction } from '../../lib/log.js';
import { AuditLog } from '../audit/log.js';
import type { ResourceStore } from '../resource-store.js';
import type { ApiServerOptions } from '../server.js';
import { adminTokenAuthenticator } from './admin-token.js';
import { clientCertAuthenticator } from './client-cert.js';
import { impersonate } from './impersonation.js';
import { NodeRestriction } from './node-restriction.js';
import { TokenAuthenticator } from './tokens.js';
import { QuotaCharger } from '../quota/charger.js';
import { reconcileBootstrapPolicy } from './bootstrap-policy.js';
import { Reviews } from './reviews.js';
import type { Authenticator, RuleResolver } from './types.js';
import { RbacAuthorizer } from './rbac/authorizer.js';
import { RbacCache } from './rbac/cache.js';
import { EscalationAdmission } from './rbac/escalation.js';
import { ImageFileSourceAdmission } from './image-source.js';
import { ImagePublicizeAdmission } from './image-publicize.js';
import { VolumeAdmission } from './volume-admission.js';
import { MigrationAdmission } from './migration-admission.js';

export interface SecurityConfig {
  /** The admin's bearer token (kova up's kubeconfig); undefined: authentication is off. */
  token?: string;
  /** The kova CA (PEM), for client certificates. */
  caCert?: string;
  /** The data directory (audit log, ...); undefined in tests that keep nothing on disk. */
  dataDir?: string;
}

export type SecurityOptions = Pick<ApiServerOptions, 'token' | 'authenticators' | 'impersonate' | 'authorizer' | 'admission' | 'audit' | 'reviews' | 'clientCA'>;

export interface Security {
  options: SecurityOptions;
  /** The RBAC rule resolver when authorization is on (SelfSubjectRulesReview, escalation checks). */
  ruleResolver?: RuleResolver;
  /** Stops the caches and flushes the audit log. */
  stop(): Promise<void>;
}

export async function startSecurity(resources: ResourceStore, config: SecurityConfig): Promise<Security> {
  const stops: Array<() => Promise<void> | void> = [];
  const options: SecurityOptions = { token: config.token };
  // What TokenReview asks: the bearer-token authenticators alone (a review carries no certificate).
  const tokenAuthenticators: Authenticator[] = [];
  if (config.token) {
    // Users: client certificates from the kova CA, then kova user tokens (the admin token stays first).
    const tokens = new TokenAuthenticator(resources.store);
    await tokens.start();
    stops.push(() => tokens.stop());
    options.authenticators = [...(options.authenticators ?? []), ...(config.caCert ? [clientCertAuthenticator()] : []), tokens];
    if (config.caCert) options.clientCA = config.caCert;
    tokenAuthenticators.push(adminTokenAuthenticator(config.token), tokens);
    options.impersonate = impersonate;
  }
  // NodeRestriction: a node agent writes only its own host's objects (RBAC alone cannot say so).
  options.admission = [...(options.admission ?? []), new NodeRestriction()];
  // Volumes: the default VolumeType, and the expansion and single-attach checks that read other objects.
  options.admission.push(new VolumeAdmission(resources));
  // Migrations: the instance, the target host and no other unfinished migration of the instance; spec immutable.
  options.admission.push(new MigrationAdmission(resources));
  // ResourceQuota: charged atomically with creates, from a watch-fed cache of the quotas.
  const quota = new QuotaCharger(resources.store, resources.registry);
  await quota.start();
  resources.quota = quota;
  stops.push(() => quota.stop());
  if (config.dataDir) {
    // Every API server process of a data dir appends to the same DIR/audit/audit.log (see audit/log.ts).
    const audit = await AuditLog.open({ dir: join(config.dataDir, 'audit') });
    stops.push(() => audit.close());
    options.audit = audit;
    options.admission = [audit.objectNames, ...options.admission];
  }
  if (config.token) {
    // The default roles and bindings; every API server does it, conflicts between them are harmless.
    await reconcileBootstrapPolicy(resources, logFunction(componentLogger('rbac')));
  }
  let ruleResolver: RuleResolver | undefined;
  if (config.token) {
    // RBAC: decisions from a watch-fed cache of roles and bindings (ready before we serve: it lists
    // after the bootstrap policy is in); writes to RBAC objects may not escalate privileges.
    const rbac = new RbacCache(resources.store, { log: logFunction(componentLogger('rbac'), 'warn') });
    await rbac.start();
    stops.push(() => rbac.stop());
    const authorizer = new RbacAuthorizer(rbac);
    options.authorizer = authorizer;
    options.admission = [...(options.admission ?? []), new EscalationAdmission(authorizer, resources, { patchedObjectsChecked: true })];
    // Image file sources read the control-plane host's files: a cloud admin's (images/filesource).
    options.admission.push(new ImageFileSourceAdmission(authorizer, resources));
    // Publishing an Image to every project needs the verb `publicize` (Glance's publicize_image).
    options.admission.push(new ImagePublicizeAdmission(authorizer, resources));
    ruleResolver = authorizer;
  }
  // Kept last: the reviews answer with whatever authorizer (and rule resolver) is configured above.
  const authz = options.authorizer as (RuleResolver & object) | undefined;
  options.reviews = new Reviews({ rules: authz && typeof authz.rulesFor === 'function' ? authz : undefined, tokenAuthenticators });
  return {
    options,
    ruleResolver,
    stop: async () => {
      for (const s of stops.reverse()) await s();
    },
  };
}
