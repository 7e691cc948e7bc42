// `kova user create|token|revoke|delete|list`: kova's users and their bearer tokens (Secrets in
// kova-system, see apiserver/auth/tokens.ts), managed through the API with the admin's
// kubeconfig, and a kubeconfig for each new token.
import { readFileSync } from 'node:fs';
import { chmod, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { isDNS1123LabelOK } from '../api/name-validation.js';
import { isAlreadyExists, isNotFound, KovaClient, NAMESPACES } from '../client/client.js';
import type { Kind, KObject } from '../client/client.js';
import {
  generateToken, groupNameError, tokenSecret, tokenSecretName, TOKEN_SECRET_TYPE, USER_LABEL, userNameError, userSecret,
  userSecretName, USER_SECRET_TYPE, USERS_NAMESPACE,
} from '../apiserver/auth/tokens.js';
import { KOVA_ROLES } from '../apiserver/auth/types.js';
import type { KovaRole } from '../apiserver/auth/types.js';

export const USER_USAGE = `usage:
  kova user create NAME [--group G]... [--project P --role R] [-o FILE]
                         create a user and print (or write to FILE, mode 600) a kubeconfig
                         with a new token; R: ${Object.keys(KOVA_ROLES).join(', ')} (cloud-admin
                         is cluster-wide and takes no --project)
  kova user token NAME [-o FILE]      issue another token (a new kubeconfig)
  kova user revoke NAME [--token ID]  delete one token, or all of the user's tokens
  kova user delete NAME               delete the user, their tokens and role bindings
  kova user list                      the users, their groups and tokens
All take --kubeconfig F (default $KUBECONFIG, then DATA_DIR/kubeconfig): the admin's.`;

export const SECRETS: Kind = { group: '', version: 'v1', plural: 'secrets', kind: 'Secret', namespaced: true };
const RBAC = 'rbac.authorization.k8s.io';
const ROLE_BINDINGS: Kind = { group: RBAC, version: 'v1', plural: 'rolebindings', kind: 'RoleBinding', namespaced: true };
export const CLUSTER_ROLE_BINDINGS: Kind = { group: RBAC, version: 'v1', plural: 'clusterrolebindings', kind: 'ClusterRoleBinding', namespaced: false };

class UsageError extends Error {}

function check(err: string | undefined): void {
  if (err) throw new UsageError(err);
}

/** The kubeconfig of `user` with `token`, for the admin kubeconfig's cluster (server and CA). */
export function userKubeconfig(client: KovaClient, user: string, token: string, namespace = 'default'): string {
  const cluster = client.kc.getCurrentCluster()!;
  const c: Record<string, unknown> = { server: cluster.server };
  if (cluster.caData) c['certificate-authority-data'] = cluster.caData;
  else if (cluster.caFile) c['certificate-authority-data'] = readFileSync(cluster.caFile).toString('base64');
  if (cluster.skipTLSVerify) c['insecure-skip-tls-verify'] = true;
  const context = `${user}@kova`;
  return YAML.stringify({
    apiVersion: 'v1', kind: 'Config',
    clusters: [{ name: 'kova', cluster: c }],
    users: [{ name: user, user: { token } }],
    contexts: [{ name: context, context: { cluster: 'kova', user, namespace } }],
    'current-context': context,
  });
}

async function output(text: string, file: string | undefined): Promise<void> {
  if (!file) {
    process.stdout.write(text);
    return;
  }
  await writeFile(file, text, { mode: 0o600 });
  await chmod(file, 0o600); // an existing file keeps its mode on write
  process.stderr.write(`kova: kubeconfig written to ${file}\n`);
}

async function getUser(client: KovaClient, name: string): Promise<KObject> {
  const u = await client.get(SECRETS, USERS_NAMESPACE, userSecretName(name));
  if (!u || (u as { type?: string }).type !== USER_SECRET_TYPE) throw new UsageError(`user ${JSON.stringify(name)} not found`);
  return u;
}

/** A new token Secret for `user`; returns the token (shown once, never stored). */
export async function issueToken(client: KovaClient, name: string, owner: KObject): Promise<string> {
  const t = generateToken();
  await client.create(SECRETS, tokenSecret(name, owner.metadata.uid!, t.id, t.secret) as KObject & { metadata: { name: string } });
  return t.token;
}

async function tokensOf(client: KovaClient, name: string): Promise<KObject[]> {
  const list = await client.list(SECRETS, USERS_NAMESPACE, { labelSelector: `${USER_LABEL}=${name}` });
  return list.items.filter((s) => (s as { type?: string }).type === TOKEN_SECRET_TYPE);
}

const subject = (name: string) => ({ kind: 'User', apiGroup: RBAC, name });

/** Binds `role` to the user: cloud-admin cluster-wide, the others in `project`. Labeled so `kova user delete` finds them. */
async function bind(client: KovaClient, name: string, role: KovaRole, project: string | undefined): Promise<string> {
  const clusterRole = KOVA_ROLES[role];
  const metadata = { name: `${clusterRole}:${name}`, labels: { [USER_LABEL]: name } };
  const roleRef = { apiGroup: RBAC, kind: 'ClusterRole', name: clusterRole };
  if (role === 'cloud-admin') {
    await client.create(CLUSTER_ROLE_BINDINGS, { metadata, roleRef, subjects: [subject(name)] });
    return `clusterrolebinding ${metadata.name}`;
  }
  await client.create(ROLE_BINDINGS, { metadata: { ...metadata, namespace: project }, roleRef, subjects: [subject(name)] });
  return `rolebinding ${metadata.name} in ${project}`;
}

async function create(client: KovaClient, argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: { group: { type: 'string', multiple: true, default: [] }, project: { type: 'string' }, role: { type: 'string' }, output: { type: 'string', short: 'o' }, kubeconfig: { type: 'string' } },
  });
  if (positionals.length !== 1) throw new UsageError('kova user create takes one NAME');
  const name = positionals[0]!;
  check(userNameError(name));
  const groups = [...new Set(values.group!)];
  for (const g of groups) check(groupNameError(g));
  const role = values.role as KovaRole | undefined;
  if (role !== undefined && !(role in KOVA_ROLES)) throw new UsageError(`--role must be one of ${Object.keys(KOVA_ROLES).join(', ')}, got ${JSON.stringify(role)}`);
  const project = values.project;
  if (project !== undefined && !isDNS1123LabelOK(project)) throw new UsageError(`--project must be a namespace name (a DNS label), got ${JSON.stringify(project)}`);
  if (role && role !== 'cloud-admin' && !project) throw new UsageError(`--role ${role} needs --project P (the namespace it applies in)`);
  if (project && !role) throw new UsageError('--project needs --role R');
  if (project && role === 'cloud-admin') throw new UsageError('--role cloud-admin is cluster-wide: leave out --project');
  if (project && !(await client.get(NAMESPACES, undefined, project))) throw new UsageError(`project (namespace) ${JSON.stringify(project)} not found: kubectl create namespace ${project}`);

  try {
    await client.create(NAMESPACES, { metadata: { name: USERS_NAMESPACE } });
  } catch (e) {
    if (!isAlreadyExists(e)) throw e;
  }
  let owner: KObject;
  try {
    owner = await client.create(SECRETS, userSecret(name, groups) as KObject & { metadata: { name: string } });
  } catch (e) {
    if (isAlreadyExists(e)) throw new UsageError(`user ${JSON.stringify(name)} already exists (kova user token ${name} issues another token)`);
    throw e;
  }
  const token = await issueToken(client, name, owner);
  if (role) process.stderr.write(`kova: ${await bind(client, name, role, project)}: ${KOVA_ROLES[role]}\n`);
  process.stderr.write(`kova: user ${name} created\n`);
  await output(userKubeconfig(client, name, token, project), values.output);
}

