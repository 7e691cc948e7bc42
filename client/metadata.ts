// Metadata-only lists and watches, like client-go's metadata client and metadata informers:
// the API server answers with PartialObjectMetadata (ObjectMeta without spec or status), so a
// controller that must follow every kind (the garbage collector) does not pay for whole
// objects. A MetadataWatcher keeps no cache: it hands each (re)list and each event to its
// handler, which keeps what it needs.
import type https from 'node:https';
import { Pool } from 'undici';
import type { ObjectMeta } from '../api/types.js';
import { StatusError } from './client.js';
import type { Kind, KovaClient } from './client.js';
import { errorMessage } from './controller.js';
import { LineSplitter, isBlank, startsWith, stringAfter } from './ndjson-lines.js';

export interface PartialObjectMetadata {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
}

export const METADATA_ACCEPT = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1';
export const METADATA_LIST_ACCEPT = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1';
const RESOURCE_VERSION = Buffer.from('"resourceVersion":"');
const MODIFIED_LINE = Buffer.from('{"type":"MODIFIED",');
const ADDED_LINE = Buffer.from('{"type":"ADDED",');

export type MetadataEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

const TLS_OPTIONS = ['ca', 'cert', 'key', 'pfx', 'passphrase', 'servername'] as const;

/** Lists and watches of one API server in metadata form, on connections of their own (watches hold theirs). */
export class MetadataClient {
  private pool?: Pool;
  private headers?: Promise<Record<string, string>>;
  readonly stats = { lists: 0, watches: 0, events: 0, skipped: 0 };

  constructor(readonly client: KovaClient) {}

  close(): void {
    void this.pool?.destroy().catch(() => undefined);
    this.pool = undefined;
  }

  private async connect(): Promise<{ pool: Pool; headers: Record<string, string> }> {
    this.headers ??= (async () => {
      const opts: https.RequestOptions = {};
      await this.client.kc.applyToHTTPSOptions(opts);
      const tls: Record<string, unknown> = {};
      for (const k of TLS_OPTIONS) if (opts[k] !== undefined) tls[k] = opts[k];
      (opts.agent as { destroy?: () => void } | undefined)?.destroy?.();
      this.pool ??= new Pool(this.client.server.origin, {
        connect: { ...tls, rejectUnauthorized: !this.client.kc.getCurrentCluster()?.skipTLSVerify } as Pool.Options['connect'],
        headersTimeout: 30_000,
      });
      const headers: Record<string, string> = { 'User-Agent': 'kova-controllers/metadata' };
      for (const [k, v] of Object.entries(opts.headers ?? {})) if (v !== undefined) headers[k] = String(v);
      if (opts.auth) headers.Authorization = 'Basic ' + Buffer.from(opts.auth).toString('base64');
      return headers;
    })();
    const headers = await this.headers;
    return { pool: this.pool!, headers };
  }

  private path(kind: Kind, namespace: string | undefined, query: Record<string, string | undefined>): string {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) q.set(k, v);
    const s = q.toString();
    return this.client.server.pathname.replace(/\/$/, '') + this.client.collectionPath(kind, namespace) + (s ? `?${s}` : '');
  }

  /** Every page of a metadata list; `namespace` undefined lists across namespaces. */
  async list(kind: Kind, namespace?: string, opts: { limit?: number; signal?: AbortSignal } = {}): Promise<{ items: PartialObjectMetadata[]; resourceVersion: string }> {
    const { pool, headers } = await this.connect();
    const items: PartialObjectMetadata[] = [];
    let cont: string | undefined;
    let resourceVersion = '';
    do {
      this.stats.lists++;
      const res = await pool.request({
        method: 'GET', path: this.path(kind, namespace, { limit: String(opts.limit ?? 500), continue: cont }),
        headers: { ...headers, Accept: METADATA_LIST_ACCEPT }, signal: opts.signal, bodyTimeout: 60_000,
      });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw apiError(res.statusCode, text);
      const page = JSON.parse(text) as { items?: PartialObjectMetadata[]; metadata?: { continue?: string; resourceVersion?: string } };
      items.push(...(page.items ?? []));
      cont = page.metadata?.continue || undefined;
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
    } while (cont);
    return { items, resourceVersion };
  }

  /**
   * One metadata watch from `resourceVersion` (with bookmarks), until the server ends it or
   * `signal` aborts; resolves with the last resourceVersion seen. A 410 (as an answer or an
   * ERROR event) rejects with StatusError 410: the caller must list again.
   */
  async watch(kind: Kind, resourceVersion: string, onEvent: (type: MetadataEventType, obj: PartialObjectMetadata) => void, signal: AbortSignal, timeoutSeconds = 300 + Math.floor(Math.random() * 300), skipLine?: (type: 'ADDED' | 'MODIFIED', line: Buffer) => boolean): Promise<string> {
    const { pool, headers } = await this.connect();
    this.stats.watches++;
    const res = await pool.request({
      method: 'GET',
      path: this.path(kind, undefined, { watch: 'true', resourceVersion, allowWatchBookmarks: 'true', timeoutSeconds: String(timeoutSeconds) }),
      headers: { ...headers, Accept: METADATA_ACCEPT }, signal, bodyTimeout: 0,
    });
    if (res.statusCode !== 200) throw apiError(res.statusCode, await res.body.text());
    let rv = resourceVersion;
    const lines = new LineSplitter();
    for await (const chunk of res.body) {
      for (const line of lines.push(chunk as Buffer)) {
        if (isBlank(line)) continue;
        const raw = !skipLine ? undefined : startsWith(line, MODIFIED_LINE) ? 'MODIFIED' : startsWith(line, ADDED_LINE) ? 'ADDED' : undefined;
        if (raw && skipLine!(raw, line)) {
          // Never decoded: only its resourceVersion (the first in the line: the object's) is read.
          rv = stringAfter(line, RESOURCE_VERSION) ?? rv;
          this.stats.skipped++;
          continue;
        }
        const e = JSON.parse(line.toString('utf8')) as { type: string; object: PartialObjectMetadata & { code?: number; message?: string; reason?: string } };
        if (e.type === 'ERROR') {
          res.body.destroy();
          throw new StatusError(e.object.code ?? 500, e.object.reason ?? 'InternalError', e.object.message ?? 'watch error', e.object as unknown as Record<string, unknown>);
        }
        rv = e.object.metadata?.resourceVersion ?? rv;
        if (e.type === 'BOOKMARK') continue;
        this.stats.events++;
        onEvent(e.type as MetadataEventType, e.object);
      }
    }
    return rv;
  }
}

