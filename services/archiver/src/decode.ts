// A Kafka record's value to the JSON line the archive stores. Fast path: Avro
// bytes straight to the JSON line (transcode.ts); else decode once, stringify
// once. Pure CPU: no Kafka, no S3. One decoder per contract: NetworkEvent for
// the events topic, SensorStatus for the status topic; both have a
// `timestamp` (RFC 3339 UTC) that picks the hour partition.
import { DecodeError, type SingleObjectCodec, networkEventCodec, readSchema, sensorStatusCodec } from '@netmon/common';
import type { ArchiveRecord } from './batch';
import { type HourPartition, hourOf, timeOf } from './layout';
import { type InMessage, Undecodable } from './partition';
import { JsonTranscoder, fastTime, msIntoHour } from './transcode';

/** The fast path for the current schema (undefined if the schema has types it does not know). */
function makeTranscoder(schemaFile: string, codec: { header: Buffer }): JsonTranscoder | undefined {
  try {
    return new JsonTranscoder(readSchema(schemaFile), codec.header, 'timestamp');
  } catch {
    return undefined;
  }
}

/** Free room where a line may be written in place (FlushBuilder). */
export interface LineRoom {
  roomFor(max: number): Buffer | undefined;
  readonly freeAt: number;
}

/** A record of the contract: it has an RFC 3339 `timestamp`. */
type Timestamped = { timestamp: string };

export class EventDecoder {
  private readonly transcoder: JsonTranscoder | undefined;
  /** The hour partition of the last fast-path record, its "YYYY-MM-DDTHH" bytes, and the hour's first ms. */
  private lastPart?: HourPartition;
  private readonly lastPartBytes = Buffer.alloc(13);
  private hourStartMs = 0;

  /** Default: NetworkEvents (network-event.avsc). */
  constructor(
    private readonly codec: SingleObjectCodec<Timestamped> = networkEventCodec(),
    schemaFile = 'network-event.avsc',
  ) {
    this.transcoder = makeTranscoder(schemaFile, codec);
  }

  /** The decoder of the status topic's SensorStatus records. */
  static status(): EventDecoder {
    return new EventDecoder(sensorStatusCodec(), 'sensor-status.avsc');
  }

  /**
   * The record, or why it cannot be archived. A fast-path record's bytes are
   * the transcoder's buffer, or written straight into `into`'s free room (a
   * flush's chunk, so that appending it copies nothing): append it before
   * decoding the next one.
   */
  decode(m: InMessage, offset: number, into?: LineRoom): ArchiveRecord | Undecodable {
    const value = m.value;
    const tx = this.transcoder;
    if (value && tx) {
      const target = into?.roomFor(JsonTranscoder.maxOutput(value.length));
      const fast = target ? tx.transcode(value, target, into!.freeAt) : tx.transcode(value);
      if (fast) {
        const out = target ?? tx.out;
        const timeMs = this.timeAt(out, fast.markStart, fast.markEnd);
        if (timeMs !== undefined) return { offset, bytes: out, bytesStart: fast.start, bytesEnd: fast.end, part: this.lastPart!, timeMs };
      }
    }
    let event: Timestamped;
    try {
      event = this.codec.decode(m.value ?? Buffer.alloc(0));
    } catch (err) {
      return new Undecodable(err instanceof DecodeError ? err.reason : 'error', err);
    }
    const part = hourOf(event.timestamp);
    if (!part) return new Undecodable('bad-timestamp', new Error(`timestamp ${JSON.stringify(event.timestamp)} is not RFC 3339`));
    return { offset, line: JSON.stringify(event), part, timeMs: timeOf(event.timestamp) };
  }

  /**
   * The time of the spec-form timestamp at buf[start..end), and its hour
   * partition in lastPart; undefined for any other form. While the hour
   * repeats ("YYYY-MM-DDTHH" as the last one's), only the rest is read.
   */
  private timeAt(buf: Buffer, start: number, end: number): number | undefined {
    if (this.lastPart && end - start === 24 && sameBytes(buf, start, this.lastPartBytes, 13)) {
      const inHour = msIntoHour(buf, start);
      return inHour === undefined ? undefined : this.hourStartMs + inHour;
    }
    const t = fastTime(buf, start, end);
    if (t === undefined) return undefined;
    buf.copy(this.lastPartBytes, 0, start, start + 13);
    this.lastPart = { dt: buf.toString('latin1', start, start + 10), hour: buf.toString('latin1', start + 11, start + 13) };
    this.hourStartMs = Math.floor(t / HOUR_MS) * HOUR_MS;
    return t;
  }
}

const HOUR_MS = 3_600_000;

/** Whether a[at..at+len) equals b[0..len) (by hand: a few bytes, no call into Buffer#compare). */
function sameBytes(a: Buffer, at: number, b: Buffer, len: number): boolean {
  for (let i = 0; i < len; i++) if (a[at + i] !== b[i]) return false;
  return true;
}
