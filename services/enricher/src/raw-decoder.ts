// The raw topic's messages decoded by hand for the hot path: records of the
// current raw-record.avsc straight from the message bytes, without avsc's Tap,
// its copies of every bytes field, its full isValid() pass after each record
// and a BigInt per fingerprint lookup. It accepts exactly what avsc accepts
// for that schema, and gives the same values (plain objects rather than
// avsc's record classes; saddr/daddr as interned Buffers shared by every
// record of the address, never written to: lib/addresses.ts). Anything else, an older writer
// schema or a record it cannot read, goes to the codec (rawRecordCodec()),
// which decodes it or throws the DecodeError naming why
// (test/raw-decoder.test.ts compares the two, corrupt input included).
import type {
  DnsResponse,
  ProcessExec,
  ProcessExit,
  ProcessFork,
  RawPayload,
  RawRecord,
  SecureExecFlag,
  SensorStatus,
  SocketEvent,
  TaskFacts,
} from '@netmon/common';
import { AddressInterner } from './lib/addresses';

interface Codec {
  readonly header: Buffer;
  decodeAll(bytes: Uint8Array): RawRecord[];
}

/** Thrown inside the fast path: the codec decides. Preallocated: no stack trace per bail. */
const BAIL = new Error('raw-decoder: left to the codec');

const SOCKET_KINDS: readonly SocketEvent['kind'][] = ['ESTABLISH', 'ACCEPT', 'CLOSE', 'LISTEN'];
const FAMILIES: readonly SocketEvent['family'][] = ['INET', 'INET6'];
const SECURE_EXEC: readonly SecureExecFlag[] = ['SETUID', 'SETGID', 'FILE_CAPS', 'FILELESS_EXEC'];
const TRANSPORTS: readonly DnsResponse['transport'][] = ['UDP', 'TCP'];
/** avsc's bounds of a long held in a double. */
const MAX_SAFE_LONG = 9007199254740990;

/** Node's Buffer method that avsc's readString uses (not in the typings). */
type Utf8Slicer = Buffer & { utf8Slice(start: number, end: number): string };

export class RawDecoder {
  private buf: Utf8Slicer = Buffer.alloc(0) as Utf8Slicer;
  private pos = 0;
  private readonly addresses = new AddressInterner();

  constructor(private readonly codec: Codec) {}

  /** The records of one raw message, as codec.decodeAll gives them; throws its DecodeError. */
  decodeAll(message: Buffer): RawRecord[] {
    try {
      return this.fast(message);
    } catch (err) {
      if (err !== BAIL && !(err instanceof RangeError)) throw err;
      return this.codec.decodeAll(message);
    } finally {
      this.buf = EMPTY;
    }
  }

  private fast(message: Buffer): RawRecord[] {
    const header = this.codec.header;
    this.buf = message as Utf8Slicer;
    this.pos = 0;
    const out: RawRecord[] = [];
    const end = message.length;
    if (end === 0) throw BAIL;
    while (this.pos < end) {
      const at = this.pos;
      if (end - at < header.length) throw BAIL;
      for (let i = 0; i < header.length; i++) if (message[at + i] !== header[i]) throw BAIL;
      this.pos = at + header.length;
      out.push(this.record());
    }
    return out;
  }

  private record(): RawRecord {
    const host_id = this.string();
    const hostname = this.string();
    const run_id = this.string();
    const seq = this.long();
    const time_us = this.long();
    let payload: RawPayload;
    switch (this.varint()) {
      case 0:
        payload = { 'netmon.raw.SocketEvent': this.socket() };
        break;
      case 1:
        payload = { 'netmon.raw.ProcessExec': this.exec() };
        break;
      case 2:
        payload = { 'netmon.raw.ProcessExit': this.exit() };
        break;
      case 3:
        payload = { 'netmon.raw.ProcessFork': this.fork() };
        break;
      case 4:
        payload = { 'netmon.raw.SensorStatus': this.status() };
        break;
      case 5:
        payload = { 'netmon.raw.DnsResponse': this.dns() };
        break;
      default:
        throw BAIL;
    }
    return { host_id, hostname, run_id, seq, time_us, payload };
  }

  private socket(): SocketEvent {
    const kind = this.symbol(SOCKET_KINDS);
    const task = this.task();
    const family = this.symbol(FAMILIES);
    const saddr = this.address();
    const daddr = this.address();
    const sport = this.int();
    const dport = this.int();
    const cookie = this.long();
    const netns = this.long();
    const opened_ktime_us = this.long();
    const handshake = this.boolean();
    const error = this.int();
    const state = this.int();
    const bytes_acked = this.long();
    const bytes_received = this.long();
    return { kind, task, family, saddr, daddr, sport, dport, cookie, netns, opened_ktime_us, handshake, error, state, bytes_acked, bytes_received };
  }

