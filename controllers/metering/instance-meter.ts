// The instance meter: records each Instance's running intervals (api/metering.ts instanceFacts)
// with the size its host charges it for at the start of the run (a resize applies at a restart,
// which restamps status.startedAt and so opens a new interval) into its ledger, a UsageRecord
// named instance-<uid> that outlives it. A bound instance carries the finalizer kova.dev/metering,
// removed once its deletionTimestamp is recorded and its agent is done with it, so a deletion
// while this controller is down still ends its usage exactly, with its last network counts. The
// runs and stops it missed while down come from the instance's status.powerHistory (the agent
// appends each transition), replayed before the current state.
import { parseLenient, instanceRequest } from '../../api/resources.js';
import { chargedSize } from '../../api/resize.js';
import { INSTANCES, METERING_FINALIZER } from '../../api/kinds/index.js';
import { INSTANCE_FINALIZER } from '../../api/types.js';
import type { Flavor, Host, Instance, UsageRecord, UsageSpan } from '../../api/kinds/index.js';
import { advanceInstance, boundIntervals, instanceFacts, ledgerName, mergeCheckpoint, networkCheckpoint, RECORD_TYPE_LABEL, rfc3339, sameSize } from '../../api/metering.js';
import type { SpanSize } from '../../api/metering.js';
import type { ApiClient } from '../../client/client.js';
import type { Reconciler, Request } from '../../client/controller.js';
import { namespaceTerminating, writeRecord } from './ledger-writer.js';
import type { Cache } from './ledger-writer.js';

export interface MeterDeps {
  client: ApiClient;
  records: Cache<UsageRecord>;
  log: (msg: string) => void;
}

export class InstanceMeter implements Reconciler {
  readonly name = 'metering-instances';

  constructor(
    private readonly d: MeterDeps,
    private readonly instances: Cache<Instance>,
    private readonly hosts: Cache<Host>,
    private readonly flavors: Cache<Flavor>,
  ) {}

  async reconcile(req: Request): Promise<void> {
    const ns = req.namespace!;
    const inst = this.instances.get(ns, req.name);
    if (!inst?.metadata.uid) return;
    const fins = inst.metadata.finalizers ?? [];
    const deleting = !!inst.metadata.deletionTimestamp;
    // Only a bound instance can run; the binding adds instance-protection first, so it stays first.
    if (!deleting && !inst.status?.hostName && !fins.includes(METERING_FINALIZER)) return;
    if (!deleting && !fins.includes(METERING_FINALIZER)) await this.d.client.addFinalizer(INSTANCES, ns, req.name, METERING_FINALIZER, inst);

    const uid = inst.metadata.uid;
    const name = ledgerName('Instance', uid);
    const facts = instanceFacts(inst);
    const checkpoint = networkCheckpoint(inst);
    try {
      await writeRecord(this.d.client, this.d.records.get(ns, name), ns, name, { [RECORD_TYPE_LABEL]: 'ledger' }, (cur) => {
        const spec = cur?.spec ?? { subject: { kind: 'Instance' as const, name: req.name, uid } };
        // The agent's network counts, as checkpoints (also the last one it publishes as the instance goes).
        const net = checkpoint ? mergeCheckpoint(spec.network, checkpoint) : spec.network;
        const network = net?.length ? { network: net } : {};
        if (spec.deleted) return cur ? { ...spec, ...network } : undefined; // final, but for a late network count
        // Runs and stops missed while the controller was down (status.powerHistory), then the state now.
        const intervals = boundIntervals(advanceInstance(spec.intervals ?? [], inst, (before) => this.size(inst, before), spec.compactedThrough));
        if (!cur && !intervals.length) return undefined; // never ran: no ledger
        return { ...spec, intervals, ...network, ...(facts.deletedAt !== undefined ? { deleted: rfc3339(facts.deletedAt) } : {}) };
      });
    } catch (e) {
      // A project being deleted refuses new records (and takes its records along): let the object go.
      if (!namespaceTerminating(e)) throw e;
    }
    // The agent reads the last network counts as it destroys the domain, writes them with the
    // Terminating status, then drops instance-protection. Until then this finalizer stays, so the
    // instance cannot go before those counts are read: a pass that ran earlier recorded the
    // deletion already, and the next one adds them as a late count.
    if (deleting && fins.includes(METERING_FINALIZER) && !fins.includes(INSTANCE_FINALIZER)) await this.d.client.removeFinalizer(INSTANCES, ns, req.name, METERING_FINALIZER, inst);
  }

  /**
   * The size of a run starting now: what its host charges it for (the agent claims a new size
   * before booting with it), else what its spec asks for; named after the flavor when it is
   * that flavor's size (a pending resize names the new flavor in the spec while the old size runs).
   */
  private size(inst: Instance, before: readonly UsageSpan[]): SpanSize {
    const host = inst.status?.hostName ? this.hosts.get(undefined, inst.status.hostName) : undefined;
    const asked = instanceRequest(inst, (n) => this.flavors.get(undefined, n));
    const r = chargedSize(host, inst.metadata.uid!) ?? ('req' in asked ? asked.req : undefined) ?? { vcpus: 0, memoryBytes: 0, diskBytes: 0 };
    const size: SpanSize = { vcpus: r.vcpus, memoryBytes: r.memoryBytes, diskBytes: r.diskBytes };
    const flavor = inst.spec.flavor ? this.flavors.get(undefined, inst.spec.flavor) : undefined;
    const prev = before[before.length - 1];
    if (flavor && sameSize(parseLenient(flavor.spec), size)) size.flavor = inst.spec.flavor;
    else if (prev?.flavor && sameSize(prev, size)) size.flavor = prev.flavor;
    return size;
  }
}
