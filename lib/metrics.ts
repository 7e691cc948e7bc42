// Prometheus metrics of a kova process, with prom-client. One registry per process (prom-client's
// default one, as controller-runtime has one global metrics.Registry): the API server, the
// controllers and every agent of a process register into it, and `/metrics` serves it. node:cluster
// API workers are aggregated by the primary (prom-client's AggregatorRegistry works on this one).
//
// Metrics are defined once per process by name: `counter()` and friends return the one already
// registered under that name, so a module that builds its metrics in a constructor (tests start
// several API servers or agents in one process) shares them instead of failing to register twice.
import client from 'prom-client';
import type { CounterConfiguration, GaugeConfiguration, HistogramConfiguration, Metric } from 'prom-client';

export { client as promClient };

/** The process-wide registry `/metrics` serves. */
export const metricsRegistry = client.register;

function once<T extends Metric<string>>(name: string, make: () => T): T {
  return (metricsRegistry.getSingleMetric(name) as T | undefined) ?? make();
}

export function counter<L extends string>(cfg: CounterConfiguration<L>): client.Counter<L> {
  return once(cfg.name, () => new client.Counter<L>({ ...cfg, registers: [metricsRegistry] }));
}

export function gauge<L extends string>(cfg: GaugeConfiguration<L>): client.Gauge<L> {
  return once(cfg.name, () => new client.Gauge<L>({ ...cfg, registers: [metricsRegistry] }));
}

export function histogram<L extends string>(cfg: HistogramConfiguration<L>): client.Histogram<L> {
  return once(cfg.name, () => new client.Histogram<L>({ ...cfg, registers: [metricsRegistry] }));
}

let processMetrics = false;

/** process_cpu_seconds_total, process_resident_memory_bytes, nodejs_* (once per process). */
export function collectProcessMetrics(): void {
  if (processMetrics) return;
  processMetrics = true;
  client.collectDefaultMetrics({ register: metricsRegistry });
}

/** The text exposition of this process's registry, with its content type. */
export async function exposition(): Promise<{ contentType: string; body: string }> {
  return { contentType: metricsRegistry.contentType, body: await metricsRegistry.metrics() };
}
