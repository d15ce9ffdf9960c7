// The hot path: an Avro single-object record straight to its JSON line, bytes to
// bytes, without building the JavaScript object and its strings first. The
// output is byte-for-byte JSON.stringify(codec.decode(bytes)) (a unit test holds
// it to that on random and nasty records: escapes, control characters, UTF-8);
// anything unusual (an older writer schema, a string that is not well-formed
// UTF-8, a long past 2^52, a bad enum index, trailing bytes) answers
// `undefined` and the caller takes the codec's path, which also produces the
// precise DecodeError.
//
// Compiled here once from the reader schema: records, string, int, long, enum
// (what NetworkEvent uses); any other type disables the fast path altogether.
// The program is flat: the constant JSON text between two values (closing
// braces, the next key, opening braces) is merged into one run of bytes, so a
// record is "constant, value, constant, value, ..., constant". The archiver's
// addon (native/src/json_transcoder.cc) runs it, one call per record.
//
// Speed (CPU per NetworkEvent of the archiver benchmark, about 760 bytes of
// JSON): 0.42-0.47 µs a record in C++, the call included; 1.38-1.5 µs when
// the loop was JavaScript (2.6 µs with one object per step). The archiver's
// main thread went from 2.2-2.4 to 1.4-1.6 CPU-s per million events.
import path from 'node:path';

const STRING = 0;
const INT = 1;
const LONG = 2;
const ENUM = 3;

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

/** The interpreter of one program (native/src/json_transcoder.cc, built by `npm run build`): the record's JSON at out[at..end), or -1. */
type Run = ((src: Buffer, out: Buffer, at: number) => number) & { readonly fixedBytes: number };
// dist/src -> services/archiver/native/build/Release
const addon = require(path.join(__dirname, '../../native/build/Release/json_transcoder.node')) as {
  transcoder(kinds: Uint8Array, consts: Buffer[], symbols: (Buffer[] | undefined)[], header: Buffer, mark: number, marks: Int32Array): Run;
};

/** Output room reserved per record beyond 6 bytes per input byte: the schema's constant text, numbers and quotes must fit. */
const FIXED_ROOM = 1024;

export class JsonTranscoder {
  private readonly run: Run;
  /** Where the native side writes the marked string's bounds (an ArrayBuffer of its own: its memory never moves). */
  private readonly marks = new Int32Array(new ArrayBuffer(8));
  /** The default output buffer; valid until the next call. */
  out = Buffer.allocUnsafe(64 << 10);
  private readonly result: Transcoded = { start: 0, end: 0, markStart: 0, markEnd: 0 };

  /**
   * @param schema the reader schema (as parsed JSON)
   * @param header the 10 bytes every record of the current writer schema starts with
   * @param mark the dotted path of one string field whose position is reported (e.g. "timestamp")
   */
  constructor(schema: object, header: Buffer, mark: string) {
    const prog: Program = { kinds: [], consts: [], symbols: [], pending: '', mark: -1 };
    compile(schema, prog, '', mark);
    const consts = [...prog.consts, Buffer.from(prog.pending, 'utf8')];
    this.run = addon.transcoder(Uint8Array.from(prog.kinds), consts, prog.symbols, header, prog.mark, this.marks);
    if (this.run.fixedBytes > FIXED_ROOM) throw new Error(`no fast path: a record's constant text may take ${this.run.fixedBytes} bytes`);
  }

  /** The most output one record of `srcBytes` can give (every string byte escaped as \u00xx). */
  static maxOutput(srcBytes: number): number {
    return srcBytes * 6 + FIXED_ROOM;
  }

  /**
   * The JSON of one record, written at into[at..] (by default at the start of
   * `out`), or undefined when the codec must decide. `into` must have
   * maxOutput(src.length) bytes of room from `at`.
   */
  transcode(src: Buffer, into?: Buffer, at = 0): Transcoded | undefined {
    const room = JsonTranscoder.maxOutput(src.length);
    if (!into && this.out.length < room) this.out = Buffer.allocUnsafe(room);
    const out = into ?? this.out;
    if (out.length - at < room) throw new RangeError(`transcode: ${out.length - at} bytes of room, ${room} needed`);
    const end = this.run(src, out, at);
    if (end < 0) return undefined;
    const r = this.result;
    r.start = at;
    r.end = end;
    r.markStart = this.marks[0]!;
    r.markEnd = this.marks[1]!;
    return r;
  }
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
