// npm run bench:api — API server throughput and latency against a raw etcd baseline measured
// in the same run on the same etcd. kova runs as its own process (`kova apiserver
// --etcd-endpoints`), the load generator here; the last output line is one JSON object.
// The load generator shares the machine's cores with kova and etcd, so it sends its HTTPS
// requests with undici, the lightest Node HTTP client (about half the CPU of node:https).
// `ratio_c*` divide by raw puts through etcd3 (the etcd client the project specifies);
// `ratio_vs_lean_c*` by raw puts through kova's lean gRPC client, the stricter baseline.
// `ratio_rbac_c32` divides a project member's creates (access through a RoleBinding) by the
// admin's, in the same run: what authentication and authorization of a non-admin cost.
// `ratio_metrics_c32` divides creates through this API server (Prometheus metrics on, the
// default) by creates through a second one on the same etcd started with KOVA_API_METRICS=off,
// in the same run: what the request and etcd metrics cost.
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFile, readdir, mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import { Pool } from 'undici';
import YAML from 'yaml';
import { startEtcd } from '../store/etcd-process.js';
import { EtcdClient } from '../store/etcd/client.js';
import { leanEtcdPutRate, median, pct, rate, rawEtcdPutRate, round } from './common.js';

const { values } = parseArgs({
  options: {
    creates: { type: 'string', default: '8000' },
    'list-size': { type: 'string', default: '10000' },
    'watch-samples': { type: 'string', default: '300' },
  },
});
const CREATES = Number(values.creates);
const LIST_SIZE = Number(values['list-size']);
const WATCH_SAMPLES = Number(values['watch-samples']);
const KOVA = fileURLToPath(new URL('../cli/kova.js', import.meta.url));
const execFileP = promisify(execFile);

const log = (m: string) => process.stderr.write(`bench:api: ${m}\n`);

interface Client {
  request(method: string, path: string, body?: unknown): Promise<{ status: number; body: string }>;
  close(): Promise<void>;
  ca: string;
  base: URL;
  headers: Record<string, string>;
}

/**
 * A client holding at most `connections` connections: one per concurrent request, as that many
 * client workers would hold (a single sequential client, like kubectl, holds one; a pool of more
 * would spread its requests over several connections, and so over several API processes).
 */
function client(server: string, token: string, ca: string, connections = 32): Client {
  const base = new URL(server);
  const pool = new Pool(server, { connections, connect: { ca } });
  const headers = { authorization: `Bearer ${token}` };
  const withBody = { ...headers, 'content-type': 'application/json' };
  return {
    base, headers, ca,
    async request(method, path, body) {
      const res = await pool.request({ method: method as 'GET', path, headers: body === undefined ? headers : withBody, body: body === undefined ? undefined : JSON.stringify(body) });
      return { status: res.statusCode, body: await res.body.text() };
    },
    close: () => pool.close(),
  };
}

function instance(name: string, namespace = 'bench') {
  return {
    apiVersion: 'kova.dev/v1alpha1', kind: 'Instance',
    metadata: { name, namespace, labels: { app: 'bench' } },
    spec: { flavor: 'm1.small', image: 'tiny', runStrategy: 'Always', networks: [{ network: 'private' }] },
  };
}


/** `kova apiserver` on `etcdEndpoints` with its own data dir, once it says ready. */
async function startApiserver(dataDir: string, etcdEndpoints: string[], env: Record<string, string> = {}): Promise<{ proc: ChildProcess; kubeconfig: string }> {
  const proc = spawn(process.execPath, [...(process.env.KOVA_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean), KOVA, 'apiserver', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--etcd-endpoints', etcdEndpoints.join(',')], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (d) => {
      out += d;
      if (/ready: API server/.test(out)) resolve();
    });
    proc.on('exit', (c) => reject(new Error(`kova apiserver exited ${c}: ${out}`)));
  });
  return { proc, kubeconfig: join(dataDir, 'kubeconfig') };
}

async function stopApiserver(proc: ChildProcess | undefined): Promise<void> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await exited;
}

/** CPU seconds (user + system) used by a process and its children (API workers), from /proc (Linux). */
async function cpuSeconds(pid: number): Promise<number> {
  let total = 0;
  for (const d of await readdir('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = await readFile(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // Fields 4, 14 and 15 of stat: ppid, utime and stime (clock ticks, 100 per second on Linux).
      if (Number(d) === pid || Number(f[1]) === pid) total += (Number(f[11]) + Number(f[12])) / 100;
    } catch {
      // a process that ended meanwhile
    }
  }
  return total;
}

