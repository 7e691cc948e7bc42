// The per-host image cache of a node agent: one local copy of each image, keyed by its
// SHA-256, shared by every instance on the host (each instance only gets a qcow2 overlay on
// top). Filled once per host: on the control-plane host by a hardlink (or copy) from the image
// store DATA_DIR/images; elsewhere by importing the Image's source again, verified against the
// digest the image controller recorded.
import { copyFile, constants, link, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { ImageResolution } from '../api/image-visibility.js';
import type { Image, ImageFormat, ImageSource } from '../api/kinds/index.js';
import { importImage, storePath } from '../image-store/import.js';

/** What the cache needs to know about a Ready Image (its spec.source and status). */
export interface ImageRef {
  /** `namespace/name`, for messages. */
  name: string;
  sha256: string;
  format: ImageFormat;
  source: ImageSource;
  virtualSize?: number;
}

export interface CachedImage {
  path: string;
  format: ImageFormat;
  sha256: string;
  virtualSize?: number;
  /** How this call got it: already cached, linked or copied from the store, or imported again. */
  how: 'cached' | 'linked' | 'copied' | 'imported';
}

export interface ImageCacheOptions {
  /** Where cached images live; qemu (libvirt-qemu) must be able to read them. */
  cacheDir: string;
  /** The control plane's image store (DATA_DIR/images) when it is on this host. */
  storeDir?: string;
  log?: (msg: string) => void;
}

/** Files diskUsageBytes looks at, at most (a bound on a metrics scrape's work). */
const MAX_USAGE_FILES = 10_000;

export class ImageCache {
  private readonly filling = new Map<string, Promise<CachedImage>>();
  private readonly virtualSizes = new Map<string, number>();
  readonly stats = { hits: 0, linked: 0, copied: 0, imported: 0 };

  constructor(readonly o: ImageCacheOptions) {}

  /** Path of an image in the cache (whether or not it is there yet). */
  pathOf(sha256: string, format: ImageFormat): string {
    return storePath(this.o.cacheDir, sha256, format);
  }

  /**
   * The local copy of `img`, filling the cache first when needed. Concurrent calls for the
   * same image share one fill. Throws when neither the store nor the source has the bytes.
   */
  ensure(img: ImageRef): Promise<CachedImage> {
    const path = this.pathOf(img.sha256, img.format);
    if (img.virtualSize !== undefined) this.virtualSizes.set(path, img.virtualSize);
    const pending = this.filling.get(path);
    if (pending) return pending;
    const p = this.fill(img, path).finally(() => this.filling.delete(path));
    this.filling.set(path, p);
    return p;
  }

  /** For the driver: format (and virtual size, when known) of a path this cache handed out. */
  describe(path: string): { format: ImageFormat; virtualSize?: number } | undefined {
    if (dirname(path) !== this.o.cacheDir) return undefined;
    const m = /^[a-f0-9]{64}\.(qcow2|raw)$/.exec(basename(path));
    return m ? { format: m[1] as ImageFormat, virtualSize: this.virtualSizes.get(path) } : undefined;
  }

  /**
   * Bytes on disk of the cached images (hard links to the image store count too), for the
   * metrics; undefined before the cache directory exists. Bounded by MAX_USAGE_FILES files.
   */
  async diskUsageBytes(): Promise<number | undefined> {
    let names: string[];
    try {
      names = await readdir(this.o.cacheDir);
    } catch {
      return undefined;
    }
    let total = 0;
    for (const n of names.slice(0, MAX_USAGE_FILES)) {
      const st = await stat(join(this.o.cacheDir, n)).catch(() => undefined);
      if (st?.isFile()) total += st.blocks * 512;
    }
    return total;
  }

  private async fill(img: ImageRef, path: string): Promise<CachedImage> {
    const out = (how: CachedImage['how']): CachedImage => ({ path, format: img.format, sha256: img.sha256, virtualSize: img.virtualSize, how });
    if (await isFile(path)) {
      this.stats.hits++;
      return out('cached');
    }
    await mkdir(this.o.cacheDir, { recursive: true, mode: 0o755 });
    if (this.o.storeDir) {
      const src = storePath(this.o.storeDir, img.sha256, img.format);
      if (await isFile(src)) {
        // A hardlink costs nothing; another filesystem needs a copy (a reflink where supported).
        try {
          await link(src, path);
          this.stats.linked++;
          this.o.log?.(`image cache: ${img.name} linked from the image store`);
          return out('linked');
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'EEXIST') return out('cached');
        }
        const tmp = `${path}.tmp-${process.pid}`;
        try {
          await copyFile(src, tmp, constants.COPYFILE_FICLONE);
          await rename(tmp, path);
        } finally {
          await rm(tmp, { force: true });
        }
        this.stats.copied++;
        this.o.log?.(`image cache: ${img.name} copied from the image store`);
        return out('copied');
      }
    }
    // Not on this host: fetch it again from its source and insist on the same bytes.
    const got = await importImage({ source: img.source, storeDir: this.o.cacheDir, sha256: img.sha256, format: img.format, tempName: `cache-${img.sha256.slice(0, 16)}` });
    if (got.path !== path) {
      await rm(got.path, { force: true });
      throw new Error(`image ${img.name}: the source now holds a ${got.format} image, not the ${img.format} one imported`);
    }
    this.stats.imported++;
    this.o.log?.(`image cache: ${img.name} imported again from its source`);
    return out('imported');
  }
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isFile(), () => false);
}

/** Drivers that resolve images through an ImageCache expose it (the agent then waits for Images). */
export interface HasImageCache {
  readonly imageCache: ImageCache;
}

export function imageCacheOf(driver: object): ImageCache | undefined {
  const c = (driver as Partial<HasImageCache>).imageCache;
  return c instanceof ImageCache ? c : undefined;
}

/** An Image as the agent's informer holds it (kept for the agent's imports; it is the kind's type). */
export type ImageObjectView = Image;

/**
 * Whether an instance can boot now from the image its name resolved to (api/image-visibility.ts):
 * the ImageRef to cache, or why it must wait (the message of its ImageReady=False condition).
 */
export function imageReadiness(resolved: ImageResolution<ImageObjectView>): { ref: ImageRef } | { waitReason: string; message: string } {
  if ('reason' in resolved) return { waitReason: resolved.reason, message: resolved.message };
  const img = resolved.image;
  const key = `${img.metadata.namespace}/${img.metadata.name}`;
  const st = img.status ?? {};
  if (st.phase !== 'Ready' || !st.sha256 || (st.format !== 'qcow2' && st.format !== 'raw') || !img.spec?.source) {
    const why = st.conditions?.find((c) => c.type === 'Ready')?.message;
    return { waitReason: 'ImageNotReady', message: `image ${key} is ${st.phase ?? 'Pending'}, not Ready${why ? `: ${why}` : ''}` };
  }
  return { ref: { name: key, sha256: st.sha256, format: st.format, source: img.spec.source, virtualSize: st.virtualSize } };
}
