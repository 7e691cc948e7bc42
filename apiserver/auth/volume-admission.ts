// Volume admission: the rules of #16 that read other objects, the way kube-apiserver's
// DefaultStorageClass and PersistentVolumeClaimResize plugins do for PVCs, and Cinder's attach
// check of a volume already in use:
//   - a Volume created without spec.volumeType gets one: its source's (a snapshot's
//     status.volumeType, a cloned volume's type, as Cinder does), else the default VolumeType
//     (annotated kova.dev/is-default-volume-type "true"; the newest when several are, as
//     Kubernetes picks its default StorageClass); none leaves it unset for the controller to
//     report. A named VolumeType that does not exist yet is fine (GitOps apply order).
//   - raising a Volume's spec.size needs its VolumeType to allow expansion;
//   - an Instance write that adds a volume to spec.volumes is refused when another instance of
//     the project lists that volume or has it attached (Volume status.attachments) and its
//     VolumeType does not allow multiAttach. Entries the stored instance already had are not
//     judged again, so unrelated edits of an instance never fail here.
// Reads stay small: a Volume create reads its source or lists the (few, cluster-wide)
// VolumeTypes; a resize reads one VolumeType; an Instance write reads nothing unless it adds
// volumes, then each added Volume and its type, and lists the instances of its one namespace
// only when a single-attach volume is not already seen attached elsewhere.
// Two concurrent writes can still both pass (as with any check before a write): the host agent
// refuses to attach a single-attach volume that is in use elsewhere.
import type { FieldCause, KObject } from '../../api/types.js';
import { isDefaultVolumeType } from '../../api/kinds/volumetype.js';
import type { VolumeType } from '../../api/kinds/volumetype.js';
import { causes } from '../../api/validation.js';
import { formatQuantity, parseQuantity } from '../../api/quantity.js';
import type { ResourceStore } from '../resource-store.js';
import { isObj, KOVA_GROUP, KovaReads, objectName, specOf } from './kova-reads.js';
import { invalid } from '../status.js';
import type { Admission } from './hooks.js';
import type { RequestAttributes } from './types.js';


const str = (v: unknown): string | undefined => (typeof v === 'string' && v ? v : undefined);

/**
 * The VolumeType a Volume without one gets: among those annotated default, the newest by
 * creationTimestamp, ties to the smaller name (kube's storageutil.GetDefaultClass).
 */
export function defaultVolumeTypeName(types: ReadonlyArray<Pick<VolumeType, 'metadata'>>): string | undefined {
  const time = (t: Pick<VolumeType, 'metadata'>) => Date.parse(t.metadata.creationTimestamp ?? '') || 0;
  const defaults = types.filter(isDefaultVolumeType).sort((a, b) => time(b) - time(a) || (a.metadata.name! < b.metadata.name! ? -1 : a.metadata.name! > b.metadata.name! ? 1 : 0));
  return defaults[0]?.metadata.name;
}

function bytesOf(q: unknown): number | undefined {
  if (typeof q !== 'string' && typeof q !== 'number') return undefined;
  try {
    return parseQuantity(q);
  } catch {
    return undefined; // validation reports it
  }
}

/** The volume names of spec.volumes, with their index. */
function volumeEntries(o: KObject | undefined): Array<{ volume: string; index: number }> {
  const list = specOf(o).volumes;
  if (!Array.isArray(list)) return [];
  const out: Array<{ volume: string; index: number }> = [];
  list.forEach((e, index) => {
    const volume = isObj(e) ? objectName(e.volume) : undefined;
    if (volume) out.push({ volume, index });
  });
  return out;
}

export class VolumeAdmission implements Admission {
  private readonly store: KovaReads;

  constructor(resources: ResourceStore) {
    this.store = new KovaReads(resources);
  }



  async admit(a: RequestAttributes, object: KObject | undefined): Promise<void> {
    // Updates and patches are judged by their result (admitResult), against the stored object.
    if (!isWrite(a) || a.verb !== 'create' || !isObj(object)) return;
    if (a.resource === 'volumes') await this.defaultVolumeType(a, object);
    else if (a.resource === 'instances') await this.checkAttachments(a, object, undefined);
  }

  async admitResult(a: RequestAttributes, object: KObject, old: KObject | undefined): Promise<void> {
    if (!isWrite(a)) return;
    if (a.resource === 'volumes') {
      if (!old) await this.defaultVolumeType(a, object); // server-side apply creating it
      else await this.checkExpansion(a, object, old);
    } else if (a.resource === 'instances') {
      await this.checkAttachments(a, object, old);
    }
  }

