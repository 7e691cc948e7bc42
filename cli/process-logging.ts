// Where each kova process's logs go. Every process logs JSON lines (pino: level, time, component,
// pid). A long-running component (`kova controllers`, `kova agent`, `kova components`, an API
// worker) writes them to stderr. `kova up` keeps the terminal for people: its progress lines stay
// plain text, and the JSON of itself and of its children goes to DATA_DIR/logs/<name>.log, one
// file per process role, each capped in size (see LogFile). A readable copy of the lines that
// matter (warnings and errors; everything with -v) goes to the terminal too.
import { closeSync, mkdirSync, openSync, renameSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { configureLogging } from '../lib/log.js';
import type { Level, Logger } from '../lib/log.js';

/** -v/--verbose and kube's klog verbosity --v=N (0 default; 2 adds a line per API request). */
export interface Verbosity {
  verbose: boolean;
  v: number;
}

export const VERBOSITY_FLAGS = {
  verbose: { type: 'boolean', short: 'v', default: false },
  v: { type: 'string', default: '0' },
} as const;

export function verbosity(values: { verbose?: boolean; v?: string }): Verbosity {
  const raw = values.v ?? '0';
  if (!/^\d{1,2}$/.test(raw) || Number(raw) > 10) throw new Error(`--v must be a whole number from 0 to 10 (klog verbosity), got ${JSON.stringify(raw)}`);
  return { verbose: !!values.verbose, v: Number(raw) };
}

/** The same flags again, for a child process. */
export function verbosityArgs(vb: Verbosity): string[] {
  return [...(vb.verbose ? ['--verbose'] : []), ...(vb.v ? [`--v=${vb.v}`] : [])];
}

/** -v or --v≥1 turns on debug: the components' internal events (what -v always showed). */
export function logLevel(vb: Verbosity): Level {
  const env = process.env.KOVA_LOG_LEVEL as Level | undefined;
  if (env && ['trace', 'debug', 'info', 'warn', 'error', 'fatal'].includes(env)) return env;
  return vb.verbose || vb.v >= 1 ? 'debug' : 'info';
}

/** The root logger of a component process: JSON lines on stderr (each line's component comes from componentLogger). */
export function logToStderr(vb: Verbosity): Logger {
  return configureLogging({ level: logLevel(vb) });
}

/** Size at which a log file is rotated: the file becomes NAME.log.1 (replacing the older one). */
export const LOG_FILE_MAX_BYTES = 20 * 1024 * 1024;
/** A line longer than this (a runaway message) is cut: a log must not hold a process's memory. */
const MAX_LINE = 64 * 1024;

/**
 * One capped log file: written synchronously (nothing is lost when kova up exits, and no buffer
 * grows behind a slow disk); at maxBytes it is renamed to NAME.1 and a new one starts, so a
 * file takes at most twice maxBytes on disk. kova up is its only writer (children's output comes
 * through pipes), so the rename cannot race another process.
 */
export class LogFile {
  private fd: number;
  private size: number;

  constructor(readonly path: string, private readonly maxBytes = LOG_FILE_MAX_BYTES) {
    this.fd = openSync(path, 'a', 0o600);
    this.size = statSync(path).size;
  }

  write(text: string): void {
    const bytes = Buffer.byteLength(text);
    if (this.size > 0 && this.size + bytes > this.maxBytes) this.rotate();
    try {
      writeSync(this.fd, text);
      this.size += bytes;
    } catch {
      // A full disk must not take the control plane down with it.
    }
  }

  private rotate(): void {
    try {
      closeSync(this.fd);
      renameSync(this.path, `${this.path}.1`);
    } catch {
      // keep writing to a fresh file either way
    }
    this.fd = openSync(this.path, 'a', 0o600);
    this.size = 0;
  }

  close(): void {
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
  }
}

const PINO_LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };
const RANK: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, dpanic: 50, panic: 60 };

interface ParsedLine {
  level: string;
  time: string;
  component?: string;
  msg: string;
}

