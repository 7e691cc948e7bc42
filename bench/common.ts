// Shared pieces of the benchmarks: a fixed-concurrency load loop, percentiles, rounding, and
// the raw etcd put baseline every benchmark reports its figures against.
import type { Etcd3 } from 'etcd3';
import type { EtcdClient } from '../store/etcd/client.js';

/** Runs `total` tasks with `concurrency` workers; returns ops/s. */
export async function rate(total: number, concurrency: number, task: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) await task(next++);
  }));
  return total / ((performance.now() - t0) / 1000);
}

export const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : 0;
};

export const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;

/** The median: the middle value, or the mean of the two middle ones for an even count (NaN for none). */
export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Raw etcd puts/s of `value` from this process at `concurrency`, under `prefix`. */
export function rawEtcdPutRate(raw: Etcd3, prefix: string, n: number, concurrency: number, value: string): Promise<number> {
  return rate(n, concurrency, async (i) => {
    await raw.put(`${prefix}${i}`).value(value);
  });
}

/**
 * The same through kova's own lean gRPC client (store/etcd/client.ts), which the API server uses
 * for reads and writes: the fastest this process can put, reported next to the etcd3 figure.
 */
export function leanEtcdPutRate(kv: EtcdClient, prefix: string, n: number, concurrency: number, value: string): Promise<number> {
  const v = Buffer.from(value);
  return rate(n, concurrency, async (i) => {
    await kv.put({ key: Buffer.from(`${prefix}${i}`), value: v });
  });
}
