// The image controller (Glance's importer, the Kubernetes way): each Image whose spec was not
// imported yet is copied or downloaded into the content-addressed store DATA_DIR/images,
// checked, and reported: phase Pending → Importing (status.progress "NN%") → Ready | Failed,
// with the Ready condition and Events. An import failure that a retry cannot fix (checksum,
// format) is final for that generation; a source that is unavailable is retried with back-off.
// A VolumeSnapshot source (spec.source.snapshot) is imported once it is readyToUse, from its file
// (status.snapshotHandle) when the control plane can read it; a Volume source (spec.source.volume)
// first gets a VolumeSnapshot of its own, owned by the Image and deleted once imported.
import { access, realpath } from 'node:fs/promises';
import { basename, dirname, isAbsolute, sep } from 'node:path';
import type { KObject } from '../../api/types.js';
import { isAlreadyExists, isNotFound } from '../../client/client.js';
import type { ApiClient } from '../../client/client.js';
import { controllerFor, errorMessage, withDefaults } from '../../client/controller.js';
import type { ControllerHandle, ControllerStartOptions, Reconciler, Request, Result } from '../../client/controller.js';
import { EventRecorder } from '../../client/events.js';
import { findCondition, hasCondition, setCondition } from '../../api/conditions.js';
import type { Condition } from '../../api/conditions.js';
import { IMAGES, VOLUME_SNAPSHOTS, VOLUME_TYPES } from '../../api/kinds/index.js';
import type { Image, ImageSource, ImageStatus, VolumeSnapshot, VolumeType } from '../../api/kinds/index.js';
import { API_VERSION } from '../../api/kinds/meta.js';
import { ImportError, importImage, storePath } from '../../image-store/import.js';

export interface ImageReconcilerOptions {
  client: ApiClient;
  images: { get(namespace: string | undefined, name: string): Image | undefined };
  /** The image store, DATA_DIR/images. */
  storeDir: string;
  recorder: EventRecorder;
  log: (msg: string) => void;
  /** Minimum time between two progress writes (default 1 s). */
  progressEveryMs?: number;
  /** VolumeSnapshots (informer), for snapshot and volume sources. */
  snapshots?: { get(namespace: string | undefined, name: string): VolumeSnapshot | undefined };
  /** VolumeTypes (informer): the directories of shared backends are readable here. */
  volumeTypes?: { list(): readonly VolumeType[] };
  /**
   * Other directories holding snapshot files this host may read: the data directory of agents
   * running on the control-plane host (default: the store's parent, DATA_DIR).
   */
  snapshotDirs?: readonly string[];
  /** How often an Image waiting for its snapshot looks again without an event (default 30 s). */
  waitRequeueMs?: number;
}

/** The VolumeSnapshot an Image with spec.source.volume takes of it: `<image>-image-<uid[0:8]>`. */
export function imageSnapshotName(img: Image): string {
  return `${img.metadata.name!.slice(0, 48)}-image-${(img.metadata.uid ?? '').slice(0, 8)}`;
}

/** The snapshot a volume or snapshot source is imported from, or undefined for http/file. */
export function snapshotNameOf(img: Image): string | undefined {
  if (img.spec.source.snapshot) return img.spec.source.snapshot;
  if (img.spec.source.volume) return imageSnapshotName(img);
  return undefined;
}

const ownedBy = (o: KObject, img: Image) => !!img.metadata.uid && (o.metadata.ownerReferences ?? []).some((r) => r.uid === img.metadata.uid && r.controller === true);

/**
 * The snapshot's file as a path this host may read: absolute, resolved (no symlink out), named
 * after the snapshot's uid (as drivers name them), and inside one of `dirs`. Status is writable
 * by project admins, so a handle is never trusted as it stands: it could name a control-plane
 * secret or another project's volume.
 */
