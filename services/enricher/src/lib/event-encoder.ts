// NetworkEvent's Avro single-object encoding, written by hand for the hot
// path: field by field straight into shared slabs, no intermediate Tap or
// per-event buffer, and from the event's parts (event.ts: no NetworkEvent is
// made). It must stay byte-identical to avsc's encoding of eventOf(parts)
// under schemas/avro/network-event.avsc (test/event-encoder.test.ts compares
// the two over varied parts): avsc's zigzag varints (integer arithmetic below
// 2^30, floating above), UTF-8 strings, enum indexes. Values avsc would refuse
// throw here too (EventEncodeError), so the caller's dead-letter path stays
// the same.
import { NetmonError } from '@netmon/common';
import { addressText } from './addresses';
import { EVENT_TYPE, type EventParts, durationMs, formatTimestamp, outcomeOf } from './event';

/** A value the schema does not allow (avsc would refuse it as well). */
export class EventEncodeError extends NetmonError {}

/** ConnectionEventType's symbols, in the schema's order. */
const CONNECTION_TYPES: Readonly<Record<string, number>> = {
  TcpConnectionEstablish: 0,
  TcpConnectionAccept: 1,
  TcpConnectionClose: 2,
  TcpListen: 3,
};

const SLAB_BYTES = 1 << 20;

/**
 * Encodes events back to back into 1 MiB slabs and hands out views of
 * them: no allocation per event but the view. A slab lives as long as a view
 * of it (librdkafka copies the bytes at produce()).
 */
export class NetworkEventEncoder {
  private slab = Buffer.allocUnsafe(SLAB_BYTES);
  private pos = 0;

  /** `header`: the single-object header (C3 01 and the schema fingerprint), networkEventCodec().header. */
  constructor(private readonly header: Buffer) {}

  /** The encoding of eventOf(parts), written from the parts. */
  encodeParts(parts: EventParts): Buffer {
    for (;;) {
      const start = this.pos;
      // Writes past the slab's end are dropped (typed array semantics) while
      // the position still counts them: an overflow shows in `end`.
      const end = writeParts(this.slab, writeHeader(this.slab, start, this.header), parts);
      if (end <= this.slab.length) {
        this.pos = end;
        return this.slab.subarray(start, end);
      }
      this.slab = Buffer.allocUnsafe(Math.max(SLAB_BYTES, end - start));
      this.pos = 0;
    }
  }
}

function writeHeader(buf: Buffer, pos: number, header: Buffer): number {
  for (let i = 0; i < header.length; i++) buf[pos + i] = header[i]!;
  return pos + header.length;
}

/**
 * eventOf(p)'s fields in the schema's order, written from the socket record
 * and the parts (event.ts) without making the NetworkEvent.
 */