async function token(client: KovaClient, argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { output: { type: 'string', short: 'o' }, kubeconfig: { type: 'string' } } });
  if (positionals.length !== 1) throw new UsageError('kova user token takes one NAME');
  const name = positionals[0]!;
  check(userNameError(name));
  const owner = await getUser(client, name);
  await output(userKubeconfig(client, name, await issueToken(client, name, owner)), values.output);
}

async function revoke(client: KovaClient, argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { token: { type: 'string' }, kubeconfig: { type: 'string' } } });
  if (positionals.length !== 1) throw new UsageError('kova user revoke takes one NAME');
  const name = positionals[0]!;
  check(userNameError(name));
  const tokens = await tokensOf(client, name);
  const id = values.token?.replace(/^kova-/, '').replace(/\..*$/, ''); // a whole token is accepted too
  const doomed = id === undefined ? tokens : tokens.filter((t) => t.metadata.name === tokenSecretName(id));
  if (id !== undefined && !doomed.length) throw new UsageError(`user ${JSON.stringify(name)} has no token ${JSON.stringify(id)}`);
  for (const t of doomed) await client.delete(SECRETS, USERS_NAMESPACE, t.metadata.name!);
  process.stderr.write(`kova: revoked ${doomed.length} token(s) of ${name}\n`);
}