export async function trustedSnapshotFile(s: VolumeSnapshot, dirs: readonly string[]): Promise<{ path: string } | { unreachable: string }> {
  const handle = s.status?.snapshotHandle ?? '';
  const host = s.status?.hostName ?? 'unknown';
  const uid = s.metadata.uid ?? '';
  const where = `VolumeSnapshot "${s.metadata.name}" (file ${handle} on host ${host})`;
  if (!isAbsolute(handle) || !/^[0-9a-f-]{8,}$/i.test(uid)) return { unreachable: `${where}: not an absolute path of the snapshot's own file` };
  let real: string;
  try {
    real = await realpath(handle);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? errorMessage(e);
    return { unreachable: `${where} is not reachable from the control plane (${code}): a snapshot of a volume of a local VolumeType can be published only when its host's agent runs on the control-plane host; use a shared VolumeType otherwise` };
  }
  if (!basename(real).includes(uid)) return { unreachable: `${where}: the file is not named after the snapshot's uid ${uid}` };
  const roots: string[] = [];
  for (const d of dirs) roots.push(await realpath(d).catch(() => d));
  if (!roots.some((r) => real.startsWith(r.endsWith(sep) ? r : r + sep))) {
    return { unreachable: `${where} is outside the volume storage directories the control plane reads (shared VolumeTypes' sharedPath and its agents' data directory)` };
  }
  return { path: real };
}

/** What a snapshot or volume source resolves to: the file to import, a reason to wait, or a failure. */
type SnapshotSource = { file: string; snapshot: string } | { wait: string } | { fail: { reason: string; message: string } };

export class ImageReconciler implements Reconciler {
  readonly name = 'image';
  /** Consecutive unavailable-source attempts per Image uid, for the retry delay. */
  private readonly attempts = new Map<string, number>();

  constructor(private readonly o: ImageReconcilerOptions) {}

  async reconcile(req: Request, signal: AbortSignal): Promise<Result | void> {
    const cached = this.o.images.get(req.namespace, req.name);
    if (!cached) return;
    if (!(await this.needsImport(cached))) return this.deleteOwnSnapshot(cached);
    // Imports are expensive and rare: decide on the live object, not a cache that may lag
    // behind our own last write.
    const img = await this.o.client.get<Image>(IMAGES, req.namespace, req.name);
    if (!img) return;
    if (!(await this.needsImport(img))) return this.deleteOwnSnapshot(img);
    if (!snapshotNameOf(img)) return this.import(img, signal);
    const src = await this.snapshotSource(img);
    const gen = img.metadata.generation;
    if ('wait' in src) {
      const cond = { type: 'Ready', status: 'False' as const, reason: 'WaitingForSnapshot', message: src.wait, observedGeneration: gen };
      if (img.status?.phase !== 'Pending' || img.status.observedGeneration !== gen || !hasCondition(img.status.conditions, cond)) {
        await this.write(img, { phase: 'Pending', observedGeneration: gen, cond });
      }
      return { requeueAfterMs: this.o.waitRequeueMs ?? 30_000 };
    }
    if ('fail' in src) {
      const failed = await this.write(img, { phase: 'Failed', observedGeneration: gen, cond: { type: 'Ready', status: 'False', ...src.fail, observedGeneration: gen } });
      void this.o.recorder.warning(failed ?? img, src.fail.reason, src.fail.message);
      return this.deleteOwnSnapshot(img);
    }
    const retry = await this.import(img, signal, { file: { path: src.file } }, `VolumeSnapshot ${src.snapshot}`);
    if (retry || signal.aborted) return retry;
    return this.deleteOwnSnapshot(img); // imported, or failed for good
  }

