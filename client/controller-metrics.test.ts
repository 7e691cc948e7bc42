// The controller runtime's metrics against a real API server and etcd: a controller following
// Flavors whose reconcile fails once and then succeeds counts result="error" then "success",
// its queue reports under its name, and a leader's status gauge flips 1 → 0 when the Lease is
// taken from it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FLAVORS } from '../api/kinds/index.js';
import { ApiServer } from '../apiserver/server.js';
import { metricsRegistry } from '../lib/metrics.js';
import { waitFor } from '../testing/etcd.js';
import { plainHttpClient, startTestResourceStore } from '../testing/resource-store.js';
import type { TestResourceStore } from '../testing/resource-store.js';
import { LEASES } from './client.js';
import type { KovaClient } from './client.js';
import { controllerFor } from './controller.js';
import type { Request } from './controller.js';
import { LeaderElector } from './leader.js';
import type { Lease } from './leader.js';
import { microTime } from './leader.js';
import { SharedInformers } from './shared-informers.js';

/** The sample of `metric` (or its `series` suffix) whose labels include `labels`; 0 when absent. */
async function value(metric: string, labels: Record<string, string>, series = ''): Promise<number> {
  const m = metricsRegistry.getSingleMetric(metric);
  assert.ok(m, `${metric} is registered`);
  const values = (await m.get()).values as Array<{ value: number; labels: Record<string, string | number>; metricName?: string }>;
  const s = values.find(
    (v) => (!series || v.metricName === metric + series) && Object.entries(labels).every(([k, want]) => v.labels[k] === want),
  );
  return s?.value ?? 0;
}

let env: TestResourceStore;
let server: ApiServer;
let client: KovaClient;

before(async () => {
  env = await startTestResourceStore();
  server = new ApiServer({ registry: env.registry, resources: env.resources, log: () => undefined });
  const { port } = await server.listen('127.0.0.1', 0);
  client = plainHttpClient(`http://127.0.0.1:${port}`, 'controller-metrics-test');
});

after(async () => {
  client?.close();
  await server?.close();
  await env?.stop();
});

describe('controller metrics', () => {
  it('a reconcile that fails once then succeeds counts error, then success; the queue reports under the controller name', async () => {
    const name = 'flavor-metrics-test';
    const controller = { controller: name };
    const ac = new AbortController();
    const seen: string[] = [];
    let failed = false;
    const reconciler = {
      name,
      async reconcile(req: Request) {
        if (req.name !== 'f1') return;
        seen.push(req.name);
        if (!failed) {
          failed = true;
          throw new Error('injected failure');
        }
      },
    };
    const informers = new SharedInformers(client, () => undefined);
    const handle = await controllerFor(reconciler, { workers: 3, log: () => undefined }).watches(informers.for(FLAVORS)).start(ac.signal);
    try {
      // Every series exists from the start, at 0 (controller-runtime's initMetrics).
      for (const result of ['success', 'error', 'requeue', 'requeue_after']) {
        assert.equal(await value('controller_runtime_reconcile_total', { ...controller, result }), 0, result);
      }
      assert.equal(await value('controller_runtime_max_concurrent_reconciles', controller), 3);

      await client.create(FLAVORS, { apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: { name: 'f1' }, spec: { vcpus: 1, memory: '1Gi', disk: '1Gi' } });
      await waitFor(async () => (await value('controller_runtime_reconcile_total', { ...controller, result: 'success' })) === 1, 'the retry succeeded');
      assert.deepEqual(seen, ['f1', 'f1']);
      assert.equal(await value('controller_runtime_reconcile_total', { ...controller, result: 'error' }), 1);
      assert.equal(await value('controller_runtime_reconcile_errors_total', controller), 1);
      assert.equal(await value('controller_runtime_terminal_reconcile_errors_total', controller), 0);
      assert.equal(await value('controller_runtime_reconcile_time_seconds', controller, '_count'), 2);
      assert.equal(await value('controller_runtime_active_workers', controller), 0);
      // The queue is named after the controller: one add from the event, one from the retry.
      assert.equal(await value('workqueue_adds_total', { name }), 2);
      assert.equal(await value('workqueue_retries_total', { name }), 1);
      assert.equal(await value('workqueue_work_duration_seconds', { name }, '_count'), 2);
      assert.equal(await value('workqueue_depth', { name }), 0);
    } finally {
      ac.abort();
      await handle.done;
    }
  });

  it('leader_election_master_status is 1 while leading and 0 once the Lease is taken', async () => {
    const lease = 'metrics-test-lease';
    const elector = new LeaderElector({ client, name: lease, identity: 'a', leaseDurationS: 3, renewDeadlineS: 2, retryPeriodS: 0.25, log: () => undefined });
    const ac = new AbortController();
    let leading = false;
    const done = elector.run(ac.signal, {
      onStartedLeading: () => {
        leading = true;
      },
    });
    try {
      await waitFor(() => leading, 'a leads');
      assert.equal(await value('leader_election_master_status', { name: lease }), 1);
      // Another process takes the Lease (as if ours had expired): the next renewal finds it held.
      const cur = (await client.get<Lease>(LEASES, 'kova-system', lease))!;
      await client.update(LEASES, { ...cur, spec: { ...cur.spec, holderIdentity: 'b', renewTime: microTime(Date.now()), leaseDurationSeconds: 60 } });
      await done; // run() returns when leadership is lost
      assert.equal(elector.isLeader(), false);
      assert.equal(await value('leader_election_master_status', { name: lease }), 0);
    } finally {
      ac.abort();
      await done;
    }
  });
});
