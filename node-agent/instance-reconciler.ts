// Reconciles one Instance bound to this host against its domain: deletion (destroy, then drop
// the finalizer), spawn, runStrategy and power annotations, and the status that reports it.
// Level-triggered: it re-reads the instance (informer cache) and the domain (driver) each time.
// Cheap per instance: decisions run on cached objects, status is written only when it changes,
// and the write uses the cached resourceVersion (a GET happens only after a conflict).
import type { KObject } from '../api/types.js';
import type { Reconciler, Request, Result } from '../controllers/runtime/controller.js';
import { errorMessage } from '../controllers/runtime/controller.js';
import { INSTANCES, isConflict, isNotFound } from '../controllers/runtime/client.js';
import type { KovaClient } from '../controllers/runtime/client.js';
import type { EventRecorder } from '../controllers/runtime/events.js';
import { instanceRequest } from '../controllers/scheduler/resources.js';
import { domainName, DomainNotFound, instanceKey } from './driver.js';
import type { ComputeDriver, DomainInfo, DomainSpec, NicSpec } from './driver.js';
import type { FlavorCache } from './flavor-cache.js';
import { nextStatus, sameStatus } from './instance-status.js';
import type { InstanceStatus, Observation } from './instance-status.js';
import { ANNOTATION_POWER, ANNOTATION_RESTARTED_AT, nextAction } from './power-policy.js';
import type { PolicyInput, RunStrategy } from './power-policy.js';

export const INSTANCE_FINALIZER = 'kova.dev/instance-protection';

export interface InstanceReconcilerOptions {
  client: KovaClient;
  hostName: string;
  driver: ComputeDriver;
  /** The informer cache of instances bound to this host. */
  getCached: (namespace: string, name: string) => KObject | undefined;
  recorder: EventRecorder;
  flavors: FlavorCache;
  log: (msg: string) => void;
  /** Grace for a clean shutdown before the guest is forced off (default 60 s). */
  stopTimeoutMs?: number;
  /** First retry delay after a failed spawn; doubles up to 5 minutes (default 1 s). */
  retryBaseMs?: number;
  /** Report phase Starting when a spawn has not finished after this long (default 1 s). */
  startingAfterMs?: number;
}

const MAX_ACTIONS = 6;

export class InstanceReconciler implements Reconciler {
  readonly name: string;
  /** Domain id of each instance key the agent has spawned or adopted. */
  readonly domains = new Map<string, string>();
  /** Objects returned by our own writes, newer than the cache until the watch catches up. */
  private readonly written = new Map<string, KObject>();
  private readonly failures = new Map<string, number>();
  readonly stats = { statusWrites: 0, statusSkips: 0, conflicts: 0, spawns: 0, destroys: 0 };

  constructor(private readonly o: InstanceReconcilerOptions) {
    this.name = `agent-${o.hostName}`;
  }

  /** Forget what our writes returned once the informer has delivered something at least as new. */
  observed(obj: KObject, deleted = false): void {
    const key = keyOf(obj);
    const mine = this.written.get(key);
    if (mine && (deleted || rv(obj) >= rv(mine))) this.written.delete(key);
  }

  async reconcile(req: Request, signal: AbortSignal): Promise<Result | void> {
    const ns = req.namespace!;
    const key = instanceKey(ns, req.name);
    const inst = this.current(ns, req.name);
    if (!inst || (inst.status as InstanceStatus | undefined)?.hostName !== this.o.hostName) return this.cleanUpGone(key);
    const id = domainName(ns, req.name, inst.metadata.uid!);
    if (inst.metadata.deletionTimestamp) return this.finalize(inst, key, id);
    if (!(inst.metadata.finalizers ?? []).includes(INSTANCE_FINALIZER)) {
      // Binding adds it; without it a delete could complete before the domain is destroyed.
      const withFin = await this.o.client.addFinalizer(INSTANCES, ns, req.name, INSTANCE_FINALIZER);
      if (!withFin) return;
      this.remember(withFin);
      return this.reconcile(req, signal);
    }
    return this.converge(inst, key, id, signal);
  }

