import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KObject, PrinterColumn, ResourceInfo } from '../api/types.js';
import { cellFor, columnDefinitions, dateCell, evalJsonPath, humanDuration, NAME_DESCRIPTION, parseJsonPath, shortHumanDuration, toTable } from './table.js';

const NOW = new Date('2025-06-01T12:00:00Z');

function info(printerColumns: PrinterColumn[]): ResourceInfo {
  return {
    group: 'kova.dev', version: 'v1alpha1', kind: 'Instance', listKind: 'InstanceList', plural: 'instances', singular: 'instance',
    namespaced: true, shortNames: [], categories: [], statusSubresource: true, printerColumns, selectableFields: [], custom: true,
  };
}

const obj: KObject = {
  apiVersion: 'kova.dev/v1alpha1',
  kind: 'Instance',
  metadata: {
    name: 'web-1', namespace: 'default', uid: 'u1', resourceVersion: '120', creationTimestamp: '2025-06-01T11:55:00Z',
    labels: { 'kova.dev/zone': 'a' },
    managedFields: [{ manager: 'kubectl', operation: 'Apply', apiVersion: 'kova.dev/v1alpha1', fieldsType: 'FieldsV1', fieldsV1: {} }],
  },
  spec: { flavor: 'small', vcpus: 2, ratio: 0.5, big: 1234567.5, tiny: 0.00001, on: true, tags: ['a', 'b'], cfg: { b: 1, a: '<x>' } },
  status: {
    addresses: [{ ip: '10.0.0.1' }, { ip: '10.0.0.2' }],
    conditions: [{ type: 'Scheduled', status: 'True' }, { type: 'Ready', status: 'False', lastTransitionTime: '2025-06-01T11:59:30Z' }],
    booted: 'not-a-date',
    zero: '0001-01-01T00:00:00Z',
  },
};

test('HumanDuration matches apimachinery', () => {
  const s = 1000;
  const m = 60 * s;
  const h = 60 * m;
  const d = 24 * h;
  const y = 365 * d;
  const cases: Array<[number, string]> = [
    [-3 * s, '<invalid>'],
    [-1.5 * s, '0s'],
    [0, '0s'],
    [5 * s, '5s'],
    [119 * s, '119s'],
    [2 * m, '2m'],
    [5 * m + 30 * s, '5m30s'],
    [9 * m + 59 * s, '9m59s'],
    [10 * m + 30 * s, '10m'],
    [45 * m, '45m'],
    [179 * m, '179m'],
    [3 * h, '3h'],
    [3 * h + 15 * m, '3h15m'],
    [7 * h + 59 * m, '7h59m'],
    [8 * h, '8h'],
    [30 * h, '30h'],
    [47 * h, '47h'],
    [2 * d, '2d'],
    [3 * d + 5 * h, '3d5h'],
    [7 * d + 23 * h, '7d23h'],
    [8 * d, '8d'],
    [45 * d, '45d'],
    [729 * d, '729d'],
    [2 * y, '2y'],
    [3 * y + 120 * d, '3y120d'],
    [8 * y, '8y'],
    [9 * y + 100 * d, '9y'],
  ];
  for (const [ms, want] of cases) assert.equal(humanDuration(ms), want, `${ms}ms`);
  assert.equal(shortHumanDuration(90 * s), '1m');
  assert.equal(shortHumanDuration(25 * h), '1d');
});

test('dateCell: ages, <invalid>, <unknown>', () => {
  assert.equal(dateCell('2025-06-01T11:55:00Z', NOW), '5m');
  assert.equal(dateCell('2025-06-01T11:59:30.123456Z', NOW), '29s');
  assert.equal(dateCell('2025-06-01T13:55:00+02:00', NOW), '5m');
  assert.equal(dateCell('yesterday', NOW), '<invalid>');
  assert.equal(dateCell('2025-06-01', NOW), '<invalid>');
  assert.equal(dateCell('', NOW), '<unknown>');
  assert.equal(dateCell('0001-01-01T00:00:00Z', NOW), '<unknown>');
  assert.equal(dateCell('2025-06-01T12:00:30Z', NOW), '<invalid>', 'more than a second in the future');
});

