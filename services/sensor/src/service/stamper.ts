// Turns payloads into encoded RawRecords: host, run id and the per-run
// sequence number that lets every consumer see gaps and duplicates.
//
// Hot path. A RawRecord starts with host_id, hostname and run_id, the same for
// every record of a run: their bytes (after the single-object header) are
// encoded once, and each record only adds seq, time_us and its payload.
//
// Socket records, nearly all of the stream, are written by a few lines of
// Avro binary encoding below rather than avsc's generic union writer (a third
// of the time per record); stamper.test.ts checks every byte against avsc.
import { randomUUID } from 'node:crypto';
import { type RawPayloadOf, type SocketEvent, rawRecordCodec, wrapPayload } from '@netmon/common';
import avro from 'avsc';
import type { HostIdentity } from './identity';

const LONG = avro.Type.forSchema('long');
const STRING = avro.Type.forSchema('string');
/** Branch indexes in RawRecord's payload union and its enums (checked against the schema at start). */
const SOCKET_BRANCH = 0;
const SOCKET_KINDS = ['ESTABLISH', 'ACCEPT', 'CLOSE', 'LISTEN'];
const FAMILIES = ['INET', 'INET6'];
/** A socket record's largest size past its strings and addresses: 26 longs and ints of 10 bytes at most, and the rest. */
const SOCKET_FIXED_MAX = 40 * 10;

/** Avro long (zigzag varint) at `pos`; exact for |n| < 2^52, as every value here is. */
function writeLong(buf: Buffer, pos: number, n: number): number {
  if (n >= 0 && n < 0x40000000) {
    // the common case in 32-bit integer arithmetic
    let small = n << 1;
    while (small > 0x7f) {
      buf[pos++] = (small & 0x7f) | 0x80;
      small >>>= 7;
    }
    buf[pos++] = small;
    return pos;
  }
  let z = n >= 0 ? n * 2 : -n * 2 - 1;
  while (z >= 0x80) {
    buf[pos++] = (z % 0x80) | 0x80;
    z = Math.floor(z / 0x80);
  }
  buf[pos++] = z;
  return pos;
}

/** Avro bytes/string: the length, then the bytes. */
function writeBytes(buf: Buffer, pos: number, bytes: Uint8Array): number {
  pos = writeLong(buf, pos, bytes.length);
  buf.set(bytes, pos);
  return pos + bytes.length;
}

/** UTF-8 of the few distinct strings a host's records repeat (comm, cgroup path), bounded. */
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
  private readonly strings = new Utf8Cache();

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

  /** Sequence number the next record will get (= records stamped so far). */
  get stamped(): number {
    return this.nextSeq;
  }

  stamp(payload: RawPayloadOf, timeUs: number): Buffer {
    if (payload.kind === 'socket') return this.stampSocket(payload.value, timeUs);
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

  private stampSocket(e: SocketEvent, timeUs: number): Buffer {
    const t = e.task;
    const comm = this.strings.get(t.comm);
    const cgroup = this.strings.get(t.cgroup_path);
    const need = this.prefix.length + SOCKET_FIXED_MAX + comm.length + cgroup.length + e.saddr.length + e.daddr.length;
    if (this.scratch.length < need) this.scratch = Buffer.alloc(need * 2);
    const b = this.scratch;
    let pos = this.prefix.copy(b, 0);
    pos = writeLong(b, pos, this.nextSeq++);
    pos = writeLong(b, pos, timeUs);
    pos = writeLong(b, pos, SOCKET_BRANCH);
    pos = writeLong(b, pos, SOCKET_KINDS.indexOf(e.kind));
    pos = writeLong(b, pos, t.pid);
    pos = writeLong(b, pos, t.tid);
    pos = writeLong(b, pos, t.ppid);
    pos = writeLong(b, pos, t.uid);
    pos = writeLong(b, pos, t.euid);
    pos = writeLong(b, pos, t.auid);
    pos = writeLong(b, pos, t.cap_inheritable);
    pos = writeLong(b, pos, t.cap_permitted);
    pos = writeLong(b, pos, t.cap_effective);
    pos = writeBytes(b, pos, comm);
    pos = writeLong(b, pos, t.cgroup_id);
    pos = writeBytes(b, pos, cgroup);
    pos = writeLong(b, pos, t.start_time_us);
    pos = writeLong(b, pos, t.ktime_us);
    pos = writeLong(b, pos, FAMILIES.indexOf(e.family));
    pos = writeBytes(b, pos, e.saddr);
    pos = writeBytes(b, pos, e.daddr);
    pos = writeLong(b, pos, e.sport);
    pos = writeLong(b, pos, e.dport);
    pos = writeLong(b, pos, e.cookie);
    pos = writeLong(b, pos, e.netns);
    pos = writeLong(b, pos, e.opened_ktime_us);
    b[pos++] = e.handshake ? 1 : 0;
    pos = writeLong(b, pos, e.error);
    pos = writeLong(b, pos, e.state);
    pos = writeLong(b, pos, e.bytes_acked);
    pos = writeLong(b, pos, e.bytes_received);
    return Buffer.from(b.subarray(0, pos));
  }
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
  if (shape !== expected) throw new Error(`RawRecord's SocketEvent changed (${shape}): update RecordStamper.stampSocket`);
}
