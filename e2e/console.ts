// The `kova` CLI and a guest's serial console, for the e2e tests that boot real VMs.
import { execFile } from 'node:child_process';
import { eventually, KOVA_BIN } from './harness.js';
import type { Kova } from './harness.js';

/** `kova <args>` against this cloud; resolves with its exit code and output. */
export function kovaCli(kova: Pick<Kova, 'kubeconfig'>, args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [KOVA_BIN, ...args], { env: { ...process.env, KUBECONFIG: kova.kubeconfig, ...env }, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** The instance's serial console log so far (`kova console --log`). */
export async function consoleLog(kova: Pick<Kova, 'kubeconfig'>, name: string, ns: string): Promise<string> {
  const r = await kovaCli(kova, ['console', name, '-n', ns, '--log']);
  if (r.code !== 0) throw new Error(`kova console --log failed: ${r.stderr}`);
  return r.stdout;
}

/** Waits until the console log satisfies `ok` (returning something), polling every 200 ms. */
export function waitConsole<T>(kova: Pick<Kova, 'kubeconfig'>, name: string, ns: string, ok: (log: string) => T | undefined | false, timeoutMs: number, what: string): Promise<T> {
  return eventually(async () => ok(await consoleLog(kova, name, ns)), timeoutMs, `${what} on the console of ${ns}/${name}`);
}
