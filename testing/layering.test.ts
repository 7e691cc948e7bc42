// The dependency rules of the source tree, checked on the TypeScript sources: api at the bottom;
// store and apiserver on it; the client runtime and the image store on api alone; controllers and
// node agents on those, never on each other; the CLI on top. Product code never imports tests, test
// helpers (testing/), end-to-end suites or benchmarks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** What each top-level product folder may import besides itself. */
const ALLOWED: Record<string, string[]> = {
  /** Host-process helpers (children that die with kova) that any layer may use. */
  lib: [],
  api: ['lib'],
  store: ['lib', 'api'],
  apiserver: ['lib', 'api', 'store'],
  client: ['lib', 'api'],
  /** The content-addressed image store: imports (image controller) and reads (agents' caches). */
  'image-store': ['lib', 'api'],
  controllers: ['lib', 'api', 'client', 'image-store'],
  'node-agent': ['lib', 'api', 'client', 'image-store'],
  guest: ['lib'],
  cli: ['lib', 'api', 'store', 'apiserver', 'client', 'controllers', 'node-agent', 'image-store', 'guest'],
};
/** Folders of tests, test helpers and benchmarks: they may import any product code. */
const TEST_ONLY = ['testing', 'e2e', 'bench'];

function sources(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) sources(p, out);
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** Relative import specifiers of a module: static imports, re-exports and dynamic import(). */
export function relativeImports(text: string): string[] {
  const out: string[] = [];
  const re = /(?:\bfrom\s+|\bimport\s*\(\s*|^\s*import\s+)'(\.{1,2}\/[^']+)'/gm;
  for (let m = re.exec(text); m; m = re.exec(text)) out.push(m[1]!);
  return out;
}

function topFolder(file: string): string {
  return relative(ROOT, file).split('/')[0]!;
}

export function violations(): string[] {
  const found: string[] = [];
  for (const top of [...Object.keys(ALLOWED), ...TEST_ONLY]) {
    let files: string[];
    try {
      files = sources(join(ROOT, top));
    } catch {
      continue;
    }
    for (const file of files) {
      const isTest = file.endsWith('.test.ts') || TEST_ONLY.includes(top);
      for (const spec of relativeImports(readFileSync(file, 'utf8'))) {
        const target = resolve(dirname(file), spec);
        const to = topFolder(target);
        const where = `${relative(ROOT, file)} imports ${spec}`;
        if (target.endsWith('.test.js') || target.endsWith('.test.ts')) {
          found.push(`${where}: a test module`);
          continue;
        }
        if (isTest) continue;
        if (TEST_ONLY.includes(to)) found.push(`${where}: product code must not import ${to}/`);
        else if (to !== top && !(ALLOWED[top] ?? []).includes(to)) found.push(`${where}: ${top}/ may import only ${[top, ...ALLOWED[top]!].join(', ')}`);
      }
    }
  }
  return found;
}

test('imports follow the layering: api <- store <- apiserver; api <- client <- controllers, node-agent <- cli', () => {
  assert.deepEqual(violations(), []);
});

test('the check sees every form of relative import', () => {
  const text = [
    "import { a } from '../node-agent/x.js';",
    "import type { B } from './b.js';",
    "export { c } from '../../e2e/c.js';",
    "const d = await import('../controllers/d.js');",
    "import './side-effect.js';",
    "const s = 'from \"../not-an-import.js\"';",
  ].join('\n');
  assert.deepEqual(relativeImports(text), ['../node-agent/x.js', './b.js', '../../e2e/c.js', '../controllers/d.js', './side-effect.js']);
});
