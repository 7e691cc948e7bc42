// One instance watch shared by every simulated agent of a process, split by status.hostName.
// A real agent watches `fieldSelector=status.hostName=<host>` itself; a hundred in-process sim
// agents doing that would cost the API server a hundred watches that each see (and decode)
// every instance change, so `startSimAgents` gives them views of this one informer instead.
import type { Instance } from '../api/kinds/index.js';
import { INSTANCES } from '../api/kinds/index.js';
import type { KovaClient } from '../client/client.js';
import { Informer } from '../client/informer.js';
import type { InformerEvent, InformerHandler } from '../client/informer.js';

/** What an agent needs from its instance cache; an Informer is one. */
export interface InstanceView {
  get(namespace: string | undefined, name: string): Instance | undefined;
  list(): readonly Instance[];
  on(event: InformerEvent, handler: InformerHandler<Instance>): void;
  start(): void;
  stop(): void;
  waitForSync(signal?: AbortSignal): Promise<void>;
}

const hostOf = (o: Instance) => o.status?.hostName || undefined;
const keyOf = (o: Instance) => `${o.metadata.namespace}/${o.metadata.name}`;

export class SharedInstanceInformer {
  readonly informer: Informer<Instance>;
  private readonly byHost = new Map<string, Map<string, Instance>>();
  private readonly hostOfKey = new Map<string, string>();
  private readonly views = new Map<string, Set<HostView>>();

  constructor(client: KovaClient, log?: (msg: string) => void) {
    this.informer = new Informer<Instance>(client, INSTANCES, { log });
    this.informer.on('add', (o) => this.dispatch(o, false));
    this.informer.on('update', (o) => this.dispatch(o, false));
    this.informer.on('delete', (o) => this.dispatch(o, true));
  }

  /** The instances bound to `host`, as an InstanceView for that host's agent. */
  view(host: string): InstanceView {
    return new HostView(this, host);
  }

  start(): void {
    this.informer.start();
  }

  stop(): void {
    this.informer.stop();
  }

  /** @internal */
  listFor(host: string): Instance[] {
    return [...(this.byHost.get(host)?.values() ?? [])];
  }

  /** @internal */
  getFor(host: string, namespace: string | undefined, name: string): Instance | undefined {
    return this.byHost.get(host)?.get(`${namespace}/${name}`);
  }

  /** @internal */
  attach(v: HostView, on: boolean): void {
    let set = this.views.get(v.host);
    if (!set) this.views.set(v.host, (set = new Set()));
    if (on) set.add(v);
    else set.delete(v);
  }

  // An instance that moves between hosts (evacuation) is a delete for one and an add for the other.
  private dispatch(o: Instance, deleted: boolean): void {
    const key = keyOf(o);
    const now = deleted ? undefined : hostOf(o);
    const was = this.hostOfKey.get(key);
    if (was && was !== now) {
      this.byHost.get(was)?.delete(key);
      this.emit(was, 'delete', o);
    }
    if (now) {
      let m = this.byHost.get(now);
      if (!m) this.byHost.set(now, (m = new Map()));
      m.set(key, o);
      this.hostOfKey.set(key, now);
      this.emit(now, was === now ? 'update' : 'add', o);
    } else {
      this.hostOfKey.delete(key);
    }
  }

  private emit(host: string, event: InformerEvent, o: Instance): void {
    for (const v of this.views.get(host) ?? []) v.fire(event, o);
  }
}

class HostView implements InstanceView {
  private readonly handlers: Record<InformerEvent, InformerHandler<Instance>[]> = { add: [], update: [], delete: [] };

  constructor(
    private readonly shared: SharedInstanceInformer,
    readonly host: string,
  ) {}

  get(namespace: string | undefined, name: string): Instance | undefined {
    return this.shared.getFor(this.host, namespace, name);
  }

  list(): readonly Instance[] {
    return this.shared.listFor(this.host);
  }

  on(event: InformerEvent, handler: InformerHandler<Instance>): void {
    this.handlers[event].push(handler);
  }

  /** Starts receiving events; the shared informer itself is started by its owner. */
  start(): void {
    this.shared.attach(this, true);
  }

  stop(): void {
    this.shared.attach(this, false);
  }

  waitForSync(signal?: AbortSignal): Promise<void> {
    return this.shared.informer.waitForSync(signal);
  }

  /** @internal */
  fire(event: InformerEvent, o: Instance): void {
    for (const h of this.handlers[event]) h(o);
  }
}
