// kova's etcd is locked (issue #14 item 2): the local etcd of `kova up` asks for a client
// certificate from the kova CA, whose key other users cannot read; external TLS etcd is reached
// through kube-apiserver's flag names; bad TLS input is a quick, clear error at start.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ensureEtcdPki } from '../apiserver/pki.js';
import { procInfo } from '../cli/instance-lock.js';
import { startEtcd } from '../store/etcd-process.js';
import { startTestEtcd, startTestEtcdCluster, type TestEtcdCluster } from '../testing/etcd.js';
import { eventually, KUBECTL, runKova, spawnKova, startKova, type Kova } from './harness.js';

const run = promisify(execFile);

/** `etcdctl get --prefix /registry` as user nobody: must fail, whatever it is given. */
async function nobodyReads(endpoint: string, certArgs: string[] = []): Promise<{ ok: boolean; stderr: string }> {
  try {
    await run('runuser', ['-u', 'nobody', '--', 'env', 'ETCDCTL_API=3', 'etcdctl', '--endpoints', endpoint, '--dial-timeout', '2s',
      '--command-timeout', '3s', ...certArgs, 'get', '--prefix', '/registry', '--keys-only'], { timeout: 20_000 });
    return { ok: true, stderr: '' };
  } catch (e) {
    return { ok: false, stderr: String((e as { stderr?: string }).stderr) };
  }
}

/** The etcd client URL and argv of the etcd kova up recorded in its lock file. */
async function etcdOf(kova: Kova): Promise<{ endpoint: string; argv: string[] }> {
  const lock = JSON.parse(await readFile(join(kova.dataDir, 'kova.pid'), 'utf8')) as { children: { etcd?: { pid: number } } };
  const argv = procInfo(lock.children.etcd!.pid)!.cmdline;
  return { endpoint: argv[argv.indexOf('--listen-client-urls') + 1]!, argv };
}

describe('kova up: etcd with client-certificate authentication', () => {
  let kova: Kova;
  before(async () => {
    // Two API workers: they connect to etcd with the same TLS files as the primary.
    kova = await startKova(['--driver', 'sim', '--no-agents', '--no-controllers', '--api-workers', '2', '--tls-san', 'kova-lb.example.test,10.9.9.9']);
  });
  after(async () => kova?.stop());

  it('serves kubectl, and another local user cannot read etcd', async () => {
    await kova.k(['create', 'configmap', 'secretish', '--from-literal=k=v']);
    assert.match(await kova.k(['get', 'configmap', 'secretish', '-o', 'jsonpath={.data.k}']), /^v$/);

    const { endpoint, argv } = await etcdOf(kova);
    assert.match(endpoint, /^https:\/\/127\.0\.0\.1:\d+$/);
    for (const flag of ['--client-cert-auth', '--peer-client-cert-auth']) assert.ok(argv.includes(flag), flag);
    assert.ok(!argv.some((a) => a.includes('PRIVATE KEY')), 'file paths only on the command line');

    const pki = join(kova.dataDir, 'pki');
    for (const f of ['etcd/server.key', 'etcd/peer.key', 'etcd/client.key', 'ca.key']) {
      assert.equal((await stat(join(pki, f))).mode & 0o777, 0o600, f);
    }
    // Without a certificate, with kova's own files (unreadable to nobody), over plain HTTP.
    const bare = await nobodyReads(endpoint);
    assert.equal(bare.ok, false, 'no client certificate');
    const stolen = await nobodyReads(endpoint, ['--cacert', join(pki, 'ca.crt'), '--cert', join(pki, 'etcd/client.crt'), '--key', join(pki, 'etcd/client.key')]);
    assert.equal(stolen.ok, false);
    assert.match(stolen.stderr, /permission denied/);
    assert.equal((await nobodyReads(endpoint.replace('https:', 'http:'))).ok, false, 'plain HTTP');

    // The control: root with kova's client certificate does read it.
    const { stdout } = await run('etcdctl', ['--endpoints', endpoint, '--cacert', join(pki, 'ca.crt'), '--cert', join(pki, 'etcd/client.crt'),
      '--key', join(pki, 'etcd/client.key'), 'get', '--prefix', '/registry', '--keys-only'], { env: { ...process.env, ETCDCTL_API: '3' } });
    assert.match(stdout, /secretish/);
  });

  it('--tls-san puts a load balancer name in the serving certificate', async () => {
    const san = new X509Certificate(await readFile(join(kova.dataDir, 'pki', 'server.crt'))).subjectAltName ?? '';
    assert.match(san, /DNS:kova-lb\.example\.test/);
    assert.match(san, /IP Address:10\.9\.9\.9/);
    await assert.rejects(runKova(['up', '--data-dir', join(kova.dataDir, 'x'), '--tls-san', 'bad name']), /--tls-san: "bad name" is neither an IP address nor a DNS name/);
  });
});

