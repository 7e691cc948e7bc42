// Long-lived `virsh` shells for the driver's short commands. Starting a virsh process and
// connecting it to libvirtd costs ~20 ms of CPU on a small host, more than most commands take
// once connected; the agent runs several per reconcile (state, live and persistent XML, then
// the action). A shell is virsh's interactive mode with commands on stdin; each command is
// followed by `echo <token>` and `echo --err <token>`, so its output is what stdout says up to
// the first marker, and its error what stderr says up to the second. A token is random per
// shell and numbered per command, so no output can fake one.
//
// Arguments are quoted for virsh's own command parser (single quotes: everything literal up to
// the next quote); one that cannot be quoted (a quote, a control character, non-ASCII) is not
// sent to a shell: the caller runs a one-off virsh instead (Virsh.runWith). So does a command
// whose shell lost its libvirt connection (libvirtd restarted): virsh reconnects lazily and
// reports the loss on some later command, which must not be mistaken for that command's error.
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dieWithParent } from '../../lib/parent-death.js';

/** Why a shell could not answer: the caller runs the command another way. */
export class ShellUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShellUnavailable';
  }
}

/** A command that ran in a shell and failed: what virsh wrote to stderr for it. */
export class ShellCommandFailed extends Error {
  constructor(readonly stderr: string) {
    super(stderr);
    this.name = 'ShellCommandFailed';
  }
}

/** The command line for virsh's parser, or undefined when an argument cannot be quoted safely. */
export function shellLine(args: readonly string[]): string | undefined {
  if (args.length === 0) return undefined;
  const quoted: string[] = [];
  for (const a of args) {
    // Printable ASCII only: readline acts on control bytes, and a quote would end the quoting.
    if (!/^[\x20-\x26\x28-\x7e]*$/.test(a)) return undefined;
    quoted.push(`'${a}'`);
  }
  return quoted.join(' ');
}

/** Lost connections, which virsh may report on whichever command comes next. */
const CONNECTION_LOST = /Disconnected from|end of file while reading data|Failed to reconnect|no valid connection|not connected to the hypervisor|Failed to connect socket|Cannot recv data|Cannot write data/i;

interface Pending {
  line: string;
  token: string;
  timer: NodeJS.Timeout;
  maxBuffer: number;
  resolve: (out: string) => void;
  reject: (err: Error) => void;
}

/** One virsh process in interactive mode; one command at a time. */
export class VirshShell {
  private readonly child: ChildProcess;
  private readonly tokenBase = randomBytes(12).toString('hex');
  private seq = 0;
  private out = '';
  private err = '';
  private current?: Pending;
  private outDone = false;
  private errDone = false;
  private dead = false;
  /** When the last command finished, for the pool's idle reaping. */
  idleSince = Date.now();

