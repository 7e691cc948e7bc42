// Ready-made monitoring against the real Prometheus (Debian's `prometheus` package, which
// hack/install-host-deps.sh installs for CI): `kova up` writes DATA_DIR/monitoring/prometheus.yml;
// Prometheus runs it as it is (a test copy only shortens the scrape interval to 1 s) and its HTTP
// API must answer with every target up, a request rate of the API server and one running
// instance's CPU counter, growing: with simulated hosts, then (slow) with a real QEMU guest.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { KovaClient } from '../client/client.js';
import { createReadySimImage } from '../node-agent/sim-image.js';
import { eventually, startKova } from './harness.js';
import type { Kova } from './harness.js';

const PROMETHEUS = process.env.PROMETHEUS ?? '/usr/bin/prometheus';
const DASHBOARD = fileURLToPath(new URL('../../manifests/monitoring/grafana-dashboard.json', import.meta.url));
// In CI the binary must be there (the install script puts it there): a skip would hide a broken setup.
const skip = !existsSync(PROMETHEUS) && !process.env.CI
  ? `${PROMETHEUS} is not installed (apt-get install prometheus, or bash hack/install-host-deps.sh)` : false;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

interface Sample { metric: Record<string, string>; value: [number, string] }

interface Setup {
  title: string;
  kovaArgs: string[];
  /** Makes the image `tiny` usable in namespace demo (kova up seeds it with libvirt). */
  image?: (admin: KovaClient, kova: Kova) => Promise<void>;
  host: RegExp;
  /** The checks of the generated file and the dashboard run once, in the fast (sim) suite. */
  full: boolean;
}

const SETUPS: Setup[] = [
  { title: 'monitoring: the real Prometheus scrapes kova with the generated configuration', kovaArgs: ['--driver', 'sim', '--sim-hosts', '2', '--api-workers', '2'], image: async (admin, kova) => void (await createReadySimImage(admin, 'demo', 'tiny', kova.dataDir)), host: /^sim-\d$/, full: true },
  // A real QEMU guest: its CPU counter is libvirt's (virsh domstats), scraped from the agent.
  { title: 'slow: monitoring: the real Prometheus scrapes a real VM\'s CPU counter', kovaArgs: [], host: /./, full: false },
];