describe('kova up on the data dir of an older kova (plain-HTTP etcd)', () => {
  it('restarts its etcd with TLS and serves the objects it held', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kova-etcd-upgrade-e2e-'));
    try {
      // What an older kova left: etcd data in DIR/etcd written over plain HTTP.
      const old = await startEtcd({ dataDir: join(dir, 'etcd') });
      const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'legacy', namespace: 'default', uid: '4f1c0b8e-0000-4000-8000-000000000001', creationTimestamp: '2026-01-01T00:00:00Z' }, data: { from: 'old-kova' } };
      await run('etcdctl', ['--endpoints', old.endpoints[0]!, 'put', '/registry/configmaps/default/legacy', JSON.stringify(cm)], { env: { ...process.env, ETCDCTL_API: '3' } });
      await old.stop();
      const kova = await startKova(['--driver', 'sim', '--no-agents', '--no-controllers', '--api-workers', '1'], 60_000, { dataDir: dir });
      try {
        assert.equal(await kova.k(['get', 'configmap', 'legacy', '-o', 'jsonpath={.data.from}']), 'old-kova');
        assert.match((await etcdOf(kova)).endpoint, /^https:/);
      } finally {
        await kova.stop();
      }
      // Switching to several members would start an empty etcd beside the data: refused.
      await assert.rejects(runKova(['up', '--data-dir', dir, '--listen', '127.0.0.1:0', '--driver', 'sim', '--etcd-members', '3']),
        /holds a single-member local etcd: start without --etcd-members/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('kova up --etcd-members 3', () => {
  it('runs three TLS members; kubectl keeps working with one of them killed', async () => {
    const kova = await startKova(['--driver', 'sim', '--no-agents', '--no-controllers', '--api-workers', '1', '--etcd-members', '3']);
    try {
      const layout = JSON.parse(await readFile(join(kova.dataDir, 'etcd', 'cluster.json'), 'utf8')) as { members: Array<{ clientPort: number }> };
      assert.equal(layout.members.length, 3);
      await kova.k(['create', 'configmap', 'before']);
      // Kill the leader (found by its data dir): the others keep a majority and elect another.
      const pki = join(kova.dataDir, 'pki');
      const { stdout: st } = await run('etcdctl', ['--endpoints', layout.members.map((m) => `https://127.0.0.1:${m.clientPort}`).join(','), '--cacert', join(pki, 'ca.crt'),
        '--cert', join(pki, 'etcd/client.crt'), '--key', join(pki, 'etcd/client.key'), 'endpoint', 'status', '-w', 'json'], { env: { ...process.env, ETCDCTL_API: '3' } });
      const status = JSON.parse(st) as Array<{ Endpoint: string; Status: { header: { member_id: number }; leader: number } }>;
      const leaderPort = Number(new URL(status.find((s) => s.Status.leader === s.Status.header.member_id)!.Endpoint).port);
      const i = layout.members.findIndex((m) => m.clientPort === leaderPort);
      const { stdout } = await run('pgrep', ['-f', '--', `--data-dir ${join(kova.dataDir, 'etcd', `member-${i}`)} `]);
      const pid = Number(stdout.trim().split('\n')[0]);
      process.kill(pid, 'SIGKILL');
      // etcd itself may drop a write racing the election ("request timed out"): kubectl is
      // retried as a client would, and an AlreadyExists means an earlier try landed.
      await eventually(async () => {
        const r = await kova.kubectl(['create', 'configmap', 'during'], { timeoutMs: 20_000 });
        return r.code === 0 || /AlreadyExists|already exists/.test(r.stderr);
      }, 30_000, 'a write after the leader died');
      assert.match(await kova.k(['get', 'configmaps', '-o', 'name']), /before[\s\S]*during/);
    } finally {
      await kova.stop();
    }
  });
});

describe('kova apiserver: external etcd with --etcd-cafile/--etcd-certfile/--etcd-keyfile', () => {
  let etcd: TestEtcdCluster;
  let dir: string;
  before(async () => {
    etcd = await startTestEtcdCluster({ members: 1, tls: true });
    dir = await mkdtemp(join(tmpdir(), 'kova-etcd-tls-e2e-'));
  });
  after(async () => {
    await etcd?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });
  const flags = (over: Record<string, string> = {}) => {
    const f: Record<string, string> = {
      '--etcd-endpoints': etcd.endpoints.join(','), '--etcd-cafile': etcd.tls!.caFile,
      '--etcd-certfile': etcd.tls!.certFile, '--etcd-keyfile': etcd.tls!.keyFile, ...over,
    };
    return Object.entries(f).filter(([, v]) => v !== '').flat();
  };
  /** kova apiserver must exit non-zero within `ms` with a message matching `re`. */
  const failsWith = async (args: string[], re: RegExp, ms = 20_000) => {
    const started = Date.now();
    await assert.rejects(runKova(['apiserver', '--data-dir', join(dir, 'bad'), '--listen', '127.0.0.1:0', ...args], ms), (e: Error) => {
      assert.match(e.message, re);
      return true;
    });
    return Date.now() - started;
  };

  it('serves kubectl with the etcd it is given', async () => {
    const k = spawnKova(['apiserver', '--data-dir', join(dir, 'ok'), '--listen', '127.0.0.1:0', '--api-workers', '2', ...flags()]);
    try {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`not ready:\n${k.output()}`)), 60_000);
        k.proc.stdout!.on('data', () => /ready: API server/.test(k.output()) && (clearTimeout(t), resolve()));
        k.proc.once('exit', (c) => (clearTimeout(t), reject(new Error(`exited ${c}:\n${k.output()}`))));
      });
      const kc = ['--kubeconfig', join(dir, 'ok', 'kubeconfig'), '--cache-dir', join(dir, 'kcache')];
      await run(KUBECTL, [...kc, 'create', 'configmap', 'external']);
      const { stdout } = await run('etcdctl', ['--endpoints', etcd.endpoints[0]!, '--cacert', etcd.tls!.caFile, '--cert', etcd.tls!.certFile,
        '--key', etcd.tls!.keyFile, 'get', '--prefix', '/registry', '--keys-only'], { env: { ...process.env, ETCDCTL_API: '3' } });
      assert.match(stdout, /external/, 'the object is in the external etcd');
    } finally {
      k.proc.kill('SIGTERM');
      await new Promise((r) => (k.proc.exitCode !== null ? r(null) : k.proc.once('exit', r)));
    }
  });

  it('a missing, mismatched or wrong file is a quick error naming it', async () => {
    await failsWith(flags({ '--etcd-cafile': join(dir, 'nope.crt') }), new RegExp(`--etcd-cafile ${join(dir, 'nope.crt')}: no such file`));
    await failsWith(flags({ '--etcd-keyfile': '' }), /--etcd-certfile and --etcd-keyfile go together/);
    // A key that is not the certificate's.
    await failsWith(flags({ '--etcd-keyfile': etcd.tls!.server.peerKeyFile }), new RegExp(`--etcd-certfile ${etcd.tls!.certFile} and --etcd-keyfile ${etcd.tls!.server.peerKeyFile} are not a certificate and its key`));
    await writeFile(join(dir, 'garbage.crt'), 'not a certificate\n');
    await failsWith(flags({ '--etcd-cafile': join(dir, 'garbage.crt') }), /--etcd-cafile \S+garbage\.crt: not a PEM certificate/);
    // Files of another CA: etcd refuses the certificate, kova refuses etcd's.
    const other = await ensureEtcdPki(join(dir, 'other-pki'));
    const ep = etcd.endpoints[0]!.replace(/\./g, '\\.');
    await failsWith(flags({ '--etcd-cafile': other.caFile }), new RegExp(`etcd ${ep}: certificate signed by unknown authority.*check --etcd-cafile`));
    await failsWith(flags({ '--etcd-certfile': other.clientCertFile, '--etcd-keyfile': other.clientKeyFile }), new RegExp(`etcd ${ep} refused the TLS handshake.*check --etcd-certfile and --etcd-keyfile`));
    await failsWith(flags({ '--etcd-certfile': '', '--etcd-keyfile': '' }), new RegExp(`etcd ${ep} refused the TLS handshake`), 5_000);
    // TLS flags for the local etcd make no sense.
    await failsWith(['--etcd-cafile', etcd.tls!.caFile], /--etcd-cafile need --etcd-endpoints/);
    await failsWith(['--etcd-members', '2'], /--etcd-members must be 1, 3 or 5/);
    await failsWith(['--etcd-keepalive-time', '0'], /--etcd-keepalive-time must be a number of seconds above 0/);
  });

  it('endpoints of two different clusters, or none answering, are a quick error', async () => {
    const plainA = await startTestEtcd();
    const plainB = await startTestEtcd();
    try {
      await failsWith(['--etcd-endpoints', `${plainA.endpoints[0]},${plainB.endpoints[0]}`], /etcd endpoints belong to different clusters/);
    } finally {
      await plainA.cleanup();
      await plainB.cleanup();
    }
    await failsWith(['--etcd-endpoints', 'http://127.0.0.1:9'], /etcd http:\/\/127\.0\.0\.1:9: connection refused/);
    await failsWith(['--etcd-endpoints', 'etcd-1:2379'], /--etcd-endpoints: "etcd-1:2379" is not an http:\/\/ or https:\/\/ URL/);
  });
});

