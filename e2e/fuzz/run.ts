// `npm run fuzz -- [--seed N] [--requests N] [--seconds S] [--concurrency N] [--api-workers N]
//                  [--max-rss-mb N] [--max-growth-mb N] [--only I] [--stats]`
// Fuzzes a fresh etcd + API server; prints findings with reproductions, and as its last line one
// JSON object with the counts. Exits 1 on any finding.
import { parseArgs } from 'node:util';
import { formatFindings, fuzz, startTarget } from './fuzzer.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    requests: { type: 'string', default: '1000000' },
    seconds: { type: 'string', default: '60' },
    concurrency: { type: 'string', default: '8' },
    'api-workers': { type: 'string', default: '2' },
    'max-rss-mb': { type: 'string', default: '1024' },
    'max-growth-mb': { type: 'string', default: '250' },
    only: { type: 'string' },
    stats: { type: 'boolean', default: false },
  },
});

function num(name: keyof typeof values): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a whole number, got ${v}`);
  return n;
}

const seed = num('seed') ?? Math.floor(Math.random() * 2 ** 31);
process.stdout.write(`fuzz: seed ${seed} (reproduce with --seed ${seed})\n`);
const target = await startTarget(num('api-workers'));
let code = 1;
try {
  const result = await fuzz(target, {
    seed,
    requests: num('requests')!,
    seconds: num('seconds')!,
    concurrency: num('concurrency'),
    maxRssMb: num('max-rss-mb'),
    maxGrowthMb: num('max-growth-mb'),
    only: num('only'),
    log: (l) => process.stdout.write(`${l}\n`),
  });
  process.stdout.write(`${formatFindings(result)}\n`);
  if (values.stats) for (const [k, n] of Object.entries(result.byTemplate).sort()) process.stdout.write(`${String(n).padStart(6)} ${k}\n`);
  const { findings, byTemplate: _, ...counts } = result;
  process.stdout.write(`${JSON.stringify({ ...counts, findings: findings.map((f) => ({ signature: f.signature, count: f.count })) })}\n`);
  code = findings.length ? 1 : 0;
} finally {
  await target.stop();
}
process.exit(code);
