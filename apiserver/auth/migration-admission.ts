// Migration admission: the rules of #17 that read other objects, as KubeVirt's migration
// create admitter does for VirtualMachineInstanceMigrations:
//   - spec.instance names an Instance of the namespace that exists, is not being deleted and is
//     bound to a host (status.hostName): a migration moves something that is somewhere;
//   - spec.targetHost, when set, names an existing Host other than the instance's current one;
//   - no other Migration of the instance is unfinished (phase not Succeeded or Failed, including
//     one being deleted while its abort completes): KubeVirt's "in-flight migration detected";
//   - spec never changes after create (one object per attempt: delete it and create another).
// Status writes go through the status subresource and are not judged here.
// Cost of a create: one read of the Instance, at most one of the Host, then (only when those
// pass) one list of the namespace's Migrations. Finished Migrations stay until deleted, so that
// list grows with the project's history of migrations, never with the cluster. An update reads
// nothing (the stored object is at hand). Two concurrent creates can both pass, as with any
// check before a write: the controller starts one migration of an instance at a time.
import { isDeepStrictEqual } from 'node:util';
import type { FieldCause, KObject } from '../../api/types.js';
import { migrationFinished } from '../../api/kinds/migration.js';
import type { Migration } from '../../api/kinds/migration.js';
import { causes } from '../../api/validation.js';
import type { ResourceStore } from '../resource-store.js';
import { isObj, KOVA_GROUP, KovaReads, objectName, specOf, statusOf } from './kova-reads.js';
import { invalid } from '../status.js';
import type { Admission } from './hooks.js';
import type { RequestAttributes } from './types.js';


/** field.NotFound. */
const notFoundCause = (field: string, value: string): FieldCause => ({ reason: 'FieldValueNotFound', field, message: `Not found: ${JSON.stringify(value)}` });

export class MigrationAdmission implements Admission {
  private readonly store: KovaReads;

  constructor(resources: ResourceStore) {
    this.store = new KovaReads(resources);
  }



  async admit(a: RequestAttributes, object: KObject | undefined): Promise<void> {
    // Updates and patches are judged by their result (admitResult), against the stored object.
    if (isWrite(a) && a.verb === 'create' && isObj(object)) await this.checkCreate(a, object);
  }

  async admitResult(a: RequestAttributes, object: KObject, old: KObject | undefined): Promise<void> {
    if (!isWrite(a)) return;
    if (!old) return this.checkCreate(a, object); // server-side apply creating it
    const info = this.store.info('migrations');
    // The result as it will be stored (defaults filled, unknown fields pruned), so a replace with
    // the original manifest, which lacks the defaulted timeouts, is no change.
    const next = structuredClone(object);
    this.store.resources.validator.prune(info, next);
    this.store.resources.validator.applyDefaults(info, next);
    if (!isDeepStrictEqual(next.spec, old.spec)) {
      throw invalid(info, old.metadata.name ?? a.name, [
        causes.forbidden('spec', 'a Migration\'s spec cannot change after it is created: delete it (which aborts it while it runs) and create another'),
      ]);
    }
  }

  private async checkCreate(a: RequestAttributes, migration: KObject): Promise<void> {
    const ns = a.namespace || migration.metadata?.namespace;
    const name = migration.metadata?.name || migration.metadata?.generateName || '';
    const spec = specOf(migration);
    const instanceName = objectName(spec.instance);
    // A malformed or missing name is validation's to report.
    if (!ns || !instanceName) return;
    const out: FieldCause[] = [];
    const instance = await this.store.read('instances', ns, instanceName);
    const currentHost = typeof statusOf(instance).hostName === 'string' ? (statusOf(instance).hostName as string) : '';
    if (!instance) out.push(notFoundCause('spec.instance', instanceName));
    else if (instance.metadata.deletionTimestamp) out.push(causes.invalid('spec.instance', instanceName, `instance ${JSON.stringify(instanceName)} is being deleted`));
    else if (!currentHost) out.push(causes.invalid('spec.instance', instanceName, `instance ${JSON.stringify(instanceName)} is not running on any host yet`));
    const target = objectName(spec.targetHost);
    if (target) {
      if (!(await this.store.read('hosts', undefined, target))) out.push(notFoundCause('spec.targetHost', target));
      else if (target === currentHost) out.push(causes.invalid('spec.targetHost', target, `instance ${JSON.stringify(instanceName)} already runs on host ${JSON.stringify(target)}`));
    }
    if (out.length) throw invalid(this.store.info('migrations'), name, out);

    const others = (await this.store.list('migrations', ns)) as Migration[];
    const inFlight = others.find((m) => m.spec?.instance === instanceName && !migrationFinished(m) && m.metadata.name !== migration.metadata?.name);
    if (inFlight) {
      const phase = inFlight.status?.phase ?? 'Pending';
      const state = inFlight.metadata.deletionTimestamp ? `being aborted (phase ${phase})` : `in phase ${phase}`;
      throw invalid(this.store.info('migrations'), name, [
        causes.forbidden('spec.instance', `in-flight migration detected: Migration ${JSON.stringify(inFlight.metadata.name)} of instance ${JSON.stringify(instanceName)} is ${state}; wait for it to end, or delete it to abort it`),
      ]);
    }
  }
}

/** A write of a Migration itself (its status subresource is the controller's and the hosts'). */
function isWrite(a: RequestAttributes): boolean {
  return a.resourceRequest && a.apiGroup === KOVA_GROUP && a.resource === 'migrations' && a.subresource === '' &&
    (a.verb === 'create' || a.verb === 'update' || a.verb === 'patch');
}
