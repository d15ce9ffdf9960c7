// The hot path: an Avro single-object record straight to its JSON line, bytes to
// bytes, without building the JavaScript object and its strings first. The
// output is byte-for-byte JSON.stringify(codec.decode(bytes)) (a unit test holds
// it to that on random and nasty records: escapes, control characters, UTF-8);
// anything unusual (an older writer schema, a string that is not well-formed
// UTF-8, a long past 2^52, a bad enum index, trailing bytes) answers
// `undefined` and the caller takes the codec's path, which also produces the
// precise DecodeError.
//
// Compiled once from the reader schema: records, string, int, long, enum (what
// NetworkEvent uses); any other type disables the fast path altogether. The
// program is flat: the constant JSON text between two values (closing braces,
// the next key, opening braces) is merged into one run of bytes, so a record
// is "constant, value, constant, value, ..., constant".
//
// Speed (CPU per NetworkEvent of the archiver benchmark, about 720 bytes of
// JSON: 1.5 µs, was 2.6 µs with one object per step): monomorphic typed
// arrays, one-byte varints read with integer arithmetic, a 256-entry table
// telling which bytes of a string copy as they are. Escaping and UTF-8 are
// handled here too (they used to send the record to the codec's path, 10x
// slower): quotes in process args are common.

const STRING = 0;
const INT = 1;
const LONG = 2;
const ENUM = 3;

// avsc reads longs up to 2^52 in magnitude as numbers (beyond: its own handling), so does the fast path.
const MAX_SAFE = 2 ** 52;

/** Per byte of a string: 0 copy as is, 1 escape (JSON.stringify's form), 2 a UTF-8 lead or continuation byte. */
const CLASS = new Uint8Array(256);
for (let c = 0; c < 0x20; c++) CLASS[c] = 1;
CLASS[0x22] = 1;
CLASS[0x5c] = 1;
for (let c = 0x80; c < 0x100; c++) CLASS[c] = 2;

/** JSON.stringify's escape of each byte of class 1: \" \\ \b \t \n \f \r, else \u00xx (lowercase hex). */
const ESCAPES: Buffer[] = [];
for (let c = 0; c < 0x60; c++) {
  const short: Record<number, string> = { 0x08: '\\b', 0x09: '\\t', 0x0a: '\\n', 0x0c: '\\f', 0x0d: '\\r', 0x22: '\\"', 0x5c: '\\\\' };
  ESCAPES.push(Buffer.from(short[c] ?? `\\u${c.toString(16).padStart(4, '0')}`, 'latin1'));
}

/** The program being compiled: values, and the constant text before each (and after the last). */
interface Program {
  kinds: number[];
  consts: Buffer[];
  symbols: (Buffer[] | undefined)[];
  pending: string;
  mark: number;
}

function value(prog: Program, kind: number, symbols?: Buffer[]): void {
  prog.kinds.push(kind);
  prog.consts.push(Buffer.from(prog.pending, 'utf8'));
  prog.symbols.push(symbols);
  prog.pending = '';
}

function compile(schema: unknown, prog: Program, path: string, markPath: string): void {
  const s = typeof schema === 'string' ? { type: schema } : (schema as { type: unknown; fields?: { name: string; type: unknown }[]; symbols?: string[] });
  if (typeof s.type === 'object' && s.type !== null) {
    compile(s.type, prog, path, markPath);
    return;
  }
  switch (s.type) {
    case 'string':
      if (path === markPath) prog.mark = prog.kinds.length;
      value(prog, STRING);
      return;
    case 'int':
      value(prog, INT);
      return;
    case 'long':
      value(prog, LONG);
      return;
    case 'enum':
      value(
        prog,
        ENUM,
        s.symbols!.map((x) => Buffer.from(JSON.stringify(x))),
      );
      return;
    case 'record': {
      prog.pending += '{';
      s.fields!.forEach((f, i) => {
        prog.pending += `${i === 0 ? '' : ','}${JSON.stringify(f.name)}:`;
        compile(f.type, prog, path ? `${path}.${f.name}` : f.name, markPath);
      });
      prog.pending += '}';
      return;
    }
    default:
      throw new Error(`no fast path for Avro type ${JSON.stringify(s.type)}`);
  }
}

export interface Transcoded {
  /** The JSON line (no newline) is out[start..end). */
  start: number;
  end: number;
  /** Where the marked string's characters (no quotes) sit in `out`. */
  markStart: number;
  markEnd: number;
}

