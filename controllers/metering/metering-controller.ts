// `kova controllers`' metering: the instance, volume and floating-IP meters record usage into
// UsageRecord ledgers (metering.kova.dev), and the compactor folds past days into period
// records. Everything is level-triggered from the informers' caches; see docs/metering.md.
import { FLAVORS, FLOATING_IPS, HOSTS, INSTANCES, USAGE_RECORDS, VOLUMES } from '../../api/kinds/index.js';
import type { Flavor, FloatingIP, Host, Instance, UsageRecord, Volume } from '../../api/kinds/index.js';
import { controllerFor, withDefaults } from '../../client/controller.js';
import type { ControllerHandle, ControllerStartOptions, Request } from '../../client/controller.js';
import { Compactor } from './compactor.js';
import { FloatingIPMeter, VolumeMeter } from './existence-meter.js';
import { InstanceMeter } from './instance-meter.js';

export interface MeteringOptions extends ControllerStartOptions {
  /** The clock of compaction (tests move it). */
  now?: () => number;
  /** How long after a UTC day ends it is compacted (default an hour). */
  compactAfterMs?: number;
}

const ledgersOnly = (r: UsageRecord): Request | undefined => (r.spec?.subject ? { namespace: r.metadata.namespace, name: r.metadata.name! } : undefined);

/** Starts the meters and the compactor; resolves once their caches are synced. */
export async function startMeteringController(opts: MeteringOptions): Promise<ControllerHandle> {
  const { client, signal, log, informers } = withDefaults(opts);
  const now = opts.now ?? Date.now;
  const records = informers.for<UsageRecord>(USAGE_RECORDS);
  const instances = informers.for<Instance>(INSTANCES);
  const hosts = informers.for<Host>(HOSTS);
  const flavors = informers.for<Flavor>(FLAVORS);
  const volumes = informers.for<Volume>(VOLUMES);
  const fips = informers.for<FloatingIP>(FLOATING_IPS);
  const deps = { client, records, log };
  // A deletion waits on the instance meter (it holds the kova.dev/metering finalizer): its few
  // round trips per instance need more than two at a time to keep up with a bulk delete.
  const workers = opts.workers ?? 8;
  const parts = await Promise.all([
    controllerFor(new InstanceMeter(deps, instances, hosts, flavors), { workers, log }).watches(instances, undefined, ['add', 'update']).reads(records, hosts, flavors).start(signal),
    controllerFor(new VolumeMeter(deps, volumes, now), { workers, log }).watches(volumes, undefined, ['add', 'update']).reads(records).start(signal),
    controllerFor(new FloatingIPMeter(deps, fips, now), { workers, log }).watches(fips, undefined, ['add', 'update']).reads(records).start(signal),
    controllerFor(new Compactor({ client, records, now, compactAfterMs: opts.compactAfterMs, log }), { workers: 1, log }).watches(records, ledgersOnly, ['add', 'update']).start(signal),
  ]);
  return { controller: parts[0]!.controller, done: Promise.all(parts.map((p) => p.done)).then(() => undefined) };
}
