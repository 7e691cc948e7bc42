// NodeRestriction: what a node agent (user system:node:<host> in group system:nodes) may write,
// as kube-apiserver's NodeRestriction admission plugin limits kubelets. RBAC gives every node
// the same verbs on hosts, leases, instances and so on; this narrows each write to the objects
// of the node's own host:
//   - its Host (hosts/<host>, hosts/<host>/status): create, update, patch, delete;
//   - its Lease kova-system/<host> (coordination.k8s.io): create, update, patch, delete;
//   - Instances bound to it (status.hostName, set by the binding subresource): status updates
//     and patches that keep the binding, and the instance-protection finalizer the agent adds
//     and removes (a main-resource patch; an update must leave spec alone);
//   - Ports bound to it (status.hostName): status updates and patches;
//   - Networks: status updates that change only the host's own condition host.kova.dev/<host>;
//   - Volumes it stores or was chosen for (status.hostName, or the kova.dev/selected-host
//     annotation): status updates and patches (status.hostName only ever set to itself), and the
//     volume-protection finalizer (a main-resource write that changes nothing else);
//   - VolumeSnapshots unclaimed or claimed by it (status.hostName): status updates and patches
//     that claim it for itself only, and, once it is its own, the snapshot-cleanup finalizer;
//   - Migrations whose stored status.sourceHost or status.targetHost is the node: status updates
//     and patches that keep what the controller decided (status.instanceUID, sourceHost,
//     targetHost, mode, storage); never a create, delete or a write of the Migration itself;
//   - Events (core and events.k8s.io): as Kubernetes, any.
// Everything else a node writes is a 403 naming the node and the object. Reads stay RBAC's.
// Patch bodies are not seen by admission (the server passes none), so a patch is judged on the
// object it applies to.
import { isDeepStrictEqual } from 'node:util';
import type { KObject } from '../../api/types.js';
import { ANNOTATION_SELECTED_HOST, VOLUME_PROTECTION_FINALIZER } from '../../api/kinds/volume.js';
import { SNAPSHOT_CLEANUP_FINALIZER } from '../../api/kinds/volumesnapshot.js';
import { HOST_CONDITION_PREFIX } from '../../api/net/rules.js';
import { ApiError } from '../status.js';
import type { Admission } from './hooks.js';
import { NODES_GROUP } from './types.js';
import type { RequestAttributes, UserInfo } from './types.js';

const NODE_PREFIX = 'system:node:';
/** Where node agents keep their heartbeat Leases (node-agent/host-registration.ts). */
export const NODE_LEASE_NAMESPACE = 'kova-system';
const KOVA = 'kova.dev';
/** The one finalizer a node may add or remove on each volume kind. */
const NODE_FINALIZERS: Record<string, string> = { volumes: VOLUME_PROTECTION_FINALIZER, volumesnapshots: SNAPSHOT_CLEANUP_FINALIZER };

/** The host a node user acts for, or undefined for anyone else (kube's nodeidentifier: name prefix and group). */
export function nodeHostOf(user: UserInfo): string | undefined {
  if (!user.name.startsWith(NODE_PREFIX) || !user.groups.includes(NODES_GROUP)) return undefined;
  const host = user.name.slice(NODE_PREFIX.length);
  return host || undefined;
}

interface Status {
  hostName?: unknown;
  conditions?: Array<{ type?: unknown }>;
  [k: string]: unknown;
}

function statusOf(o: KObject | undefined): Status {
  const s = (o as { status?: unknown } | undefined)?.status;
  return s && typeof s === 'object' ? (s as Status) : {};
}

