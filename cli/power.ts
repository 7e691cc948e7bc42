// `kova start|stop|restart|pause|unpause NAME`: power actions expressed as the declarative
// changes the node agent acts on (runStrategy, or the annotations of docs/control-plane.md),
// the way `virtctl start` flips a KubeVirt VM's runStrategy and `kubectl rollout restart` stamps
// an annotation.
import { INSTANCES } from '../api/kinds/index.js';
import type { Instance } from '../api/kinds/index.js';
import type { ApiClient } from '../client/client.js';

export const POWER_VERBS = ['start', 'stop', 'restart', 'pause', 'unpause'] as const;

/** Applies the action and returns a one-line summary of what changed. */
export async function powerAction(client: ApiClient, verb: string, namespace: string, name: string): Promise<string> {
  const inst = await client.get<Instance>(INSTANCES, namespace, name);
  if (!inst) throw new Error(`instance ${namespace}/${name} not found`);
  const strategy = inst.spec?.runStrategy ?? 'Always';
  const annotate = (a: Record<string, string | null>) => client.mergePatch(INSTANCES, namespace, name, { metadata: { annotations: a } });
  const setStrategy = (s: string) => client.mergePatch(INSTANCES, namespace, name, { spec: { runStrategy: s } });
  const ref = `instance ${namespace}/${name}`;
  switch (verb) {
    case 'start':
      if (strategy === 'Manual') return void (await annotate({ 'kova.dev/power': 'On' })), `${ref}: power On requested`;
      if (strategy === 'Halted') return void (await setStrategy('Always')), `${ref}: runStrategy Halted → Always`;
      return `${ref}: already runs (runStrategy ${strategy})`;
    case 'stop':
      if (strategy === 'Manual') return void (await annotate({ 'kova.dev/power': 'Off' })), `${ref}: power Off requested`;
      if (strategy === 'Halted') return `${ref}: already stopped (runStrategy Halted)`;
      return void (await setStrategy('Halted')), `${ref}: runStrategy ${strategy} → Halted`;
    case 'restart':
      return void (await annotate({ 'kova.dev/restartedAt': new Date().toISOString() })), `${ref}: restart requested`;
    case 'pause':
      return void (await annotate({ 'kova.dev/paused': 'true' })), `${ref}: pause requested`;
    case 'unpause':
      return void (await annotate({ 'kova.dev/paused': null })), `${ref}: unpause requested`;
    default:
      throw new Error(`unknown power action ${verb}`);
  }
}
