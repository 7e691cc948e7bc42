// Builds kova's test guest, a CirrOS-like image made only from Debian packages (fetched with
// `apt-get download`, never from the internet at large): the Debian cloud kernel, an initramfs
// of busybox-static plus the virtio modules and the scripts in files/ (a small cloud-init that
// reads the NoCloud seed), on a FAT disk made bootable with syslinux. The image is an ordinary
// bootable disk, so kova can treat it like any cloud image; kernel and initramfs are also left
// next to it for direct kernel boot. Nothing is mounted: mtools writes the FAT volume and the
// syslinux installer works on the image file, so the build needs no loop devices.
//
// Idempotent: the .deb files are kept in <outDir>/debs, and an image whose inputs did not
// change is reused. Needs apt-get and dpkg-deb (present on Debian) and qemu-img; run as root
// after `apt-get update`.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { buildCpio, type CpioEntry } from './cpio.js';

const run = promisify(execFile);

/** Bump when the build recipe changes in a way the inputs below do not capture. */
const RECIPE_VERSION = '1';

/** Source directory of the guest's scripts (this module runs from dist/e2e/guest/). */
export const GUEST_FILES_DIR = fileURLToPath(new URL('../../guest/files/', import.meta.url));

/** The packages the guest is made of. The kernel is resolved through its meta-package. */
const KERNEL_META = 'linux-image-cloud-amd64';
const PACKAGES = ['busybox-static', 'syslinux', 'syslinux-common', 'mtools'];

/**
 * Loaded in this order (dependencies are added first). The seed CD-ROM sits on virtio-scsi:
 * the Debian cloud kernel has no AHCI driver. button+evdev let acpid see the power button.
 */
const MODULES = ['virtio_pci', 'virtio_blk', 'virtio_net', 'virtio_console', 'virtio_scsi', 'sr_mod', 'isofs', 'virtio_rng', 'button', 'evdev'];

export const GUEST_CMDLINE = 'console=ttyS0,115200n8 quiet';

export interface TestGuest {
  /** Bootable disk image (syslinux on FAT; root filesystem is the initramfs). */
  imagePath: string;
  format: 'qcow2';
  sha256: string;
  sizeBytes: number;
  /** The same kernel and initramfs as on the disk, for libvirt direct kernel boot. */
  kernelPath: string;
  initrdPath: string;
  cmdline: string;
  kernelVersion: string;
}

export interface BuildOptions {
  outDir: string;
  log?: (msg: string) => void;
}

export async function buildTestGuest(opts: BuildOptions): Promise<TestGuest> {
  const log = opts.log ?? (() => {});
  await mkdir(opts.outDir, { recursive: true });
  const debs = await downloadDebs(join(opts.outDir, 'debs'), log);
  const files = await readGuestFiles();
  const key = createHash('sha256')
    .update(JSON.stringify({ RECIPE_VERSION, debs: debs.map((d) => d.split('/').pop()), MODULES, GUEST_CMDLINE }))
    .update(JSON.stringify([...files.entries()].map(([n, b]) => [n, b.toString('base64')])))
    .digest('hex')
    .slice(0, 16);
  const base = join(opts.outDir, `kova-test-guest-${key}`);
  const metaPath = `${base}.json`;
  if (existsSync(metaPath)) {
    const meta = JSON.parse(await readFile(metaPath, 'utf8')) as TestGuest;
    if (existsSync(meta.imagePath) && (await sha256File(meta.imagePath)) === meta.sha256) {
      log(`test guest cached at ${meta.imagePath}`);
      return meta;
    }
  }

  const work = await mkdtemp(join(opts.outDir, 'build-'));
  try {
    const root = join(work, 'root');
    for (const deb of debs) await run('dpkg-deb', ['-x', deb, root]);
    const kernelFile = (await readdir(join(root, 'boot'))).find((f) => f.startsWith('vmlinuz-'));
    if (!kernelFile) throw new Error('no kernel in the downloaded packages');
    const kernelVersion = kernelFile.slice('vmlinuz-'.length);

    const initrd = gzipSync(buildCpio(await initramfsEntries(root, kernelVersion, files)), { level: 9 });
    await writeFile(join(work, 'initrd.img'), initrd);
    log(`initramfs: ${initrd.length} bytes (kernel ${kernelVersion})`);

    const raw = join(work, 'disk.raw');
    await makeBootableDisk(root, raw, join(root, 'boot', kernelFile), join(work, 'initrd.img'));
    const qcow2 = join(work, 'disk.qcow2');
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, qcow2]);

    const result: TestGuest = {
      imagePath: `${base}.qcow2`,
      format: 'qcow2',
      sha256: await sha256File(qcow2),
      sizeBytes: (await stat(qcow2)).size,
      kernelPath: `${base}.vmlinuz`,
      initrdPath: `${base}.initrd`,
      cmdline: GUEST_CMDLINE,
      kernelVersion,
    };
    await rename(join(root, 'boot', kernelFile), result.kernelPath);
    await rename(join(work, 'initrd.img'), result.initrdPath);
    await rename(qcow2, result.imagePath);
    await writeFile(metaPath, JSON.stringify(result, null, 2) + '\n');
    log(`test guest built at ${result.imagePath}`);
    return result;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Downloads the packages once into cacheDir; returns the .deb paths. */
