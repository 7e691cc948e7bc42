// The API fuzzer's engine: starts a real etcd and API server (`kova up` without controllers or
// agents, N API worker processes), sends generated requests with modest concurrency, and files a
// finding for any 5xx, non-Status error body, missing 401, broken watch stream, connection reset,
// hang (no answer within 5 s), process exit, API process RSS over its bounds (see FuzzOptions),
// or a 2xx for a path whose dot segments would resolve to another resource.
import { readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import tls from 'node:tls';
import { parse as parseYaml } from 'yaml';
import { Registry } from '../../api/registry.js';
import type { ResourceInfo } from '../../api/types.js';
import { startKova } from '../harness.js';
import type { Kova } from '../harness.js';
import { Rng } from './gen.js';
import { collectionPath, genRequest } from './requests.js';
import type { FuzzRequest, GenState } from './requests.js';

type Rec = Record<string, unknown>;

export const FUZZ_NAMESPACES = ['default', 'fz-a', 'fz-b'];

export interface Target {
  kova: Kova;
  host: string;
  port: number;
  ca: Buffer;
  token: string;
  registry: ResourceInfo[];
  apiWorkers: number;
  stop(): Promise<void>;
}

/** `kova up` with only etcd and the API server; `apiWorkers` > 1 serves from forked workers. */
export async function startTarget(apiWorkers = 2): Promise<Target> {
  const kova = await startKova(['--no-controllers', '--no-agents', '--no-seed', '--api-workers', String(apiWorkers)]);
  try {
    const kc = parseYaml(await readFile(kova.kubeconfig, 'utf8'));
    const server = new URL(kc.clusters[0].cluster.server);
    const registry = (await Registry.load()).all();
    return {
      kova,
      host: server.hostname,
      port: Number(server.port),
      ca: Buffer.from(kc.clusters[0].cluster['certificate-authority-data'], 'base64'),
      token: kc.users[0].user.token as string,
      registry,
      apiWorkers,
      stop: () => kova.stop(),
    };
  } catch (e) {
    await kova.stop();
    throw e;
  }
}

export interface FuzzOptions {
  seed: number;
  /** Stop after this many requests... */
  requests: number;
  /** ...or after this many seconds, whichever comes first. */
  seconds: number;
  concurrency?: number;
  /** Per-request bound; a request (or a watch's headers) slower than this is a hang. */
  timeoutMs?: number;
  /**
   * No API process may ever exceed this RSS (default 1024 MB). Bodies up to 3 MB at concurrency 8
   * make transient peaks of ~600 MB normal (seen once in a 180 s run), so this bound is for
   * runaway allocation; leaks are caught by the growth bound.
   */
  maxRssMb?: number;
  /**
   * Nor grow by more than this between the warm-up checkpoint (20% of the run) and the end
   * (default 250 MB; healthy runs end within about ±120 MB of the checkpoint). A leak of 1 KB per
   * request fails a 600 s run (~200k requests); the 20 s runs of `npm test` catch ~50 KB/request.
   */
  maxGrowthMb?: number;
  /** Only this request index of the seed's sequence (to reproduce one finding). */
  only?: number;
  log?: (line: string) => void;
}

export interface Finding {
  signature: string;
  kind: string;
  count: number;
  /** The first occurrence, printable. */
  repro: string;
}

export interface FuzzResult {
  seed: number;
  requests: number;
  byStatus: Record<string, number>;
  /** Responses per generic request template and status: what the run exercised. */
  byTemplate: Record<string, number>;
  skipped: number;
  failures: number;
  findings: Finding[];
  maxRssMb: Record<string, number>;
  growthMb: Record<string, number>;
  durationMs: number;
}

interface Outcome {
  status: number;
  /** Up to the first MB of the body. */
  body: string;
  truncated: boolean;
  contentType: string;
  error?: string;
  hung?: boolean;
  /** Complete watch lines received. */
  lines?: string[];
  /** Status codes of every response on a raw connection. */
  rawStatuses?: number[];
  skipped?: boolean;
}

const BODY_KEEP = 1 << 20;

function requestSeed(seed: number, i: number): number {
  return (Math.imul(seed ^ 0x5bd1e995, 0x27d4eb2d) + Math.imul(i + 1, 0x9e3779b1)) >>> 0;
}

function redact(s: string, token: string): string {
  return s.split(token).join('<token>');
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n)}… (${s.length} chars)` : s;
}

function bodyText(b: string | Buffer | undefined): string {
  if (b === undefined) return '';
  if (typeof b === 'string') return b;
  const s = b.toString('utf8');
  return /[\u0000-\u0008\ufffd]/.test(s) ? `<bytes ${b.subarray(0, 200).toString('hex')}${b.length > 200 ? '…' : ''} (${b.length} bytes)>` : s;
}

export function describeRequest(req: FuzzRequest, token: string): string {
  if (req.raw) return `RAW over TLS (${req.note}): ${JSON.stringify(truncate(redact(req.raw.toString('latin1'), token), 600))}`;
  const headers = { ...req.headers, ...(req.auth === 'token' ? { Authorization: 'Bearer <token>' } : req.auth === 'bad' ? { Authorization: 'Bearer wrong' } : {}) };
  const lines = [`${req.method} ${truncate(req.path, 400)}`, `headers: ${JSON.stringify(headers, (_, v) => (typeof v === 'string' ? truncate(v, 200) : v))}`];
  if (req.body !== undefined) lines.push(`body: ${JSON.stringify(truncate(bodyText(req.body), 800))}`);
  if (req.finish) lines.push('(body built from a GET of the current object first)');
  if (req.watchMs) lines.push(`(watch, closed by the client after ${req.watchMs} ms)`);
  if (req.note) lines.push(`note: ${req.note}`);
  return lines.join('\n    ');
}

function normalize(msg: string): string {
  return truncate(msg.replace(/"(?:[^"\\]|\\.)*"/g, '"…"').replace(/'[^']*'/g, "'…'").replace(/\d+/g, 'N').replace(/\s+/g, ' ').trim(), 160);
}

/** A signature without the kind: one bug in shared code is one finding, not one per resource. */
function generic(signature: string): string {
  return signature
    .replace(/\/apis\/[a-z0-9.-]+\/v[0-9a-z]+(?![a-z0-9.-])/g, '/apis/{gv}')
    .replace(/\/api\/v1(?![a-z0-9.-])/g, '/api/{gv}')
    .replace(/(\{gv\}(?:\/watch)?(?:\/namespaces\/\{ns\})?(?:\/\.\.\.)?)\/[a-z]+(?![a-z0-9.-])/g, '$1/{resource}');
}

function statusMessage(body: string): string {
  try {
    const j = JSON.parse(body) as Rec;
    if (typeof j.message === 'string') return j.message;
  } catch {
    /* not JSON */
  }
  return body.slice(0, 200);
}

function isStatus(body: string, code: number, truncated: boolean): boolean {
  // A body cut at BODY_KEEP cannot be parsed; its start still shows what it is.
  if (truncated) return body.startsWith('{"kind":"Status","apiVersion":"v1"');
  try {
    const j = JSON.parse(body) as Rec;
    return j.kind === 'Status' && j.apiVersion === 'v1' && j.code === code && typeof j.message === 'string';
  } catch {
    return false;
  }
}

const UNAUTHENTICATED_PATHS = /^\/(healthz|livez|readyz|version)(\?|\/?$)/;
const DOT_SEGMENT = /\/(\.|%2e){1,2}(?=\/|$)/i;
const WATCH_TYPES = new Set(['ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK', 'ERROR']);

class Client {
  readonly agent: https.Agent;
  constructor(private readonly t: Target, concurrency: number, private readonly timeoutMs: number) {
    this.agent = new https.Agent({ keepAlive: true, ca: t.ca, maxSockets: concurrency * 2 });
  }

  close() {
    this.agent.destroy();
  }

  send(req: FuzzRequest): Promise<Outcome> {
    return req.raw ? this.sendRaw(req) : this.sendHttp(req);
  }

  private sendHttp(req: FuzzRequest): Promise<Outcome> {
    return new Promise((resolve) => {
      const headers: Record<string, string | number> = { ...req.headers };
      if (req.auth === 'token') headers.Authorization = `Bearer ${this.t.token}`;
      else if (req.auth === 'bad') headers.Authorization = 'Bearer wrong-token';
      if (req.body !== undefined && !headers['Transfer-Encoding']) headers['Content-Length'] = Buffer.byteLength(req.body);
      const looksLikeWatch = !!req.watchMs || /[?&]watch=(true|1|True)/.test(req.path);
      let settled = false;
      let hr: ReturnType<typeof https.request>;
      const out: Outcome = { status: 0, body: '', truncated: false, contentType: '' };
      const done = (extra: Partial<Outcome> = {}) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ ...out, ...extra });
      };
      const timer = setTimeout(() => {
        done({ hung: true });
        hr?.destroy();
      }, this.timeoutMs);
      try {
        // Watches get their own connection: closing one must not cost a pooled socket.
        hr = https.request({ host: this.t.host, port: this.t.port, path: req.path, method: req.method, headers, agent: looksLikeWatch ? false : this.agent, ca: this.t.ca });
      } catch (e) {
        // Node refuses some paths/headers before sending (e.g. a control character): not a server test.
        done({ skipped: true, error: (e as Error).message });
        return;
      }
      hr.on('response', (res) => {
        out.status = res.statusCode ?? 0;
        out.contentType = String(res.headers['content-type'] ?? '');
        const isWatch = looksLikeWatch && out.status === 200 && req.method !== 'HEAD';
        let buf = '';
        if (isWatch) {
          // Headers arrived in time; the client now reads for a while, then hangs up.
          clearTimeout(timer);
          out.lines = [];
          setTimeout(() => {
            done();
            hr.destroy();
          }, req.watchMs ?? 500);
        }
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          if (isWatch) {
            buf += d;
            for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
              if (out.lines!.length < 1000) out.lines!.push(buf.slice(0, i));
              buf = buf.slice(i + 1);
            }
          } else if (out.body.length < BODY_KEEP) out.body += d;
          else out.truncated = true;
        });
        res.on('end', () => done());
        res.on('error', (e) => done({ error: e.message }));
        res.on('aborted', () => done({ error: 'response aborted' }));
      });
      hr.on('error', (e) => done({ error: `${(e as NodeJS.ErrnoException).code ?? ''} ${e.message}`.trim() }));
      hr.end(req.body);
    });
  }

  private sendRaw(req: FuzzRequest): Promise<Outcome> {
    return new Promise((resolve) => {
      const bytes = Buffer.from(req.raw!.toString('latin1').split('{token}').join(this.t.token), 'latin1');
      let data = '';
      let settled = false;
      const sock = tls.connect({ host: this.t.host, port: this.t.port, ca: this.t.ca, servername: 'localhost' });
      const done = (extra: Partial<Outcome> = {}) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        clearTimeout(halfClose);
        sock.destroy();
        const statuses = [...data.matchAll(/(?:^|\r\n)HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]));
        resolve({ status: statuses[0] ?? 0, rawStatuses: statuses, body: data.slice(0, 2000), truncated: false, contentType: '', ...extra });
      };
      const timer = setTimeout(() => done({ hung: true }), this.timeoutMs);
      // The client sends everything it has, then closes its side: a server must not wait on.
      let halfClose: NodeJS.Timeout | undefined;
      sock.on('secureConnect', () => {
        sock.write(bytes);
        halfClose = setTimeout(() => sock.end(), 300);
      });
      sock.setEncoding('latin1');
      sock.on('data', (d: string) => {
        if (data.length < 100_000) data += d;
      });
      sock.on('close', () => done());
      sock.on('error', (e) => done({ error: `${(e as NodeJS.ErrnoException).code ?? ''} ${e.message}`.trim() }));
    });
  }
}

interface ProcInfo {
  pid: number;
  role: string;
}

function readRssMb(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** The primary and its API worker children (etcd, also a child, is not an API process). */
function apiProcesses(primary: number): ProcInfo[] {
  const out: ProcInfo[] = [{ pid: primary, role: 'primary' }];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== primary) continue;
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').includes('api-worker')) out.push({ pid: Number(d), role: `worker ${d}` });
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/** Runs one fuzz session against `t`. Never throws on findings: they are in the result. */
export async function fuzz(t: Target, opts: FuzzOptions): Promise<FuzzResult> {
  const log = opts.log ?? (() => undefined);
  const concurrency = opts.concurrency ?? 8;
  const timeoutMs = opts.timeoutMs ?? 5000;
  const maxRssMb = opts.maxRssMb ?? 1024;
  const maxGrowthMb = opts.maxGrowthMb ?? 250;
  const client = new Client(t, concurrency, timeoutMs);
  const st: GenState = { registry: t.registry, namespaces: FUZZ_NAMESPACES, continueTokens: [] };
  const findings = new Map<string, Finding>();
  const byStatus: Record<string, number> = {};
  const byTemplate: Record<string, number> = {};
  let sent = 0;
  let skipped = 0;
  let failures = 0;
  const start = Date.now();

  const file = (kind: string, signature: string, repro: () => string) => {
    failures++;
    const key = `${kind}: ${generic(signature)}`;
    const f = findings.get(key);
    if (f) return void f.count++;
    const finding = { signature: key, kind, count: 1, repro: repro() };
    findings.set(key, finding);
    log(`FINDING ${key}\n    ${finding.repro}`);
  };

  // The namespaces the generators use. A request may legitimately delete one (or a server bug
  // all of them); they are re-created every few seconds so later requests keep reaching content.
  const ensureNamespaces = () =>
    Promise.all(FUZZ_NAMESPACES.map((ns) => client.send({ template: 'setup', method: 'POST', path: '/api/v1/namespaces', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }), auth: 'token', note: '' })));
  await ensureNamespaces();
  const nsTimer = setInterval(() => void ensureNamespaces(), 3000);

  // Process watch: exits, replaced workers, RSS.
  const primary = t.kova.proc.pid!;
  let primaryExit: string | undefined;
  const onExit = (code: number | null, signal: string | null) => (primaryExit = `API server primary exited with ${signal ?? code}`);
  t.kova.proc.once('exit', onExit);
  const inFlight = new Map<number, FuzzRequest>();
  // Finished requests with their end time and whether the connection failed (crash suspects).
  const recent: Array<{ i: number; req: FuzzRequest; o: Outcome; at: number; filed: boolean }> = [];
  const knownWorkers = new Set(apiProcesses(primary).map((p) => p.pid));
  const roleOf = (pid: number) => (pid === primary ? 'primary' : `worker-${[...knownWorkers].indexOf(pid)}`);
  const maxRss: Record<string, number> = {};
  const baseline: Record<string, number> = {};
  let baselineTaken = false;
  let outputSeen = t.kova.output().length;
  const workerPids = () => new Set(apiProcesses(primary).filter((p) => p.pid !== primary).map((p) => p.pid));
  let liveWorkers = workerPids();
  let pendingCrash: { what: string; suspects: Array<{ i: number; req: FuzzRequest }>; output: string } | undefined;
  let paused = false;
  let triaging = false;

  const sample = () => {
    if (!triaging) {
      const out = t.kova.output();
      const fresh = out.slice(outputSeen);
      outputSeen = out.length;
      // A worker that vanished crashed (the primary replaces it; it logs that only with --verbose).
      const now = workerPids();
      const gone = [...liveWorkers].filter((p) => !now.has(p));
      liveWorkers = now;
      if (gone.length && !pendingCrash) {
        // The culprit is in flight or just failed with a reset; the others are collateral.
        const at = Date.now();
        // Most likely first: requests whose connection broke, then raw ones, then those in flight.
        const suspects = [...recent.filter((x) => at - x.at < 2000 && x.o.error && !/ECONNREFUSED/.test(x.o.error)).map(({ i, req }) => ({ i, req })), ...[...inFlight].map(([i, req]) => ({ i, req })), ...recent.filter((x) => at - x.at < 2000 && x.req.raw).map(({ i, req }) => ({ i, req }))].filter((x, k, all) => all.findIndex((y) => y.i === x.i) === k);
        for (const x of recent) if (at - x.at < 3000 && x.o.error) x.filed = true;
        pendingCrash = { what: `API worker ${gone.join(', ')} exited`, suspects, output: fresh };
        paused = true;
      }
      // Connection failures with no crash around them are findings of their own.
      for (const x of recent) {
        if (!x.filed && x.o.error && !x.req.raw && Date.now() - x.at > 2000) {
          x.filed = true;
          const refused = /ECONNREFUSED/.test(x.o.error);
          file('conn-error', refused ? 'connections refused (no API process listening)' : `${x.req.template}: ${normalize(x.o.error)}`, () => `seed ${opts.seed} request #${x.i}\n    ${describeRequest(x.req, t.token)}\n    -> error ${x.o.error}`);
        }
      }
    }
    for (const p of apiProcesses(primary)) {
      knownWorkers.add(p.pid);
      const rss = readRssMb(p.pid);
      if (rss === undefined) continue;
      const role = roleOf(p.pid);
      maxRss[role] = Math.max(maxRss[role] ?? 0, rss);
      if (rss > maxRssMb) file('memory', `${role} RSS above ${maxRssMb} MB`, () => `RSS ${rss.toFixed(0)} MB after ${sent} requests`);
    }
  };
  const monitor = setInterval(sample, 500);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  /** Waits until every API worker is back and /readyz answers. */
  const recovered = async (): Promise<boolean> => {
    const until = Date.now() + 20_000;
    while (Date.now() < until && !primaryExit) {
      if (t.apiWorkers < 2 || apiProcesses(primary).length - 1 >= t.apiWorkers) {
        const o = await client.send({ template: 'readyz', method: 'GET', path: '/readyz', headers: {}, auth: 'token', note: '' });
        if (o.status === 200) return true;
      }
      await sleep(200);
    }
    return false;
  };

  /** After a worker crash: replays each suspect alone to name the request that kills a worker. */
  const triage = async () => {
    const crash = pendingCrash!;
    triaging = true;
    try {
      if (!(await recovered())) return file('crash', `${crash.what}; the API did not recover within 20 s`, () => `suspects:\n    ${crash.suspects.map((x) => `#${x.i} ${describeRequest(x.req, t.token)}`).join('\n    ')}`);
      for (const x of crash.suspects) {
        const mark = t.kova.output().length;
        const before = workerPids();
        const o = await client.send(x.req);
        await sleep(700);
        const after = t.kova.output().slice(mark);
        const now = workerPids();
        const died = t.apiWorkers > 1 ? [...before].some((p) => !now.has(p)) : !!primaryExit;
        if (died) {
          const err = /(?:^|\n)([A-Za-z]*Error[^\n]*(?:\n\s+at [^\n]*){0,6})/.exec(crash.output + after);
          file('crash', `${x.req.template}: an API process exited`, () => `seed ${opts.seed} request #${x.i} (reproduced alone)\n    ${describeRequest(x.req, t.token)}\n    -> ${o.hung ? 'no answer' : o.error ?? o.status}\n    server output: ${truncate(err?.[1] ?? after.slice(-1500), 1500)}`);
          await recovered();
          return;
        }
      }
      file('crash', `${crash.what} (not reproduced by replaying the ${crash.suspects.length} suspects alone)`, () => `suspects:\n    ${crash.suspects.map((x) => `#${x.i} ${describeRequest(x.req, t.token)}`).join('\n    ')}\n    server: ${truncate(crash.output.slice(-2000), 2000)}`);
    } finally {
      outputSeen = t.kova.output().length;
      liveWorkers = workerPids();
      triaging = false;
      pendingCrash = undefined;
      paused = false;
    }
  };
  let triageRunning: Promise<void> | undefined;

  const deadline = start + opts.seconds * 1000;
  const total = opts.only !== undefined ? 1 : opts.requests;
  let next = 0;
  const finishedBudget = () => next >= total || Date.now() >= deadline || primaryExit !== undefined;

  const check = (i: number, req: FuzzRequest, o: Outcome) => {
    const cls = o.skipped ? 'skipped' : o.hung ? 'hang' : o.status ? `${Math.floor(o.status / 100)}xx` : req.raw ? 'raw-closed' : 'error';
    byStatus[cls] = (byStatus[cls] ?? 0) + 1;
    const tk = `${generic(req.template.replace(/ \(auth=\w+\)$/, ''))} ${o.status || cls}`;
    byTemplate[tk] = (byTemplate[tk] ?? 0) + 1;
    const repro = () => `seed ${opts.seed} request #${i}\n    ${describeRequest(req, t.token)}\n    -> ${o.hung ? `no answer within ${timeoutMs} ms` : o.error ? `error ${o.error}` : `${o.status} ${truncate(redact(o.body, t.token), 400)}`}`;
    if (o.skipped) return void skipped++;
    // FUZZ_DEBUG_VALID=1 shows what the server rejects of the generators' "valid" objects.
    if (process.env.FUZZ_DEBUG_VALID && req.note.startsWith('valid') && o.status >= 400 && o.status !== 409 && o.status !== 401) log(`valid object rejected: ${req.method} ${req.path} -> ${o.status} ${truncate(statusMessage(o.body), 300)}`);
    if (o.hung) return file('hang', `${req.template} (no answer in ${timeoutMs / 1000} s)`, repro);
    if (req.raw) {
      for (const s of o.rawStatuses ?? []) if (s >= 500) file('5xx', `${req.template} -> ${s}`, repro);
      return;
    }
    // Connection errors are judged by the monitor: collateral of a crash, or a finding.
    if (o.error) return;
    const needsAuth = !UNAUTHENTICATED_PATHS.test(req.path);
    // 413/431 come from body and header size limits that apply before authentication, and a
    // request target with dot segments or broken escapes may be refused (400) before it too.
    const badTarget = DOT_SEGMENT.test(req.path.split('?')[0]) || /%(?![0-9a-f]{2})/i.test(req.path);
    if (req.auth !== 'token' && needsAuth && o.status !== 401 && o.status !== 413 && o.status !== 431 && !(o.status === 400 && badTarget)) return file('auth', `${req.template} -> ${o.status} (want 401)`, repro);
    if (req.noSuccess && o.status >= 200 && o.status < 300) return file('path', `${req.template} -> ${o.status} (dot segments resolved to another resource)`, repro);
    if (o.status >= 500) return file('5xx', `${req.template} -> ${o.status} ${normalize(statusMessage(o.body))}`, repro);
    // 431 (headers over node's 16 KiB limit) is answered by node's HTTP parser before any handler runs.
    if (o.status >= 400 && o.status !== 431 && req.method !== 'HEAD' && needsAuth && !isStatus(o.body, o.status, o.truncated)) return file('not-status', `${req.template} -> ${o.status} body is not a Status`, repro);
    if (o.lines) {
      for (const line of o.lines) {
        let ev: Rec | undefined;
        try {
          ev = JSON.parse(line) as Rec;
        } catch {
          ev = undefined;
        }
        const obj = ev?.object as Rec | undefined;
        if (!ev || !WATCH_TYPES.has(ev.type as string) || !obj || typeof obj !== 'object') return file('bad-watch', `${req.template}: malformed watch event`, () => `${repro()}\n    line: ${truncate(line, 300)}`);
        if (ev.type === 'ERROR' && obj.kind !== 'Status') return file('bad-watch', `${req.template}: ERROR event without a Status`, () => `${repro()}\n    line: ${truncate(line, 300)}`);
        if (ev.type === 'ERROR' && typeof obj.code === 'number' && obj.code >= 500) file('5xx', `${req.template}: watch ERROR ${obj.code} ${normalize(String(obj.message))}`, () => `${repro()}\n    line: ${truncate(line, 300)}`);
      }
      return;
    }
    if (o.status >= 200 && o.status < 300 && req.method !== 'HEAD' && /json/.test(o.contentType) && !o.truncated && o.body) {
      let j: Rec;
      try {
        j = JSON.parse(o.body) as Rec;
      } catch {
        return file('bad-json', `${req.template} -> ${o.status} body is not JSON`, repro);
      }
      const cont = (j.metadata as Rec | undefined)?.continue;
      if (typeof cont === 'string' && cont && st.continueTokens.length < 50) st.continueTokens.push(cont);
    }
  };

  const lane = async () => {
    while (!finishedBudget()) {
      if (paused) {
        // Wait out a crash: in-flight requests drain, one lane replays the suspects.
        if (!triageRunning && pendingCrash && inFlight.size === 0) triageRunning = triage().finally(() => (triageRunning = undefined));
        await sleep(50);
        continue;
      }
      const i = opts.only ?? next;
      next++;
      let req: FuzzRequest;
      try {
        req = genRequest(st, new Rng(requestSeed(opts.seed, i)));
      } catch (e) {
        // A generator bug must not end the run; it is reported as one.
        file('generator', `request #${i} could not be generated: ${normalize((e as Error).message)}`, () => `seed ${opts.seed} request #${i}: ${(e as Error).stack}`);
        continue;
      }
      inFlight.set(i, req);
      let o: Outcome | undefined;
      try {
        if (req.finish) {
          const cur = await client.send({ template: `GET for ${req.template}`, method: 'GET', path: req.path.split('?')[0], headers: {}, auth: 'token', note: '' });
          let obj: Rec | undefined;
          try {
            obj = cur.status === 200 ? (JSON.parse(cur.body) as Rec) : undefined;
          } catch {
            obj = undefined;
          }
          try {
            req.finish(obj);
          } catch (e) {
            file('generator', `request #${i} could not be finished: ${normalize((e as Error).message)}`, () => `seed ${opts.seed} request #${i}: ${(e as Error).stack}`);
          }
        }
        o = await client.send(req);
        sent++;
        check(i, req, o);
      } finally {
        inFlight.delete(i);
        if (o) recent.push({ i, req, o, at: Date.now(), filed: false });
        // Kept 3 s (crash suspects), and an errored one until the monitor has judged it.
        const old = Date.now() - 3000;
        while (recent.length && recent[0].at < old && (recent[0].filed || !recent[0].o.error || recent[0].req.raw)) recent.shift();
        if (recent.length > 20_000) recent.shift();
      }
      if (!baselineTaken && (next >= total * 0.2 || Date.now() >= start + opts.seconds * 200)) {
        baselineTaken = true;
        sample();
        for (const p of apiProcesses(primary)) {
          const rss = readRssMb(p.pid);
          if (rss !== undefined) baseline[String(p.pid)] = rss;
        }
      }
      if (sent % 500 === 0) log(`${sent} requests, ${failures} failures, ${((Date.now() - start) / 1000).toFixed(0)} s`);
    }
  };
  await Promise.all(Array.from({ length: opts.only !== undefined ? 1 : concurrency }, lane));
  // A crash noticed at the very end still gets its triage.
  await sleep(600);
  sample();
  if (pendingCrash && !primaryExit) await (triageRunning ?? triage());
  // Late connection errors get judged too.
  for (const x of recent) x.at = Math.min(x.at, Date.now() - 2001);
  sample();

  // Still alive and answering? (A wedged event loop or a dead etcd client shows here.)
  if (!primaryExit) {
    for (const path of ['/readyz', '/api/v1/namespaces', collectionPath(t.registry[t.registry.length - 1], 'default')]) {
      const o = await client.send({ template: `GET ${path} (after the run)`, method: 'GET', path, headers: {}, auth: 'token', note: 'liveness probe after the run' });
      if (o.hung || o.error || o.status !== 200) file('liveness', `GET ${path} after the run -> ${o.hung ? 'no answer' : o.error ?? o.status}`, () => `${truncate(o.body, 300)}`);
    }
  }
  sample();
  clearInterval(monitor);
  clearInterval(nsTimer);
  t.kova.proc.off('exit', onExit);
  if (primaryExit) file('crash', primaryExit, () => `requests just before:\n    ${recent.slice(-10).map((x) => `#${x.i} ${describeRequest(x.req, t.token)}`).join('\n    ')}\n    server output: ${truncate(t.kova.output().slice(-3000), 3000)}`);

  // Growth from the warm-up checkpoint to the end, per process still alive.
  const growthMb: Record<string, number> = {};
  for (const [pid, base] of Object.entries(baseline)) {
    const now = readRssMb(Number(pid));
    if (now === undefined) continue;
    const role = roleOf(Number(pid));
    growthMb[role] = Math.round(now - base);
    if (now - base > maxGrowthMb) file('memory', `${role} RSS grew by more than ${maxGrowthMb} MB`, () => `from ${base.toFixed(0)} MB at the warm-up checkpoint to ${now.toFixed(0)} MB at the end (${sent} requests)`);
  }
  client.close();
  for (const k of Object.keys(maxRss)) maxRss[k] = Math.round(maxRss[k]);
  return { seed: opts.seed, requests: sent, byStatus, byTemplate, skipped, failures, findings: [...findings.values()], maxRssMb: maxRss, growthMb, durationMs: Date.now() - start };
}

/** The findings as text, one block per signature. */
export function formatFindings(r: FuzzResult): string {
  if (!r.findings.length) return `seed ${r.seed}: no findings in ${r.requests} requests`;
  return [`seed ${r.seed}: ${r.findings.length} distinct findings (${r.failures} failing requests) in ${r.requests} requests`, ...r.findings.map((f) => `- [x${f.count}] ${f.signature}\n    ${f.repro}`)].join('\n');
}