async function remove(client: KovaClient, argv: string[]): Promise<void> {
  const { positionals } = parseArgs({ args: argv, allowPositionals: true, options: { kubeconfig: { type: 'string' } } });
  if (positionals.length !== 1) throw new UsageError('kova user delete takes one NAME');
  const name = positionals[0]!;
  check(userNameError(name));
  await getUser(client, name);
  // The record first: its tokens stop working at once; the garbage collector would delete them,
  // but they go now in case no controllers run.
  await client.delete(SECRETS, USERS_NAMESPACE, userSecretName(name), { propagationPolicy: 'Background' });
  for (const t of await tokensOf(client, name)) await client.delete(SECRETS, USERS_NAMESPACE, t.metadata.name!);
  const selector = { labelSelector: `${USER_LABEL}=${name}` };
  for (const [kind, ns] of [[ROLE_BINDINGS, undefined], [CLUSTER_ROLE_BINDINGS, undefined]] as const) {
    let items: KObject[];
    try {
      items = (await client.list(kind, ns, selector)).items;
    } catch (e) {
      if (isNotFound(e)) continue; // RBAC kinds not served
      throw e;
    }
    for (const b of items) await client.delete(kind, b.metadata.namespace, b.metadata.name!);
  }
  process.stderr.write(`kova: user ${name} deleted\n`);
}

async function list(client: KovaClient): Promise<void> {
  const secrets = (await client.list(SECRETS, USERS_NAMESPACE, { labelSelector: USER_LABEL })).items;
  const rows = [['NAME', 'GROUPS', 'TOKENS', 'CREATED']];
  const typed = (t: string) => secrets.filter((s) => (s as { type?: string }).type === t);
  const tokens = typed(TOKEN_SECRET_TYPE);
  for (const u of typed(USER_SECRET_TYPE)) {
    const name = u.metadata.labels?.[USER_LABEL] ?? '';
    const groups = Buffer.from((u as { data?: Record<string, string> }).data?.groups ?? '', 'base64').toString('utf8');
    const n = tokens.filter((t) => t.metadata.labels?.[USER_LABEL] === name).length;
    rows.push([name, groups || '<none>', String(n), u.metadata.creationTimestamp ?? '']);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) process.stdout.write(r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]! + 3) : c)).join('') + '\n');
}

/** Entry point of `kova user`; resolves with the exit code. */
export async function userCommand(argv: string[], kubeconfigFrom: (flag: string | undefined) => string): Promise<number> {
  const [sub, ...rest] = argv;
  // --kubeconfig may come anywhere; each subcommand's parser accepts it too.
  const { values } = parseArgs({ args: rest, allowPositionals: true, strict: false, options: { kubeconfig: { type: 'string' } } });
  const flag = typeof values.kubeconfig === 'string' ? values.kubeconfig : undefined;
  let client: KovaClient | undefined;
  try {
    if (!sub || sub === '-h' || sub === '--help' || sub === 'help') {
      process.stdout.write(USER_USAGE + '\n');
      return sub ? 0 : 2;
    }
    client = KovaClient.fromFile(kubeconfigFrom(flag), { userAgent: 'kova-cli', fieldManager: 'kova-cli' });
    switch (sub) {
      case 'create': await create(client, rest); break;
      case 'token': await token(client, rest); break;
      case 'revoke': await revoke(client, rest); break;
      case 'delete': await remove(client, rest); break;
      case 'list': await list(client); break;
      default: throw new UsageError(`unknown subcommand ${JSON.stringify(sub)}`);
    }
    return 0;
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    const usage = e instanceof UsageError || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'));
    process.stderr.write(`kova user: ${(e as Error).message}\n${usage ? `\n${USER_USAGE}\n` : ''}`);
    return usage ? 2 : 1;
  } finally {
    client?.close();
  }
}