/** The level, time, component and message of one JSON log line: pino's (kova) or zap's (etcd). */
function parse(line: string): ParsedLine | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const o = JSON.parse(line) as Record<string, unknown>;
    const level = typeof o.level === 'number' ? PINO_LEVELS[o.level] ?? 'info' : typeof o.level === 'string' ? o.level : 'info';
    const t = o.time ?? o.ts;
    const time = typeof t === 'number' ? new Date(t).toISOString() : typeof t === 'string' ? t : new Date().toISOString();
    const component = typeof o.component === 'string' ? o.component : undefined;
    return { level, time, component, msg: typeof o.msg === 'string' ? o.msg : line };
  } catch {
    return undefined;
  }
}

/** A readable terminal line: "12:00:01.123 WARN  controller/instance: message". */
function readable(p: ParsedLine, fallback: string): string {
  const t = p.time.length >= 23 ? p.time.slice(11, 23) : p.time;
  return `${t} ${p.level.toUpperCase().padEnd(5)} ${p.component ?? fallback}: ${p.msg}\n`;
}

/**
 * kova up's log files, DATA_DIR/logs/<name>.log: its own JSON (the API server, etcd supervision,
 * progress), its children's (piped in line by line), and etcd's. A line that is not JSON (a raw
 * stderr write) is wrapped into one so every file holds JSON lines only; it is also shown on the
 * terminal as it is, as it always was.
 */
export class LogFiles {
  private readonly files = new Map<string, LogFile>();

  constructor(readonly dir: string, private readonly opts: { verbose: boolean; terminal?: (line: string) => void; maxBytes?: number }) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  file(name: string): LogFile {
    let f = this.files.get(name);
    if (!f) {
      f = new LogFile(join(this.dir, `${name}.log`), this.opts.maxBytes);
      this.files.set(name, f);
    }
    return f;
  }

  /**
   * Writes one line (JSON or not) of `name`'s log; `component` names a line that carries none.
   * `terminalFrom`: the lowest level also shown on the terminal (without -v).
   */
  line(name: string, component: string, raw: string, terminalFrom: Level = 'warn'): void {
    const text = raw.length > MAX_LINE ? `${raw.slice(0, MAX_LINE)}…` : raw;
    const p = parse(text);
    if (p) {
      this.file(name).write(`${text}\n`);
      if (this.opts.verbose || (RANK[p.level] ?? 30) >= RANK[terminalFrom]!) this.terminal(readable(p, component));
      return;
    }
    // etcd may print a plain line before its logger is up; kova's processes write raw ones only
    // from last-resort handlers (an unhandled rejection), which must stay visible.
    this.file(name).write(`${JSON.stringify({ level: 30, time: Date.now(), component, msg: text })}\n`);
    this.terminal(`${text}\n`);
  }

  /** A pino destination: this process's own JSON lines into `name`. */
  destination(name: string, component: string): { write(s: string): void } {
    return { write: (s: string) => this.line(name, component, s.endsWith('\n') ? s.slice(0, -1) : s) };
  }

  /** Reads a child's output stream line by line into `name`. */
  pipe(stream: Readable, name: string, component: string): void {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buf += chunk;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const l = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (l.trim()) this.line(name, component, l);
      }
      if (buf.length > MAX_LINE) {
        this.line(name, component, buf);
        buf = '';
      }
    });
    stream.on('end', () => {
      if (buf.trim()) this.line(name, component, buf);
      buf = '';
    });
    stream.on('error', () => undefined);
  }

  private terminal(s: string): void {
    if (this.opts.terminal) this.opts.terminal(s);
    else process.stderr.write(s);
  }

  close(): void {
    for (const f of this.files.values()) f.close();
    this.files.clear();
  }
}

/**
 * kova up's logging: the root logger writes JSON into DATA_DIR/logs/apiserver.log (kova up is the
 * API server's process), and the returned LogFiles takes the children's and etcd's output.
 */
export function logToFiles(dataDir: string, vb: Verbosity): { logs: LogFiles; root: Logger } {
  const logs = new LogFiles(join(dataDir, 'logs'), { verbose: vb.verbose || vb.v >= 1 });
  const root = configureLogging({ level: logLevel(vb), destination: logs.destination('apiserver', 'kova-up') });
  return { logs, root };
}
