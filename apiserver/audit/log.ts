// The audit log: audit.k8s.io/v1 Events as JSON lines in DIR/audit/audit.log, rotated by size
// into audit-<time>-<pid>.log (kube-apiserver's log backend names its backups the same way).
//
// Several API server processes share one file. Each appends whole lines with O_APPEND, one
// write() per batch: Linux holds the file's lock for the whole write to a regular file, so
// lines of different processes never interleave. Rotation is a rename, done by the process that
// finds the file over the limit, only while the name still points at the file it wrote to
// (another may have rotated first); the others notice the new file by its inode within a
// second and reopen, so their last lines land at the end of the rotated file. Retention prunes
// the oldest backups beyond `maxBackups`, whoever rotated. No fsync: the page cache is enough
// for an audit trail of a process that may crash, and an fsync per request would halve writes.
//
// record() never blocks or throws: lines wait in a bounded buffer and are written together
// every BATCH_MS (or once BATCH_BYTES wait), so the log costs the API a few writes a second,
// not one per request; a full buffer drops lines and counts them (logged at most every 10 s).
// A line is encoded into the batch's buffer as it is recorded: a string kept until the write
// would outlive the young generation and burden the API server's garbage collector.
// The file's size is tracked from this process's writes and re-read with the periodic check,
// so a write is one write(), with no stat.
import { mkdir, chmod, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Admission, AuditEntry, AuditSink } from '../auth/hooks.js';
import type { RequestAttributes } from '../auth/types.js';
import { auditEvent } from './event.js';

export const AUDIT_FILE = 'audit.log';
/** Rotated files: audit-2026-12-05T01-10-44.123-4242.log (sortable by name). */
export const ROTATED_FILE = /^audit-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}-\d+\.log$/;

export interface AuditLogOptions {
  /** The directory of the log (DATA_DIR/audit), made mode 700. */
  dir: string;
  /** Size at which audit.log is rotated (default 100 MiB). */
  maxFileBytes?: number;
  /** Rotated files kept (default 10); the oldest are deleted. */
  maxBackups?: number;
  /** Bytes of lines waiting for the disk before new ones are dropped (default 16 MiB). */
  maxBufferBytes?: number;
  log?: (msg: string) => void;
}

const MiB = 1024 * 1024;
/** How often a writer checks that audit.log is still the file it has open. */
const REOPEN_CHECK_MS = 1000;
/** How long a recorded line may wait for its batch, and how many bytes make a batch sooner. */
const BATCH_MS = 50;
const BATCH_BYTES = 256 * 1024;
const DROP_LOG_MS = 10_000;

interface Batch {
  buf: Buffer;
  lines: number;
}

export class AuditLog implements AuditSink {
  readonly path: string;
  /** Lines written, dropped (buffer full or a failed write), rotations done, write errors. */
  readonly stats = { written: 0, dropped: 0, rotations: 0, errors: 0 };
  private readonly maxFileBytes: number;
  private readonly maxBackups: number;
  private readonly maxBufferBytes: number;
  private readonly log: (msg: string) => void;
  /** The batch being filled: whole lines, encoded. */
  private batch?: Buffer;
  private batchUsed = 0;
  private batchLines = 0;
  /** Full batches waiting for the disk, oldest first. */
  private full: Batch[] = [];
  /** Bytes in `full` and in `batch`. */
  private queuedBytes = 0;
  /** A written batch buffer kept for the next one. */
  private spare?: Buffer;
  private fh?: FileHandle;
  private ino = 0;
  /** audit.log's size as last seen plus what this process wrote since. */
  private size = 0;
  private batchTimer?: NodeJS.Timeout;
  private lastCheck = 0;
  private lastRotation = 0;
  private draining?: Promise<void>;
  private closed = false;
  private droppedSinceLog = 0;
  private lastDropLog = 0;

  /** Names of created objects, by the request's attributes (the same object reaches record()). */
  private readonly created = new WeakMap<RequestAttributes, string>();
  /**
   * Run first among the admission checks: notes the name in a create's body, so the Event's
   * objectRef names the object created (or refused). Never refuses anything.
   */
  readonly objectNames: Admission = {
    admit: (a, object) => {
      const name = object?.metadata?.name;
      if (!a.name && typeof name === 'string' && name) this.created.set(a, name);
    },
  };

  private constructor(readonly opts: AuditLogOptions) {
    this.path = join(opts.dir, AUDIT_FILE);
    this.maxFileBytes = opts.maxFileBytes ?? 100 * MiB;
    this.maxBackups = Math.max(0, opts.maxBackups ?? 10);
    this.maxBufferBytes = opts.maxBufferBytes ?? 16 * MiB;
    this.log = opts.log ?? ((m) => process.stderr.write(`${m}\n`));
  }

  /** Opens (creating) the log; fails now, naming the path, if the directory cannot be made. */
  static async open(opts: AuditLogOptions): Promise<AuditLog> {
    await mkdir(opts.dir, { recursive: true, mode: 0o700 });
    await chmod(opts.dir, 0o700);
    const l = new AuditLog(opts);
    await l.reopen();
    return l;
  }

