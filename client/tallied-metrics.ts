// Metrics for the controller runtime's hot path. A prom-client labelled inc() or observe() costs
// 150–600 ns (label hashing, validation); a reconcile moves about ten of them. These keep plain
// numbers per label set, bumped directly, and hand them to the registry only when it is read, in
// prom-client's own sample format, so `/metrics` and getSingleMetric(name).get() see the same
// thing as for any prom-client metric. Label sets are created once per queue or controller.
import { counter, gauge, metricsRegistry } from '../lib/metrics.js';
import type { promClient } from '../lib/metrics.js';

/** One label set's number. */
export interface Cell {
  readonly labels: Record<string, string>;
  n: number;
}

interface Config<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
}

function cellKey<L extends string>(labelNames: readonly L[], labels: Record<L, string>): string {
  return labelNames.map((l) => labels[l]).join('\0');
}

/** A counter or gauge whose label sets are Cells, published into prom-client when read. */
export function talliedMetric<L extends string>(kind: 'counter' | 'gauge', cfg: Config<L>): (labels: Record<L, string>) => Cell {
  const cells = new Map<string, Cell>();
  const collect = function (this: promClient.Counter<L> | promClient.Gauge<L>) {
    this.reset();
    for (const c of cells.values()) {
      if (kind === 'counter') (this as promClient.Counter<L>).inc(c.labels as Record<L, string>, c.n);
      else (this as promClient.Gauge<L>).set(c.labels as Record<L, string>, c.n);
    }
  };
  if (kind === 'counter') counter<L>({ ...cfg, collect });
  else gauge<L>({ ...cfg, collect });
  return (labels) => {
    const key = cellKey(cfg.labelNames, labels);
    let c = cells.get(key);
    if (!c) cells.set(key, (c = { labels, n: 0 }));
    return c;
  };
}

/** One label set of a histogram: observe() is a bucket search and three additions. */
export class HistogramCell {
  /** Non-cumulative counts per bucket; the last one is +Inf. */
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(
    readonly labels: Record<string, string>,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }

  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
    this.count++;
  }
}

/**
 * A histogram (same samples as prom-client's: cumulative `_bucket{le}` with `+Inf`, `_sum`,
 * `_count`), registered once per process under its name.
 */
export function talliedHistogram<L extends string>(cfg: Config<L> & { buckets: readonly number[] }): (labels: Record<L, string>) => HistogramCell {
  const cells = new Map<string, HistogramCell>();
  const existing = metricsRegistry.getSingleMetric(cfg.name) as unknown as { cell?: (labels: Record<L, string>) => HistogramCell } | undefined;
  if (existing?.cell) return existing.cell;
  const bounds = [...cfg.buckets].sort((a, b) => a - b);
  const cell = (labels: Record<L, string>) => {
    const key = cellKey(cfg.labelNames, labels);
    let c = cells.get(key);
    if (!c) cells.set(key, (c = new HistogramCell(labels, bounds)));
    return c;
  };
  const metric = {
    name: cfg.name,
    help: cfg.help,
    type: 'histogram',
    aggregator: 'sum',
    labelNames: cfg.labelNames,
    cell,
    reset: () => cells.clear(),
    async get() {
      const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
      for (const c of cells.values()) {
        let acc = 0;
        bounds.forEach((le, i) => {
          acc += c.counts[i]!;
          values.push({ labels: { ...c.labels, le }, value: acc, metricName: `${cfg.name}_bucket` });
        });
        values.push({ labels: { ...c.labels, le: '+Inf' }, value: c.count, metricName: `${cfg.name}_bucket` });
        values.push({ labels: { ...c.labels }, value: c.sum, metricName: `${cfg.name}_sum` });
        values.push({ labels: { ...c.labels }, value: c.count, metricName: `${cfg.name}_count` });
      }
      return { name: cfg.name, help: cfg.help, type: 'histogram', values, aggregator: 'sum' };
    },
  };
  metricsRegistry.registerMetric(metric as unknown as promClient.Metric<string>);
  return cell;
}
