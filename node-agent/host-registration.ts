// The agent's side of the Host: registration (create or relabel, status from the driver) and
// the heartbeat Lease kova-system/<host>, as a kubelet registers its Node and renews its Lease.
import type { Host } from '../api/kinds/index.js';
import { HOSTS } from '../api/kinds/index.js';
import type { Condition } from '../api/types.js';
import { computeAllocatable, formatResources } from '../api/resources.js';
import { isAlreadyExists, isNotFound, LEASES, NAMESPACES } from '../client/client.js';
import type { ApiClient } from '../client/client.js';
import type { ComputeDriver, HostInfo } from './driver.js';

export const AGENT_VERSION = 'kova-agent/0.1.0';
export const LEASE_NAMESPACE = 'kova-system';
const READY: Omit<Condition, 'lastTransitionTime'> = { type: 'Ready', status: 'True', reason: 'AgentReady', message: 'kova agent is posting ready status' };

export interface HostStatusFacts {
  info: HostInfo;
  driver: ComputeDriver['name'];
  agentVersion?: string;
}

/**
 * Edits a Host's status in place to carry what the agent knows; returns false when nothing
 * changed. allocatable is the host controller's; the agent fills it (capacity × default ratios)
 * only while it is missing, so a fresh host is schedulable before that controller runs.
 */
export function applyHostStatus(host: Host, facts: HostStatusFacts, now = new Date()): boolean {
  const before = JSON.stringify(host.status ?? {});
  const status = (host.status ??= {});
  const capacity = formatResources({ vcpus: facts.info.vcpus, memoryBytes: facts.info.memoryBytes, diskBytes: facts.info.diskBytes });
  status.capacity = capacity;
  status.allocatable ??= formatResources(computeAllocatable({ vcpus: facts.info.vcpus, memoryBytes: facts.info.memoryBytes, diskBytes: facts.info.diskBytes }));
  status.driver = facts.driver;
  status.hypervisor = facts.info.hypervisor;
  status.architecture = facts.info.architecture;
  status.agentVersion = facts.agentVersion ?? AGENT_VERSION;
  if (host.metadata.generation !== undefined) status.observedGeneration = host.metadata.generation;
  const conds = status.conditions ?? [];
  const i = conds.findIndex((c) => c.type === 'Ready');
  const prev = i >= 0 ? conds[i] : undefined;
  if (!prev || prev.status !== READY.status || prev.reason !== READY.reason || prev.message !== READY.message) {
    const next: Condition = { ...READY, lastTransitionTime: prev?.status === READY.status && prev.lastTransitionTime ? prev.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, 'Z') };
    status.conditions = i >= 0 ? conds.map((c, j) => (j === i ? next : c)) : [...conds, next];
  }
  return JSON.stringify(status) !== before;
}

/** Creates the Host if missing, sets the given labels (others are left alone) and its status. */
export async function registerHost(client: ApiClient, hostName: string, labels: Record<string, string>, facts: HostStatusFacts): Promise<Host> {
  let host = await client.get<Host>(HOSTS, undefined, hostName);
  if (!host) {
    try {
      host = await client.create<Host>(HOSTS, { metadata: { name: hostName, labels }, spec: {} });
    } catch (e) {
      if (!isAlreadyExists(e)) throw e;
      host = (await client.get<Host>(HOSTS, undefined, hostName))!;
    }
  }
  const current = host.metadata.labels ?? {};
  if (Object.entries(labels).some(([k, v]) => current[k] !== v)) {
    host = await client.mergePatch<Host>(HOSTS, undefined, hostName, { metadata: { labels } });
  }
  // Usually nothing changed since the last heartbeat: compare on a copy before writing.
  if (!applyHostStatus(structuredClone(host), facts)) return host;
  return (await client.updateStatus<Host>(HOSTS, undefined, hostName, (h) => applyHostStatus(h, facts))) ?? host;
}

/** A MicroTime: RFC 3339 with exactly six fractional digits, as coordination/v1 wants. */
export function microTime(d: Date = new Date()): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** Renews (creating on first use) the Lease `kova-system/<host>`. */
export class LeaseHeartbeat {
  private exists = false;
  constructor(
    private readonly client: ApiClient,
    readonly hostName: string,
    readonly leaseDurationS: number,
  ) {}

  async renew(now = new Date()): Promise<void> {
    const spec = { holderIdentity: this.hostName, leaseDurationSeconds: this.leaseDurationS, renewTime: microTime(now) };
    if (this.exists) {
      try {
        await this.client.mergePatch(LEASES, LEASE_NAMESPACE, this.hostName, { spec });
        return;
      } catch (e) {
        if (!isNotFound(e)) throw e;
        this.exists = false; // deleted behind our back: create it again
      }
    }
    const lease = await this.client.get(LEASES, LEASE_NAMESPACE, this.hostName);
    if (lease) {
      await this.client.mergePatch(LEASES, LEASE_NAMESPACE, this.hostName, { spec });
    } else {
      await ensureNamespace(this.client, LEASE_NAMESPACE);
      try {
        await this.client.create(LEASES, { metadata: { name: this.hostName, namespace: LEASE_NAMESPACE }, spec: { ...spec, acquireTime: microTime(now) } });
      } catch (e) {
        if (!isAlreadyExists(e)) throw e;
        await this.client.mergePatch(LEASES, LEASE_NAMESPACE, this.hostName, { spec });
      }
    }
    this.exists = true;
  }
}

async function ensureNamespace(client: ApiClient, name: string): Promise<void> {
  if (await client.get(NAMESPACES, undefined, name)) return;
  try {
    await client.create(NAMESPACES, { metadata: { name } });
  } catch (e) {
    if (!isAlreadyExists(e)) throw e;
  }
}