  /** The snapshot to import from, once it is ready; for a volume source, taken first. */
  private async snapshotSource(img: Image): Promise<SnapshotSource> {
    const snapshots = this.o.snapshots;
    if (!snapshots) return { fail: { reason: 'SourceUnavailable', message: 'this image controller does not follow VolumeSnapshots' } };
    const ns = img.metadata.namespace!;
    const name = snapshotNameOf(img)!;
    let s = snapshots.get(ns, name);
    const volume = img.spec.source.volume;
    if (volume) {
      if (s && !ownedBy(s, img)) {
        return { fail: { reason: 'SnapshotConflict', message: `VolumeSnapshot "${name}" exists and does not belong to this image; delete or rename it` } };
      }
      if (s && s.spec.source.volume !== volume) {
        // Left from an earlier spec.source.volume: take a new one of the current volume.
        await this.o.client.delete(VOLUME_SNAPSHOTS, ns, name, { preconditions: { uid: s.metadata.uid } }).catch((e) => { if (!isNotFound(e)) throw e; });
        return { wait: `waiting for the snapshot of the previous volume ("${s.spec.source.volume}") to be deleted` };
      }
      if (!s) s = await this.createSnapshot(img, name, volume);
      if (s && !ownedBy(s, img)) return { fail: { reason: 'SnapshotConflict', message: `VolumeSnapshot "${name}" exists and does not belong to this image; delete or rename it` } };
      if (!s) return { wait: `taking VolumeSnapshot "${name}" of volume "${volume}"` };
    }
    if (!s) return { wait: `VolumeSnapshot "${name}" not found; waiting for it` };
    if (s.metadata.deletionTimestamp) return { wait: `VolumeSnapshot "${name}" is being deleted` };
    if (!s.status?.readyToUse || !s.status.snapshotHandle) {
      const why = findCondition(s.status?.conditions, 'Ready')?.message;
      return { wait: `waiting for VolumeSnapshot "${name}" to be ready to use${why ? ` (${why})` : ''}` };
    }
    const dirs = [...(this.o.snapshotDirs ?? [dirname(this.o.storeDir)])];
    for (const t of this.o.volumeTypes?.list() ?? []) if (t.spec.backend === 'shared' && t.spec.sharedPath) dirs.push(t.spec.sharedPath);
    const file = await trustedSnapshotFile(s, dirs);
    if ('unreachable' in file) return { fail: { reason: 'SnapshotUnreachable', message: file.unreachable } };
    return { file: file.path, snapshot: `${ns}/${name}` };
  }

  /** The Image's own snapshot of its volume (idempotent: an existing one is returned). */
  private async createSnapshot(img: Image, name: string, volume: string): Promise<VolumeSnapshot | undefined> {
    const ns = img.metadata.namespace!;
    try {
      return await this.o.client.create<VolumeSnapshot>(VOLUME_SNAPSHOTS, {
        apiVersion: API_VERSION,
        kind: 'VolumeSnapshot',
        metadata: {
          name, namespace: ns,
          labels: { 'kova.dev/image': img.metadata.name!.slice(0, 63) },
          ownerReferences: [{ apiVersion: API_VERSION, kind: 'Image', name: img.metadata.name!, uid: img.metadata.uid!, controller: true, blockOwnerDeletion: true }],
        },
        spec: { source: { volume } },
      });
    } catch (e) {
      if (!isAlreadyExists(e)) throw e;
      return this.o.client.get<VolumeSnapshot>(VOLUME_SNAPSHOTS, ns, name);
    }
  }

  /** Once a volume source is imported (or failed), its snapshot is not needed any more. */
  private async deleteOwnSnapshot(img: Image): Promise<void> {
    if (!img.spec.source.volume || !this.o.snapshots) return;
    const name = imageSnapshotName(img);
    const s = this.o.snapshots.get(img.metadata.namespace, name);
    if (!s || s.metadata.deletionTimestamp || !ownedBy(s, img)) return;
    await this.o.client.delete(VOLUME_SNAPSHOTS, img.metadata.namespace, name, { preconditions: { uid: s.metadata.uid } }).catch((e) => {
      if (!isNotFound(e)) throw e;
    });
    this.o.log(`image ${key(img)}: imported; deleted its VolumeSnapshot ${name}`);
  }

