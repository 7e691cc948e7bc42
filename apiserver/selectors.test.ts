import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  EVENT_FIELD_ALIASES,
  matchField,
  matchLabels,
  parseFieldSelector,
  parseLabelSelector,
  requiredExactName,
  SelectorError,
} from './selectors.js';

const L = { app: 'web', tier: 'frontend', 'kova.dev/zone': 'a', n: '5' };

function selErr(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SelectorError, String(e));
    assert.match(e.message, re);
    return true;
  });
}

test('label selector operators', () => {
  const cases: Array<[string, boolean]> = [
    ['', true],
    ['app=web', true],
    ['app==web', true],
    ['app=api', false],
    ['app!=api', true],
    ['app!=web', false],
    ['missing!=x', true],
    ['app in (web,api)', true],
    ['app in (api)', false],
    ['app notin (api)', true],
    ['app notin (web)', false],
    ['missing notin (web)', true],
    ['missing in (web)', false],
    ['app', true],
    ['missing', false],
    ['!missing', true],
    ['!app', false],
    ['kova.dev/zone=a', true],
    ['app=web,tier=frontend', true],
    ['app=web,tier=backend', false],
    ['  app = web ,  tier  in ( frontend , x )  ', true],
    ['n>4', true],
    ['n<5', false],
    ['n>5', false],
    ['app>1', false],
    ['x in (in,notin)', false],
  ];
  for (const [sel, want] of cases) assert.equal(parseLabelSelector(sel).matches(L), want, sel);
  assert.equal(matchLabels('app=web', undefined), false);
  assert.equal(matchLabels('!app', undefined), true);
  assert.equal(matchLabels('', undefined), true);
});

test('label selector: empty values and keywords as values', () => {
  assert.equal(parseLabelSelector('e=').matches({ e: '' }), true);
  assert.equal(parseLabelSelector('e=').matches({ e: 'x' }), false);
  assert.equal(parseLabelSelector('e in ()').matches({ e: '' }), true);
  assert.equal(parseLabelSelector('e in (a,)').matches({ e: '' }), true);
  assert.deepEqual(parseLabelSelector('x in (c,a,,b)').requirements[0].values, ['', 'a', 'b', 'c']);
  assert.equal(parseLabelSelector('in=notin').matches({ in: 'notin' }), true);
});

test('label selector: requirements sorted, toString, requiresExactMatch', () => {
  const s = parseLabelSelector('z!=1,a in (y,x),!m,k');
  assert.deepEqual(s.requirements.map((r) => r.key), ['a', 'k', 'm', 'z']);
  assert.equal(s.toString(), 'a in (x,y),k,!m,z!=1');
  assert.equal(parseLabelSelector('app=web').requiresExactMatch('app'), 'web');
  assert.equal(parseLabelSelector('app in (web)').requiresExactMatch('app'), 'web');
  assert.equal(parseLabelSelector('app in (web,api)').requiresExactMatch('app'), undefined);
  assert.equal(parseLabelSelector('app!=web').requiresExactMatch('app'), undefined);
  assert.ok(parseLabelSelector('  ').isEmpty());
});

test('label selector syntax errors (apimachinery texts)', () => {
  selErr(() => parseLabelSelector('app=web,'), /found '', expected: identifier after ','/);
  selErr(() => parseLabelSelector(',app'), /found ',', expected: !, identifier, or 'end of string'/);
  selErr(() => parseLabelSelector('app web'), /unable to parse requirement: found 'web', expected: in, notin, =, ==, !=, gt, lt/);
  selErr(() => parseLabelSelector('app in web'), /found 'web' expected: '\('/);
  selErr(() => parseLabelSelector('app in (a b)'), /found 'b', expected: ',' or '\)'/);
  selErr(() => parseLabelSelector('app in (a'), /expected: ',' or '\)'/);
  selErr(() => parseLabelSelector('app=(x)'), /found '\(', expected: identifier/);
  selErr(() => parseLabelSelector('!app=web'), /found '=', expected: ',' or 'end of string'/);
  selErr(() => parseLabelSelector('a=b c=d'), /found 'c', expected: ',' or 'end of string'/);
});

