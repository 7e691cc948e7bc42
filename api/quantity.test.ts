import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NONNEGATIVE_QUANTITY_PATTERN, QUANTITY_PATTERN, formatQuantity, isQuantity, parseQuantity, quantityValue } from './quantity.js';

test('parseQuantity: binary, decimal, exponent and plain forms', () => {
  const cases: Array<[string | number, number]> = [
    ['512Mi', 512 * 1024 ** 2],
    ['2Gi', 2 * 1024 ** 3],
    ['1.5Gi', 1.5 * 1024 ** 3],
    ['1Ki', 1024],
    ['1Ei', 1024 ** 6],
    ['1.5', 1.5],
    ['100m', 0.1],
    ['250u', 0.00025],
    ['5n', 5e-9],
    ['1e3', 1000],
    ['1E3', 1000],
    ['2.5e-1', 0.25],
    ['1k', 1000],
    ['1M', 1e6],
    ['3G', 3e9],
    ['0', 0],
    ['.5', 0.5],
    ['5.', 5],
    ['+1Gi', 1024 ** 3],
    ['-1Gi', -(1024 ** 3)],
    [1073741824, 1073741824],
    [0.5, 0.5],
  ];
  for (const [q, want] of cases) assert.equal(parseQuantity(q), want, String(q));
});

test('parseQuantity rejects non-quantities', () => {
  for (const bad of ['', 'Gi', '1 Gi', '1gi', '1KiB', '1.2.3', 'abc', '1e1.5', '--1', '1Mi ']) {
    assert.throws(() => parseQuantity(bad), Error, JSON.stringify(bad));
    assert.equal(isQuantity(bad), false, JSON.stringify(bad));
  }
  assert.throws(() => parseQuantity(Number.NaN));
  assert.equal(isQuantity('1Gi'), true);
  assert.equal(isQuantity(3), true);
  assert.equal(isQuantity(true), false);
});

test('quantityValue rounds up like Quantity.Value()', () => {
  assert.equal(quantityValue('100m'), 1);
  assert.equal(quantityValue('1.5'), 2);
  assert.equal(quantityValue('0.3Gi'), 322122548);
  assert.equal(quantityValue('2Gi'), 2147483648);
});

test('formatQuantity gives canonical strings', () => {
  assert.equal(formatQuantity(512 * 1024 ** 2), '512Mi');
  assert.equal(formatQuantity(1536 * 1024 ** 2), '1536Mi');
  assert.equal(formatQuantity(2 * 1024 ** 3), '2Gi');
  assert.equal(formatQuantity(200 * 1024 ** 3), '200Gi');
  assert.equal(formatQuantity(100), '100');
  assert.equal(formatQuantity(1500), '1500');
  assert.equal(formatQuantity(0), '0');
  assert.equal(formatQuantity(0.1), '100m');
  assert.equal(formatQuantity(1.5), '1500m');
  assert.equal(formatQuantity(0.00025), '250u');
  assert.equal(formatQuantity(-2048), '-2Ki');
  assert.equal(formatQuantity(2000, 'DecimalSI'), '2k');
  assert.equal(formatQuantity(1500, 'DecimalSI'), '1500');
  assert.equal(formatQuantity(3e9, 'DecimalSI'), '3G');
});

test('formatQuantity round-trips through parseQuantity', () => {
  for (const n of [1, 1023, 1024, 1025, 5 * 1024 ** 4, 0.001, 0.75, 123456789, 36 * 1024 ** 3]) {
    assert.equal(parseQuantity(formatQuantity(n)), n);
    assert.equal(parseQuantity(formatQuantity(n, 'DecimalSI')), n);
  }
});

test('the patterns match what parseQuantity accepts (as RE2-compatible strings)', () => {
  const re = new RegExp(QUANTITY_PATTERN);
  const nonneg = new RegExp(NONNEGATIVE_QUANTITY_PATTERN);
  for (const ok of ['1', '1Gi', '100m', '1e3', '+2Mi', '.5']) {
    assert.ok(re.test(ok), ok);
    assert.ok(nonneg.test(ok), ok);
  }
  assert.ok(re.test('-1Gi'));
  assert.ok(!nonneg.test('-1Gi'));
  assert.ok(!re.test('1 Gi'));
});
