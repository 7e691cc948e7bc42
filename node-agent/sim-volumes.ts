// The sim driver's volume and snapshot "files": real state in memory, named like the libvirt
// driver names its files. Local files belong to one SimDriver (its host's disk); shared files
// live in one store per backend path for the whole process, so every sim host sees a shared
// volume another one created, as hosts do on an NFS mount. A file keeps sizes and a content
// fingerprint, so tests can tell whether a clone, snapshot or restore carries the right data.
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { InvalidSpec, PowerState } from './driver.js';
import type { DiskFileInfo, StorageBackend } from './driver.js';

export interface SimFile {
  virtualBytes: number;
  allocatedBytes: number;
  /** A fingerprint of what the disk holds: '' when blank, `image:<path>` from an image, what simWrite wrote. */
  content: string;
  /** The domains' attachments of this file (for locks and "in use"); absent while there are none. */
  holders?: Set<SimHolder>;
}

/** One attachment of a file to a domain, as a lock check sees it. */
export interface SimHolder {
  readOnly: boolean;
  shareable: boolean;
  dom: { readonly spec: { readonly name: string }; readonly state: PowerState };
}

export type SimFileKind = 'volumes' | 'snapshots';

/** One directory of volume and snapshot files. */
export class SimStore {
  private readonly files = new Map<string, SimFile>();

  constructor(readonly root: string) {}

  path(kind: SimFileKind, uid: string): string {
    return `${this.root.replace(/\/$/, '')}/${kind}/${uid}.qcow2`;
  }

  get(kind: SimFileKind, uid: string): SimFile | undefined {
    return this.files.get(`${kind}/${uid}`);
  }

  set(kind: SimFileKind, uid: string, f: SimFile): void {
    this.files.set(`${kind}/${uid}`, f);
  }

  delete(kind: SimFileKind, uid: string): void {
    this.files.delete(`${kind}/${uid}`);
  }

  /** Bytes the files take on the host. */
  allocatedBytes(): number {
    let n = 0;
    for (const f of this.files.values()) n += f.allocatedBytes;
    return n;
  }

  entries(): Array<{ kind: SimFileKind; uid: string; file: SimFile }> {
    return [...this.files.entries()].map(([k, file]) => {
      const [kind, uid] = k.split('/') as [SimFileKind, string];
      return { kind, uid, file };
    });
  }

  info(kind: SimFileKind, uid: string, f: SimFile): DiskFileInfo {
    return { path: this.path(kind, uid), virtualBytes: f.virtualBytes, allocatedBytes: f.allocatedBytes };
  }
}

/** The process's shared stores, one per (normalized) backend path: the "NFS mounts". */
const sharedStores = new Map<string, SimStore>();

export function sharedStore(path: string): SimStore {
  let s = sharedStores.get(path);
  if (!s) sharedStores.set(path, (s = new SimStore(path)));
  return s;
}

/** RFC 4122 text form, lower case: what metadata.uid holds. */
const UID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** What libvirt's disk serial may hold; virtio-blk keeps 20 characters. */
const SERIAL = /^[A-Za-z0-9._+-]{1,20}$/;

/** Refuses a uid that is not one before it becomes part of a file name. */
export function checkUID(uid: string, what: string): void {
  if (typeof uid !== 'string' || !UID.test(uid)) throw new InvalidSpec(`${what} has an invalid uid ${JSON.stringify(uid)}: want an RFC 4122 uid in lower case`);
}

/**
 * The shared path as the libvirt driver takes it (libvirt/volumes.ts storageDir): absolute,
 * normalized (no `.`, `..`, doubled or trailing slashes), no control characters; else InvalidSpec.
 */
export function checkSharedPath(p: string): string {
  if (typeof p !== 'string' || !posix.isAbsolute(p) || posix.normalize(p) !== p || (p.endsWith('/') && p !== '/') || /[\u0000-\u001F\u007F]/.test(p)) {
    throw new InvalidSpec(`shared storage path ${JSON.stringify(p)} is not an absolute, normalized path`);
  }
  return p;
}

export function checkBackend(b: StorageBackend, what: string): void {
  if (b?.type === 'local') return;
  if (b?.type === 'shared') return void checkSharedPath(b.path);
  throw new InvalidSpec(`${what} has an unknown storage backend ${JSON.stringify((b as { type?: unknown } | undefined)?.type)}`);
}

export function checkSerial(serial: string, what: string): void {
  if (typeof serial !== 'string' || !SERIAL.test(serial)) throw new InvalidSpec(`${what}: invalid disk serial ${JSON.stringify(serial)}`);
}

export function checkSize(bytes: number, what: string): void {
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new InvalidSpec(`${what}: size must be a positive whole number of bytes, got ${bytes}`);
}

/** The fingerprint of a disk that now holds `data`: readable while short, a digest when long (memory stays small). */
export function fingerprint(data: string): string {
  return data.length <= 128 ? data : `#${createHash('sha256').update(data).digest('hex').slice(0, 24)}`;
}

/** The device name of the n-th virtio disk, as libvirt names them: vda … vdz, vdaa, vdab, … */
export function diskDevice(n: number): string {
  let s = '';
  for (let i = n; i >= 0; i = Math.floor(i / 26) - 1) s = String.fromCharCode(97 + (i % 26)) + s;
  return `vd${s}`;
}

/**
 * QEMU's image lock: a running domain holds its disks' files; another may open one only when
 * both allow sharing (shareable) or neither writes (read-only). The message names the holder.
 */
export function lockConflict(f: SimFile, want: SimHolder): string | undefined {
  for (const h of f.holders ?? []) {
    // Off domains run no emulator and hold no lock.
    if (h.dom === want.dom || h.dom.state === PowerState.Shutdown || h.dom.state === PowerState.Crashed) continue;
    if (h.shareable && want.shareable) continue;
    if (h.readOnly && want.readOnly) continue;
    return `Failed to get "write" lock: the file is in use by domain ${h.dom.spec.name}`;
  }
  return undefined;
}
