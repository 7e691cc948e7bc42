// The architecture rule "every quantity with a minimum" (issue #12): walks every CRD schema and
// fails on a number, integer or int-or-string quantity without a minimum, and on a spec number
// or any quantity without a maximum, so a new field cannot reopen the negative-resources hole.
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import YAML from 'yaml';
import { defaultCrdDir } from './registry.js';
import type { JSONSchema } from './types.js';

/** Problems with the numeric bounds of one schema tree; paths like `.spec.resources.memory`. */
function boundProblems(root: JSONSchema): string[] {
  const out: string[] = [];
  const visit = (s: JSONSchema, path: string) => {
    const quantity = s['x-kubernetes-int-or-string'] === true;
    const numeric = s.type === 'integer' || s.type === 'number';
    if (quantity || numeric) {
      const min = s.minimum;
      const max = s.maximum;
      if (typeof min !== 'number') out.push(`${path}: no minimum`);
      // Spec fields are user input; quantities are summed into host accounting wherever they are.
      const needsMax = quantity || path.startsWith('.spec.');
      if (needsMax && typeof max !== 'number') out.push(`${path}: no maximum`);
      if (typeof min === 'number' && typeof max === 'number' && min > max) out.push(`${path}: minimum ${min} > maximum ${max}`);
      if (quantity && typeof min === 'number' && min < 0) out.push(`${path}: a quantity with a negative minimum`);
    }
    for (const [k, v] of Object.entries((s.properties as Record<string, JSONSchema> | undefined) ?? {})) visit(v, `${path}.${k}`);
    if (s.items && typeof s.items === 'object') visit(s.items as JSONSchema, `${path}[]`);
    if (s.additionalProperties && typeof s.additionalProperties === 'object') visit(s.additionalProperties as JSONSchema, `${path}{}`);
  };
  visit(root, '');
  return out;
}

test('the bounds check itself finds unbounded fields', () => {
  const q = { anyOf: [{ type: 'integer' }, { type: 'string' }], 'x-kubernetes-int-or-string': true };
  const schema: JSONSchema = {
    type: 'object',
    properties: {
      spec: {
        type: 'object',
        properties: {
          memory: q,
          disks: { type: 'array', items: { type: 'object', properties: { size: { ...q, minimum: -1, maximum: 10 } } } },
          count: { type: 'integer', minimum: 1 },
          ratio: { type: 'number', minimum: 2, maximum: 1 },
          ok: { type: 'integer', minimum: 0, maximum: 3 },
        },
      },
      status: { type: 'object', properties: { seen: { type: 'integer' }, gen: { type: 'integer', minimum: 0 } } },
    },
  };
  assert.deepEqual(boundProblems(schema), [
    '.spec.memory: no minimum',
    '.spec.memory: no maximum',
    '.spec.disks[].size: a quantity with a negative minimum',
    '.spec.count: no maximum',
    '.spec.ratio: minimum 2 > maximum 1',
    '.status.seen: no minimum',
  ]);
});

test('every number and quantity in every CRD has a minimum (and spec fields and quantities a maximum)', async () => {
  const dir = defaultCrdDir();
  const files = (await readdir(dir)).filter((f) => f.endsWith('.yaml')).sort();
  assert.ok(files.length >= 12);
  const problems: string[] = [];
  for (const f of files) {
    const crd = YAML.parse(await readFile(join(dir, f), 'utf8')) as { spec: { versions: Array<{ schema: { openAPIV3Schema: JSONSchema } }> } };
    for (const v of crd.spec.versions) problems.push(...boundProblems(v.schema.openAPIV3Schema).map((p) => `${f}${p}`));
  }
  assert.deepEqual(problems, []);
});
