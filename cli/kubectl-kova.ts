#!/usr/bin/env node
// `kubectl kova ...`: kubectl finds this plugin as `kubectl-kova` on PATH (package.json "bin")
// and runs it with the remaining arguments and kubectl's environment (KUBECONFIG), so
// `kubectl kova console NAME` is `kova console NAME`. It runs the kova CLI as a child with the
// terminal inherited, so interactive console sessions work the same.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const kova = fileURLToPath(new URL('./kova.js', import.meta.url));
const child = spawn(process.execPath, [kova, ...process.argv.slice(2)], { stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 + 1 : 0)));
child.on('error', (e) => {
  process.stderr.write(`kubectl-kova: ${e.message}\n`);
  process.exit(1);
});