function apiError(code: number, body: string): StatusError {
  let st: { reason?: string; message?: string } = {};
  try {
    st = JSON.parse(body);
  } catch {
    // not a Status
  }
  return new StatusError(code, st.reason ?? String(code), st.message ?? (body.slice(0, 500) || `HTTP ${code}`));
}

export interface MetadataHandler {
  /** The whole current state of the kind, after the first list and after every relist. */
  replace(items: PartialObjectMetadata[]): void;
  event(type: MetadataEventType, obj: PartialObjectMetadata): void;
  /**
   * Offered an ADDED or MODIFIED event as its JSON line, in bytes, before it is decoded: true
   * when the handler took what it needs from the bytes (or needs nothing), so the line is
   * neither decoded nor parsed. Most events of a busy kind (creates, status updates) then
   * never become JS strings.
   */
  skipLine?(type: 'ADDED' | 'MODIFIED', line: Buffer): boolean;
}

/**
 * Follows one kind in metadata form: list, then watch from the list's resourceVersion; a watch
 * the server ends is resumed from the last resourceVersion seen, a 410 relists, any other
 * failure is retried with back-off (200 ms doubling to 30 s).
 */
export class MetadataWatcher {
  private synced = false;
  private readonly syncWaiters: Array<() => void> = [];
  readonly done: Promise<void>;
  readonly stats = { lists: 0, errors: 0 };

  constructor(
    private readonly mc: MetadataClient,
    readonly kind: Kind,
    private readonly handler: MetadataHandler,
    signal: AbortSignal,
    private readonly log: (m: string) => void,
  ) {
    this.done = this.run(signal);
  }

  hasSynced(): boolean {
    return this.synced;
  }

  waitForSync(): Promise<void> {
    return this.synced ? Promise.resolve() : new Promise((r) => this.syncWaiters.push(r));
  }

  private async run(signal: AbortSignal): Promise<void> {
    let rv: string | undefined;
    let backoff = 200;
    while (!signal.aborted) {
      try {
        if (rv === undefined) {
          this.stats.lists++;
          const list = await this.mc.list(this.kind, undefined, { signal });
          this.handler.replace(list.items);
          rv = list.resourceVersion;
          if (!this.synced) {
            this.synced = true;
            for (const w of this.syncWaiters.splice(0)) w();
          }
        }
        rv = await this.mc.watch(this.kind, rv, (type, obj) => {
          backoff = 200;
          this.handler.event(type, obj);
        }, signal, undefined, this.handler.skipLine?.bind(this.handler));
      } catch (e) {
        if (signal.aborted) break;
        if (e instanceof StatusError && e.code === 410) {
          rv = undefined; // too old: list again
          continue;
        }
        this.stats.errors++;
        this.log(`metadata watch of ${this.kind.plural}: ${errorMessage(e)}; retrying in ${backoff} ms`);
        await sleep(backoff, signal);
        backoff = Math.min(30_000, backoff * 2);
      }
    }
    for (const w of this.syncWaiters.splice(0)) w();
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
