// Kubernetes resource quantities (apimachinery pkg/api/resource): `512Mi`, `2Gi`, `1.5`, `100m`,
// `1e3`, `1k`. A quantity is a decimal number with an optional suffix: a binary SI suffix
// (Ki Mi Gi Ti Pi Ei, powers of 1024), a decimal SI suffix (n u m "" k M G T P E, powers of
// 1000) or a decimal exponent (e3, E-2). Plain JSON integers are quantities too.

/** The regular expression apimachinery publishes for quantities (sign allowed). */
export const QUANTITY_PATTERN =
  '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$';

/** The same without a minus sign: what kova's CRDs use for sizes (memory, disk, volume size). */
export const NONNEGATIVE_QUANTITY_PATTERN =
  '^(\\+)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$';

export const QUANTITY_REGEXP = new RegExp(QUANTITY_PATTERN);

const BINARY: Record<string, number> = { Ki: 1, Mi: 2, Gi: 3, Ti: 4, Pi: 5, Ei: 6 };
const DECIMAL: Record<string, number> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };

const PARTS = /^([+-]?)([0-9]*)(?:\.([0-9]*))?(.*)$/;

/** True for finite numbers and strings that parseQuantity accepts. */
export function isQuantity(q: unknown): boolean {
  if (typeof q !== 'number' && typeof q !== 'string') return false;
  try {
    parseQuantity(q);
    return true;
  } catch {
    return false;
  }
}

/**
 * The value of a quantity as a number: bytes for memory and disk, cores or plain units
 * otherwise (`100m` is 0.1). Integers are returned as they are. Throws on anything that is not a
 * quantity. Decimal arithmetic goes through Number's own decimal parser, so `0.1` is exactly the
 * double nearest to 0.1 and `1.5Gi` is exact.
 */
export function parseQuantity(q: string | number): number {
  if (typeof q === 'number') {
    if (!Number.isFinite(q)) throw new Error(`quantities must be finite numbers: ${q}`);
    return q;
  }
  if (typeof q !== 'string' || !QUANTITY_REGEXP.test(q)) {
    throw new Error(`quantities must match the regular expression '${QUANTITY_PATTERN}': ${JSON.stringify(q)}`);
  }
  const [, sign, whole, frac = '', suffix] = PARTS.exec(q)!;
  const digits = `${whole || '0'}${frac}`;
  const neg = sign === '-' ? -1 : 1;
  if (suffix in BINARY) {
    // digits × 1024^k / 10^len(frac): multiply first so integral results stay exact.
    return neg * ((Number(digits) * 1024 ** BINARY[suffix]) / 10 ** frac.length);
  }
  let exp10: number;
  if (suffix in DECIMAL) exp10 = DECIMAL[suffix];
  else exp10 = Number(suffix.slice(1)); // e3, E-2, e+4
  // The published pattern admits fractional exponents (1e1.5) but apimachinery cannot parse them.
  if (!Number.isInteger(exp10)) throw new Error(`unable to parse quantity's suffix: ${JSON.stringify(q)}`);
  return neg * Number(`${digits}e${exp10 - frac.length}`);
}

/** Like parseQuantity, rounded up to a whole number (apimachinery's Quantity.Value()). */
export function quantityValue(q: string | number): number {
  return Math.ceil(parseQuantity(q));
}

/**
 * The canonical string for a number, as apimachinery prints quantities:
 * - `BinarySI` (the default, for bytes): the largest power-of-1024 suffix that divides an
 *   integer value of at least 1024 exactly (`536870912` → `512Mi`, `1610612736` → `1536Mi`),
 *   otherwise the decimal form;
 * - `DecimalSI`: the largest power-of-1000 suffix with an integral mantissa (`1500` → `1500`,
 *   `2000` → `2k`, `0.1` → `100m`).
 * Fractions use the smallest of m, u, n that makes the mantissa integral (rounded up at n).
 */
export function formatQuantity(n: number, format: 'BinarySI' | 'DecimalSI' = 'BinarySI'): string {
  if (!Number.isFinite(n)) throw new Error(`cannot format ${n} as a quantity`);
  if (n === 0) return '0';
  const sign = n < 0 ? '-' : '';
  const a = Math.abs(n);
  if (Number.isInteger(a)) {
    if (format === 'BinarySI' && a >= 1024) {
      const suffixes = ['Ei', 'Pi', 'Ti', 'Gi', 'Mi', 'Ki'];
      for (const s of suffixes) {
        const unit = 1024 ** BINARY[s];
        if (a >= unit && a % unit === 0) return `${sign}${a / unit}${s}`;
      }
      return `${sign}${a}`;
    }
    if (format === 'DecimalSI') {
      for (const s of ['E', 'P', 'T', 'G', 'M', 'k']) {
        const unit = 10 ** DECIMAL[s];
        if (a >= unit && a % unit === 0) return `${sign}${a / unit}${s}`;
      }
    }
    return `${sign}${a}`;
  }
  for (const [s, e] of [['m', 3], ['u', 6]] as const) {
    const m = Number(`${a}e${e}`);
    if (Number.isInteger(m)) return `${sign}${m}${s}`;
  }
  return `${sign}${Math.ceil(Number(`${a}e9`))}n`;
}