export class NodeRestriction implements Admission {
  async admit(a: RequestAttributes, object: KObject | undefined): Promise<void> {
    const host = nodeHostOf(a.user);
    if (host === undefined || !a.resourceRequest) return;
    const deny = (why: string): never => {
      throw forbidden(a, object, `node ${JSON.stringify(host)} ${why}`);
    };
    const name = a.name || (a.verb === 'create' ? (object?.metadata?.name ?? '') : '');
    const verb = a.verb;
    const res = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;

    if (a.resource === 'events' && (a.apiGroup === '' || a.apiGroup === 'events.k8s.io')) return;

    if (a.apiGroup === KOVA && a.resource === 'hosts') {
      if (verb === 'deletecollection' || (a.subresource && a.subresource !== 'status')) deny(`is not allowed to ${verb} ${res}`);
      if (name !== host) deny(`is not allowed to modify host ${JSON.stringify(name)}`);
      return;
    }

    if (a.apiGroup === 'coordination.k8s.io' && a.resource === 'leases') {
      if (verb === 'deletecollection') deny('is not allowed to delete a collection of leases');
      if (a.namespace !== NODE_LEASE_NAMESPACE || name !== host) {
        deny(`is not allowed to modify lease ${JSON.stringify(`${a.namespace}/${name}`)}: only its own lease ${NODE_LEASE_NAMESPACE}/${host}`);
      }
      return;
    }

    if (a.apiGroup === KOVA && (a.resource === 'instances' || a.resource === 'ports')) {
      const writes = verb === 'update' || verb === 'patch';
      const mainOk = a.resource === 'instances' && a.subresource === '' && writes;
      if (!(writes && (a.subresource === 'status' || mainOk))) deny(`is not allowed to ${verb} ${res}${name ? ` ${JSON.stringify(`${a.namespace}/${name}`)}` : ''}`);
      // Whose it is, and what the write changes, is judged against the stored object the
      // write replaces (admitResult), which the update reads anyway.
      return;
    }

    if (a.apiGroup === KOVA && a.resource === 'networks' && a.subresource === 'status' && (verb === 'update' || verb === 'patch')) return;

    if (a.apiGroup === KOVA && (a.resource === 'volumes' || a.resource === 'volumesnapshots')) {
      const writes = verb === 'update' || verb === 'patch';
      if (!(writes && (a.subresource === 'status' || a.subresource === ''))) deny(`is not allowed to ${verb} ${res}${name ? ` ${JSON.stringify(`${a.namespace}/${name}`)}` : ''}`);
      return; // whose it is and what changes: admitResult, against the stored object
    }

    if (a.apiGroup === KOVA && a.resource === 'migrations' && a.subresource === 'status' && (verb === 'update' || verb === 'patch')) {
      return; // whose it is and what changes: admitResult, against the stored object
    }

    deny(`is not allowed to ${verb} ${res}${name ? ` ${JSON.stringify(a.namespace ? `${a.namespace}/${name}` : name)}` : ''}`);
  }

  /**
   * What a node's update or patch makes, against the stored object it replaces: the object must
   * be bound to the node's host, and the write may change only what is the node's to change.
   */
  admitResult(a: RequestAttributes, object: KObject, old: KObject | undefined): void {
    const host = nodeHostOf(a.user);
    if (host === undefined || !a.resourceRequest) return;
    const deny = (why: string): never => {
      throw forbidden(a, object, `node ${JSON.stringify(host)} ${why}`);
    };
    if (a.apiGroup === KOVA && (a.resource === 'instances' || a.resource === 'ports')) {
      const kind = a.resource === 'instances' ? 'instance' : 'port';
      const bound = statusOf(old).hostName;
      if (bound !== host) {
        const ref = `${a.namespace}/${a.name}`;
        deny(`can only modify ${kind}s bound to it (status.hostName ${JSON.stringify(host)}); ${kind} ${JSON.stringify(ref)} is ${bound ? `bound to ${JSON.stringify(bound)}` : 'not bound'}`);
      }
    }
    if (a.apiGroup === KOVA && a.resource === 'volumes') {
      const ref = JSON.stringify(`${a.namespace}/${a.name}`);
      const stored = statusOf(old).hostName;
      const selected = old?.metadata.annotations?.[ANNOTATION_SELECTED_HOST];
      if (!old || (stored !== host && selected !== host)) {
        const whose = !old ? 'does not exist' : stored ? `is on host ${JSON.stringify(stored)}` : selected ? `is selected for host ${JSON.stringify(selected)}` : 'has no host yet';
        deny(`can only modify volumes it stores or was selected for (status.hostName or annotation ${ANNOTATION_SELECTED_HOST} ${JSON.stringify(host)}); volume ${ref} ${whose}`);
      }
    }
    if (a.apiGroup === KOVA && a.resource === 'volumesnapshots') {
      const ref = JSON.stringify(`${a.namespace}/${a.name}`);
      const claimedBy = statusOf(old).hostName;
      // The status may claim an unclaimed snapshot; anything else needs it to be the node's already.
      const mayClaim = a.subresource === 'status' && !claimedBy;
      if (!old || (claimedBy !== host && !mayClaim)) {
        deny(`can only modify volume snapshots it took or claims (status.hostName ${JSON.stringify(host)}); volume snapshot ${ref} ${!old ? 'does not exist' : claimedBy ? `was taken by ${JSON.stringify(claimedBy)}` : 'is not claimed'}`);
      }
    }
    if (a.apiGroup === KOVA && a.resource === 'migrations') {
      const ref = JSON.stringify(`${a.namespace}/${a.name}`);
      const { sourceHost, targetHost } = statusOf(old);
      if (!old || (sourceHost !== host && targetHost !== host)) {
        const hosts = !old ? 'does not exist' : sourceHost || targetHost ? `is between ${JSON.stringify(sourceHost ?? '')} and ${JSON.stringify(targetHost ?? '')}` : 'has no hosts yet';
        deny(`can only modify migrations from or to it (status.sourceHost or status.targetHost ${JSON.stringify(host)}); migration ${ref} ${hosts}`);
      }
    }
    checkResult(a, host, object, old, deny);
  }
}

