// The NoCloud seed of an instance: an ISO 9660 volume labelled `cidata` holding meta-data,
// user-data and network-config (version 2), as cloud-init's NoCloud datasource reads it.
// The renderers are pure; buildNoCloudSeed writes the files and runs genisoimage.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import YAML from 'yaml';
import { isDNS1123LabelOK } from '../../api/name-validation.js';
import { isIPv4, parseIPv4CIDR } from '../../api/net/ipv4.js';
import { launch } from '../../lib/launcher.js';


export class InvalidSeed extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidSeed';
  }
}

export interface EthernetV2 {
  match?: { macaddress?: string };
  'set-name'?: string;
  dhcp4?: boolean;
  addresses?: string[];
  gateway4?: string;
  routes?: { to: string; via: string }[];
  nameservers?: { addresses?: string[]; search?: string[] };
  mtu?: number;
}

export interface NetworkConfigV2 {
  version: 2;
  ethernets: Record<string, EthernetV2>;
}

export interface NoCloudSeedSpec {
  /** Changing it makes cloud-init treat the next boot as a new instance; use the Instance uid. */
  instanceId: string;
  hostname: string;
  /** The Instance's spec.userData, verbatim. */
  userData?: string;
  /** The KeyPair public key(s), merged into the user-data as ssh_authorized_keys. */
  sshAuthorizedKeys?: string[];
  networkConfig?: NetworkConfigV2;
}

export interface SeedNic {
  mac: string;
  /** Static address in CIDR form (10.20.0.10/24); DHCP when omitted. */
  address?: string;
  gateway?: string;
  dns?: string[];
  mtu?: number;
}

/** Nova and EC2 cap user-data at 64 KiB; a larger one is almost surely a mistake. */
export const MAX_USER_DATA_BYTES = 64 * 1024;

const CONTROL = /[\u0000-\u001F\u007F]/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const SSH_KEY = /^(ssh-(rsa|dss|ed25519)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\r\n]*)?$/;

function fail(message: string): never {
  throw new InvalidSeed(message);
}

function checkHostname(h: string): void {
  if (h.length === 0 || h.length > 253 || !h.split('.').every((l) => isDNS1123LabelOK(l.toLowerCase()))) fail(`invalid hostname ${JSON.stringify(h)}`);
}

export function renderMetaData(instanceId: string, hostname: string): string {
  if (instanceId.length === 0 || instanceId.length > 255 || CONTROL.test(instanceId)) fail(`invalid instance-id ${JSON.stringify(instanceId)}`);
  checkHostname(hostname);
  return YAML.stringify({ 'instance-id': instanceId, 'local-hostname': hostname }, { lineWidth: 0 });
}

function checkKeys(keys: string[]): void {
  for (const k of keys) if (!SSH_KEY.test(k) || CONTROL.test(k)) fail(`invalid SSH public key ${JSON.stringify(k.slice(0, 40))}`);
}

/** MIME types cloud-init gives to user-data by its first line. */
const PART_TYPES: [prefix: string, type: string][] = [
  ['#cloud-config-archive', 'text/cloud-config-archive'],
  ['#cloud-config', 'text/cloud-config'],
  ['#cloud-boothook', 'text/cloud-boothook'],
  ['#include', 'text/x-include-url'],
  ['#part-handler', 'text/part-handler'],
  ['#upstart-job', 'text/upstart-job'],
  ['#!', 'text/x-shellscript'],
];

function isMime(s: string): boolean {
  return /^(content-type|mime-version):/i.test(s);
}

/**
 * The user-data file: spec.userData with the keys merged in, still valid for real cloud-init.
 * - no keys: userData verbatim (empty when absent);
 * - `#cloud-config`: the keys are added to its ssh_authorized_keys (its comments are kept);
 * - absent: a `#cloud-config` with just the keys;
 * - anything else (a script, #include, a MIME message, ...): a MIME multipart message with a
 *   cloud-config part for the keys followed by the user's data as its own part.
 */
