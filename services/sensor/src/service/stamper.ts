// Turns the kernel's records and other payloads into encoded RawRecords: host,
// run id and the per-run sequence number that lets every consumer see gaps and
// duplicates.
//
// Hot path. A RawRecord starts with host_id, hostname and run_id, the same for
// every record of a run: their bytes (after the single-object header) are
// encoded once, and each record only adds seq, time_us and its payload.
//
// Socket records, nearly all of the stream, go from the kernel's layout
// (probe/layout.ts) straight to Avro binary, written by a few lines below
// into a shared slab as runs of records (runs.ts): no payload object, no
// string, no buffer per record (the decoder's objects and avsc's generic
// union writer cost several times more per record). stamper.test.ts checks
// every byte against the decoder + avsc.
// The other kinds (exec, fork, exit, DNS, status: a few per second) are
// decoded into payloads and written by avsc.
import { randomUUID } from 'node:crypto';
import { type RawPayloadOf, rawRecordCodec, wrapPayload } from '@netmon/common';
import avro from 'avsc';
import { AF_INET, COMM_LEN, MAX_CGROUP_PATH, SOCK, SockFlag, TASK, TUPLE } from '../probe/layout';
import { type DecodeOptions, SOCKET_KIND, decodeRecord, forEachRecord, openedKtimeUs, wallTimeUs } from '../probe/records';
import type { HostIdentity } from './identity';
import { MAX_MESSAGE_BYTES, MAX_RECORDS_PER_MESSAGE, type RecordRun, runOf } from './runs';
import { SlabPool } from './slabs';

const LONG = avro.Type.forSchema('long');
const STRING = avro.Type.forSchema('string');
/** Branch indexes in RawRecord's payload union and its enums (checked against the schema at start). */
const SOCKET_BRANCH = 0;
const SOCKET_KINDS = ['ESTABLISH', 'ACCEPT', 'CLOSE', 'LISTEN'];
const FAMILIES = ['INET', 'INET6'];
/** Avro enum index of each socket kind, by enum netmon_kind (undefined: not a socket record). */
const SOCKET_KIND_INDEX: number[] = [];
for (const [kind, name] of Object.entries(SOCKET_KIND)) SOCKET_KIND_INDEX[Number(kind)] = SOCKET_KINDS.indexOf(name);
const KIND_CLOSE = SOCKET_KINDS.indexOf('CLOSE');
/**
 * A socket record's largest size past its prefix: 30 longs of 10 bytes at
 * most, two addresses, and comm and cgroup path at 3 bytes per kernel byte
 * (an invalid UTF-8 byte becomes U+FFFD).
 */
const SOCKET_MAX = 30 * 10 + 2 * 17 + 3 * (COMM_LEN + MAX_CGROUP_PATH);
/**
 * Socket records are written into slabs (slabs.ts) reused once sent; a run
 * never spans two, so a run stays within a message's bytes.
 */
const SLAB_BYTES = MAX_MESSAGE_BYTES;

/** Avro long (zigzag varint) at `pos`; exact for |n| < 2^52, as every value here is. */
function writeLong(buf: Buffer, pos: number, n: number): number {
  // the common case in 32-bit integer arithmetic
  if (n >= 0 && n < 0x40000000) return writeSmall(buf, pos, n << 1);
  // Times in µs (about 2^51) and u64s: the low 28 bits and the rest as two
  // integers, not a float division (and fmod) per 7 bits.
  const z = n >= 0 ? n * 2 : -n * 2 - 1;
  const high = Math.floor(z / 0x10000000);
  let low = z - high * 0x10000000;
  if (high === 0) return writeSmall(buf, pos, low);
  for (let i = 0; i < 4; i++) {
    buf[pos++] = (low & 0x7f) | 0x80;
    low >>>= 7;
  }
  return writeSmall(buf, pos, high);
}

