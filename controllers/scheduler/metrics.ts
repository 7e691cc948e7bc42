// kube-scheduler's scheduling attempt metrics (pkg/scheduler/metrics), same names, labels and
// buckets: one attempt per reconcile of an unbound instance, by result (scheduled,
// unschedulable, error) and profile.
import { exponentialBuckets } from '../../client/controller-metrics.js';
import { counter, histogram } from '../../lib/metrics.js';

/** kova has one scheduling profile; it carries kube-scheduler's default name so its dashboards apply. */
export const SCHEDULER_PROFILE = 'default-scheduler';

export type AttemptResult = 'scheduled' | 'unschedulable' | 'error';

const attempts = counter({
  name: 'scheduler_schedule_attempts_total',
  help: "Number of attempts to schedule instances, by the result. 'unschedulable' means an instance could not be scheduled, while 'error' means an internal scheduler problem.",
  labelNames: ['result', 'profile'] as const,
});
const attemptDuration = histogram({
  name: 'scheduler_scheduling_attempt_duration_seconds',
  help: 'Scheduling attempt latency in seconds (scheduling algorithm + binding)',
  labelNames: ['result', 'profile'] as const,
  buckets: exponentialBuckets(0.001, 2, 15),
});

/** Counts one attempt that began at `startMs` (performance.now()). */
export function observeAttempt(result: AttemptResult, startMs: number, profile = SCHEDULER_PROFILE): void {
  const labels = { result, profile };
  attempts.inc(labels);
  attemptDuration.observe(labels, (performance.now() - startMs) / 1000);
}
