// `kova usage [-n PROJECT | -A] [--start TIME --end TIME] [-o json|yaml|table]`: usage per
// project, like `openstack usage list` (by default from the start of the current month until
// now), read from the metering API (GET /apis/metering.kova.dev/v1alpha1/[namespaces/NS/]usage).
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import YAML from 'yaml';
import type { ProjectUsage, Usage } from '../api/metering.js';
import { METERING_GROUP, METERING_VERSION } from '../api/kinds/usage.js';
import { KovaClient, StatusError } from '../client/client.js';
import { defaultDataDir } from './control-plane.js';

export const USAGE_USAGE = 'usage: kova usage [-n PROJECT | -A] [--start TIME] [--end TIME] [-o json|yaml|table] [--kubeconfig F]\n'
  + '  TIME is RFC 3339 (2026-05-01T00:00:00Z) or a UTC date (2026-05-01); default: the start of this month until now';

/** RFC 3339 as the API wants it; a bare date means its UTC midnight. */
export function cliTime(flag: string, v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  const t = /^\d{4}-\d{2}-\d{2}$/.test(v) ? `${v}T00:00:00Z` : v;
  if (!Number.isFinite(Date.parse(t))) throw new Error(`--${flag} must be an RFC 3339 time or a date (2026-05-01), got ${JSON.stringify(v)}`);
  return t;
}

/** The usage API path of a project, or of every one. */
export function usagePath(namespace: string | undefined): string {
  const base = `/apis/${METERING_GROUP}/${METERING_VERSION}`;
  return namespace === undefined ? `${base}/usage` : `${base}/namespaces/${encodeURIComponent(namespace)}/usage`;
}

const fixed = (n: number) => n.toFixed(2);
const MIB = 2 ** 20;

/** One line per project, the columns of `openstack usage list` plus volumes and floating IPs. */
export function usageTable(u: Usage): string {
  const header = ['PROJECT', 'SERVERS', 'RAM GiB-HOURS', 'CPU HOURS', 'DISK GiB-HOURS', 'VOLUME GiB-HOURS', 'FLOATING IP HOURS', 'NET RX MiB', 'NET TX MiB'];
  const row = (p: ProjectUsage) => [p.namespace, String(p.instances.length), fixed(p.totals.memoryGiBHours), fixed(p.totals.vcpuHours),
    fixed(p.totals.diskGiBHours), fixed(p.totals.volumeGiBHours), fixed(p.totals.floatingIPHours),
    fixed((p.totals.networkReceiveBytes ?? 0) / MIB), fixed((p.totals.networkTransmitBytes ?? 0) / MIB)];
  const rows = [header, ...u.projects.map(row)];
  const widths = header.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('   ').trimEnd());
  return `Usage from ${u.start} to ${u.end}:\n${lines.join('\n')}\n`;
}

/** The context's namespace of a kubeconfig, else `default` (as kubectl). */
function contextNamespace(path: string): string {
  try {
    const kc = new KubeConfig();
    kc.loadFromFile(path);
    return kc.getContextObject(kc.getCurrentContext())?.namespace || 'default';
  } catch {
    return 'default';
  }
}

export async function usageCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: {
      namespace: { type: 'string', short: 'n' }, 'all-namespaces': { type: 'boolean', short: 'A', default: false },
      start: { type: 'string' }, end: { type: 'string' }, output: { type: 'string', short: 'o', default: 'table' },
      kubeconfig: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE_USAGE}\n`);
    return;
  }
  if (positionals.length) throw new Error(`unexpected argument ${JSON.stringify(positionals[0])}\n${USAGE_USAGE}`);
  if (values.namespace !== undefined && values['all-namespaces']) throw new Error(`-n and -A exclude each other\n${USAGE_USAGE}`);
  const output = values.output!;
  if (!['json', 'yaml', 'table'].includes(output)) throw new Error(`-o must be json, yaml or table, got ${JSON.stringify(output)}`);
  const kubeconfig = values.kubeconfig ?? process.env.KUBECONFIG?.split(':')[0] ?? join(defaultDataDir(), 'kubeconfig');
  const namespace = values['all-namespaces'] ? undefined : values.namespace ?? contextNamespace(kubeconfig);
  const client = KovaClient.fromFile(kubeconfig, { userAgent: 'kova-cli' });
  try {
    const u = await client.request<Usage>({ method: 'GET', path: usagePath(namespace), query: { start: cliTime('start', values.start), end: cliTime('end', values.end) } });
    if (output === 'json') process.stdout.write(`${JSON.stringify(u, null, 2)}\n`);
    else if (output === 'yaml') process.stdout.write(YAML.stringify(u));
    else process.stdout.write(usageTable(u));
  } catch (e) {
    if (e instanceof StatusError) throw new Error(e.message);
    throw e;
  } finally {
    client.close();
  }
}
