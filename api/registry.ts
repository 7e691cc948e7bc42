// The set of served resources: kova's CRD files (the single source of truth for kova kinds,
// loaded once at server start) plus the built-in core kinds.
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { builtinKinds } from './builtin-kinds.js';
import { crdErrors } from './crd-check.js';
import type { JSONSchema, KObject, PrinterColumn, ResourceInfo } from './types.js';
import { groupVersion } from './types.js';

/** `crds/` of the package this file belongs to (found by walking up to package.json). */
export function defaultCrdDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return join(dir, 'crds');
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

type Rec = Record<string, unknown>;

/** One ResourceInfo per served version of a CRD (which must already have passed crdErrors). */
export function resourcesFromCrd(crd: KObject): ResourceInfo[] {
  const spec = crd.spec as Rec;
  const names = spec.names as Rec;
  const kind = names.kind as string;
  return (spec.versions as Rec[])
    .filter((v) => v.served === true)
    .map((v) => ({
      group: spec.group as string,
      version: v.name as string,
      kind,
      listKind: (names.listKind as string | undefined) ?? `${kind}List`,
      plural: names.plural as string,
      singular: (names.singular as string | undefined) ?? kind.toLowerCase(),
      namespaced: spec.scope === 'Namespaced',
      shortNames: [...((names.shortNames as string[] | undefined) ?? [])],
      categories: [...((names.categories as string[] | undefined) ?? [])],
      statusSubresource: (v.subresources as Rec | undefined)?.status !== undefined,
      printerColumns: ((v.additionalPrinterColumns as Rec[] | undefined) ?? []).map((c) => {
        const col: PrinterColumn = { name: c.name as string, type: c.type as PrinterColumn['type'], jsonPath: c.jsonPath as string };
        if (c.format !== undefined) col.format = c.format as string;
        if (c.description !== undefined) col.description = c.description as string;
        if (c.priority !== undefined) col.priority = c.priority as number;
        return col;
      }),
      schema: structuredClone((v.schema as Rec).openAPIV3Schema as JSONSchema),
      selectableFields: ((v.selectableFields as Rec[] | undefined) ?? []).map((f) => (f.jsonPath as string).replace(/^\./, '')),
      custom: true,
    }));
}

/** Parses the CRDs of one YAML file (documents that are not CRDs are rejected). */
export function parseCrdFile(text: string, file = '<crd>'): KObject[] {
  const out: KObject[] = [];
  for (const doc of YAML.parseAllDocuments(text)) {
    if (doc.errors.length) throw new Error(`${file}: ${doc.errors[0].message}`);
    const obj = doc.toJS() as unknown;
    if (obj === null || obj === undefined) continue;
    const errs = crdErrors(obj);
    if (errs.length) throw new Error(`${file}: invalid CustomResourceDefinition:\n  ${errs.join('\n  ')}`);
    out.push(obj as KObject);
  }
  return out;
}

export class Registry {
  private readonly resources: ResourceInfo[];
  private readonly crdObjects: KObject[];
  /** Resources by plural (looked up on every request, so without building a key string). */
  private readonly byPlural = new Map<string, ResourceInfo[]>();
  private readonly byGk = new Map<string, ResourceInfo>();

  /** Built-ins plus the given CRDs. Throws on two resources with the same group/version/plural or group/version/kind. */
  constructor(crds: KObject[] = [], builtins: ResourceInfo[] = builtinKinds()) {
    this.crdObjects = crds.map((c) => structuredClone(c));
    this.resources = [...builtins, ...crds.flatMap(resourcesFromCrd)];
    const byGvr = new Set<string>();
    const byGvk = new Set<string>();
    for (const r of this.resources) {
      const gvr = `${r.group}/${r.version}/${r.plural}`;
      const gvk = `${r.group}/${r.version}/${r.kind}`;
      if (byGvr.has(gvr)) throw new Error(`resource ${r.plural} of ${groupVersion(r)} is defined twice`);
      if (byGvk.has(gvk)) throw new Error(`kind ${r.kind} of ${groupVersion(r)} is defined twice`);
      byGvr.add(gvr);
      const samePlural = this.byPlural.get(r.plural);
      if (samePlural) samePlural.push(r);
      else this.byPlural.set(r.plural, [r]);
      byGvk.add(gvk);
      // The first served version of a kind wins (CRD versions are listed by preference).
      if (!this.byGk.has(`${r.group}/${r.kind}`)) this.byGk.set(`${r.group}/${r.kind}`, r);
    }
  }

  /** Loads every `*.yaml`/`*.yml` in `crdDir` (sorted by file name) as CRDs, plus the built-ins. */
  static async load(crdDir: string = defaultCrdDir()): Promise<Registry> {
    const files = (await readdir(crdDir)).filter((f) => /\.ya?ml$/.test(f)).sort();
    const crds: KObject[] = [];
    for (const f of files) crds.push(...parseCrdFile(await readFile(join(crdDir, f), 'utf8'), join(crdDir, f)));
    return new Registry(crds);
  }

  /** Every served resource: built-ins first, then CRD kinds in file order. */
  all(): ResourceInfo[] {
    return [...this.resources];
  }

  /** Served group-versions, `v1` first, then named groups alphabetically. */
  groupVersions(): string[] {
    const gvs = [...new Set(this.resources.map(groupVersion))];
    return gvs.sort((a, b) => (a === 'v1' ? -1 : b === 'v1' ? 1 : a.localeCompare(b)));
  }

  /** Resources of one group-version (`v1`, `kova.dev/v1alpha1`). */
  byGroupVersion(gv: string): ResourceInfo[] {
    return this.resources.filter((r) => groupVersion(r) === gv);
  }

  /** The resource behind `/api[s]/<group>/<version>/.../<plural>`; group is '' for core. */
  lookup(group: string, version: string, plural: string): ResourceInfo | undefined {
    const candidates = this.byPlural.get(plural);
    if (!candidates) return undefined;
    for (const r of candidates) if (r.group === group && r.version === version) return r;
    return undefined;
  }

  /** The preferred served version of a kind. */
  byKind(group: string, kind: string): ResourceInfo | undefined {
    return this.byGk.get(`${group}/${kind}`);
  }

  /** The CRD objects as loaded (copies). */
  crds(): KObject[] {
    return this.crdObjects.map((c) => structuredClone(c));
  }
}
