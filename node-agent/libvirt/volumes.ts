// Volume and snapshot files of the libvirt driver: where they live (derived from validated uids,
// never from caller paths) and the qemu-img calls that make them. Files are written under
// <final>.tmp-<random> and renamed into place, so a crash never leaves a complete-looking file.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, posix } from 'node:path';
import { DriverError, InvalidSpec } from '../driver.js';
import type { DiskFileInfo, SnapshotDisk, StorageBackend, VolumeDisk, VolumeFormat } from '../driver.js';
import { launch } from '../../lib/launcher.js';


const UID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export type FileKind = 'volumes' | 'snapshots';

/** The directory holding a backend's volumes or snapshots; InvalidSpec for a bad shared path. */
export function storageDir(backend: StorageBackend, kind: FileKind, localDir: string): string {
  if (backend.type === 'local') return join(localDir, kind);
  if (backend.type !== 'shared') throw new InvalidSpec(`unknown storage backend ${JSON.stringify((backend as { type: unknown }).type)}`);
  const p = backend.path;
  if (typeof p !== 'string' || !posix.isAbsolute(p) || posix.normalize(p) !== p || (p.endsWith('/') && p !== '/') || /[\u0000-\u001F\u007F]/.test(p)) {
    throw new InvalidSpec(`shared storage path ${JSON.stringify(p)} is not an absolute, normalized path`);
  }
  return join(p, kind);
}

/** A volume's file format (absent: qcow2); InvalidSpec for anything else. Snapshots are qcow2. */
export function volumeFormat(disk: VolumeDisk): VolumeFormat {
  const f = disk.format ?? 'qcow2';
  if (f !== 'qcow2' && f !== 'raw') throw new InvalidSpec(`${disk.key}: unsupported volume format ${JSON.stringify(f)}`);
  return f;
}

/**
 * <dir>/<uid>.<format> of a volume (`.qcow2` or `.raw`, so a file's name always says its
 * format) or <dir>/<uid>.qcow2 of a snapshot; InvalidSpec unless uid is a lower-case RFC 4122
 * uuid. Every path of a volume's file comes from here.
 */
export function diskFilePath(disk: VolumeDisk | SnapshotDisk, kind: FileKind, localDir: string): string {
  if (typeof disk.uid !== 'string' || !UID.test(disk.uid)) throw new InvalidSpec(`${disk.key}: uid ${JSON.stringify(disk.uid)} is not a lower-case RFC 4122 uuid`);
  const format = kind === 'volumes' ? volumeFormat(disk as VolumeDisk) : 'qcow2';
  return join(storageDir(disk.backend, kind, localDir), `${disk.uid}.${format}`);
}

/**
 * The external snapshot overlay an online copy puts on top of a volume while it copies the
 * frozen base: next to the volume, named after the copy's destination uid. Its name is how a
 * later call recognizes one a crash left behind (isOverlayPath).
 */
export function overlayPath(volumePath: string, destUid: string): string {
  return join(dirname(volumePath), `${destUid}.overlay.qcow2`);
}

export function isOverlayPath(path: string): boolean {
  return /^[0-9a-f-]{36}\.overlay\.qcow2$/.test(basename(path));
}

/**
 * Makes the directory (and its parents) and lets qemu (libvirt-qemu) traverse it: the storage
 * directory itself is opened up (o+x, not o+r); a parent that others cannot search is reported.
 */
export async function ensureStorageDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o711 });
  const st = await stat(dir);
  if ((st.mode & 0o001) === 0) await chmod(dir, (st.mode & 0o7777) | 0o001);
  for (let d = dirname(dir); d !== dirname(d); d = dirname(d)) {
    if (((await stat(d)).mode & 0o001) === 0) throw new DriverError(`qemu cannot reach ${dir}: ${d} is not searchable by others (chmod o+x ${d})`);
  }
}

interface QemuImgInfo {
  format: string;
  'virtual-size': number;
  'actual-size'?: number;
  'backing-filename'?: string;
}

/** `qemu-img info -U` (force-share: works while a domain has the file open). */
export async function qemuImgInfo(path: string): Promise<QemuImgInfo> {
  try {
    const { stdout } = await launch('qemu-img', ['info', '-U', '--output=json', path]);
    return JSON.parse(stdout) as QemuImgInfo;
  } catch (err) {
    throw new DriverError(`qemu-img info ${path}: ${stderrOf(err)}`, { cause: err });
  }
}

/** The file's info, or undefined when it does not exist. */
export async function fileInfo(path: string): Promise<DiskFileInfo | undefined> {
  if (!(await exists(path))) return undefined;
  const i = await qemuImgInfo(path);
  return { path, virtualBytes: i['virtual-size'], allocatedBytes: i['actual-size'] ?? 0 };
}

export async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, (err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return false;
    throw new DriverError(`stat ${path}: ${err.message}`, { cause: err });
  });
}

/**
 * Removes the `<final>.tmp-*` files of writers that crashed. The agent runs one operation per
 * volume at a time; were two racing anyway, the loser fails (retryable) and its retry finds
 * the winner's complete file.
 */
export async function removeTemps(final: string): Promise<void> {
  const dir = dirname(final);
  const prefix = `${basename(final)}.tmp-`;
  for (const f of await readdir(dir).catch(() => [] as string[])) if (f.startsWith(prefix)) await rm(join(dir, f), { force: true });
}

/**
 * Runs `write(tmp)` and renames tmp to final; the temporary file is removed on failure. The
 * rename is atomic, so `final` either does not exist or is complete.
 */
export async function writeAtomically(final: string, write: (tmp: string) => Promise<void>): Promise<void> {
  await removeTemps(final);
  const tmp = `${final}.tmp-${randomBytes(6).toString('hex')}`;
  try {
    await write(tmp);
    await rename(tmp, final);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

export async function qemuImg(...args: string[]): Promise<void> {
  try {
    await launch('qemu-img', args, { maxBuffer: 4 << 20 });
  } catch (err) {
    throw new DriverError(`qemu-img ${args[0]}: ${stderrOf(err)}`, { cause: err });
  }
}

/** A new empty file of sizeBytes: qcow2, or a sparse raw file (nothing allocated). */
export async function createBlank(dest: string, format: VolumeFormat, sizeBytes: number): Promise<void> {
  await qemuImg('create', '-q', '-f', format, dest, String(sizeBytes));
}

/**
 * Copies `src` (any format) into a new file of destFormat, then grows it to sizeBytes if
 * smaller. Both outputs are sparse: qemu-img skips zeroes (a raw file gets holes).
 */
export async function convertInto(src: string, srcFormat: string, dest: string, destFormat: VolumeFormat, sizeBytes: number, forceShare = false): Promise<void> {
  await qemuImg('convert', ...(forceShare ? ['-U'] : []), '-f', srcFormat, '-O', destFormat, src, dest);
  if ((await qemuImgInfo(dest))['virtual-size'] < sizeBytes) await qemuImg('resize', '-q', '-f', destFormat, dest, String(sizeBytes));
}

function stderrOf(err: unknown): string {
  const e = err as { stderr?: string; message?: string };
  return (e.stderr || e.message || String(err)).trim().replace(/\n+/g, '; ');
}
