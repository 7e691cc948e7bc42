// A tiny XML tree and serializer for libvirt documents. Every attribute value and text node is
// escaped here, in one place, so no caller can inject markup; characters XML 1.0 cannot carry
// at all (most control characters) are refused rather than silently dropped.

export type XmlAttrValue = string | number | undefined;

export interface XmlElement {
  tag: string;
  attrs: Record<string, XmlAttrValue>;
  children: XmlChild[];
}
export type XmlChild = XmlElement | string;

/** Builds an element; `undefined` attributes and `undefined`/`false` children are left out. */
export function el(tag: string, attrs: Record<string, XmlAttrValue> = {}, ...children: (XmlChild | undefined | false)[]): XmlElement {
  return { tag, attrs, children: children.filter((c): c is XmlChild => c !== undefined && c !== false) };
}

/** Thrown for a value that no escaping can make valid XML. */
export class XmlValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'XmlValueError';
  }
}

// Tags and attribute names are ours (literals in the converter), never user data; checked anyway.
const NAME = /^[A-Za-z_][A-Za-z0-9_.:-]*$/;
// XML 1.0 Char production minus what we escape: no C0 controls but tab/LF/CR, no U+FFFE/U+FFFF,
// no lone surrogates (the `u` flag makes the class match code points, so pairs pass).
const INVALID_CHAR = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|\p{Surrogate}/u;

function checkChars(value: string): string {
  if (INVALID_CHAR.test(value)) throw new XmlValueError(`value ${JSON.stringify(value)} contains a character XML cannot represent`);
  return value;
}

export function escapeText(value: string): string {
  return checkChars(value).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Escapes for a double- or single-quoted attribute; whitespace is kept exact through entities. */
export function escapeAttr(value: string): string {
  return escapeText(value)
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;')
    .replace(/\t/g, '&#9;')
    .replace(/\n/g, '&#10;')
    .replace(/\r/g, '&#13;');
}

/** Serializes with two-space indentation; elements holding only text stay on one line. */
export function renderXml(root: XmlElement): string {
  const out: string[] = [];
  write(root, 0, out);
  return out.join('');
}

function write(node: XmlElement, depth: number, out: string[]): void {
  if (!NAME.test(node.tag)) throw new XmlValueError(`invalid tag ${JSON.stringify(node.tag)}`);
  const pad = '  '.repeat(depth);
  let open = `<${node.tag}`;
  for (const [k, v] of Object.entries(node.attrs)) {
    if (v === undefined) continue;
    if (!NAME.test(k)) throw new XmlValueError(`invalid attribute name ${JSON.stringify(k)}`);
    if (typeof v === 'number' && !Number.isFinite(v)) throw new XmlValueError(`attribute ${k} is not a finite number`);
    open += ` ${k}='${escapeAttr(String(v))}'`;
  }
  if (node.children.length === 0) {
    out.push(`${pad}${open}/>\n`);
  } else if (node.children.every((c) => typeof c === 'string')) {
    out.push(`${pad}${open}>${(node.children as string[]).map(escapeText).join('')}</${node.tag}>\n`);
  } else {
    out.push(`${pad}${open}>\n`);
    for (const child of node.children) {
      if (typeof child === 'string') out.push(`${pad}  ${escapeText(child)}\n`);
      else write(child, depth + 1, out);
    }
    out.push(`${pad}</${node.tag}>\n`);
  }
}