test('JSONPath subset', () => {
  assert.deepEqual(evalJsonPath(obj, '.spec.flavor'), ['small']);
  assert.deepEqual(evalJsonPath(obj, '{.spec.flavor}'), ['small']);
  assert.deepEqual(evalJsonPath(obj, '$.spec.vcpus'), [2]);
  assert.deepEqual(evalJsonPath(obj, '.status.addresses[0].ip'), ['10.0.0.1']);
  assert.deepEqual(evalJsonPath(obj, '.status.addresses[-1].ip'), ['10.0.0.2']);
  assert.deepEqual(evalJsonPath(obj, '.status.addresses[*].ip'), ['10.0.0.1', '10.0.0.2']);
  assert.deepEqual(evalJsonPath(obj, '.status.addresses[0:1].ip'), ['10.0.0.1']);
  assert.deepEqual(evalJsonPath(obj, '.metadata.labels.kova\\.dev/zone'), ['a']);
  assert.deepEqual(evalJsonPath(obj, ".metadata.labels['kova.dev/zone']"), ['a']);
  assert.deepEqual(evalJsonPath(obj, '.status.conditions[?(@.type=="Ready")].status'), ['False']);
  assert.deepEqual(evalJsonPath(obj, ".status.conditions[?(@.type=='Scheduled')].status"), ['True']);
  assert.deepEqual(evalJsonPath(obj, '.status.conditions[?(@.type!="Ready")].type'), ['Scheduled']);
  assert.deepEqual(evalJsonPath(obj, '.status.conditions[?(@.lastTransitionTime)].type'), ['Ready']);
  assert.deepEqual(evalJsonPath({ a: [{ n: 1 }, { n: 5 }] }, '.a[?(@.n > 2)].n'), [5]);
  assert.deepEqual(evalJsonPath(obj, '..ip'), ['10.0.0.1', '10.0.0.2']);
  assert.deepEqual(evalJsonPath(obj, '.spec.missing.deeper'), []);
  assert.deepEqual(evalJsonPath(obj, '.status.addresses[9].ip'), []);
  assert.throws(() => parseJsonPath('.status.conditions[?(@.type=="Ready"'));
  assert.throws(() => parseJsonPath('.a[x]'));
});

test('cells by column type', () => {
  const c = (type: PrinterColumn['type'], jsonPath: string) => cellFor({ type, jsonPath }, obj, NOW);
  assert.equal(c('string', '.spec.flavor'), 'small');
  assert.equal(c('string', '.spec.vcpus'), '2');
  assert.equal(c('string', '.spec.big'), '1.2345675e+06');
  assert.equal(c('string', '.spec.tiny'), '1e-05');
  assert.equal(c('string', '.spec.ratio'), '0.5');
  assert.equal(c('string', '.spec.on'), 'true');
  assert.equal(c('string', '.spec.tags'), '["a","b"]');
  assert.equal(c('string', '.spec.cfg'), '{"a":"\\u003cx\\u003e","b":1}');
  assert.equal(c('string', '.spec.nope'), null);
  assert.equal(c('integer', '.spec.vcpus'), 2);
  assert.equal(c('integer', '.spec.ratio'), 0);
  assert.equal(c('integer', '.spec.flavor'), null);
  assert.equal(c('number', '.spec.ratio'), 0.5);
  assert.equal(c('number', '.spec.flavor'), null);
  assert.equal(c('boolean', '.spec.on'), true);
  assert.equal(c('boolean', '.spec.flavor'), null);
  assert.equal(c('date', '.metadata.creationTimestamp'), '5m');
  assert.equal(c('date', '.status.conditions[?(@.type=="Ready")].lastTransitionTime'), '30s');
  assert.equal(c('date', '.status.booted'), '<invalid>');
  assert.equal(c('date', '.status.zero'), '<unknown>');
  assert.equal(c('date', '.spec.vcpus'), null);
  assert.equal(c('string', '.bad[path'), null);
});