  private async converge(inst: KObject, key: string, id: string, signal: AbortSignal): Promise<Result | void> {
    const { driver, recorder } = this.o;
    let dom = await this.info(id);
    if (dom && dom.instanceUID !== inst.metadata.uid) {
      // Left over from an earlier instance of the same name (e.g. a fenced host came back).
      this.o.log(`${this.name}: destroying stale domain ${id} of an earlier ${key} (uid ${dom.instanceUID})`);
      await driver.destroy(id);
      dom = undefined;
    }
    if (dom) this.domains.set(key, id);
    const status = (inst.status ?? {}) as InstanceStatus;
    const annotations = inst.metadata.annotations ?? {};
    const p: PolicyInput = {
      runStrategy: (((inst.spec ?? {}) as { runStrategy?: RunStrategy }).runStrategy ?? 'Always') as RunStrategy,
      annotations,
      startedAt: status.startedAt,
      observedRestartedAt: status.observedRestartedAt,
      readyReason: status.conditions?.find((c) => c.type === 'Ready')?.reason,
    };
    const facts: Observation = { generation: inst.metadata.generation };
    const restartWanted = annotations[ANNOTATION_RESTARTED_AT];
    let result: Result | void = undefined;
    let current = inst;

    for (let step = 0; step < MAX_ACTIONS && !signal.aborted; step++) {
      const action = nextAction(p, dom?.state);
      if (action.kind === 'none') {
        // Nothing to reboot (the guest is kept off or absent): acknowledge the request.
        if (restartWanted && restartWanted !== p.observedRestartedAt) facts.observedRestartedAt = restartWanted;
        break;
      }
      if (action.kind === 'wait') {
        result = { requeueAfterMs: 500 };
        break;
      }
      switch (action.kind) {
        case 'spawn': {
          // Starting is reported only when the spawn takes a while: a fast spawn goes from
          // Provisioning straight to Running, saving one write per instance.
          let starting: Promise<KObject> | undefined;
          const before = current;
          const timer = setTimeout(() => (starting = this.writeStatus(before, { ...facts, phase: 'Starting' }).catch((e) => {
            this.o.log(`${this.name}: ${key}: could not report Starting: ${errorMessage(e)}`);
            return before;
          })), this.o.startingAfterMs ?? 1000);
          let failure: unknown;
          try {
            dom = await this.spawn(current, id);
          } catch (e) {
            failure = e;
          } finally {
            clearTimeout(timer);
          }
          if (starting) current = await starting;
          if (failure !== undefined) return this.spawnFailed(current, key, facts, failure);
          this.failures.delete(key);
          this.domains.set(key, id);
          facts.started = true;
          void recorder.normal(current, 'Started', `started domain on host ${this.o.hostName}`);
          break;
        }
        case 'powerOn': {
          await driver.powerOn(id);
          facts.started = true;
          if (action.restart) {
            facts.restarted = true;
            const what = dom?.state === 'Crashed' ? 'the guest crashed' : 'the guest shut down';
            void recorder.warning(current, 'Restarted', `${what}; restarted it (runStrategy ${p.runStrategy})`);
          } else {
            void recorder.normal(current, 'Started', `started domain on host ${this.o.hostName}`);
          }
          p.readyReason = 'Running';
          break;
        }
        case 'powerOff':
          void recorder.normal(current, 'Stopping', `shutting the guest down: ${action.why}`);
          await driver.powerOff(id, this.o.stopTimeoutMs ?? 60_000);
          facts.stoppedWhy = action.why;
          p.readyReason = 'Stopped';
          void recorder.normal(current, 'Stopped', `guest stopped: ${action.why}`);
          break;
        case 'reboot':
          await driver.reboot(id);
          facts.started = true;
          void recorder.normal(current, 'Rebooted', `rebooted the guest (${ANNOTATION_RESTARTED_AT} ${restartWanted})`);
          break;
        case 'pause':
          await driver.pause(id);
          void recorder.normal(current, 'Paused', 'paused the guest');
          break;
        case 'unpause':
          await driver.unpause(id);
          void recorder.normal(current, 'Unpaused', 'resumed the guest');
          break;
      }
      if (facts.started && restartWanted) {
        // A fresh boot satisfies a pending restart request.
        p.observedRestartedAt = restartWanted;
        facts.observedRestartedAt = restartWanted;
      }
      p.startedAt ??= facts.started ? 'now' : undefined;
      dom = await this.info(id);
    }

    // Say why a guest is off when kova keeps it off (not when the guest turned itself off).
    if (facts.stoppedWhy === undefined && (p.runStrategy === 'Halted' || (p.runStrategy === 'Manual' && annotations[ANNOTATION_POWER] === 'Off'))) {
      if (!dom || dom.state === 'Shutdown') facts.stoppedWhy = p.runStrategy === 'Halted' ? 'runStrategy is Halted' : `${ANNOTATION_POWER} is Off`;
    }
    facts.domain = dom ? { uuid: dom.uuid, state: dom.state } : undefined;
    await this.writeStatus(current, facts);
    return result;
  }

  private async spawn(inst: KObject, id: string): Promise<DomainInfo> {
    const spec = (inst.spec ?? {}) as { flavor?: string; image?: string; userData?: string };
    let flavor: KObject | undefined;
    if (spec.flavor) flavor = await this.o.flavors.get(spec.flavor);
    const req = instanceRequest(inst, () => flavor);
    if ('flavorNotFound' in req) throw new Error(`flavor ${req.flavorNotFound} not found`);
    if ('invalid' in req) throw new Error(`cannot size the instance: ${req.invalid}`);
    const addresses = ((inst.status as InstanceStatus | undefined)?.addresses ?? []) as Array<{ network?: string; port?: string; ip?: string; mac?: string }>;
    const networks: NicSpec[] = addresses.filter((a) => a.mac).map((a) => ({ network: a.network ?? '', port: a.port, mac: a.mac!, ip: a.ip }));
    const domSpec: DomainSpec = {
      instanceKey: keyOf(inst),
      instanceUID: inst.metadata.uid!,
      name: id,
      vcpus: req.req.vcpus,
      memoryBytes: req.req.memoryBytes,
      diskBytes: req.req.diskBytes,
      image: `${inst.metadata.namespace}/${spec.image ?? ''}`,
      userData: spec.userData,
      networks,
    };
    this.stats.spawns++;
    return this.o.driver.spawn(domSpec);
  }