  private async needsImport(img: Image): Promise<boolean> {
    if (img.metadata.deletionTimestamp) return false;
    const st = img.status ?? {};
    const gen = img.metadata.generation;
    if (st.observedGeneration === gen && st.phase === 'Failed') return false;
    if (st.observedGeneration === gen && st.phase === 'Ready' && st.sha256 && st.format) {
      // Level-triggered: a store file that vanished is imported again.
      if (await exists(storePath(this.o.storeDir, st.sha256, st.format))) return false;
      this.o.log(`image ${key(img)}: ${st.sha256}.${st.format} is missing from the store; importing again`);
    }
    return true;
  }

  private async import(img: Image, signal: AbortSignal, source: ImageSource = img.spec.source, from = describeSource(img.spec.source)): Promise<Result | void> {
    const { recorder } = this.o;
    const gen = img.metadata.generation;
    const current = await this.write(img, {
      phase: 'Importing', progress: '0%', observedGeneration: gen,
      cond: { type: 'Ready', status: 'False', reason: 'Importing', message: `importing from ${from}`, observedGeneration: gen },
    });
    if (!current) return;
    void recorder.normal(current, 'Importing', `importing from ${from}`);
    // Progress writes are fire-and-forget but serialized, and the final write waits for them.
    let progressChain: Promise<unknown> = Promise.resolve();
    const onProgress = (pct: number) => {
      progressChain = progressChain.then(() => this.o.client.patchStatus(IMAGES, img.metadata.namespace, img.metadata.name!, { status: { progress: `${pct}%` } }).catch(() => undefined));
    };
    const started = Date.now();
    try {
      const out = await importImage({
        source, storeDir: this.o.storeDir, sha256: img.spec.sha256, format: img.spec.format,
        tempName: img.metadata.uid ?? `${img.metadata.namespace}-${img.metadata.name}`,
        onProgress, progressEveryMs: this.o.progressEveryMs ?? 1000, signal,
      });
      await progressChain;
      this.attempts.delete(img.metadata.uid ?? key(img));
      const done = await this.write(img, {
        phase: 'Ready', progress: '100%', observedGeneration: gen, size: out.size, virtualSize: out.virtualSize, format: out.format, sha256: out.sha256,
        cond: { type: 'Ready', status: 'True', reason: 'Imported', message: `${out.format}, ${out.size} bytes, sha256 ${out.sha256}`, observedGeneration: gen },
      });
      const secs = ((Date.now() - started) / 1000).toFixed(1);
      this.o.log(`image ${key(img)}: imported ${out.path} (${out.size} bytes, ${secs} s)`);
      if (done) void recorder.normal(done, 'Imported', `imported ${out.format} image, ${out.size} bytes in ${secs} s, sha256 ${out.sha256}`);
    } catch (e) {
      await progressChain;
      if (signal.aborted) return;
      const uid = img.metadata.uid ?? key(img);
      if (!(e instanceof ImportError) || e.reason === 'SourceUnavailable') {
        // Maybe transient (network, file not there yet): stay Importing and retry, 2 s doubling to 5 min.
        const n = (this.attempts.get(uid) ?? 0) + 1;
        this.attempts.set(uid, n);
        const delay = Math.min(2000 * 2 ** (n - 1), 300_000);
        const msg = `${errorMessage(e)} (attempt ${n}, retrying in ${Math.round(delay / 1000)} s)`;
        this.o.log(`image ${key(img)}: ${msg}`);
        await this.write(img, { phase: 'Importing', observedGeneration: gen, cond: { type: 'Ready', status: 'False', reason: 'SourceUnavailable', message: msg, observedGeneration: gen } });
        void recorder.warning(current, 'SourceUnavailable', errorMessage(e));
        return { requeueAfterMs: delay };
      }
      this.attempts.delete(uid);
      const failed = await this.write(img, {
        phase: 'Failed', observedGeneration: gen, sha256: e.actualSha256,
        cond: { type: 'Ready', status: 'False', reason: e.reason, message: e.message, observedGeneration: gen },
      });
      void recorder.warning(failed ?? current, e.reason, e.message);
    }
  }

