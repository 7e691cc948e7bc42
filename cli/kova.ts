#!/usr/bin/env node
// The `kova` command: `up` runs a whole single-host cloud, `apiserver` the API server alone.
import { parseArgs } from 'node:util';
import { defaultDataDir, startControlPlane } from './control-plane.js';
import type { ControlPlane } from './control-plane.js';
import { ensureHostDeps } from './host-deps.js';

const HELP = `kova — a Kubernetes-style control plane for virtual machines

Usage:
  kova up [flags]          start etcd (unless external), the API server and the control plane
  kova apiserver [flags]   run the API server alone (same flags)
  kova --help              show this help

Flags:
  --data-dir DIR           state directory (default /var/lib/kova as root, ./.kova otherwise)
  --listen HOST:PORT       API server address (default 127.0.0.1:6443; port 0 picks a free port)
  --etcd-endpoints URLS    comma-separated etcd client URLs of an external cluster;
                           without it a local single-member etcd runs in DIR/etcd
  --driver libvirt|sim     hypervisor driver for the node agent (default libvirt)
  --sim-hosts N            number of simulated hosts with --driver sim (default 3)
  --insecure               plain HTTP without authentication (local debugging only)
  -v, --verbose            log internal events to stderr

After "ready", use:  export KUBECONFIG=DIR/kubeconfig; kubectl get kova
`;

const FLAGS = {
  'data-dir': { type: 'string' },
  listen: { type: 'string', default: '127.0.0.1:6443' },
  'etcd-endpoints': { type: 'string' },
  driver: { type: 'string', default: 'libvirt' },
  'sim-hosts': { type: 'string', default: '3' },
  insecure: { type: 'boolean', default: false },
  verbose: { type: 'boolean', short: 'v', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

function say(msg: string) {
  process.stdout.write(`kova: ${msg}\n`);
}

async function up(argv: string[], what: 'up' | 'apiserver'): Promise<void> {
  const { values } = parseArgs({ args: argv, options: FLAGS, allowPositionals: false });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  if (values.driver !== 'libvirt' && values.driver !== 'sim') throw new Error(`--driver must be libvirt or sim, got ${values.driver}`);
  const etcdEndpoints = values['etcd-endpoints'] ? values['etcd-endpoints'].split(',').map((s) => s.trim()).filter(Boolean) : [];
  const dataDir = values['data-dir'] ?? defaultDataDir();
  say(`data directory ${dataDir}`);
  say('checking host dependencies');
  await ensureHostDeps({ etcd: etcdEndpoints.length === 0 }, say);
  const verbose = values.verbose;
  let cp: ControlPlane | undefined;
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    say(`${signal} received, stopping`);
    await cp?.stop();
    say('stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  cp = await startControlPlane({
    dataDir,
    listen: values.listen,
    etcdEndpoints,
    insecure: values.insecure,
    step: say,
    log: verbose ? (m) => process.stderr.write(`${m}\n`) : undefined,
  });
  if (what === 'up') {
    // Controllers and node agents join here as later issues land.
  }
  say(`ready: API server at ${cp.url}`);
  say(`kubeconfig: ${cp.kubeconfig}`);
  say(`try: export KUBECONFIG=${cp.kubeconfig}; kubectl get kova`);
}

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'up':
    case 'apiserver':
      return up(rest, cmd);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(HELP);
      return;
    default:
      process.stderr.write(`kova: unknown command ${JSON.stringify(cmd)}\n\n${HELP}`);
      process.exit(2);
  }
}

main(process.argv.slice(2)).catch((e) => {
  process.stderr.write(`kova: error: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