export class JsonTranscoder {
  private readonly kinds: Uint8Array;
  /** consts[i] is written before value i; consts[kinds.length] closes the record. */
  private readonly consts: Buffer[];
  private readonly symbols: (Buffer[] | undefined)[];
  private readonly mark: number;
  /** The default output buffer; valid until the next call. */
  out = Buffer.allocUnsafe(64 << 10);
  private readonly result: Transcoded = { start: 0, end: 0, markStart: 0, markEnd: 0 };

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
    const prog: Program = { kinds: [], consts: [], symbols: [], pending: '', mark: -1 };
    compile(schema, prog, '', mark);
    this.consts = [...prog.consts, Buffer.from(prog.pending, 'utf8')];
    this.kinds = Uint8Array.from(prog.kinds);
    this.symbols = prog.symbols;
    this.mark = prog.mark;
  }

  /** The most output one record of `srcBytes` can give (every string byte escaped as \u00xx). */
  static maxOutput(srcBytes: number): number {
    return srcBytes * 6 + 1024;
  }

  /**
   * The JSON of one record, written at into[at..] (by default at the start of
   * `out`), or undefined when the codec must decide. `into` must have
   * maxOutput(src.length) bytes of room from `at`.
   */
  transcode(src: Buffer, into?: Buffer, at = 0): Transcoded | undefined {
    const h = this.header;
    const n = src.length;
    if (n < h.length) return undefined;
    for (let i = 0; i < h.length; i++) if (src[i] !== h[i]) return undefined;
    const room = JsonTranscoder.maxOutput(n);
    if (!into && this.out.length < room) this.out = Buffer.allocUnsafe(room);
    const out = into ?? this.out;
    if (out.length - at < room) throw new RangeError(`transcode: ${out.length - at} bytes of room, ${room} needed`);
    const r = this.result;
    const kinds = this.kinds;
    const consts = this.consts;
    let pos = h.length;
    let p = at;
    for (let k = 0; k < kinds.length; k++) {
      // Short runs by hand: a call costs more than copying these few bytes.
      const c = consts[k]!;
      if (c.length > 8) {
        out.set(c, p);
        p += c.length;
      } else for (let i = 0; i < c.length; i++) out[p++] = c[i]!;
      // Zigzag varint: ints and longs, enum indexes and string lengths.
      if (pos >= n) return undefined;
      let b = src[pos++]!;
      let value: number;
      if (b < 0x80) value = b & 1 ? -((b + 1) >>> 1) : b >>> 1;
      else {
        let v = b & 0x7f;
        let mul = 128;
        do {
          if (pos >= n) return undefined;
          b = src[pos++]!;
          v += (b & 0x7f) * mul;
          mul *= 128;
          if (mul > 2 ** 63) return undefined;
        } while (b & 0x80);
        if (v >= 2 * MAX_SAFE) return undefined;
        value = v % 2 === 0 ? v / 2 : -(v + 1) / 2;
      }
      switch (kinds[k]) {
        case STRING: {
          if (value < 0 || pos + value > n) return undefined;
          const end = pos + value;
          out[p++] = 0x22;
          if (k === this.mark) r.markStart = p;
          p = copyString(src, pos, end, out, p);
          if (p < 0) return undefined;
          if (k === this.mark) r.markEnd = p;
          out[p++] = 0x22;
          pos = end;
          break;
        }
        case INT:
          if (value < -2147483648 || value > 2147483647) return undefined;
          p = writeNumber(out, p, value);
          break;
        case LONG:
          if (value > MAX_SAFE || value < -MAX_SAFE) return undefined;
          p = writeNumber(out, p, value);
          break;
        default: {
          const sym = this.symbols[k]![value];
          if (sym === undefined) return undefined;
          for (let i = 0; i < sym.length; i++) out[p++] = sym[i]!;
        }
      }
    }
    const tail = consts[kinds.length]!;
    for (let i = 0; i < tail.length; i++) out[p++] = tail[i]!;
    if (pos !== n) return undefined;
    r.start = at;
    r.end = p;
    return r;
  }
}

/**
 * src[pos..end) as the characters of a JSON string at out[p..]: escaped as
 * JSON.stringify escapes, well-formed UTF-8 copied as it is. Returns the new
 * end of the output, or -1 for bytes that are not well-formed UTF-8 (their
 * decoding puts U+FFFD in: the codec's path knows how).
 */
