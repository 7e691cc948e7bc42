// What `kova up` needs from the host, and how it gets it: like DevStack, as root on Debian it
// runs hack/install-host-deps.sh itself (with its progress on the terminal); elsewhere it says
// exactly what is missing and which command fixes it.
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { packageRoot } from './paths.js';

export function onPath(cmd: string): boolean {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(delimiter)) {
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return true;
    } catch {
      // keep looking
    }
  }
  return false;
}

export interface HostNeeds {
  etcd: boolean;
  /** The libvirt driver: QEMU, libvirt (daemon running), seed ISOs, host networking. */
  libvirt?: boolean;
}

const LIBVIRT_SOCKET = '/var/run/libvirt/libvirt-sock';

/** Commands missing for the requested mode, with the Debian package that provides each. */
export function missingCommands(needs: HostNeeds): Array<{ cmd: string; pkg: string }> {
  const want: Array<{ cmd: string; pkg: string }> = [{ cmd: 'openssl', pkg: 'openssl' }];
  if (needs.etcd) want.push({ cmd: 'etcd', pkg: 'etcd-server' });
  if (needs.libvirt) {
    want.push(
      { cmd: 'qemu-system-x86_64', pkg: 'qemu-system-x86' }, { cmd: 'qemu-img', pkg: 'qemu-utils' },
      { cmd: 'virsh', pkg: 'libvirt-clients' }, { cmd: 'libvirtd', pkg: 'libvirt-daemon-system' },
      { cmd: 'genisoimage', pkg: 'genisoimage' }, { cmd: 'dnsmasq', pkg: 'dnsmasq-base' }, { cmd: 'nft', pkg: 'nftables' },
      // The reaper of libvirtd's guest processes (hack/install-host-deps.sh, hack/local-libvirtd.sh).
      { cmd: 'tini', pkg: 'tini' },
    );
  }
  const missing = want.filter((w) => !onPath(w.cmd));
  // Installed but not running (no systemd here): the script starts virtlogd and libvirtd.
  if (needs.libvirt && !missing.length && !existsSync(LIBVIRT_SOCKET)) missing.push({ cmd: 'libvirtd (not running)', pkg: 'libvirt-daemon-system' });
  return missing;
}

export function installScript(): string {
  return join(packageRoot(), 'hack', 'install-host-deps.sh');
}

/** Ensures host commands exist, installing them as root on Debian; throws with advice otherwise. */
export async function ensureHostDeps(needs: HostNeeds, say: (m: string) => void): Promise<void> {
  const missing = missingCommands(needs);
  if (!missing.length) return;
  const list = missing.map((m) => `${m.cmd} (Debian package ${m.pkg})`).join(', ');
  const script = installScript();
  const canInstall = process.getuid?.() === 0 && existsSync('/etc/debian_version') && existsSync(script);
  if (!canInstall) {
    throw new Error(`missing host dependencies: ${list}. Install them with: sudo ${script}  (or apt-get install ${missing.map((m) => m.pkg).join(' ')})`);
  }
  say(`missing host dependencies: ${list}; running ${script} (this takes a few minutes the first time)`);
  const code = await new Promise<number | null>((resolve, reject) => {
    // Only what kova needs: the script's test-only packages (Prometheus) are for CI and developers.
    const p = spawn('bash', [script], { stdio: 'inherit', env: { ...process.env, KOVA_RUNTIME_DEPS_ONLY: '1' } });
    p.on('error', reject);
    p.on('exit', resolve);
  });
  if (code !== 0) throw new Error(`${script} failed with exit code ${code}; fix the error above and run kova up again`);
  const still = missingCommands(needs);
  if (still.length) throw new Error(`still missing after install: ${still.map((m) => m.cmd).join(', ')}`);
}