async function downloadDebs(cacheDir: string, log: (msg: string) => void): Promise<string[]> {
  const manifest = join(cacheDir, 'manifest.json');
  if (existsSync(manifest)) {
    const debs = (JSON.parse(await readFile(manifest, 'utf8')) as string[]).map((f) => join(cacheDir, f));
    if (debs.every((d) => existsSync(d))) return debs;
  }
  await mkdir(cacheDir, { recursive: true });
  const tmp = await mkdtemp(join(cacheDir, 'dl-'));
  try {
    log(`apt-get download ${KERNEL_META} ${PACKAGES.join(' ')}`);
    await aptDownload(tmp, [KERNEL_META]);
    const meta = (await readdir(tmp)).find((f) => f.startsWith(`${KERNEL_META}_`));
    if (!meta) throw new Error(`apt-get download ${KERNEL_META} produced no file`);
    const depends = (await run('dpkg-deb', ['-f', join(tmp, meta), 'Depends'])).stdout;
    const kernelPkg = /linux-image-[0-9][^\s,(]*-cloud-amd64/.exec(depends)?.[0];
    if (!kernelPkg) throw new Error(`cannot find the kernel package in "${depends.trim()}"`);
    await rm(join(tmp, meta));
    await aptDownload(tmp, [kernelPkg, ...PACKAGES]);
    const files = (await readdir(tmp)).filter((f) => f.endsWith('.deb')).sort();
    for (const f of files) await rename(join(tmp, f), join(cacheDir, f));
    await writeFile(manifest, JSON.stringify(files, null, 2) + '\n');
    return files.map((f) => join(cacheDir, f));
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

async function aptDownload(cwd: string, pkgs: string[]): Promise<void> {
  try {
    // As root, apt would try to drop privileges to _apt, which cannot write to cwd.
    await run('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', ...pkgs], { cwd, maxBuffer: 16 << 20 });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`apt-get download ${pkgs.join(' ')} failed (run apt-get update first?): ${stderr.trim()}`, { cause: err });
  }
}

async function readGuestFiles(): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const name of (await readdir(GUEST_FILES_DIR)).sort()) files.set(name, await readFile(join(GUEST_FILES_DIR, name)));
  return files;
}

/** Module name → .ko path; module names treat '-' and '_' alike. */
async function indexModules(dir: string, index = new Map<string, string>()): Promise<Map<string, string>> {
  for (const ent of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, ent.name);
    if (ent.isDirectory()) await indexModules(p, index);
    else if (ent.name.endsWith('.ko')) index.set(ent.name.slice(0, -3).replace(/-/g, '_'), p);
  }
  return index;
}

/** The `depends=` entry of a module's .modinfo section. */
function moduleDepends(ko: Buffer): string[] {
  const at = ko.indexOf('\0depends=');
  if (at < 0) return [];
  const start = at + '\0depends='.length;
  const value = ko.subarray(start, ko.indexOf(0, start)).toString();
  return value.split(',').filter(Boolean).map((m) => m.replace(/-/g, '_'));
}

/** MODULES with their dependencies, each after what it needs. */
async function resolveModules(index: Map<string, string>): Promise<{ name: string; data: Buffer }[]> {
  const ordered: { name: string; data: Buffer }[] = [];
  const seen = new Set<string>();
  const visit = async (name: string): Promise<void> => {
    if (seen.has(name)) return;
    seen.add(name);
    const path = index.get(name);
    if (!path) throw new Error(`kernel module ${name} not found (built in, or renamed?)`);
    const data = await readFile(path);
    for (const dep of moduleDepends(data)) await visit(dep);
    ordered.push({ name, data });
  };
  for (const m of MODULES) await visit(m);
  return ordered;
}

