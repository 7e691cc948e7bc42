// `kova migrate NAME [--to HOST] ...`: creates a Migration of the Instance NAME (generateName
// `<NAME>-`, as `virtctl migrate` creates a VirtualMachineInstanceMigration) and prints its name;
// with --wait it follows the Migration (a line per phase and progress change) until it
// Succeeded (exit 0) or Failed (exit 1, with the Failed condition's reason and message).
// Deleting the Migration aborts it: `kubectl delete mig/NAME`.
import { parseArgs } from 'node:util';
import { isDNS1123Label } from '../api/name-validation.js';
import { isQuantity, parseQuantity } from '../api/quantity.js';
import { findCondition } from '../api/conditions.js';
import { MIGRATIONS, MigrationConditions, migrationFinished } from '../api/kinds/migration.js';
import type { Migration, MigrationSpec } from '../api/kinds/migration.js';
import { API_VERSION } from '../api/kinds/meta.js';
import { KovaClient } from '../client/client.js';
import type { ApiClient, KObject, WatchHandle } from '../client/client.js';

export const MIGRATE_USAGE = 'usage: kova migrate NAME [-n NAMESPACE] [--to HOST] [--cold] [--post-copy] [--auto-converge] [--bandwidth QUANTITY] [--wait] [--timeout DURATION] [--kubeconfig F]';

export interface MigrateRequest {
  namespace: string;
  instance: string;
  targetHost?: string;
  cold?: boolean;
  postCopy?: boolean;
  autoConverge?: boolean;
  /** Bytes per second, a Kubernetes quantity (64Mi). */
  bandwidth?: string;
}

/** Creates the Migration; the API server answers a 422 naming the field when it cannot be made. */
export async function createMigration(client: ApiClient, r: MigrateRequest): Promise<Migration> {
  const spec: MigrationSpec = { instance: r.instance };
  if (r.targetHost) spec.targetHost = r.targetHost;
  if (r.cold) spec.mode = 'Cold';
  if (r.postCopy) spec.allowPostCopy = true;
  if (r.autoConverge) spec.allowAutoConverge = true;
  if (r.bandwidth !== undefined) spec.bandwidth = r.bandwidth;
  return client.create<Migration>(MIGRATIONS, { apiVersion: API_VERSION, kind: 'Migration', metadata: { generateName: `${r.instance}-`, namespace: r.namespace }, spec });
}

/** `90s`, `10m`, `1h30m`, `500ms` (Go's time.ParseDuration units up to hours) in milliseconds. */
export function parseDuration(v: string): number {
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  if (!/^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/.test(v)) throw new Error(`--timeout must be a duration such as 90s, 10m or 1h30m, got ${JSON.stringify(v)}`);
  let ms = 0;
  for (const m of v.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) ms += Number(m[1]) * units[m[2]!]!;
  if (ms <= 0) throw new Error(`--timeout must be positive, got ${JSON.stringify(v)}`);
  return ms;
}

/** Bytes as people read them: 512 B, 40.0 MiB, 1.2 GiB. */
export function humanBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** One line saying where a migration is; the same line for the same state, so repeats can be skipped. */
export function describeMigration(m: Migration): string {
  const s = m.status ?? {};
  const phase = s.phase ?? 'Pending';
  const route = s.sourceHost ? (s.targetHost ? ` ${s.sourceHost} → ${s.targetHost}` : ` from ${s.sourceHost}`) : '';
  const name = m.metadata.name;
  if (phase === 'Succeeded') {
    const details = [s.mode, s.storage, s.downtimeMs !== undefined ? `downtime ${s.downtimeMs} ms` : undefined, s.dataProcessedBytes !== undefined ? `${humanBytes(s.dataProcessedBytes)} sent` : undefined].filter(Boolean);
    return `${name}: Succeeded:${route}${details.length ? ` (${details.join(', ')})` : ''}`;
  }
  if (phase === 'Failed') {
    const failed = findCondition(s.conditions, MigrationConditions.Failed);
    const why = failed ? [failed.reason, failed.message].filter(Boolean).join(': ') : '';
    return `${name}: Failed:${route}${why ? ` ${why}` : ''}`;
  }
  let progress = '';
  if (phase === 'Running' && s.progress !== undefined) {
    const sent = s.dataProcessedBytes !== undefined && s.dataTotalBytes ? ` (${humanBytes(s.dataProcessedBytes)} of ${humanBytes(s.dataTotalBytes)})` : '';
    progress = ` ${s.progress}%${sent}`;
  }
  return `${name}: ${phase}${route}${progress}${m.metadata.deletionTimestamp ? ' (aborting)' : ''}`;
}

export type WaitOutcome = 'Succeeded' | 'Failed' | 'Deleted' | 'TimedOut';

/**
 * Follows the Migration until it ends, printing a line per change of describeMigration(): a
 * read, then a watch of that one object from the read's resourceVersion; a watch that ends or
 * expires (410) starts over with a read, so nothing is missed and nothing hangs on a dead one.
 */
