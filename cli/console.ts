// `kova console NAME [-n NS] [--log]`: the serial console of an Instance's domain. With --log
// it prints the console log that virtlogd keeps for the domain; without it, it attaches
// interactively through `virsh console` (Ctrl-] detaches). Both work only on the host that runs
// the instance, since the domain and its log live there.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { INSTANCES } from '../api/kinds/index.js';
import type { Instance } from '../api/kinds/index.js';
import { KovaClient } from '../client/client.js';
import { domainName } from '../node-agent/driver.js';
import { unescapeXml, Virsh, VirshError } from '../node-agent/libvirt/virsh.js';
import { findLocalHost } from './local-hosts.js';

export const CONSOLE_USAGE = 'usage: kova console NAME [-n NAMESPACE] [--log] [--kubeconfig F] [--connect URI] [--data-dir DIR]';

export interface ConsoleTarget {
  namespace: string;
  name: string;
  hostName?: string;
  domain: string;
}

/** The Instance's domain name (the agent's naming), and where it is bound. */
export async function consoleTarget(client: KovaClient, namespace: string, name: string): Promise<ConsoleTarget> {
  const inst = await client.get<Instance>(INSTANCES, namespace, name);
  if (!inst) throw new Error(`instance ${namespace}/${name} not found`);
  const hostName = inst.status?.hostName;
  return { namespace, name, hostName, domain: domainName(namespace, name, inst.metadata.uid!) };
}

/** The console log file named in the domain's XML (`<serial><log file=…>`), or a clear error when the domain is not on this host. */
export async function consoleLogPath(virsh: Virsh, t: ConsoleTarget): Promise<string> {
  let xml: string;
  try {
    xml = await virsh.run('dumpxml', t.domain);
  } catch (e) {
    if (e instanceof VirshError && e.noDomain) throw notHere(t);
    throw e;
  }
  const m = /<log\s+file=(['"])([^'"]+)\1/.exec(xml);
  if (!m) throw new Error(`domain ${t.domain} has no console log`);
  return unescapeXml(m[2]);
}

function notHere(t: ConsoleTarget): Error {
  const where = t.hostName ? `is bound to host ${t.hostName}` : 'is not scheduled to a host yet';
  return new Error(`instance ${t.namespace}/${t.name} ${where}, and its domain ${t.domain} does not exist on this machine: kova console works on the host that runs the instance`);
}


/** Entry point of the command; resolves with the exit code. */
export async function consoleCommand(argv: string[], kubeconfigFrom: (flag: string | undefined) => string): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      namespace: { type: 'string', short: 'n', default: 'default' },
      log: { type: 'boolean', default: false },
      kubeconfig: { type: 'string' },
      connect: { type: 'string', short: 'c' },
      'data-dir': { type: 'string' },
    },
  });
  if (positionals.length !== 1) throw new Error(CONSOLE_USAGE);
  const kubeconfig = kubeconfigFrom(values.kubeconfig);
  const client = KovaClient.fromFile(kubeconfig, { userAgent: 'kova-cli' });
  const t = await consoleTarget(client, values.namespace!, positionals[0]);
  // A guest on one of `kova up --hosts N`'s hosts lives under that host's own libvirtd: found
  // from the data dir (--data-dir, else the kubeconfig's directory, where kova up writes it).
  const local = values.connect === undefined && t.hostName ? await findLocalHost(values['data-dir'] ?? dirname(kubeconfig), t.hostName) : undefined;
  values.connect ??= local?.uri ?? 'qemu:///system';
  const virsh = new Virsh(values.connect);
  if (values.log) {
    const path = await consoleLogPath(virsh, t);
    const text = await readFile(path).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return Buffer.alloc(0); // defined but never started
      throw e;
    });
    process.stdout.write(text);
    return 0;
  }
  // Fail with the same clear message as --log when the domain is elsewhere.
  await virsh.run('domuuid', t.domain).catch((e: unknown) => {
    throw e instanceof VirshError && e.noDomain ? notHere(t) : e;
  });
  process.stderr.write(`kova: connected to the console of ${t.namespace}/${t.name} (domain ${t.domain}); escape with Ctrl-]\n`);
  const child = spawn('virsh', ['-c', values.connect!, 'console', t.domain], { stdio: 'inherit' });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, sig) => resolve(code ?? (sig ? 1 : 0)));
  });
}