async function initramfsEntries(root: string, kernelVersion: string, files: Map<string, Buffer>): Promise<CpioEntry[]> {
  const file = (name: string): Buffer => {
    const b = files.get(name);
    if (!b) throw new Error(`guest file ${name} missing from ${GUEST_FILES_DIR}`);
    return b;
  };
  const modules = await resolveModules(await indexModules(join(root, 'lib', 'modules', kernelVersion)));
  const dirs = ['bin', 'sbin', 'usr', 'usr/bin', 'usr/sbin', 'dev', 'proc', 'sys', 'run', 'tmp', 'mnt', 'var', 'etc', 'etc/kova', 'etc/acpi', 'etc/acpi/PWRF', 'lib', 'lib/modules'];
  return [
    ...dirs.map((path): CpioEntry => ({ type: 'dir', path })),
    { type: 'dir', path: 'root', mode: 0o700 },
    { type: 'dir', path: 'tmp', mode: 0o1777 },
    // The kernel opens /dev/console for init before devtmpfs is mounted.
    { type: 'chardev', path: 'dev/console', major: 5, minor: 1 },
    { type: 'file', path: 'bin/busybox', data: await readFile(join(root, 'bin', 'busybox')), mode: 0o755 },
    { type: 'symlink', path: 'bin/sh', target: 'busybox' },
    { type: 'file', path: 'init', data: file('init'), mode: 0o755 },
    { type: 'file', path: 'etc/inittab', data: file('inittab') },
    { type: 'file', path: 'etc/passwd', data: Buffer.from('root:x:0:0:root:/root:/bin/sh\n') },
    { type: 'file', path: 'etc/group', data: Buffer.from('root:x:0:\n') },
    { type: 'file', path: 'etc/kova/boot.sh', data: file('boot.sh'), mode: 0o755 },
    { type: 'file', path: 'etc/kova/shutdown.sh', data: file('shutdown.sh'), mode: 0o755 },
    { type: 'file', path: 'etc/kova/udhcpc.sh', data: file('udhcpc.sh'), mode: 0o755 },
    { type: 'file', path: 'etc/kova/yaml.awk', data: file('yaml.awk') },
    { type: 'file', path: 'etc/acpi/PWRF/00000080', data: file('acpi-power.sh'), mode: 0o755 },
    { type: 'file', path: 'etc/kova/modules', data: Buffer.from(modules.map((m) => m.name).join('\n') + '\n') },
    ...modules.map((m): CpioEntry => ({ type: 'file', path: `lib/modules/${m.name}.ko`, data: m.data })),
  ];
}

/** A 64 MiB FAT disk (no partition table: SeaBIOS boots syslinux's volume boot record). */
async function makeBootableDisk(root: string, raw: string, kernel: string, initrd: string): Promise<void> {
  const bin = join(root, 'usr', 'bin');
  // The extracted mtools and syslinux need only libc; syslinux runs mcopy/mattrib from PATH.
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`, MTOOLS_SKIP_CHECK: '1' };
  const cfg = join(root, 'syslinux.cfg');
  await writeFile(cfg, ['DEFAULT kova', 'PROMPT 0', 'TIMEOUT 0', 'LABEL kova', '  LINUX /vmlinuz', '  INITRD /initrd.img', `  APPEND ${GUEST_CMDLINE}`, ''].join('\n'));
  await run(join(bin, 'mformat'), ['-i', raw, '-C', '-T', '131072', '-h', '64', '-s', '32', '-v', 'KOVAGUEST', '::'], { env });
  for (const [src, dst] of [[kernel, '::/vmlinuz'], [initrd, '::/initrd.img'], [cfg, '::/syslinux.cfg']]) {
    await run(join(bin, 'mcopy'), ['-i', raw, src, dst], { env });
  }
  await run(join(bin, 'syslinux'), ['--install', raw], { env });
}

async function sha256File(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

// `node dist/e2e/guest/build.js [outDir]` builds (or finds) the guest and prints its record.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const outDir = process.argv[2] ?? '/var/tmp/kova-test-guest';
  buildTestGuest({ outDir, log: (m) => process.stderr.write(`build-test-guest: ${m}\n`) }).then(
    (g) => process.stdout.write(JSON.stringify(g, null, 2) + '\n'),
    (err: unknown) => {
      process.stderr.write(`build-test-guest: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}
