// Images for sim hosts in tests and benchmarks. A sim instance waits for its Image to be Ready
// like a libvirt one (only the copy into a host cache is skipped), so setups that run sim
// instances need a Ready Image: a small raw file that the image controller can import, and,
// where no image controller runs, the Ready status it would write.
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { KObject } from '../api/types.js';
import { IMAGES, isAlreadyExists } from '../client/client.js';
import type { KovaClient } from '../client/client.js';

/** Writes a 1 MiB raw disk of zeros to `dir`; its path and digest. */
export async function writeSimImageFile(dir: string, name = 'sim-tiny.raw'): Promise<{ path: string; sha256: string; size: number }> {
  const bytes = Buffer.alloc(1 << 20);
  const path = join(dir, name);
  await writeFile(path, bytes, { mode: 0o644 });
  return { path, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
}

/**
 * Creates Image `namespace/name` from such a file (in `dir`) and marks it Ready at once, as the
 * image controller would after importing it; with an image controller running, it imports the
 * same bytes and keeps it Ready.
 */
export async function createReadySimImage(client: KovaClient, namespace: string, name: string, dir: string, visibility: 'Private' | 'Public' = 'Private'): Promise<KObject> {
  const file = await writeSimImageFile(dir, `${namespace}-${name}.raw`);
  let img: KObject;
  try {
    img = await client.create(IMAGES, { metadata: { name, namespace }, spec: { source: { file: { path: file.path } }, format: 'raw', visibility } });
  } catch (e) {
    if (!isAlreadyExists(e)) throw e;
    img = (await client.get(IMAGES, namespace, name))!;
  }
  const out = await client.updateStatus(IMAGES, namespace, name, (fresh) => {
    fresh.status = {
      phase: 'Ready', sha256: file.sha256, format: 'raw', size: file.size, virtualSize: file.size, observedGeneration: fresh.metadata.generation,
      conditions: [{ type: 'Ready', status: 'True', reason: 'Imported', message: '', lastTransitionTime: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z') }],
    };
  });
  return out ?? img;
}
