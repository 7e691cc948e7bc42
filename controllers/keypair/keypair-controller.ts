// The KeyPair controller: computes status.fingerprint ("SHA256:…", as ssh-keygen -l) from
// spec.publicKey, and a Ready condition that says whether the key parses.
import type { KObject } from '../../api/types.js';
import { KEYPAIRS } from '../../client/client.js';
import type { KovaClient } from '../../client/client.js';
import { Controller, errorMessage } from '../../client/controller.js';
import type { Reconciler, Request } from '../../client/controller.js';
import { EventRecorder } from '../../client/events.js';
import { Informer } from '../../client/informer.js';
import { SharedInformers } from '../../client/shared-informers.js';
import { hasCondition, setCondition } from '../../api/conditions.js';
import type { Condition } from '../../api/conditions.js';
import { sshFingerprint } from './fingerprint.js';

type KeyPairObject = KObject & { spec?: { publicKey?: string }; status?: { fingerprint?: string; observedGeneration?: number; conditions?: Condition[] } };

export interface KeyPairStatusPlan {
  fingerprint?: string;
  cond: Omit<Condition, 'lastTransitionTime'>;
}

/** What the status of a KeyPair with this key should say. */
export function planKeyPairStatus(publicKey: string | undefined, generation?: number): KeyPairStatusPlan {
  try {
    const fingerprint = sshFingerprint(publicKey ?? '');
    return { fingerprint, cond: { type: 'Ready', status: 'True', reason: 'Valid', message: '', observedGeneration: generation } };
  } catch (e) {
    return { cond: { type: 'Ready', status: 'False', reason: 'InvalidKey', message: `spec.publicKey: ${errorMessage(e)}`, observedGeneration: generation } };
  }
}

class KeyPairReconciler implements Reconciler {
  readonly name = 'keypair';
  constructor(
    private readonly client: KovaClient,
    private readonly keypairs: Informer<KeyPairObject>,
    private readonly recorder: EventRecorder,
  ) {}

  async reconcile(req: Request): Promise<void> {
    const kp = this.keypairs.get(req.namespace, req.name);
    if (!kp || kp.metadata.deletionTimestamp) return;
    const gen = kp.metadata.generation;
    const plan = planKeyPairStatus(kp.spec?.publicKey, gen);
    const st = kp.status ?? {};
    if (st.fingerprint === plan.fingerprint && st.observedGeneration === gen && hasCondition(st.conditions, plan.cond)) return;
    const out = await this.client.updateStatus<KeyPairObject>(KEYPAIRS, req.namespace, req.name, (fresh) => {
      const s = { ...(fresh.status ?? {}) };
      if (plan.fingerprint) s.fingerprint = plan.fingerprint;
      else delete s.fingerprint;
      s.observedGeneration = gen;
      s.conditions = setCondition(s.conditions, plan.cond);
      fresh.status = s;
    });
    if (out && plan.cond.status === 'False') void this.recorder.warning(out, 'InvalidKey', plan.cond.message!);
  }
}

/** Starts the KeyPair informer and workers; resolves once synced. */
export async function startKeyPairController(opts: { client: KovaClient; signal: AbortSignal; log?: (msg: string) => void; informers?: SharedInformers }): Promise<{ controller: Controller; done: Promise<void> }> {
  const { client, signal } = opts;
  const log = opts.log ?? ((m: string) => console.error(m));
  const shared = opts.informers ?? new SharedInformers(client, log);
  const keypairs = shared.for<KeyPairObject>(KEYPAIRS);
  const controller = new Controller(new KeyPairReconciler(client, keypairs, new EventRecorder(client, 'kova-keypair-controller', { log })), { workers: 1, log });
  const enqueue = (k: KObject) => controller.enqueue({ namespace: k.metadata.namespace, name: k.metadata.name! });
  keypairs.on('add', enqueue);
  keypairs.on('update', enqueue);
  keypairs.start();
  signal.addEventListener('abort', () => keypairs.stop(), { once: true });
  await keypairs.waitForSync(signal);
  return { controller, done: controller.start(signal) };
}
