// virsh as a subprocess (argument arrays only, never a shell), with libvirt's "no such domain"
// told apart from other failures, and the parsers for the few outputs the driver reads.
import { PowerState } from '../driver.js';
import { launch } from '../../lib/launcher.js';
import { shellLine, ShellCommandFailed, VirshShellPool } from './virsh-shell.js';

export class VirshError extends Error {
  constructor(
    readonly args: string[],
    readonly stderr: string,
    options?: { cause?: unknown },
  ) {
    super(`virsh ${args[0] ?? ''}: ${stderr.trim().replace(/^error: /gm, '').replace(/\n+/g, '; ') || 'failed'}`, options);
    this.name = 'VirshError';
  }
  /** libvirt's VIR_ERR_NO_DOMAIN, as virsh prints it. */
  get noDomain(): boolean {
    return /failed to get domain|Domain not found|no domain with matching/i.test(this.stderr);
  }
  /** The operation needs a running domain and it is not. */
  get notRunning(): boolean {
    return /domain is not running|not running/i.test(this.stderr);
  }
}

/**
 * Commands quick enough to share a long-lived shell (virsh-shell.ts). Waiting ones (`--wait`
 * jobs, migrations, event loops) keep a process of their own, as does every command when the
 * shells are off.
 */
const SHELL_COMMANDS = new Set([
  'attach-device', 'blockjob', 'blockresize', 'capabilities', 'define', 'destroy', 'detach-device', 'detach-disk', 'domblkinfo',
  'domblklist', 'dominfo', 'domjobabort', 'domjobinfo', 'domstate', 'domstats', 'domuuid', 'dumpxml', 'list', 'metadata',
  'nodeinfo', 'resume', 'setmaxmem', 'setmem', 'setvcpus', 'shutdown', 'start', 'suspend', 'undefine', 'version',
]);

export class Virsh {
  private shells?: VirshShellPool;

  /** `shells`: run quick commands in long-lived virsh shells instead of a process each. */
  constructor(
    readonly uri: string,
    private readonly o: { shells?: boolean } = {},
  ) {}

  async run(...args: string[]): Promise<string> {
    return this.runWith({}, ...args);
  }

  /** run() with a tighter time limit or output bound (killed, VirshError, when exceeded). */
  async runWith(limits: { timeoutMs?: number; maxBuffer?: number }, ...args: string[]): Promise<string> {
    const timeoutMs = limits.timeoutMs ?? 120_000;
    const maxBuffer = limits.maxBuffer ?? 16 << 20;
    const line = this.o.shells && SHELL_COMMANDS.has(args[0] ?? '') && !args.includes('--wait') ? shellLine(args) : undefined;
    if (line !== undefined) {
      this.shells ??= new VirshShellPool(this.uri);
      try {
        return await this.shells.run(line, { timeoutMs, maxBuffer });
      } catch (err) {
        if (err instanceof ShellCommandFailed) throw new VirshError(args, err.stderr, { cause: err });
        // ShellUnavailable: the command was not run, or its answer is not to be trusted; a process of its own.
      }
    }
    try {
      const { stdout } = await launch('virsh', ['-q', '-c', this.uri, ...args], { maxBuffer, timeout: timeoutMs });
      return stdout;
    } catch (err) {
      throw new VirshError(args, (err as { stderr?: string }).stderr ?? String(err), { cause: err });
    }
  }

  /** Ends the shells (a later command starts them again). */
  close(): void {
    this.shells?.close();
    this.shells = undefined;
  }
}

/** Maps `virsh domstate --reason` output, e.g. `shut off (crashed)`. */
export function parseDomState(out: string): PowerState {
  const m = /^\s*([a-z ]+?)\s*(?:\(([^)]*)\))?\s*$/m.exec(out);
  const state = m?.[1] ?? '';
  const reason = m?.[2] ?? '';
  switch (state) {
    case 'running':
    case 'in shutdown':
      return PowerState.Running;
    case 'paused':
    case 'pmsuspended':
      return PowerState.Paused;
    case 'shut off':
      return reason === 'crashed' ? PowerState.Crashed : PowerState.Shutdown;
    case 'crashed':
      return PowerState.Crashed;
    default:
      return PowerState.NoState;
  }
}

/** `Key: value` lines of dominfo/nodeinfo. */
export function parseKeyValues(out: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of out.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) map.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  return map;
}