  constructor(
    uri: string,
    private readonly onExit: (shell: VirshShell) => void,
  ) {
    // TERM=dumb: readline echoes each line as it reads it, with no terminal control sequences.
    const [cmd, args] = dieWithParent('virsh', ['-q', '-c', uri]);
    this.child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, TERM: 'dumb', LC_ALL: 'C' } });
    this.child.stdout!.setEncoding('utf8').on('data', (s: string) => this.onOut(s));
    this.child.stderr!.setEncoding('utf8').on('data', (s: string) => this.onErr(s));
    this.child.stdin!.on('error', () => this.kill('its input closed'));
    this.child.on('error', (e) => this.kill(`virsh failed to start: ${e.message}`));
    this.child.on('exit', (code, signal) => this.kill(`virsh exited (${signal ?? code})`));
  }

  get alive(): boolean {
    return !this.dead;
  }

  /** Runs one command line (from shellLine). Rejects ShellUnavailable when the shell broke. */
  run(line: string, o: { timeoutMs: number; maxBuffer: number }): Promise<string> {
    if (this.dead) return Promise.reject(new ShellUnavailable('virsh shell is gone'));
    if (this.current) return Promise.reject(new Error('virsh shell is busy'));
    const token = `KOVA${this.tokenBase}${++this.seq}`;
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => this.kill(`timed out after ${Math.round(o.timeoutMs / 1000)} s`, true), o.timeoutMs);
      this.current = { line, token, timer, maxBuffer: o.maxBuffer, resolve, reject };
      this.outDone = this.errDone = false;
      this.child.stdin!.write(`${line}\necho ${token}\necho --err ${token}\n`);
      // Output that arrived before this command (the previous markers' echo) is looked past by token.
    });
  }

  close(): void {
    this.kill('closed');
  }

  // Each chunk is searched for the marker from just before where it starts (a marker may span
  // two chunks), not from the start of the buffer: a large output stays linear to read.
  private onOut(s: string): void {
    const from = this.out.length;
    this.out += s;
    const c = this.current;
    if (!c || this.outDone) return this.bound();
    const marker = `echo ${c.token}\n${c.token}`;
    if (this.out.indexOf(marker, Math.max(0, from - marker.length)) >= 0) {
      this.outDone = true;
      this.settle();
    } else this.bound();
  }

  private onErr(s: string): void {
    const from = this.err.length;
    this.err += s;
    const c = this.current;
    if (!c || this.errDone) return this.bound();
    const marker = `${c.token}\n`;
    if (this.err.indexOf(marker, Math.max(0, from - marker.length)) >= 0) {
      this.errDone = true;
      this.settle();
    } else this.bound();
  }

  /** Every buffer has a bound: a command printing more than it may kills the shell. */
  private bound(): void {
    const limit = this.current?.maxBuffer ?? 1 << 20;
    if (this.out.length > limit + 4096 || this.err.length > limit + 4096) this.kill('output exceeded its bound', true);
  }

  private settle(): void {
    const c = this.current;
    if (!c || !this.outDone || !this.errDone) return;
    this.current = undefined;
    clearTimeout(c.timer);
    this.idleSince = Date.now();
    const outEnd = this.out.indexOf(`echo ${c.token}\n${c.token}`);
    let stdout = this.out.slice(0, outEnd);
    // Readline echoed the command line before its output; the prompt before the marker's echo is ours too.
    const echoed = stdout.indexOf(`${c.line}\n`);
    stdout = echoed >= 0 ? stdout.slice(echoed + c.line.length + 1) : stdout;
    stdout = stdout.replace(/(?:virsh # )+$/, '');
    if (stdout !== '' && !stdout.endsWith('\n')) stdout += '\n';
    this.out = this.out.slice(outEnd + `echo ${c.token}\n${c.token}`.length);
    const errEnd = this.err.indexOf(`${c.token}\n`);
    // stderr: `error: <token>` is the marker; everything before it belongs to this command.
    const stderr = this.err.slice(0, errEnd).replace(/error: $/, '');
    this.err = this.err.slice(errEnd + c.token.length + 1);
    if (CONNECTION_LOST.test(stderr)) {
      this.kill('its libvirt connection was lost');
      c.reject(new ShellUnavailable(stderr.trim()));
      return;
    }
    if (/^error: /m.test(stderr)) c.reject(new ShellCommandFailed(stderr));
    else c.resolve(stdout);
  }

  /** Ends the process; the command in flight fails (a timeout or overflow is the command's own failure). */
  private kill(why: string, commandFault = false): void {
    const c = this.current;
    this.current = undefined;
    if (c) {
      clearTimeout(c.timer);
      c.reject(commandFault ? new ShellCommandFailed(`error: ${why}`) : new ShellUnavailable(`virsh shell: ${why}`));
    }
    if (this.dead) return;
    this.dead = true;
    this.child.stdin!.end();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    this.onExit(this);
  }
}

/**
 * Up to `max` shells on one connection URI: a command takes an idle shell, starts another
 * when all are busy, or waits its turn (FIFO). Shells idle for `idleMs` are closed, one is kept.
 */
export class VirshShellPool {
  private readonly shells = new Set<VirshShell>();
  /** Started shells no command holds, most recently used last. */
  private readonly idle: VirshShell[] = [];
  private readonly waiting: Array<(s: VirshShell | undefined) => void> = [];
  private readonly reaper: NodeJS.Timeout;
  private closed = false;

  constructor(
    readonly uri: string,
    private readonly o: { max?: number; idleMs?: number; maxWaiting?: number } = {},
  ) {
    this.reaper = setInterval(() => this.reap(), Math.max(1000, (o.idleMs ?? 30_000) / 2));
    this.reaper.unref();
  }

  /** How many shells run now (for tests). */
  get size(): number {
    return this.shells.size;
  }

  /** Runs a command line in a shell; ShellUnavailable when no shell can take it. */
  async run(line: string, o: { timeoutMs: number; maxBuffer: number }): Promise<string> {
    const shell = await this.take();
    if (!shell) throw new ShellUnavailable('virsh shells are closed or too many commands wait');
    try {
      return await shell.run(line, o);
    } finally {
      this.release(shell);
    }
  }

  close(): void {
    this.closed = true;
    clearInterval(this.reaper);
    for (const s of this.shells) s.close();
    this.idle.length = 0;
    for (const w of this.waiting.splice(0)) w(undefined);
  }

  /** A shell held by the caller alone until release(). */
  private take(): Promise<VirshShell | undefined> {
    if (this.closed) return Promise.resolve(undefined);
    const s = this.idle.pop();
    if (s) return Promise.resolve(s);
    if (this.shells.size < (this.o.max ?? 3)) return Promise.resolve(this.start());
    if (this.waiting.length >= (this.o.maxWaiting ?? 256)) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private start(): VirshShell {
    const s = new VirshShell(this.uri, (gone) => {
      this.shells.delete(gone);
      const i = this.idle.indexOf(gone);
      if (i >= 0) this.idle.splice(i, 1);
    });
    this.shells.add(s);
    return s;
  }

  private release(shell: VirshShell): void {
    const next = this.waiting.shift();
    if (shell.alive && !this.closed) {
      if (next) next(shell);
      else this.idle.push(shell);
    } else if (next) next(this.closed ? undefined : this.start()); // it died with its command
  }

  private reap(): void {
    const idleMs = this.o.idleMs ?? 30_000;
    // The most recently used shell stays; older idle ones go once idle long enough.
    for (const s of this.idle.slice(0, -1)) if (Date.now() - s.idleSince > idleMs) s.close();
  }
}