function copyString(src: Buffer, pos: number, end: number, out: Buffer, p: number): number {
  let i = pos;
  while (i < end) {
    const c = src[i]!;
    const cls = CLASS[c]!;
    if (cls === 0) {
      out[p++] = c;
      i++;
    } else if (cls === 1) {
      const e = ESCAPES[c]!;
      for (let j = 0; j < e.length; j++) out[p++] = e[j]!;
      i++;
    } else {
      const len = utf8Length(src, i, end);
      if (len === 0) return -1;
      for (let j = 0; j < len; j++) out[p++] = src[i + j]!;
      i += len;
    }
  }
  return p;
}

/** The length of the well-formed UTF-8 sequence at src[i] (a byte >= 0x80), or 0 (Unicode Table 3-7). */
function utf8Length(src: Buffer, i: number, end: number): number {
  const c = src[i]!;
  const cont = (at: number, lo = 0x80, hi = 0xbf) => at < end && src[at]! >= lo && src[at]! <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(i + 1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    // E0: no overlong forms; ED: no surrogates
    const ok = c === 0xe0 ? cont(i + 1, 0xa0) : c === 0xed ? cont(i + 1, 0x80, 0x9f) : cont(i + 1);
    return ok && cont(i + 2) ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    // F0: no overlong forms; F4: nothing past U+10FFFF
    const ok = c === 0xf0 ? cont(i + 1, 0x90) : c === 0xf4 ? cont(i + 1, 0x80, 0x8f) : cont(i + 1);
    return ok && cont(i + 2) && cont(i + 3) ? 4 : 0;
  }
  return 0;
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
  if (value < 2147483648) {
    // Small integer arithmetic: most fields (ports, pids, uids) fit.
    let v = value | 0;
    let digits = 1;
    for (let x = v; x >= 10; x = (x / 10) | 0) digits++;
    const endSmall = p + digits;
    let q = endSmall;
    do {
      const next = (v / 10) | 0;
      out[--q] = 0x30 + (v - next * 10);
      v = next;
    } while (v > 0);
    return endSmall;
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

/** The decimal number of buf[at..at+len), or NaN if a byte is not a digit. */
function digits(buf: Buffer, at: number, len: number): number {
  let v = 0;
  for (let k = 0; k < len; k++) {
    const c = buf[at + k]! - 0x30;
    if (c < 0 || c > 9) return Number.NaN;
    v = v * 10 + c;
  }
  return v;
}

/**
 * Milliseconds into the hour of the "MM:SS.mmmZ" that ends a timestamp in the
 * spec's form at buf[start..start+24) (the hour before it is not looked at),
 * or undefined for any other form.
 */
export function msIntoHour(buf: Buffer, start: number): number | undefined {
  if (buf[start + 13] !== 0x3a || buf[start + 16] !== 0x3a || buf[start + 19] !== 0x2e || buf[start + 23] !== 0x5a) return undefined;
  const mi = digits(buf, start + 14, 2);
  const s = digits(buf, start + 17, 2);
  const ms = digits(buf, start + 20, 3);
  if (!(mi <= 59 && s <= 59 && ms >= 0)) return undefined;
  return (mi * 60 + s) * 1000 + ms;
}

/**
 * Event time (ms) of a timestamp in the spec's exact form,
 * "YYYY-MM-DDTHH:MM:SS.mmmZ", read from bytes; undefined for any other form.
 */
export function fastTime(buf: Buffer, start: number, end: number): number | undefined {
  if (end - start !== 24 || buf[start + 4] !== 0x2d || buf[start + 7] !== 0x2d || buf[start + 10] !== 0x54) return undefined;
  const inHour = msIntoHour(buf, start);
  if (inHour === undefined) return undefined;
  const mo = digits(buf, start + 5, 2);
  const day = digits(buf, start + 8, 2);
  const h = digits(buf, start + 11, 2);
  if (!(mo >= 1 && mo <= 12 && day >= 1 && day <= 31 && h <= 23)) return undefined;
  const t = Date.UTC(digits(buf, start, 4), mo - 1, day, h);
  // Date.UTC rolls 02-30 over into March: the bytes would then name a partition the time is not in
  if (Number.isNaN(t) || new Date(t).getUTCDate() !== day) return undefined;
  return t + inHour;
}