for (const setup of SETUPS) describe(setup.title, { skip }, () => {
  let kova: Kova;
  let prom: ChildProcess | undefined;
  let promOut = '';
  let promDir: string;
  let api: string;

  const query = async (q: string): Promise<Sample[]> => {
    const res = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(q)}`);
    const body = await res.json() as { status: string; data?: { result: Sample[] }; error?: string };
    if (body.status !== 'success') throw new Error(`${q}: ${body.error}`);
    return body.data!.result;
  };

  before(async () => {
    if (!existsSync(PROMETHEUS)) throw new Error(`${PROMETHEUS} is missing: CI installs it with hack/install-host-deps.sh (Debian package prometheus)`);
    kova = await startKova(setup.kovaArgs);
    // One running instance for the per-VM counters.
    const admin = KovaClient.fromFile(kova.kubeconfig, { userAgent: 'e2e-monitoring' });
    try {
      await kova.k(['create', 'namespace', 'demo']);
      await setup.image?.(admin, kova);
    } finally {
      admin.close();
    }
    await kova.k(['apply', '-f', '-'], { input: 'apiVersion: kova.dev/v1alpha1\nkind: Instance\nmetadata: {name: vm1, namespace: demo}\nspec: {flavor: m1.tiny, image: tiny}\n' });
    await eventually(async () => (await kova.k(['get', 'instance', 'vm1', '-n', 'demo', '-o', 'jsonpath={.status.phase}'])) === 'Running', 180_000, 'vm1 running');

    // The generated file, as kova up wrote it, with a 1 s scrape interval for the test.
    const generated = join(kova.dataDir, 'monitoring', 'prometheus.yml');
    const config = YAML.parse(await readFile(generated, 'utf8')) as { global: Record<string, string>; scrape_configs: Array<Record<string, unknown>> };
    config.global.scrape_interval = '1s';
    config.global.evaluation_interval = '1s';
    promDir = await mkdtemp(join(tmpdir(), 'kova-prometheus-'));
    await writeFile(join(promDir, 'prometheus.yml'), YAML.stringify(config));
    const port = await freePort();
    api = `http://127.0.0.1:${port}`;
    prom = spawn(PROMETHEUS, [
      `--config.file=${join(promDir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(promDir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`, '--storage.tsdb.retention.time=1h',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    prom.on('error', (e) => (promOut += `\n${e.message}`));
    prom.stdout!.on('data', (d) => (promOut = (promOut + d).slice(-20_000)));
    prom.stderr!.on('data', (d) => (promOut = (promOut + d).slice(-20_000)));
    await eventually(async () => (await fetch(`${api}/-/ready`)).ok, 30_000, `Prometheus ready:\n${promOut}`);
  });

  after(async () => {
    if (prom && prom.exitCode === null && prom.signalCode === null) {
      const exited = new Promise((r) => prom!.once('exit', r));
      prom.kill('SIGTERM');
      const t = setTimeout(() => prom!.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
    if (promDir) await rm(promDir, { recursive: true, force: true });
    // A real domain outlives kova (as VMs outlive their agent): delete the instance first.
    await kova?.k(['delete', 'instance', 'vm1', '-n', 'demo', '--ignore-not-found', '--timeout=90s'], { timeoutMs: 100_000 }).catch(() => undefined);
    await kova?.stop();
  });

  if (setup.full) test('the generated configuration: https with the kova CA, a mode-600 token file, one job per process kova up started', async () => {
    const file = join(kova.dataDir, 'monitoring', 'prometheus.yml');
    const config = YAML.parse(await readFile(file, 'utf8')) as { scrape_configs: Array<{ job_name: string; scheme: string; authorization: { credentials_file: string }; tls_config: { ca_file: string } }> };
    assert.deepEqual(config.scrape_configs.map((j) => j.job_name), ['kova-apiserver', 'kova-components']);
    for (const j of config.scrape_configs) {
      assert.equal(j.scheme, 'https');
      assert.equal(j.tls_config.ca_file, join(kova.dataDir, 'pki', 'ca.crt'));
      assert.equal((await stat(j.authorization.credentials_file)).mode & 0o777, 0o600);
    }
  });

  test('every target is up; the API server\'s request rate and a VM\'s CPU counter come back, the counter growing', async () => {
    const up = await eventually(async () => {
      const r = await query('up');
      return r.length === 2 && r.every((s) => s.value[1] === '1') ? r : undefined;
    }, 60_000, `both targets up (${api}/api/v1/targets):\n${promOut.slice(-3000)}`);
    assert.deepEqual(up.map((s) => s.metric.job).sort(), ['kova-apiserver', 'kova-components']);

    const rate = await eventually(async () => {
      const r = await query('sum by (verb) (rate(apiserver_request_total[10s]))');
      return r.some((s) => Number(s.value[1]) > 0) ? r : undefined;
    }, 60_000, 'a non-zero API request rate');
    assert.ok(rate.length > 0);

    const cpu = 'kova_vmi_cpu_usage_seconds_total{namespace="demo", name="vm1"}';
    const first = await eventually(async () => {
      const r = await query(cpu);
      return r.length === 1 ? r[0] : undefined;
    }, 60_000, 'vm1\'s CPU counter');
    assert.match(first.metric.host!, setup.host);
    const grown = await eventually(async () => {
      const r = await query(cpu);
      return r.length === 1 && Number(r[0]!.value[1]) > Number(first.value[1]) ? r[0] : undefined;
    }, 60_000, `vm1's CPU counter to grow beyond ${first.value[1]}`);
    assert.ok(Number(grown.value[1]) > Number(first.value[1]));
    // And as the dashboard asks for it.
    const perVm = await eventually(async () => {
      const r = await query('sum by (namespace, name) (rate(kova_vmi_cpu_usage_seconds_total{namespace="demo"}[10s]))');
      return r.length === 1 && Number(r[0]!.value[1]) > 0 ? r : undefined;
    }, 60_000, 'a CPU rate for vm1');
    assert.equal(perVm[0]!.metric.name, 'vm1');
  });

  if (setup.full) test('the dashboard\'s metrics are all registered by the processes Prometheus scrapes', async () => {
    // What each target exposes, read as Prometheus does (its CA, its token): every # TYPE line,
    // so metrics with no sample yet (no retries so far) count too.
    const config = YAML.parse(await readFile(join(kova.dataDir, 'monitoring', 'prometheus.yml'), 'utf8')) as {
      scrape_configs: Array<{ static_configs: Array<{ targets: string[] }>; authorization: { credentials_file: string }; tls_config: { ca_file: string } }>;
    };
    const types = new Set<string>();
    for (const job of config.scrape_configs) {
      const token = (await readFile(job.authorization.credentials_file, 'utf8')).trim();
      const ca = await readFile(job.tls_config.ca_file);
      for (const target of job.static_configs.flatMap((s) => s.targets)) {
        const text = await new Promise<string>((resolve, reject) => {
          const req = request(`https://${target}/metrics`, { ca, headers: { authorization: `Bearer ${token}` } }, (res) => {
            let b = '';
            res.setEncoding('utf8');
            res.on('data', (d) => (b += d));
            res.on('end', () => (res.statusCode === 200 ? resolve(b) : reject(new Error(`${target}: ${res.statusCode} ${b}`))));
          });
          req.on('error', reject);
          req.end();
        });
        for (const m of text.matchAll(/^# TYPE (\S+) /gm)) types.add(m[1]!);
      }
    }
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Array<{ title: string; targets?: Array<{ expr: string }> }> };
    const missing: string[] = [];
    for (const p of dashboard.panels) {
      for (const t of p.targets ?? []) {
        for (const m of t.expr.replace(/"[^"]*"/g, '').matchAll(/([a-z_:][a-z0-9_:]*)\{/g)) {
          const name = types.has(m[1]!) ? m[1]! : m[1]!.replace(/_(bucket|sum|count)$/, '');
          if (!types.has(name)) missing.push(`${p.title}: ${m[1]}`);
        }
      }
    }
    assert.deepEqual(missing, []);
  });
});
