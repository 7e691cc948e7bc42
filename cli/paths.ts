// Where the installed package lives (dist/cli/*.js → package root), for hack/ and crds/.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the kova package root (no package.json above this file)');
    dir = up;
  }
  return dir;
}

/** The `kova` CLI entry point (dist/cli/kova.js), for spawning kova subcommands. */
export const KOVA_MAIN = fileURLToPath(new URL('./kova.js', import.meta.url));