/** The varint of 0 <= n < 2^31 (already zigzagged). */
function writeSmall(buf: Buffer, pos: number, n: number): number {
  while (n > 0x7f) {
    buf[pos++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  buf[pos++] = n;
  return pos;
}

/**
 * A little-endian u32 of the kernel's record: plain element reads, which the
 * JIT turns into loads (readUInt32LE checks its argument and bounds per call).
 * The caller stays within the record, which forEachRecord checked.
 */
function u32(buf: Buffer, at: number): number {
  return (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16)) + buf[at + 3]! * 0x1000000;
}

/** A little-endian u64 of the kernel's record, as records.ts's u64 reads it. */
function le64(buf: Buffer, at: number): number {
  const high = u32(buf, at + 4);
  return high === 0 ? u32(buf, at) : high * 4294967296 + u32(buf, at);
}

/** Avro long of a little-endian u64 in the kernel's record. */
function writeU64(out: Buffer, pos: number, buf: Buffer, at: number): number {
  return writeLong(out, pos, le64(buf, at));
}

/** UTF-8 of the few distinct non-ASCII strings a host's records repeat, bounded. */
class Utf8Cache {
  private readonly map = new Map<string, Buffer>();
  get(text: string): Buffer {
    let b = this.map.get(text);
    if (b === undefined) {
      if (this.map.size >= 4096) this.map.clear();
      b = Buffer.from(text, 'utf8');
      this.map.set(text, b);
    }
    return b;
  }
}

export class RecordStamper {
  readonly runId = randomUUID();
  private nextSeq = 0;
  private readonly prefix: Buffer;
  private readonly payloadType: avro.Type;
  private scratch = Buffer.alloc(64 * 1024);
  private readonly slabs = new SlabPool(SLAB_BYTES);
  private readonly strings = new Utf8Cache();
  /** Bytes of the last long string's length (cgroup paths repeat): where writeCString copies to. */
  private lastLengthBytes = 2;

  constructor(host: HostIdentity) {
    const codec = rawRecordCodec();
    const fields = (codec.type as avro.types.RecordType).fields;
    const names = fields.map((f) => f.name).join(',');
    // The shortcut below is only right for this field order.
    if (names !== 'host_id,hostname,run_id,seq,time_us,payload') throw new Error(`RawRecord fields changed (${names}): update RecordStamper`);
    this.payloadType = fields[5]!.type;
    checkSocketLayout(this.payloadType);
    this.prefix = Buffer.concat([codec.header, STRING.toBuffer(host.id), STRING.toBuffer(host.hostname), STRING.toBuffer(this.runId)]);
  }

  /** The publisher is done with these runs (sent, spooled or dropped): their memory may be reused. */
  release(runs: readonly RecordRun[]): void {
    this.slabs.release(runs);
  }

  /** Sequence number the next record will get (= records stamped so far). */
  get stamped(): number {
    return this.nextSeq;
  }

  /** Any payload, through avsc. */
  stamp(payload: RawPayloadOf, timeUs: number): Buffer {
    const seq = this.nextSeq++;
    const wrapped = wrapPayload(payload);
    for (;;) {
      this.prefix.copy(this.scratch, 0);
      let pos = LONG.encode(seq, this.scratch, this.prefix.length);
      if (pos > 0) pos = LONG.encode(timeUs, this.scratch, pos);
      if (pos > 0) pos = this.payloadType.encode(wrapped, this.scratch, pos);
      if (pos > 0) return Buffer.from(this.scratch.subarray(0, pos));
      this.scratch = Buffer.alloc(this.scratch.length * 2);
    }
  }

  /**
   * A batch of the kernel's packed records, in order, into `out` as runs;
   * returns the records it added. Nothing refers to `batch` afterwards (its
   * memory may be reused).
   */
  stampKernelBatch(batch: Buffer, decode: DecodeOptions, out: RecordRun[]): number {
    const slabs = this.slabs;
    const most = this.prefix.length + SOCKET_MAX;
    let total = 0;
    // the open run: socket records written back to back since runStart
    let runSlab = slabs.reserve(0);
    let runStart = 0;
    let runCount = 0;
    const closeRun = () => {
      if (runCount === 0) return;
      out.push({ bytes: slabs.lend(runSlab, runStart, slabs.pos), count: runCount });
      total += runCount;
      runCount = 0;
    };
    forEachRecord(batch, (off, kind, tsNs) => {
      const socketKind = SOCKET_KIND_INDEX[kind];
      if (socketKind === undefined) {
        // stamp() copies what it writes: the payload's views of the batch die with it.
        const payload = decodeRecord(batch, off, kind, tsNs, decode);
        if (!payload) return;
        closeRun();
        out.push(runOf(this.stamp(payload, wallTimeUs(tsNs, decode))));
        total++;
        return;
      }
      if (runCount === MAX_RECORDS_PER_MESSAGE || !slabs.fits(most)) closeRun();
      if (runCount === 0) {
        runSlab = slabs.reserve(most);
        runStart = slabs.pos;
      }
      slabs.pos = this.writeSocketRecord(runSlab, slabs.pos, batch, off, socketKind, tsNs, wallTimeUs(tsNs, decode), decode.startedKtimeUs);
      runCount++;
    });
    closeRun();
    return total;
  }

  /**
   * One socket record from the kernel's layout (SocketEvent as
   * probe/records.ts decodes it) to Avro at b[start..]; returns its end.
   */
  private writeSocketRecord(
    b: Buffer,
    start: number,
    buf: Buffer,
    off: number,
    kind: number,
    tsNs: number,
    timeUs: number,
    startedKtimeUs: number | undefined,
  ): number {
    const t = off + SOCK.task;
    const tuple = off + SOCK.tuple;
    const inet = buf.readUInt16LE(tuple + TUPLE.family) === AF_INET;
    const close = kind === KIND_CLOSE;
    b.set(this.prefix, start);
    let pos = writeLong(b, start + this.prefix.length, this.nextSeq++);
    pos = writeLong(b, pos, timeUs);
    pos = writeLong(b, pos, SOCKET_BRANCH);
    pos = writeLong(b, pos, kind);
    pos = writeLong(b, pos, u32(buf, t + TASK.pid));
    pos = writeLong(b, pos, u32(buf, t + TASK.tid));
    pos = writeLong(b, pos, u32(buf, t + TASK.ppid));
    pos = writeLong(b, pos, u32(buf, t + TASK.uid));
    pos = writeLong(b, pos, u32(buf, t + TASK.euid));
    pos = writeLong(b, pos, u32(buf, t + TASK.auid));
    pos = writeU64(b, pos, buf, t + TASK.cap_inheritable);
    pos = writeU64(b, pos, buf, t + TASK.cap_permitted);
    pos = writeU64(b, pos, buf, t + TASK.cap_effective);
    pos = this.writeCString(b, pos, buf, t + TASK.comm, COMM_LEN);
    pos = writeU64(b, pos, buf, t + TASK.cgroup_id);
    pos = this.writeCString(b, pos, buf, t + TASK.cgroup_path, MAX_CGROUP_PATH);
    pos = writeLong(b, pos, Math.floor(le64(buf, t + TASK.start_time_ns) / 1000));
    pos = writeLong(b, pos, Math.floor(tsNs / 1000));
    pos = writeLong(b, pos, inet ? 0 : 1);
    const len = inet ? 4 : 16;
    pos = writeBytesAt(b, pos, buf, tuple + TUPLE.saddr, len);
    pos = writeBytesAt(b, pos, buf, tuple + TUPLE.daddr, len);
    pos = writeLong(b, pos, buf.readUInt16LE(tuple + TUPLE.sport));
    pos = writeLong(b, pos, buf.readUInt16LE(tuple + TUPLE.dport));
    pos = writeU64(b, pos, buf, off + SOCK.cookie);
    pos = writeLong(b, pos, u32(buf, off + SOCK.netns));
    pos = writeLong(b, pos, openedKtimeUs(buf, off, close, startedKtimeUs));
    b[pos++] = buf[tuple + TUPLE.flags]! & SockFlag.HANDSHAKE ? 1 : 0;
    pos = writeLong(b, pos, buf.readUInt16LE(off + SOCK.err));
    pos = writeLong(b, pos, close ? buf[tuple + TUPLE.state]! : 0);
    pos = writeU64(b, pos, buf, off + SOCK.bytes_acked);
    return writeU64(b, pos, buf, off + SOCK.bytes_received);
  }

  /**
   * A NUL-terminated kernel string as an Avro string. ASCII, the usual case,
   * is copied as is; anything else goes through UTF-8 decoding as the
   * decoder's cstr() does (an invalid byte becomes U+FFFD).
   */
  private writeCString(out: Buffer, pos: number, buf: Buffer, start: number, max: number): number {
    // One pass: the bytes are copied while looking for the end, after room
    // for the length's varint (1 byte below 64, else 2: max is at most 8191).
    const room = max < 64 ? 1 : this.lastLengthBytes;
    const to = pos + room;
    let len = 0;
    let high = 0;
    for (; len < max; len++) {
      const c = buf[start + len]!;
      if (c === 0) break;
      high |= c;
      out[to + len] = c;
    }
    if (high >= 0x80) {
      const bytes = this.strings.get(buf.toString('utf8', start, start + len));
      pos = writeLong(out, pos, bytes.length);
      out.set(bytes, pos);
      return pos + bytes.length;
    }
    const need = len < 64 ? 1 : 2;
    if (max >= 64) this.lastLengthBytes = need;
    if (need !== room) out.copyWithin(pos + need, to, to + len);
    return writeSmall(out, pos, len << 1) + len;
  }
}

/** Avro bytes of `len` bytes of `buf` at `at`: the length, then the bytes. */
function writeBytesAt(out: Buffer, pos: number, buf: Buffer, at: number, len: number): number {
  pos = writeLong(out, pos, len);
  for (let i = 0; i < len; i++) out[pos + i] = buf[at + i]!;
  return pos + len;
}

/** The hand-written socket writer follows the schema's field order: refuse to start if it changed. */
function checkSocketLayout(payloadType: avro.Type): void {
  const branch = (payloadType as unknown as { types: avro.Type[] }).types[SOCKET_BRANCH] as avro.types.RecordType;
  const task = branch.fields.find((f) => f.name === 'task')!.type as avro.types.RecordType;
  const shape = [
    branch.name,
    ...branch.fields.map((f) => f.name),
    ...task.fields.map((f) => f.name),
    ...(branch.fields[0]!.type as avro.types.EnumType).symbols,
    ...(branch.fields.find((f) => f.name === 'family')!.type as avro.types.EnumType).symbols,
  ].join(',');
  const expected = [
    'netmon.raw.SocketEvent',
    'kind,task,family,saddr,daddr,sport,dport,cookie,netns,opened_ktime_us,handshake,error,state,bytes_acked,bytes_received',
    'pid,tid,ppid,uid,euid,auid,cap_inheritable,cap_permitted,cap_effective,comm,cgroup_id,cgroup_path,start_time_us,ktime_us',
    ...SOCKET_KINDS,
    ...FAMILIES,
  ].join(',');
  if (shape !== expected) throw new Error(`RawRecord's SocketEvent changed (${shape}): update RecordStamper.writeSocketRecord`);
}
