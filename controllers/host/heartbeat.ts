// Judges a host's liveness from its heartbeat Lease (kova-system/<host>), like the node
// lifecycle controller judges kubelets: a Lease is fresh until renewTime + leaseDurationSeconds;
// a host that never got a Lease is given `graceMs` from its creation to post the first one.

/** The parts of a coordination.k8s.io/v1 Lease that matter here. Times may be Date objects
 * (client-node's deserializer) or RFC 3339 strings (raw watch events). */
export interface HeartbeatLease {
  spec?: {
    renewTime?: Date | string | null;
    acquireTime?: Date | string | null;
    leaseDurationSeconds?: number | null;
  } | null;
}

export type HeartbeatVerdict =
  /** Alive until `expiresAtMs`: look again then. */
  | { alive: true; expiresAtMs: number }
  /** Heartbeats stopped; `message` says since when. */
  | { alive: false; lastHeartbeat?: string; message: string };

function toMs(t: Date | string | null | undefined): number | undefined {
  if (t === null || t === undefined) return undefined;
  const ms = t instanceof Date ? t.getTime() : Date.parse(t);
  return Number.isFinite(ms) ? ms : undefined;
}

export function heartbeatVerdict(args: {
  hostName: string;
  /** metadata.creationTimestamp of the Host. */
  hostCreated: string | Date | undefined;
  lease: HeartbeatLease | undefined;
  nowMs: number;
  /** How long a new host may go without any Lease (and the duration assumed when a Lease has none). */
  graceMs: number;
}): HeartbeatVerdict {
  const { hostName, lease, nowMs, graceMs } = args;
  const renewMs = toMs(lease?.spec?.renewTime) ?? toMs(lease?.spec?.acquireTime);
  if (renewMs !== undefined) {
    const durationMs = (lease?.spec?.leaseDurationSeconds ?? graceMs / 1000) * 1000;
    const expiresAtMs = renewMs + durationMs;
    if (nowMs < expiresAtMs) return { alive: true, expiresAtMs };
    const at = new Date(renewMs).toISOString();
    return { alive: false, lastHeartbeat: at, message: `kova agent on host ${hostName} stopped posting heartbeats at ${at}` };
  }
  const createdMs = toMs(args.hostCreated) ?? nowMs;
  const expiresAtMs = createdMs + graceMs;
  if (nowMs < expiresAtMs) return { alive: true, expiresAtMs };
  return { alive: false, message: `kova agent on host ${hostName} has not posted a heartbeat since the host was registered at ${new Date(createdMs).toISOString()}` };
}
