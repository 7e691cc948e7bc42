// Reconciles one Instance bound to this host against its domain: deletion (destroy, then drop
// the finalizer), spawn, runStrategy and power annotations, and the status that reports it.
// Level-triggered: it re-reads the instance (informer cache) and the domain (driver) each time.
// Cheap per instance: decisions run on cached objects, status is written only when it changes,
// and the write uses the cached resourceVersion (a GET happens only after a conflict).
// Every driver (sim or libvirt) goes through the same resolver before a spawn: Flavor, Image,
// Ports and KeyPair, each either ready or a reason to wait. A failed spawn backs off with the
// work queue's rate limiter (one back-off: the controller's), and an event that arrives before
// the key is due again (our own status write, a domain event) does not retry it early.
import type { Condition, KObject } from '../api/types.js';
import { INSTANCE_FINALIZER } from '../api/types.js';
import type { ReconcileContext, Reconciler, Request, Result } from '../client/controller.js';
import { errorMessage } from '../client/controller.js';
import { INSTANCES, isConflict, isNotFound, KEYPAIRS } from '../client/client.js';
import { setCondition } from '../api/conditions.js';
import type { KovaClient } from '../client/client.js';
import type { EventRecorder } from '../client/events.js';
import { instanceRequest } from '../api/resources.js';
import { domainName, DomainNotFound, instanceKey } from './driver.js';
import type { ComputeDriver, DomainInfo, DomainSpec, NicSpec } from './driver.js';
import type { FlavorCache } from './flavor-cache.js';
import { imageReadiness } from './image-cache.js';
import type { ImageCache, ImageObjectView } from './image-cache.js';
import { nextStatus, sameStatus } from './instance-status.js';
import type { InstanceStatus, Observation } from './instance-status.js';
import { ANNOTATION_POWER, ANNOTATION_RESTARTED_AT, nextAction } from './power-policy.js';
import type { PolicyInput, RunStrategy } from './power-policy.js';


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
  /** Report phase Starting when a spawn has not finished after this long (default 1 s). */
  startingAfterMs?: number;
  /**
   * A lookup of Images (the instance's namespace, else a Public one of that name): instances
   * wait, with condition ImageReady=False, until their Image is Ready, whatever the driver.
   * Drivers that boot real images also have the host's image `cache` and boot from the cached
   * copy; without one (sim) DomainSpec.image is the Image's `namespace/name`.
   */
  images: { cache?: ImageCache; lookup: (namespace: string, name: string) => ImageObjectView | undefined };
  /**
   * On hosts that run kova networking: whether the network agent has configured a Port here
   * (condition Configured=True), else why not. Instances wait for all their Ports. Without
   * networking on the host there is nothing to configure and only the addresses are needed.
   */
  portConfigured?: (namespace: string, port: string) => { ok: true } | { ok: false; message: string };
  /** The cluster's identity, recorded in every domain it creates (see DomainSpec.clusterID). */
  clusterID?: () => string | undefined;
  /** How often an instance waiting for its image or network is looked at again without events (default 30 s). */
  waitRequeueMs?: number;
}

type CondSpec = Omit<Condition, 'lastTransitionTime'>;

/** Everything a spawn needs, resolved, with the conditions that say so; or why it has to wait. */
type SpawnInputs = { spec: DomainSpec; conds: CondSpec[] } | { wait: CondSpec[]; why: string } | { fail: string };

const MAX_ACTIONS = 6;

export class InstanceReconciler implements Reconciler {
  readonly name: string;
  /** Domain id of each instance key the agent has spawned or adopted. */
  readonly domains = new Map<string, string>();
  /** Objects returned by our own writes, newer than the cache until the watch catches up. */
  private readonly written = new Map<string, KObject>();
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

