// What `kova up` puts into a fresh cloud, as DevStack does: Nova's classic flavors and, with
// the libvirt driver, a small public test image (kova's CirrOS) built locally from Debian
// packages. Existing objects are never changed, so users may edit or delete them.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { FLAVORS, IMAGES, VOLUME_TYPES, isAlreadyExists } from '../client/client.js';
import { ANNOTATION_DEFAULT_VOLUME_TYPE } from '../api/kinds/index.js';
import type { VolumeTypeSpec } from '../api/kinds/index.js';
import type { KovaClient } from '../client/client.js';

export const DEFAULT_FLAVORS: Array<{ name: string; vcpus: number; memory: string; disk: string }> = [
  { name: 'm1.tiny', vcpus: 1, memory: '256Mi', disk: '1Gi' },
  { name: 'm1.small', vcpus: 1, memory: '512Mi', disk: '2Gi' },
  { name: 'm1.medium', vcpus: 2, memory: '2Gi', disk: '10Gi' },
  { name: 'm1.large', vcpus: 4, memory: '4Gi', disk: '20Gi' },
];

/** Namespace of the images kova provides (Public: usable from every project). */
export const SEED_NAMESPACE = 'kova-system';
export const TEST_IMAGE = 'tiny';

async function createIfAbsent(fn: () => Promise<unknown>): Promise<boolean> {
  try {
    await fn();
    return true;
  } catch (e) {
    if (isAlreadyExists(e)) return false;
    throw e;
  }
}

export async function seedFlavors(client: KovaClient): Promise<number> {
  let made = 0;
  for (const f of DEFAULT_FLAVORS) {
    const spec = { vcpus: f.vcpus, memory: f.memory, disk: f.disk };
    if (await createIfAbsent(() => client.create(FLAVORS, { metadata: { name: f.name, labels: { 'kova.dev/default': 'true' } }, spec }))) made++;
  }
  return made;
}

/** Where the `shared` VolumeType keeps its files on a single-host cloud (an NFS mount in production). */
export function sharedVolumesDir(dataDir: string): string {
  return join(dataDir, 'shared-volumes');
}

/**
 * The default VolumeTypes: `local` (the default: qcow2 files on the instance's host) and
 * `shared` (files under DATA_DIR/shared-volumes, which every host of a single-host cloud sees;
 * multi-attach). Returns the names created.
 */
export function defaultVolumeTypes(dataDir: string): Array<{ name: string; default: boolean; spec: VolumeTypeSpec }> {
  return [
    { name: 'local', default: true, spec: { backend: 'local', allowVolumeExpansion: true, multiAttach: false } },
    { name: 'shared', default: false, spec: { backend: 'shared', sharedPath: sharedVolumesDir(dataDir), allowVolumeExpansion: true, multiAttach: true } },
  ];
}

export async function seedVolumeTypes(client: KovaClient, dataDir: string): Promise<string[]> {
  await mkdir(sharedVolumesDir(dataDir), { recursive: true, mode: 0o755 });
  const made: string[] = [];
  for (const t of defaultVolumeTypes(dataDir)) {
    const annotations = t.default ? { [ANNOTATION_DEFAULT_VOLUME_TYPE]: 'true' } : undefined;
    const metadata = { name: t.name, labels: { 'kova.dev/default': 'true' }, ...(annotations ? { annotations } : {}) };
    if (await createIfAbsent(() => client.create(VOLUME_TYPES, { metadata, spec: t.spec }))) made.push(t.name);
  }
  return made;
}

/** Shared by every data dir on the host (built once, ~6 s), or per data dir when not root. */
export function testGuestCacheDir(dataDir: string): string {
  return process.getuid?.() === 0 ? '/var/cache/kova/test-guest' : join(dataDir, 'seed');
}

/**
 * Builds the test guest into the cache dir (cached; needs `apt-get download` to reach a Debian
 * mirror the first time) and registers it as the Public Image kova-system/tiny.
 */
export async function seedTestImage(client: KovaClient, dataDir: string, say: (m: string) => void): Promise<void> {
  if (await client.get(IMAGES, SEED_NAMESPACE, TEST_IMAGE)) return;
  say(`building the test guest image "${TEST_IMAGE}" from Debian packages (first start only)`);
  const { buildTestGuest } = await import('../guest/build.js');
  const guest = await buildTestGuest({ outDir: testGuestCacheDir(dataDir), log: (m: string) => say(`  ${m}`) });
  await createIfAbsent(() =>
    client.create(IMAGES, {
      metadata: { name: TEST_IMAGE, namespace: SEED_NAMESPACE, labels: { 'kova.dev/default': 'true' } },
      spec: { source: { file: { path: guest.imagePath } }, format: 'qcow2', sha256: guest.sha256, visibility: 'Public' },
    }),
  );
  say(`image ${SEED_NAMESPACE}/${TEST_IMAGE} registered (Public)`);
}
