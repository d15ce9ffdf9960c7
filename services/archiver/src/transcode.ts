// The hot path: an Avro single-object record straight to its JSON line, bytes to
// bytes, without building the JavaScript object and its strings first. The
// output is byte-for-byte JSON.stringify(codec.decode(bytes)) (a unit test holds
// it to that on random and nasty records); anything unusual (an older writer
// schema, a string that needs escaping, a long past 2^53, a bad enum index,
// trailing bytes) answers `undefined` and the caller takes the codec's path,
// which also produces the precise DecodeError.
//
// Compiled once from the reader schema: records, string, int, long, enum (what
// NetworkEvent uses); any other type disables the fast path altogether.

type Op =
  | { t: 'string'; key: Buffer; mark: boolean }
  | { t: 'int'; key: Buffer }
  | { t: 'long'; key: Buffer }
  | { t: 'enum'; key: Buffer; symbols: Buffer[] }
  | { t: 'open'; key: Buffer }
  | { t: 'close' };

// avsc reads longs up to 2^52 in magnitude as numbers (beyond: its own handling), so does the fast path.
const MAX_SAFE = 2 ** 52;

function compile(schema: unknown, ops: Op[], key: Buffer, path: string, markPath: string): void {
  const s = typeof schema === 'string' ? { type: schema } : (schema as { type: unknown; fields?: { name: string; type: unknown }[]; symbols?: string[] });
  if (typeof s.type === 'object' && s.type !== null) {
    compile(s.type, ops, key, path, markPath);
    return;
  }
  switch (s.type) {
    case 'string':
      ops.push({ t: 'string', key, mark: path === markPath });
      return;
    case 'int':
      ops.push({ t: 'int', key });
      return;
    case 'long':
      ops.push({ t: 'long', key });
      return;
    case 'enum':
      ops.push({ t: 'enum', key, symbols: s.symbols!.map((x) => Buffer.from(JSON.stringify(x))) });
      return;
    case 'record': {
      ops.push({ t: 'open', key });
      s.fields!.forEach((f, i) => {
        const fieldKey = Buffer.from(`${i === 0 ? '' : ','}${JSON.stringify(f.name)}:`);
        compile(f.type, ops, fieldKey, path ? `${path}.${f.name}` : f.name, markPath);
      });
      ops.push({ t: 'close' });
      return;
    }
    default:
      throw new Error(`no fast path for Avro type ${JSON.stringify(s.type)}`);
  }
}

export interface Transcoded {
  /** The JSON line (no newline) is out[0..end). */
  end: number;
  /** Where the marked string's characters (no quotes) sit in `out`. */
  markStart: number;
  markEnd: number;
}

export class JsonTranscoder {
  private readonly ops: Op[] = [];
  /** The output buffer; valid until the next call. */
  out = Buffer.allocUnsafe(64 << 10);
  private readonly result: Transcoded = { end: 0, markStart: 0, markEnd: 0 };

  /**
   * @param schema the reader schema (as parsed JSON)
   * @param header the 10 bytes every record of the current writer schema starts with
   * @param mark the dotted path of one string field whose position is reported (e.g. "timestamp")
   */
  constructor(
    schema: object,
    private readonly header: Buffer,
    mark: string,
  ) {
    compile(schema, this.ops, Buffer.alloc(0), '', mark);
  }