  /** Status write with conflict retries; undefined when the Image is gone. */
  private async write(img: Image, s: Omit<ImageStatus, 'conditions'> & { cond: Omit<Condition, 'lastTransitionTime'> }): Promise<Image | undefined> {
    const { cond, ...fields } = s;
    return this.o.client.updateStatus<Image>(IMAGES, img.metadata.namespace, img.metadata.name!, (fresh) => {
      if (fresh.metadata.uid !== img.metadata.uid) return false;
      const set = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as Partial<ImageStatus>;
      const st: ImageStatus = { ...fresh.status, ...set };
      st.conditions = setCondition(st.conditions, cond);
      fresh.status = st;
    });
  }
}

function describeSource(src: ImageSource): string {
  if (src.snapshot) return `VolumeSnapshot ${src.snapshot}`;
  if (src.volume) return `volume ${src.volume}`;
  return src.file ? `file ${src.file.path}` : (src.http?.url ?? 'no source');
}

function key(img: KObject): string {
  return `${img.metadata.namespace}/${img.metadata.name}`;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}

export interface ImageControllerOptions extends ControllerStartOptions {
  /** Image store directory (DATA_DIR/images). */
  storeDir: string;
  /** Parallel imports (default 2). */
  workers?: number;
  /** See ImageReconcilerOptions.snapshotDirs. */
  snapshotDirs?: readonly string[];
  waitRequeueMs?: number;
}

/** Starts the Image informer and workers; resolves once synced. */
export async function startImageController(opts: ImageControllerOptions): Promise<ControllerHandle> {
  const { client, signal, log, informers } = withDefaults(opts);
  const images = informers.for<Image>(IMAGES);
  const snapshots = informers.for<VolumeSnapshot>(VOLUME_SNAPSHOTS);
  const volumeTypes = informers.for<VolumeType>(VOLUME_TYPES);
  const recorder = new EventRecorder(client, 'kova-image-controller', { log });
  const reconciler = new ImageReconciler({ client, images, storeDir: opts.storeDir, recorder, log, snapshots, volumeTypes, snapshotDirs: opts.snapshotDirs, waitRequeueMs: opts.waitRequeueMs });
  /** Imports may queue behind others (few workers): say Pending until one starts. Conflict-safe: it never overwrites a phase a worker has written meanwhile. */
  const reportPending = (i: Image) => {
    if (i.status?.phase) return;
    void client.updateStatus<Image>(IMAGES, i.metadata.namespace, i.metadata.name!, (fresh) => {
      if (fresh.status?.phase) return false;
      fresh.status = { ...(fresh.status ?? {}), phase: 'Pending' };
    }).catch((e) => log(`image ${i.metadata.namespace}/${i.metadata.name}: could not report Pending: ${errorMessage(e)}`));
  };
  const self = (i: Image): Request => ({ namespace: i.metadata.namespace, name: i.metadata.name! });
  return controllerFor(reconciler, { workers: opts.workers ?? 2, log })
    .watches(images, (i) => {
      reportPending(i);
      return self(i);
    }, ['add'])
    // Only spec changes matter: our own status writes (progress) must not restart an import.
    .watches(images, (i) => (i.status?.observedGeneration !== i.metadata.generation ? self(i) : undefined), ['update'])
    // A snapshot an Image waits for (its source, or its own of a volume) became ready, or went.
    .watches(snapshots, (s) => images.list(s.metadata.namespace).filter((i) => snapshotNameOf(i) === s.metadata.name).map(self))
    .reads(volumeTypes)
    .start(signal);
}
