// Avro single-object encoding (Avro specification, "Single-object encoding"):
// C3 01, the 8-byte little-endian CRC-64-AVRO fingerprint of the writer schema's
// Parsing Canonical Form, then the Avro binary body. A reader needs nothing but
// the .avsc files: the fingerprint names the writer schema, and the body is
// resolved from that writer schema to the reader's current one.
import avro from 'avsc';
import { DecodeError } from '../errors';
import { canonicalForm } from './canonical';
import { crc64Avro } from './crc64';

const MAGIC_0 = 0xc3;
const MAGIC_1 = 0x01;
const HEADER_BYTES = 10;

type Resolver = ReturnType<avro.Type['createResolver']>;

/**
 * avsc trusts an array's block count: a 56-byte record claiming 10^9 items
 * makes it allocate and loop 10^9 times (the process runs out of memory). No
 * item of a contract's arrays (strings, enums) takes less than one byte, so a
 * count past the bytes left is a corrupt record, refused at once. Patched on
 * the prototype before any type is built: resolvers of older writer schemas
 * take their `_read` from it too.
 */
interface AvscTap {
  buf: Buffer;
  pos: number;
  readLong(): number;
  skipLong(): void;
}
interface AvscArrayType {
  itemsType: { _read(tap: AvscTap): unknown };
}
const ArrayTypeProto = (avro.types.ArrayType as unknown as { prototype: { _read(this: AvscArrayType, tap: AvscTap): unknown[] } }).prototype;
ArrayTypeProto._read = function (this: AvscArrayType, tap: AvscTap): unknown[] {
  const items = this.itemsType;
  let out: unknown[] | undefined;
  let i = 0;
  for (let n = tap.readLong(); n !== 0; n = tap.readLong()) {
    if (n < 0) {
      n = -n;
      tap.skipLong(); // the block's size in bytes
    }
    if (n > tap.buf.length - tap.pos) throw new RangeError(`an array block of ${n} items in ${Math.max(0, tap.buf.length - tap.pos)} bytes`);
    out ??= new Array(n);
    while (n-- > 0) out[i++] = items._read(tap);
  }
  return out ?? [];
};

/** The 8 fingerprint bytes (little-endian) of a schema's canonical form. */
export function fingerprint(schema: object | string): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(crc64Avro(Buffer.from(canonicalForm(schema as never), 'utf8')));
  return out;
}

/**
 * Encodes values of one schema and decodes values written with it or with any
 * of its older versions (`history`), resolved to it.
 */
export class SingleObjectCodec<T> {
  readonly type: avro.Type;
  readonly header: Buffer;
  private readonly readers = new Map<bigint, avro.Type | Resolver>();
  private scratch = Buffer.alloc(4096);

  constructor(schema: object, history: readonly object[] = []) {
    this.type = avro.Type.forSchema(schema as avro.Schema);
    const fp = fingerprint(schema);
    this.header = Buffer.concat([Buffer.from([MAGIC_0, MAGIC_1]), fp]);
    this.readers.set(fp.readBigUInt64LE(0), this.type);
    for (const old of history) {
      const writer = avro.Type.forSchema(old as avro.Schema);
      this.readers.set(fingerprint(old).readBigUInt64LE(0), this.type.createResolver(writer));
    }
  }

  /** The schema's fingerprint as 16 hex digits (little-endian byte order). */
  get fingerprintHex(): string {
    return this.header.subarray(2).toString('hex');
  }

  encode(value: T): Buffer {
    this.header.copy(this.scratch, 0);
    let end = this.type.encode(value, this.scratch, HEADER_BYTES);
    while (end < 0) {
      // avsc returns minus the missing byte count when the buffer is too small.
      this.scratch = Buffer.alloc(Math.max(this.scratch.length * 2, this.scratch.length - end));
      this.header.copy(this.scratch, 0);
      end = this.type.encode(value, this.scratch, HEADER_BYTES);
    }
    return Buffer.from(this.scratch.subarray(0, end));
  }

  /** Decodes one record; every failure is a DecodeError naming the reason. */
  decode(bytes: Uint8Array): T {
    const buf = asBuffer(bytes);
    const { value, end } = this.decodeAt(buf, 0);
    if (end !== buf.length) throw new DecodeError('trailing-bytes', `${buf.length - end} bytes after the record`);
    return value;
  }

  /**
   * Decodes records written back to back (a packed Kafka message of the raw
   * topic). Each is a complete single-object encoding, so a reader needs
   * nothing more to split them.
   */
  decodeAll(bytes: Uint8Array): T[] {
    const buf = asBuffer(bytes);
    const out: T[] = [];
    for (let pos = 0; pos < buf.length; ) {
      try {
        const { value, end } = this.decodeAt(buf, pos);
        out.push(value);
        pos = end;
      } catch (err) {
        if (err instanceof DecodeError && out.length > 0) {
          throw new DecodeError(err.reason, `record ${out.length} at byte ${pos}: ${err.message}`, { cause: err });
        }
        throw err;
      }
    }
    if (out.length === 0) throw new DecodeError('too-short', 'no record');
    return out;
  }

  private decodeAt(buf: Buffer, pos: number): { value: T; end: number } {
    if (buf.length - pos < HEADER_BYTES) throw new DecodeError('too-short', `${buf.length - pos} bytes, the header alone is ${HEADER_BYTES}`);
    if (buf[pos] !== MAGIC_0 || buf[pos + 1] !== MAGIC_1) {
      throw new DecodeError('bad-magic', `starts with ${buf.subarray(pos, pos + 2).toString('hex')}, expected c301`);
    }
    const reader = this.readers.get(buf.readBigUInt64LE(pos + 2));
    if (!reader) {
      throw new DecodeError(
        'unknown-fingerprint',
        `writer schema ${buf.subarray(pos + 2, pos + HEADER_BYTES).toString('hex')} is not a known version of ${this.type.name}`,
      );
    }
    let result: { value: unknown; offset: number };
    try {
      result = reader === this.type ? this.type.decode(buf, pos + HEADER_BYTES) : this.type.decode(buf, pos + HEADER_BYTES, reader as Resolver);
    } catch (err) {
      throw new DecodeError('corrupt-body', (err as Error).message, { cause: err });
    }
    if (result.offset < 0) throw new DecodeError('corrupt-body', 'body ends before the record does');
    // avsc reads an out-of-range enum or union index as undefined instead of
    // failing: check the value so that garbage never reaches a consumer.
    if (!this.type.isValid(result.value)) throw new DecodeError('corrupt-body', 'decoded value does not match the schema');
    return { value: result.value as T, end: result.offset };
  }
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