/** The admin's client of an API server, from its kubeconfig. */
async function adminClient(kubeconfig: string, connections?: number): Promise<Client> {
  const kc = YAML.parse(await readFile(kubeconfig, 'utf8'));
  return client(kc.clusters[0].cluster.server, kc.users[0].user.token, Buffer.from(kc.clusters[0].cluster['certificate-authority-data'], 'base64').toString(), connections);
}

async function main() {
  const dir = await mkdtemp(join(tmpdir(), 'kova-bench-api-'));
  const etcd = await startEtcd({ dataDir: join(dir, 'etcd') });
  const raw = new Etcd3({ hosts: etcd.endpoints });
  const lean = new EtcdClient(etcd.endpoints);
  let c: Client | undefined;
  let c1: Client | undefined;
  let kova: ChildProcess | undefined;
  let unmetered: ChildProcess | undefined;
  try {
    kova = (await startApiserver(join(dir, 'kova'), etcd.endpoints)).proc;
    const api = await adminClient(join(dir, 'kova', 'kubeconfig'));
    c = api;
    const sequential = await adminClient(join(dir, 'kova', 'kubeconfig'), 1);
    c1 = sequential;
    for (const ns of ['bench', 'list']) await api.request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    const sample = JSON.stringify(instance('x'));

    const figures: Record<string, number> = {};
    let made = 0;
    /** One Instance create through HTTPS; anything but 201 fails the benchmark. */
    const createOne = async (ns = 'bench', via = api) => {
      const r = await via.request('POST', `/apis/kova.dev/v1alpha1/namespaces/${ns}/instances`, instance(`i-${made++}`, ns));
      if (r.status !== 201) throw new Error(`create failed ${r.status}: ${r.body}`);
    };
    for (const conc of [1, 32]) {
      const n = conc === 1 ? Math.max(200, Math.floor(CREATES / 4)) : CREATES;
      const base = `/bench/c${conc}/`;
      // Every side first opens its connections and warms up with untimed operations, so the
      // figures are steady-state throughput, not TLS handshakes and JIT: with a few hundred
      // operations both etcd3 and kova were still well below their steady rates. One at a time,
      // both sides take about 3,000 operations to get there (in 500-operation steps on a fresh
      // etcd: etcd3 850 -> 1,550 puts/s, kova 490 -> 1,000 creates/s; etcd warmed by another
      // process first did not shorten etcd3's climb, so it is the client's JIT, not etcd).
      const warm = conc === 1 ? 3000 : 2000;
      await rawEtcdPutRate(raw, `${base}warm/`, warm, conc, sample);
      const via = conc === 1 ? sequential : api;
      await rate(warm, conc, () => createOne('bench', via));
      // Then both sides in alternating segments of n/2 operations, four each, in the order etcd
      // kova kova etcd kova etcd etcd kova: a burst of other load on the machine, or etcd filling
      // up, weighs on both alike, and the medians drop one disturbed segment. One run of each side
      // (etcd before and after kova) differed by up to 44% between the two etcd runs when idle.
      const ops = Math.floor(n / 2);
      log(`raw etcd puts and kova creates through HTTPS, concurrency ${conc}, 4 alternating segments of ${ops} each`);
      const segments: Array<{ side: 'etcd' | 'kova'; rate: number }> = [];
      for (const side of ['etcd', 'kova', 'kova', 'etcd', 'kova', 'etcd', 'etcd', 'kova'] as const) {
        const r = side === 'etcd' ? await rawEtcdPutRate(raw, `${base}${segments.length}/`, ops, conc, sample) : await rate(ops, conc, () => createOne('bench', via));
        segments.push({ side, rate: r });
      }
      const ratesOf = (side: 'etcd' | 'kova') => segments.filter((s) => s.side === side).map((s) => s.rate);
      const etcdRate = median(ratesOf('etcd'));
      const kovaRate = median(ratesOf('kova'));
      // Each adjacent pair of segments is one etcd and one kova run: their ratios show the spread.
      const pairRatios = [0, 2, 4, 6].map((i) => {
        const pair = [segments[i]!, segments[i + 1]!];
        return pair.find((s) => s.side === 'kova')!.rate / pair.find((s) => s.side === 'etcd')!.rate;
      });
      await leanEtcdPutRate(lean, `${base}lean-warm/`, warm, conc, sample);
      const leanRate = await leanEtcdPutRate(lean, `${base}lean/`, n, conc, sample);
      figures[`etcd_puts_per_s_c${conc}`] = round(etcdRate);
      figures[`kova_creates_per_s_c${conc}`] = round(kovaRate);
      figures[`ratio_c${conc}`] = round(kovaRate / etcdRate, 3);
      figures[`ratio_min_c${conc}`] = round(Math.min(...pairRatios), 3);
      figures[`ratio_max_c${conc}`] = round(Math.max(...pairRatios), 3);
      figures[`lean_etcd_puts_per_s_c${conc}`] = round(leanRate);
      figures[`ratio_vs_lean_c${conc}`] = round(kovaRate / leanRate, 3);
    }

    // Authorization must be cheap: a member of project bench (a RoleBinding to kova:member, made
    // by `kova user create` as a user would) against the admin (system:masters), same run, same
    // concurrency; the admin is measured before and after the member and averaged.
    {
      const n = CREATES;
      const userKubeconfig = join(dir, 'bencher.kubeconfig');
      await execFileP(process.execPath, [KOVA, 'user', 'create', 'bencher', '--project', 'bench', '--role', 'member', '--kubeconfig', join(dir, 'kova', 'kubeconfig'), '-o', userKubeconfig]);
      const ukc = YAML.parse(await readFile(userKubeconfig, 'utf8'));
      const member = client(ukc.clusters[0].cluster.server, ukc.users[0].user.token, api.ca);
      try {
        const createAs = async (who: Client) => {
          const r = await who.request('POST', '/apis/kova.dev/v1alpha1/namespaces/bench/instances', instance(`i-${made++}`));
          if (r.status !== 201) throw new Error(`create failed ${r.status}: ${r.body}`);
        };
        // The binding reaches every API server's RBAC cache through a watch: wait for it.
        for (let i = 0; ; i++) {
          const r = await member.request('POST', '/apis/kova.dev/v1alpha1/namespaces/bench/instances', instance(`i-${made++}`));
          if (r.status === 201) break;
          if (i > 100) throw new Error(`the member cannot create: ${r.status} ${r.body}`);
          await new Promise((res) => setTimeout(res, 50));
        }
        log(`RBAC: admin and project member creates, concurrency 32, n=${n}`);
        await rate(2000, 32, () => createAs(member));
        const adminBefore = await rate(n, 32, () => createAs(api));
        const memberRate = await rate(n, 32, () => createAs(member));
        const adminAfter = await rate(n, 32, () => createAs(api));
        const adminRate = (adminBefore + adminAfter) / 2;
        figures.admin_creates_per_s_c32 = round(adminRate);
        figures.member_creates_per_s_c32 = round(memberRate);
        figures.ratio_rbac_c32 = round(memberRate / adminRate, 3);
      } finally {
        await member.close();
      }
    }

    // The cost of metrics: the same creates through this server (metrics on) and through a second
    // one with metrics off, alternated on, off, off, on so that etcd filling up weighs on both alike.
    {
      const n = CREATES;
      const off = await startApiserver(join(dir, 'kova-no-metrics'), etcd.endpoints, { KOVA_API_METRICS: 'off' });
      unmetered = off.proc;
      const offApi = await adminClient(off.kubeconfig);
      try {
        const createVia = async (who: Client) => {
          const r = await who.request('POST', '/apis/kova.dev/v1alpha1/namespaces/bench/instances', instance(`i-${made++}`));
          if (r.status !== 201) throw new Error(`create failed ${r.status}: ${r.body}`);
        };
        // The second server's /metrics must be off, this one's on: otherwise the ratio means nothing.
        if ((await offApi.request('GET', '/metrics')).status !== 404) throw new Error('the server started with KOVA_API_METRICS=off serves /metrics');
        if ((await api.request('GET', '/metrics')).status !== 200) throw new Error('the API server does not serve /metrics');
        log(`metrics: creates with metrics on and off, concurrency 32, 2 × ${n} each`);
        await rate(2000, 32, () => createVia(offApi));
        // Short segments alternated on, off, off, on, ... weigh other load on the machine on both
        // alike; the servers' own CPU time per create (from /proc) says the same with less noise.
        const rates = { on: [] as number[], off: [] as number[] };
        const cpu = { on: 0, off: 0 };
        const order: Array<'on' | 'off'> = ['on', 'off', 'off', 'on', 'on', 'off', 'off', 'on'];
        for (const which of order) {
          const [who, pid] = which === 'on' ? [api, kova.pid!] : [offApi, off.proc.pid!];
          const cpu0 = await cpuSeconds(pid);
          rates[which].push(await rate(n / 4, 32, () => createVia(who)));
          cpu[which] += (await cpuSeconds(pid)) - cpu0;
        }
        const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
        const onRate = mean(rates.on);
        const offRate = mean(rates.off);
        figures.metrics_on_creates_per_s_c32 = round(onRate);
        figures.metrics_off_creates_per_s_c32 = round(offRate);
        figures.metrics_on_cpu_us_per_create = round((cpu.on / n) * 1e6);
        figures.metrics_off_cpu_us_per_create = round((cpu.off / n) * 1e6);
        figures.ratio_metrics_c32 = round(onRate / offRate, 3);
      } finally {
        await offApi.close();
        await stopApiserver(unmetered);
      }
    }

    log(`creating ${LIST_SIZE} instances in namespace list`);
    await rate(LIST_SIZE, 32, () => createOne('list'));
    const listTimes: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      const r = await api.request('GET', '/apis/kova.dev/v1alpha1/namespaces/list/instances');
      const n = JSON.parse(r.body).items.length;
      listTimes.push(performance.now() - t0);
      if (n !== LIST_SIZE) throw new Error(`list returned ${n} items, not ${LIST_SIZE}`);
    }
    // Baseline: the same keys read straight from etcd in the same 1000-key chunks kova uses
    // (etcd replies are capped at 4 MiB), values parsed as JSON.
    const rawT0 = performance.now();
    const prefix = '/registry/kova.dev/instances/list/';
    let start = Buffer.from(prefix);
    const end = Buffer.from(prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1));
    let rawCount = 0;
    for (;;) {
      const r = await raw.kv.range({ key: start, range_end: end, limit: 1000 });
      for (const kv of r.kvs) JSON.parse(kv.value.toString());
      rawCount += r.kvs.length;
      if (!r.more) break;
      start = Buffer.concat([r.kvs[r.kvs.length - 1].key, Buffer.from([0])]);
    }
    const rawListMs = performance.now() - rawT0;
    if (rawCount !== LIST_SIZE) throw new Error(`raw list returned ${rawCount} keys, not ${LIST_SIZE}`);

    log(`watch latency, ${WATCH_SAMPLES} samples`);
    const latencies: number[] = [];
    const sent = new Map<string, number>();
    const rvNow = JSON.parse((await api.request('GET', '/apis/kova.dev/v1alpha1/namespaces/bench/instances?limit=1')).body).metadata.resourceVersion;
    const watchReq = https.request({ host: api.base.hostname, port: api.base.port, path: `/apis/kova.dev/v1alpha1/namespaces/bench/instances?watch=true&resourceVersion=${rvNow}`, agent: new https.Agent({ ca: api.ca }), headers: api.headers });
    let buf = '';
    const done = new Promise<void>((resolve) => {
      watchReq.on('response', (res) => {
        res.on('data', (d) => {
          buf += d;
          let i;
          while ((i = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + 1);
            const ev = JSON.parse(line);
            const name = ev.object?.metadata?.name;
            const t = sent.get(name);
            if (t !== undefined) {
              latencies.push(performance.now() - t);
              sent.delete(name);
              if (latencies.length >= WATCH_SAMPLES) resolve();
            }
          }
        });
      });
    });
    watchReq.end();
    await new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i < WATCH_SAMPLES; i++) {
      const name = `w-${i}`;
      sent.set(name, performance.now());
      await api.request('POST', '/apis/kova.dev/v1alpha1/namespaces/bench/instances', instance(name));
      await new Promise((r) => setTimeout(r, 5));
    }
    await Promise.race([done, new Promise((r) => setTimeout(r, 10_000))]);
    watchReq.destroy();

    const result = {
      ...figures,
      list_10k_ms: round(pct(listTimes, 50)),
      watch_p50_ms: round(pct(latencies, 50), 2),
      watch_p99_ms: round(pct(latencies, 99), 2),
      raw_etcd_list_10k_ms: round(rawListMs),
      list_ratio: round(pct(listTimes, 50) / rawListMs, 2),
      list_items: LIST_SIZE,
      watch_samples: latencies.length,
    };
    console.log(JSON.stringify(result));
  } finally {
    await c?.close();
    await c1?.close();
    await stopApiserver(unmetered);
    await stopApiserver(kova);
    raw.close();
    lean.close();
    await etcd.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
