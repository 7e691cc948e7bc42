// Provisions the Volumes this host owns (status.hostName, or the kova.dev/selected-host
// annotation the scheduler or the volume controller set) and keeps their status true: creates
// the disk (blank, from an Image, a VolumeSnapshot or a clone), grows it when spec.size rises
// (online through the domain that uses it), reports the attachments the instances' hosts
// report, and deletes the file once nothing uses the volume (finalizer kova.dev/volume-protection,
// like pvc-protection). Level-triggered: each pass reads the caches and the driver, acts once,
// and writes the status that follows; safe after a crash at any point (driver calls are idempotent).
import { isDeepStrictEqual } from 'node:util';
import type { Volume, VolumeStatus } from '../../api/kinds/index.js';
import { VOLUME_PROTECTION_FINALIZER, VOLUMES } from '../../api/kinds/index.js';
import type { ImageResolution } from '../../api/image-visibility.js';
import { setCondition } from '../../api/conditions.js';
import { formatQuantity } from '../../api/quantity.js';
import { errorMessage, TerminalError } from '../../client/controller.js';
import type { Reconciler, Request, Result } from '../../client/controller.js';
import type { ApiClient } from '../../client/client.js';
import type { EventRecorder } from '../../client/events.js';
import { domainName, InvalidSpec } from '../driver.js';
import type { ComputeDriver, DiskFileInfo, VolumeContent, VolumeDisk } from '../driver.js';
import { imageReadiness } from '../image-cache.js';
import type { ImageCache, ImageObjectView } from '../image-cache.js';
import { attachmentPhase, attachmentsOf, backendNamed, backendOf, sizeBytes, snapshotDisk, volumeDisk, volumeUses } from './storage.js';
import { volumeHost } from '../../api/kinds/index.js';
import type { StorageView, VolumeUse } from './storage.js';

export interface VolumeReconcilerOptions {
  client: ApiClient;
  hostName: string;
  driver: ComputeDriver;
  storage: StorageView;
  images: { cache?: ImageCache; lookup: (namespace: string, name: string) => ImageResolution<ImageObjectView> };
  recorder: EventRecorder;
  log: (msg: string) => void;
  /** How often a volume waiting for something without events is looked at again (default 30 s). */
  waitRequeueMs?: number;
}

type Cond = { type: string; status: 'True' | 'False' | 'Unknown'; reason: string; message: string };

export class VolumeReconciler implements Reconciler {
  readonly name: string;
  readonly stats = { created: 0, deleted: 0, resized: 0, statusWrites: 0 };

  constructor(private readonly o: VolumeReconcilerOptions) {
    this.name = `volumes-${o.hostName}`;
  }

  async reconcile(req: Request): Promise<Result | void> {
    const { storage, driver, hostName } = this.o;
    const ns = req.namespace!;
    const v = storage.volume(ns, req.name);
    if (!v || volumeHost(v) !== hostName) return;
    const type = v.spec.volumeType ? storage.volumeType(v.spec.volumeType) : undefined;
    const deleting = !!v.metadata.deletionTimestamp;
    const ours = (v.metadata.finalizers ?? []).includes(VOLUME_PROTECTION_FINALIZER);
    if (!type) {
      if (deleting) return ours ? this.release(v) : undefined; // nothing was created without a type
      return this.wait(v, 'Pending', 'VolumeTypeNotFound', `VolumeType ${v.spec.volumeType ?? '(none)'} not found; create it, or set spec.volumeType`);
    }
    const backend = backendOf(type);
    if ('invalid' in backend) return this.fail(v, 'InvalidVolumeType', backend.invalid);
    const disk = volumeDisk(v, type, backend);
    const uses = volumeUses(v, storage);

    if (deleting) {
      if (!ours) return;
      if (uses.length) {
        const who = uses.map((u) => u.instance.metadata.name).join(', ');
        return this.wait(v, 'Deleting', 'VolumeInUse', `the volume is used by instance ${who}; it is deleted once removed from their spec.volumes and detached`);
      }
      await driver.deleteVolume(disk);
      this.stats.deleted++;
      return this.release(v);
    }
    if (!ours) {
      // Before the file exists, so a delete can never skip removing it.
      await this.o.client.addFinalizer(VOLUMES, ns, req.name, VOLUME_PROTECTION_FINALIZER);
      return { requeueAfterMs: 0 };
    }

    let info = await driver.volumeInfo(disk);
    if (!info) {
      if (v.status?.capacity !== undefined) {
        // It existed: never replace lost data with a blank disk silently.
        return this.fail(v, 'VolumeMissing', `the volume's disk is missing on host ${hostName}; restore it from a snapshot`);
      }
      const content = await this.content(v);
      if ('wait' in content) return this.wait(v, 'Pending', content.reason, content.wait);
      await this.write(v, { phase: 'Creating' }, { type: 'Ready', status: 'False', reason: 'Creating', message: `creating the disk on host ${hostName}` });
      try {
        info = await driver.createVolume(disk, sizeBytes(v), content.content);
      } catch (e) {
        if (e instanceof InvalidSpec) return this.fail(v, 'InvalidSource', e.message);
        throw e;
      }
      this.stats.created++;
      void this.o.recorder.normal(v, 'Created', `created the disk on host ${hostName} (${describeContent(v)})`);
    }

    const want = sizeBytes(v);
    if (info.virtualBytes < want) {
      const r = await this.extend(v, disk, info, want, uses);
      if ('wait' in r) return r.wait;
      info = r.info;
    }
    return this.report(v, info, uses);
  }

