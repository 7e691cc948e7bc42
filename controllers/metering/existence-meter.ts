// Meters of what is charged while it exists: Volumes (GiB-hours at spec.size, a new interval
// from the time the size changed) and FloatingIPs (hours allocated), from creationTimestamp to
// deletionTimestamp, into ledgers volume-<uid> / floatingip-<uid>. Each carries the finalizer
// kova.dev/metering from its creation until its deletion is recorded.
import { FLOATING_IPS, METERING_FINALIZER, VOLUMES } from '../../api/kinds/index.js';
import type { FloatingIP, MeteredKind, Volume } from '../../api/kinds/index.js';
import type { ManagedFieldsEntry } from '../../api/types.js';
import { advance, existenceFacts, ledgerName, RECORD_TYPE_LABEL, rfc3339, timeOf, volumeSize } from '../../api/metering.js';
import type { SpanSize } from '../../api/metering.js';
import type { Kind } from '../../client/client.js';
import type { Reconciler, Request } from '../../client/controller.js';
import { namespaceTerminating, writeRecord } from './ledger-writer.js';
import type { Cache } from './ledger-writer.js';
import type { MeterDeps } from './instance-meter.js';

type Existing = Volume | FloatingIP;

abstract class ExistenceMeter<T extends Existing> implements Reconciler {
  abstract readonly name: string;
  protected abstract readonly kind: MeteredKind;
  protected abstract readonly resource: Kind;

  constructor(
    private readonly d: MeterDeps,
    private readonly objects: Cache<T>,
    private readonly now: () => number,
  ) {}

  protected abstract size(obj: T): SpanSize;
  /** When the charged size last changed (for volumes); undefined when it cannot change. */
  protected resizedAt(_obj: T): number | undefined {
    return undefined;
  }

  async reconcile(req: Request): Promise<void> {
    const ns = req.namespace!;
    const obj = this.objects.get(ns, req.name);
    if (!obj?.metadata.uid) return;
    const fins = obj.metadata.finalizers ?? [];
    const deleting = !!obj.metadata.deletionTimestamp;
    if (!deleting && !fins.includes(METERING_FINALIZER)) await this.d.client.addFinalizer(this.resource, ns, req.name, METERING_FINALIZER);
    const uid = obj.metadata.uid;
    const name = ledgerName(this.kind, uid);
    const facts = existenceFacts(obj);
    try {
      await writeRecord(this.d.client, this.d.records.get(ns, name), ns, name, { [RECORD_TYPE_LABEL]: 'ledger' }, (cur) => {
        const spec = cur?.spec ?? { subject: { kind: this.kind, name: req.name, uid } };
        if (spec.deleted) return undefined;
        const intervals = advance(spec.intervals ?? [], facts, { size: () => this.size(obj), resizeAt: this.resizedAt(obj) });
        return { ...spec, intervals, ...(facts.deletedAt !== undefined ? { deleted: rfc3339(facts.deletedAt) } : {}) };
      });
    } catch (e) {
      // A project being deleted refuses new records (and takes its records along): let the object go.
      if (!namespaceTerminating(e)) throw e;
    }
    if (deleting && fins.includes(METERING_FINALIZER)) await this.d.client.removeFinalizer(this.resource, ns, req.name, METERING_FINALIZER);
  }

  protected nowMs(): number {
    return this.now();
  }
}

export class VolumeMeter extends ExistenceMeter<Volume> {
  readonly name = 'metering-volumes';
  protected readonly kind = 'Volume' as const;
  protected readonly resource = VOLUMES;

  protected size(v: Volume): SpanSize {
    return volumeSize(v);
  }

  /** The time of the last write of spec.size (managedFields), or now when none says. */
  protected override resizedAt(v: Volume): number {
    const touched = (v.metadata.managedFields as ManagedFieldsEntry[] | undefined ?? [])
      .filter((m) => !m.subresource && (m.fieldsV1 as { 'f:spec'?: Record<string, unknown> } | undefined)?.['f:spec']?.['f:size'] !== undefined)
      .map((m) => timeOf(m.time) ?? -Infinity);
    const t = Math.max(-Infinity, ...touched);
    return Number.isFinite(t) ? t : this.nowMs();
  }
}

export class FloatingIPMeter extends ExistenceMeter<FloatingIP> {
  readonly name = 'metering-floatingips';
  protected readonly kind = 'FloatingIP' as const;
  protected readonly resource = FLOATING_IPS;

  protected size(): SpanSize {
    return {};
  }
}