  private task(): TaskFacts {
    const pid = this.int();
    const tid = this.int();
    const ppid = this.int();
    const uid = this.long();
    const euid = this.long();
    const auid = this.long();
    const cap_inheritable = this.long();
    const cap_permitted = this.long();
    const cap_effective = this.long();
    const comm = this.string();
    const cgroup_id = this.long();
    const cgroup_path = this.string();
    const start_time_us = this.long();
    const ktime_us = this.long();
    return { pid, tid, ppid, uid, euid, auid, cap_inheritable, cap_permitted, cap_effective, comm, cgroup_id, cgroup_path, start_time_us, ktime_us };
  }

  private exec(): ProcessExec {
    const task = this.task();
    const snapshot = this.boolean();
    const binary_path = this.string();
    const args: string[] = [];
    for (let n = this.block(); n > 0; n = this.block()) while (n-- > 0) args.push(this.string());
    const args_truncated = this.boolean();
    const secureexec: SecureExecFlag[] = [];
    for (let n = this.block(); n > 0; n = this.block()) while (n-- > 0) secureexec.push(this.symbol(SECURE_EXEC));
    return { task, snapshot, binary_path, args, args_truncated, secureexec };
  }

  private exit(): ProcessExit {
    const pid = this.int();
    const tid = this.int();
    const start_time_us = this.long();
    const exit_code = this.int();
    return { pid, tid, start_time_us, exit_code };
  }

  private fork(): ProcessFork {
    const task = this.task();
    const parent_pid = this.int();
    const parent_start_time_us = this.long();
    return { task, parent_pid, parent_start_time_us };
  }

  private status(): SensorStatus {
    const seen = this.long();
    const lost_kernel = this.long();
    const spooled = this.long();
    const dropped = this.long();
    const spool_bytes = this.long();
    return { seen, lost_kernel, spooled, dropped, spool_bytes };
  }

  private dns(): DnsResponse {
    const netns = this.long();
    const transport = this.symbol(TRANSPORTS);
    // A copy: the DNS cache may keep parts of it, and must not pin the message.
    const payload = Buffer.from(this.bytesView());
    const truncated = this.boolean();
    return { netns, transport, payload, truncated };
  }

  /**
   * An array block's item count (after avsc's patched ArrayType._read in
   * @netmon/common: a negative count is followed by the block's size, a count
   * past the bytes left is corrupt); 0 ends the array.
   */
  private block(): number {
    let n = this.varint();
    if (n < 0) {
      n = -n;
      this.varint(); // the block's size in bytes
    }
    if (n > this.buf.length - this.pos) throw BAIL;
    return n;
  }

  private symbol<T>(symbols: readonly T[]): T {
    const i = this.varint();
    if (!(i >= 0 && i < symbols.length)) throw BAIL;
    return symbols[i]!;
  }

  private boolean(): boolean {
    if (this.pos >= this.buf.length) throw BAIL;
    return this.buf[this.pos++] !== 0;
  }

  private int(): number {
    const n = this.varint();
    if (n !== (n | 0)) throw BAIL;
    return n;
  }

  private long(): number {
    const n = this.varint();
    if (!(n >= -MAX_SAFE_LONG && n <= MAX_SAFE_LONG)) throw BAIL;
    return n;
  }

  private string(): string {
    const start = this.span();
    return this.buf.utf8Slice(start, this.pos);
  }

  /** A socket address: the interner's shared Buffer (see lib/addresses.ts). */
  private address(): Buffer {
    const start = this.span();
    return this.addresses.intern(this.buf, start, this.pos - start);
  }

  private bytesView(): Buffer {
    const start = this.span();
    return this.buf.subarray(start, this.pos);
  }

  /** A length-prefixed field (string or bytes): checks it fits, moves past it, returns where it starts. */
  private span(): number {
    const len = this.varint();
    const start = this.pos;
    if (len < 0 || start + len > this.buf.length) throw BAIL;
    this.pos = start + len;
    return start;
  }

  /** A zigzag varint, as avsc's Tap.readLong reads it (floating arithmetic past 28 bits). */
  private varint(): number {
    const buf = this.buf;
    const end = buf.length;
    let pos = this.pos;
    let n = 0;
    let k = 0;
    let b: number;
    do {
      if (pos >= end) throw BAIL;
      b = buf[pos++]!;
      n |= (b & 0x7f) << k;
      k += 7;
    } while (b & 0x80 && k < 28);
    if (b & 0x80) {
      let f = n;
      let fk = 268435456;
      do {
        if (pos >= end) throw BAIL;
        b = buf[pos++]!;
        f += (b & 0x7f) * fk;
        fk *= 128;
      } while (b & 0x80);
      this.pos = pos;
      return (f % 2 ? -(f + 1) : f) / 2;
    }
    this.pos = pos;
    return (n >> 1) ^ -(n & 1);
  }
}

const EMPTY = Buffer.alloc(0) as Utf8Slicer;
