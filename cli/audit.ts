// `kova audit`: reads the audit log of a data directory (every API server process of that
// `kova up` writes there) and prints who did what: a table, or the Events as JSON lines.
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { AuditEvent } from '../apiserver/audit/event.js';
import { parseSince, readAuditLog } from '../apiserver/audit/reader.js';
import type { AuditFilter } from '../apiserver/audit/reader.js';

export const AUDIT_USAGE = 'kova audit [--since 1h|30m|RFC3339] [--user U] [--verb V] [--namespace N] [-o table|json] [--data-dir DIR]';

function resourceOf(e: AuditEvent): string {
  const r = e.objectRef;
  if (!r) return e.requestURI.split('?')[0]!;
  const gr = r.apiGroup ? `${r.resource}.${r.apiGroup}` : (r.resource ?? '');
  return r.subresource ? `${gr}/${r.subresource}` : gr;
}

function objectOf(e: AuditEvent): string {
  const r = e.objectRef;
  if (!r) return '';
  // A namespace's own requests are scoped to it (kube's objectRef): show it once.
  if (r.namespace && r.name) return r.resource === 'namespaces' && !r.apiGroup ? r.name : `${r.namespace}/${r.name}`;
  return r.name ?? (r.namespace ? `${r.namespace}/` : '');
}

function userOf(e: AuditEvent): string {
  return e.impersonatedUser ? `${e.user.username} (as ${e.impersonatedUser.username})` : e.user.username;
}

/** Columns padded like kubectl's tables (three spaces between columns). */
export function auditTable(events: AuditEvent[]): string {
  const rows = [['TIME', 'USER', 'VERB', 'RESOURCE', 'OBJECT', 'CODE']];
  for (const e of events) {
    rows.push([e.requestReceivedTimestamp.replace(/\.\d+Z$/, 'Z'), userOf(e), e.verb, resourceOf(e), objectOf(e), String(e.responseStatus?.code ?? '')]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('   ')).join('\n') + '\n';
}

export async function auditCommand(argv: string[], defaultDataDir: () => string, out: (s: string) => void = (s) => process.stdout.write(s)): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      since: { type: 'string' }, user: { type: 'string' }, verb: { type: 'string' }, namespace: { type: 'string', short: 'n' },
      output: { type: 'string', short: 'o', default: 'table' }, 'data-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    out(`usage: ${AUDIT_USAGE}\n`);
    return 0;
  }
  if (positionals.length) throw new Error(`unexpected argument ${JSON.stringify(positionals[0])}; usage: ${AUDIT_USAGE}`);
  if (values.output !== 'table' && values.output !== 'json') throw new Error(`-o must be table or json, got ${JSON.stringify(values.output)}`);
  const filter: AuditFilter = { user: values.user, verb: values.verb, namespace: values.namespace };
  if (values.since !== undefined) filter.since = parseSince(values.since);
  const dir = join(resolve(values['data-dir'] ?? defaultDataDir()), 'audit');
  const { events, skipped } = await readAuditLog(dir, filter);
  if (values.output === 'json') {
    out(events.map((e) => JSON.stringify(e) + '\n').join(''));
  } else if (events.length) {
    out(auditTable(events));
  } else {
    process.stderr.write(`no audit events in ${dir}${values.since || values.user || values.verb || values.namespace ? ' matching the filters' : ''}\n`);
  }
  if (skipped) process.stderr.write(`kova audit: skipped ${skipped} line(s) that are not audit Events\n`);
  return 0;
}