  private async spawnFailed(inst: KObject, key: string, facts: Observation, e: unknown): Promise<Result> {
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    const delay = Math.min((this.o.retryBaseMs ?? 1000) * 2 ** (n - 1), 300_000);
    const msg = `could not start the guest on host ${this.o.hostName}: ${errorMessage(e)} (attempt ${n}, retrying in ${Math.round(delay / 1000)} s)`;
    this.o.log(`${this.name}: ${key}: ${msg}`);
    void this.o.recorder.warning(inst, 'Failed', msg);
    await this.writeStatus(inst, { ...facts, failure: msg, domain: undefined });
    return { requeueAfterMs: delay };
  }

  private async finalize(inst: KObject, key: string, id: string): Promise<void> {
    const ns = inst.metadata.namespace!;
    const name = inst.metadata.name!;
    const ours = (inst.metadata.finalizers ?? []).includes(INSTANCE_FINALIZER);
    if (ours) {
      const current = await this.writeStatus(inst, { generation: inst.metadata.generation, phase: 'Terminating' });
      if (await this.info(id)) void this.o.recorder.normal(current, 'Killing', `destroying the domain on host ${this.o.hostName}`);
    }
    await this.destroy(key, id);
    this.failures.delete(key);
    if (ours) await this.o.client.removeFinalizer(INSTANCES, ns, name, INSTANCE_FINALIZER);
    this.written.delete(key);
  }

  /** The instance is gone or bound elsewhere: its domain here must go too. */
  private async cleanUpGone(key: string): Promise<void> {
    this.written.delete(key);
    this.failures.delete(key);
    const id = this.domains.get(key);
    if (!id) return;
    const dom = await this.info(id);
    if (dom && dom.instanceKey === key) {
      this.o.log(`${this.name}: ${key} is no longer bound to this host; destroying domain ${id}`);
      await this.o.driver.destroy(id);
      this.stats.destroys++;
    }
    this.domains.delete(key);
  }

  private async destroy(key: string, id: string): Promise<void> {
    await this.o.driver.destroy(id);
    const known = this.domains.get(key);
    if (known && known !== id) await this.o.driver.destroy(known);
    this.domains.delete(key);
    this.stats.destroys++;
  }

  private async info(id: string): Promise<DomainInfo | undefined> {
    try {
      return await this.o.driver.getInfo(id);
    } catch (e) {
      if (e instanceof DomainNotFound) return undefined;
      throw e;
    }
  }

  /** The newest copy we have: the informer's, or what our last write returned. */
  private current(ns: string, name: string): KObject | undefined {
    const cached = this.o.getCached(ns, name);
    const key = instanceKey(ns, name);
    if (!cached) {
      this.written.delete(key);
      return undefined;
    }
    const mine = this.written.get(key);
    return mine && rv(mine) > rv(cached) ? mine : cached;
  }

  private remember(obj: KObject): KObject {
    this.written.set(keyOf(obj), obj);
    return obj;
  }

  /**
   * Writes the status `facts` lead to, unless it equals the current one. PUT /status with the
   * resourceVersion we hold; on a conflict, re-read and recompute (client.updateStatus).
   */
  private async writeStatus(inst: KObject, facts: Observation): Promise<KObject> {
    const next = nextStatus(inst.status as InstanceStatus | undefined, facts);
    if (sameStatus(inst.status as InstanceStatus | undefined, next)) {
      this.stats.statusSkips++;
      return inst;
    }
    this.stats.statusWrites++;
    const { client } = this.o;
    try {
      return this.remember(await client.replaceStatus(INSTANCES, { ...inst, status: next }));
    } catch (e) {
      if (isNotFound(e)) return inst;
      if (!isConflict(e)) throw e;
    }
    this.stats.conflicts++;
    const out = await client.updateStatus(INSTANCES, inst.metadata.namespace, inst.metadata.name!, (fresh) => {
      const prev = fresh.status as InstanceStatus | undefined;
      if (prev?.hostName !== this.o.hostName) return false;
      const n = nextStatus(prev, facts);
      if (sameStatus(prev, n)) return false;
      fresh.status = n;
    });
    return out ? this.remember(out) : inst;
  }
}

function keyOf(obj: KObject): string {
  return instanceKey(obj.metadata.namespace ?? '', obj.metadata.name ?? '');
}

/** kova's resourceVersions are etcd revisions, so they order numerically. */
function rv(obj: KObject): number {
  return Number(obj.metadata.resourceVersion ?? 0) || 0;
}
