// Imports one image file into the content-addressed image store <storeDir>/<sha256>.<format>:
// the bytes are streamed once (from a local file or over HTTP with undici) into a temporary
// file while their SHA-256 is computed, then checked (digest, format by `qemu-img info`) and
// renamed into place. Nothing here touches the API; the image controller reports the outcome.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { Agent, interceptors, request } from 'undici';
import type { ImageFormat, ImageSource } from '../api/kinds/index.js';

const run = promisify(execFile);

/** Follows redirects (mirrors commonly redirect image downloads). */
const downloader = new Agent().compose(interceptors.redirect({ maxRedirections: 5 }));

export const SUPPORTED_FORMATS: readonly ImageFormat[] = ['qcow2', 'raw'];

export function isImageFormat(f: string): f is ImageFormat {
  return (SUPPORTED_FORMATS as readonly string[]).includes(f);
}

/** Why an import failed, as the Ready condition's reason. */
export type ImportFailureReason = 'ChecksumMismatch' | 'UnsupportedFormat' | 'FormatMismatch' | 'SourceUnavailable';

/** A failure that retrying will not fix (until the spec changes). */
export class ImportError extends Error {
  constructor(
    readonly reason: ImportFailureReason,
    message: string,
    /** The digest of the bytes read, when they were read completely. */
    readonly actualSha256?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ImportError';
  }
}

export interface ImportRequest {
  source: ImageSource;
  storeDir: string;
  /** Expected digest (64 lowercase hex digits); verified when given. */
  sha256?: string;
  /** Expected format; detected when omitted. */
  format?: ImageFormat;
  /** Unique per import, names the temporary file (e.g. the Image's uid). */
  tempName: string;
  /** Called with 0..100 as bytes arrive (when the total is known), at most every `progressEveryMs`. */
  onProgress?: (percent: number) => void;
  progressEveryMs?: number;
  signal?: AbortSignal;
}

export interface ImportedImage {
  path: string;
  sha256: string;
  format: ImageFormat;
  size: number;
  virtualSize: number;
}

/** Path of an image in the store. */
export function storePath(storeDir: string, sha256: string, format: string): string {
  if (!/^[a-f0-9]{64}$/.test(sha256)) throw new Error(`invalid sha256 ${JSON.stringify(sha256)}`);
  if (!isImageFormat(format)) throw new Error(`invalid image format ${JSON.stringify(format)}`);
  return join(storeDir, `${sha256}.${format}`);
}

export async function importImage(req: ImportRequest): Promise<ImportedImage> {
  await mkdir(req.storeDir, { recursive: true, mode: 0o755 });
  const tmp = join(req.storeDir, `.import-${req.tempName.replace(/[^A-Za-z0-9_-]/g, '_')}`);
  try {
    const { stream, total } = await openSource(req.source, req.signal);
    const hash = createHash('sha256');
    let done = 0;
    let lastReport = 0;
    const every = req.progressEveryMs ?? 1000;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        done += chunk.length;
        const now = Date.now();
        if (total && req.onProgress && now - lastReport >= every) {
          lastReport = now;
          req.onProgress(Math.min(99, Math.floor((done / total) * 100)));
        }
        cb(null, chunk);
      },
    });
    await pipeline(stream, meter, createWriteStream(tmp, { mode: 0o644 }), { signal: req.signal });
    const sha256 = hash.digest('hex');
    if (req.sha256 && req.sha256 !== sha256) {
      throw new ImportError('ChecksumMismatch', `checksum mismatch: expected sha256 ${req.sha256} (spec.sha256), actual ${sha256}`, sha256);
    }
    const info = await qemuImgInfo(tmp);
    const format = info.format;
    if (!isImageFormat(format)) {
      throw new ImportError('UnsupportedFormat', `unsupported image format ${JSON.stringify(info.format)}: qemu-img detected ${info.format}, kova accepts qcow2 or raw`, sha256);
    }
    if (info.format === 'raw' && req.format !== 'raw' && !(await looksLikeDisk(tmp))) {
      // qemu-img calls any file it does not recognize raw; without a boot sector it is most
      // likely not a disk at all (an HTML error page, an archive, ...).
      throw new ImportError('UnsupportedFormat', 'unsupported image format: qemu-img recognizes no disk format (it would read the file as raw bytes) and the file has no boot sector; set spec.format: raw if it is a raw disk', sha256);
    }
    if (req.format && req.format !== info.format) {
      throw new ImportError('FormatMismatch', `spec.format is ${req.format} but the file is ${info.format}`, sha256);
    }
    if (format === 'qcow2' && info.backingFile) {
      throw new ImportError('UnsupportedFormat', 'qcow2 images with a backing file are not accepted', sha256);
    }
    const path = storePath(req.storeDir, sha256, format);
    // Content-addressed: the same bytes imported twice land on the same file.
    await rename(tmp, path);
    await chmod(path, 0o644);
    const size = (await stat(path)).size;
    return { path, sha256, format, size, virtualSize: info.virtualSize };
  } finally {
    await rm(tmp, { force: true });
  }
}

async function openSource(source: ImageSource, signal?: AbortSignal): Promise<{ stream: Readable; total?: number }> {
  if (source.file) {
    const file = source.file;
    const st = await stat(file.path).catch((e: unknown) => {
      throw new ImportError('SourceUnavailable', `cannot read ${file.path}: ${(e as Error).message}`, undefined, { cause: e });
    });
    if (!st.isFile()) throw new ImportError('SourceUnavailable', `${file.path} is not a regular file`);
    return { stream: createReadStream(file.path), total: st.size };
  }
  if (!source.http) throw new ImportError('SourceUnavailable', 'the image source names neither a file nor a URL');
  const url = source.http.url;
  const res = await request(url, { method: 'GET', signal, dispatcher: downloader }).catch((e: unknown) => {
    throw new ImportError('SourceUnavailable', `cannot download ${url}: ${(e as Error).message}`, undefined, { cause: e });
  });
  if (res.statusCode !== 200) {
    res.body.resume();
    throw new ImportError('SourceUnavailable', `cannot download ${url}: HTTP ${res.statusCode}`);
  }
  const len = Number(res.headers['content-length']);
  return { stream: res.body, total: Number.isFinite(len) && len > 0 ? len : undefined };
}

/** A whole number of 512-byte sectors with the 0x55AA boot signature (MBR, GPT's protective MBR, FAT). */
async function looksLikeDisk(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    if (size < 512 || size % 512 !== 0) return false;
    const buf = Buffer.alloc(2);
    await fh.read(buf, 0, 2, 510);
    return buf[0] === 0x55 && buf[1] === 0xaa;
  } finally {
    await fh.close();
  }
}

export interface QemuImgInfo {
  format: string;
  virtualSize: number;
  backingFile?: string;
}

/** `qemu-img info` of a file (-U: no lock, the file may be in use by a running guest). */
export async function qemuImgInfo(path: string): Promise<QemuImgInfo> {
  const { stdout } = await run('qemu-img', ['info', '-U', '--output=json', path]);
  const j = JSON.parse(stdout) as { format: string; 'virtual-size': number; 'backing-filename'?: string };
  return { format: j.format, virtualSize: j['virtual-size'], backingFile: j['backing-filename'] };
}
