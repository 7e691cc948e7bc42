// The resolver every driver goes through before a spawn: an Instance plus its Flavor, Image,
// KeyPair and Ports becomes one fully resolved DomainSpec (sizes, image, keys, and per NIC the
// host device, MAC, address and guest settings), or the conditions it waits for. Sim and libvirt
// agents run the same waits, so scale runs exercise the path real hosts take. Reads come from
// caches (informers); the driver gets everything it needs and never reads the API itself.
import type { ImageResolution } from '../../api/image-visibility.js';
import type { Flavor, Instance, KeyPair, Network, NetworkStatus } from '../../api/kinds/index.js';
import { instanceRequest } from '../../api/resources.js';
import { errorMessage } from '../../client/controller.js';
import { domainName, instanceKey } from '../driver.js';
import type { DomainSpec, NicSpec } from '../driver.js';
import { imageReadiness } from '../image-cache.js';
import type { ImageCache, ImageObjectView } from '../image-cache.js';
import { defaultGateway } from '../../api/net/ipam.js';
import { VXLAN_GUEST_MTU } from '../network/plan.js';
import type { CondSpec } from './agent-status.js';
import { resolveAttachment } from '../volume/storage.js';
import type { StorageView } from '../volume/storage.js';

/** What the host's kova networking knows (the network agent's caches). */
export interface HostNetworkView {
  /** Whether the network agent has configured the Port on this host (condition Configured=True), else why not. */
  portConfigured(namespace: string, port: string): { ok: true } | { ok: false; message: string };
  /** The host device (a tap the network agent made) of a Port, once the Port has a MAC. */
  portDevice(namespace: string, port: string): string | undefined;
  network(namespace: string, name: string): (Pick<Network, 'spec'> & { status?: Pick<NetworkStatus, 'gateway'> }) | undefined;
}

export interface ResolverDeps {
  hostName: string;
  flavor(name: string): Promise<Flavor | undefined>;
  /**
   * The Image an instance in `namespace` boots from when it names `name`, by the visibility rules
   * of api/image-visibility.ts (resolveImage over the agent's Image cache). Drivers that boot
   * real images also have the host's image `cache` and boot from the cached copy; without one
   * (sim) DomainSpec.image is the Image's name.
   */
  images: { cache?: ImageCache; lookup: (namespace: string, name: string) => ImageResolution<ImageObjectView> };
  /** Only the instance's own namespace: key pairs are project-private (Nova's are per user). */
  keyPair(namespace: string, name: string): KeyPair | undefined;
  /** Present on hosts that run kova networking. */
  network?: HostNetworkView;
  /** Volumes and their types (informer caches). */
  storage: Pick<StorageView, 'volume' | 'volumeType'>;
  /** The driver attaches NICs to host devices (DriverCapabilities.hostNics). */
  hostNics: boolean;
  clusterID?: () => string | undefined;
}

/**
 * Not yet: the conditions it waits for, and why in one sentence. `settling`: what is missing
 * is the controllers' ongoing work (the ports' addresses), usually done in moments, and they
 * report a port that cannot get one in the instance's NetworksReady condition; the agent
 * need not say so at once.
 */
export type Wait = { wait: CondSpec[]; why: string; settling?: boolean };

export type Resolution =
  /** Ready to spawn; `conds` say what is ready (ImageReady=True, ...). */
  | { spec: DomainSpec; conds: CondSpec[] }
  | Wait
  /** Never, as specified (unsizable spec): terminal until the spec changes. */
  | { invalid: string };

/** API errors are not caught: the controller retries them with back-off. */
export interface ResolveOptions {
  /** A migration target: the local volumes stored on this source host move with the guest. */
  migratingFrom?: string;
  /**
   * Resolve the NICs without waiting for this host to have configured the ports (a migration
   * target prepares its disks while its network agent plugs them; it waits for them before
   * it says it is ready).
   */
  portsUnconfigured?: boolean;
  /**
   * Only whether it resolves now (a target checking its ports after preparing): the size the
   * target was charged for is not read (InstanceAgentReconciler.resolve).
   */
  readinessOnly?: boolean;
}