  /** Grows the disk: online through a running domain on this host that uses it, offline when none does. */
  private async extend(v: Volume, disk: VolumeDisk, info: DiskFileInfo, want: number, uses: VolumeUse[]): Promise<{ info: DiskFileInfo } | { wait: Result | void }> {
    const { hostName, driver } = this.o;
    const attached = uses.filter((u) => u.reported);
    const elsewhere = attached.find((u) => u.instance.status?.hostName !== hostName);
    if (elsewhere) {
      return { wait: await this.wait(v, 'Extending', 'ExtensionPending', `the volume is attached to instance ${elsewhere.instance.metadata.name} on host ${elsewhere.instance.status?.hostName}; it is extended when detached from it`) };
    }
    const here = attached.find((u) => u.reported?.state === 'Attached');
    const domain = here && domainName(here.instance.metadata.namespace!, here.instance.metadata.name!, here.instance.metadata.uid!);
    await this.write(v, { phase: 'Extending' }, { type: 'Ready', status: 'True', reason: 'Extending', message: `growing the disk from ${formatQuantity(info.virtualBytes)} to ${formatQuantity(want)}${domain ? ' online' : ''}` });
    const out = await driver.resizeVolume(disk, want, domain);
    this.stats.resized++;
    void this.o.recorder.normal(v, 'Extended', `grew the disk to ${formatQuantity(out.virtualBytes)}${domain ? ` online (instance ${here!.instance.metadata.name})` : ''}`);
    return { info: out };
  }

  /** What the new disk holds, once its source is ready on this host. */
  private async content(v: Volume): Promise<{ content: VolumeContent } | { wait: string; reason: string }> {
    const { storage, hostName } = this.o;
    const ns = v.metadata.namespace!;
    const src = v.spec.source ?? {};
    if (src.image) {
      const ready = imageReadiness(this.o.images.lookup(ns, src.image));
      if ('waitReason' in ready) return { reason: ready.waitReason, wait: ready.message };
      if (!this.o.images.cache) return { content: { type: 'image', path: ready.ref.name, format: ready.ref.format } };
      try {
        const cached = await this.o.images.cache.ensure(ready.ref);
        return { content: { type: 'image', path: cached.path, format: cached.format } };
      } catch (e) {
        return { reason: 'ImageCacheFailed', wait: `image ${ready.ref.name} could not be cached on host ${hostName}: ${errorMessage(e)}` };
      }
    }
    if (src.snapshot) {
      const s = storage.snapshot(ns, src.snapshot);
      if (!s) return { reason: 'SnapshotNotFound', wait: `snapshot ${src.snapshot} not found` };
      if (!s.status?.readyToUse) return { reason: 'SnapshotNotReady', wait: `snapshot ${src.snapshot} is not ready to use yet` };
      const sb = backendNamed(storage, s.status.volumeType);
      if (!sb) return { reason: 'SnapshotNotReady', wait: `snapshot ${src.snapshot}: VolumeType ${s.status.volumeType ?? '(none)'} not found` };
      if (sb.type === 'local' && s.status.hostName !== hostName) return { reason: 'SnapshotElsewhere', wait: `snapshot ${src.snapshot} is stored on host ${s.status.hostName}, not on ${hostName}` };
      return { content: { type: 'snapshot', snapshot: snapshotDisk(s, sb) } };
    }
    if (src.volume) {
      const s = storage.volume(ns, src.volume);
      const st = s?.spec.volumeType ? storage.volumeType(s.spec.volumeType) : undefined;
      const sb = s && backendNamed(storage, s.spec.volumeType);
      if (!s || !st || !sb || s.status?.capacity === undefined) return { reason: 'SourceNotReady', wait: `source volume ${src.volume} is not created yet` };
      if (sb.type === 'local' && s.status.hostName !== hostName) return { reason: 'SourceElsewhere', wait: `source volume ${src.volume} is stored on host ${s.status.hostName}, not on ${hostName}` };
      const user = volumeUses(s, storage).find((u) => u.reported?.state === 'Attached' && u.instance.status?.hostName === hostName);
      const domain = user && domainName(ns, user.instance.metadata.name!, user.instance.metadata.uid!);
      return { content: { type: 'volume', volume: volumeDisk(s, st, sb), ...(domain ? { domain } : {}) } };
    }
    return { content: { type: 'blank' } };
  }

