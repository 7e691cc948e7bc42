// The KeyPair controller: computes status.fingerprint ("SHA256:…", as ssh-keygen -l) from
// spec.publicKey, and a Ready condition that says whether the key parses.
import { KEYPAIRS } from '../../api/kinds/index.js';
import type { KeyPair } from '../../api/kinds/index.js';
import type { ApiClient } from '../../client/client.js';
import { controllerFor, errorMessage, withDefaults } from '../../client/controller.js';
import type { ControllerHandle, ControllerStartOptions, Reconciler, Request } from '../../client/controller.js';
import { EventRecorder } from '../../client/events.js';
import { hasCondition, setCondition } from '../../api/conditions.js';
import type { Condition } from '../../api/conditions.js';
import { sshFingerprint } from './fingerprint.js';

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

export class KeyPairReconciler implements Reconciler {
  readonly name = 'keypair';
  constructor(
    private readonly client: ApiClient,
    private readonly keypairs: { get(namespace: string | undefined, name: string): KeyPair | undefined },
    private readonly recorder: Pick<EventRecorder, 'warning'>,
  ) {}

  async reconcile(req: Request): Promise<void> {
    const kp = this.keypairs.get(req.namespace, req.name);
    if (!kp || kp.metadata.deletionTimestamp) return;
    const gen = kp.metadata.generation;
    const plan = planKeyPairStatus(kp.spec?.publicKey, gen);
    const st = kp.status ?? {};
    if (st.fingerprint === plan.fingerprint && st.observedGeneration === gen && hasCondition(st.conditions, plan.cond)) return;
    const out = await this.client.updateStatus<KeyPair>(KEYPAIRS, req.namespace, req.name, (fresh) => {
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
export async function startKeyPairController(opts: ControllerStartOptions): Promise<ControllerHandle> {
  const { client, signal, log, informers } = withDefaults(opts);
  const keypairs = informers.for<KeyPair>(KEYPAIRS);
  const reconciler = new KeyPairReconciler(client, keypairs, new EventRecorder(client, 'kova-keypair-controller', { log }));
  return controllerFor(reconciler, { workers: opts.workers ?? 1, log }).watches(keypairs, undefined, ['add', 'update']).start(signal);
}
