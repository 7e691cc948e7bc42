// Fault injection benchmark: `npm run bench:chaos`. A kova of separate processes (a 3-member
// etcd, an API server, two leader-elected `kova controllers`, one sim `kova agent` per host)
// creates and deletes instances through the API while etcd members are SIGKILLed and
// SIGSTOPped, and the API server, the leading controllers and node agents are SIGKILLed, at
// seeded random points (testing/chaos.ts). The invariants (each the count of what it names,
// all should be 0) and the time from the last fault to convergence (goal <= 30 s) are
// printed; the last output line is one JSON object.
//
//   node dist/bench/chaos.js [--hosts 20] [--instances 1000] [--waves 4] [--seed N]
//     [--stall-ms 20000] [--rounds 2] [--gap-min-ms 500] [--gap-max-ms 4000] [--wave-ms 8000]
//     [--converge-timeout-s 180] [--etcd-plain] [--keep]
//   --rounds 0: a baseline without faults.
import { parseArgs } from 'node:util';
import { runChaos } from '../testing/chaos.js';

const { values } = parseArgs({
  options: {
    hosts: { type: 'string', default: '20' },
    instances: { type: 'string', default: '1000' },
    waves: { type: 'string', default: '4' },
    seed: { type: 'string' },
    'stall-ms': { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '2' },
    'gap-min-ms': { type: 'string', default: '500' },
    'gap-max-ms': { type: 'string', default: '4000' },
    'converge-timeout-s': { type: 'string', default: '180' },
    /** Each wave's creates (or deletes) are spread over this long, so faults land among them. */
    'wave-ms': { type: 'string', default: '8000' },
    /** etcd on plain HTTP instead of https with client certificates (the default, as in production). */
    'etcd-plain': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
  },
});
const int = (name: keyof typeof values, min: number): number => {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got ${values[name]}`);
  return n;
};
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : int('seed', 0);
process.stderr.write(`bench:chaos: seed ${seed} (replay with --seed ${seed})\n`);
const result = await runChaos({
  hosts: int('hosts', 1),
  instances: int('instances', 1),
  waves: int('waves', 1),
  seed,
  stallMs: int('stall-ms', 0),
  rounds: int('rounds', 0),
  gapMs: [int('gap-min-ms', 0), int('gap-max-ms', 0)],
  convergeTimeoutMs: int('converge-timeout-s', 1) * 1000,
  waveMs: int('wave-ms', 0),
  etcdTls: !values['etcd-plain'],
  keep: values.keep,
  log: (m) => process.stderr.write(`bench:chaos: ${m}\n`),
});
const { left, ...flat } = result;
process.stdout.write(`${JSON.stringify({ ...flat, left })}\n`);
// A broken invariant fails the run (the figures above say which).
const broken = ['instances_lost', 'instances_duplicated', 'domains_without_instance', 'instances_with_two_domains', 'ips_allocated_twice', 'macs_allocated_twice', 'hosts_over_allocated', 'objects_left'] as const;
if (broken.some((k) => result[k] !== 0)) process.exitCode = 1;