export async function resolveInstance(inst: Instance, d: ResolverDeps, o: ResolveOptions = {}): Promise<Resolution> {
  const ns = inst.metadata.namespace!;
  const name = inst.metadata.name!;
  const spec = inst.spec;
  const prev = inst.status?.conditions ?? [];
  const conds: CondSpec[] = [];

  const flavor = spec.flavor ? await d.flavor(spec.flavor) : undefined;
  const req = instanceRequest(inst, () => flavor);
  // A Flavor may be created after the Instance that names it (apply order, GitOps): wait and
  // look again, as a Pod waits for its ConfigMap, rather than fail for good.
  if ('flavorNotFound' in req) return waiting('FlavorReady', 'FlavorNotFound', `flavor ${req.flavorNotFound} not found`);
  if ('invalid' in req) return { invalid: `cannot size the instance: ${req.invalid}` };

  // Boot from volume (spec.image absent): admission guarantees a volume with bootOrder 1.
  const ready = spec.image === undefined ? undefined : imageReadiness(d.images.lookup(ns, spec.image));
  if (ready && 'waitReason' in ready) return waiting('ImageReady', ready.waitReason, ready.message);

  // Like Nova's block device mappings, every volume is attached before the first boot.
  const volumes = [];
  for (const entry of spec.volumes ?? []) {
    const r = resolveAttachment(d.storage, ns, entry, d.hostName, name, o.migratingFrom);
    if ('wait' in r) return waiting('VolumesReady', 'VolumeNotReady', r.wait);
    volumes.push(r.attach);
  }
  if (volumes.length && prev.some((c) => c.type === 'VolumesReady')) conds.push({ type: 'VolumesReady', status: 'True', reason: 'Ready', message: '' });

  const nics = await resolveNics(inst, d, o.portsUnconfigured === true);
  if ('wait' in nics) return nics;

  let image: string | undefined;
  if (!ready) {
    // Nothing to cache: the boot disk is a volume.
  } else if (d.images.cache) {
    let cached;
    try {
      cached = await d.images.cache.ensure(ready.ref);
    } catch (e) {
      // E.g. another host whose copy of the source is gone: wait (and retry) rather than fail.
      return waiting('ImageReady', 'ImageCacheFailed', `image ${ready.ref.name} is Ready but could not be cached on host ${d.hostName}: ${errorMessage(e)}`);
    }
    image = cached.path;
    conds.push({ type: 'ImageReady', status: 'True', reason: 'Cached', message: `image ${ready.ref.name} (sha256 ${ready.ref.sha256.slice(0, 12)}…) is cached on host ${d.hostName}` });
  } else {
    // No image cache (sim): nothing to copy, but the Image had to be Ready all the same.
    image = ready.ref.name;
    conds.push({ type: 'ImageReady', status: 'True', reason: 'Ready', message: `image ${ready.ref.name} (sha256 ${ready.ref.sha256.slice(0, 12)}…) is Ready` });
  }
  if (prev.some((c) => c.type === 'NetworkReady')) conds.push({ type: 'NetworkReady', status: 'True', reason: 'Attached', message: '' });

  let sshAuthorizedKeys: string[] | undefined;
  if (spec.keyPair) {
    const key = d.keyPair(ns, spec.keyPair)?.spec?.publicKey;
    if (!key) {
      const msg = `key pair ${spec.keyPair} not found in namespace ${ns}`;
      return { why: msg, wait: [...conds, { type: 'KeyPairReady', status: 'False', reason: 'KeyPairNotFound', message: msg }] };
    }
    sshAuthorizedKeys = [key.trim()];
    if (prev.some((c) => c.type === 'KeyPairReady')) conds.push({ type: 'KeyPairReady', status: 'True', reason: 'Found', message: '' });
  }

  const domSpec: DomainSpec = {
    instanceKey: instanceKey(ns, name),
    instanceUID: inst.metadata.uid!,
    clusterID: d.clusterID?.(),
    name: domainName(ns, name, inst.metadata.uid!),
    vcpus: req.req.vcpus,
    memoryBytes: req.req.memoryBytes,
    diskBytes: req.req.diskBytes,
    userData: spec.userData,
    networks: nics.nics,
  };
  if (image !== undefined) domSpec.image = image;
  if (volumes.length) domSpec.volumes = volumes;
  if (sshAuthorizedKeys) domSpec.sshAuthorizedKeys = sshAuthorizedKeys;
  return { spec: domSpec, conds };
}

function waiting(type: string, reason: string, message: string): Wait {
  return { why: message, wait: [{ type, status: 'False', reason, message }] };
}

/**
 * One NicSpec per attached address (status.addresses, in spec.networks order), once networking
 * has attached all of them; on hosts with kova networking each Port must be configured here,
 * and its device and Network settings go into the spec.
 */
async function resolveNics(inst: Instance, d: ResolverDeps, portsUnconfigured: boolean): Promise<{ nics: NicSpec[] } | Wait> {
  const ns = inst.metadata.namespace!;
  const wanted = inst.spec.networks?.length ?? 0;
  const attached = (inst.status?.addresses ?? []).filter((a) => a.mac);
  if (wanted > 0 && attached.length < wanted) {
    return { ...waiting('NetworkReady', 'NetworkNotReady', `waiting for the ports of ${wanted} network(s): networking has attached ${attached.length} so far`), settling: true };
  }
  if (attached.length > 0 && d.hostNics && !d.network) {
    return waiting('NetworkReady', 'NetworkUnavailable', `host ${d.hostName} does not run kova networking (kova agent --network), so the instance's NICs cannot be attached here`);
  }
  const nics: NicSpec[] = [];
  for (const a of attached) {
    const nic: NicSpec = { network: a.network ?? '', mac: a.mac!.toLowerCase() };
    if (a.port) nic.port = a.port;
    if (a.ip) nic.ip = a.ip;
    if (d.network) {
      const notConfigured = (why: string) => waiting('NetworkReady', 'PortNotConfigured', `port ${ns}/${a.port ?? '?'} is not configured on host ${d.hostName} yet: ${why}`);
      if (!a.port) return waiting('NetworkReady', 'PortNotConfigured', `network ${nic.network}: the instance has no port on it yet`);
      const c = d.network.portConfigured(ns, a.port);
      if (!c.ok && !portsUnconfigured) return notConfigured(c.message);
      const net = d.network.network(ns, nic.network);
      if (!net) return notConfigured(`network ${ns}/${nic.network} not found`);
      const device = d.network.portDevice(ns, a.port);
      if (!device) return notConfigured('the port has no MAC address yet');
      if (d.hostNics) nic.tap = device;
      if (net.spec.type === 'vxlan') nic.mtu = VXLAN_GUEST_MTU;
      // Without DHCP on the network the address goes in the guest's network config instead.
      if (net.spec.dhcp === false && nic.ip) {
        nic.address = `${nic.ip}/${net.spec.cidr.split('/')[1]}`;
        nic.gateway = net.status?.gateway ?? net.spec.gateway ?? defaultGateway(net.spec.cidr);
      }
      if (net.spec.dns?.length) nic.dns = [...net.spec.dns];
    }
    nics.push(nic);
  }
  return { nics };
}
