// Work queue metrics after client-go's util/workqueue/metrics.go: a queue reports through a
// MetricsProvider. The process-wide provider is a no-op until setWorkqueueMetricsProvider() is
// called (client/controller-metrics.ts installs the Prometheus one, as controller-runtime does on
// import), and a queue without a name reports nothing at all, so it costs nothing.
import type { Clock } from './workqueue.js';

export interface GaugeMetric {
  inc(): void;
  dec(): void;
}
export interface SettableGaugeMetric {
  set(value: number): void;
}
export interface CounterMetric {
  inc(): void;
}
export interface HistogramMetric {
  observe(value: number): void;
}

/** Makes the metrics of the queue called `name` (client-go's workqueue.MetricsProvider). */
export interface MetricsProvider {
  newDepthMetric(name: string): GaugeMetric;
  newAddsMetric(name: string): CounterMetric;
  newLatencyMetric(name: string): HistogramMetric;
  newWorkDurationMetric(name: string): HistogramMetric;
  newUnfinishedWorkSecondsMetric(name: string): SettableGaugeMetric;
  newLongestRunningProcessorSecondsMetric(name: string): SettableGaugeMetric;
  newRetriesMetric(name: string): CounterMetric;
  /**
   * Unfinished work is not pushed on a ticker (client-go updates it every 500 ms): the provider
   * asks for it when its gauges are read. Called for each named queue while it runs.
   */
  register?(queue: QueueMetrics): void;
  unregister?(queue: QueueMetrics): void;
}

export const noopMetricsProvider: MetricsProvider = {
  newDepthMetric: () => noop,
  newAddsMetric: () => noop,
  newLatencyMetric: () => noop,
  newWorkDurationMetric: () => noop,
  newUnfinishedWorkSecondsMetric: () => noop,
  newLongestRunningProcessorSecondsMetric: () => noop,
  newRetriesMetric: () => noop,
};
const noop = { inc() {}, dec() {}, set() {}, observe() {} };

let globalProvider: MetricsProvider = noopMetricsProvider;
let providerSet = false;

/** The provider of every queue created from now on. Only the first call has an effect (client-go's SetProvider). */
export function setWorkqueueMetricsProvider(provider: MetricsProvider): void {
  if (providerSet) return;
  providerSet = true;
  globalProvider = provider;
}

/**
 * A named queue's metrics, or undefined (no work at all) when it has no name or the provider
 * is the no-op one. `provider` overrides the process-wide one (tests).
 */
export function newQueueMetrics(name: string | undefined, clock: Clock, provider: MetricsProvider = globalProvider): QueueMetrics | undefined {
  if (!name || provider === noopMetricsProvider) return undefined;
  return new QueueMetrics(name, clock, provider);
}

/** Durations in seconds, from the clock's monotonic reading when it has one (sub-millisecond). */
export class QueueMetrics {
  private readonly depth: GaugeMetric;
  private readonly adds: CounterMetric;
  private readonly latency: HistogramMetric;
  private readonly workDuration: HistogramMetric;
  private readonly retries: CounterMetric;
  private readonly unfinishedWorkSeconds: SettableGaugeMetric;
  private readonly longestRunningProcessor: SettableGaugeMetric;
  /** When each key waiting to be processed was first added (ms). */
  private readonly addTimes = new Map<string, number>();
  /** When each key held by a worker was handed out (ms). */
  private readonly processingStartTimes = new Map<string, number>();
  private readonly now: () => number;

  constructor(
    readonly name: string,
    clock: Clock,
    private readonly provider: MetricsProvider,
  ) {
    this.now = clock.monotonicNow ? () => clock.monotonicNow!() : () => clock.now();
    this.depth = provider.newDepthMetric(name);
    this.adds = provider.newAddsMetric(name);
    this.latency = provider.newLatencyMetric(name);
    this.workDuration = provider.newWorkDurationMetric(name);
    this.retries = provider.newRetriesMetric(name);
    this.unfinishedWorkSeconds = provider.newUnfinishedWorkSecondsMetric(name);
    this.longestRunningProcessor = provider.newLongestRunningProcessorSecondsMetric(name);
    provider.register?.(this);
  }

  /** A key became dirty (waiting, or to be processed again after the worker holding it is done). */
  add(key: string): void {
    this.adds.inc();
    this.depth.inc();
    if (!this.addTimes.has(key)) this.addTimes.set(key, this.now());
  }

  /** A worker took the key. */
  get(key: string): void {
    this.depth.dec();
    const now = this.now();
    this.processingStartTimes.set(key, now);
    const added = this.addTimes.get(key);
    if (added !== undefined) {
      this.latency.observe((now - added) / 1000);
      this.addTimes.delete(key);
    }
  }

  /** The worker is done with the key. */
  done(key: string): void {
    const started = this.processingStartTimes.get(key);
    if (started === undefined) return;
    this.workDuration.observe((this.now() - started) / 1000);
    this.processingStartTimes.delete(key);
  }

  /** addAfter/addRateLimited was called (client-go counts every delayed add as a retry). */
  retry(): void {
    this.retries.inc();
  }

  /** Sum and maximum of how long the keys held by workers have been processed, in seconds. */
  unfinishedWork(): { total: number; longest: number } {
    const now = this.now();
    let total = 0;
    let longest = 0;
    for (const t of this.processingStartTimes.values()) {
      const age = (now - t) / 1000;
      total += age;
      if (age > longest) longest = age;
    }
    return { total, longest };
  }

  /** Sets the unfinished-work gauges (client-go's updateUnfinishedWork). */
  updateUnfinishedWork(): void {
    const { total, longest } = this.unfinishedWork();
    this.unfinishedWorkSeconds.set(total);
    this.longestRunningProcessor.set(longest);
  }

  /** The queue shut down: its unfinished work is no longer reported. */
  stop(): void {
    this.provider.unregister?.(this);
  }
}