  /** The JSON of one record, or undefined when the codec must decide. */
  transcode(src: Buffer): Transcoded | undefined {
    const h = this.header;
    const n = src.length;
    if (n < h.length) return undefined;
    for (let i = 0; i < h.length; i++) if (src[i] !== h[i]) return undefined;
    if (this.out.length < n * 6 + 1024) this.out = Buffer.allocUnsafe(n * 6 + 1024);
    const out = this.out;
    const r = this.result;
    let pos = h.length;
    let p = 0;
    for (const op of this.ops) {
      if (op.t === 'close') {
        out[p++] = 0x7d;
        continue;
      }
      // Small copies by hand: Buffer#copy costs more per call than these few bytes.
      const key = op.key;
      for (let i = 0; i < key.length; i++) out[p++] = key[i]!;
      if (op.t === 'open') {
        out[p++] = 0x7b;
        continue;
      }
      // Zigzag varint: ints and longs, enum indexes and string lengths.
      let v = 0;
      let mul = 1;
      let b: number;
      do {
        if (pos >= n) return undefined;
        b = src[pos++]!;
        v += (b & 0x7f) * mul;
        mul *= 128;
        if (mul > 2 ** 63) return undefined;
      } while (b & 0x80);
      if (v >= 2 * MAX_SAFE) return undefined;
      const value = v % 2 === 0 ? v / 2 : -(v + 1) / 2;
      switch (op.t) {
        case 'string': {
          if (value < 0 || pos + value > n) return undefined;
          const end = pos + value;
          out[p++] = 0x22;
          if (op.mark) r.markStart = p;
          // Copy while checking: anything JSON would escape, or non-ASCII, goes to the codec.
          for (let i = pos; i < end; i++) {
            const c = src[i]!;
            if (c < 0x20 || c === 0x22 || c === 0x5c || c >= 0x7f) return undefined;
            out[p++] = c;
          }
          if (op.mark) r.markEnd = p;
          out[p++] = 0x22;
          pos = end;
          break;
        }
        case 'int':
          if (value < -2147483648 || value > 2147483647) return undefined;
          p = writeNumber(out, p, value);
          break;
        case 'long':
          if (value > MAX_SAFE || value < -MAX_SAFE) return undefined;
          p = writeNumber(out, p, value);
          break;
        case 'enum': {
          const sym = op.symbols[value];
          if (sym === undefined) return undefined;
          for (let i = 0; i < sym.length; i++) out[p++] = sym[i]!;
          break;
        }
      }
    }
    if (pos !== n) return undefined;
    r.end = p;
    return r;
  }
}

function writeNumber(out: Buffer, p: number, value: number): number {
  if (value < 0) {
    out[p++] = 0x2d;
    value = -value;
  }
  if (value < 10) {
    out[p++] = 0x30 + value;
    return p;
  }
  let digits = 0;
  for (let x = value; x >= 1; x = Math.floor(x / 10)) digits++;
  let q = p + digits;
  const end = q;
  while (value >= 1) {
    const next = Math.floor(value / 10);
    out[--q] = 0x30 + (value - next * 10);
    value = next;
  }
  return end;
}

/**
 * Event time (ms) and UTC hour of a timestamp in the spec's exact form,
 * "YYYY-MM-DDTHH:MM:SS.mmmZ", read from bytes; undefined for any other form.
 */
export function fastTime(buf: Buffer, start: number, end: number): number | undefined {
  if (end - start !== 24 || buf[start + 4] !== 0x2d || buf[start + 7] !== 0x2d || buf[start + 10] !== 0x54 || buf[start + 23] !== 0x5a) return undefined;
  if (buf[start + 13] !== 0x3a || buf[start + 16] !== 0x3a || buf[start + 19] !== 0x2e) return undefined;
  const d = (i: number, len: number): number => {
    let v = 0;
    for (let k = 0; k < len; k++) {
      const c = buf[start + i + k]! - 0x30;
      if (c < 0 || c > 9) return Number.NaN;
      v = v * 10 + c;
    }
    return v;
  };
  const mo = d(5, 2);
  const day = d(8, 2);
  const h = d(11, 2);
  const mi = d(14, 2);
  const s = d(17, 2);
  if (!(mo >= 1 && mo <= 12 && day >= 1 && day <= 31 && h <= 23 && mi <= 59 && s <= 59)) return undefined;
  const t = Date.UTC(d(0, 4), mo - 1, day, h, mi, s, d(20, 3));
  // Date.UTC rolls 02-30 over into March: the bytes would then name a partition the time is not in
  if (Number.isNaN(t) || new Date(t).getUTCDate() !== day) return undefined;
  return t;
}