/** What the migration controller decides and a host only reports on. */
const MIGRATION_CONTROLLER_FIELDS = ['instanceUID', 'sourceHost', 'targetHost', 'mode', 'storage'] as const;

/** What a write may change besides one finalizer: spec, labels, annotations, owners, the other finalizers. */
function beyondFinalizer(o: KObject | undefined, finalizer: string): unknown {
  const m = o?.metadata ?? {};
  return {
    spec: (o as { spec?: unknown } | undefined)?.spec,
    labels: m.labels ?? {},
    annotations: m.annotations ?? {},
    ownerReferences: m.ownerReferences ?? [],
    finalizers: (m.finalizers ?? []).filter((f) => f !== finalizer),
  };
}

/**
 * The rules on what a node's write of an object bound to it may change: the binding is the
 * scheduler's (status.hostName stays), the spec the user's, and on a shared Network only the
 * node's own condition is its to write.
 */
function checkResult(a: RequestAttributes, host: string, object: KObject, current: KObject | undefined, deny: (why: string) => never): void {
  if (a.apiGroup !== KOVA) return;
  const ref = `${a.namespace}/${a.name || object.metadata?.name || ''}`;
  if (a.resource === 'instances' || a.resource === 'ports') {
    const kind = a.resource === 'instances' ? 'instance' : 'port';
    if (a.subresource === 'status' && statusOf(object).hostName !== host) deny(`may not change status.hostName of ${kind} ${JSON.stringify(ref)}`);
    if (a.subresource === '' && !isDeepStrictEqual((object as { spec?: unknown }).spec, (current as { spec?: unknown } | undefined)?.spec)) {
      deny(`may not change the spec of ${kind} ${JSON.stringify(ref)}`);
    }
    return;
  }
  if (a.resource === 'volumes' || a.resource === 'volumesnapshots') {
    const kind = a.resource === 'volumes' ? 'volume' : 'volume snapshot';
    if (a.subresource === '') {
      const finalizer = NODE_FINALIZERS[a.resource];
      if (!isDeepStrictEqual(beyondFinalizer(object, finalizer), beyondFinalizer(current, finalizer))) {
        deny(`may only add or remove the finalizer ${finalizer} of ${kind} ${JSON.stringify(ref)}, not change its spec or metadata`);
      }
      return;
    }
    const next = statusOf(object).hostName;
    // A volume's host is the one storing it: the node may name itself, or keep what is there.
    const keeps = a.resource === 'volumes' && next === statusOf(current).hostName;
    if (next !== undefined && next !== host && !keeps) deny(`may not set status.hostName of ${kind} ${JSON.stringify(ref)} to ${JSON.stringify(next)}`);
    return;
  }
  if (a.resource === 'migrations') {
    for (const f of MIGRATION_CONTROLLER_FIELDS) {
      if (!isDeepStrictEqual(statusOf(object)[f], statusOf(current)[f])) deny(`may not change status.${f} of migration ${JSON.stringify(ref)}`);
    }
    return;
  }
  if (a.resource === 'networks' && a.subresource === 'status') {
    const own = `${HOST_CONDITION_PREFIX}${host}`;
    const strip = (o: KObject | undefined) => {
      const s = { ...statusOf(o) };
      if (Array.isArray(s.conditions)) s.conditions = s.conditions.filter((c) => c?.type !== own);
      return s;
    };
    if (!isDeepStrictEqual(strip(object), strip(current))) deny(`may only change its own condition ${own} in the status of network ${JSON.stringify(ref)}`);
  }
}

/** admission.NewForbidden: `<resource>.<group> "<name>" is forbidden: <why>`. */
function forbidden(a: RequestAttributes, object: KObject | undefined, why: string): ApiError {
  const name = a.name || object?.metadata?.name || '';
  const gr = a.apiGroup ? `${a.resource}.${a.apiGroup}` : a.resource;
  return new ApiError(403, 'Forbidden', `${name ? `${gr} ${JSON.stringify(name)}` : gr} is forbidden: ${why}`, { name: name || undefined, group: a.apiGroup, kind: a.resource });
}
