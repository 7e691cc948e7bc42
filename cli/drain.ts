// `kova drain HOST [--wait] [--timeout D]` and `kova uncordon HOST` (also `kubectl kova drain`):
// host maintenance as the declarative change the maintenance controller acts on
// (Host.spec.maintenance), like `kubectl drain` / `kubectl uncordon` for Nodes. With --wait,
// drain follows the Host's Drained condition and prints each change until it is True.
import { parseArgs } from 'node:util';
import { HOSTS } from '../api/kinds/index.js';
import type { Host } from '../api/kinds/index.js';
import { findCondition } from '../api/conditions.js';
import { isDNS1123LabelOK } from '../api/name-validation.js';
import { KovaClient } from '../client/client.js';
import type { ApiClient } from '../client/client.js';
import { DRAINED_CONDITION } from '../controllers/host/maintenance.js';

export const DRAIN_USAGE = 'usage: kova drain HOST [--wait] [--timeout D] [--kubeconfig F]\n       kova uncordon HOST [--kubeconfig F]';

const POLL_MS = 500;

/** A Go-style duration ("90s", "5m", "1h30m", "0" for none) in milliseconds. */
export function parseDuration(s: string): number {
  if (s === '0') return 0;
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(s)) throw new Error(`--timeout must be a duration such as 90s, 10m or 1h, got ${JSON.stringify(s)}`);
  let ms = 0;
  for (const [, n, , u] of s.matchAll(/(\d+(\.\d+)?)(ms|s|m|h)/g)) ms += Number(n) * unit[u];
  return Math.round(ms);
}

/** Sets spec.maintenance; returns a one-line summary. */
export async function drainHost(client: ApiClient, name: string): Promise<string> {
  const host = await client.get<Host>(HOSTS, undefined, name);
  if (!host) throw new Error(`host ${name} not found`);
  if (host.spec?.maintenance === true) return `host ${name}: already in maintenance`;
  await client.mergePatch(HOSTS, undefined, name, { spec: { maintenance: true } });
  return `host ${name}: maintenance on: cordoned, its instances are migrated off`;
}

/** Clears spec.maintenance and the cordon (kubectl uncordon: schedulable again); running Migrations finish. */
export async function uncordonHost(client: ApiClient, name: string): Promise<string> {
  const host = await client.get<Host>(HOSTS, undefined, name);
  if (!host) throw new Error(`host ${name} not found`);
  if (host.spec?.maintenance !== true && host.spec?.unschedulable !== true) return `host ${name}: already schedulable`;
  await client.mergePatch(HOSTS, undefined, name, { spec: { maintenance: false, unschedulable: false } });
  return `host ${name}: schedulable${host.spec?.maintenance === true ? ', maintenance off (running migrations finish)' : ''}`;
}

/**
 * Follows the Drained condition until it is True: prints each new message; fails when
 * maintenance is cleared meanwhile or `timeoutMs` (0: none) passes.
 */
export async function waitDrained(client: ApiClient, name: string, timeoutMs: number, print: (line: string) => void, signal?: AbortSignal): Promise<void> {
  const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : Infinity;
  let last = '';
  for (;;) {
    const host = await client.get<Host>(HOSTS, undefined, name, signal);
    if (!host) throw new Error(`host ${name} was deleted`);
    const c = findCondition(host.status?.conditions, DRAINED_CONDITION);
    const line = c ? `${c.status === 'True' ? 'drained' : c.reason ?? 'Draining'}: ${c.message ?? ''}` : 'waiting for the maintenance controller';
    if (line !== last) print(`host ${name}: ${line}`);
    last = line;
    if (c?.status === 'True') return;
    if (host.spec?.maintenance !== true) throw new Error(`host ${name}: maintenance was cleared before the host was drained`);
    if (Date.now() >= deadline) throw new Error(`host ${name}: not drained after ${timeoutMs / 1000} s (${line})`);
    await new Promise((r) => setTimeout(r, Math.min(POLL_MS, Math.max(0, deadline - Date.now()))));
  }
}

/** `kova drain|uncordon ...`; returns the exit code. */
export async function drainCommand(verb: 'drain' | 'uncordon', argv: string[], kubeconfigFrom: (flag: string | undefined) => string): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true,
    options: { kubeconfig: { type: 'string' }, wait: { type: 'boolean', default: false }, timeout: { type: 'string', default: '0' }, help: { type: 'boolean', short: 'h', default: false } },
  });
  if (values.help) {
    process.stdout.write(`${DRAIN_USAGE}\n`);
    return 0;
  }
  if (positionals.length !== 1 || (verb === 'uncordon' && (values.wait || values.timeout !== '0'))) throw new Error(DRAIN_USAGE);
  const name = positionals[0];
  if (!isDNS1123LabelOK(name)) throw new Error(`host name must be a DNS label, got ${JSON.stringify(name)}`);
  const timeoutMs = parseDuration(values.timeout!);
  const say = (line: string) => process.stdout.write(`kova: ${line}\n`);
  const client = KovaClient.fromFile(kubeconfigFrom(values.kubeconfig), { userAgent: 'kova-cli', fieldManager: 'kova-cli' });
  try {
    if (verb === 'uncordon') {
      say(await uncordonHost(client, name));
      return 0;
    }
    say(await drainHost(client, name));
    if (values.wait) await waitDrained(client, name, timeoutMs, say);
    return 0;
  } finally {
    client.close();
  }
}
