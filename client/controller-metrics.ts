// The controller runtime's Prometheus metrics, with controller-runtime's names, labels and
// buckets: the work queue metrics (pkg/metrics/workqueue.go, the `name` label of
// k8s.io/component-base's workqueue metrics) and the reconcile metrics
// (pkg/internal/controller/metrics). Loading this module installs the Prometheus work queue
// provider for the process, as importing controller-runtime does. Labels are controller and queue
// names only: never object names.
import { gauge } from '../lib/metrics.js';
import type { promClient } from '../lib/metrics.js';
import { talliedHistogram, talliedMetric as tallied } from './tallied-metrics.js';
import type { Cell } from './tallied-metrics.js';
import { setWorkqueueMetricsProvider } from './workqueue-metrics.js';
import type { MetricsProvider, QueueMetrics } from './workqueue-metrics.js';

/** prometheus.ExponentialBuckets(start, factor, count). */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => start * factor ** i);
}

// controller-runtime: ExponentialBuckets(10e-9, 10, 12): 10 ns … 1000 s.
const QUEUE_BUCKETS = exponentialBuckets(10e-9, 10, 12);

const depth = tallied('gauge', { name: 'workqueue_depth', help: 'Current depth of workqueue', labelNames: ['name'] as const });
const adds = tallied('counter', { name: 'workqueue_adds_total', help: 'Total number of adds handled by workqueue', labelNames: ['name'] as const });
const latency = talliedHistogram({
  name: 'workqueue_queue_duration_seconds',
  help: 'How long in seconds an item stays in workqueue before being requested',
  labelNames: ['name'] as const,
  buckets: QUEUE_BUCKETS,
});
const workDuration = talliedHistogram({
  name: 'workqueue_work_duration_seconds',
  help: 'How long in seconds processing an item from workqueue takes.',
  labelNames: ['name'] as const,
  buckets: QUEUE_BUCKETS,
});
const retries = tallied('counter', { name: 'workqueue_retries_total', help: 'Total number of retries handled by workqueue', labelNames: ['name'] as const });

/** The running named queues, by name (names stay once seen, so a stopped queue reads 0). */
const liveQueues = new Map<string, Set<QueueMetrics>>();

/**
 * Computed when read, over every running queue of that name (client-go sets them every 500 ms
 * from each queue; queues sharing a name share one series, their work summed).
 */
function collectUnfinished(which: 'total' | 'longest'): (this: promClient.Gauge<'name'>) => void {
  return function () {
    for (const [name, queues] of liveQueues) {
      let v = 0;
      for (const q of queues) {
        const w = q.unfinishedWork();
        v = which === 'total' ? v + w.total : Math.max(v, w.longest);
      }
      this.set({ name }, v);
    }
  };
}

gauge({
  name: 'workqueue_unfinished_work_seconds',
  help:
    'How many seconds of work has been done that is in progress and hasn\'t been observed by work_duration. ' +
    'Large values indicate stuck threads. One can deduce the number of stuck threads by observing the rate at which this increases.',
  labelNames: ['name'] as const,
  collect: collectUnfinished('total'),
});
gauge({
  name: 'workqueue_longest_running_processor_seconds',
  help: 'How many seconds has the longest running processor for workqueue been running.',
  labelNames: ['name'] as const,
  collect: collectUnfinished('longest'),
});

/** Reports into the process registry; label children are made once per queue. */
export const prometheusWorkqueueMetricsProvider: MetricsProvider = {
  newDepthMetric: (name) => {
    const c = depth({ name });
    return { inc: () => void c.n++, dec: () => void c.n-- };
  },
  newAddsMetric: (name) => {
    const c = adds({ name });
    return { inc: () => void c.n++ };
  },
  newLatencyMetric: (name) => latency({ name }),
  newWorkDurationMetric: (name) => workDuration({ name }),
  // Set on read by collectUnfinished, not pushed by the queue.
  newUnfinishedWorkSecondsMetric: () => ({ set() {} }),
  newLongestRunningProcessorSecondsMetric: () => ({ set() {} }),
  newRetriesMetric: (name) => {
    const c = retries({ name });
    return { inc: () => void c.n++ };
  },
  register(q) {
    let set = liveQueues.get(q.name);
    if (!set) liveQueues.set(q.name, (set = new Set()));
    set.add(q);
  },
  unregister(q) {
    liveQueues.get(q.name)?.delete(q);
  },
};

setWorkqueueMetricsProvider(prometheusWorkqueueMetricsProvider);

// ---- reconciles (pkg/internal/controller/metrics) ----

export type ReconcileResult = 'success' | 'error' | 'requeue' | 'requeue_after';
/** A result, or a TerminalError: result "error", also counted as terminal. */
export type ReconcileOutcome = ReconcileResult | 'terminal_error';
const RESULTS: readonly ReconcileResult[] = ['success', 'error', 'requeue', 'requeue_after'];

const reconcileTotal = tallied('counter', {
  name: 'controller_runtime_reconcile_total',
  help: 'Total number of reconciliations per controller',
  labelNames: ['controller', 'result'] as const,
});
const reconcileErrors = tallied('counter', {
  name: 'controller_runtime_reconcile_errors_total',
  help: 'Total number of reconciliation errors per controller',
  labelNames: ['controller'] as const,
});
const terminalReconcileErrors = tallied('counter', {
  name: 'controller_runtime_terminal_reconcile_errors_total',
  help: 'Total number of terminal reconciliation errors per controller',
  labelNames: ['controller'] as const,
});
const reconcileTime = talliedHistogram({
  name: 'controller_runtime_reconcile_time_seconds',
  help: 'Length of time per reconciliation per controller',
  labelNames: ['controller'] as const,
  buckets: [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0,
    1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60,
  ],
});
const maxConcurrentReconciles = tallied('gauge', {
  name: 'controller_runtime_max_concurrent_reconciles',
  help: 'Maximum number of concurrent reconciles per controller',
  labelNames: ['controller'] as const,
});
const activeWorkers = tallied('gauge', {
  name: 'controller_runtime_active_workers',
  help: 'Number of currently used workers per controller',
  labelNames: ['controller'] as const,
});

/** One controller's reconcile metrics. Every series exists from the start at 0, as controller-runtime's initMetrics makes them. */
export class ReconcileMetrics {
  private readonly total: Record<ReconcileResult, Cell>;
  private readonly errors: Cell;
  private readonly terminal: Cell;
  private readonly active: Cell;
  private readonly maxConcurrent: Cell;
  private readonly time: { observe(v: number): void };

  constructor(readonly controller: string) {
    this.total = Object.fromEntries(RESULTS.map((result) => [result, reconcileTotal({ controller, result })])) as Record<ReconcileResult, Cell>;
    this.errors = reconcileErrors({ controller });
    this.terminal = terminalReconcileErrors({ controller });
    this.active = activeWorkers({ controller });
    this.maxConcurrent = maxConcurrentReconciles({ controller });
    this.time = reconcileTime({ controller });
  }

  started(workers: number): void {
    this.maxConcurrent.n = workers;
  }

  workerBusy(): void {
    this.active.n++;
  }

  workerIdle(): void {
    this.active.n--;
  }

  /** One reconcile ended with `outcome` after `seconds`. */
  reconciled(outcome: ReconcileOutcome, seconds: number): void {
    this.time.observe(seconds);
    const result = outcome === 'terminal_error' ? 'error' : outcome;
    this.total[result].n++;
    if (result === 'error') this.errors.n++;
    if (outcome === 'terminal_error') this.terminal.n++;
  }
}