  record(entry: AuditEntry): void {
    if (this.closed) return;
    let line: string;
    try {
      const created = entry.attributes && this.created.get(entry.attributes);
      line = JSON.stringify(auditEvent(entry, undefined, created)) + '\n';
    } catch (e) {
      this.dropped(1, `cannot render an audit event: ${(e as Error).message}`);
      return;
    }
    const bytes = Buffer.byteLength(line);
    if (this.queuedBytes + bytes > this.maxBufferBytes) {
      this.dropped(1, 'buffer full');
      return;
    }
    if (!this.batch || this.batchUsed + bytes > this.batch.length) this.sealBatch(bytes);
    this.batch!.write(line, this.batchUsed);
    this.batchUsed += bytes;
    this.batchLines++;
    this.queuedBytes += bytes;
    if (this.full.length) this.startDrain();
    else if (!this.batchTimer && !this.draining) {
      this.batchTimer = setTimeout(() => this.startDrain(), BATCH_MS);
      this.batchTimer.unref();
    }
  }

  /** Queues the batch being filled (if any) and starts a new one with room for `atLeast` bytes. */
  private sealBatch(atLeast = 0): void {
    if (this.batch && this.batchUsed) this.full.push({ buf: this.batch.subarray(0, this.batchUsed), lines: this.batchLines });
    this.batch = undefined;
    this.batchUsed = 0;
    this.batchLines = 0;
    if (atLeast > 0) {
      const reuse = this.spare && atLeast <= this.spare.length ? this.spare : undefined;
      this.spare = undefined;
      this.batch = reuse ?? Buffer.allocUnsafe(Math.max(BATCH_BYTES, atLeast));
    }
  }

  private startDrain(): void {
    clearTimeout(this.batchTimer);
    this.batchTimer = undefined;
    this.draining ??= this.drain().finally(() => (this.draining = undefined));
  }

  /** Resolves once every line recorded so far is written (or dropped). */
  async flush(): Promise<void> {
    if (this.queuedBytes) this.startDrain();
    while (this.draining) await this.draining;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close().catch(() => undefined);
  }

  private dropped(n: number, why: string): void {
    this.stats.dropped += n;
    this.droppedSinceLog += n;
    const now = Date.now();
    if (now - this.lastDropLog >= DROP_LOG_MS) {
      this.log(`audit: dropped ${this.droppedSinceLog} event(s) (${why}); ${this.stats.dropped} since start`);
      this.droppedSinceLog = 0;
      this.lastDropLog = now;
    }
  }

  private async drain(): Promise<void> {
    for (;;) {
      if (!this.full.length) {
        if (!this.batchUsed) return;
        this.sealBatch(); // what is waiting goes now, partly filled
      }
      const { buf, lines } = this.full.shift()!;
      this.queuedBytes -= buf.length;
      try {
        await this.write(buf);
        this.stats.written += lines;
      } catch (e) {
        this.stats.errors++;
        this.dropped(lines, `writing ${this.path}: ${(e as Error).message}`);
        // A broken handle (the file deleted, a full disk) is opened afresh on the next batch.
        await this.fh?.close().catch(() => undefined);
        this.fh = undefined;
      }
      // The buffer is written (or given up): the next batch may fill it again.
      if (buf.buffer.byteLength === BATCH_BYTES && buf.byteOffset === 0) this.spare = Buffer.from(buf.buffer, 0, BATCH_BYTES);
    }
  }

  private async reopen(): Promise<void> {
    await this.fh?.close().catch(() => undefined);
    this.fh = undefined;
    // 'a': O_WRONLY|O_CREAT|O_APPEND; the mode applies to a new file, chmod to an old one.
    const fh = await open(this.path, 'a', 0o600);
    await fh.chmod(0o600);
    this.fh = fh;
    const st = await fh.stat();
    this.ino = st.ino;
    this.size = st.size;
    this.lastCheck = Date.now();
  }

  private async write(buf: Buffer): Promise<void> {
    if (!this.fh) await this.reopen();
    const fh = this.fh!;
    await fh.write(buf);
    this.size += buf.length;
    const now = Date.now();
    if (now - this.lastCheck >= REOPEN_CHECK_MS) {
      this.lastCheck = now;
      const cur = await stat(this.path).catch(() => undefined);
      if (!cur || cur.ino !== this.ino) return this.reopen(); // rotated by another process
      this.size = cur.size; // other processes append too
    }
    if (this.size >= this.maxFileBytes) return this.rotate();
  }

  private async rotate(): Promise<void> {
    const cur = await stat(this.path).catch(() => undefined);
    if (cur && cur.ino === this.ino) {
      // A rename replaces its target: two rotations of this process never share a millisecond.
      const ms = Math.max(Date.now(), this.lastRotation + 1);
      this.lastRotation = ms;
      const stamp = new Date(ms).toISOString().replace(/:/g, '-').replace(/Z$/, '');
      try {
        await rename(this.path, join(this.opts.dir, `audit-${stamp}-${process.pid}.log`));
        this.stats.rotations++;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    }
    await this.reopen();
    await this.prune();
  }

  /** Deletes the oldest rotated files beyond maxBackups (another process may race: ENOENT is fine). */
  private async prune(): Promise<void> {
    const rotated = (await readdir(this.opts.dir)).filter((f) => ROTATED_FILE.test(f)).sort();
    for (const f of rotated.slice(0, Math.max(0, rotated.length - this.maxBackups))) {
      await unlink(join(this.opts.dir, f)).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e;
      });
    }
  }
}