export function renderUserData(userData: string | undefined, keys: string[] = []): string {
  const data = userData ?? '';
  if (Buffer.byteLength(data) > MAX_USER_DATA_BYTES) fail(`user-data is larger than ${MAX_USER_DATA_BYTES} bytes`);
  checkKeys(keys);
  if (keys.length === 0) return data;
  if (data.trim() === '') return `#cloud-config\n${YAML.stringify({ ssh_authorized_keys: keys }, { lineWidth: 0 })}`;
  if (/^#cloud-config[ \t]*\r?\n/.test(data) || data.trim() === '#cloud-config') return mergeKeysIntoCloudConfig(data, keys);
  return multipart([
    { type: 'text/cloud-config', filename: 'kova-ssh-keys.cfg', body: `#cloud-config\n${YAML.stringify({ ssh_authorized_keys: keys }, { lineWidth: 0 })}` },
    isMime(data) ? { raw: data } : { type: PART_TYPES.find(([p]) => data.startsWith(p))?.[1] ?? 'text/plain', filename: 'user-data', body: data },
  ]);
}

function mergeKeysIntoCloudConfig(data: string, keys: string[]): string {
  const doc = YAML.parseDocument(data);
  if (doc.errors.length > 0) fail(`user-data is not valid YAML: ${doc.errors[0].message}`);
  // A document that is only the `#cloud-config` comment has no contents yet.
  if (doc.contents === null) (doc as YAML.Document).contents = doc.createNode({});
  if (!YAML.isMap(doc.contents)) fail('#cloud-config user-data must be a YAML mapping');
  const existing = doc.get('ssh_authorized_keys');
  if (existing === undefined || existing === null) {
    doc.set('ssh_authorized_keys', doc.createNode(keys));
  } else if (YAML.isSeq(existing)) {
    const have = new Set(existing.items.map((i) => String(YAML.isScalar(i) ? i.value : i)));
    for (const k of keys) if (!have.has(k)) existing.add(doc.createNode(k));
  } else {
    fail('ssh_authorized_keys in user-data must be a list');
  }
  const out = doc.toString({ lineWidth: 0 });
  return out.startsWith('#cloud-config') ? out : `#cloud-config\n${out}`;
}

type Part = { type: string; filename: string; body: string } | { raw: string };

function multipart(parts: Part[]): string {
  const all = parts.map((p) => ('raw' in p ? p.raw : p.body)).join('\n');
  let boundary = '';
  for (let n = 0; boundary === '' || all.includes(boundary); n++) {
    boundary = `==kova-${createHash('sha256').update(`${n}\0${all}`).digest('hex').slice(0, 24)}==`;
  }
  const lines = [`Content-Type: multipart/mixed; boundary="${boundary}"`, 'MIME-Version: 1.0', ''];
  for (const p of parts) {
    lines.push(`--${boundary}`);
    if ('raw' in p) {
      // A MIME message carries its own headers: it becomes a nested part, which cloud-init walks.
      lines.push(p.raw.replace(/\r?\n$/, ''));
      continue;
    }
    lines.push(
      `Content-Type: ${p.type}; charset="utf-8"`,
      'MIME-Version: 1.0',
      'Content-Transfer-Encoding: 8bit',
      `Content-Disposition: attachment; filename="${p.filename}"`,
      '',
      p.body.replace(/\r?\n$/, ''),
    );
  }
  lines.push(`--${boundary}--`, '');
  return lines.join('\n');
}

/** network-config v2 for the NICs, in order: eth0, eth1, ... matched by MAC. */
export function networkConfigForNics(nics: SeedNic[]): NetworkConfigV2 {
  const ethernets: Record<string, EthernetV2> = {};
  nics.forEach((n, i) => {
    const e: EthernetV2 = { match: { macaddress: n.mac }, 'set-name': `eth${i}` };
    if (n.address !== undefined) {
      e.addresses = [n.address];
      if (n.gateway !== undefined) e.routes = [{ to: 'default', via: n.gateway }];
    } else {
      e.dhcp4 = true;
    }
    if (n.dns?.length) e.nameservers = { addresses: n.dns };
    if (n.mtu !== undefined) e.mtu = n.mtu;
    ethernets[`eth${i}`] = e;
  });
  return { version: 2, ethernets };
}

const IPV6 = /^[0-9a-f:]+(:(\d{1,3}\.){3}\d{1,3})?$/i;
function isIp(s: string): boolean {
  return isIPv4(s) || (s.includes(':') && IPV6.test(s));
}
/** An interface address or route with its prefix (host bits allowed): IPv4, or IPv6 loosely. */
function isCidr(s: string): boolean {
  if (!s.includes(':')) return parseIPv4CIDR(s) !== undefined;
  const [ip, len, ...rest] = s.split('/');
  if (rest.length > 0 || len === undefined || !/^\d{1,3}$/.test(len)) return false;
  return IPV6.test(ip) && Number(len) <= 128;
}

export function renderNetworkConfig(cfg: NetworkConfigV2): string {
  if (cfg.version !== 2) fail('network-config must be version 2');
  for (const [id, e] of Object.entries(cfg.ethernets)) {
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(id)) fail(`invalid interface id ${JSON.stringify(id)}`);
    if (e.match?.macaddress !== undefined && !MAC.test(e.match.macaddress)) fail(`invalid MAC ${JSON.stringify(e.match.macaddress)}`);
    if (e['set-name'] !== undefined && !/^[A-Za-z0-9_.-]{1,15}$/.test(e['set-name'])) fail(`invalid set-name ${JSON.stringify(e['set-name'])}`);
    for (const a of e.addresses ?? []) if (!isCidr(a)) fail(`invalid address ${JSON.stringify(a)} (CIDR expected)`);
    if (e.gateway4 !== undefined && !isIPv4(e.gateway4)) fail(`invalid gateway4 ${JSON.stringify(e.gateway4)}`);
    for (const r of e.routes ?? []) {
      if (r.to !== 'default' && !isCidr(r.to)) fail(`invalid route destination ${JSON.stringify(r.to)}`);
      if (!isIp(r.via)) fail(`invalid route gateway ${JSON.stringify(r.via)}`);
    }
    for (const d of e.nameservers?.addresses ?? []) if (!isIp(d)) fail(`invalid nameserver ${JSON.stringify(d)}`);
    for (const s of e.nameservers?.search ?? []) checkHostname(s);
    if (e.mtu !== undefined && (!Number.isInteger(e.mtu) || e.mtu < 68 || e.mtu > 65535)) fail(`invalid mtu ${e.mtu}`);
  }
  return YAML.stringify(cfg, { lineWidth: 0 });
}