  /** The provisioned volume's status: capacity, attachments and the phase they make. */
  private async report(v: Volume, info: DiskFileInfo, uses: VolumeUse[]): Promise<void> {
    const attachments = attachmentsOf(uses) ?? [];
    const phase = attachmentPhase(attachments.map((a) => a.state));
    const who = attachments.map((a) => `${a.instance} (${a.state})`).join(', ');
    const message = phase === 'Available' ? '' : phase === 'InUse' ? `attached to ${who}` : `${phase.toLowerCase()}: ${who}`;
    await this.write(v, { phase, capacity: formatQuantity(info.virtualBytes), attachments }, { type: 'Ready', status: 'True', reason: phase, message });
  }

  private async wait(v: Volume, phase: VolumeStatus['phase'], reason: string, message: string): Promise<Result> {
    const changed = await this.write(v, { phase }, { type: 'Ready', status: 'False', reason, message });
    if (changed) void this.o.recorder.normal(v, reason, message);
    return { requeueAfterMs: this.o.waitRequeueMs ?? 30_000 };
  }

  private async fail(v: Volume, reason: string, message: string): Promise<never> {
    const changed = await this.write(v, { phase: 'Failed' }, { type: 'Ready', status: 'False', reason, message });
    if (changed) void this.o.recorder.warning(v, reason, message);
    throw new TerminalError(`volume ${v.metadata.namespace}/${v.metadata.name}: ${message}`);
  }

  private async release(v: Volume): Promise<void> {
    await this.o.client.removeFinalizer(VOLUMES, v.metadata.namespace, v.metadata.name!, VOLUME_PROTECTION_FINALIZER);
  }

  /**
   * Sets `fields` and the condition (and hostName, observedGeneration) through the status
   * subresource; nothing when the cached status already says so. Returns whether it wrote.
   */
  private async write(v: Volume, fields: Partial<VolumeStatus>, cond: Cond): Promise<boolean> {
    const apply = (prev: VolumeStatus | undefined): VolumeStatus => {
      const s: VolumeStatus = { ...(prev ?? {}), ...fields, hostName: this.o.hostName, observedGeneration: v.metadata.generation };
      if (fields.attachments && !fields.attachments.length) delete s.attachments;
      s.conditions = setCondition(prev?.conditions, { ...cond, observedGeneration: v.metadata.generation });
      return s;
    };
    if (same(v.status, apply(v.status))) return false;
    await this.o.client.updateStatus<Volume>(VOLUMES, v.metadata.namespace, v.metadata.name!, (obj) => {
      const next = apply(obj.status);
      if (same(obj.status, next)) return false;
      obj.status = next;
    });
    this.stats.statusWrites++;
    return true;
  }
}

function same(a: VolumeStatus | undefined, b: VolumeStatus): boolean {
  const norm = (s: VolumeStatus | undefined) => ({ ...(s ?? {}), conditions: s?.conditions?.map(({ lastTransitionTime: _t, ...c }) => ({ ...c, message: c.message || undefined })) });
  return isDeepStrictEqual(JSON.parse(JSON.stringify(norm(a))), JSON.parse(JSON.stringify(norm(b))));
}

function describeContent(v: Volume): string {
  const s = v.spec.source ?? {};
  if (s.image) return `from image ${s.image}`;
  if (s.snapshot) return `restored from snapshot ${s.snapshot}`;
  if (s.volume) return `cloned from volume ${s.volume}`;
  return 'blank';
}