  /** Fills spec.volumeType of a new Volume that names none (the object is stored as changed here). */
  private async defaultVolumeType(a: RequestAttributes, volume: KObject): Promise<void> {
    const spec = volume.spec;
    if (!isObj(spec) || (spec.volumeType !== undefined && spec.volumeType !== null)) return;
    const name = (await this.sourceVolumeType(a.namespace || volume.metadata?.namespace, spec.source)) ?? defaultVolumeTypeName((await this.store.list('volumetypes', undefined)) as VolumeType[]);
    if (name) spec.volumeType = name;
  }

  /** A restored snapshot's or a cloned volume's VolumeType, when that source exists and has one. */
  private async sourceVolumeType(ns: string | undefined, source: unknown): Promise<string | undefined> {
    if (!isObj(source) || !ns) return undefined;
    const snapshot = objectName(source.snapshot);
    if (snapshot) {
      const s = await this.store.read('volumesnapshots', ns, snapshot);
      return objectName(isObj(s?.status) ? s.status.volumeType : undefined);
    }
    const volume = objectName(source.volume);
    if (volume) return objectName(specOf(await this.store.read('volumes', ns, volume)).volumeType);
    return undefined;
  }

  /** A bigger spec.size needs a VolumeType that allows expansion (a missing type is the controller's to report). */
  private async checkExpansion(a: RequestAttributes, volume: KObject, old: KObject): Promise<void> {
    const from = bytesOf(specOf(old).size);
    const to = bytesOf(specOf(volume).size);
    if (from === undefined || to === undefined || to <= from) return;
    const typeName = objectName(specOf(volume).volumeType) ?? objectName(specOf(old).volumeType);
    if (!typeName) return;
    const type = await this.store.read('volumetypes', undefined, typeName);
    if (!type || specOf(type).allowVolumeExpansion !== false) return;
    const name = old.metadata.name ?? a.name;
    throw invalid(this.store.info('volumes'), name, [
      causes.forbidden('spec.size', `its VolumeType ${JSON.stringify(typeName)} does not allow expansion (allowVolumeExpansion is false): the volume stays at ${formatQuantity(from)}`),
    ]);
  }

  /** Refuses volumes newly listed in spec.volumes that another instance holds and that cannot be shared. */
  private async checkAttachments(a: RequestAttributes, instance: KObject, old: KObject | undefined): Promise<void> {
    const had = new Set(volumeEntries(old).map((e) => e.volume));
    const added = volumeEntries(instance).filter((e) => !had.has(e.volume));
    if (!added.length) return;
    const ns = a.namespace || instance.metadata?.namespace;
    const self = instance.metadata?.name || a.name;
    if (!ns) return;
    const types = new Map<string, KObject | undefined>();
    let others: KObject[] | undefined;
    const out: FieldCause[] = [];
    for (const { volume, index } of added) {
      const v = await this.store.read('volumes', ns, volume);
      const typeName = objectName(specOf(v).volumeType);
      // Nothing is attached before the Volume and its type exist; the controller reports them missing.
      if (!v || !typeName) continue;
      if (!types.has(typeName)) types.set(typeName, await this.store.read('volumetypes', undefined, typeName));
      const type = types.get(typeName);
      if (!type || specOf(type).multiAttach === true) continue;
      const attachments = isObj(v.status) && Array.isArray(v.status.attachments) ? v.status.attachments : [];
      let holder = attachments.map((x) => (isObj(x) ? str(x.instance) : undefined)).find((n) => n && n !== self);
      if (!holder) {
        others ??= (await this.store.list('instances', ns));
        holder = others.find((o) => o.metadata.name !== self && volumeEntries(o).some((e) => e.volume === volume))?.metadata.name;
      }
      if (holder) {
        out.push(causes.forbidden(`spec.volumes[${index}].volume`, `volume ${JSON.stringify(volume)} is attached to instance ${JSON.stringify(holder)}; its VolumeType ${JSON.stringify(typeName)} does not allow multiAttach`));
      }
    }
    if (out.length) throw invalid(this.store.info('instances'), self ?? '', out);
  }
}

/** A write of a Volume or an Instance itself (status writes never change spec). */
function isWrite(a: RequestAttributes): boolean {
  return a.resourceRequest && a.apiGroup === KOVA_GROUP && a.subresource === '' && (a.resource === 'volumes' || a.resource === 'instances') &&
    (a.verb === 'create' || a.verb === 'update' || a.verb === 'patch');
}