test('toTable: default Age column and PartialObjectMetadata rows', () => {
  const t = toTable(info([]), [obj], { includeObject: 'Metadata', resourceVersion: '123', now: NOW });
  assert.equal(t.kind, 'Table');
  assert.equal(t.apiVersion, 'meta.k8s.io/v1');
  assert.deepEqual(t.metadata, { resourceVersion: '123' });
  assert.deepEqual(t.columnDefinitions.map((c) => [c.name, c.type, c.format, c.priority]), [
    ['Name', 'string', 'name', 0],
    ['Age', 'date', '', 0],
  ]);
  assert.equal(t.columnDefinitions[0].description, NAME_DESCRIPTION);
  assert.match(t.columnDefinitions[1].description, /^CreationTimestamp is a timestamp/);
  assert.deepEqual(t.rows, [
    {
      cells: ['web-1', '5m'],
      object: {
        kind: 'PartialObjectMetadata',
        apiVersion: 'meta.k8s.io/v1',
        metadata: { name: 'web-1', namespace: 'default', uid: 'u1', resourceVersion: '120', creationTimestamp: '2025-06-01T11:55:00Z', labels: { 'kova.dev/zone': 'a' } },
      },
    },
  ]);
});

test('toTable: printer columns, include modes, paging metadata, watch rows', () => {
  const cols: PrinterColumn[] = [
    { name: 'Flavor', type: 'string', jsonPath: '.spec.flavor', description: 'The flavor' },
    { name: 'CPUs', type: 'integer', jsonPath: '.spec.vcpus', priority: 1 },
    { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
    { name: 'IP', type: 'string', format: 'ipv4', jsonPath: '.status.addresses[0].ip' },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ];
  const other: KObject = { apiVersion: 'kova.dev/v1alpha1', kind: 'Instance', metadata: { name: 'bare' } };
  const t = toTable(info(cols), [obj, other], { includeObject: 'None', continue: 'tok', remainingItemCount: 3, now: NOW });
  assert.deepEqual(t.metadata, { continue: 'tok', remainingItemCount: 3 });
  assert.deepEqual(t.columnDefinitions.slice(1), [
    { name: 'Flavor', type: 'string', format: '', description: 'The flavor', priority: 0 },
    { name: 'CPUs', type: 'integer', format: '', description: 'Custom resource definition column (in JSONPath format): .spec.vcpus', priority: 1 },
    { name: 'Ready', type: 'string', format: '', description: 'Custom resource definition column (in JSONPath format): .status.conditions[?(@.type=="Ready")].status', priority: 0 },
    { name: 'IP', type: 'string', format: 'ipv4', description: 'Custom resource definition column (in JSONPath format): .status.addresses[0].ip', priority: 0 },
    { name: 'Age', type: 'date', format: '', description: 'Custom resource definition column (in JSONPath format): .metadata.creationTimestamp', priority: 0 },
  ]);
  assert.deepEqual(t.rows[0].cells, ['web-1', 'small', 2, 'False', '10.0.0.1', '5m']);
  assert.deepEqual(t.rows[1].cells, ['bare', null, null, null, null, null]);
  assert.equal(t.rows[0].object, null);

  const full = toTable(info(cols), [obj], { includeObject: 'Object', now: NOW });
  assert.deepEqual(full.rows[0].object, obj);
  assert.deepEqual(full.metadata, {});

  const watchRow = toTable(info(cols), [obj], { includeObject: 'Metadata', withColumnDefinitions: false, now: NOW });
  assert.deepEqual(watchRow.columnDefinitions, []);
  assert.equal(watchRow.rows.length, 1);
  assert.deepEqual(columnDefinitions(info(cols)), toTable(info(cols), [], { includeObject: 'None' }).columnDefinitions);
  assert.deepEqual(toTable(info(cols), [], { includeObject: 'None' }).rows, []);
});
