// Newline-delimited JSON as bytes: a watch stream split into lines without decoding them, so a
// reader that can decide from a few bytes (a uid, a resourceVersion) never turns the rest of a
// line into a JS string. Bytes are copied only when a line spans chunks, once per line.

const NL = 0x0a;

/** A line longer than this is an error, not a buffer that grows without end. */
export const MAX_LINE_BYTES = 16 * 1024 * 1024;

export class LineSplitter {
  private parts: Buffer[] = [];
  private partBytes = 0;

  constructor(private readonly maxLineBytes = MAX_LINE_BYTES) {}

  /** The complete lines `chunk` finishes (without their "\n"); the unfinished tail is kept. */
  *push(chunk: Buffer): Generator<Buffer> {
    let start = 0;
    for (let nl = chunk.indexOf(NL); nl >= 0; nl = chunk.indexOf(NL, start)) {
      let line = chunk.subarray(start, nl);
      start = nl + 1;
      if (this.parts.length) {
        this.parts.push(line);
        line = Buffer.concat(this.parts, this.partBytes + line.length);
        this.parts = [];
        this.partBytes = 0;
      }
      yield line;
    }
    if (start < chunk.length) {
      const tail = chunk.subarray(start);
      this.partBytes += tail.length;
      if (this.partBytes > this.maxLineBytes) throw new Error(`watch stream line longer than ${this.maxLineBytes} bytes`);
      this.parts.push(tail);
    }
  }
}

/** Whether `line` starts with `prefix`. */
export function startsWith(line: Buffer, prefix: Buffer): boolean {
  return line.length >= prefix.length && line.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}

/** The JSON string value after the first `key` (given with its opening quote, e.g. `"uid":"`), undecoded escapes and all. */
export function stringAfter(line: Buffer, key: Buffer): string | undefined {
  const at = line.indexOf(key);
  if (at < 0) return undefined;
  const start = at + key.length;
  const end = line.indexOf(0x22, start);
  return end < 0 ? undefined : line.toString('utf8', start, end);
}

/** Whether the line holds nothing but whitespace. */
export function isBlank(line: Buffer): boolean {
  for (const b of line) if (b !== 0x20 && b !== 0x09 && b !== 0x0d) return false;
  return true;
}