test('label selector validation errors', () => {
  selErr(() => parseLabelSelector('app=a b'), /found 'b', expected: ',' or 'end of string'/);
  selErr(() => parseLabelSelector('app=-bad'), /unable to parse requirement: values\[0\]\[app\]: Invalid value: "-bad": a valid label must be an empty string or consist of alphanumeric characters/);
  selErr(() => parseLabelSelector(`app=${'x'.repeat(64)}`), /must be no more than 63 characters/);
  selErr(() => parseLabelSelector('-key=x'), /unable to parse requirement: <nil>: Invalid value: "-key": name part must consist of alphanumeric characters/);
  selErr(() => parseLabelSelector('Bad_Prefix/key=x'), /prefix part a lowercase RFC 1123 subdomain/);
  selErr(() => parseLabelSelector('a/b/c'), /a qualified name must consist of/);
  selErr(() => parseLabelSelector('n>x'), /values\[0\]: Invalid value: "x": for 'Gt', 'Lt' operators, the value must be an integer/);
});

test('field selectors: parse, match, escapes', () => {
  const ev = {
    metadata: { name: 'e1', namespace: 'default' },
    involvedObject: { kind: 'Instance', name: 'web', namespace: 'default', uid: 'u1' },
    reason: 'Started',
    source: { component: 'kova-agent' },
    count: 3,
    status: { hostName: 'node-1', ready: true },
  };
  const allowed = ['involvedObject.kind', 'involvedObject.name', 'involvedObject.namespace', 'involvedObject.uid', 'reason', 'source', 'status.hostName', 'count', 'status.ready'];
  const f = (s: string) => parseFieldSelector(s, allowed, { aliases: EVENT_FIELD_ALIASES });
  assert.equal(f('involvedObject.name=web,involvedObject.kind=Instance').matches(ev), true);
  assert.equal(f('involvedObject.name==web,reason!=Started').matches(ev), false);
  assert.equal(f('metadata.name=e1,metadata.namespace=default').matches(ev), true);
  assert.equal(f('source=kova-agent').matches(ev), true);
  assert.equal(f('status.hostName=node-1').matches(ev), true);
  assert.equal(f('count=3,status.ready=true').matches(ev), true);
  assert.equal(f('involvedObject.uid!=').matches(ev), true);
  assert.equal(f('').matches(ev), true);
  assert.ok(f('').isEmpty());
  assert.equal(f('reason=a\\,b').requirements[0].value, 'a,b');
  assert.equal(f('reason=a\\=b\\\\').requirements[0].value, 'a=b\\');
  assert.equal(f('reason=a\\,b').toString(), 'reason=a\\,b');
  assert.equal(matchField(ev, 'status.hostName'), 'node-1');
  assert.equal(matchField(ev, 'status.missing'), '');
  assert.equal(matchField(ev, 'involvedObject.name'), 'web');
  assert.equal(matchField(ev, 'count'), '3');
});

test('field selector errors', () => {
  selErr(() => parseFieldSelector('foo=bar', []), /^field label not supported: foo$/);
  selErr(() => parseFieldSelector('status.hostName=x', []), /field label not supported: status.hostName/);
  assert.doesNotThrow(() => parseFieldSelector('status.hostName=x', ['status.hostName']));
  selErr(() => parseFieldSelector('metadata.name', []), /invalid selector: 'metadata.name'; can't understand 'metadata.name'/);
  selErr(() => parseFieldSelector('metadata.name=a=b', []), /unescaped character/);
  selErr(() => parseFieldSelector('metadata.name=a\\x', []), /invalid escape sequence/);
});

test('requiredExactName', () => {
  assert.equal(requiredExactName('metadata.name=web'), 'web');
  assert.equal(requiredExactName('metadata.namespace=default,metadata.name==web'), 'web');
  assert.equal(requiredExactName('metadata.name!=web'), undefined);
  assert.equal(requiredExactName('status.hostName=n1,metadata.name=web'), 'web');
  assert.equal(requiredExactName(''), undefined);
  assert.equal(requiredExactName(undefined), undefined);
  assert.equal(requiredExactName(parseFieldSelector('metadata.name=x')), 'x');
});
