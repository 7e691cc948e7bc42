// The image controller (Glance's importer, the Kubernetes way): each Image whose spec was not
// imported yet is copied or downloaded into the content-addressed store DATA_DIR/images,
// checked, and reported: phase Pending → Importing (status.progress "NN%") → Ready | Failed,
// with the Ready condition and Events. An import failure that a retry cannot fix (checksum,
// format) is final for that generation; a source that is unavailable is retried with back-off.
import { access } from 'node:fs/promises';
import type { KObject } from '../../api/types.js';
import type { ApiClient } from '../../client/client.js';
import { controllerFor, errorMessage, withDefaults } from '../../client/controller.js';
import type { ControllerHandle, ControllerStartOptions, Reconciler, Request, Result } from '../../client/controller.js';
import { EventRecorder } from '../../client/events.js';
import { setCondition } from '../../api/conditions.js';
import type { Condition } from '../../api/conditions.js';
import { IMAGES } from '../../api/kinds/index.js';
import type { Image, ImageSource, ImageStatus } from '../../api/kinds/index.js';
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
}

export class ImageReconciler implements Reconciler {
  readonly name = 'image';
  /** Consecutive unavailable-source attempts per Image uid, for the retry delay. */
  private readonly attempts = new Map<string, number>();

  constructor(private readonly o: ImageReconcilerOptions) {}

  async reconcile(req: Request, signal: AbortSignal): Promise<Result | void> {
    const cached = this.o.images.get(req.namespace, req.name);
    if (!cached || !(await this.needsImport(cached))) return;
    // Imports are expensive and rare: decide on the live object, not a cache that may lag
    // behind our own last write.
    const img = await this.o.client.get<Image>(IMAGES, req.namespace, req.name);
    if (!img || !(await this.needsImport(img))) return;
    return this.import(img, signal);
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

  private async import(img: Image, signal: AbortSignal): Promise<Result | void> {
    const { recorder } = this.o;
    const gen = img.metadata.generation;
    const from = describeSource(img.spec.source);
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
        source: img.spec.source, storeDir: this.o.storeDir, sha256: img.spec.sha256, format: img.spec.format,
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
}

/** Starts the Image informer and workers; resolves once synced. */
export async function startImageController(opts: ImageControllerOptions): Promise<ControllerHandle> {
  const { client, signal, log, informers } = withDefaults(opts);
  const images = informers.for<Image>(IMAGES);
  const recorder = new EventRecorder(client, 'kova-image-controller', { log });
  const reconciler = new ImageReconciler({ client, images, storeDir: opts.storeDir, recorder, log });
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
    .start(signal);
}