/** The text of an XML attribute or element as libvirt wrote it, entities decoded. */
export function unescapeXml(s: string): string {
  return s.replace(/&(lt|gt|quot|apos|amp|#(\d+)|#x([0-9a-f]+));/gi, (_, name: string, dec?: string, hex?: string) => {
    if (dec) return String.fromCodePoint(Number(dec));
    if (hex) return String.fromCodePoint(parseInt(hex, 16));
    return ({ lt: '<', gt: '>', quot: '"', apos: "'", amp: '&' } as Record<string, string>)[name.toLowerCase()];
  });
}

/** Reads key and uid from `virsh metadata <dom> <KOVA_METADATA_NS>` output (any prefix). */
export function parseOwnerMetadata(out: string): { instanceKey: string; instanceUID: string; clusterID?: string } | undefined {
  const key = /<(?:\w+:)?key>([^<]*)<\/(?:\w+:)?key>/.exec(out)?.[1];
  const uid = /<(?:\w+:)?uid>([^<]*)<\/(?:\w+:)?uid>/.exec(out)?.[1];
  const cluster = /<(?:\w+:)?cluster>([^<]*)<\/(?:\w+:)?cluster>/.exec(out)?.[1];
  if (key === undefined || uid === undefined) return undefined;
  return { instanceKey: unescapeXml(key), instanceUID: unescapeXml(uid), ...(cluster === undefined ? {} : { clusterID: unescapeXml(cluster) }) };
}

export interface LifecycleLine {
  domain: string;
  event: string;
  detail: string;
}

/**
 * Parses one line of `virsh event --all --loop`, e.g. `event 'lifecycle' for domain 'd': Stopped Shutdown`
 * or `...: Shutdown Finished after host request` (the detail may have several words). Device
 * events come as event `device-removed` / `device-removal-failed` with the device alias as
 * detail (`event 'device-removed' for domain 'd': ua-<serial>`).
 */
export function parseEventLine(line: string): LifecycleLine | undefined {
  const m = /^event '([a-z0-9-]+)' for domain '(.*)'(?::\s*(\S+)?\s*(.*))?$/.exec(line.trim());
  if (!m) return undefined;
  if (m[1] === 'reboot') return { domain: m[2], event: 'Rebooted', detail: '' };
  if (m[1] === 'device-removed' || m[1] === 'device-removal-failed') return m[3] ? { domain: m[2], event: m[1], detail: m[3] } : undefined;
  if (m[1] !== 'lifecycle') return undefined;
  return { domain: m[2], event: m[3] ?? '', detail: m[4] ?? '' };
}

/** One <disk> of `virsh dumpxml` output. */
export interface DomainDisk {
  /** disk, cdrom, ... */
  device: string;
  /** vda, sda, ... */
  target: string;
  /** The file the domain writes (the top of the chain). */
  source?: string;
  /** The backing chain below source, top first (live XML only). */
  backing: string[];
  serial?: string;
  alias?: string;
  readOnly: boolean;
}

/** The disks of a domain's XML, in document order. libvirt writes attributes in single quotes. */
export function parseDomainDisks(xml: string): DomainDisk[] {
  const out: DomainDisk[] = [];
  for (const m of xml.matchAll(/<disk\b([^>]*)>([\s\S]*?)<\/disk>/g)) {
    const [, attrs, body] = m;
    const target = /<target\b[^>]*\bdev='([^']*)'/.exec(body)?.[1];
    if (target === undefined) continue;
    const files = [...body.matchAll(/<source\b[^>]*\bfile='([^']*)'/g)].map((f) => unescapeXml(f[1]));
    const serial = /<serial>([^<]*)<\/serial>/.exec(body)?.[1];
    const alias = /<alias\b[^>]*\bname='([^']*)'/.exec(body)?.[1];
    out.push({
      device: /\bdevice='([^']*)'/.exec(attrs)?.[1] ?? 'disk',
      target: unescapeXml(target),
      ...(files.length ? { source: files[0] } : {}),
      backing: files.slice(1),
      ...(serial !== undefined ? { serial: unescapeXml(serial) } : {}),
      ...(alias !== undefined ? { alias: unescapeXml(alias) } : {}),
      readOnly: /<readonly\s*\/>/.test(body),
    });
  }
  return out;
}