function writeParts(buf: Buffer, pos: number, p: EventParts): number {
  const s = p.socket;
  const t = s.task;
  pos = writeString(buf, pos, 'NetworkEvent', 'type');
  pos = writeInt(buf, pos, t.pid, 'process.pid');
  pos = writeInt(buf, pos, t.tid, 'process.tid');
  pos = writeInt(buf, pos, t.ppid, 'process.ppid');
  pos = writeLong(buf, pos, t.uid, 'process.uid');
  pos = writeLong(buf, pos, t.euid, 'process.euid');
  pos = writeLong(buf, pos, t.auid, 'process.auid');
  pos = writeLong(buf, pos, t.cap_inheritable, 'process.cap_inheritable');
  pos = writeLong(buf, pos, t.cap_permitted, 'process.cap_permitted');
  pos = writeLong(buf, pos, t.cap_effective, 'process.cap_effective');
  pos = writeString(buf, pos, p.secureexec, 'process.secureexec');
  pos = writeString(buf, pos, p.filename, 'process.filename');
  pos = writeString(buf, pos, p.binaryPath, 'process.binary_path');
  pos = writeString(buf, pos, p.args, 'process.args');
  pos = writeString(buf, pos, p.containerId, 'process.container_id');
  const type = Object.hasOwn(EVENT_TYPE, s.kind) ? CONNECTION_TYPES[EVENT_TYPE[s.kind]] : undefined;
  if (type === undefined) throw invalid('network_event.type', s.kind);
  pos = writeVarint(buf, pos, type);
  pos = writeString(buf, pos, addressText(s.saddr), 'network_event.saddr');
  pos = writeString(buf, pos, addressText(s.daddr), 'network_event.daddr');
  pos = writeInt(buf, pos, s.sport, 'network_event.sport');
  pos = writeInt(buf, pos, s.dport, 'network_event.dport');
  pos = writeLong(buf, pos, s.cookie, 'network_event.cookie');
  pos = writeString(buf, pos, formatTimestamp(p.timeUs), 'timestamp');
  pos = writeString(buf, pos, p.host.hostname, 'host.hostname');
  pos = writeString(buf, pos, p.host.id, 'host.id');
  pos = writeString(buf, pos, p.runId, 'source.run_id');
  pos = writeLong(buf, pos, p.seq, 'source.seq');
  // connectionFacts(s, remoteName), field by field
  if (s.kind === 'CLOSE') {
    pos = writeString(buf, pos, outcomeOf(s), 'connection.outcome');
    pos = writeLong(buf, pos, durationMs(s), 'connection.duration_ms');
    pos = writeLong(buf, pos, s.bytes_acked, 'connection.bytes_sent');
    pos = writeLong(buf, pos, s.bytes_received, 'connection.bytes_received');
  } else {
    for (let i = 0; i < 4; i++) pos = writeVarint(buf, pos, 0); // "", 0, 0, 0
  }
  pos = writeString(buf, pos, p.remoteName, 'connection.remote_name');
  pos = writeLong(buf, pos, s.netns, 'connection.netns');
  return writeString(buf, pos, p.processKey, 'process_key');
}

function invalid(field: string, value: unknown): EventEncodeError {
  return new EventEncodeError(`invalid NetworkEvent ${field}: ${JSON.stringify(value) ?? String(value)}`);
}

function writeInt(buf: Buffer, pos: number, v: number, field: string): number {
  if (v !== (v | 0)) throw invalid(field, v);
  return writeVarint(buf, pos, v);
}

/** avsc's bounds of a long held in a double. */
const MAX_SAFE_LONG = 9007199254740990;

function writeLong(buf: Buffer, pos: number, v: number, field: string): number {
  // Most longs fit 32 bits: one check (v % 1 on a double is a call to fmod).
  if ((v | 0) === v) return writeVarint(buf, pos, v);
  if (typeof v !== 'number' || !Number.isInteger(v) || !(v >= -MAX_SAFE_LONG && v <= MAX_SAFE_LONG)) throw invalid(field, v);
  return writeVarint(buf, pos, v);
}

/** Zigzag varint, as avsc's Tap.writeLong writes it. */
function writeVarint(buf: Buffer, pos: number, n: number): number {
  if (n >= -1073741824 && n < 1073741824) {
    let m = n >= 0 ? n << 1 : (~n << 1) | 1;
    while (m > 0x7f) {
      buf[pos++] = (m & 0x7f) | 0x80;
      m >>= 7;
    }
    buf[pos++] = m;
    return pos;
  }
  let f = n >= 0 ? n * 2 : -n * 2 - 1;
  while (f >= 128) {
    buf[pos++] = (f & 0x7f) | 0x80;
    f /= 128;
  }
  buf[pos++] = f & 0x7f;
  return pos;
}

/**
 * ASCII strings shorter than this are copied char by char (a container id's
 * 64 characters among them); others go through Buffer.write, two calls into
 * C++ that cost more than such a loop.
 */
const SHORT_STRING = 256;

function writeString(buf: Buffer, pos: number, s: string, field: string): number {
  if (typeof s !== 'string') throw invalid(field, s);
  const n = s.length;
  if (n < SHORT_STRING) {
    // An ASCII string's length in bytes is n: one varint byte below 64 (2n < 128), else two.
    const start = n < 64 ? pos + 1 : pos + 2;
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      buf[start + i] = c;
    }
    if (i === n) {
      if (n < 64) buf[pos] = n << 1;
      else {
        buf[pos] = ((n << 1) & 0x7f) | 0x80;
        buf[pos + 1] = n >> 6;
      }
      return start + n;
    }
  }
  const len = Buffer.byteLength(s, 'utf8');
  pos = writeVarint(buf, pos, len);
  if (pos + len <= buf.length) buf.write(s, pos, len, 'utf8');
  return pos + len;
}