  async reconcile(req: Request, signal: AbortSignal, ctx?: ReconcileContext): Promise<Result | void> {
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
      return this.reconcile(req, signal, ctx);
    }
    return this.converge(inst, key, id, signal, ctx);
  }

  private async converge(inst: KObject, key: string, id: string, signal: AbortSignal, ctx: ReconcileContext | undefined): Promise<Result | void> {
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
    /** Conditions learnt while preparing a spawn (ImageReady=True, ...), written with the status. */
    const extraConds: CondSpec[] = [];

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
          // Backing off after a failed spawn: whatever woke us (our own status write, an
          // unrelated update) must not retry it before it is due. A new spec is worth a try.
          const st = current.status as InstanceStatus | undefined;
          const sameSpec = st?.observedGeneration === current.metadata.generation;
          if (ctx?.retryAt !== undefined && ctx.now < ctx.retryAt && st?.spawnAttempts && sameSpec) {
            return { backoff: 'pending' };
          }
          const inputs = await this.resolve(current, id);
          if ('fail' in inputs) return this.spawnFailed(current, key, facts, new Error(inputs.fail));
          if ('wait' in inputs) return this.waitFor(current, key, inputs.wait, inputs.why);
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
            this.stats.spawns++;
            dom = await driver.spawn(inputs.spec);
          } catch (e) {
            failure = e;
          } finally {
            clearTimeout(timer);
          }
          if (starting) current = await starting;
          if (failure instanceof Error && failure.name === 'NetworkUnavailable') {
            return this.waitFor(current, key, [{ type: 'NetworkReady', status: 'False', reason: 'NetworkUnavailable', message: failure.message }], failure.message);
          }
          if (failure !== undefined) return this.spawnFailed(current, key, facts, failure);
          extraConds.push(...inputs.conds);
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
      // spawn() already returned the new domain's info; every other action is re-read.
      if (action.kind !== 'spawn') dom = await this.info(id);
    }

    // Say why a guest is off when kova keeps it off (not when the guest turned itself off).
    if (facts.stoppedWhy === undefined && (p.runStrategy === 'Halted' || (p.runStrategy === 'Manual' && annotations[ANNOTATION_POWER] === 'Off'))) {
      if (!dom || dom.state === 'Shutdown') facts.stoppedWhy = p.runStrategy === 'Halted' ? 'runStrategy is Halted' : `${ANNOTATION_POWER} is Off`;
    }
    facts.domain = dom ? { uuid: dom.uuid, state: dom.state } : undefined;
    await this.writeStatus(current, facts, extraConds);
    return result;
  }

  /**
   * The resolver every driver goes through before a spawn: Flavor (sizing), Image (Ready, and
   * cached on this host when the driver boots real images), Ports (allocated, and configured
   * here when the host runs networking) and KeyPair. Returns the DomainSpec with the conditions
   * that say what is ready, or the conditions that say what it waits for, or `fail` when the
   * spec cannot be satisfied by waiting (unknown Flavor, unsizable spec): a spawn failure. API
   * errors are thrown (the controller retries them with back-off).
   */
  private async resolve(inst: KObject, id: string): Promise<SpawnInputs> {
    const ns = inst.metadata.namespace!;
    const spec = (inst.spec ?? {}) as { flavor?: string; image?: string; keyPair?: string; networks?: unknown[]; userData?: string };
    const conds: CondSpec[] = [];
    const prev = (inst.status as InstanceStatus | undefined)?.conditions ?? [];

    let flavor: KObject | undefined;
    if (spec.flavor) flavor = await this.o.flavors.get(spec.flavor);
    const req = instanceRequest(inst, () => flavor);
    if ('flavorNotFound' in req) return { fail: `flavor ${req.flavorNotFound} not found` };
    if ('invalid' in req) return { fail: `cannot size the instance: ${req.invalid}` };

    const images = this.o.images;
    const imageName = spec.image ?? '';
    const ready = imageReadiness(ns, imageName, images.lookup(ns, imageName));
    if ('waitReason' in ready) {
      return { why: ready.message, wait: [{ type: 'ImageReady', status: 'False', reason: ready.waitReason, message: ready.message }] };
    }

    const wanted = spec.networks?.length ?? 0;
    const networks = this.nicsOf(inst);
    if (wanted > 0 && networks.length < wanted) {
      const msg = `waiting for the ports of ${wanted} network(s): networking has attached ${networks.length} so far`;
      return { why: msg, wait: [{ type: 'NetworkReady', status: 'False', reason: 'NetworkNotReady', message: msg }] };
    }
    if (this.o.portConfigured) {
      for (const nic of networks) {
        const c = nic.port ? this.o.portConfigured(ns, nic.port) : { ok: false as const, message: `network ${nic.network}: the instance has no port on it yet` };
        if (!c.ok) {
          const msg = `port ${ns}/${nic.port ?? '?'} is not configured on host ${this.o.hostName} yet: ${c.message}`;
          return { why: msg, wait: [{ type: 'NetworkReady', status: 'False', reason: 'PortNotConfigured', message: msg }] };
        }
      }
    }

    let image: string;
    if (images.cache) {
      let cached;
      try {
        cached = await images.cache.ensure(ready.ref);
      } catch (e) {
        // E.g. another host whose copy of the source is gone: wait (and retry) rather than fail.
        const msg = `image ${ready.ref.name} is Ready but could not be cached on host ${this.o.hostName}: ${errorMessage(e)}`;
        return { why: msg, wait: [{ type: 'ImageReady', status: 'False', reason: 'ImageCacheFailed', message: msg }] };
      }
      image = cached.path;
      conds.push({ type: 'ImageReady', status: 'True', reason: 'Cached', message: `image ${ready.ref.name} (sha256 ${ready.ref.sha256.slice(0, 12)}…) is cached on host ${this.o.hostName}` });
    } else {
      // No image cache (sim): nothing to copy, but the Image had to be Ready all the same.
      image = ready.ref.name;
      conds.push({ type: 'ImageReady', status: 'True', reason: 'Ready', message: `image ${ready.ref.name} (sha256 ${ready.ref.sha256.slice(0, 12)}…) is Ready` });
    }
    if (prev.some((c) => c.type === 'NetworkReady')) conds.push({ type: 'NetworkReady', status: 'True', reason: 'Attached', message: '' });

    const extra: Record<string, unknown> = {};
    if (spec.keyPair) {
      const kp = await this.o.client.get(KEYPAIRS, ns, spec.keyPair);
      const key = (kp?.spec as { publicKey?: string } | undefined)?.publicKey;
      if (!key) {
        const msg = `key pair ${spec.keyPair} not found in namespace ${ns}`;
        return { why: msg, wait: [conds[0]!, { type: 'KeyPairReady', status: 'False', reason: 'KeyPairNotFound', message: msg }] };
      }
      extra.sshAuthorizedKeys = [key.trim()];
      if (prev.some((c) => c.type === 'KeyPairReady')) conds.push({ type: 'KeyPairReady', status: 'True', reason: 'Found', message: '' });
    }

    const domSpec: DomainSpec = {
      instanceKey: keyOf(inst),
      instanceUID: inst.metadata.uid!,
      clusterID: this.o.clusterID?.(),
      name: id,
      vcpus: req.req.vcpus,
      memoryBytes: req.req.memoryBytes,
      diskBytes: req.req.diskBytes,
      image,
      userData: spec.userData,
      networks,
    };
    if (Object.keys(extra).length) domSpec.extra = extra;
    return { spec: domSpec, conds };
  }

  /**
   * The instance cannot be spawned yet (image, key pair or network not ready): say so in its
   * conditions (phase stays Provisioning, Ready=False) and look again later; Image, KeyPair
   * and Port changes wake it earlier. Not a failure: no back-off, no Failed phase.
   */
  private async waitFor(inst: KObject, key: string, conds: CondSpec[], why: string): Promise<Result> {
    const gen = inst.metadata.generation;
    const before = (inst.status as InstanceStatus | undefined)?.conditions;
    const fresh = !conds.every((c) => before?.some((b) => b.type === c.type && b.status === c.status && b.reason === c.reason && (b.message ?? '') === c.message));
    const reason = conds.find((c) => c.status === 'False')?.reason ?? 'Waiting';
    const ready: CondSpec = { type: 'Ready', status: 'False', reason, message: why, observedGeneration: gen };
    const out = await this.writeWith(inst, (prev) => {
      const s: InstanceStatus = { ...(prev ?? {}) };
      s.phase = 'Provisioning';
      if (gen !== undefined) s.observedGeneration = gen;
      delete s.powerState;
      let list = setCondition(prev?.conditions, ready);
      for (const c of conds) list = setCondition(list, c);
      s.conditions = list;
      return s;
    });
    if (fresh) {
      this.o.log(`${this.name}: ${key}: waiting: ${why}`);
      void this.o.recorder.normal(out, 'Waiting', why);
    }
    return { requeueAfterMs: this.o.waitRequeueMs ?? 30_000 };
  }

  private nicsOf(inst: KObject): NicSpec[] {
    const addresses = ((inst.status as InstanceStatus | undefined)?.addresses ?? []) as Array<{ network?: string; port?: string; ip?: string; mac?: string }>;
    return addresses.filter((a) => a.mac).map((a) => ({ network: a.network ?? '', port: a.port, mac: a.mac!, ip: a.ip }));
  }

  /**
   * Reports a failed spawn and hands the retry to the controller's back-off. The message is
   * the same for identical attempts (the count is status.spawnAttempts), so the Warning Event
   * is one Event whose count grows, and a retry changes nothing but the count.
   */
  private async spawnFailed(inst: KObject, key: string, facts: Observation, e: unknown): Promise<Result> {
    const msg = `could not start the guest on host ${this.o.hostName}: ${errorMessage(e)}`;
    const out = await this.writeStatus(inst, { ...facts, failure: msg, domain: undefined });
    const n = (out.status as InstanceStatus | undefined)?.spawnAttempts ?? 1;
    this.o.log(`${this.name}: ${key}: ${msg} (attempt ${n}; retrying with back-off)`);
    void this.o.recorder.warning(out, 'Failed', msg);
    return { backoff: 'failed' };
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
    if (ours) await this.o.client.removeFinalizer(INSTANCES, ns, name, INSTANCE_FINALIZER);
    this.written.delete(key);
  }

  /** The instance is gone or bound elsewhere: its domain here must go too. */
  private async cleanUpGone(key: string): Promise<void> {
    this.written.delete(key);
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
  private async writeStatus(inst: KObject, facts: Observation, extraConds: CondSpec[] = []): Promise<KObject> {
    return this.writeWith(inst, (prev) => {
      const next = nextStatus(prev, facts);
      for (const c of extraConds) next.conditions = setCondition(next.conditions, c, facts.now);
      return next;
    });
  }

  /** Writes compute(status) unless it equals the status; conflict → re-read and recompute. */
  private async writeWith(inst: KObject, compute: (prev: InstanceStatus | undefined) => InstanceStatus): Promise<KObject> {
    const next = compute(inst.status as InstanceStatus | undefined);
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
      const n = compute(prev);
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
