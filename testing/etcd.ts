// Test helper: a throwaway etcd in a temp dir. (Not named *.test.ts / test-*.ts on purpose:
// `node --test dir/` would pick it up as a test file.)
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEtcd, type EtcdOptions, type EtcdProcess } from '../store/etcd-process.js';

export interface TestEtcd {
  etcd: EtcdProcess;
  endpoints: string[];
  dataDir: string;
  /** Stops etcd and removes its data dir. */
  cleanup(): Promise<void>;
}

export async function startTestEtcd(opts: Partial<EtcdOptions> = {}): Promise<TestEtcd> {
  const dataDir = await mkdtemp(join(tmpdir(), 'kova-etcd-'));
  try {
    const etcd = await startEtcd({ ...opts, dataDir });
    return {
      etcd,
      endpoints: etcd.endpoints,
      dataDir,
      cleanup: async () => {
        await etcd.stop();
        await rm(dataDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
}

/** Polls `cond` until it is truthy or `timeoutMs` passes (then throws with `what`). */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