export async function waitForMigration(client: ApiClient, namespace: string, name: string, opts: { timeoutMs?: number; print: (line: string) => void }): Promise<{ outcome: WaitOutcome; migration?: Migration }> {
  const deadline = opts.timeoutMs ? Date.now() + opts.timeoutMs : Infinity;
  let last = '';
  let latest: Migration | undefined;
  const report = (m: Migration): WaitOutcome | undefined => {
    latest = m;
    const line = describeMigration(m);
    if (line !== last) opts.print(line);
    last = line;
    if (!migrationFinished(m)) return undefined;
    return m.status?.phase === 'Succeeded' ? 'Succeeded' : 'Failed';
  };
  for (;;) {
    if (Date.now() >= deadline) return { outcome: 'TimedOut', migration: latest };
    const m = await client.get<Migration>(MIGRATIONS, namespace, name);
    if (!m) return { outcome: 'Deleted', migration: latest };
    const done = report(m);
    if (done) return { outcome: done, migration: m };
    let handle: WatchHandle | undefined;
    let timer: NodeJS.Timeout | undefined;
    const next = await new Promise<WaitOutcome | 'again'>((resolve) => {
      if (deadline !== Infinity) timer = setTimeout(() => resolve('TimedOut'), deadline - Date.now());
      client.watch(MIGRATIONS, namespace, { resourceVersion: m.metadata.resourceVersion, fieldSelector: `metadata.name=${name}` }, (type, obj: KObject) => {
        if (type === 'ERROR') return resolve('again'); // e.g. 410 Gone: read again
        if (type === 'DELETED') return resolve('Deleted');
        if (type === 'ADDED' || type === 'MODIFIED') {
          const out = report(obj as Migration);
          if (out) resolve(out);
        }
      }, () => resolve('again')).then((h) => (handle = h), () => resolve('again'));
    });
    clearTimeout(timer);
    handle?.abort();
    if (next !== 'again') return { outcome: next, migration: latest };
    await new Promise((r) => setTimeout(r, 200)); // a server going away: do not spin
  }
}

/** Entry point of `kova migrate`; resolves with the exit code. */
export async function migrateCommand(argv: string[], kubeconfigFrom: (flag: string | undefined) => string): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      namespace: { type: 'string', short: 'n', default: 'default' },
      to: { type: 'string' },
      cold: { type: 'boolean', default: false },
      'post-copy': { type: 'boolean', default: false },
      'auto-converge': { type: 'boolean', default: false },
      bandwidth: { type: 'string' },
      wait: { type: 'boolean', default: false },
      timeout: { type: 'string' },
      kubeconfig: { type: 'string' },
    },
  });
  if (positionals.length !== 1) throw new Error(MIGRATE_USAGE);
  const [instance] = positionals as [string];
  const namespace = values.namespace!;
  for (const [what, v] of [['NAME', instance], ['--namespace', namespace], ['--to', values.to]] as const) {
    if (v !== undefined && isDNS1123Label(v).length) throw new Error(`${what} must be a DNS label (lowercase letters, digits, '-'), got ${JSON.stringify(v)}`);
  }
  if (values.bandwidth !== undefined && (!isQuantity(values.bandwidth) || parseQuantity(values.bandwidth) <= 0)) {
    throw new Error(`--bandwidth must be a quantity of bytes per second such as 64Mi or 1Gi, got ${JSON.stringify(values.bandwidth)}`);
  }
  if (values.cold && (values['post-copy'] || values['auto-converge'])) throw new Error('--post-copy and --auto-converge are for live migration, not with --cold');
  if (values.timeout !== undefined && !values.wait) throw new Error('--timeout is how long --wait waits: give --wait too');
  const timeoutMs = values.timeout === undefined ? undefined : parseDuration(values.timeout);

  const client = KovaClient.fromFile(kubeconfigFrom(values.kubeconfig), { userAgent: 'kova-cli', fieldManager: 'kova-cli' });
  try {
    const m = await createMigration(client, {
      namespace, instance, targetHost: values.to, cold: values.cold, postCopy: values['post-copy'], autoConverge: values['auto-converge'], bandwidth: values.bandwidth,
    });
    const name = m.metadata.name!;
    process.stdout.write(`${name}\n`);
    if (!values.wait) return 0;
    const { outcome, migration } = await waitForMigration(client, namespace, name, { timeoutMs, print: (line) => process.stdout.write(`${line}\n`) });
    switch (outcome) {
      case 'Succeeded':
        return 0;
      case 'Failed':
        return 1;
      case 'Deleted':
        process.stderr.write(`kova: migration ${namespace}/${name} was deleted before it ended (aborted); instance ${instance} stays where it was${migration?.status?.sourceHost ? `, on ${migration.status.sourceHost}` : ''}\n`);
        return 1;
      case 'TimedOut':
        process.stderr.write(`kova: timed out after ${values.timeout} waiting for migration ${namespace}/${name} (phase ${migration?.status?.phase ?? 'Pending'}); it goes on: kubectl delete migration ${name} -n ${namespace} aborts it\n`);
        return 1;
    }
  } finally {
    client.close();
  }
}