/** The three seed files, rendered and validated. */
export function renderSeedFiles(spec: NoCloudSeedSpec): { 'meta-data': string; 'user-data': string; 'network-config'?: string } {
  return {
    'meta-data': renderMetaData(spec.instanceId, spec.hostname),
    'user-data': renderUserData(spec.userData, spec.sshAuthorizedKeys ?? []),
    ...(spec.networkConfig ? { 'network-config': renderNetworkConfig(spec.networkConfig) } : {}),
  };
}

/**
 * Writes the seed ISO to isoPath (replacing it atomically). Needs genisoimage. The volume has
 * Rock Ridge and Joliet names, so `meta-data` keeps its name on every reader.
 */
export async function buildNoCloudSeed(isoPath: string, spec: NoCloudSeedSpec): Promise<void> {
  const files = renderSeedFiles(spec);
  const work = await mkdtemp(join(dirname(isoPath), '.seed-'));
  try {
    const dir = join(work, 'cidata');
    await mkdir(dir);
    for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content, { mode: 0o644 });
    const tmpIso = join(work, 'seed.iso');
    try {
      await launch('genisoimage', ['-quiet', '-output', tmpIso, '-volid', 'cidata', '-joliet', '-rock', '-input-charset', 'utf-8', dir]);
    } catch (err) {
      throw new Error(`genisoimage failed: ${((err as { stderr?: string }).stderr ?? String(err)).trim()}`, { cause: err });
    }
    await rename(tmpIso, isoPath);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
