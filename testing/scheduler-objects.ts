// Object builders shared by the scheduler's tests.
import type { Flavor, Host, Instance, InstanceSpec } from '../api/kinds/index.js';

export interface HostOpts {
  labels?: Record<string, string>;
  ready?: boolean;
  unschedulable?: boolean;
  fenced?: boolean;
  capacity?: { vcpus?: number; memory?: string | number; disk?: string | number };
  allocatable?: { vcpus?: number; memory?: string | number; disk?: string | number };
  allocated?: { vcpus?: number; memory?: string | number; disk?: string | number };
  allocations?: Array<{ uid: string; instance?: string }>;
}

export function hostObject(name: string, o: HostOpts = {}): Host {
  return {
    apiVersion: 'kova.dev/v1alpha1',
    kind: 'Host',
    metadata: { name, labels: o.labels ?? {} },
    spec: { unschedulable: o.unschedulable ?? false, ...(o.fenced ? { fenced: true } : {}) },
    status: {
      ...(o.capacity ? { capacity: o.capacity } : {}),
      allocatable: o.allocatable ?? (o.capacity ? undefined : { vcpus: 64, memory: '64Gi', disk: '1Ti' }),
      ...(o.allocated ? { allocated: o.allocated } : {}),
      ...(o.allocations ? { allocations: o.allocations.map((a) => ({ instance: `ns/${a.uid}`, ...a })) } : {}),
      conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True' }],
    },
  };
}

export function instanceObject(name: string, spec: Partial<InstanceSpec> = {}, uid = `uid-${name}`): Instance {
  return {
    apiVersion: 'kova.dev/v1alpha1',
    kind: 'Instance',
    metadata: { name, namespace: 'ns', uid },
    spec: { image: 'tiny', ...spec },
  };
}

export function flavorObject(name: string, vcpus: number, memory: string, disk: string): Flavor {
  return { apiVersion: 'kova.dev/v1alpha1', kind: 'Flavor', metadata: { name }, spec: { vcpus, memory, disk } };
}
