// Request plumbing: body reading (JSON or apply YAML), URL → resource routing, query options.
import type { IncomingMessage } from 'node:http';
import YAML from 'yaml';
import type { Registry } from '../api/registry.js';
import type { ResourceInfo } from '../api/types.js';
import { decodeK8sProtobuf, isK8sProtobufContentType, ProtobufDecodeError, ProtobufUnsupportedError } from './protobuf.js';
import { badRequest, ApiError } from './status.js';

/** kube-apiserver's default request body limit. */
export const MAX_BODY_BYTES = 3 * 1024 * 1024;

export async function readBody(req: IncomingMessage): Promise<string> {
  return (await readBodyBytes(req)).toString('utf8');
}

/** Reads the whole body (events, not an async iterator: this runs on every write request). */
export function readBodyBytes(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (c: Buffer) => {
      if (failed) return;
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        failed = true;
        // The rest is drained and dropped, so the 413 still reaches the client.
        reject(new ApiError(413, 'RequestEntityTooLarge', `the request body is larger than ${MAX_BODY_BYTES} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => failed || resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    req.on('error', (e) => {
      if (failed) return;
      failed = true;
      reject(e);
    });
  });
}

/**
 * Decodes a create/update body by its Content-Type: JSON, YAML, or Kubernetes protobuf
 * (which kubectl's typed generators such as `kubectl create namespace` send).
 */
export function parseObjectBody(contentType: string | undefined, body: Buffer): unknown {
  const type = (contentType ?? 'application/json').split(';')[0].trim().toLowerCase();
  if (isK8sProtobufContentType(type)) {
    try {
      return decodeK8sProtobuf(body).object;
    } catch (e) {
      if (e instanceof ProtobufUnsupportedError) throw new ApiError(415, 'UnsupportedMediaType', e.message);
      if (e instanceof ProtobufDecodeError) throw badRequest(`the request body is not valid protobuf: ${e.message}`);
      throw e;
    }
  }
  if (type === 'application/yaml') return parseYaml(body.toString('utf8'));
  if (type === 'application/json' || type === '') return parseJson(body.toString('utf8'));
  throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf`);
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw badRequest(`the request body is not valid JSON: ${(e as Error).message}`);
  }
}

export function parseYaml(text: string): unknown {
  try {
    return YAML.parse(text);
  } catch (e) {
    throw badRequest(`the request body is not valid YAML: ${(e as Error).message}`);
  }
}

export interface ResourceRoute {
  info: ResourceInfo;
  namespace?: string;
  name?: string;
  subresource?: string;
}

/**
 * Resolves `/api/v1/...` or `/apis/<g>/<v>/...` to a resource. Returns undefined when the
 * group-version itself is unknown; throws 404 when the path inside it names nothing.
 */
export function routeResource(registry: Registry, segs: string[]): ResourceRoute | 'groupVersion' | undefined {
  let group: string;
  let version: string;
  let rest: string[];
  if (segs[0] === 'api' && segs[1] === 'v1') {
    group = '';
    version = 'v1';
    rest = segs.slice(2);
  } else if (segs[0] === 'apis' && segs.length >= 3) {
    group = segs[1];
    version = segs[2];
    rest = segs.slice(3);
  } else {
    return undefined;
  }
  if (!rest.length) return 'groupVersion';
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    const inner = registry.lookup(group, version, rest[2]);
    if (inner?.namespaced) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
  }
  if (rest.length > 3) return undefined;
  const info = registry.lookup(group, version, rest[0]);
  if (!info) return undefined;
  return { info, namespace, name: rest[1], subresource: rest[2] };
}

/** Query options common to writes, validated like kube-apiserver's. */
export function writeQuery(q: URLSearchParams) {
  const dryRunValues = q.getAll('dryRun');
  for (const v of dryRunValues) if (v !== 'All') throw badRequest(`Invalid dryRun value: ${JSON.stringify(v)}: supported values: "All"`);
  const fv = q.get('fieldValidation') ?? undefined;
  if (fv && !['Strict', 'Warn', 'Ignore'].includes(fv)) {
    throw badRequest(`invalid fieldValidation directive: ${fv}: supported values: "Ignore", "Warn", "Strict"`);
  }
  const force = q.get('force');
  return {
    dryRun: dryRunValues.length > 0,
    fieldManager: q.get('fieldManager') ?? undefined,
    fieldValidation: fv as 'Strict' | 'Warn' | 'Ignore' | undefined,
    force: force === 'true' || force === '1',
  };
}

export function intParam(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name);
  if (v === null || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw badRequest(`invalid ${name}: ${JSON.stringify(v)} must be a non-negative integer`);
  return n;
}

export function boolParam(q: URLSearchParams, name: string): boolean {
  const v = q.get(name);
  return v === 'true' || v === '1';
}
